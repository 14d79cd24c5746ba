"""The host driver: weights and inputs down a serial link, outputs back.

A link is anything with pyserial's ``write``, ``read(n)`` (returning what came
within its timeout) and ``close``: `open_link` opens a board's serial port
(``/dev/ttyUSB1``) or a simulated board's ``socket://`` URL alike.
"""

import socket
import time

from bitfab.rtl.shell import BAUD, CRC_INIT, INPUT_INDEX_BYTES, SEQUENCE_BYTES

from .beats import input_beats, scores_from_beats
from .protocol import (WireError, WireFormat, check_frame, crc, input_crc, input_frames,
                       load_crc, load_frames, parse_reply, restart_frame, unframe)
from .weights import check_load_words

__all__ = ["Host", "open_link"]

INPUT_MODULO, SEQUENCE_MODULO = 1 << 8 * INPUT_INDEX_BYTES, 1 << 8 * SEQUENCE_BYTES


def open_link(port, baud=BAUD, timeout=2.0):
    """A serial port or pyserial URL, opened for `Host`."""
    import serial
    try:
        link = serial.serial_for_url(port, baudrate=baud, timeout=timeout)
    except (serial.SerialException, ValueError) as error:
        raise WireError(f"cannot open {port}: {error}") from None
    sock = getattr(link, "_socket", None)     # a socket:// URL (pyserial sets no option)
    if sock is not None:
        # A frame goes at once: Nagle's algorithm would hold each write back until the
        # one before is acknowledged (up to the board's 40 ms delayed ACK).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return link


class Host:
    """Drives a board through `link` in the `WireFormat` `wire`; as a context manager it
    closes the link on leaving.

    The line has no flow control: the shell drops bytes it has no room for
    while the network stalls. So at most `window` items are in flight: item k
    goes down only once item k - window's outputs are back. Every read has a
    deadline (`timeout` seconds). A fault on the line costs a frame, which the
    host notices and mends by itself, at most `retries` times in a row: a status
    request that gets no reply is sent again (with a new tag, so that a late
    reply is not taken for it); load words the board did not take go again from
    the first it lacks, `chunk` words between two statuses; input beats it did
    not take go again from the first it lacks; an item whose output beats were
    lost runs again. `faults` lists what was mended. What cannot be mended (a
    board of another plan, a board that does not answer) raises `WireError`.
    """

    def __init__(self, link, wire, timeout=2.0, window=2, retries=3, chunk=64):
        if not isinstance(wire, WireFormat):
            raise TypeError(f"wire must be a WireFormat, not {wire!r}")
        for name, value, least in (("window", window, 1), ("retries", retries, 0),
                                   ("chunk", chunk, 1)):
            if not isinstance(value, int) or value < least:
                raise ValueError(f"{name} must be an integer >= {least}, not {value!r}")
        self.link, self.wire, self.timeout = link, wire, timeout
        self.window, self.retries, self.chunk = window, retries, chunk
        self.tag = 0
        self.received = bytearray()   # bytes read, not yet a whole frame
        self.outputs = {}             # output beats read, by sequence number
        self.faults = []
        self.bad_replies = 0          # frames from the board dropped (cut, CRC)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.link.close()

    def send_raw(self, data):
        """Bytes as they are onto the link (frames, or anything: the fuzzer's)."""
        self.link.write(data)
        if hasattr(self.link, "flush"):
            self.link.flush()

    def next_reply(self, deadline):
        """The next reply (`Reply`) from the board, or None at `deadline`. Frames that
        are cut or fail their CRC are counted and skipped; output beats are kept in
        `outputs`."""
        while True:
            end = self.received.find(0)
            if end >= 0:
                encoded, self.received = self.received[:end], self.received[end + 1:]
                if not encoded:
                    continue
                data = unframe(encoded)
                reply = None if data is None else parse_reply(data, self.wire)
                if reply is None:
                    self.bad_replies += 1
                    continue
                if reply.kind == "output":
                    self.outputs[reply.number] = reply.value
                return reply
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.received += self.link.read(max(1, getattr(self.link, "in_waiting", 0)))

    def status(self):
        """The board's `BoardStatus` (which restarts its window's counts and CRCs).
        Output beats that come before it are kept in `outputs`."""
        for attempt in range(self.retries + 1):
            self.tag = (self.tag + 1) % 256
            # A byte 0 first ends whatever frame the board may be inside.
            self.send_raw(b"\0" + check_frame(self.tag))
            deadline = time.monotonic() + self.timeout
            while (reply := self.next_reply(deadline)) is not None:
                if reply.kind == "status" and reply.number == self.tag:
                    return reply.value
            self.faults.append(f"status {self.tag}: no reply within {self.timeout} s")
        raise WireError(f"the board's status: no reply to {self.retries + 1} requests, "
                        f"{self.timeout} s each ({self.bad_replies} frames from the board "
                        f"dropped)")

    def load(self, words, layers=None):
        """Restart loading, write `words` (checked against `layers`' plan if given), a
        status after every `chunk` of them, sending again from the first word the
        board lacks; then check that it took all of them, unchanged, and is loaded
        (`BoardStatus.check_load`). Returns the last `BoardStatus`."""
        if layers is not None:
            check_load_words(words, layers)
        load_frames(words, self.wire)         # every word checked before any is sent
        for attempt in range(self.retries + 1):
            self.send_raw(b"\0" + restart_frame())
            status = self.status()
            if status.words == 0 and status.crc == CRC_INIT:
                break
            self.faults.append(f"restart: the board still counts {status.words} words")
        else:
            raise WireError(f"load: the board did not restart loading after "
                            f"{self.retries + 1} restarts")
        at, tries = 0, 0
        while at < len(words):
            end = min(at + self.chunk, len(words))
            self.send_raw(load_frames(words[at:end], self.wire, start=at))
            status = self.status()
            if status.words == end or status.loaded:
                at = end if status.words == end else len(words)
                tries = 0
                continue
            if not at <= status.words < end:
                raise WireError(f"load: the board counts {status.words} words after words "
                                f"{at}..{end - 1}: another host is loading it")
            tries += 1
            self.faults.append(f"load words {status.words}..{end - 1} again ({status.faults})")
            if tries > self.retries:
                raise WireError(f"load: the board took words up to {status.words} of "
                                f"{at}..{end - 1} only, {tries} times ({status.faults})")
            at = status.words
        status.check_load(len(words), load_crc(words, self.wire))
        return status

    def run(self, items, out_beats):
        """Stream `items` (each a list of input beats); returns each item's `out_beats`
        output beats. Without faults, the board's final status must also show the
        input beats it took and the output beats it sent to be those the host sent
        and read (their CRCs)."""
        per_item = {len(beats) for beats in items}
        if len(per_item) > 1:
            raise WireError(f"items of {sorted(per_item)} input beats: a run's items are "
                            f"all one size")
        for beats in items:
            input_frames(beats, self.wire)    # all checked before any is sent
        per_item = per_item.pop() if items else 0
        if per_item * self.window >= INPUT_MODULO:
            raise WireError(f"{self.window} items of {per_item} beats in flight: the "
                            f"shell's input index counts {INPUT_MODULO} beats")
        start = self.status()
        self.outputs.clear()            # beats before this run are not its own
        faults = len(self.faults)
        run = _Run(self, items, per_item, out_beats, start)
        results = run.results()
        end = self.status()
        sent = [beat for item in run.slots for beat in items[item]]
        if end.inputs != (start.inputs + len(sent)) % INPUT_MODULO:
            raise WireError(f"run: the board took {(end.inputs - start.inputs) % INPUT_MODULO}"
                            f" input beats, the host sent {len(sent)}")
        if end.outputs != (start.outputs + len(run.slots) * out_beats) % SEQUENCE_MODULO:
            raise WireError(f"run: the board sent "
                            f"{(end.outputs - start.outputs) % SEQUENCE_MODULO} output beats "
                            f"for {len(run.slots)} items of {out_beats}: the line is out of "
                            f"step")
        if len(self.faults) == faults:
            read = b"".join(beat.to_bytes(self.wire.out_bytes, "little")
                            for beat in run.read)
            if end.in_crc != input_crc(sent, self.wire):
                raise WireError(f"run check: the board's CRC of the input beats is "
                                f"{end.in_crc:#06x}, the host sent "
                                f"{input_crc(sent, self.wire):#06x}")
            if end.out_crc != crc(read):
                raise WireError(f"run check: the board's CRC of the outputs it sent is "
                                f"{end.out_crc:#06x}, the host read {crc(read):#06x}")
        return results

    def scores(self, layers, codes, encoding):
        """(items, elements) first-layer input codes (a fully connected layer's columns,
        or an image pixel by pixel, each pixel's channels together) -> each item's
        scores from the board."""
        beats = input_beats(layers[0], codes, encoding)
        per_item = layers[0].image_elements // layers[0].in_beat
        items = [beats[k:k + per_item] for k in range(0, len(beats), per_item)]
        outputs = self.run(items, layers[-1].groups)
        return [scores_from_beats(layers[-1], beats)[0] for beats in outputs]


class _Run:
    """One `Host.run`: items go down in slots (an item that lost its outputs runs
    again in a later slot); slot j's beats have input indices
    ``start.inputs + j * per_item + b`` and its outputs sequence numbers
    ``start.outputs + j * out_beats + b`` (modulo 2^16), since the shell takes
    beats only in order and the network answers every item in order."""

    def __init__(self, host, items, per_item, out_beats, start):
        self.host, self.items, self.per_item, self.out_beats = host, items, per_item, out_beats
        self.start = start
        self.slots = []                 # the item in each slot, in the order sent
        self.read = []                  # output beats in the order of their slots
        self.queue = list(range(len(items)))
        self.flight = []                # slots sent, outputs not all back

    def _open(self):
        while len(self.flight) < self.host.window and self.queue:
            slot = len(self.slots)
            self.slots.append(self.queue.pop(0))
            self.flight.append(slot)
            self._send(slot)

    def _send(self, slot, first=0):
        """Slot `slot`'s input beats from its `first` on, with their indices."""
        self.host.send_raw(input_frames(self.items[self.slots[slot]][first:], self.host.wire,
                                        start=self.start.inputs + slot * self.per_item + first))

    def _beats(self, slot):
        first = self.start.outputs + slot * self.out_beats
        return [self.host.outputs.get((first + b) % SEQUENCE_MODULO)
                for b in range(self.out_beats)]

    def results(self):
        host, results = self.host, [None] * len(self.items)
        tries = 0
        self._open()
        while self.flight:
            oldest = self.flight[0]
            deadline = time.monotonic() + host.timeout
            while None in self._beats(oldest) and host.next_reply(deadline) is not None:
                pass
            beats = self._beats(oldest)
            if None not in beats:
                results[self.slots[oldest]] = beats
                self.read += beats
                first = self.start.outputs + oldest * self.out_beats
                for b in range(self.out_beats):     # sequence numbers wrap: free them
                    del host.outputs[(first + b) % SEQUENCE_MODULO]
                self.flight.pop(0)
                tries = 0
                self._open()
                continue
            tries += 1
            item = self.slots[oldest]
            if tries > host.retries:
                raise WireError(f"item {item}'s output: {self.out_beats - beats.count(None)}"
                                f" of {self.out_beats} beats came, {tries} times within "
                                f"{host.timeout} s")
            self._mend(oldest, item)
        return results

    def _mend(self, oldest, item):
        """After a deadline: what did the board take and send? Beats it lacks go again;
        an item whose outputs it sent but the host lost runs again."""
        host = self.host
        status = host.status()
        sent = (self.flight[-1] + 1) * self.per_item
        taken = (status.inputs - self.start.inputs) % INPUT_MODULO
        # The board is at most `window` items behind the host: unwrap its count.
        taken = sent - (sent - taken) % INPUT_MODULO
        lacking = taken < sent
        if lacking:
            slot, beat = divmod(taken, self.per_item)
            host.faults.append(f"input beats from {taken} again ({status.faults})")
            self._send(slot, beat)
            for later in (s for s in self.flight if s > slot):
                self._send(later)
            return
        answered = (status.outputs - self.start.outputs) % SEQUENCE_MODULO
        if answered >= (oldest + 1) * self.out_beats:
            host.faults.append(f"item {item} again: its output beats were lost "
                               f"({host.bad_replies} frames from the board dropped)")
            self.flight.pop(0)
            self.queue.insert(0, item)
            self._open()

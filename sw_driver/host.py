"""The host driver: weights and inputs down a serial link, outputs back.

A link is anything with pyserial's ``write``, ``read(n)`` (returning what came
within its timeout) and ``close``: `open_link` opens a board's serial port
(``/dev/ttyUSB1``) or a simulated board's ``socket://`` URL alike.
"""

import time

from bitfab.rtl.shell import BAUD

from .beats import input_beats, scores_from_beats
from .protocol import (CHECK, STATUS_BYTES, WireError, WireFormat, crc, decode_outputs,
                       decode_status, encode_inputs, encode_load, input_crc, load_crc)
from .weights import check_load_words

__all__ = ["Host", "open_link"]


def open_link(port, baud=BAUD, timeout=2.0):
    """A serial port or pyserial URL, opened for `Host`."""
    import serial
    try:
        return serial.serial_for_url(port, baudrate=baud, timeout=timeout)
    except (serial.SerialException, ValueError) as error:
        raise WireError(f"cannot open {port}: {error}") from None


class Host:
    """Drives a board through `link` in the `WireFormat` `wire`; as a context manager it
    closes the link on leaving.

    The line has no flow control: the shell drops bytes it has no room for
    while the network stalls. So at most `window` items are in flight: item k
    goes down only once item k - window's outputs are back. A reply that does
    not come within `timeout` seconds, or comes out of step, raises `WireError`
    naming the item and the byte counts.
    """

    def __init__(self, link, wire, timeout=2.0, window=2):
        if not isinstance(wire, WireFormat):
            raise TypeError(f"wire must be a WireFormat, not {wire!r}")
        if not isinstance(window, int) or window < 1:
            raise ValueError(f"window must be a positive integer, not {window!r}")
        self.link, self.wire, self.timeout, self.window = link, wire, timeout, window

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.link.close()

    def load(self, words, layers=None):
        """Restart loading, write `words` (checked against `layers`' plan if given), then
        ask the board what it took: a load that did not arrive whole and unchanged, or
        a board of another plan, raises `WireError` (`BoardStatus.check_load`).
        Returns the `BoardStatus`."""
        if layers is not None:
            check_load_words(words, layers)
        self.link.write(encode_load(words, self.wire))
        status = self.status()
        status.check_load(len(words), load_crc(words, self.wire))
        return status

    def status(self):
        """The board's `BoardStatus`, which restarts its line counts and stream CRCs
        (ask between items, not while outputs are due)."""
        self.link.write(bytes([CHECK]))
        self.link.flush()
        return decode_status(self._read(STATUS_BYTES, "the board's status"))

    def run(self, items, out_beats):
        """Stream `items` (each a list of input beats); returns each item's `out_beats`
        output beats, once the board's status shows that the inputs it received and
        the outputs it sent are those the host sent and read (`BoardStatus.check_run`)."""
        frames = [encode_inputs(beats, self.wire) for beats in items]   # all checked first
        self.status()      # a window of its own for this run's line counts and CRCs
        results, read = [], bytearray()
        for k, frame in enumerate(frames):
            if k - len(results) >= self.window:
                results.append(self._item(len(results), out_beats, read))
            self.link.write(frame)
            self.link.flush()
        while len(results) < len(frames):
            results.append(self._item(len(results), out_beats, read))
        time.sleep(0.1)
        extra = getattr(self.link, "in_waiting", 0)
        if extra:
            raise WireError(f"the board sent {extra} bytes after the last item's outputs: "
                            f"the line is out of step")
        self.status().check_run(input_crc(items, self.wire), crc(read))
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

    def _item(self, index, out_beats, read):
        data = self._read(out_beats * self.wire.out_bytes, f"item {index}'s output")
        read += data
        return decode_outputs(data, self.wire)

    def _read(self, want, what):
        data = bytearray()
        deadline = time.monotonic() + self.timeout
        while len(data) < want and time.monotonic() < deadline:
            data += self.link.read(want - len(data))
        if len(data) < want:
            raise WireError(f"{what}: {len(data)} of {want} bytes came within "
                            f"{self.timeout} s")
        return bytes(data)

"""The shell's wire protocol (`bitfab.rtl.shell`), host side: frames and the status.

Every command and reply is a frame: its bytes and their CRC-16/CCITT-FALSE
(``binascii.crc_hqx`` from 0xFFFF, high byte first), COBS-encoded by the `cobs`
library and ended by a byte 0 (`frame`, `unframe`). Commands carry what makes a
lost frame harmless: load words and input beats their index, the status request
a tag that its reply repeats, output beats their sequence number. `ShellModel`
is the shell's receive side in Python, byte for byte: the fuzzer predicts every
status count with it.
"""

import binascii
from dataclasses import dataclass

from cobs import cobs

from bitfab.rtl.shell import (CHECK, CRC_INIT, INPUT, INPUT_INDEX_BYTES, LOAD,
                              LOAD_INDEX_BYTES, OUTPUT, REPLY, RESTART, SEQUENCE_BYTES,
                              STATUS, STATUS_BYTES, frame_sizes)

__all__ = ["WireError", "WireFormat", "BoardStatus", "frame", "unframe", "Reply", "parse_reply",
           "restart_frame", "check_frame", "load_frames", "input_frames", "crc", "load_crc",
           "input_crc", "ShellModel", "STATUS_BYTES"]


class WireError(Exception):
    """A frame that cannot go on the wire, or a reply that is not what the plan says."""


@dataclass(frozen=True)
class WireFormat:
    """Bytes per load word, input beat and output beat on the wire (each port's payload
    width rounded up to bytes, as the shell does)."""

    load_bytes: int
    in_bytes: int
    out_bytes: int
    in_bits: int
    out_bits: int
    load_bits: int

    @classmethod
    def of_widths(cls, load_bits, in_bits, out_bits):
        return cls(-(-load_bits // 8), -(-in_bits // 8), -(-out_bits // 8), in_bits, out_bits,
                   load_bits)

    @classmethod
    def of_layers(cls, configs):
        """The wire format of a shell around a `Network` of `configs`."""
        return cls.of_widths(configs[0].word_bits, configs[0].in_layout.size,
                             configs[-1].out_layout.size)

    @property
    def sizes(self):
        """Decoded bytes of each frame, by its command or reply byte."""
        return frame_sizes(self.load_bytes, self.in_bytes, self.out_bytes)

    def item_bytes(self, in_beats, out_beats):
        """Bytes on the line, both ways, for an item of `in_beats` input beats and
        `out_beats` output beats: each a frame, COBS adding a code byte and the
        closing byte 0 (frames are shorter than 254 bytes)."""
        sizes = self.sizes
        return in_beats * (sizes[INPUT] + 2) + out_beats * (sizes[OUTPUT] + 2)


def crc(data):
    """CRC-16/CCITT-FALSE of `data`, as the board computes it: ``binascii.crc_hqx``
    from 0xFFFF."""
    return binascii.crc_hqx(bytes(data), CRC_INIT)


def frame(data):
    """`data` (a frame's bytes) with its CRC, COBS-encoded and closed by a byte 0."""
    data = bytes(data)
    return cobs.encode(data + crc(data).to_bytes(2, "big")) + b"\0"


def unframe(encoded):
    """The bytes of one frame as the line carried it (without its closing 0), CRC
    checked and removed; None if it is cut, malformed or its CRC fails."""
    try:
        data = cobs.decode(bytes(encoded))
    except cobs.DecodeError:
        return None
    if len(data) < 3 or crc(data) != 0:
        return None
    return data[:-2]


def restart_frame():
    """``R``: restart loading."""
    return frame([RESTART])


def check_frame(tag):
    """``C``: the status, its reply tagged `tag` (0..255)."""
    return frame([CHECK, tag])


def _frames(command, values, start, index_bytes, bits, size, what):
    out = bytearray()
    for offset, value in enumerate(values):
        if not isinstance(value, int) or not 0 <= value < 1 << bits:
            raise WireError(f"{what} {start + offset} is {value!r}, not a {bits}-bit "
                            f"unsigned integer")
        index = (start + offset) % (1 << 8 * index_bytes)
        out += frame(bytes([command]) + index.to_bytes(index_bytes, "little")
                     + value.to_bytes(size, "little"))
    return bytes(out)


def load_frames(words, wire, start=0):
    """An ``L`` frame for each of `words`, the first the plan's word `start`."""
    if start + len(words) > 1 << 8 * LOAD_INDEX_BYTES:
        raise WireError(f"{start + len(words)} load words: the shell counts "
                        f"{1 << 8 * LOAD_INDEX_BYTES} at most")
    return _frames(LOAD, words, start, LOAD_INDEX_BYTES, wire.load_bits, wire.load_bytes,
                   "load word")


def input_frames(beats, wire, start=0):
    """An ``I`` frame for each of `beats`, the first with index `start` (modulo
    2^16: the board's count of beats taken)."""
    return _frames(INPUT, beats, start, INPUT_INDEX_BYTES, wire.in_bits, wire.in_bytes,
                   "input beat")


def load_crc(words, wire):
    """The board's CRC once it has taken `words` (their data bytes)."""
    return crc(_data(words, wire.load_bytes))


def input_crc(beats, wire):
    """The board's input CRC once it has taken `beats` (their data bytes)."""
    return crc(_data(beats, wire.in_bytes))


def _data(values, size):
    return b"".join(value.to_bytes(size, "little") for value in values)


@dataclass(frozen=True)
class BoardStatus:
    """The board's status (`rtl.shell.STATUS`). Since the last ``R``: the CRC of the
    load words it took, how many, whether the core is loaded, the input beats taken
    and output beats sent (both modulo 2^16). Since the last ``R`` or status: bytes
    its receiver lost (bad stop bit; overrun), frames dropped (cut, malformed, CRC),
    skipped (out of order) and refused (a word beyond the plan, a beat before the
    weights), and the CRCs of the input beats taken and output beats sent."""

    crc: int
    words: int
    loaded: int
    framing_errors: int
    overruns: int
    in_crc: int
    out_crc: int
    dropped: int
    skipped: int
    refused: int
    inputs: int
    outputs: int

    @classmethod
    def from_bytes(cls, data):
        fields, at = {}, 0
        for name, size in STATUS:
            fields[name] = int.from_bytes(data[at:at + size], "little")
            at += size
        return cls(**fields)

    @property
    def faults(self):
        """What went wrong on the line in this status's window, as words (empty if
        nothing)."""
        return ", ".join(f"{getattr(self, name)} {text}" for name, text in (
            ("framing_errors", "bytes with a bad stop bit"), ("overruns", "bytes overrun"),
            ("dropped", "frames dropped"), ("skipped", "frames out of order"),
            ("refused", "frames refused")) if getattr(self, name))

    def check_load(self, words, crc):
        """Raise `WireError` unless this is the status of a board that took exactly
        `words` load words, whose CRC is `crc`, and is loaded by them."""
        if self.words < words and self.loaded:
            raise WireError(f"load check: the board's network was loaded after {self.words} "
                            f"of the {words} load words: it runs a bitstream of another "
                            f"plan (its build is not this one)")
        if self.words != words:
            raise WireError(f"load check: the board took {self.words} of the {words} load "
                            f"words")
        if self.crc != crc:
            raise WireError(f"load check: the board's CRC of the load words is "
                            f"{self.crc:#06x}, the host sent {crc:#06x}: the words changed "
                            f"on the way")
        if not self.loaded:
            raise WireError(f"load check: the board's network is not loaded after all "
                            f"{words} load words: it runs a bitstream of another plan "
                            f"(its build is not this one)")


@dataclass(frozen=True)
class Reply:
    """A frame from the board: an output beat (`kind` ``"output"``, `number` its
    sequence number, `value` the beat) or a status (``"status"``, `number` its tag,
    `value` a `BoardStatus`)."""

    kind: str
    number: int
    value: object


def parse_reply(data, wire):
    """A frame's bytes (`unframe`) -> `Reply`, or None if it is no reply of this wire
    format (a length or kind the shell does not send)."""
    sizes = wire.sizes
    if not data or len(data) != sizes.get(data[0], 0) - 2:
        return None
    if data[0] == OUTPUT:
        beat = int.from_bytes(data[1 + SEQUENCE_BYTES:], "little")
        if beat >> wire.out_bits:
            return None
        return Reply("output", int.from_bytes(data[1:1 + SEQUENCE_BYTES], "little"), beat)
    if data[0] == REPLY:
        status = BoardStatus.from_bytes(data[2:])
        return None if status.loaded > 1 else Reply("status", data[1], status)
    return None


class ShellModel:
    """The shell's receive side in Python: bytes from the host -> what the board does
    with them (`rtl.shell`), for a core of `plan_words` load words in `wire`'s
    format. `status()` is what the board's next status says, except the fields of
    its sending side (output count and CRC), which depend on the network. For each
    status request it takes, `checks` holds the tag and `statuses` the fields of the
    status the board sends."""

    def __init__(self, wire, plan_words):
        self.wire, self.plan_words = wire, plan_words
        self.encoded = bytearray()
        self.crc, self.words, self.inputs = CRC_INIT, 0, 0
        self.in_crc, self.dropped, self.skipped, self.refused = CRC_INIT, 0, 0, 0
        self.checks, self.statuses = [], []    # each status request's tag and status
        self.taken = []                         # the input beats the core took

    @property
    def loaded(self):
        return int(self.words == self.plan_words)

    def feed(self, data):
        for byte in bytes(data):
            if byte:
                self.encoded.append(byte)
            else:
                self._frame(self.encoded)
                self.encoded = bytearray()

    def _frame(self, encoded):
        if not encoded:
            return
        data, sizes = unframe(encoded), self.wire.sizes
        if data is None or data[0] not in (RESTART, CHECK, LOAD, INPUT) or (
                len(data) != sizes[data[0]] - 2):
            self.dropped = min(self.dropped + 1, 0xFFFF)
            return
        command = data[0]
        if command == RESTART:
            self.crc, self.words, self.inputs = CRC_INIT, 0, 0
            self.in_crc, self.dropped, self.skipped, self.refused = CRC_INIT, 0, 0, 0
        elif command == CHECK:
            self.checks.append(data[1])
            self.statuses.append(self._status())
        elif command == LOAD:
            index = int.from_bytes(data[1:1 + LOAD_INDEX_BYTES], "little")
            if index != self.words:
                self._count("skipped")
            elif self.loaded:
                self._count("refused")
            else:
                self.crc = binascii.crc_hqx(data[1 + LOAD_INDEX_BYTES:], self.crc)
                self.words += 1
        else:
            index = int.from_bytes(data[1:1 + INPUT_INDEX_BYTES], "little")
            if not self.loaded:
                self._count("refused")
            elif index != self.inputs:
                self._count("skipped")
            else:
                self.in_crc = binascii.crc_hqx(data[1 + INPUT_INDEX_BYTES:], self.in_crc)
                self.taken.append(int.from_bytes(data[1 + INPUT_INDEX_BYTES:], "little"))
                self.inputs = (self.inputs + 1) % (1 << 8 * INPUT_INDEX_BYTES)

    def _count(self, name):
        setattr(self, name, min(getattr(self, name) + 1, 0xFFFF))

    def _status(self):
        """The receive side's fields of the status (a dict), whose window then
        restarts."""
        fields = {"crc": self.crc, "words": self.words, "loaded": self.loaded,
                  "in_crc": self.in_crc, "dropped": self.dropped, "skipped": self.skipped,
                  "refused": self.refused, "inputs": self.inputs}
        self.in_crc, self.dropped, self.skipped, self.refused = CRC_INIT, 0, 0, 0
        return fields

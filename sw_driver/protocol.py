"""The serial shell's wire protocol (`bitfab.rtl.shell`), host side.

Host to board, integers little-endian: ``'R'`` restarts loading, ``'L'`` and
`WireFormat.load_bytes` bytes write one load word, ``'I'`` and `in_bytes` bytes
send one input beat, ``'C'`` asks for the board's status. Board to host: every
output beat as `out_bytes` bytes, low byte first, and the status as
`STATUS_BYTES` bytes. The line has no flow control or parity and the board
ignores unknown command bytes, so the host checks every frame before it sends
it (`encode_load`, `encode_inputs`), every reply by its length
(`decode_outputs`), and every load and every run by the board's status
(`BoardStatus.check_load`, `check_run`: what it took, lost and sent, with
CRCs of the bytes both ways); `Host` keeps few enough items in flight that the
board never drops a byte.
"""

import binascii
from dataclasses import dataclass

from bitfab.rtl.shell import CHECK, CRC_INIT, INPUT, LOAD, RESTART, STATUS, STATUS_BYTES

__all__ = ["WireError", "WireFormat", "BoardStatus", "encode_load", "encode_inputs",
           "decode_outputs", "decode_status", "crc", "load_crc", "input_crc", "CHECK",
           "STATUS_BYTES"]


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
        """The wire format of a `SerialShell` around a `Network` of `configs`."""
        return cls.of_widths(configs[0].word_bits, configs[0].in_layout.size,
                             configs[-1].out_layout.size)


    def item_bytes(self, in_beats, out_beats):
        """Bytes on the line, both ways, for an item of `in_beats` input beats and
        `out_beats` output beats (each input beat behind its command byte)."""
        return in_beats * (1 + self.in_bytes) + out_beats * self.out_bytes


def _frames(command, values, bits, size, what):
    out = bytearray()
    for index, value in enumerate(values):
        if not isinstance(value, int) or not 0 <= value < 1 << bits:
            raise WireError(f"{what} {index} is {value!r}, not a {bits}-bit unsigned integer")
        out += bytes([command]) + value.to_bytes(size, "little")
    return bytes(out)


def encode_load(words, wire):
    """Restart loading, then one ``'L'`` frame per word."""
    return bytes([RESTART]) + _frames(LOAD, words, wire.load_bits, wire.load_bytes,
                                      "load word")


def crc(data):
    """CRC-16/CCITT-FALSE of `data`, as the board computes it: ``binascii.crc_hqx``
    from 0xFFFF."""
    return binascii.crc_hqx(bytes(data), CRC_INIT)


def load_crc(words, wire):
    """The CRC the board computes over `words`' load frames (their data bytes, as
    sent)."""
    return crc(_data(words, wire.load_bytes))


def input_crc(items, wire):
    """The CRC the board computes over the input frames of `items` (each a list of
    input beats; their data bytes, as sent)."""
    return crc(_data([beat for beats in items for beat in beats], wire.in_bytes))


def _data(values, size):
    return b"".join(value.to_bytes(size, "little") for value in values)


@dataclass(frozen=True)
class BoardStatus:
    """The board's answer to ``'C'`` (`rtl.shell.STATUS`). Since the last ``'R'``: the
    CRC of the load frames it received, the load words its core took, whether the
    core is loaded. Since the last ``'R'`` or status: bytes its receiver lost (bad
    stop bit; overrun), the CRC of the input frames it received and of the output
    bytes it sent."""

    crc: int
    words: int
    loaded: int
    framing_errors: int
    overruns: int
    in_crc: int
    out_crc: int

    def check_load(self, words, crc):
        """Raise `WireError` unless this is the status of a clean load of `words` words
        whose CRC is `crc`."""
        self._check_line("load check", "load again")
        if self.words < words and self.loaded:
            raise WireError(f"load check: the board's network was loaded after {self.words} "
                            f"of the {words} load words: it runs a bitstream of another "
                            f"plan (its build is not this one)")
        if self.words != words:
            raise WireError(f"load check: the board took {self.words} of the {words} load "
                            f"words: bytes were lost on the line; load again")
        if self.crc != crc:
            raise WireError(f"load check: the board's CRC of the load words is "
                            f"{self.crc:#06x}, the host sent {crc:#06x}: bytes changed on "
                            f"the line; load again")
        if not self.loaded:
            raise WireError(f"load check: the board's network is not loaded after all "
                            f"{words} load words: it runs a bitstream of another plan "
                            f"(its build is not this one)")

    def check_run(self, in_crc, out_crc):
        """Raise `WireError` unless the inputs since the last status reached the board
        with CRC `in_crc` and the outputs the host read have the CRC, `out_crc`, of
        those the board sent."""
        self._check_line("run check", "run again")
        if self.in_crc != in_crc:
            raise WireError(f"run check: the board's CRC of the input beats is "
                            f"{self.in_crc:#06x}, the host sent {in_crc:#06x}: bytes changed "
                            f"on the way to the board; run again")
        if self.out_crc != out_crc:
            raise WireError(f"run check: the board's CRC of the outputs it sent is "
                            f"{self.out_crc:#06x}, the host read {out_crc:#06x}: bytes "
                            f"changed on the way back; run again")

    def _check_line(self, what, again):
        lost = []
        if self.framing_errors:
            lost.append(f"{self.framing_errors} bytes with a bad stop bit (a wrong baud "
                        f"or a noisy line)")
        if self.overruns:
            lost.append(f"{self.overruns} bytes overrun (sent faster than taken)")
        if lost:
            raise WireError(f"{what}: the board's receiver lost {' and '.join(lost)}; {again}")


def encode_inputs(beats, wire):
    """One ``'I'`` frame per input beat."""
    return _frames(INPUT, beats, wire.in_bits, wire.in_bytes, "input beat")


def decode_status(data):
    """The board's `STATUS_BYTES` bytes after ``'C'`` -> `BoardStatus`."""
    if len(data) != STATUS_BYTES:
        raise WireError(f"the board's status is {STATUS_BYTES} bytes, {len(data)} came")
    fields, at = {}, 0
    for name, size in STATUS:
        fields[name] = int.from_bytes(data[at:at + size], "little")
        at += size
    if fields["loaded"] > 1:
        raise WireError(f"the board's status's loaded byte is {fields['loaded']}, not 0 or 1: "
                        f"the line is out of step")
    return BoardStatus(**fields)


def decode_outputs(data, wire):
    """The board's bytes -> output beats; they must be whole beats."""
    if len(data) % wire.out_bytes:
        raise WireError(f"{len(data)} bytes from the board are not whole output beats of "
                        f"{wire.out_bytes} bytes")
    beats = [int.from_bytes(data[k:k + wire.out_bytes], "little")
             for k in range(0, len(data), wire.out_bytes)]
    for index, beat in enumerate(beats):
        if beat >> wire.out_bits:
            raise WireError(f"output beat {index} is {beat:#x}, wider than the plan's "
                            f"{wire.out_bits} bits: the line is out of step")
    return beats

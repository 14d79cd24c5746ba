"""The serial shell's wire protocol (`bitfab.rtl.shell`), host side.

Host to board, integers little-endian: ``'R'`` restarts loading, ``'L'`` and
`WireFormat.load_bytes` bytes write one load word, ``'I'`` and `in_bytes` bytes
send one input beat. Board to host: every output beat as `out_bytes` bytes, low
byte first. The line has no flow control and the board ignores unknown command
bytes, so the host checks every frame before it sends it (`encode_load`,
`encode_inputs`) and every reply by its length (`decode_outputs`); `Host` keeps
few enough items in flight that the board never drops a byte.
"""

from dataclasses import dataclass

from bitfab.rtl.shell import INPUT, LOAD, RESTART

__all__ = ["WireError", "WireFormat", "encode_load", "encode_inputs", "decode_outputs"]


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


def encode_inputs(beats, wire):
    """One ``'I'`` frame per input beat."""
    return _frames(INPUT, beats, wire.in_bits, wire.in_bytes, "input beat")


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

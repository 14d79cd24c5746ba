"""Test harness: `lanes` copies of a stream unit side by side, so one bench beat carries
many vectors (100k vectors are a few thousand beats of a cocotb bench)."""

from amaranth.hdl import Module, Shape
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Lanes", "pack_lanes"]


class Lanes(wiring.Component):
    """`lanes` instances of `make()` sharing one valid/ready handshake.

    Every copy is the same pipeline driven by the same valid and ready, so they
    move in lock step; lane k's operands are element k of ``i.payload`` and its
    result element k of ``o.payload``. Latency and throughput are the unit's.
    """

    def __init__(self, make, lanes):
        if not isinstance(lanes, int) or lanes < 1:
            raise ValueError(f"lanes must be a positive integer, not {lanes!r}")
        self.units = [make() for _ in range(lanes)]
        unit = self.units[0]
        in_shape, out_shape = unit.i.payload.shape(), unit.o.payload.shape()
        self.in_bits, self.out_bits = Shape.cast(in_shape).width, Shape.cast(out_shape).width
        super().__init__({
            "i": In(stream.Signature(data.ArrayLayout(in_shape, lanes))),
            "o": Out(stream.Signature(data.ArrayLayout(out_shape, lanes))),
        })

    def elaborate(self, platform):
        m = Module()
        for k, unit in enumerate(self.units):
            m.submodules[f"lane{k}"] = unit
            m.d.comb += [unit.i.valid.eq(self.i.valid), unit.i.payload.eq(self.i.payload[k]),
                         unit.o.ready.eq(self.o.ready), self.o.payload[k].eq(unit.o.payload)]
        m.d.comb += [self.i.ready.eq(self.units[0].i.ready), self.o.valid.eq(self.units[0].o.valid)]
        return m


def pack_lanes(values, bits, lanes):
    """Group `values` (ints of `bits` bits) into beats of `lanes`, padding the last with
    copies of the first value."""
    beats = []
    for start in range(0, len(values), lanes):
        chunk = list(values[start:start + lanes])
        chunk += [values[0]] * (lanes - len(chunk))
        beats.append(sum(v << (k * bits) for k, v in enumerate(chunk)))
    return beats

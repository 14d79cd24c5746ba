"""Test harnesses: the diminished-1 units side by side on the same operands, so one
Verilator build checks them all (builds, not vectors, dominate a bench's time).

Every unit in a bundle has the same number of pipeline stages and the same
valid/ready, so they move in lock step like `bitfab.sim.lanes.Lanes`.
"""

from amaranth.hdl import Module, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from bitfab.rtl.dim1 import (Dim1Adder, Dim1FromInt, Dim1Multiplier, Dim1Negator, Dim1Shifter,
                             Dim1Subtractor, Dim1ToInt, code_shape, prefix_levels)

__all__ = ["Dim1Bundle", "TWO_OPERAND", "ONE_OPERAND"]

TWO_OPERAND = ("add", "add_carry", "sub", "mul", "shift")
ONE_OPERAND = ("neg", "to_int", "from_int")


class Dim1Bundle(wiring.Component):
    """The two-operand units (add and add_carry, the adder's two styles; sub, mul, shift;
    `stages` = ceil(log2 b), every unit's prefix levels) or the one-operand ones (neg, to_int, from_int; one stage).

    ``i.payload``: x, y (codes) and k (shift) / x (code) and v (signed b-bit integer).
    ``o.payload``: one member per unit, named after it.
    """

    def __init__(self, b, two_operand=True):
        shape = code_shape(b)
        self.b, self.two_operand = b, two_operand
        if two_operand:
            self.stages = prefix_levels(b)
            self.units = {"add": Dim1Adder(b, self.stages),
                          "add_carry": Dim1Adder(b, self.stages, style="carry"),
                          "sub": Dim1Subtractor(b, self.stages),
                          "mul": Dim1Multiplier(b, self.stages),
                          "shift": Dim1Shifter(b, self.stages)}
            inputs = {"x": shape, "y": shape, "k": unsigned((2 * b - 1).bit_length())}
        else:
            self.stages = 1
            self.units = {"neg": Dim1Negator(b, 1), "to_int": Dim1ToInt(b, stages=1),
                          "from_int": Dim1FromInt(b, b, stages=1)}
            inputs = {"x": shape, "v": signed(b)}
        outputs = {name: unit.o.payload.shape() for name, unit in self.units.items()}
        super().__init__({"i": In(stream.Signature(data.StructLayout(inputs))),
                          "o": Out(stream.Signature(data.StructLayout(outputs)))})

    def elaborate(self, platform):
        m = Module()
        payload = self.i.payload
        for name, unit in self.units.items():
            m.submodules[name] = unit
            if name in ("add", "add_carry", "sub", "mul"):
                m.d.comb += [unit.i.payload.x.eq(payload.x), unit.i.payload.y.eq(payload.y)]
            elif name == "shift":
                m.d.comb += [unit.i.payload.x.eq(payload.x), unit.i.payload.k.eq(payload.k)]
            elif name == "from_int":
                m.d.comb += unit.i.payload.eq(payload.v)
            else:
                m.d.comb += unit.i.payload.eq(payload.x)
            m.d.comb += [unit.i.valid.eq(self.i.valid), unit.o.ready.eq(self.o.ready),
                         getattr(self.o.payload, name).eq(unit.o.payload)]
        first = next(iter(self.units.values()))
        m.d.comb += [self.i.ready.eq(first.i.ready), self.o.valid.eq(first.o.valid)]
        return m

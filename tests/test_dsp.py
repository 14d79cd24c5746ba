"""`bitfab.rtl.dsp`: which products go to a MULT18X18D on ECP5, and the three-register
schedule of the logic model that simulation runs (the PE benches check it in use)."""

from amaranth.back import rtlil
from amaranth.hdl import Module, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from bitfab.rtl.dsp import LATENCY, fits_dsp, registered_product


class ECP5:
    family = "ecp5"


class Product(wiring.Component):
    def __init__(self, a_shape, b_shape):
        super().__init__({"a": In(a_shape), "b": In(b_shape), "enable": In(1),
                          "p": Out(signed(48))})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.p.eq(registered_product(m, platform, self.a, self.b, self.enable,
                                                 "product"))
        return m


def test_operands_that_fit_a_dsp():
    assert fits_dsp(signed(16), unsigned(7)) and fits_dsp(signed(18), unsigned(17))
    assert not fits_dsp(signed(19), unsigned(7))
    assert not fits_dsp(signed(16), unsigned(18))    # needs a sign bit: 19 signed bits


def test_ecp5_gets_the_dsp_block_only_when_the_operands_fit():
    text = rtlil.convert(Product(signed(16), unsigned(7)), platform=ECP5())
    assert text.count("\\MULT18X18D") == 1
    for register in ("INPUTA", "INPUTB", "PIPELINE", "OUTPUT"):
        assert f'parameter \\REG_{register}_CLK "CLK0"' in text
    assert "\\MULT18X18D" not in rtlil.convert(Product(signed(20), unsigned(7)), platform=ECP5())
    assert "\\MULT18X18D" not in rtlil.convert(Product(signed(16), unsigned(7)))


def test_model_takes_three_enabled_cycles():
    dut = Product(signed(16), unsigned(7))
    seen = []

    async def bench(ctx):
        operands = [(-32768, 127), (32767, 64), (-5, 0), (1234, 99)]
        for a, b in operands:
            ctx.set(dut.a, a)
            ctx.set(dut.b, b)
            ctx.set(dut.enable, 1)
            await ctx.tick()
            seen.append(ctx.get(dut.p))
        ctx.set(dut.enable, 0)          # a stall holds every register
        for _ in range(3):
            await ctx.tick()
            seen.append(ctx.get(dut.p))
        ctx.set(dut.enable, 1)
        for _ in range(LATENCY):
            await ctx.tick()
            seen.append(ctx.get(dut.p))
        want = [a * b for a, b in operands]
        assert seen[LATENCY - 1:4] == want[:4 - LATENCY + 1]
        assert seen[4:7] == [want[4 - LATENCY]] * 3
        assert seen[7:] == want[4 - LATENCY + 1:] + [want[-1]] * (LATENCY - 2)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()

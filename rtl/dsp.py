"""Registered multipliers: the ECP5 MULT18X18D with its own registers, modelled in logic
everywhere else.

A product computed in a DSP block and registered in the fabric costs a route
into the block, the multiplier and a route back in one cycle; with the DSPs
spread over the die (120 of the ECP5-85's 156 for the PA MLP) that path alone
does not fit 10 ns. The MULT18X18D has registers of its own on its inputs, after
the multiplier (pipeline) and on its output: with all three, every path that
leaves or enters the block starts or ends at a register inside it, and nextpnr
times those (its ``MULT18X18D_REGS_ALL`` class) instead of one combinational arc.

`registered_product` instantiates the block on an ECP5 platform and otherwise
(simulation, the Verilog cocotb runs, iCE40) builds the same three registers
around a ``*`` in logic: the cycle behaviour is identical, so the testbenches
check the schedule the board runs.
"""

from amaranth.hdl import ClockSignal, Const, Instance, Signal, signed

from .families import family_of

__all__ = ["LATENCY", "OPERAND_BITS", "fits_dsp", "registered_product"]

LATENCY = 3         # input, pipeline and output registers
OPERAND_BITS = 18   # the MULT18X18D's signed operands


def fits_dsp(a_shape, b_shape):
    """Both operands fit a signed 18-bit DSP operand (an unsigned one needs a spare bit)."""
    return all(s.width + (not s.signed) <= OPERAND_BITS for s in (a_shape, b_shape))


def registered_product(m, platform, a, b, enable, name):
    """``a * b``, `LATENCY` cycles of `enable` later: each register loads while `enable` is
    high. `a` and `b` are signed or unsigned values; the product is signed, wide enough
    for any operands. On ECP5, when `fits_dsp`, one MULT18X18D with its input,
    pipeline and output registers on clock enable CE0; otherwise the same registers
    in logic.
    """
    a_shape, b_shape = a.shape(), b.shape()
    width = a_shape.width + b_shape.width + (not a_shape.signed and not b_shape.signed)
    product = Signal(signed(width), name=name)
    family = family_of(platform)
    if family is not None and family.dsp_products and fits_dsp(a_shape, b_shape):
        p = Signal(2 * OPERAND_BITS, name=f"{name}_p")
        ports = {}
        for letter, value in (("A", a), ("B", b)):
            wide = value.as_signed() if value.shape().signed else value.as_unsigned()
            bits = Signal(signed(OPERAND_BITS), name=f"{name}_{letter.lower()}")
            m.d.comb += bits.eq(wide)
            ports.update({f"i_{letter}{k}": bits[k] for k in range(OPERAND_BITS)})
        ports.update({f"i_C{k}": Const(0, 1) for k in range(OPERAND_BITS)})
        ports.update({f"o_P{k}": p[k] for k in range(2 * OPERAND_BITS)})
        m.submodules[name] = Instance(
            "MULT18X18D",
            p_REG_INPUTA_CLK="CLK0", p_REG_INPUTA_CE="CE0", p_REG_INPUTA_RST="RST0",
            p_REG_INPUTB_CLK="CLK0", p_REG_INPUTB_CE="CE0", p_REG_INPUTB_RST="RST0",
            p_REG_INPUTC_CLK="NONE",
            p_REG_PIPELINE_CLK="CLK0", p_REG_PIPELINE_CE="CE0", p_REG_PIPELINE_RST="RST0",
            p_REG_OUTPUT_CLK="CLK0", p_REG_OUTPUT_CE="CE0", p_REG_OUTPUT_RST="RST0",
            p_CLK0_DIV="ENABLED", p_CLK1_DIV="ENABLED", p_CLK2_DIV="ENABLED",
            p_CLK3_DIV="ENABLED", p_HIGHSPEED_CLK="NONE", p_GSR="DISABLED",
            p_CAS_MATCH_REG="FALSE", p_SOURCEB_MODE="B_SHIFT", p_MULT_BYPASS="DISABLED",
            p_RESETMODE="SYNC",
            i_SIGNEDA=Const(1, 1), i_SIGNEDB=Const(1, 1), i_SOURCEA=Const(0, 1),
            i_SOURCEB=Const(0, 1),
            i_CLK0=ClockSignal("sync"), i_CE0=enable, i_RST0=Const(0, 1),
            **ports)
        m.d.comb += product.eq(p.as_signed())
        return product
    held = [Signal(v.shape(), name=f"{name}_{letter}") for letter, v in (("a", a), ("b", b))]
    pipeline = Signal(signed(width), name=f"{name}_pipe")
    with m.If(enable):
        m.d.sync += [held[0].eq(a), held[1].eq(b), pipeline.eq(held[0] * held[1]),
                     product.eq(pipeline)]
    return product

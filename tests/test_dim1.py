"""Diminished-1 units: parameter checks, Amaranth simulation against the golden model,
and SymbiYosys proofs that they equal modular arithmetic for every input."""

import itertools
import random

import pytest
from amaranth.sim import Simulator

from bitfab.hls_gen.golden.dim1 import Dim1
from bitfab.rtl.dim1 import (Dim1Adder, Dim1ConstShifter, Dim1FromInt, Dim1Multiplier,
                             Dim1Negator, Dim1Shifter, Dim1Subtractor, Dim1ToInt,
                             Dim1VectorMultiplier)
from bitfab.sim.formal import prove

SEED = 20261123


@pytest.mark.parametrize("make,error,message", [
    (lambda: Dim1Adder(12), ValueError, "must be 2\\^t for t = 2..6 .*not 12"),
    (lambda: Dim1Adder(8.0), TypeError, "must be an integer, not 8.0"),
    (lambda: Dim1Adder(8, stages=4), ValueError, "Dim1Adder stages must be in 0..3, not 4"),
    (lambda: Dim1Multiplier(16, stages=-1), ValueError, "stages must be in 0..6, not -1"),
    (lambda: Dim1FromInt(8, 9), ValueError, "integer width must be in 1..8 for b=8, not 9"),
    (lambda: Dim1ConstShifter(8, 1.5), TypeError, "shift k must be an integer"),
    (lambda: Dim1Adder(8, style="ripple"), ValueError, "style must be one of prefix, carry, "
     "not 'ripple'"),
    (lambda: Dim1Adder(8, stages=4, style="carry"), ValueError, "stages must be in 0..3, not 4"),
    (lambda: Dim1VectorMultiplier(8, 0), ValueError, "vector length must be a positive integer"),
    (lambda: Dim1VectorMultiplier(8, 2, adder="ripple"), ValueError,
     "style must be one of prefix, carry, not 'ripple'"),
])
def test_parameters_checked(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_latency_is_stages():
    assert Dim1Multiplier(32, stages=7).latency == 7 == Dim1Multiplier(32).max_stages
    assert Dim1Adder(64).max_stages == 6 and Dim1Shifter(16).max_stages == 5


def _combinational(unit, drive, vectors):
    """Outputs of a stages=0 unit for each vector, from Amaranth's simulator."""
    got = []

    async def bench(ctx):
        ctx.set(unit.i.valid, 1)
        ctx.set(unit.o.ready, 1)
        for vector in vectors:
            drive(ctx, unit, vector)
            lanes = isinstance(unit, Dim1VectorMultiplier)
            got.append(ctx.get(unit.o.payload.z[0] if lanes else unit.o.payload))

    sim = Simulator(unit)
    sim.add_testbench(bench)
    sim.run()
    return got


def _two(ctx, unit, vector):
    ctx.set(unit.i.payload.x, vector[0])
    ctx.set(unit.i.payload.y, vector[1])


def _shift(ctx, unit, vector):
    ctx.set(unit.i.payload.x, vector[0])
    ctx.set(unit.i.payload.k, vector[1])


def _one(ctx, unit, vector):
    ctx.set(unit.i.payload, vector)


def _lanes(ctx, unit, vector):
    """A one-lane vector multiplier's operands; its result is read back as the lane's z."""
    ctx.set(unit.i.payload.x[0], vector[0])
    ctx.set(unit.i.payload.y[0], vector[1])


def _cases(b):
    """(unit, driver, vectors, golden function) for every unit at width b."""
    golden = Dim1(b)
    codes = range(golden.zero + 1)
    if b <= 4:
        pairs = list(itertools.product(codes, codes))
    else:
        rng = random.Random(SEED)
        pairs = [(rng.choice(codes), rng.choice(codes)) for _ in range(100)]
    shifts = [(x, k) for x in codes for k in range(2 * b)] if b <= 4 else \
        [(x, k % (2 * b)) for k, (x, _) in enumerate(pairs)]
    ints = range(-(1 << b - 1), 1 << b - 1)
    if b > 4:
        ints = [x % (1 << b) - (1 << b - 1) for x, _ in pairs]
    return [
        (Dim1Adder(b), _two, pairs, lambda v: golden.add(*v)),
        (Dim1Adder(b, style="carry"), _two, pairs, lambda v: golden.add(*v)),
        (Dim1Subtractor(b, style="carry"), _two, pairs, lambda v: golden.sub(*v)),
        (Dim1Subtractor(b), _two, pairs, lambda v: golden.sub(*v)),
        (Dim1Multiplier(b), _two, pairs, lambda v: golden.mul(*v)),
        (Dim1VectorMultiplier(b, 1), _lanes, pairs, lambda v: golden.mul(*v)),
        (Dim1VectorMultiplier(b, 1, adder="carry"), _lanes, pairs, lambda v: golden.mul(*v)),
        (Dim1Shifter(b), _shift, shifts, lambda v: golden.mul_pow2(*v)),
        (Dim1Negator(b), _one, codes, golden.neg),
        (Dim1ConstShifter(b, -3), _one, codes, lambda v: golden.mul_pow2(v, -3)),
        (Dim1ToInt(b), _one, codes, golden.decode_signed),
        (Dim1ToInt(b, signed_output=False), _one, codes, golden.decode),
        (Dim1FromInt(b, b), _one, ints, golden.encode),
        # Narrower inputs are sign-extended to b bits first.
        (Dim1FromInt(b, 3), _one, range(-4, 4), golden.encode),
        (Dim1FromInt(b, 3, signed_input=False), _one, range(8), golden.encode),
    ]


@pytest.mark.parametrize("b", [4, 8])
def test_units_match_golden_in_amaranth_sim(b):
    """Every unit, combinational: exhaustive at b = 4, 100 seeded vectors at b = 8."""
    for unit, drive, vectors, golden in _cases(b):
        got = _combinational(unit, drive, vectors)
        want = [golden(v) for v in vectors]
        bad = [(v, g, w) for v, g, w in zip(vectors, got, want) if g != w]
        assert not bad, (f"{type(unit).__name__} b={b}: first mismatch at {vectors.index(bad[0][0])}"
                         f" {bad[0][0]}: rtl {bad[0][1]}, golden {bad[0][2]} (seed {SEED})")


PROOFS = ["add", "add_carry", "sub", "neg", "shift", "mul_parts", "from_int", "to_int"]


# The b = 16 variable shift takes over two minutes: it runs with the slow suite.
PROOF_CASES = [pytest.param(name, b, marks=pytest.mark.slow) if (name, b) == ("shift", 16)
               else (name, b) for b in (8, 16) for name in PROOFS]


@pytest.mark.formal
@pytest.mark.parametrize("name,b", PROOF_CASES)
def test_proof(tmp_path, name, b):
    passed, seconds, log = prove(name, b, tmp_path)
    assert passed, f"{name} at b={b} not proved in {seconds:.0f} s:\n{log}"


@pytest.mark.formal
@pytest.mark.parametrize("name,b", [("add", 16), ("shift", 8), ("mul_parts", 16)])
def test_proof_fails_on_a_wrong_property(tmp_path, name, b):
    """One wrong output for one input must be found: the proofs can fail."""
    passed, _, log = prove(name, b, tmp_path, wrong=True)
    assert not passed and "FAIL" in log


@pytest.mark.formal
@pytest.mark.slow
def test_multiplier_proof_without_decomposition(tmp_path):
    """The whole multiplier against (x * y) mod 257 in one proof (about 80 s)."""
    passed, seconds, log = prove("mul", 8, tmp_path)
    assert passed, log


def test_vector_multiplier_splits_wide_products():
    """b = 32 splits each product into four 16 x 16 partial products: 3000 seeded operand
    pairs (and the special codes) in Amaranth's simulator, both adder styles."""
    import random
    golden = Dim1(32)
    rng = random.Random(SEED)
    special = [0, 1, golden.zero - 1, golden.zero, (1 << 31) - 1]
    pairs = [(rng.randrange(golden.zero + 1), rng.randrange(golden.zero + 1))
             for _ in range(3000)] + [(a, b) for a in special for b in special]
    for adder in Dim1Adder.STYLES:
        got = _combinational(Dim1VectorMultiplier(32, 1, adder=adder), _lanes, pairs)
        want = [golden.mul(*v) for v in pairs]
        bad = next((k for k, (g, w) in enumerate(zip(got, want)) if g != w), None)
        assert bad is None, f"{adder}: pair {bad} {pairs[bad]}: rtl {got[bad]}, golden {want[bad]}"

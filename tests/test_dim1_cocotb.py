"""The diminished-1 units, pipelined, in cocotb against the golden model, with random
input stalls and output backpressure: every two-operand unit exhaustively for b <= 8
(all (x, y) code pairs, every shift k for every x), 100k seeded random vectors for
b = 16 and 32, and at b = 64 (t = 6, the widest the blocks take) against the golden
model on Python integers, which int64 tensors cannot hold. The units of one width share a build (`Dim1Bundle`), and copies run side by side
(`Lanes`: sixteen up to b = 16, four above), so one beat carries that many vectors."""

import itertools
import random

import pytest
import torch
from amaranth.hdl import Shape

from bitfab.hls_gen.golden.dim1 import Dim1
from bitfab.sim.dim1_bundle import ONE_OPERAND, TWO_OPERAND, Dim1Bundle
from bitfab.sim.lanes import Lanes, pack_lanes
from bitfab.sim.runner import default_simulator, run_vectors

SEED = 20261123
SIM = default_simulator()
# Lanes side by side: sixteen up to b = 16; at 32 and 64 bits the units' logic (the
# products in DSP models) is what a build spends its time on, and four lanes still
# carry 100k vectors in 25k beats.
def lanes_for(b):
    return 16 if b <= 16 else 4
RANDOM_VECTORS = 100_000
WIDE_VECTORS = 20_000


def _pack(values, widths):
    """Fields (low first) of each vector into one integer."""
    packed = []
    for fields in values:
        word, shift = 0, 0
        for value, width in zip(fields, widths):
            word |= (value % (1 << width)) << shift
            shift += width
        packed.append(word)
    return packed


def _run(tmp_path_factory, b, two_operand, vectors, outputs):
    count = lanes_for(b)
    lanes = Lanes(lambda: Dim1Bundle(b, two_operand), count)
    bundle = lanes.units[0]
    in_widths, out_widths = _widths(bundle.i.payload.shape()), _widths(bundle.o.payload.shape())
    names = TWO_OPERAND if two_operand else ONE_OPERAND
    case = {"inputs": pack_lanes(_pack(vectors, in_widths), lanes.in_bits, count),
            "outputs": pack_lanes(_pack(outputs, out_widths), lanes.out_bits, count),
            "fields": list(zip(names, out_widths, strict=True)), "lanes": count}
    run_vectors(lanes, f"dim1_bundle{'2' if two_operand else '1'}", case,
                tmp_path_factory.getbasetemp() / "sim", SEED, SIM,
                key=[b, two_operand, len(vectors)])


def _widths(layout):
    """Bit widths of a StructLayout's members, in order (the first sits lowest)."""
    return [Shape.cast(field.shape).width for _, field in layout]


def _codes(b, count, salt):
    rng = random.Random(SEED + salt)
    zero = 1 << b
    specials = [0, 1, zero - 2, zero - 1, zero]
    return specials + [rng.randrange(zero + 1) for _ in range(count - len(specials))]


@pytest.mark.sim
@pytest.mark.parametrize("b", [4, 8, 16, 32])
def test_two_operand_units(tmp_path_factory, b):
    golden = Dim1(b)
    if b <= 8:
        pairs = list(itertools.product(range(golden.zero + 1), repeat=2))
    else:
        xs, ys = _codes(b, RANDOM_VECTORS, 1), _codes(b, RANDOM_VECTORS, 2)
        pairs = list(zip(xs, ys[2:] + ys[:2])) + list(itertools.product(xs[:5], ys[:5]))
    # k runs through 0..2b-1 with y, so every (x, k) pair appears when y does.
    vectors = [(x, y, y % (2 * b)) for x, y in pairs]
    x, y, k = (torch.tensor(column) for column in zip(*vectors))
    total = golden.add(x, y)  # both adder styles
    outputs = list(zip(*(t.tolist() for t in (total, total, golden.sub(x, y), golden.mul(x, y),
                                               golden.mul_pow2(x, k)))))
    assert len(TWO_OPERAND) == len(outputs[0])
    _run(tmp_path_factory, b, True, vectors, outputs)


@pytest.mark.sim
@pytest.mark.parametrize("b", [8, 32])
def test_one_operand_units(tmp_path_factory, b):
    golden = Dim1(b)
    if b <= 8:
        codes = list(range(golden.zero + 1))
        values = list(range(-(1 << b - 1), 1 << b - 1))
        values += values[:len(codes) - len(values)]
    else:
        codes = _codes(b, RANDOM_VECTORS, 3)
        rng = random.Random(SEED)
        values = [rng.randrange(-(1 << b - 1), 1 << b - 1) for _ in codes]
    outputs = [(golden.neg(c), golden.decode_signed(c), golden.encode(v))
               for c, v in zip(codes, values)]
    assert len(ONE_OPERAND) == len(outputs[0])
    _run(tmp_path_factory, b, False, list(zip(codes, values)), outputs)


@pytest.mark.sim
def test_units_at_b_64(tmp_path_factory):
    b = 64
    golden = Dim1(b)
    xs, ys = _codes(b, WIDE_VECTORS, 4), _codes(b, WIDE_VECTORS, 5)
    pairs = list(zip(xs, ys[2:] + ys[:2])) + list(itertools.product(xs[:5], ys[:5]))
    vectors = [(x, y, y % (2 * b)) for x, y in pairs]
    outputs = [(golden.add(x, y), golden.add(x, y), golden.sub(x, y), golden.mul(x, y),
                golden.mul_pow2(x, k)) for x, y, k in vectors]
    _run(tmp_path_factory, b, True, vectors, outputs)
    rng = random.Random(SEED + 6)
    values = [rng.randrange(-(1 << b - 1), 1 << b - 1) for _ in xs]
    values[:2] = [-(1 << b - 1), (1 << b - 1) - 1]
    outputs = [(golden.neg(c), golden.decode_signed(c), golden.encode(v))
               for c, v in zip(xs, values)]
    _run(tmp_path_factory, b, False, list(zip(xs, values)), outputs)

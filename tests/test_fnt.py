"""The FNT butterfly and the pipelined transform in cocotb against the golden FNT, with
random stalls and backpressure; and their parameter checks."""

import random

import pytest
import torch

from bitfab.hls_gen.golden.dfnt import fnt
from bitfab.hls_gen.golden.dim1 import Dim1
from bitfab.rtl.fnt import FNT, FNTButterfly
from bitfab.sim.lanes import Lanes, pack_lanes
from bitfab.sim.runner import default_simulator, run_vectors

SEED = 20261123
SIM = default_simulator()


def test_parameters_checked():
    with pytest.raises(ValueError, match="power of two dividing 16 for b=8 .*not 32"):
        FNT(8, 32)
    with pytest.raises(ValueError, match="power of two dividing 16 for b=8 .*not 12"):
        FNT(8, 12)
    with pytest.raises(ValueError, match="FNT stages must be in 0..3, not 4"):
        FNT(8, 8, stages=4)
    with pytest.raises(ValueError, match="FNT adder must be one of prefix, carry, not 'ks'"):
        FNT(8, 8, adder="ks")
    with pytest.raises(TypeError, match="twiddle shift must be an integer"):
        FNTButterfly(8, 0.5)
    assert FNT(16, 32, stages=5).latency == 5


def _codes(dim1, rng, count):
    return [rng.choice([0, dim1.mask, dim1.zero, rng.randrange(dim1.zero)]) for _ in range(count)]


@pytest.mark.sim
@pytest.mark.parametrize("b,length,inverse,stages,adder", [(8, 16, False, 4, "prefix"),
                                                           (16, 8, True, 1, "carry")])
def test_fnt_cocotb(tmp_path_factory, b, length, inverse, stages, adder):
    dim1 = Dim1(b)
    rng = random.Random(SEED)
    vectors = [_codes(dim1, rng, length) for _ in range(2000)]
    want = fnt(torch.tensor(vectors), dim1, inverse=inverse).tolist()
    case = {"inputs": pack_lanes([v for vector in vectors for v in vector], b + 1, length),
            "outputs": pack_lanes([v for vector in want for v in vector], b + 1, length)}
    run_vectors(FNT(b, length, inverse, stages, adder), "fnt", case,
                tmp_path_factory.getbasetemp() / "sim", SEED, SIM,
                key=[b, length, inverse, stages, adder])


@pytest.mark.sim
def test_butterfly_cocotb(tmp_path_factory):
    b, shift, lanes = 16, 5, 16
    dim1 = Dim1(b)
    rng = random.Random(SEED)
    pairs = [(u, v) for u, v in zip(_codes(dim1, rng, 5_000), _codes(dim1, rng, 5_000))]
    outputs = []
    for u, v in pairs:
        t = dim1.mul_pow2(v, shift)
        outputs.append(dim1.add(u, t) | dim1.sub(u, t) << (b + 1))
    harness = Lanes(lambda: FNTButterfly(b, shift, stages=2), lanes)
    case = {"inputs": pack_lanes([u | v << (b + 1) for u, v in pairs], harness.in_bits, lanes),
            "outputs": pack_lanes(outputs, harness.out_bits, lanes)}
    run_vectors(harness, "butterfly", case, tmp_path_factory.getbasetemp() / "sim", SEED, SIM,
                key=[b, shift, lanes])

"""The corner turn in cocotb: blocks of rows in, columns out (padded with `fill`),
against torch's transpose, with random stalls and backpressure; and its parameter checks."""

import random

import pytest
import torch

from bitfab.rtl.transpose import Transpose
from bitfab.sim.lanes import pack_lanes
from bitfab.sim.runner import default_simulator, run_vectors

SEED = 20261123
SIM = default_simulator()


def test_parameters_checked():
    with pytest.raises(ValueError, match="transpose length must be a positive integer, not 0"):
        Transpose(8, 0, 1)
    with pytest.raises(ValueError, match="transpose rows must be a positive integer, not 0"):
        Transpose(8, 4, 0)
    with pytest.raises(ValueError, match="transpose rows must be at most length 4, not 5"):
        Transpose(8, 4, 5)


def corner_turn(blocks, length, fill):
    """(blocks, rows, length) -> (blocks, length, length): column j of each block, its
    missing rows `fill`."""
    padded = torch.full((blocks.shape[0], length, length), fill, dtype=torch.long)
    padded[:, :blocks.shape[1]] = blocks
    return padded.transpose(1, 2)


@pytest.mark.sim
@pytest.mark.parametrize("length,rows", [(8, 5), (4, 4)])
def test_transpose_cocotb(tmp_path_factory, length, rows):
    bits, fill = 9, 0x1FF       # a diminished-1 zero at b = 8
    rng = random.Random(SEED)
    blocks = torch.tensor([[[rng.randrange(1 << bits) for _ in range(length)]
                            for _ in range(rows)] for _ in range(300)])
    want = corner_turn(blocks, length, fill)
    case = {"inputs": pack_lanes(blocks.flatten().tolist(), bits, length),
            "outputs": pack_lanes(want.flatten().tolist(), bits, length)}
    run_vectors(Transpose(bits, length, rows, fill), "transpose", case,
                tmp_path_factory.getbasetemp() / "sim", SEED, SIM, key=[length, rows])

"""The DFNT convolution engine in cocotb against `torch.nn.functional.conv2d` on random
integer tensors, with random stalls and backpressure; the direct baseline likewise; and
their parameter checks. (The INT8 engine on real photos runs in tests/test_conv_build.py,
through the build flow.)"""


import pytest
import torch

from bitfab.hls_gen.golden.dfnt import engine_layer
from bitfab.rtl.dfnt_conv import DFNTConvEngine, DFNTEngineConfig
from bitfab.rtl.direct_conv import DirectConvConfig, DirectConvEngine
from bitfab.hls_gen.compiler.cases import dfnt_case, direct_case
from bitfab.sim.cases import run_case
from bitfab.sim.runner import default_simulator

SEED = 20261123
SIM = default_simulator()


@pytest.mark.parametrize("kwargs,error,message", [
    (dict(in_channels=64, kernel=7, b=16, x_bits=4, w_bits=4), ValueError,
     "eq. 2.11 bound fails: 64 channels x 7x7 kernel"),
    (dict(kernel=3, padding=3), ValueError, "padding must be at most kernel - 1 = 2, not 3"),
    (dict(kernel=9, length=8), ValueError, "9x9 kernel needs a transform length >= 9, not 8"),
    (dict(length=12), ValueError, "DFNT engine length must be a power of two dividing 64 for b=32 "
     "\\(root 2 has order 64\\), not 12"),
    (dict(b=12), ValueError, "b must be 2\\^t"),
    (dict(height=2, kernel=5, length=8), ValueError, "2x8 image padded by 0 is smaller"),
])
def test_config_checked(kwargs, error, message):
    base = dict(in_channels=2, out_channels=2, kernel=3, height=8, width=8)
    with pytest.raises(error, match=message):
        DFNTEngineConfig(**{**base, **kwargs})


def test_engine_wants_a_config():
    with pytest.raises(TypeError, match="config must be a DFNTEngineConfig"):
        DFNTConvEngine({"kernel": 3})


def _run(tmp_path_factory, config, x, w, seed):
    y = torch.nn.functional.conv2d(x.double(), w.double(), padding=config.padding).long()
    # The golden DFNT is the engine's specification; it equals conv2d here.
    assert torch.equal(engine_layer(config)(x, w), y)
    result = run_case(DFNTConvEngine(config), "dfnt_engine", dfnt_case(config, x, w, y),
                      tmp_path_factory.getbasetemp() / "sim", seed, SIM, idle=0.3,
                      backpressure=0.3, key=[config.__dict__])
    assert result["mismatches"] == 0 and result["items"] == x.shape[0]
    return result


@pytest.mark.sim
@pytest.mark.parametrize("adder", ["carry", "prefix"])
def test_engine_small_modulus(tmp_path_factory, adder):
    """b = 16 (F = 65537), 3x3 kernels, 4-bit data, one output channel, no padding,
    an image of one tile column and several tile rows; with either diminished-1 adder."""
    config = DFNTEngineConfig(in_channels=2, out_channels=1, kernel=3, height=13, width=4,
                              padding=0, b=16, length=4, x_bits=4, w_bits=4, adder=adder)
    gen = torch.Generator().manual_seed(SEED + 1)
    x = torch.randint(-8, 8, (3, 2, 13, 4), generator=gen)
    w = torch.randint(-8, 8, (1, 2, 3, 3), generator=gen)
    _run(tmp_path_factory, config, x, w, SEED + 1)


@pytest.mark.sim
def test_direct_engine(tmp_path_factory):
    """The direct baseline: 2 outputs per patch, each 3x3 product folded over 2 cycles."""
    config = DirectConvConfig(in_channels=2, out_channels=2, kernel=3, outputs=2, folds=2)
    gen = torch.Generator().manual_seed(SEED + 2)
    x = torch.randint(-128, 128, (2, 2, 6, 8), generator=gen)
    w = torch.randint(-128, 128, (2, 2, 3, 3), generator=gen)
    w[1, 1] = -128
    y = torch.nn.functional.conv2d(x.double(), w.double(), padding=1).long()
    result = run_case(DirectConvEngine(config), "direct_conv", direct_case(config, x, w, y, 1),
                      tmp_path_factory.getbasetemp() / "sim", SEED + 2, SIM, idle=0.3,
                      backpressure=0.3, key=[config.__dict__])
    assert result["mismatches"] == 0 and result["items"] == 2


def test_direct_config_checked():
    assert DirectConvConfig(in_channels=1, out_channels=1, kernel=7, outputs=1, folds=2).terms == 25
    with pytest.raises(ValueError, match="folds must be at most kernel\\^2 = 9, not 10"):
        DirectConvConfig(in_channels=1, out_channels=1, kernel=3, folds=10)
    with pytest.raises(TypeError, match="config must be a DirectConvConfig"):
        DirectConvEngine(None)

"""The per-channel stream units a graph needs after a join, in cocotb against the golden
model's ops: `ChannelAffine` (golden `ir.Affine`, a layer's value for a shortcut) and
`ThresholdUnit` (golden `ir.Threshold`, the quantizer after a join), their parameters
loaded at run time, with random input stalls and output backpressure."""

import pytest
import torch

from bitfab.hls_gen.golden.ir import Affine, Threshold, Thresholds
from bitfab.rtl.affine import AffineConfig, ChannelAffine
from bitfab.rtl.encoder import orient_thresholds
from bitfab.rtl.threshold_unit import ThresholdConfig, ThresholdUnit
from bitfab.sim.cases import run_case
from bitfab.sim.runner import default_simulator
from bitfab.sw_driver.beats import element_values

SEED = 20261207
SIM = default_simulator()


def _beats(layout, rows, lanes):
    return [layout.const(row[k:k + lanes]).as_bits() for row in rows
            for k in range(0, len(row), lanes)]


@pytest.mark.sim
def test_channel_affine_equals_the_golden_affine(tmp_path):
    gen = torch.Generator().manual_seed(SEED)
    config = AffineConfig(lanes=2, groups=3, in_bits=12, mul_bits=9, out_bits=18, shift=3)
    channels = config.lanes * config.groups
    mul = torch.randint(-256, 256, (channels,), generator=gen)
    add = torch.randint(-2000, 2000, (channels,), generator=gen)
    x = torch.randint(-2048, 2048, (600, channels), generator=gen)
    x[:4] = torch.tensor([-2048, 2047, -2048, 2047, 0, -1])     # the extremes
    node = Affine("value", ["acc"], mul=mul, add=add, shift=3, frac=0, coef_bits=9, bits=18)
    y = node.run([x], {})
    rows = [[{"mul": int(mul[g * 2 + l]), "add": int(add[g * 2 + l])} for l in range(2)]
            for g in range(config.groups)]
    case = {"words": config.pack({"scales": rows}),
            "inputs": _beats(config.in_layout, x.tolist(), 2),
            "outputs": {"o": _beats(config.out_layout, y.tolist(), 2)},
            "beats_per_item": {"o": config.groups}}
    result = run_case(ChannelAffine(config), "channel_affine", case, tmp_path, SEED, SIM,
                      idle=0.3, backpressure=0.3)
    assert result["mismatches"] == 0 and result["items"] == 600


@pytest.mark.sim
def test_threshold_unit_equals_the_golden_threshold(tmp_path):
    gen = torch.Generator().manual_seed(SEED)
    config = ThresholdConfig(lanes=2, groups=2, n=3, in_bits=10, threshold_bits=10)
    channels = config.lanes * config.groups
    values = torch.randint(-512, 512, (channels, 3), generator=gen).sort(dim=1).values
    descending = torch.tensor([False, True, False, True])
    x = torch.randint(-512, 512, (800, channels), generator=gen)
    x[:channels * 3].view(-1)[:12] = values.flatten()            # on the thresholds
    node = Threshold("act", ["sum"], output=Thresholds(values, descending), bits=10)
    codes = node.run([x], {})
    rows = [[{"thresholds": orient_thresholds(values[g * 2 + l].tolist(),
                                              bool(descending[g * 2 + l])),
              "descending": int(descending[g * 2 + l])} for l in range(2)]
            for g in range(config.groups)]
    case = {"words": config.pack({"thresholds": rows}),
            "inputs": _beats(config.in_layout, x.tolist(), 2),
            "outputs": {"o": _beats(config.out_layout,
                                    element_values(codes.tolist(), "onehot"), 2)},
            "beats_per_item": {"o": config.groups}}
    result = run_case(ThresholdUnit(config), "threshold_unit", case, tmp_path, SEED, SIM,
                      idle=0.3, backpressure=0.3)
    assert result["mismatches"] == 0 and len(codes.unique()) == 4


@pytest.mark.parametrize("make,match", [
    (lambda: AffineConfig(lanes=0, groups=1, in_bits=8, mul_bits=8, out_bits=8),
     "affine lanes must be a positive integer, not 0"),
    (lambda: AffineConfig(lanes=1, groups=1, in_bits=8, mul_bits=8, out_bits=8, shift=-1),
     "affine shift must be a non-negative integer, not -1"),
    (lambda: ThresholdConfig(lanes=1, groups=1, n=17, in_bits=8, threshold_bits=8),
     "threshold n must be an integer in 1..16, not 17"),
])
def test_bad_parameters_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()

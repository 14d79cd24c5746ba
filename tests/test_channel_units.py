"""The per-channel stream units a graph needs after a join, in cocotb against the golden
model's ops: `ChannelAffine` (golden `ir.Affine`, a layer's value for a shortcut),
`ThresholdUnit` (golden `ir.Threshold`, the quantizer after a join), their parameters
loaded at run time, and `GlobalSum` (golden `ir.GlobalSum`, global average
pooling's sum), with random input stalls and output backpressure; the sum's rate
in Amaranth's simulator."""

import pytest
import torch
from amaranth.sim import Simulator

from bitfab.hls_gen.golden.ir import Affine, GlobalSum as GoldenGlobalSum, Threshold, Thresholds
from bitfab.rtl.affine import AffineConfig, ChannelAffine
from bitfab.rtl.encoder import orient_thresholds
from bitfab.rtl.global_sum import GlobalSum, GlobalSumConfig
from bitfab.rtl.threshold_unit import ThresholdConfig, ThresholdUnit
from bitfab.sim.cases import run_case
from bitfab.sim.runner import default_simulator, run_vectors
from bitfab.sw_driver.beats import element_values

SEED = 20261207
SIM = default_simulator()


def _beats(layout, rows, lanes):
    return [layout.const(row[k:k + lanes]).as_bits() for row in rows
            for k in range(0, len(row), lanes)]


@pytest.mark.sim
@pytest.mark.parametrize("lanes,multipliers", [(2, None), (4, 1), (4, 2)])
def test_channel_affine_equals_the_golden_affine(tmp_path, lanes, multipliers):
    """One multiplier a lane, or fewer taking a beat's lanes over several cycles."""
    gen = torch.Generator().manual_seed(SEED)
    config = AffineConfig(lanes=lanes, groups=3, in_bits=12, mul_bits=9, out_bits=18, shift=3,
                          multipliers=multipliers)
    channels = config.lanes * config.groups
    mul = torch.randint(-256, 256, (channels,), generator=gen)
    add = torch.randint(-2000, 2000, (channels,), generator=gen)
    x = torch.randint(-2048, 2048, (600, channels), generator=gen)
    x[:2, :4] = torch.tensor([-2048, 2047, -2048, 2047])      # the extremes
    mul[:2] = torch.tensor([-256, 255])
    node = Affine("value", ["acc"], mul=mul, add=add, shift=3, frac=0, coef_bits=9, bits=18)
    y = node.run([x], {})
    rows = [[{"mul": int(mul[g * lanes + l]), "add": int(add[g * lanes + l])}
             for l in range(lanes)] for g in range(config.groups)]
    case = {"words": config.pack({"scales": rows}),
            "inputs": _beats(config.in_layout, x.tolist(), lanes),
            "outputs": {"o": _beats(config.out_layout, y.tolist(), lanes)},
            "beats_per_item": {"o": config.groups}}
    result = run_case(ChannelAffine(config), f"channel_affine_{lanes}_{multipliers}", case,
                      tmp_path, SEED, SIM, idle=0.3, backpressure=0.3,
                      key=(lanes, multipliers))
    assert result["mismatches"] == 0 and result["items"] == 600


def test_channel_affine_with_fewer_multipliers_takes_a_beat_in_steps():
    config = AffineConfig(lanes=4, groups=1, in_bits=4, mul_bits=4, out_bits=8,
                          multipliers=1)
    assert (config.steps, config.latency) == (4, 5)
    assert AffineConfig(lanes=4, groups=1, in_bits=4, mul_bits=4, out_bits=8).latency == 2


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


@pytest.mark.sim
def test_threshold_unit_of_pixels_takes_them_unsigned(tmp_path):
    """A threshold unit on a network's input (FINN's TFC binarizes its pixels): 5-bit
    pixels, every value against thresholds where a signed reading of 16..31 would be
    wrong (one row, the same for every channel, as the freezer writes it)."""
    gen = torch.Generator().manual_seed(SEED)
    config = ThresholdConfig(lanes=2, groups=2, n=1, in_bits=6, threshold_bits=7, pixels=5)
    channels = config.lanes * config.groups
    x = torch.cat([torch.arange(32).repeat_interleave(channels).view(-1, channels),
                   torch.randint(0, 32, (200, channels), generator=gen)])
    for t in (8, 20):
        node = Threshold("pixels", ["input"], output=Thresholds(torch.tensor([[t]]),
                                                                 torch.tensor([False])),
                         bits=6)
        codes = node.run([x], {})
        rows = [[{"thresholds": orient_thresholds([t], False), "descending": 0}] * 2] * 2
        case = {"words": config.pack({"thresholds": rows}),
                "inputs": _beats(config.in_layout, x.tolist(), 2),
                "outputs": {"o": _beats(config.out_layout,
                                        element_values(codes.tolist(), "onehot"), 2)},
                "beats_per_item": {"o": config.groups}}
        result = run_case(ThresholdUnit(config), "threshold_pixels", case, tmp_path / str(t),
                          SEED, SIM, idle=0.3, backpressure=0.3)
        assert result["mismatches"] == 0 and codes.float().mean() not in (0.0, 1.0)


def _global_sum_case(config, x, gen):
    """The bench's case for images `x` (N, C, 1, positions): beats position by position,
    each position's channels `lanes` a beat; the golden sums, a beat per group."""
    x[0] = -(1 << config.in_bits - 1)               # the extremes: every value lowest,
    x[1] = (1 << config.in_bits - 1) - 1            # every value highest
    node = GoldenGlobalSum("gap", ["x"], positions=config.positions, shift=config.shift,
                           bits=config.out_bits)
    y = node.run([x], {})
    rows = x.permute(0, 3, 1, 2).reshape(-1, x.shape[1]).tolist()
    return {"inputs": {"i": _beats(config.in_layout, rows, config.lanes)},
            "outputs": {"o": _beats(config.out_layout, y.tolist(), config.lanes)}}


@pytest.mark.sim
@pytest.mark.parametrize("lanes,groups,positions,shift", [(4, 3, 16, 2), (2, 1, 1, 0),
                                                          (1, 5, 3, 0)])
def test_global_sum_equals_the_golden_global_sum(tmp_path, lanes, groups, positions, shift):
    gen = torch.Generator().manual_seed(SEED)
    in_bits = 7
    total = (1 << in_bits - 1) * positions
    out_bits = (total >> shift).bit_length() + 1
    config = GlobalSumConfig(lanes=lanes, groups=groups, positions=positions, in_bits=in_bits,
                             shift=shift, out_bits=out_bits)
    x = torch.randint(-64, 64, (300, lanes * groups, 1, positions), generator=gen)
    # The bench stalls the input and holds the output back at random (its seed printed
    # on failure) and fails on any beat that differs.
    run_vectors(GlobalSum(config), f"global_sum_{lanes}_{groups}_{positions}",
                _global_sum_case(config, x, gen), tmp_path, SEED, SIM,
                key=(lanes, groups, positions, shift), bench="bitfab.sim.multi_tb")


def test_global_sum_takes_a_beat_a_cycle_and_answers_a_cycle_after_the_last():
    config = GlobalSumConfig(lanes=1, groups=2, positions=3, in_bits=4, shift=0, out_bits=6)
    dut, seen = GlobalSum(config), []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        for k in range(14):
            ctx.set(dut.i.valid, k < 12)
            ctx.set(dut.i.payload, [1])
            assert ctx.get(dut.i.ready)
            await ctx.tick()
            if ctx.get(dut.o.valid):
                seen.append((k, ctx.get(dut.o.payload)[0]))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    # Beats 4 and 5 (image 0's last position) and 10 and 11 give the sums of 3.
    assert seen == [(4, 3), (5, 3), (10, 3), (11, 3)]


@pytest.mark.parametrize("make,match", [
    (lambda: GlobalSumConfig(lanes=1, groups=1, positions=0, in_bits=8, shift=0, out_bits=8),
     "global sum positions must be an integer of at least 1, not 0"),
    (lambda: AffineConfig(lanes=0, groups=1, in_bits=8, mul_bits=8, out_bits=8),
     "affine lanes must be a positive integer, not 0"),
    (lambda: AffineConfig(lanes=1, groups=1, in_bits=8, mul_bits=8, out_bits=8, shift=-1),
     "affine shift must be a non-negative integer, not -1"),
    (lambda: AffineConfig(lanes=4, groups=1, in_bits=8, mul_bits=8, out_bits=8, multipliers=3),
     "affine multipliers must divide its 4 lanes, not 3"),
    (lambda: ThresholdConfig(lanes=1, groups=1, n=17, in_bits=8, threshold_bits=8),
     "threshold n must be an integer in 1..16, not 17"),
    (lambda: ThresholdConfig(lanes=1, groups=1, n=1, in_bits=5, threshold_bits=6, pixels=5),
     r"threshold pixels must be an integer in 0..in_bits - 1 \(4\), not 5"),
    (lambda: ThresholdConfig(lanes=1, groups=1, n=1, in_bits=6, threshold_bits=7, pixels=5,
                             positions=0),
     "threshold positions must be a positive integer, not 0"),
])
def test_bad_parameters_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()

"""FINN's CNV topology (BNN-PYNQ's CNV-W1A1): the golden model with random weights and
thresholds at the medians of its accumulators on photo crops, its plan at FINN's own
folding on the ULX3S, and a narrow CNV (same shape, fewer channels) in cocotb on
photo crops. The full CNV's simulation and bitstream are `benchmarks/cnv.py`'s."""

import json

import pytest

from bitfab.hls_gen.cnv import CALIBRATION_FIRST, FINN_FOLDING, cnv_graph
from bitfab.hls_gen.compiler.boards import board
from bitfab.hls_gen.compiler.flow import BuildConfig, artifact, run_flow
from bitfab.hls_gen.compiler.network import NetworkKind
from bitfab.hls_gen.compiler.estimates import check_fit
from bitfab.hls_gen.compiler.folding import fold, image_cycles
from bitfab.hls_gen.compiler.plan import PlanError, map_to_hw
from bitfab.hls_gen.datasets import photo_crops
from networks import digits_graph

SEED = 20261205
NARROW = (8, 8, 16, 16, 32, 32, 64, 64)


@pytest.fixture(scope="module")
def cnv():
    return cnv_graph("xnor")


def test_cnv_has_finn_s_shapes_and_no_constant_channel(cnv):
    pixels = photo_crops(64, first=CALIBRATION_FIRST)
    _, trace = cnv.run(pixels)
    shapes = {layer.name: tuple(trace[layer.name]["codes"].shape[1:])
              for layer in cnv.layers[:-1]}
    assert shapes == {"conv0": (64, 30, 30), "conv1": (64, 14, 14), "conv2": (128, 12, 12),
                      "conv3": (128, 5, 5), "conv4": (256, 3, 3), "conv5": (256, 1, 1),
                      "fc0": (512,), "fc1": (512,)}
    # Thresholds at the medians of the calibration crops: every channel of every
    # hidden layer takes both codes there.
    for layer in cnv.layers[:-1]:
        codes = trace[layer.name]["codes"].transpose(0, 1).flatten(1)
        assert all(len(row.unique()) == 2 for row in codes), layer.name
    # The test crops are other crops, and the classes depend on them.
    logits = cnv(photo_crops(32))
    assert len(logits.argmax(1).unique()) > 1


def test_the_pixel_layer_sums_pixels_and_a_plan_keeps_its_coefficients_to_that(cnv):
    """CNV's first layer (+-1 weights as bases T- and T+ with coefficients -2^b, +2^b
    over the pixels' bit planes) is planned as a plane sum: 2 lanes per PE, not 16.
    Packing a model whose pixel-layer coefficients are not phi_(i, 0) * 2^j for that
    plan is refused, naming the layer, instead of loading coefficients the datapath
    never reads."""
    from dataclasses import replace

    from bitfab.hls_gen.compiler.stores import load_stream
    from bitfab.hls_gen.golden.ir import Graph
    configs = map_to_hw(cnv, (32, 32))
    assert [c.plane_sum for c in configs] == [True] + [False] * 8
    assert configs[0].terms == 2 and configs[0].row_sum_bound == 27 * 255
    assert len(load_stream(cnv, configs)) == sum(c.load_words for c in configs)
    first = cnv.layers[0]
    coef = first.coefficients.clone()
    coef[1, 3] += 1
    edited = Graph(cnv.input_bits, cnv.input_scale, [replace(first, coefficients=coef),
                                                     *cnv.layers[1:]])
    assert not map_to_hw(edited, (32, 32))[0].plane_sum
    with pytest.raises(PlanError, match=r"layer conv0: its coefficients are not "):
        load_stream(edited, configs)


def test_cnv_at_finn_s_folding_fits_the_ulx3s_at_finn_s_rate(cnv):
    configs = fold(map_to_hw(cnv, (32, 32)), [{"pe": p, "simd": s} for p, s in FINN_FOLDING])
    # FINN's slowest layers take 32,768 cycles a frame (3,052 frames/s at 100 MHz).
    assert image_cycles(configs) == 32768
    fit = check_fit(configs, board("ulx3s-85f"))
    assert fit["total"]["luts"] < 26072 and fit["total"]["dsps"] <= 156
    # Its block RAMs crowd the device: nextpnr's router2 routes it (router1 stalled).
    assert NetworkKind().synth_options({"estimate": fit}, board("ulx3s-85f")) == {
        "router": "router2"}
    digits = fold(map_to_hw(digits_graph(1)))
    assert NetworkKind().synth_options({"estimate": check_fit(digits, board("ulx3s-85f"))},
                                       board("ulx3s-85f")) == {}


def test_weight_stores_deeper_than_a_block_ram_are_banked_on_the_ecp5(cnv):
    """On the ULX3S, a weight store deeper than the DP16KD configuration that holds its
    rows in the fewest blocks is split into banks of that depth (conv5: 32-bit rows,
    18,432 of them, banks of 16,384 rows of 1-bit blocks), each read into its own
    register: a cycle more of latency, no more block RAM. Shallower stores stay one,
    an iCE40 plan has none, and the folding's "bank_rows" overrides the choice."""
    folding = [{"pe": p, "simd": s} for p, s in FINN_FOLDING]
    mapped = map_to_hw(cnv, (32, 32))
    ecp5 = fold(mapped, folding, board=board("ulx3s-85f"))
    plain = fold(mapped, folding)
    assert [c.weight_bank_rows for c in ecp5] == [None] * 4 + [2048, 16384, 16384, 16384,
                                                               None]
    assert [c.weight_banks for c in ecp5] == [1] * 4 + [2, 2, 2, 2, 1]
    assert [c.weight_bank_rows for c in plain] == [None] * 9
    assert [c.latency - p.latency for c, p in zip(ecp5, plain)] == [0] * 4 + [1] * 4 + [0]
    fit, plain_fit = (check_fit(c, board("ulx3s-85f")) for c in (ecp5, plain))
    assert fit["total"]["brams"] <= plain_fit["total"]["brams"]
    assert fit["total"]["ffs"] > plain_fit["total"]["ffs"]
    assert fold(mapped, folding, board=board("icebreaker"))[5].weight_bank_rows is None
    override = [*folding[:5], {**folding[5], "bank_rows": 4096}, *folding[6:]]
    assert fold(mapped, override, board=board("ulx3s-85f"))[5].weight_banks == 5
    for bad in (3, 0, -8, 2.0, True, "many"):
        override[5] = {**folding[5], "bank_rows": bad}
        with pytest.raises(PlanError, match=r"layer conv5: MVAU weight_bank_rows must be a "
                                             r"power of two"):
            fold(mapped, override, [layer.name for layer in cnv.layers], board("ulx3s-85f"))


def test_pa_cnv_at_finn_s_folding_is_refused_by_name():
    """M x N = 20 popcount lanes per PE where XNOR has one: at FINN's folding the PA
    CNV does not fit the ULX3S, and the plan says which layer and resource (its
    flip-flops: the popcount pipelines of 20 lanes per PE)."""
    # (Two calibration crops: the plan reads shapes and widths; the thresholds' medians
    # over sixteen, as benchmarks/cnv.py takes them, cost half a minute of golden model.)
    graph = cnv_graph("pa", calibration=2)
    configs = map_to_hw(graph, (32, 32))
    names = [layer.name for layer in graph.layers]
    with pytest.raises(PlanError, match=r"does not fit ulx3s-85f: layer conv1 brings ffs"):
        check_fit(fold(configs, [{"pe": p, "simd": s} for p, s in FINN_FOLDING], names),
                  board("ulx3s-85f"), names)


@pytest.mark.sim
@pytest.mark.parametrize("kind", ["xnor", "pa"])
def test_a_narrow_cnv_runs_on_photo_crops_in_cocotb(tmp_path, kind):
    graph = cnv_graph(kind, m=2, n=3, channels=NARROW, calibration=32)
    out = tmp_path / kind
    report = run_flow(BuildConfig(out=str(out), bitstream=False, sim_images=4, image=[32, 32],
                                  idle=0.3, backpressure=0.3, seed=SEED), graph,
                      log=lambda _: None)
    sim = json.loads(artifact(out, "sim.json").read_text())
    assert sim["mismatches"] == 0 and sim["items"] == 4
    plan = json.loads(artifact(out, "plan.json").read_text())["layers"]
    # Every layer tapped, the pooled ones after their pool: 14 x 14 and 5 x 5.
    positions = [30 * 30, 14 * 14, 12 * 12, 5 * 5, 3 * 3, 1, 1, 1, 1]
    groups = [l["rows"] // l["pe"] for l in plan]
    assert sim["beats_checked"] == 4 * (sum(p * g for p, g in zip(positions, groups))
                                        + groups[-1])
    assert [l["pool"] is not None for l in report["layers"]] == [
        False, True, False, True, False, False, False, False, False]

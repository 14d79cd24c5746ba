"""Convolutional networks through the one flow: sliding windows into matrix-vector
units, the flatten into the head, every layer's output checked against the golden
model in cocotb with random stalls and backpressure."""

import json

import pytest
import torch

from bitfab.hls_gen.compiler.flow import BuildConfig, artifact, run_flow
from bitfab.hls_gen.compiler.folding import fold
from bitfab.hls_gen.compiler.plan import PlanError, map_to_hw
from bitfab.hls_gen.datasets import load_digits_split
from bitfab.hls_gen.errors import UnsupportedLayerError
from networks import cnn_graph

SEED = 20261205


def test_a_cnn_plan_balances_windows_and_units():
    graph = cnn_graph(1)
    configs = fold(map_to_hw(graph, (8, 8)))
    windows = [c.window for c in configs]
    assert [(w.height, w.stride, w.channels) for w in windows[:2]] == [(8, 1, 1), (8, 2, 4)]
    assert windows[2] is None and configs[2].cols == 6 * 4 * 4
    # Each window's beat is the layer before's output beat.
    assert windows[1].simd == configs[0].pe and configs[2].in_beat == configs[1].pe
    with pytest.raises(PlanError, match="conv1: a convolution of 1 input channels needs an "
                                        "input image of 1 channels, not None"):
        map_to_hw(graph)


def test_the_golden_cnn_s_codes_depend_on_the_image():
    """The test network is strong enough to catch a broken layer: its hidden codes vary."""
    graph = cnn_graph(1)
    trace = graph.run(load_digits_split().x_test[:8].long().view(-1, 1, 8, 8))[1]
    for name in ("conv1", "conv2"):
        codes = trace[name]["codes"]
        assert len(codes.unique()) > 1 and not torch.equal(codes[0], codes[1]), name


@pytest.mark.sim
def test_a_cnn_runs_in_cocotb_against_the_golden_model(tmp_path):
    out = tmp_path / "cnn"
    report = run_flow(BuildConfig(out=str(out), bitstream=False, sim_images=8, idle=0.3,
                                  backpressure=0.3, seed=SEED), cnn_graph(1),
                      log=lambda _: None)
    sim = json.loads(artifact(out, "sim.json").read_text())
    assert sim["mismatches"] == 0 and sim["items"] == 8
    # The report names the source the simulation ran (no bitstream here).
    assert report["commit"] == sim["commit"] and sim["commit"]
    # Every layer tapped: 64 positions x 2 groups, 16 x 3 (or so), and the scores.
    plan = json.loads(artifact(out, "plan.json").read_text())["layers"]
    positions = [64, 16, 1]
    assert sim["beats_checked"] == 8 * sum(p * l["rows"] // l["pe"]
                                           for p, l in zip(positions, plan)) + 8 * (
        plan[2]["rows"] // plan[2]["pe"])
    assert report["layers"][0]["window"]["kernel"] == 3


def test_an_unsupported_convolution_is_refused_by_name():
    from dataclasses import replace

    from bitfab.hls_gen.golden.kernels import Geometry
    graph = cnn_graph(1)
    graph.layers[1] = replace(graph.layers[1], geometry=Geometry("conv2d", (3, 3), (1, 1)))
    with pytest.raises(UnsupportedLayerError, match="layer conv2: stride must be 1 or 2, not 3"):
        map_to_hw(graph, (8, 8))


@pytest.mark.parametrize("stride,padding,kernel,match", [
    ((3, 3), (1, 1), 3, "layer conv2: stride must be 1 or 2, not 3"),
    ((1, 1), (3, 3), 3, r"layer conv2: padding must be 0 to kernel - 1 = 2, not 3"),
    ((1, 2), (1, 1), 3, r"layer conv2: convolutions map to hardware with square kernels, "
                        r"equal strides and padding"),
    ((1, 1), (0, 0), 9, r"layer conv2: kernel must be 1 to 7, not 9"),
])
def test_a_convolution_the_window_cannot_make_is_refused_by_name(stride, padding, kernel,
                                                                  match):
    from dataclasses import replace

    from bitfab.hls_gen.golden.kernels import Geometry
    graph = cnn_graph(1)
    second = graph.layers[1]
    bases = second.bases[..., :1, :1].expand(*second.bases.shape[:3], kernel, kernel)
    graph.layers[1] = replace(second, geometry=Geometry("conv2d", stride, padding),
                              bases=bases.contiguous())
    with pytest.raises(UnsupportedLayerError, match=match):
        map_to_hw(graph, (8, 8))


def test_an_image_too_large_for_the_line_buffers_is_refused_before_synthesis():
    """The window units' line buffers grow with the image's width (kernel + stride rows
    of it): 131,072 pixels wide, the digits CNN's convolutions need more block RAM
    than the ULX3S has, and the plan says which layer and resource."""
    from bitfab.hls_gen.compiler.boards import board
    from bitfab.hls_gen.compiler.estimates import check_fit
    from bitfab.hls_gen.golden.ir import Graph
    graph = cnn_graph(1)
    convolutions = Graph(graph.input_bits, 1.0, graph.layers[:2])
    names = ["conv1", "conv2"]
    configs = map_to_hw(convolutions, (8, 131072))
    with pytest.raises(PlanError, match=r"does not fit ulx3s-85f: layer conv2 brings brams"):
        check_fit(fold(configs, [{"pe": 1, "simd": 1}] * 2, names), board("ulx3s-85f"), names)

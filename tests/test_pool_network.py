"""Max pooling inside networks: the freezer puts it after a convolution's activation
(on the codes), the golden JSON keeps it, the compiler maps it to a `MaxPool` behind
the convolution unit, and the whole network runs in cocotb against the golden model."""

import json

import pytest
import torch
from torch import nn

from bitfab.hls_gen.compiler.flow import BuildConfig, artifact, run_flow
from bitfab.hls_gen.compiler.folding import fold, image_cycles
from bitfab.hls_gen.compiler.plan import map_to_hw
from bitfab.hls_gen.datasets import load_digits_split
from bitfab.hls_gen.errors import BitfabError, FreezeError, UnsupportedLayerError
from bitfab.hls_gen.frontend.layers import BitplaneInput, PAConv2d, XNORLinear
from bitfab.hls_gen.frontend.quant import PAActivation, SignActivation
from bitfab.hls_gen.golden.freeze import freeze
from bitfab.hls_gen.golden.ir import graph_from_dict, graph_to_dict
from layercheck import check_layers
from networks import cnn_graph

SEED = 20261205


def pooled_model(pool=None, order="after"):
    """A PA convolution, its batch norm and activation, a max pool, a PA convolution
    with a sign activation and an XNOR head: random weights and batch norm
    statistics, eval mode."""
    torch.manual_seed(7)
    pool = pool or nn.MaxPool2d(2)
    first = [PAConv2d(1, 4, 3, padding=1, m=2), nn.BatchNorm2d(4), PAActivation(3)]
    first = first[:1] + [pool] + first[1:] if order == "before" else first + [pool]
    model = nn.Sequential(BitplaneInput(5, 1 / 16), *first,
                          PAConv2d(4, 6, 3, padding=1, m=2), nn.BatchNorm2d(6),
                          SignActivation(), nn.Flatten(), XNORLinear(6 * 4 * 4, 10))
    for module in model:
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-2, 2)
            module.running_var.uniform_(0.5, 2)
            module.weight.data.uniform_(-1, 1)
    return model.eval()


def test_the_freezer_pools_a_convolution_s_codes_exactly():
    """Every layer checked against float64 recomputations from the modules, the pool
    included: the pooled codes are the codes of the max-pooled values."""
    model = pooled_model()
    graph = freeze(model)
    assert graph.layers[0].pool == (2, 2) and graph.layers[1].pool is None
    pixels = load_digits_split().x_test[:64].long().view(-1, 1, 8, 8)
    trace = check_layers(model, graph, pixels)
    assert trace[graph.layers[0].name]["codes"].shape == (64, 4, 4, 4)
    # The golden model is the float model: the same classes.
    with torch.no_grad():
        floats = model(pixels.double().float()).argmax(1)
    assert (graph.predict(pixels) == floats).float().mean() >= 0.95
    again = graph_from_dict(json.loads(json.dumps(graph_to_dict(graph))))
    assert again.layers[0].pool == (2, 2) and torch.equal(again(pixels), graph(pixels))


def test_format_1_and_2_golden_models_still_read_and_an_unknown_one_is_refused():
    graph = cnn_graph(1)
    saved = graph_to_dict(graph)
    assert saved["format"] == "bitfab-golden-3"
    pixels = load_digits_split().x_test[:4].long().view(-1, 1, 8, 8)
    # Formats 1 and 2 held a chain: a list of layers without tensor names.
    chain = {k: v for k, v in saved.items() if k not in ("nodes", "input", "output")}
    chain["layers"] = [{k: v for k, v in node.items() if k not in ("inputs", "outputs")}
                       for node in saved["nodes"]]
    for format in ("bitfab-golden-1", "bitfab-golden-2"):
        old = graph_from_dict({**chain, "format": format})
        assert old.is_chain and [n.name for n in old.layers] == [n.name for n in graph.layers]
        assert torch.equal(old(pixels), graph(pixels))
    with pytest.raises(BitfabError, match="format 'bitfab-golden-9'; this bitfab reads"):
        graph_from_dict({**saved, "format": "bitfab-golden-9"})


@pytest.mark.parametrize("pool,order,error,match", [
    (nn.MaxPool2d(2), "before", FreezeError, "must come after .* activation quantizer"),
    (nn.MaxPool2d(2, padding=1), "after", UnsupportedLayerError, "no padding"),
    (nn.MaxPool2d(2, ceil_mode=True), "after", UnsupportedLayerError, "ceil_mode=False"),
    (nn.MaxPool2d((2, 3)), "after", UnsupportedLayerError, "square kernel"),
])
def test_the_freezer_refuses_a_pool_it_cannot_make_exact(pool, order, error, match):
    with pytest.raises(error, match=match):
        freeze(pooled_model(pool, order))


def test_a_pool_anywhere_but_after_a_convolution_s_codes_is_refused():
    model = nn.Sequential(BitplaneInput(5, 1 / 16), nn.MaxPool2d(2),
                          XNORLinear(16, 10))
    with pytest.raises(FreezeError, match="must follow a convolution's activation"):
        freeze(model)
    graph = cnn_graph(1)
    from dataclasses import replace
    with pytest.raises(BitfabError, match="layer head: only a convolution's activation codes"):
        replace(graph.layers[2], pool=(2, 2))
    with pytest.raises(BitfabError, match=r"pool must be \(kernel, stride\)"):
        replace(graph.layers[0], pool=(2, 0))


def test_a_pooled_cnn_plan_sees_the_pooled_image():
    graph = cnn_graph(1, pool=True)
    configs = fold(map_to_hw(graph, (8, 8)))
    pool = configs[0].pool
    assert (pool.kernel, pool.stride, pool.height, pool.channels) == (2, 2, 8, 4)
    assert pool.simd == configs[0].pe and configs[0].out_shape == (4, 4, 4)
    assert (configs[1].window.height, configs[1].window.stride) == (4, 1)
    assert configs[2].cols == 6 * 4 * 4
    # The pool's window streams 16 pooled positions of 4 pixels, a beat per row group.
    assert image_cycles(configs) >= 16 * 4 * (4 // configs[0].pe)
    # A pool whose window the hardware cannot make is refused by name.
    graph.layers[0].pool = (9, 2)
    with pytest.raises(UnsupportedLayerError, match="layer conv1: max pool 9x9 stride 2: "
                                                    "kernel must be 1 to 7"):
        map_to_hw(graph, (8, 8))


@pytest.mark.sim
def test_a_pooled_cnn_runs_in_cocotb_against_the_golden_model(tmp_path):
    out = tmp_path / "cnn"
    run_flow(BuildConfig(out=str(out), bitstream=False, sim_images=8, idle=0.3,
                         backpressure=0.3, seed=SEED), cnn_graph(1, pool=True),
             log=lambda _: None)
    sim = json.loads(artifact(out, "sim.json").read_text())
    assert sim["mismatches"] == 0 and sim["items"] == 8
    # Every layer tapped: the pooled 16 positions, conv2's 16, and the scores (twice:
    # the last tap and the output).
    plan = json.loads(artifact(out, "plan.json").read_text())["layers"]
    groups = [l["rows"] // l["pe"] for l in plan]
    assert sim["beats_checked"] == 8 * (16 * groups[0] + 16 * groups[1] + 2 * groups[2])

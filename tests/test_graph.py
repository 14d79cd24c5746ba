"""Networks as graphs in the golden model: torch.fx capture, forks and joins, queries,
the JSON format, and the bad graphs it refuses.

The graph networks (`bitfab.hls_gen.digits.graphs`) are trained for four epochs
(about a second each) and the golden model must give the PyTorch model's class
(evaluated in float64) on at least 99% of the digits test images. (Untrained,
with batch-norm statistics from real digits, the PA ones agree on 98.7-99.8%:
random networks' class scores tie more closely than a fixed point of 16-bit
coefficients resolves, as a chain's do.) The structural tests use untrained ones.
"""

import json

import pytest
import torch
import torch.fx
from torch import nn

from bitfab.hls_gen.compiler.plan import map_to_hw
from bitfab.hls_gen.datasets import load_digits_split
from bitfab.hls_gen.digits.graphs import GRAPH_ARCHS, GraphSpec, build_graph_model
from bitfab.hls_gen.digits.train import TrainConfig, train
from bitfab.hls_gen.errors import BitfabError, FreezeError, UnsupportedLayerError
from bitfab.hls_gen.frontend.layers import BitplaneInput, XNORConv2d, XNORLinear
from bitfab.hls_gen.frontend.quant import PAActivation, SignActivation
from bitfab.hls_gen.golden.freeze import freeze
from bitfab.hls_gen.golden.ir import (Add, Affine, Concat, MaxPool, Threshold, graph_from_dict,
    graph_to_dict)


@pytest.fixture(scope="module")
def digits():
    return load_digits_split()


def _images(x):
    return x.long().view(-1, 1, 8, 8)


def _calibrated(model, digits):
    """Batch-norm statistics of 300 training images (cumulative, exact), eval mode."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = None
    model.train()
    with torch.no_grad():
        model(_images(digits.x_train[:300]))
    return model.eval()


def _graph_model(digits, arch, kind, seed=0):
    torch.manual_seed(seed)
    return _calibrated(build_graph_model(GraphSpec(arch, kind, channels=8)), digits)


@pytest.mark.parametrize("kind", ["xnor", "pa"])
@pytest.mark.parametrize("arch", GRAPH_ARCHS)
def test_graph_networks_freeze_to_the_pytorch_class(digits, arch, kind):
    torch.manual_seed(0)
    model = train(build_graph_model(GraphSpec(arch, kind, channels=8)), digits.x_train,
                  digits.y_train, GraphSpec.input_shape, TrainConfig(epochs=4))
    graph = freeze(model)
    pixels = _images(digits.x_test)
    with torch.no_grad():
        expected = model.double()(pixels.double()).argmax(1)
    agree = float((graph.predict(pixels) == expected).double().mean())
    assert agree >= 0.99, f"{arch} {kind}: golden = PyTorch class on {agree:.2%} of images"
    # The format keeps the graph: the same scores and every tensor, by name.
    again = graph_from_dict(json.loads(json.dumps(graph_to_dict(graph))))
    scores, trace = graph.run(pixels[:32])
    scores_again, trace_again = again.run(pixels[:32])
    assert torch.equal(scores, scores_again)
    assert trace.tensors.keys() == trace_again.tensors.keys()
    assert all(torch.equal(trace.tensors[t], trace_again.tensors[t]) for t in trace.tensors)


def test_a_bi_real_resnet_is_a_graph_of_forks_and_joins(digits):
    graph = freeze(_graph_model(digits, "resnet", "xnor"))
    stem_value = graph.node("stem_value")
    assert isinstance(stem_value, Affine) and graph.is_fork_node(stem_value)
    assert [n.name for n in graph.find_consumers("stem_value")] == ["acts_0", "add"]
    add = graph.node("add")
    assert isinstance(add, Add) and graph.is_join_node(add)
    assert add.inputs == ["stem_value", "convs_0_value"]
    assert graph.find_producer("convs_0_value").name == "convs_0_value"
    assert graph.find_producer("input") is None
    assert isinstance(graph.node("acts_1"), Threshold)
    assert isinstance(graph.node("pool"), MaxPool)
    assert not graph.is_chain
    infos = graph.tensors((1, 8, 8))
    assert infos["input"].kind == "pixels" and infos["input"].bits == 5
    assert infos["stem_value"].kind == "fixed" and infos["stem_value"].shape == (8, 8, 8)
    assert infos["acts_0"].kind == "codes" and infos["acts_0"].encoding == "sign"
    assert infos["pool"].shape == (8, 4, 4)
    assert infos[graph.output].kind == "scores" and infos[graph.output].shape == (10,)


def test_the_shortcut_value_is_the_batch_norm_output_in_fixed_point(digits):
    model = _graph_model(digits, "resnet", "pa").double()
    graph = freeze(model)
    pixels = _images(digits.x_test[:64])
    _, trace = graph.run(pixels)
    with torch.no_grad():
        real = model.stem_value(pixels.double())
    node = graph.node("stem_value")
    fixed = trace.tensors["stem_value"].double() * 2.0 ** -node.frac
    assert float((fixed - real).abs().max()) < 1e-3 * float(real.abs().max())


def test_a_chain_is_still_a_list_of_layers(digits):
    from bitfab.hls_gen.digits.models import ModelSpec, build_model
    graph = freeze(build_model(ModelSpec("cnn", "xnor")).eval())
    assert graph.is_chain and graph.layers is graph.nodes
    assert [n.inputs for n in graph.nodes] == [["input"], ["1"], ["4"]]


def test_the_chain_flow_refuses_a_graph_naming_its_first_fork_or_join(digits):
    graph = freeze(_graph_model(digits, "resnet", "xnor"))
    with pytest.raises(BitfabError, match=r"node stem_value \(a Affine op\): this step maps "
                                          r"chains of layers; a graph .*map_graph"):
        map_to_hw(graph, (8, 8))


def test_xnor_layers_trace_with_plain_torch_fx():
    module = XNORConv2d(2, 4, 3, padding=1)
    traced = torch.fx.symbolic_trace(module)
    x = torch.randn(2, 2, 5, 5)
    assert torch.equal(traced(x), module(x))


class _Two(nn.Module):
    """Two binary branches of the input codes, joined by `join`."""

    def __init__(self, join, second_channels=4, second_act=None):
        super().__init__()
        self.input = BitplaneInput(5, 1 / 16)
        self.a = XNORConv2d(1, 4, 3, padding=1, pad_value=0.0)
        self.a_bn, self.a_act = nn.BatchNorm2d(4), SignActivation()
        self.b = XNORConv2d(4, second_channels, 3, padding=1)
        self.b_bn = nn.BatchNorm2d(second_channels)
        self.b_act = second_act or SignActivation()
        self.c = XNORConv2d(4, 4, 3, padding=1)
        self.c_bn = nn.BatchNorm2d(4)
        self.head = XNORLinear(4 * 64, 10)
        self.join = join

    def forward(self, pixels):
        x = self.a_act(self.a_bn(self.a(self.input(pixels))))
        return self.join(self, x)


def _eval(model):
    return model.eval()


BAD_MODELS = {
    "relu": (lambda s, x: s.head(torch.relu(s.b_bn(s.b(x))).flatten(1)),
             UnsupportedLayerError, r"node relu \(relu, position \d+ of the captured graph\): "
                                    r"call_function relu is not supported"),
    "add_of_mismatched_channels": (
        lambda s, x: s.head((s.b_bn(s.b(x)) + s.c_bn(s.c(x))).flatten(1)),
        FreezeError, r"node add \(add, .*\): adds b_value and c_value of 8 and 4 channels"),
    "add_of_codes": (lambda s, x: s.head((x + s.c_bn(s.c(x))).flatten(1)),
                     FreezeError, r"node add .*: joins the activation codes of a; a sum "
                                  r"takes values before their quantizer"),
    "cat_on_height": (lambda s, x: s.head(torch.cat([x, s.b_act(s.b_bn(s.b(x)))], dim=2)
                                          .flatten(1)),
                      UnsupportedLayerError, "concatenates along dimension 2"),
    "data_dependent": (lambda s, x: s.head(x.flatten(1)) if x.sum() > 0 else x,
                       UnsupportedLayerError, "_Two: torch.fx cannot capture its forward"),
}


@pytest.mark.parametrize("case", BAD_MODELS)
def test_bad_graphs_are_refused_naming_the_node(case):
    join, error, match = BAD_MODELS[case]
    model = _Two(join, second_channels=8 if case == "add_of_mismatched_channels" else 4)
    with pytest.raises(error, match=match):
        freeze(_eval(model))


def test_codes_of_different_quantizers_do_not_concatenate():
    model = _Two(lambda s, x: s.head(torch.cat([x, s.b_act(s.b_bn(s.b(x)))], 1).flatten(1)),
                 second_act=PAActivation(3))
    with pytest.raises(FreezeError, match=r"node cat .*: concatenates codes of different "
                                          r"quantizers \(a: sign 1 planes, b: onehot"):
        freeze(_eval(model))


def _resnet_dict(digits):
    return graph_to_dict(freeze(_graph_model(digits, "resnet", "xnor")))


def _node(value, name):
    return next(n for n in value["nodes"] if n["name"] == name)


def test_a_cycle_in_a_golden_json_is_refused(digits):
    value = _resnet_dict(digits)
    _node(value, "stem")["inputs"] = ["add_1"]
    with pytest.raises(BitfabError, match="the graph has a cycle: .*stem.*-> stem"):
        graph_from_dict(value)


@pytest.mark.parametrize("edit,match", [
    (lambda v: _node(v, "add").update(inputs=["stem_value", "nowhere"]),
     "node add reads tensor nowhere, which no node writes"),
    (lambda v: _node(v, "add").update(fracs=[3, 5], frac=5),
     r"node add: joins fixed points of \[3, 5\] fractional bits into 5"),
    (lambda v: _node(v, "acts_1").update(outputs=["add"]),
     "tensor add is written by both add and node acts_1"),
    (lambda v: _node(v, "stem_value").update(type="Sigmoid"),
     "node stem_value: unknown IR node type 'Sigmoid'"),
    (lambda v: _node(v, "add").update(inputs=["stem_value"], fracs=[0]),
     r"node add \(Add\) takes 2 or more inputs, not 1"),
    (lambda v: _node(v, "convs_0")["geometry"].update(groups=3),
     "layer convs_0: 3 groups do not divide its 8 output channels"),
])
def test_malformed_graphs_are_refused_naming_the_node(digits, edit, match):
    value = _resnet_dict(digits)
    edit(value)
    with pytest.raises(BitfabError, match=match):
        graph_from_dict(value)


def test_a_join_of_mismatched_shapes_is_refused_when_it_runs():
    add = Add("join", ["a", "b"], fracs=[0, 0], frac=0, bits=8)
    with pytest.raises(BitfabError, match=r"node join \(Add\): its inputs must have one shape, "
                                          r"not a \(1, 4\), b \(1, 5\)"):
        add.run([torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 5, dtype=torch.long)], {})
    cat = Concat("cat", ["a", "b"])
    with pytest.raises(BitfabError, match="node cat .Concat.: its inputs differ beyond the "
                                          "channels"):
        cat.run([torch.zeros(1, 4, 3, 3, dtype=torch.long),
                 torch.zeros(1, 4, 2, 3, dtype=torch.long)], {})


def test_global_average_pooling_is_a_sum_whose_mean_the_thresholds_hold(digits):
    from bitfab.hls_gen.golden.freeze import FreezeConfig
    from bitfab.hls_gen.golden.ir import GlobalSum
    model = _graph_model(digits, "resnet_gap", "xnor")
    graph = freeze(model)
    gap = graph.node("gap")
    assert isinstance(gap, GlobalSum) and gap.inputs == ["add_1"] and gap.positions == 64
    # The sum of 64 values keeps acc_bits - 2 bits: the shift drops what does not fit.
    assert gap.bits <= 30 and gap.frac == graph.node("add_1").frac - gap.shift
    assert graph.tensors((1, 8, 8))["gap"].shape == (8,)
    # Frozen for 8 x 8 images, it refuses any other size, naming the node.
    with pytest.raises(BitfabError, match=r"node gap \(GlobalSum\): sums images of 64 "
                                          r"positions .* not add_1 of shape \(1, 8, 16, 16\)"):
        graph.run(torch.zeros(1, 1, 16, 16, dtype=torch.int64))
    # Frozen for 4 x 4 images: 16 positions.
    small = freeze(model, FreezeConfig(image=(4, 4)))
    assert small.node("gap").positions == 16
    assert small.run(torch.zeros(2, 1, 4, 4, dtype=torch.int64))[0].shape == (2, 10)


class _Pooled(nn.Module):
    """A convolution, its quantizer, then `pool` and a head on 4 codes."""

    def __init__(self, pool, before_act=False):
        super().__init__()
        self.input = BitplaneInput(5, 1 / 16)
        self.conv = XNORConv2d(1, 4, 3, padding=1, pad_value=0.0)
        self.bn, self.act, self.out_act = nn.BatchNorm2d(4), SignActivation(), SignActivation()
        self.pool, self.before_act = pool, before_act
        self.head = XNORLinear(4, 10)

    def forward(self, pixels):
        value = self.bn(self.conv(self.input(pixels)))
        if self.before_act:
            return self.head(self.out_act(self.pool(value).flatten(1)))
        return self.head(self.out_act(self.pool(self.act(value)).flatten(1)))


@pytest.mark.parametrize("pool,before_act,error,match", [
    (lambda x: x.mean((2, 3)), False, FreezeError,
     r"node mean \(mean, position 5 of the captured graph\): averages the activation codes "
     r"of conv; global average pooling takes a value before its quantizer"),
    (nn.AdaptiveAvgPool2d(2), True, UnsupportedLayerError,
     r"model.pool: adaptive average pooling maps to 1 x 1 \(global average pooling\), not 2"),
    (lambda x: nn.functional.adaptive_avg_pool2d(x, 2), True, UnsupportedLayerError,
     "adaptive_avg_pool2d is not supported"),
])
def test_global_pooling_the_hardware_cannot_do_is_refused(pool, before_act, error, match):
    model = _Pooled(pool, before_act).eval()
    with pytest.raises(error, match=match):
        freeze(model)
    if before_act is False:
        return
    # The same pooling to 1 x 1 of the value freezes.
    ok = _Pooled(nn.AdaptiveAvgPool2d(1), before_act=True).eval()
    assert freeze(ok).node("pool").positions == 64


@pytest.mark.parametrize("kind", ["xnor", "pa"])
def test_a_grouped_layer_is_its_groups_side_by_side(digits, kind):
    """Each group as a layer of its own, on its input channels: their outputs, joined on
    channels, are the grouped layer's (what the hardware builds of it)."""
    graph = freeze(_graph_model(digits, "grouped", kind))
    layer = graph.node("group")
    assert layer.geometry.groups == 4
    _, trace = graph.run(_images(digits.x_test[:16]))
    codes = trace.tensors[layer.inputs[0]]
    channels = codes.shape[1] // 4
    parts = [layer.group(k).execute(codes[:, k * channels:(k + 1) * channels], {})
             for k in range(4)]
    assert torch.equal(torch.cat(parts, dim=1), trace.tensors["group"])
    with pytest.raises(BitfabError, match="layer group: no group 4 of 4"):
        layer.group(4)


class _Sliced(nn.Module):
    """Input codes, `cut` of them, a convolution and the head."""

    def __init__(self, cut):
        super().__init__()
        self.input = BitplaneInput(5, 1 / 16)
        self.conv = XNORConv2d(1, 4, 3, padding=1, pad_value=0.0)
        self.bn, self.act = nn.BatchNorm2d(4), SignActivation()
        self.cut = cut
        self.head = XNORLinear(2 * 64, 10)

    def forward(self, pixels):
        value = self.bn(self.conv(self.input(pixels)))
        return self.head(self.cut(self.act(value), value).flatten(1))


@pytest.mark.parametrize("cut,error,match", [
    (lambda codes, value: codes[:, 2:], UnsupportedLayerError,
     r"node getitem .*: indexes .*; bitfab maps x\[:, a:b\], a slice of channels with both "
     r"ends given"),
    (lambda codes, value: codes[..., :2], UnsupportedLayerError, "bitfab maps x"),
    (lambda codes, value: value[:, 0:2], FreezeError,
     "slices the value of model.conv before its quantizer; slice channels of activation "
     "codes"),
])
def test_channel_slices_the_hardware_cannot_do_are_refused(cut, error, match):
    with pytest.raises(error, match=match):
        freeze(_Sliced(cut).eval())


def test_a_channel_slice_of_codes_is_a_slice_node():
    from bitfab.hls_gen.golden.ir import Slice
    graph = freeze(_Sliced(lambda codes, value: codes[:, 1:3]).eval())
    node = next(n for n in graph.nodes if isinstance(n, Slice))
    assert (node.start, node.stop, node.inputs) == (1, 3, ["conv"])

"""Brevitas models, exported to QONNX by Brevitas' own exporter, imported by
`frontend.onnx_import`: every tensor QONNX's executor computes against the golden
model on the 450 digits test images; the golden model's class against the Brevitas
model's; the import through the build flow's RTL simulation; what cannot be mapped is
refused by node name and op type."""

import numpy as np
import pytest

pytest.importorskip("qonnx")
pytest.importorskip("brevitas")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from brevitas.core.scaling import ScalingImplType  # noqa: E402
from brevitas.export import export_qonnx  # noqa: E402
from brevitas.nn import QuantConv2d, QuantIdentity, QuantLinear  # noqa: E402
from brevitas.quant import (SignedBinaryActPerTensorConst,  # noqa: E402
                            SignedBinaryWeightPerTensorConst, Uint8ActPerTensorFloat)
from torch import nn  # noqa: E402

from bitfab.hls_gen.cli import main  # noqa: E402
from bitfab.hls_gen.compiler.flow import BuildConfig, run_flow  # noqa: E402
from bitfab.hls_gen.cnv import CALIBRATION_FIRST  # noqa: E402
from bitfab.hls_gen.datasets import load_digits_split, photo_crops  # noqa: E402
from bitfab.hls_gen.digits.finn import digits_pixels, export_tfc, train_tfc  # noqa: E402
from bitfab.hls_gen.errors import BitfabError, UnsupportedLayerError  # noqa: E402
from bitfab.hls_gen.frontend.onnx_import import (compare_with_qonnx,  # noqa: E402
                                                 load_qonnx, module_from_qonnx)
from bitfab.hls_gen.golden.freeze import FreezeConfig, freeze  # noqa: E402
from bitfab.hls_gen.compiler.graph import graph_case, map_graph  # noqa: E402
from bitfab.hls_gen.golden.ir import Add, Affine, Threshold  # noqa: E402
from bitfab.sim.cases import run_case  # noqa: E402

DIGITS = load_digits_split()


#: The digits' 17 levels, 0..16, as 5-bit unsigned integers times 1/16.
Pixels = digits_pixels()


def _binary_weights(**kwargs):
    return dict(bias=False, weight_quant=SignedBinaryWeightPerTensorConst, **kwargs)


def _sign():
    return QuantIdentity(act_quant=SignedBinaryActPerTensorConst)


class MLP(nn.Module):
    def __init__(self, hidden=32):
        super().__init__()
        self.pixels = QuantIdentity(act_quant=Pixels)
        self.fc = QuantLinear(64, hidden, **_binary_weights())
        self.bn = nn.BatchNorm1d(hidden)
        self.act = _sign()
        self.head = QuantLinear(hidden, 10, **_binary_weights())

    def forward(self, x):
        return self.head(self.act(self.bn(self.fc(self.pixels(x)))))


class Residual(nn.Module):
    """Two 3x3 convolutions and a shortcut (Bi-Real: the shortcut carries the stem's
    batch-norm output, the real value before the sign); the border of a convolution of
    signs is -1, an explicit pad."""

    def __init__(self, channels=8):
        super().__init__()
        self.pixels = QuantIdentity(act_quant=Pixels)
        self.stem = QuantConv2d(1, channels, 3, padding=1, **_binary_weights())
        self.stem_bn = nn.BatchNorm2d(channels)
        self.act = _sign()
        self.conv = QuantConv2d(channels, channels, 3, **_binary_weights())
        self.bn = nn.BatchNorm2d(channels)
        self.out_act = _sign()
        self.pool = nn.MaxPool2d(2)
        self.head = QuantLinear(channels * 16, 10, **_binary_weights())

    def forward(self, x):
        value = self.stem_bn(self.stem(self.pixels(x)))
        value = value + self.bn(self.conv(F.pad(self.act(value), (1, 1, 1, 1), value=-1.0)))
        return self.head(torch.flatten(self.pool(self.out_act(value)), 1))


class Photo8(Uint8ActPerTensorFloat):
    """8-bit pixels, 0..255, times 1/256."""

    bit_width = 8
    scaling_impl_type = ScalingImplType.CONST
    scaling_init = 255 / 256


class Branches(nn.Module):
    """Photo crops' 8-bit pixels; a stem, a grouped convolution beside it, their signs
    concatenated on channels, a 1x1 convolution, global average pooling of its value,
    its sign and the class scores."""

    def __init__(self, channels=8):
        super().__init__()
        self.pixels = QuantIdentity(act_quant=Photo8)
        self.stem = QuantConv2d(3, channels, 3, padding=1, **_binary_weights())
        self.stem_bn = nn.BatchNorm2d(channels)
        self.act = _sign()
        self.grouped = QuantConv2d(channels, channels, 3, groups=2, **_binary_weights())
        self.grouped_bn = nn.BatchNorm2d(channels)
        self.grouped_act = _sign()
        self.merge = QuantConv2d(2 * channels, channels, 1, **_binary_weights())
        self.merge_bn = nn.BatchNorm2d(channels)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.out_act = _sign()
        self.head = QuantLinear(channels, 10, **_binary_weights())

    def forward(self, x):
        signs = self.act(self.stem_bn(self.stem(self.pixels(x))))
        branch = self.grouped_act(self.grouped_bn(self.grouped(
            F.pad(signs, (1, 1, 1, 1), value=-1.0))))
        value = self.merge_bn(self.merge(torch.cat([signs, branch], 1)))
        return self.head(self.out_act(torch.flatten(self.gap(value), 1)))


def _calibrated(model, shape):
    """Random binary weights, batch-norm statistics from 256 training images (so every
    sign splits its channel), in eval mode."""
    torch.manual_seed(0)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d | nn.BatchNorm1d):
            module.momentum = None
    model.train()
    with torch.no_grad():
        model(_calibration(shape))
    return model.eval()


def _calibration(shape):
    if shape[0] == 3:
        return photo_crops(64, *shape[1:], first=CALIBRATION_FIRST).float() / 256
    return DIGITS.x_train[:256].reshape(-1, *shape) / 16


def _exported(model, shape, path, **kwargs):
    export_qonnx(model, torch.zeros(1, *shape), str(path), **kwargs)
    return path


def onnx_scale(model):
    """The input quantizer's scale (a pixel's real value)."""
    quant = next(n for n in model.graph.node if n.op_type == "Quant")
    return float(model.get_initializer(quant.input[1]))


@pytest.fixture(scope="module")
def mlp_onnx(tmp_path_factory):
    """The binary MLP, calibrated and exported once (the dynamo exporter takes
    seconds), for the tests that only read it."""
    return _exported(_calibrated(MLP(), (64,)), (64,), tmp_path_factory.mktemp("mlp") /
                     "mlp.onnx")


def _pixels(shape):
    if shape[0] == 3:
        return photo_crops(64, *shape[1:])
    return DIGITS.x_test.reshape(-1, *shape).long()


@pytest.mark.parametrize("net,shape,exporter", [
    (MLP, (64,), "dynamo"), (MLP, (64,), "torchscript"), (Residual, (1, 8, 8), "dynamo"),
    (Branches, (3, 16, 16), "dynamo")], ids=["mlp", "mlp-torchscript", "residual",
                                               "branches-photos"])
def test_the_import_equals_qonnxs_executor_on_every_tensor_of_every_test_image(
        net, shape, exporter, tmp_path):
    torch.manual_seed(0)
    model = _calibrated(net(), shape)
    kwargs = {"dynamo": False} if exporter == "torchscript" else {}
    onnx_model = load_qonnx(_exported(model, shape, tmp_path / "model.onnx", **kwargs))
    graph = freeze(module_from_qonnx(onnx_model), FreezeConfig(image=shape[1:] or (8, 8)))
    pixels = _pixels(shape)
    checks = compare_with_qonnx(onnx_model, graph, pixels)
    # Every tensor a node computes is checked, or named as folded into the thresholds
    # of the sign that reads it (the batch norms before a sign).
    assert len(checks) == sum(1 for n in onnx_model.graph.node
                              if n.op_type != "BipolarQuant" or not n.input[0].endswith(
                                  "param0"))
    bad = [c for c in checks if not c.ok]
    assert not bad, bad
    compared = [c for c in checks if c.max_diff is not None]
    signs = [c for c in compared if c.op_type == "BipolarQuant"]
    assert signs and all(c.max_diff == 0 for c in signs)
    folded = [c for c in checks if c.golden is None]
    assert all(c.op_type in ("BatchNormalization", "Reshape", "Flatten", "Pad")
               for c in folded)
    if net is Residual:
        # The shortcut's sum and both values it adds are compared as fixed point.
        fixed = {c.golden for c in compared if "fixed point" in c.relation}
        assert fixed == {n.name for n in graph.nodes if isinstance(n, Add | Affine)}
        assert len(fixed) == 3
    if net is Branches:
        ops = {c.op_type for c in compared}
        assert {"Concat", "ReduceMean"} <= ops
    # The Brevitas model's class is a top score of the golden model's on every image.
    # Binary scores tie often (random weights, +-1 products); float32 sums in PyTorch
    # and the executor then pick among the tied classes by their rounding, the golden
    # model's integers by the first index.
    with torch.no_grad():
        theirs = model(pixels.float() * onnx_scale(onnx_model)).argmax(1)
    scores = graph(pixels)
    top = scores == scores.max(dim=1, keepdim=True).values
    assert bool(top[torch.arange(len(pixels)), theirs].all())
    untied = top.sum(1) == 1
    assert int(untied.sum()) >= len(pixels) // 4


@pytest.mark.sim
def test_an_imported_model_builds_and_its_rtl_matches_on_every_test_image(mlp_onnx,
                                                                         tmp_path):
    """The .onnx file as `bitfab build` reads it, through golden -> plan -> RTL -> cocotb
    on all 450 test images, with random input stalls and output backpressure."""
    from bitfab.hls_gen.cli import _load_model
    path = mlp_onnx
    report = run_flow(BuildConfig(out=str(tmp_path / "build"), bitstream=False, idle=0.3,
                                  backpressure=0.3), _load_model(path))
    assert report["rtl"]["images"] == 450 and report["rtl"]["mismatches"] == 0
    assert [layer["name"] for layer in report["layers"]] == ["Gemm_0", "Gemm_1"]


def _streamlined(model, thresholds=None):
    """`model` (a QONNX ModelWrapper) with each batch norm and the sign after it made
    one ``MultiThreshold`` (one threshold a channel, bipolar out), as FINN's
    streamlining leaves them; `thresholds(t)` may change the (C, 1) thresholds."""
    from onnx import helper
    graph = model.graph
    for bn in [n for n in graph.node if n.op_type == "BatchNormalization"]:
        [sign] = model.find_consumers(bn.output[0])
        gamma, beta, mean, var = (model.get_initializer(bn.input[k]) for k in (1, 2, 3, 4))
        eps = next(a.f for a in bn.attribute if a.name == "epsilon")
        assert (gamma > 0).all()          # a sign after a positive gain: x >= t
        t = (mean - beta * np.sqrt(var + eps) / gamma).reshape(-1, 1).astype(np.float32)
        t = t if thresholds is None else thresholds(t)
        model.set_initializer(f"{bn.name}_thresholds", t)
        node = helper.make_node("MultiThreshold", [bn.input[0], f"{bn.name}_thresholds"],
                                [sign.output[0]], name=f"MultiThreshold_{bn.name}",
                                domain="qonnx.custom_op.general", out_dtype="BIPOLAR",
                                out_scale=2.0, out_bias=-1.0)
        at = list(graph.node).index(bn)
        graph.node.remove(bn)
        graph.node.remove(sign)
        graph.node.insert(at, node)
    return model


def _positive_gain_mlp(path):
    """The MLP, its batch norm's gains positive (a sign after it is x >= t), exported
    to `path`."""
    torch.manual_seed(0)
    model = _calibrated(MLP(), (64,))
    with torch.no_grad():
        model.bn.weight.abs_().add_(0.1)
    return _exported(model, (64,), path)


def test_finns_multithreshold_imports_as_its_batch_norm_and_sign_do(tmp_path):
    """The MLP with each batch norm and sign streamlined into a ``MultiThreshold``: the
    same integer thresholds as from the batch norm, every tensor equal to QONNX's
    executor on every test image."""
    path = _positive_gain_mlp(tmp_path / "mlp.onnx")
    streamlined = tmp_path / "streamlined.onnx"
    _streamlined(load_qonnx(path)).save(str(streamlined))
    onnx_model = load_qonnx(streamlined)
    assert "MultiThreshold" in {n.op_type for n in onnx_model.graph.node}
    graph = freeze(module_from_qonnx(onnx_model))
    plain = freeze(module_from_qonnx(load_qonnx(path)))
    assert torch.equal(graph.nodes[0].output.values, plain.nodes[0].output.values)
    checks = compare_with_qonnx(onnx_model, graph, DIGITS.x_test.long())
    assert not [c for c in checks if not c.ok]
    assert "MultiThreshold" in {c.op_type for c in checks if c.max_diff == 0}


def test_a_multithreshold_of_more_than_a_sign_is_refused(tmp_path):
    path = _positive_gain_mlp(tmp_path / "mlp.onnx")
    streamlined = tmp_path / "streamlined.onnx"
    _streamlined(load_qonnx(path), lambda t: np.concatenate([t, t + 1, t + 2], 1)).save(
        str(streamlined))
    with pytest.raises(UnsupportedLayerError, match=r"node MultiThreshold_\w+ "
                       r"\(MultiThreshold\) has 3 thresholds a channel, out_scale 2, "
                       r"out_bias -1; bitfab has layers for 1-bit activations"):
        module_from_qonnx(load_qonnx(streamlined))


@pytest.fixture(scope="module")
def tfc(tmp_path_factory):
    """FINN's TFC-W1A1 (Brevitas' bnn_pynq `FC` on 8 x 8 pixels), trained briefly on the
    digits, exported and loaded back: (the Brevitas model, the QONNX model)."""
    model = train_tfc(DIGITS.x_train, DIGITS.y_train)
    path = export_tfc(model, tmp_path_factory.mktemp("tfc") / "tfc.onnx")
    return model, load_qonnx(path)


def test_finns_tfc_imports_equal_to_qonnxs_executor(tfc):
    """Its input binarization (2 x - 1, the sign) becomes thresholds on the pixels, its
    TensorNorm the scores' scale; every tensor equals the executor's on every test
    image, the golden model gives the Brevitas model's class on >= 99% of them."""
    model, onnx_model = tfc
    graph = freeze(module_from_qonnx(onnx_model))
    pixels = DIGITS.x_test.long().view(-1, 1, 8, 8)
    checks = compare_with_qonnx(onnx_model, graph, pixels)
    assert not [c for c in checks if not c.ok]
    compared = {c.op_type for c in checks if c.max_diff is not None}
    assert {"Quant", "Mul", "Sub", "BipolarQuant", "Gemm", "Div", "Add"} <= compared
    first = graph.nodes[0]
    assert isinstance(first, Threshold) and first.inputs == ["input"]
    assert first.output.values.tolist() == [[8]]          # 2 p / 16 - 1 >= 0: p >= 8
    with torch.no_grad():
        theirs = model(pixels.float() / 16).argmax(1)
    ours = graph.predict(pixels)
    assert float((ours == theirs).double().mean()) >= 0.99
    assert float((ours == DIGITS.y_test).double().mean()) >= 0.75     # it learned


@pytest.mark.sim
@pytest.mark.slow
def test_finns_tfc_runs_in_rtl_on_every_test_image(tfc, tmp_path):
    """The pixels' threshold unit and four layers, every tensor against the golden model
    on all 450 test images, with random input stalls and output backpressure (slow: a
    Verilator build of its own; the default suite runs the imported MLP's network and
    the threshold unit of pixels on their own, and benchmarks/tfc.py simulates TFC's
    build on all 450)."""
    graph = freeze(module_from_qonnx(tfc[1]))
    hw = map_graph(graph)
    assert [u.kind for u in hw.units] == ["threshold"] + ["layer"] * 4
    case = graph_case(graph, hw, DIGITS.x_test.long().view(-1, 64))
    result = run_case(hw.network(), "finn_tfc", case, tmp_path, 20261207, "verilator",
                      idle=0.3, backpressure=0.3, optimize=True)
    assert result["items"] == 450 and result["mismatches"] == 0


@pytest.mark.sim
@pytest.mark.slow
def test_an_imported_residual_network_runs_in_rtl_on_every_test_image(tmp_path):
    """`bitfab sim residual.onnx`: the shortcut's join, its queue sized from the schedule,
    every tensor of the graph against the golden model on all 450 test images."""
    import json
    path = _exported(_calibrated(Residual(), (1, 8, 8)), (1, 8, 8), tmp_path / "res.onnx")
    out = tmp_path / "build"
    assert main(["sim", str(path), "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["rtl"]["images"] == 450 and report["rtl"]["mismatches"] == 0
    assert report["cycles_per_image"] == report["schedule_cycles_per_image"]
    plan = json.loads((out / "fold" / "plan.json").read_text())
    assert [q["name"] for q in plan["queues"]] == ["Conv_0_value__to__add__queue",
                                                   "Conv_1_value__queue"]


class _FourBitActivation(MLP):
    def __init__(self):
        super().__init__()
        self.act = QuantIdentity(bit_width=4)


class _FloatWeights(MLP):
    def __init__(self):
        super().__init__()
        self.head = nn.Linear(32, 10, bias=False)


class _Tanh(MLP):
    def forward(self, x):
        return self.head(self.act(torch.tanh(self.bn(self.fc(self.pixels(x))))))


class _Difference(MLP):
    def __init__(self):
        super().__init__()
        self.other = QuantLinear(64, 32, **_binary_weights())

    def forward(self, x):
        pixels = self.pixels(x)
        return self.head(self.act(self.bn(self.fc(pixels)) - self.other(pixels)))


class _Bias(MLP):
    def forward(self, x):
        return self.head(self.act(self.bn(self.fc(self.pixels(x))) + torch.arange(32.0)))


@pytest.mark.parametrize("net,text", [
    (_FourBitActivation, r"node Quant_1 \(Quant\) quantizes .* to 4 bits; bitfab has layers "
                         r"for 1-bit activations"),
    (_Difference, r"node Sub_0 \(Sub\) subtracts a stream; bitfab subtracts a constant"),
    (_Bias, r"node Add_0 \(Add\) adds a tensor of constants; bitfab adds one constant"),
    (_FloatWeights, r"node \w+ \((Gemm|MatMul)\): weights \w+ are not 1-bit"),
    (_Tanh, r"node \w+ \(Tanh\) is not supported; bitfab maps")])
def test_a_node_bitfab_cannot_map_is_refused_by_name_and_op_type(net, text, tmp_path):
    path = _exported(_calibrated(net(), (64,)), (64,), tmp_path / "model.onnx")
    with pytest.raises(UnsupportedLayerError, match=text):
        module_from_qonnx(load_qonnx(path))


def test_a_malformed_file_and_dynamic_shapes_are_refused(mlp_onnx, tmp_path):
    path = mlp_onnx
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(path.read_bytes()[:200])
    with pytest.raises(BitfabError, match=r"truncated.onnx: not an ONNX model"):
        load_qonnx(truncated)
    import onnx
    model = onnx.load(str(path))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    dynamic = tmp_path / "dynamic.onnx"
    onnx.save(model, str(dynamic))
    with pytest.raises(BitfabError, match=r"dynamic.onnx: tensor \w+ has dynamic dimensions "
                                          r"\(batch\)"):
        load_qonnx(dynamic)


def test_bitfab_build_checks_the_import_against_the_executor_first(mlp_onnx, tmp_path,
                                                                   capsys):
    """`bitfab build model.onnx` compares every tensor with QONNX's executor on the
    digits test images before it builds anything, and records the checks."""
    import json
    out = tmp_path / "build"
    assert main(["build", str(mlp_onnx), "--out", str(out), "--stop", "golden"]) == 0
    assert "qonnx: 4 of 5 tensors equal QONNX's executor on 450 inputs" in (
        capsys.readouterr().out)
    checks = json.loads((out / "qonnx_check.json").read_text())
    assert [c["op_type"] for c in checks] == ["Quant", "Gemm", "BatchNormalization",
                                              "BipolarQuant", "Gemm"]
    assert all(c["max_diff"] is None or c["max_diff"] <= c["tolerance"] for c in checks)

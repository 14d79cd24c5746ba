"""`torch.export` programs of bitfab models back to modules (`frontend.exported`): every
digits network, chain or graph, freezes from its saved program to the golden model
of the module it was exported from; what cannot be mapped is refused by name."""

import json

import pytest
import torch
from torch import nn

from bitfab.hls_gen.digits.graphs import GRAPH_ARCHS, GraphSpec, build_graph_model
from bitfab.hls_gen.digits.models import ModelSpec, build_model
from bitfab.hls_gen.errors import BitfabError, UnsupportedLayerError
from bitfab.hls_gen.frontend.exported import load_program, module_from_program
from bitfab.hls_gen.frontend.layers import BitplaneInput, XNORConv2d, XNORLinear
from bitfab.hls_gen.frontend.quant import SignActivation
from bitfab.hls_gen.golden.freeze import freeze
from bitfab.hls_gen.golden.ir import graph_to_dict

NETWORKS = ([("chain", arch, kind) for arch in ("mlp", "cnn") for kind in ("pa", "xnor")]
            + [("graph", arch, "xnor") for arch in GRAPH_ARCHS]
            + [("graph", arch, "pa") for arch in ("resnet", "reaf")])


def _pixels(arch, seed=0):
    shape = (4, 64) if arch == "mlp" else (4, 1, 8, 8)
    return torch.randint(0, 17, shape, generator=torch.Generator().manual_seed(seed)).float()


def _saved(model, pixels, tmp_path):
    path = tmp_path / "model.pt2"
    torch.export.save(torch.export.export(model, (pixels,)), path)
    return load_program(path)


@pytest.mark.parametrize("shape,arch,kind", NETWORKS, ids=lambda v: str(v))
def test_a_saved_program_freezes_to_the_modules_own_golden_model(shape, arch, kind, tmp_path):
    torch.manual_seed(1)
    model = (build_model(ModelSpec(arch, kind)) if shape == "chain"
             else build_graph_model(GraphSpec(arch, kind))).eval()
    # Batch norms with statistics of their own, so every threshold is the model's.
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d | nn.BatchNorm1d):
            module.running_mean.uniform_(-2, 2)
            module.running_var.uniform_(0.5, 2)
    pixels = _pixels(arch)
    rebuilt = _saved(model, pixels, tmp_path)
    with torch.no_grad():
        assert torch.equal(rebuilt(_pixels(arch, 1)), model(_pixels(arch, 1)))
    ours, theirs = (json.dumps(graph_to_dict(freeze(m)), sort_keys=True)
                    for m in (rebuilt, model))
    assert ours == theirs


class _Relu(nn.Module):
    def __init__(self):
        super().__init__()
        self.input, self.conv = BitplaneInput(), XNORConv2d(1, 4, 3, padding=1, pad_value=0)
        self.act, self.head = SignActivation(), XNORLinear(256, 10)

    def forward(self, pixels):
        return self.head(self.act(torch.relu(self.conv(self.input(pixels)))).flatten(1))


class _PlainConv(_Relu):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1, bias=False)

    def forward(self, pixels):
        return self.head(self.act(self.conv(self.input(pixels))).flatten(1))


@pytest.mark.parametrize("net,text", [
    (_Relu, r"node relu \(aten.relu.default, position \d+, in the model's forward\): not a "
            r"bitfab layer"),
    (_PlainConv, r"node conv2d \(aten.conv2d.default, position \d+, in model.conv\): not a "
                 r"bitfab layer")])
def test_an_operation_bitfab_cannot_map_is_refused_by_node_position_and_module(net, text):
    program = torch.export.export(net().eval(), (_pixels("cnn"),))
    with pytest.raises(UnsupportedLayerError, match=text):
        module_from_program(program)


def test_a_program_exported_in_training_mode_is_refused():
    model = build_model(ModelSpec("cnn", "xnor")).train()
    program = torch.export.export(model, (_pixels("cnn"),))
    with pytest.raises(BitfabError, match=r"model.2 was exported in training mode .* call "
                                          r"model.eval\(\) before torch.export.export"):
        module_from_program(program)


def test_a_file_that_is_not_a_program_is_refused(tmp_path):
    path = tmp_path / "model.pt2"
    path.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(BitfabError, match=r"model.pt2: not a torch.export program"):
        load_program(path)

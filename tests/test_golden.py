"""The golden model, layer by layer, against float64 re-computations from the trained modules.

Models here are untrained (random weights) with batch-norm statistics taken
from real digits and some batch-norm scales made negative or zero, so every
threshold direction is exercised. Training is covered in test_digits.py.
"""

import pytest
import torch
from torch import nn

from bitfab.hls_gen.datasets import load_digits_split
from bitfab.hls_gen.golden.freeze import FreezeConfig, freeze
from bitfab.hls_gen.frontend.layers import BitplaneInput, PAConv2d, PALinear
from bitfab.hls_gen.digits.models import ModelSpec, build_model
from bitfab.hls_gen.frontend.quant import PAActivation
from layercheck import check_layers

@pytest.fixture(scope="module")
def digits():
    return load_digits_split()


def _prepare(model, pixels, seed):
    """Batch-norm statistics from real inputs, then a mix of gamma signs (incl. 0)."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = None          # cumulative average: the exact batch stats
    model.train()
    with torch.no_grad():
        model(pixels)
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                c = module.num_features
                module.weight.copy_(torch.randn(c, generator=generator))
                module.weight[0] = 0.0      # a channel whose code ignores its input
                module.bias.copy_(torch.randn(c, generator=generator) * 0.5)
            if isinstance(module, PAActivation):
                module.v.copy_(torch.linspace(-0.8, 1.2, module.n) if module.n > 1
                               else torch.tensor([0.1]))
                module.beta.copy_(torch.rand(module.n, generator=generator) + 0.2)
    model.eval()
    return model


@pytest.mark.parametrize("m,n", [(4, 5), (8, 7), (2, 1), (16, 16)])
@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_pa_layers_exact(digits, arch, m, n):
    spec = ModelSpec(arch, "pa", m, n, hidden=64)
    torch.manual_seed(m * 17 + n)
    pixels = digits.x_test[:200 if arch == "mlp" else 64].view(-1, *spec.input_shape)
    model = _prepare(build_model(spec), pixels, seed=m + n)
    graph = freeze(model)
    trace = check_layers(model, graph, pixels)
    # Non-trivial: hidden codes use more than one level.
    assert len(trace[graph.layers[0].name]["codes"].unique()) > 1


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_xnor_layers_exact(digits, arch):
    spec = ModelSpec(arch, "xnor", hidden=64)
    torch.manual_seed(3)
    pixels = digits.x_test[:200].view(-1, *spec.input_shape)
    model = _prepare(build_model(spec), pixels, seed=5)
    graph = freeze(model)
    check_layers(model, graph, pixels)
    assert graph.layers[0].input_encoding == "bitplanes"
    assert graph.layers[1].input_encoding == "sign"
    assert graph.layers[-1].channel_scale is not None


def test_grouped_strided_pa_conv_exact(digits):
    model = nn.Sequential(
        BitplaneInput(5, 1 / 16),
        PAConv2d(1, 8, 3, padding=1, m=4), nn.BatchNorm2d(8), PAActivation(3),
        PAConv2d(8, 12, 3, stride=2, padding=1, groups=4, m=6), nn.BatchNorm2d(12),
        PAActivation(2),
        PAConv2d(12, 6, 2, stride=1, padding=0, groups=2, m=2), nn.BatchNorm2d(6),
        PAActivation(4),
        nn.Flatten(), PALinear(6 * 3 * 3, 10, m=8))
    torch.manual_seed(11)
    pixels = digits.x_test[:100].view(-1, 1, 8, 8)
    model = _prepare(model, pixels, seed=2)
    check_layers(model, freeze(model), pixels)


def test_widths_are_derived_and_recorded(digits):
    graph = freeze(_prepare(build_model(ModelSpec("mlp", "pa", 4, 5, hidden=64)),
                            digits.x_test[:50], seed=1), FreezeConfig(coef_bits=10))
    first, hidden, last = graph.layers
    assert (first.widths.fan_in, first.widths.popcount_bits) == (64, 7)
    # bit planes: 64 inputs x 5 planes x 2^9 = 163840 -> 19 signed bits
    assert (first.widths.acc_bound, first.widths.acc_bits) == (163840, 19)
    # one-hot codes: 64 x 1 x 2^9 = 32768 -> 17 signed bits
    assert (hidden.widths.acc_bound, hidden.widths.acc_bits) == (32768, 17)
    for layer in graph.layers:
        assert layer.coefficients.abs().max() <= 2 ** 9 - 1
        assert layer.coefficients.abs().max() >= 2 ** 8    # F is as large as the width allows
    assert last.widths.threshold_bits == 0 and last.output is None
    assert hidden.output.values.abs().max() <= hidden.widths.acc_bound + 1

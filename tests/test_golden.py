"""The golden model, layer by layer, against float64 re-computations from the trained modules.

Models here are untrained (random weights) with batch-norm statistics taken
from real digits and some batch-norm scales made negative or zero, so every
threshold direction is exercised. Training is covered in test_digits.py.
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bitfab.hls_gen.data import load_digits_split
from bitfab.hls_gen.freeze import FreezeConfig, freeze
from bitfab.hls_gen.layers import (BitplaneInput, PAConv2d, PALinear, XNORConv2d,
                                   XNORLinear)
from bitfab.hls_gen.models import ModelSpec, build_model
from bitfab.hls_gen.quant import PAActivation, xnor_weight

COMPUTE = (PALinear, PAConv2d, XNORLinear, XNORConv2d)


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


def _stages(model):
    """(compute module, batch norm or None, activation or None, flatten before)."""
    stages, flatten = [], False
    for module in model:
        if isinstance(module, nn.Flatten):
            flatten = True
        elif isinstance(module, COMPUTE):
            stages.append([module, None, None, flatten])
            flatten = False
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            stages[-1][1] = module
        elif not isinstance(module, BitplaneInput):
            stages[-1][2] = module
    return stages


def _real_input(layer, codes, model_input, levels):
    """The float value each layer input stands for, from the golden codes."""
    if layer.input_encoding == "bitplanes":
        return codes.double() * model_input.scale
    if layer.input_encoding == "sign":
        return 2.0 * codes.double() - 1.0
    return levels[codes]


def _check_layers(model, graph, pixels):
    logits, trace = graph.run(pixels)
    codes, levels = pixels, None
    for layer, (module, bn, act, flatten) in zip(graph.layers, _stages(model), strict=True):
        if flatten:
            codes = codes.flatten(1)
        record = trace[layer.name]
        x = _real_input(layer, codes, model[0], levels)
        weight = module.weight.detach().double()
        Y = record["acc"]
        conv = isinstance(module, nn.Conv2d)

        def apply(x, w, pad_value=0.0):
            if not conv:
                return F.linear(x, w)
            ph, pw = module.padding
            x = F.pad(x, (pw, pw, ph, ph), value=pad_value)
            return F.conv2d(x, w, stride=module.stride, groups=module.groups)

        if isinstance(module, (PALinear, PAConv2d)):
            frac = layer.widths.coef_frac
            # Popcounts from a float convolution of the same 0/1 planes and bases.
            planes = _planes(layer, codes)
            counts = torch.stack([torch.stack([apply(planes[:, j], layer.bases[i].double())
                                               for j in range(planes.shape[1])], 1)
                                  for i in range(layer.bases.shape[0])], 1)
            assert torch.equal(counts, record["popcounts"].double())
            # eq. 3.19 in float with phi in the recorded fixed point: exactly Y * 2^-F.
            phi = layer.coefficients.double() * 2.0 ** -frac
            view = (1, *phi.shape) + (1,) * (counts.dim() - 3)
            assert torch.equal((counts * phi.view(view)).sum((1, 2)), Y.double() * 2.0 ** -frac)
            # The float layer (PA weights x PA activations) differs only by phi's rounding.
            y = apply(x, module.quantizer(weight))
            terms = 1 if layer.input_encoding == "onehot" else layer.input_planes
            slack = layer.widths.fan_in * terms * 2.0 ** -(frac + 1) * 1.0001 + 1e-9
            assert (y - Y.double() * 2.0 ** -frac).abs().max() <= slack
            real = Y.double() * 2.0 ** -frac
        else:
            pad = getattr(module, "pad_value", 0.0)
            y = apply(x, xnor_weight(weight), pad)
            alpha = weight.abs().flatten(1).mean(1).view((1, -1) + (1,) * (Y.dim() - 2))
            step = model[0].scale if layer.input_encoding == "bitplanes" else 1.0
            real = alpha * step * Y.double()
            assert torch.allclose(y, real, rtol=1e-12, atol=1e-12)
            if layer.input_encoding == "sign":   # eq. 3.21, corrected: K - 2 popcount(XOR)
                assert torch.equal(Y, layer.widths.fan_in - 2 * record["popcounts"])
        assert Y.abs().max() <= layer.widths.acc_bound
        if act is None:
            assert torch.equal(record["logits"], logits)
            if layer.channel_scale is not None:
                assert torch.equal(logits, Y * layer.channel_scale.view(
                    (1, -1) + (1,) * (Y.dim() - 2)))
            break
        # The thresholds: bn(real) >= v_j computed in float64 gives the same codes.
        view = (1, -1) + (1,) * (Y.dim() - 2)
        inv = 1.0 / torch.sqrt(bn.running_var.double() + bn.eps)
        z = (real - bn.running_mean.double().view(view)) * (inv * bn.weight.double()).view(view) \
            + bn.bias.double().view(view)
        endpoints = act.v.detach().double() if isinstance(act, PAActivation) \
            else torch.zeros(1, dtype=torch.float64)
        expected = (z.unsqueeze(2) >= endpoints.view(1, 1, -1, *([1] * (Y.dim() - 2)))).sum(2)
        assert torch.equal(record["codes"], expected), f"layer {layer.name}: codes differ"
        if isinstance(act, PAActivation):    # the next layer's A-bar levels, beta_0 = 0
            levels = torch.cat([torch.zeros(1, dtype=torch.float64), act.beta.detach().double()])
        codes = record["codes"]
    return trace


def _planes(layer, codes):
    from bitfab.hls_gen.golden import to_planes
    return to_planes(codes, layer.input_encoding, layer.input_planes).double()


@pytest.mark.parametrize("m,n", [(4, 5), (8, 7), (2, 1), (16, 16)])
@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_pa_layers_exact(digits, arch, m, n):
    spec = ModelSpec(arch, "pa", m, n, hidden=64)
    torch.manual_seed(m * 17 + n)
    pixels = digits.x_test[:200 if arch == "mlp" else 64].view(-1, *spec.input_shape)
    model = _prepare(build_model(spec), pixels, seed=m + n)
    graph = freeze(model)
    trace = _check_layers(model, graph, pixels)
    # Non-trivial: hidden codes use more than one level.
    assert len(trace[graph.layers[0].name]["codes"].unique()) > 1


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_xnor_layers_exact(digits, arch):
    spec = ModelSpec(arch, "xnor", hidden=64)
    torch.manual_seed(3)
    pixels = digits.x_test[:200].view(-1, *spec.input_shape)
    model = _prepare(build_model(spec), pixels, seed=5)
    graph = freeze(model)
    _check_layers(model, graph, pixels)
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
    _check_layers(model, freeze(model), pixels)


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

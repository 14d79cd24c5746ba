"""Layer-by-layer check of a golden model against the trained PyTorch modules."""

import torch
import torch.nn.functional as F
from torch import nn

from bitfab.hls_gen.golden.kernels import to_planes
from bitfab.hls_gen.frontend.layers import (BitplaneInput, PAConv2d, PALinear, XNORConv2d,
    XNORLinear)
from bitfab.hls_gen.frontend.quant import PAActivation, xnor_weight

COMPUTE = (PALinear, PAConv2d, XNORLinear, XNORConv2d)


def _stages(model):
    """(compute module, batch norm or None, activation or None, flatten before, max pool
    or None)."""
    stages, flatten = [], False
    for module in model:
        if isinstance(module, nn.Flatten):
            flatten = True
        elif isinstance(module, COMPUTE):
            stages.append([module, None, None, flatten, None])
            flatten = False
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            stages[-1][1] = module
        elif isinstance(module, nn.MaxPool2d):
            stages[-1][4] = module
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


def check_layers(model, graph, pixels):
    """Compare every layer of `graph` with float64 re-computations from `model`'s modules.

    Popcounts against a float convolution of the same 0/1 tensors; the
    accumulator against eq. 3.19 in float with phi in the recorded fixed point
    (exact), and against the float layer within phi's rounding; activation codes
    against batch norm and the endpoints evaluated in float64. Returns the trace.
    """
    logits, trace = graph.run(pixels)
    codes, levels = pixels, None
    for layer, (module, bn, act, flatten, pool) in zip(graph.layers, _stages(model),
                                                       strict=True):
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
        def encode(z):
            return (z.unsqueeze(2) >= endpoints.view(1, 1, -1, *([1] * (z.dim() - 2)))).sum(2)
        unpooled = record["unpooled"] if pool is not None else record["codes"]
        assert torch.equal(unpooled, encode(z)), f"layer {layer.name}: codes differ"
        if pool is not None:
            # Pooling the codes is pooling the values: the code of the largest value.
            pooled = F.max_pool2d(z, pool.kernel_size, pool.stride)
            assert torch.equal(record["codes"], encode(pooled)), f"layer {layer.name}: pool"
        if isinstance(act, PAActivation):    # the next layer's A-bar levels, beta_0 = 0
            levels = torch.cat([torch.zeros(1, dtype=torch.float64), act.beta.detach().double()])
        codes = record["codes"]
    return trace


def _planes(layer, codes):
    return to_planes(codes, layer.input_encoding, layer.input_planes).double()

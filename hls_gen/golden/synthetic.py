"""Golden models with random weights: layers of the IR built directly, without
training, for benchmarks and tests (FINN's CNV topology, odd shapes and widths).

Widths are derived as the freezer derives them (the worst case of the layer's
format), so a random layer is as exact a specification as a frozen one; its
thresholds can be placed at quantiles of its accumulators on real inputs
(`median_thresholds`), so that no channel's code is constant.
"""

from dataclasses import replace

import torch

from bitfab.hls_gen.golden.fixedpoint import LayerWidths, signed_bits, unsigned_bits
from bitfab.hls_gen.golden.ir import PopcountLayer, Thresholds, XnorLayer
from bitfab.hls_gen.golden.kernels import Geometry

__all__ = ["random_layer", "bitplane_layer", "as_conv", "median_thresholds", "digits_graph"]


def random_layer(gen, kind, rows, cols, m=1, n=1, n_out=0, coef_bits=8, scale_bits=0):
    """A random IR layer with widths derived as the freezer does."""
    if kind == "pa":
        # One-hot bases: each weight in one of M pieces, or the zero piece.
        piece = torch.randint(0, m + 1, (rows, cols), generator=gen)
        bases = torch.stack([(piece == i).long() for i in range(m)])
        top = 1 << (coef_bits - 1)
        coefficients = torch.randint(-top + 1, top, (m, n), generator=gen)
        bound = cols * top
    else:
        weight_bits = torch.randint(0, 2, (rows, cols), generator=gen)
        bound = cols
    widths = LayerWidths(cols, unsigned_bits(cols), coef_bits if kind == "pa" else 0, 0,
                         signed_bits(-bound, bound), bound)
    output, scale = None, None
    if n_out:
        values = torch.randint(-bound // 4, bound // 4 + 2, (rows, n_out), generator=gen)
        output = Thresholds(values.sort(dim=1).values, torch.randint(0, 2, (rows,),
                                                                     generator=gen).bool())
        widths = LayerWidths(**{**widths.__dict__,
                                "threshold_bits": signed_bits(-bound, bound + 1)})
    elif scale_bits:
        scale = torch.randint(1, 1 << (scale_bits - 1), (rows,), generator=gen)
        logit = bound * (1 << (scale_bits - 1))
        widths = LayerWidths(**{**widths.__dict__, "scale_bits": scale_bits,
                                "logit_bits": signed_bits(-logit, logit)})
    else:
        widths = LayerWidths(**{**widths.__dict__, "logit_bits": widths.acc_bits})
    common = dict(name=f"{kind}{rows}x{cols}", geometry=Geometry("linear"), widths=widths,
                  input_encoding="onehot" if kind == "pa" else "sign",
                  input_planes=n if kind == "pa" else 1, output=output, channel_scale=scale)
    if kind == "pa":
        return PopcountLayer(**common, bases=bases, coefficients=coefficients)
    return XnorLayer(**common, weight_bits=weight_bits)


def bitplane_layer(gen, kind, rows, cols, planes, m=4, n_out=1, alpha_bits=4):
    """A random first layer fed with `planes` bit planes of unsigned pixels, as the
    freezer makes it: ``xnor``, +-1 weights as bases T- and T+ with coefficients
    -2^b and +2^b; ``pa``, M one-hot bases with coefficients alpha_i * 2^b
    (alpha_i random, `alpha_bits` signed bits). Thresholds random until
    `median_thresholds` places them."""
    if kind == "xnor":
        positive = torch.randint(0, 2, (rows, cols), generator=gen)
        bases = torch.stack([1 - positive, positive])
        alpha = torch.tensor([-1, 1])
    else:
        piece = torch.randint(0, m + 1, (rows, cols), generator=gen)
        bases = torch.stack([(piece == i).long() for i in range(m)])
        top = 1 << (alpha_bits - 1)
        alpha = torch.randint(-top + 1, top, (m,), generator=gen)
    coefficients = alpha.view(-1, 1) * (1 << torch.arange(planes)).view(1, -1)
    # Each input element lies in at most one base: |Y| <= K * max|alpha| * (2^planes - 1).
    bound = cols * int(alpha.abs().max()) * ((1 << planes) - 1)
    coef = int(coefficients.abs().max())
    widths = LayerWidths(cols, unsigned_bits(cols), signed_bits(-coef, coef), 0,
                         signed_bits(-bound, bound), bound,
                         threshold_bits=signed_bits(-bound, bound + 1))
    values = torch.zeros(rows, n_out, dtype=torch.int64)
    return PopcountLayer(f"{kind}{rows}x{cols}", Geometry("linear"), widths, "bitplanes", planes,
                         output=Thresholds(values, torch.zeros(rows, dtype=torch.bool)),
                         bases=bases, coefficients=coefficients)


def as_conv(layer, name, channels, kernel, stride=1, padding=0):
    """`layer` (rows x channels * kernel^2 columns) as a square convolution."""
    geometry = Geometry("conv2d", (stride, stride), (padding, padding))
    shape = (channels, kernel, kernel)
    if isinstance(layer, PopcountLayer):
        bases = layer.bases.reshape(*layer.bases.shape[:2], *shape)
        return replace(layer, name=name, geometry=geometry, bases=bases)
    weights = layer.weight_bits.reshape(layer.weight_bits.shape[0], *shape)
    return replace(layer, name=name, geometry=geometry, weight_bits=weights)


def median_thresholds(graph, layer, pixels, levels):
    """Set `layer`'s thresholds at quantiles of its accumulators over `pixels`, per
    channel (the median for one level), so that its codes depend on the image."""
    acc = graph.run(pixels)[1][layer.name]["acc"]
    acc = acc.transpose(0, 1).flatten(1).double()            # (channels, samples)
    q = torch.tensor([(j + 1) / (levels + 1) for j in range(levels)], dtype=torch.float64)
    values = torch.quantile(acc, q, dim=1).T.round().long()
    layer.output = Thresholds(values, torch.zeros(len(values), dtype=torch.bool))


def digits_graph(seed, hidden=8):
    """A small random network for the digits (64 pixels in 5 bit planes -> `hidden` ->
    10 scores). The weights are random; each hidden threshold is the median of its
    accumulator over the training digits, so the hidden codes, and the scores, depend
    on the image. (With `random_layer`'s thresholds, drawn from the accumulator's
    whole range, seed 5 gave every digit the same codes and scores: a netlist with
    a broken first layer passed its bench.)"""
    from bitfab.hls_gen.datasets import load_digits_split
    from bitfab.hls_gen.golden.ir import Graph
    gen = torch.Generator().manual_seed(seed)
    first = random_layer(gen, "pa", hidden, 64, m=2, n=5, n_out=1, coef_bits=6)
    first.input_encoding, first.input_planes = "bitplanes", 5
    graph = Graph(5, 1.0, [first, random_layer(gen, "xnor", 10, hidden)])
    acc = graph.run(load_digits_split().x_train.long().flatten(1))[1][first.name]["acc"]
    descending = first.output.descending
    median = torch.where(descending, -acc, acc).median(dim=0).values
    first.output = Thresholds(median.unsqueeze(1), descending)
    return graph

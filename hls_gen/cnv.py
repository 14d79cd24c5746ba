"""FINN's CNV topology (Xilinx/BNN-PYNQ's cnvW1A1) as a golden model with random weights.

Three 8-bit channels of 32 x 32 pixels; 3x3 convolutions without padding of 64,
64 channels, a 2x2 max pool, 128, 128, a max pool, 256, 256 (down to 1 x 1);
fully connected 512, 512, 10. Binary weights; binary activations after the
first layer, which takes the pixels' 8 bit planes (the XNOR datapath with bases
T- and T+ and coefficients -2^b, +2^b, as the freezer makes a first XNOR layer).
With ``kind="pa"`` every layer is PA instead: M weight bases, N activation
bases (one-hot codes) between layers.

The weights are random; each hidden layer's thresholds sit at quantiles of its
accumulators over photo crops (`bitfab.hls_gen.datasets.photo_crops`) that the
simulation does not use, so no channel's code is constant: a broken layer
changes the outputs.
"""

import torch

from bitfab.hls_gen.datasets import photo_crops
from bitfab.hls_gen.golden.ir import Graph
from bitfab.hls_gen.golden.synthetic import (as_conv, bitplane_layer, median_thresholds,
                                             random_layer)

__all__ = ["IMAGE", "INPUT_BITS", "CONVS", "FULLY_CONNECTED", "FINN_FOLDING", "cnv_graph",
           "CALIBRATION_FIRST"]

IMAGE = (3, 32, 32)
INPUT_BITS = 8
#: Convolution output channels; "pool" marks a 2x2 max pool of the layer before's codes.
CONVS = (64, 64, "pool", 128, 128, "pool", 256, 256)
FULLY_CONNECTED = (512, 512, 10)
#: FINN's folding of CNV-W1A1 for the PYNQ-Z1 (BNN-PYNQ's cnvW1A1 config.h), (PE, SIMD)
#: per layer; the last layer's PE 4 (over 64 padded rows) becomes 2 over our 10 rows,
#: at 2,560 cycles a frame still far from the 32,768 of its two layers before.
FINN_FOLDING = ((16, 3), (32, 32), (16, 32), (16, 32), (4, 32), (1, 32), (1, 4), (1, 8),
                (2, 1))
#: Photo crops from this index on calibrate the thresholds; simulations use 0, 1, ...
CALIBRATION_FIRST = 1000


def cnv_graph(kind="xnor", m=4, n=5, seed=0, calibration=64, channels=None):
    """The CNV golden model.

    Parameters
    ----------
    kind : str
        ``"xnor"`` (CNV-W1A1) or ``"pa"`` (M weight bases, N activation bases).
    m, n : int
        The PA layers' bases.
    seed : int
        The random weights' seed.
    calibration : int
        Photo crops whose accumulators place the thresholds.
    channels : tuple or None
        Other widths for the convolutions and the hidden fully connected layers
        (``(c1, c2, c3, c4, c5, c6, f1, f2)``), for a small model of the same
        shape; None for CNV's own.
    """
    if kind not in ("xnor", "pa"):
        raise ValueError(f"CNV kind must be 'xnor' or 'pa', not {kind!r}")
    widths = list(channels or [c for c in CONVS if c != "pool"] + list(FULLY_CONNECTED[:2]))
    if len(widths) != 8:
        raise ValueError(f"channels must give 6 convolutions and 2 hidden layers, not {widths}")
    gen = torch.Generator().manual_seed(seed)
    levels = 1 if kind == "xnor" else n

    def hidden(rows, cols, out_levels):
        if kind == "xnor":
            return random_layer(gen, "xnor", rows, cols, n_out=out_levels)
        return random_layer(gen, "pa", rows, cols, m=m, n=n, n_out=out_levels)

    layers, pools, size, fan = [], [], IMAGE[1], IMAGE[0]
    convs = iter(widths[:6])
    for item in CONVS:
        if item == "pool":
            pools.append(len(layers) - 1)
            size //= 2
            continue
        rows = next(convs)
        if not layers:
            layer = bitplane_layer(gen, kind, rows, fan * 9, INPUT_BITS, m=m, n_out=levels)
        else:
            layer = hidden(rows, fan * 9, levels)
        layers.append(as_conv(layer, f"conv{len(layers)}", fan, 3))
        size, fan = size - 2, rows
    flat = fan * size * size
    for k, rows in enumerate([*widths[6:], FULLY_CONNECTED[2]]):
        last = k == 2
        if last and kind == "xnor":
            layer = random_layer(gen, "xnor", rows, flat)
        elif last:
            layer = random_layer(gen, "pa", rows, flat, m=m, n=n)
        else:
            layer = hidden(rows, flat, levels)
        layer.name, layer.flatten_input = f"fc{k}", k == 0
        layers.append(layer)
        flat = rows
    for index in pools:
        layers[index].pool = (2, 2)
    graph = Graph(INPUT_BITS, 1.0, layers)
    pixels = photo_crops(calibration, *IMAGE[1:], first=CALIBRATION_FIRST)
    for layer in layers[:-1]:
        median_thresholds(graph, layer, pixels, levels)
    return graph

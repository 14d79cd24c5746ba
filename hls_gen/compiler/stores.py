"""What a plan's stores hold at run time: each layer's weights, coefficients,
thresholds and scales in the layout `MVAUConfig.pack` turns into load words
(`load_rows`), and the network's load stream (`load_stream`)."""

import numpy as np
import torch

from bitfab.rtl.encoder import orient_thresholds

from bitfab.hls_gen.errors import PlanError
from bitfab.hls_gen.golden.ir import PopcountLayer

__all__ = ["load_rows", "load_stream", "plane_sum_coefficients", "check_plane_sum"]

def _pack_bits(bits):
    """Rows of 0/1 (rows, width) -> Python ints, bit 0 first."""
    packed = np.packbits(np.asarray(bits, dtype=np.uint8), axis=1, bitorder="little")
    return [int.from_bytes(row.tobytes(), "little") for row in packed]

def load_rows(layer, config, input_shape=None):
    """What the load stream writes into `config`'s stores for IR `layer`; `input_shape`
    is the (C, H, W) of a convolution output that the layer flattens, if any."""
    c = config
    if isinstance(layer, PopcountLayer):
        bases = layer.bases
    else:
        bases = layer.weight_bits.unsqueeze(0)
    if c.window is not None:
        # A convolution's columns in the window's order: kernel row, column, channel.
        bases = bases.permute(0, 1, 3, 4, 2)
    elif input_shape is not None and len(input_shape) == 3:
        # A head over a flattened convolution output: PyTorch flattens channel first,
        # the window stream delivers position first.
        bases = bases.reshape(c.m, c.rows, *input_shape).permute(0, 1, 3, 4, 2)
    bases = bases.reshape(c.m, c.rows, c.cols)
    # Row r * folds + f holds, for PE p and base i, inputs f*simd .. (f+1)*simd - 1
    # at bit ((p * m + i) * simd + s): the order the PEs slice it in.
    weights = (bases.reshape(c.m, c.groups, c.pe, c.folds, c.simd)
               .permute(1, 3, 2, 0, 4).reshape(c.weight_rows, -1))
    rows = {"weights": _pack_bits(weights.numpy())}
    if c.front == "and":
        rows["coefficients"] = [layer.coefficients.flatten().tolist()]
    if c.output == "codes":
        values, descending = layer.output.values, layer.output.descending

        def channel(k):
            return {"thresholds": orient_thresholds(values[k].tolist(), bool(descending[k])),
                    "descending": int(descending[k])}
        rows["thresholds"] = [[channel(g * c.pe + p) for p in range(c.pe)]
                              for g in range(c.groups)]
    elif c.scale_bits:
        scale = layer.channel_scale.tolist()
        rows["scales"] = [scale[g * c.pe:(g + 1) * c.pe] for g in range(c.groups)]
    return rows

def plane_sum_coefficients(layer):
    """True when `layer` takes its inputs as bit planes of unsigned values and each of its
    coefficients is its weight base's first shifted by the plane, phi_(i, j) =
    phi_(i, 0) * 2^j: the form `MVAUConfig.plane_sum` sums whole input values for,
    one lane per base (a first layer's pixels, as the freezer writes it)."""
    if not isinstance(layer, PopcountLayer) or layer.input_encoding != "bitplanes":
        return False
    coef = layer.coefficients
    return bool((coef == coef[:, :1] * (1 << torch.arange(coef.shape[1]))).all())

def load_stream(graph, configs):
    """The whole load stream of `graph` for the plan `configs`: each layer's
    `load_rows`, packed (`MVAUConfig.pack`), layer after layer, as the network's
    load port takes them. A plane-sum layer's coefficients must keep that form (the
    datapath reads only each base's first): other ones are refused, naming the layer."""
    if len(graph.layers) != len(configs):
        raise PlanError(f"{len(graph.layers)} layers for a plan of {len(configs)}")
    for layer, config in zip(graph.layers, configs):
        check_plane_sum(layer, config)
    shapes = [None] + [c.out_shape for c in configs[:-1]]
    return [word for layer, config, shape in zip(graph.layers, configs, shapes)
            for word in config.pack(load_rows(layer, config, shape))]

def check_plane_sum(layer, config):
    """Refuse IR `layer` for a plane-sum `config` unless its coefficients keep that form
    (the datapath reads only each base's first), naming the layer."""
    if config.plane_sum and not plane_sum_coefficients(layer):
        raise PlanError(f"layer {layer.name}: its coefficients are not phi_(i, 0) * 2^j "
                        f"over bit planes, which this plan's plane-sum datapath "
                        f"assumes; build a plan for this model")

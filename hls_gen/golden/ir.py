"""The integer IR produced by `freeze`: it is the golden model.

A `Graph` is a bit-plane input encoding followed by a list of layers. Each
layer is a dataclass holding only integers (0/1 bases, fixed-point
coefficients, integer thresholds) and its derived widths; `execute()`
delegates to the kernels in `bitfab.hls_gen.golden.kernels`. `Graph.run` returns every
layer's intermediate tensors so a testbench can compare any of them.
"""

from dataclasses import asdict, dataclass, field
from math import prod

import torch

from bitfab.hls_gen.golden import kernels as golden
from bitfab.hls_gen.errors import BitfabError, WidthOverflowError
from bitfab.hls_gen.golden.fixedpoint import LayerWidths
from bitfab.hls_gen.golden.kernels import Geometry
from bitfab.hls_gen.golden.window import max_pool_codes

__all__ = ["Thresholds", "PopcountLayer", "XnorLayer", "Graph", "Trace", "kernel_shape",
           "graph_to_dict", "graph_from_dict"]


def _check_width(layer, name, values, bits):
    """Every value of `values` fits `bits` signed bits, or a `WidthOverflowError` naming
    the layer, the field, the value and the width."""
    if values is None or not values.numel():
        return
    if bits < 1:
        raise WidthOverflowError(f"layer {layer}: {name} stored, but its recorded width is "
                                 f"{bits} bits")
    low, high = -(1 << bits - 1), (1 << bits - 1) - 1
    bad = ((values < low) | (values > high)).nonzero()
    if len(bad):
        where = tuple(bad[0].tolist())
        raise WidthOverflowError(f"layer {layer}: {name} {int(values[where])} at {where} does "
                                 f"not fit its recorded {bits} signed bits ({low}..{high})")


def _check_bits(layer, name, values):
    if values is not None and values.numel() and bool(((values != 0) & (values != 1)).any()):
        raise BitfabError(f"layer {layer}: {name} must hold bits 0 and 1 only")


@dataclass
class Thresholds:
    """Per-channel integer thresholds that encode the next layer's activations.

    Folds batch norm and the next activation quantizer's endpoints (PA: v_i,
    sign: 0). ``code = #{j : (-Y if descending else Y) >= values[c, j]}``.
    """

    values: torch.Tensor       # (C, N) int64, non-decreasing along N
    descending: torch.Tensor   # (C,) bool

    def execute(self, acc):
        return golden.threshold_codes(acc, self.values, self.descending)


@dataclass
class _Layer:
    name: str
    geometry: Geometry
    widths: LayerWidths
    input_encoding: str        # "bitplanes", "onehot" or "sign"
    input_planes: int          # N: activation bases per input element
    flatten_input: bool = False
    output: Thresholds | None = None          # None for the last layer
    channel_scale: torch.Tensor | None = None  # (C,), widths.scale_frac bits, last layer only
    pool: tuple | None = None  # (kernel, stride): max pooling of a convolution's codes

    def __post_init__(self):
        self._check_stored()
        if self.pool is None:
            return
        pool = tuple(self.pool)
        if (len(pool) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1
                                      for v in pool)):
            raise BitfabError(f"layer {self.name}: pool must be (kernel, stride), positive "
                              f"integers, not {self.pool!r}")
        if self.geometry.kind != "conv2d" or self.output is None:
            raise BitfabError(f"layer {self.name}: only a convolution's activation codes are "
                              f"pooled (max pooling sits after the thresholds), not a "
                              f"{self.geometry.kind} layer's "
                              f"{'codes' if self.output is not None else 'scores'}")
        self.pool = pool

    def _check_stored(self):
        """Refuse a stored integer outside its recorded width (a corrupted or hand-edited
        golden JSON, or a freezer bug): the load words would cut it without a word."""
        w = self.widths
        if self.output is not None:
            values = self.output.values
            _check_width(self.name, "thresholds", values, w.threshold_bits)
            if values.numel() and bool((values[..., 1:] < values[..., :-1]).any()):
                raise BitfabError(f"layer {self.name}: thresholds must not decrease along "
                                  f"each channel's codes")
        if self.channel_scale is not None:
            _check_width(self.name, "channel_scale", self.channel_scale, w.scale_bits)

    def _inputs(self, codes):
        if self.flatten_input:
            codes = codes.flatten(1)
        return golden.to_planes(codes, self.input_encoding, self.input_planes)

    def _finish(self, acc, trace):
        bound = self.widths.acc_bound
        peak = int(acc.abs().max()) if acc.numel() else 0
        if peak > bound:
            # Unreachable if the widths were derived right; a guard, not a clamp.
            raise WidthOverflowError(f"layer {self.name}: accumulator reached {peak}, "
                                     f"beyond its derived bound {bound}")
        trace["acc"] = acc
        if self.output is not None:
            codes = self.output.execute(acc)
            if self.pool is not None:
                # Max pooling on the codes, which is pooling the values
                # (`golden.window.max_pool_codes`); "codes" is what the next layer sees.
                trace["unpooled"] = codes
                kernel, stride = self.pool
                codes = max_pool_codes(codes.permute(0, 2, 3, 1), kernel, stride)
                codes = codes.permute(0, 3, 1, 2)
            trace["codes"] = codes
            return codes
        scale = self.channel_scale
        logits = acc if scale is None else acc * scale.view((1, -1) + (1,) * (acc.dim() - 2))
        trace["logits"] = logits
        return logits


@dataclass
class PopcountLayer(_Layer):
    """M x N parallel AND-popcounts merged with phi_k (eq. 3.15-3.20).

    `bases` holds the M one-hot weight bases T_i, shape (M, C_out, ...);
    `coefficients` the merged phi_k = alpha_i * beta_j as (M, N) integers with
    `widths.coef_frac` fractional bits. Also used for an XNOR layer fed with
    bit planes: its bases are T- and T+ with coefficients -2^b and +2^b.
    """

    bases: torch.Tensor = field(default=None)
    coefficients: torch.Tensor = field(default=None)

    def _check_stored(self):
        super()._check_stored()
        _check_bits(self.name, "bases", self.bases)
        _check_width(self.name, "coefficients", self.coefficients, self.widths.coef_bits)

    def execute(self, codes, trace):
        counts = golden.and_popcounts(self._inputs(codes), self.bases, self.geometry)
        trace["popcounts"] = counts
        return self._finish(golden.merge_coefficients(counts, self.coefficients), trace)


@dataclass
class XnorLayer(_Layer):
    """+-1 weights times +-1 activations as K - 2 * popcount(x XOR w).

    `weight_bits` is 1 where the weight is +1, shape (C_out, ...). The border
    of a padded convolution holds bit 0 (-1).
    """

    weight_bits: torch.Tensor = field(default=None)

    def _check_stored(self):
        super()._check_stored()
        _check_bits(self.name, "weight_bits", self.weight_bits)

    def execute(self, codes, trace):
        bits = self._inputs(codes)[:, 0]
        counts = golden.xor_popcounts(bits, self.weight_bits, self.geometry, pad_bit=0)
        trace["popcounts"] = counts
        return self._finish(golden.xnor_dot(counts, self.widths.fan_in), trace)


class Trace(dict):
    """Per-layer intermediate tensors: ``trace[layer_name][key]``.

    Keys: "popcounts" (PA: (B, M, N, C, ...); XNOR: (B, C, ...) XOR counts),
    "acc" (the integer accumulator), and "codes" (next activation codes, pooled
    where the layer pools; "unpooled" then holds them before) or "logits" (the
    last layer).
    """


@dataclass
class Graph:
    """The golden model: integer-only, bit-exact specification of the hardware.

    Input: unsigned integer pixels, shape (B, features) or (B, C, H, W), each
    in 0 .. 2**input_bits - 1. Output: integer class scores; the class is the
    first index of the maximum.
    """

    input_bits: int
    input_scale: float         # real value of one pixel step (documentation only)
    layers: list

    def check_input(self, pixels):
        """The input as integer codes, or a `BitfabError` naming what is wrong with it:
        its shape (the first layer's), its type, its range (`input_bits`)."""
        if not isinstance(pixels, torch.Tensor):
            raise BitfabError(f"golden model input must be a tensor of pixels, not "
                              f"{type(pixels).__name__}")
        first = self.layers[0]
        if first.geometry.kind == "conv2d":
            channels = kernel_shape(first)[0]
            if pixels.dim() != 4 or pixels.shape[1] != channels:
                raise BitfabError(f"golden model input: layer {first.name} takes images "
                                  f"(N, {channels}, H, W), not {tuple(pixels.shape)}")
        elif pixels.dim() < 2 or prod(pixels.shape[1:]) != first.widths.fan_in or (
                pixels.dim() > 2 and not first.flatten_input):
            raise BitfabError(f"golden model input: layer {first.name} takes (N, "
                              f"{first.widths.fan_in}) inputs, not {tuple(pixels.shape)}")
        if pixels.is_complex() or pixels.dtype == torch.bool:
            raise BitfabError(f"golden model input must be integer pixels, not {pixels.dtype}")
        if pixels.is_floating_point():
            if not torch.equal(pixels, pixels.round()):
                raise BitfabError("golden model input must be integer pixels, got "
                                  "non-integer floats")
        pixels = pixels.long()
        top = (1 << self.input_bits) - 1
        if pixels.numel() and (pixels.min() < 0 or pixels.max() > top):
            raise BitfabError(f"input pixels must be in 0..{top} ({self.input_bits} bit "
                              f"planes), got {int(pixels.min())}..{int(pixels.max())}")
        return pixels

    def run(self, pixels):
        """Run every layer; return (logits, Trace)."""
        codes = self.check_input(pixels)
        trace = Trace()
        for layer in self.layers:
            trace[layer.name] = {}
            codes = layer.execute(codes, trace[layer.name])
        return codes, trace

    def __call__(self, pixels):
        return self.run(pixels)[0]

    def predict(self, pixels):
        return self(pixels).argmax(dim=1)


def kernel_shape(layer):
    """(input channels, kernel height, kernel width) of convolution `layer`."""
    weights = layer.bases[0] if isinstance(layer, PopcountLayer) else layer.weight_bits
    return tuple(weights.shape[1:])


def _tensor(value):
    return torch.tensor(value, dtype=torch.int64)


def graph_to_dict(graph):
    """The golden model as plain JSON-able data (every tensor an integer list)."""
    layers = []
    for layer in graph.layers:
        entry = {"type": type(layer).__name__, "name": layer.name,
                 "geometry": {"kind": layer.geometry.kind, "stride": list(layer.geometry.stride),
                              "padding": list(layer.geometry.padding),
                              "groups": layer.geometry.groups},
                 "widths": asdict(layer.widths), "input_encoding": layer.input_encoding,
                 "input_planes": layer.input_planes, "flatten_input": layer.flatten_input}
        if layer.output is not None:
            entry["thresholds"] = layer.output.values.tolist()
            entry["descending"] = layer.output.descending.long().tolist()
        if layer.channel_scale is not None:
            entry["channel_scale"] = layer.channel_scale.tolist()
        if layer.pool is not None:
            entry["pool"] = {"kernel": layer.pool[0], "stride": layer.pool[1]}
        if isinstance(layer, PopcountLayer):
            entry["bases"] = layer.bases.tolist()
            entry["coefficients"] = layer.coefficients.tolist()
        else:
            entry["weight_bits"] = layer.weight_bits.tolist()
        layers.append(entry)
    return {"format": FORMAT, "input_bits": graph.input_bits,
            "input_scale": graph.input_scale, "layers": layers}


#: The golden JSON format written; format 1 (before pooling) is still read. A reader of
#: format 1 would drop a layer's pooling without a word, hence the new name.
FORMAT = "bitfab-golden-2"
_READ_FORMATS = ("bitfab-golden-1", FORMAT)


def graph_from_dict(value):
    """Inverse of `graph_to_dict`."""
    if value.get("format") not in _READ_FORMATS:
        raise BitfabError(f"not a bitfab golden model (format {value.get('format')!r}; "
                          f"this bitfab reads {', '.join(_READ_FORMATS)})")
    try:
        return _graph_from_dict(value)
    except (KeyError, TypeError, AttributeError) as error:
        missing = f"missing field {error}" if isinstance(error, KeyError) else str(error)
        raise BitfabError(f"not a well-formed bitfab golden model: {missing}") from None


def _graph_from_dict(value):
    layers = []
    for entry in value["layers"]:
        geometry = entry["geometry"]
        common = dict(
            name=entry["name"],
            geometry=Geometry(geometry["kind"], tuple(geometry["stride"]),
                              tuple(geometry["padding"]), geometry["groups"]),
            widths=LayerWidths(**entry["widths"]), input_encoding=entry["input_encoding"],
            input_planes=entry["input_planes"], flatten_input=entry["flatten_input"],
            output=(Thresholds(_tensor(entry["thresholds"]),
                               _tensor(entry["descending"]).bool())
                    if "thresholds" in entry else None),
            channel_scale=_tensor(entry["channel_scale"]) if "channel_scale" in entry else None,
            pool=(entry["pool"]["kernel"], entry["pool"]["stride"]) if "pool" in entry else None)
        if entry["type"] == "PopcountLayer":
            layers.append(PopcountLayer(**common, bases=_tensor(entry["bases"]),
                                        coefficients=_tensor(entry["coefficients"])))
        elif entry["type"] == "XnorLayer":
            layers.append(XnorLayer(**common, weight_bits=_tensor(entry["weight_bits"])))
        else:
            raise BitfabError(f"layer {entry['name']}: unknown IR layer type {entry['type']!r}")
    return Graph(value["input_bits"], value["input_scale"], layers)

"""Freeze a trained bitfab model into the integer golden model (`ir.Graph`).

The front end captures the model with torch.fx (bitfab's layers, batch norm and
the activation quantizers as leaves, so an `nn.Sequential` and a module with its
own `forward` are captured alike) and walks the captured graph in order with a
handler per module type (hls4ml's handler registry) and per function (the
joins: ``x + y``, ``torch.cat``, a scale by a constant). What it folds:

- PA weights -> M one-hot bases T_i and the alphas (eq. 3.15-3.16);
- alpha_i * beta_j -> phi_k in a fixed point the freezer chooses (eq. 3.19);
- batch norm and the next activation quantizer's endpoints -> per-channel
  integer thresholds, so the next code is N integer comparisons;
- XNOR weights -> sign bits, their mean|W| scale into the thresholds (or, for
  the last layer, a fixed-point per-class scale);
- a layer's value that a join or a fork needs before its quantizer (Bi-Real's
  shortcut) -> an `Affine` node, acc * mul + add in a fixed point chosen per
  value; joins -> `Add` (inputs shifted to one fixed point) and `Concat`; the
  quantizer after a join -> a `Threshold` node;
- global average pooling of a value (``nn.AdaptiveAvgPool2d(1)``,
  ``x.mean((2, 3))``) -> a `GlobalSum` node, the mean's 1/(H W) into the next
  thresholds, at the image size `FreezeConfig.image`.

Every width is derived from the worst case and checked against
`FreezeConfig` before anything runs.
"""

import math
import operator
from dataclasses import dataclass, field, replace

import torch
import torch.fx
from torch import nn

from bitfab.hls_gen.errors import FreezeError, UnsupportedLayerError
from bitfab.hls_gen.golden.fixedpoint import (LayerWidths, check_width, choose_frac_bits,
    signed_bits, to_fixed, unsigned_bits)
from bitfab.hls_gen.golden.kernels import Geometry
from bitfab.hls_gen.golden.ir import (Add, Affine, Concat, GlobalSum, Graph, MaxPool,
    PopcountLayer, Slice, Threshold, Thresholds, XnorLayer)
from bitfab.hls_gen.frontend import registrar
from bitfab.hls_gen.frontend.layers import (BitplaneInput, PAConv2d, PALinear, XNORConv2d,
    XNORLinear)
from bitfab.hls_gen.frontend.quant import PAActivation, SignActivation, ThresholdSign

__all__ = ["FreezeConfig", "freeze", "handler"]


@dataclass(frozen=True)
class FreezeConfig:
    """Widths the hardware offers; the freezer fits the model into them or refuses.

    Parameters
    ----------
    coef_bits : int
        Signed width of each merged coefficient phi_k and per-class scale. At 16
        the golden model gives the same class as the PA model evaluated in float64
        on every digits test image (12 bits lose one image in the M=8, N=7 CNN).
    acc_bits : int
        Largest signed accumulator (and class score) width available.
    image : tuple of int
        (height, width) of the images a model with global average pooling is frozen
        for: the pooling's 1/(H W) goes into the next thresholds (default the
        digits' 8 x 8). Models without one take any size.
    """

    coef_bits: int = 16
    acc_bits: int = 32
    image: tuple = (8, 8)

    def __post_init__(self):
        if not isinstance(self.coef_bits, int) or not 2 <= self.coef_bits <= 32:
            raise ValueError(f"coef_bits must be an integer in 2..32, not {self.coef_bits!r}")
        if not isinstance(self.acc_bits, int) or not 2 <= self.acc_bits <= 62:
            # int64 golden arithmetic must hold every intermediate exactly.
            raise ValueError(f"acc_bits must be an integer in 2..62, not {self.acc_bits!r}")
        if (not isinstance(self.image, (tuple, list)) or len(self.image) != 2
                or not all(isinstance(v, int) and v > 0 for v in self.image)):
            raise ValueError(f"image must be (height, width), positive integers, not "
                             f"{self.image!r}")


_HANDLERS = {}
#: ``@handler(module_type, ...)``: the front-end handler of those module types.
handler = registrar(_HANDLERS)


@dataclass
class _Activation:
    """How the current activation tensor is encoded for the next compute layer."""

    encoding: str            # "bitplanes", "onehot", "sign"
    planes: int              # bases per element
    values: list             # real value of each plane (bitplanes: 2^b * scale; onehot: beta_j)


@dataclass
class _Pending:
    """A value waiting for its batch norm and activation quantizer: a compute layer's
    accumulator (`layer` set), or a fixed-point tensor already in the graph (`layer`
    None: an `Affine` or `Add` output named `tensor`, `frac` fractional bits)."""

    path: str
    layer: object            # PopcountLayer or XnorLayer, output not yet set; or None
    real_scale: torch.Tensor  # (C,) float64: real output = real_scale * integer acc
    per_class_scale: bool     # XNOR: real_scale differs per channel (mean|W|)
    bn: tuple | None = None   # (g, h): bn(y) = g * y + h, per channel, float64
    tensor: str | None = None  # a fixed-point value's tensor
    frac: int = 0
    fixed_bound: int = 0      # a fixed-point value's worst case |y|

    @property
    def bound(self):
        return self.layer.widths.acc_bound if self.layer is not None else self.fixed_bound


@dataclass
class _State:
    """What one tensor of the PyTorch model is to the freezer: activation codes in the
    IR tensor `tensor` (`activation` set), or a value awaiting its quantizer (`pending`)."""

    activation: _Activation | None
    pending: _Pending | None
    flatten: bool
    tensor: str


@dataclass
class _Builder:
    config: FreezeConfig
    input: BitplaneInput | None = None
    activation: _Activation | None = None
    pending: _Pending | None = None
    flatten: bool = False
    tensor: str = "input"     # the IR tensor holding the current activation codes
    fanout: int = 1           # how many nodes of the model read the current value
    nodes: list = field(default_factory=list)
    in_shape: tuple | None = None   # the current value's shape in PyTorch, where known
    input_shape: tuple | None = None  # the pixels' shape, where known

    def save(self):
        return _State(self.activation, self.pending, self.flatten, self.tensor)

    def load(self, state, fanout=1):
        # A copy of the pending value: a handler adds its batch norm to this reader's
        # value only, not to another reader's of the same tensor.
        self.activation, self.flatten, self.tensor = (state.activation, state.flatten,
                                                      state.tensor)
        self.pending = state.pending and replace(state.pending)
        self.fanout = fanout

    def producer(self, tensor):
        return next((n for n in self.nodes if n.outputs and n.outputs[0] == tensor), None)

    def fixed(self, path):
        """The current value as a fixed-point tensor in the graph: a compute layer's
        accumulator (batch norm applied) becomes its layer and an `Affine` node."""
        p = self.pending
        if p.layer is None and p.bn is None:
            return p
        if p.layer is not None:
            # The layer gives its accumulator itself (no thresholds): the scores' width.
            p.layer.widths = replace(p.layer.widths, threshold_bits=0,
                                     logit_bits=p.layer.widths.acc_bits)
            p.layer.outputs = [p.layer.name]
            self.nodes.append(p.layer)
            source, base = p.layer.name, p.layer.name
        else:
            source, base = p.tensor, p.tensor
        g, h = p.bn if p.bn is not None else (torch.ones_like(p.real_scale),
                                              torch.zeros_like(p.real_scale))
        a = g * p.real_scale
        coef_bits, acc_bits = self.config.coef_bits, self.config.acc_bits
        mul_frac = choose_frac_bits(a.tolist(), coef_bits)
        mul = torch.tensor([to_fixed(v, mul_frac) for v in a.tolist()], dtype=torch.int64)
        # The value's fixed point: as many fractional bits as keep its worst case within
        # acc_bits - 2 (room for a join of up to four), at most the multiplier's; the
        # product drops the rest (shift).
        peak = p.bound * float(a.abs().max()) + float(h.abs().max())
        frac = mul_frac if peak == 0 else min(
            mul_frac, acc_bits - 3 - math.ceil(math.log2(peak)))
        shift = mul_frac - frac
        add = torch.tensor([to_fixed(v, frac) for v in h.tolist()], dtype=torch.int64)
        bound = ((p.bound * int(mul.abs().max())) >> shift) + int(add.abs().max())
        name = f"{base}_value"
        bits = check_width(name, "fixed-point value", bound, acc_bits, "lower coef_bits")
        self.nodes.append(Affine(name, [source], mul=mul, add=add, shift=shift, frac=frac,
                                 coef_bits=coef_bits, bits=bits))
        self.pending = _Pending(path, None, torch.full_like(a, 2.0 ** -frac), False,
                                tensor=name, frac=frac, fixed_bound=bound)
        return self.pending

    def need_input(self, path, module):
        if self.activation is None:
            raise FreezeError(f"{path} ({type(module).__name__}): the model must start with "
                              f"BitplaneInput, which fixes the input encoding")

    def need_pending(self, path, module):
        if self.pending is None:
            raise FreezeError(f"{path} ({type(module).__name__}) must follow a compute layer "
                              f"(PALinear, PAConv2d, XNORLinear, XNORConv2d)")

    def start(self, path, module, layer, real_scale, per_class_scale):
        if self.pending is not None:
            raise FreezeError(f"{path}: the output of {self.pending.path} reaches it without "
                              f"an activation quantizer (PAActivation or SignActivation)")
        layer.inputs = [self.tensor]
        self.pending = _Pending(path, layer, real_scale, per_class_scale)
        self.flatten = False

    def close(self, path, thresholds, activation):
        p = self.pending
        if p.layer is not None:
            p.layer.output = thresholds
            p.layer.outputs = [p.layer.name]
            self.nodes.append(p.layer)
            self.tensor = p.layer.name
        else:
            # The quantizer after a join: its own node, on the fixed-point value.
            name = _layer_name(path)
            self.nodes.append(Threshold(name, [p.tensor], output=thresholds,
                                        bits=signed_bits(-p.bound, p.bound)))
            self.tensor = name
        self.pending = None
        self.activation = activation


class _Tracer(torch.fx.Tracer):
    """torch.fx's tracer with every module bitfab has a handler for kept whole (the
    freezer reads their parameters, not their arithmetic)."""

    def is_leaf_module(self, module, qualname):
        return type(module) in _HANDLERS or super().is_leaf_module(module, qualname)


def _capture(model):
    """The model's torch.fx graph, or an error naming why it cannot be captured."""
    try:
        captured = _Tracer().trace(model)
    except Exception as error:  # noqa: BLE001 - any tracing failure is the user's model
        raise UnsupportedLayerError(
            f"{type(model).__name__}: torch.fx cannot capture its forward "
            f"({type(error).__name__}: {error}); the freezer needs a forward without "
            f"control flow that depends on the data") from None
    if isinstance(model, torch.fx.GraphModule):
        # A graph module's shapes (an imported model's) stay with its nodes' names.
        known = {n.name: n.meta["tensor_meta"] for n in model.graph.nodes
                 if "tensor_meta" in n.meta}
        for node in captured.nodes:
            if node.name in known and "tensor_meta" not in node.meta:
                node.meta["tensor_meta"] = known[node.name]
    return captured


def freeze(model, config=FreezeConfig()):
    """Turn a trained bitfab model into its integer golden model.

    Parameters
    ----------
    model : nn.Module
        A model built from bitfab layers (see `bitfab.hls_gen.frontend.layers`): an
        `nn.Sequential`, or a module whose `forward` torch.fx captures, with joins
        (``x + y``, ``torch.cat`` on channels, a scale by a constant).
    config : FreezeConfig
        Coefficient and accumulator widths.

    Returns
    -------
    Graph
        The golden model.

    Raises
    ------
    UnsupportedLayerError
        A module or function with no handler, naming its path (or captured node and
        position) and type; a `forward` torch.fx cannot capture.
    FreezeError
        A model whose structure cannot be made exact (wrong order, padding a
        +-1 code cannot hold, unsorted endpoints, batch norm in training mode, a
        sum of codes, a join of different channel counts or scales).
    WidthOverflowError
        A layer whose worst case does not fit `config`.
    """
    if not isinstance(model, nn.Module) or type(model) in _HANDLERS:
        raise UnsupportedLayerError(f"freeze expects a network of bitfab layers (an "
                                    f"nn.Sequential, or a module whose forward torch.fx "
                                    f"captures), not {type(model).__name__}")
    captured = _capture(model)
    if any(_is_global_pool(model, node) for node in captured.nodes):
        _propagate_shapes(model, captured, config.image)
    builder = _Builder(config)
    states = {}
    with torch.no_grad():
        for position, node in enumerate(captured.nodes):
            if node.op == "placeholder":
                if states:
                    raise UnsupportedLayerError(f"input {node.name}: the model takes one "
                                                f"input, the pixels")
                meta = node.meta.get("tensor_meta")
                builder.input_shape = tuple(meta.shape) if meta is not None else None
                states[node] = builder.save()
            elif node.op == "output":
                _load(builder, states, node.args[0], node)
                _finish_last_layer(builder)
            elif node.op == "call_module":
                _module_node(builder, states, model, node)
            else:
                _function_node(builder, states, node, position)
    return Graph(builder.input.bits, builder.input.scale, builder.nodes)


def _load(builder, states, value, reader):
    """Make `value` (an fx node) the builder's current value, as `reader` reads it."""
    if not isinstance(value, torch.fx.Node) or value not in states:
        raise UnsupportedLayerError(f"{_where(reader)} reads {value!r}, which is not a "
                                    f"tensor of the model")
    builder.load(states[value], fanout=len(value.users))
    meta = value.meta.get("tensor_meta")
    builder.in_shape = tuple(meta.shape) if meta is not None else None
    if builder.pending is not None and builder.fanout > 1:
        # A value read twice (a fork: Bi-Real's shortcut and its sign) is computed once:
        # as a fixed-point tensor that both readers take.
        builder.fixed(builder.pending.path)
        states[value] = builder.save()
        builder.pending = replace(builder.pending)


def _where(node):
    if node.op == "call_module":
        return f"model.{node.target}"
    return f"node {node.name}"


def _module_node(builder, states, model, node):
    path = f"model.{node.target}"
    module = model.get_submodule(node.target)
    if len(node.args) != 1 or node.kwargs:
        raise UnsupportedLayerError(f"{path} ({type(module).__name__}) is called with "
                                    f"{len(node.args)} arguments; bitfab's modules take one "
                                    f"tensor")
    fn = _HANDLERS.get(type(module))
    if fn is None:
        supported = ", ".join(sorted(t.__name__ for t in _HANDLERS))
        raise UnsupportedLayerError(
            f"{path} ({type(module).__module__}.{type(module).__name__}) is not "
            f"supported; supported modules: {supported}")
    _load(builder, states, node.args[0], node)
    _check_finite(path, module)
    fn(builder, path, module)
    states[node] = builder.save()


_ADD = {operator.add, torch.add}
_SUB = {operator.sub, torch.sub}
_OFFSET = _ADD | _SUB
_MUL = {operator.mul, torch.mul}
_SCALE = {operator.mul: lambda c: c, torch.mul: lambda c: c,
          operator.truediv: lambda c: 1.0 / c, torch.div: lambda c: 1.0 / c}


def _function_node(builder, states, node, position):
    target = node.target
    name = getattr(target, "__name__", str(target))
    where = f"node {node.name} ({name}, position {position} of the captured graph)"
    if node.op == "call_function" and target in _OFFSET and not node.kwargs and any(
            _is_number(a) for a in node.args):
        _offset(builder, states, node, where)
    elif node.op == "call_function" and target in _ADD and not node.kwargs:
        _join_add(builder, states, node, where)
    elif node.op == "call_function" and target in _SCALE and not node.kwargs:
        _scale(builder, states, node, where, _SCALE[target])
    elif node.op == "call_function" and target is torch.cat:
        _join_concat(builder, states, node, where)
    elif node.op == "call_function" and target is operator.getitem:
        _channel_slice(builder, states, node, where)
    elif _is_global_pool(None, node):
        _load(builder, states, node.args[0], node)
        _global_sum(builder, where, node.name)
        states[node] = builder.save()
    elif (node.op == "call_function" and target is torch.flatten) or (
            node.op == "call_method" and target == "flatten"):
        start = node.kwargs.get("start_dim", node.args[1] if len(node.args) > 1 else 1)
        end = node.kwargs.get("end_dim", node.args[2] if len(node.args) > 2 else -1)
        _load(builder, states, node.args[0], node)
        _flatten(builder, f"node {node.name}", nn.Flatten(start, end))
        states[node] = builder.save()
    else:
        raise UnsupportedLayerError(f"{where}: {node.op} {name} is not supported; the "
                                    f"functions bitfab maps are x + y, torch.cat on "
                                    f"channels, x[:, a:b] of channels, a scale by a "
                                    f"constant, flatten and the global mean x.mean((2, 3))")


def _is_global_pool(model, node):
    """Whether fx `node` is global average pooling: ``nn.AdaptiveAvgPool2d(1)`` (of
    `model`, when given), ``torch.mean``/``x.mean`` over dimensions 2 and 3, or
    ``F.adaptive_avg_pool2d(x, 1)``."""
    if node.op == "call_module":
        module = model.get_submodule(node.target) if model is not None else None
        return (isinstance(module, nn.AdaptiveAvgPool2d)
                and module.output_size in (1, (1, 1), [1, 1]))
    if node.op == "call_function" and node.target is nn.functional.adaptive_avg_pool2d:
        size = node.kwargs.get("output_size", node.args[1] if len(node.args) > 1 else None)
        return size in (1, (1, 1), [1, 1])
    if (node.op == "call_function" and node.target is torch.mean) or (
            node.op == "call_method" and node.target == "mean"):
        dims = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else None)
        dims = [dims] if isinstance(dims, int) else list(dims or [])
        return sorted(d % 4 for d in dims) == [2, 3]
    return False


def _propagate_shapes(model, captured, image):
    """Every fx node's tensor shape (``meta["tensor_meta"]``), from one zero image of
    `image` (height, width) with the first convolution's channels."""
    from torch.fx.passes.shape_prop import ShapeProp
    first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if first is None:
        raise FreezeError(f"{type(model).__name__}: global average pooling needs images, "
                          f"and the model has no convolution")
    try:
        ShapeProp(torch.fx.GraphModule(model, captured)).propagate(
            torch.zeros(1, first.in_channels, *image))
    except Exception as error:  # noqa: BLE001 - the user's model on the configured size
        raise FreezeError(f"{type(model).__name__}: cannot run on {image[0]} x {image[1]} "
                          f"images (FreezeConfig.image) to size its global average pooling "
                          f"({type(error).__name__}: {error})") from None


def _global_sum(builder, where, name):
    """Global average pooling of the current value: a `GlobalSum` of its positions, the
    mean's 1/(H W) into its real scale (the next thresholds hold it)."""
    if builder.pending is None:
        raise FreezeError(f"{where}: averages the activation codes of {builder.tensor}; "
                          f"global average pooling takes a value before its quantizer "
                          f"(Bi-Real pools the real-valued block output)")
    shape = builder.in_shape
    if shape is None or len(shape) != 4:
        raise FreezeError(f"{where}: global average pooling of a tensor of shape {shape}; it "
                          f"pools images (N, C, H, W)")
    positions = shape[2] * shape[3]
    value = builder.fixed(builder.pending.path)
    # The sum keeps as many fractional bits as fit acc_bits - 2 (room for a join of up
    # to four after it), as a value does; it drops the rest (shift).
    total = value.bound * positions
    shift = max(0, signed_bits(-total, total) - (builder.config.acc_bits - 2))
    bound = -(-total >> shift)
    bits = check_width(name, "global sum", bound, builder.config.acc_bits, "lower coef_bits")
    builder.nodes.append(GlobalSum(name, [value.tensor], positions=positions, shift=shift,
                                   frac=value.frac - shift, bits=bits))
    builder.pending = _Pending(where, None, value.real_scale * 2.0 ** shift / positions, False,
                               tensor=name, frac=value.frac - shift, fixed_bound=bound)


def _fixed_input(builder, states, value, node, where):
    """A join's input as a fixed-point `_Pending` in the graph."""
    _load(builder, states, value, node)
    if builder.pending is None:
        raise FreezeError(f"{where}: joins the activation codes of {builder.tensor}; a sum "
                          f"takes values before their quantizer (Bi-Real's shortcut carries "
                          f"the pre-sign value)")
    return builder.fixed(builder.pending.path)


def _join_add(builder, states, node, where):
    if len(node.args) != 2:
        raise UnsupportedLayerError(f"{where}: adds {len(node.args)} operands, not two")
    values = [_fixed_input(builder, states, value, node, where) for value in node.args]
    channels = {len(v.real_scale) for v in values}
    if len(channels) > 1:
        raise FreezeError(f"{where}: adds {' and '.join(v.tensor for v in values)} of "
                          f"{' and '.join(str(len(v.real_scale)) for v in values)} channels")
    frac = min(v.frac for v in values)
    # Every input's real scale must be 2^-frac_i times one common factor, so that
    # shifts align them.
    factors = [v.real_scale * 2.0 ** v.frac for v in values]
    if not all(torch.equal(f, factors[0]) for f in factors[1:]):
        raise FreezeError(f"{where}: adds values whose scales differ by other than a power "
                          f"of two ({' and '.join(v.tensor for v in values)}); scale both "
                          f"sides alike")
    bound = sum((v.bound >> (v.frac - frac)) + (v.frac > frac) for v in values)
    bits = check_width(node.name, "sum", bound, builder.config.acc_bits, "lower coef_bits")
    builder.nodes.append(Add(node.name, [v.tensor for v in values],
                             fracs=[v.frac for v in values], frac=frac, bits=bits))
    pending = _Pending(f"node {node.name}", None, factors[0] * 2.0 ** -frac, False,
                       tensor=node.name, frac=frac, fixed_bound=bound)
    states[node] = _State(None, pending, False, node.name)


def _scale(builder, states, node, where, how):
    """A value times (or divided by) a constant: only its real scale changes (a fractal
    join's mean is a sum and a 1/k in the next thresholds)."""
    value, constant = node.args
    if isinstance(value, (int, float)) and node.target in _MUL:
        value, constant = constant, value      # c * x
    if not isinstance(constant, (int, float)) or isinstance(constant, bool) or constant == 0:
        raise UnsupportedLayerError(f"{where}: scales by {constant!r}; only a non-zero "
                                    f"constant number maps")
    _load(builder, states, value, node)
    _value_of(builder, where, "scales")
    c = how(float(constant))
    p = builder.pending
    if p.bn is not None:
        # After its batch norm (FINN's TensorNorm ends in one): c (g y + h).
        p.bn = (p.bn[0] * c, p.bn[1] * c)
    else:
        p.real_scale = p.real_scale * c
    states[node] = builder.save()


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _offset(builder, states, node, where):
    """A constant added to (or subtracted from) a value: its batch norm's offset grows
    by it (the next thresholds hold it, or the layer's fixed-point value)."""
    value, constant = node.args
    subtract = node.target in _SUB
    if _is_number(value):
        if subtract:
            raise UnsupportedLayerError(f"{where}: subtracts a value from a constant; "
                                        f"bitfab maps x - c and x + c")
        value, constant = constant, value      # c + x
    if not _is_number(constant) or not math.isfinite(constant):
        raise UnsupportedLayerError(f"{where}: adds {constant!r}; only a finite constant "
                                    f"number maps")
    sign = -1.0 if subtract else 1.0
    _load(builder, states, value, node)
    _value_of(builder, where, "offsets")
    p = builder.pending
    g, h = p.bn if p.bn is not None else (torch.ones_like(p.real_scale),
                                          torch.zeros_like(p.real_scale))
    p.bn = (g, h + sign * float(constant))
    states[node] = builder.save()


def _value_of(builder, where, what):
    """Make the builder's current value one a constant can scale or offset: a pending
    value as it is; the pixels of the input (FINN's TFC binarizes 2 x - 1) as a value
    of their own, whose quantizer becomes a `Threshold` node on the input."""
    if builder.pending is not None:
        return
    if builder.tensor != "input" or builder.input is None:
        raise FreezeError(f"{where}: {what} activation codes; do it to the value before "
                          f"its quantizer")
    shape = builder.input_shape    # a flatten of the pixels is the next layer's
    if shape is None or len(shape) < 2:
        raise FreezeError(f"{where}: {what} the input pixels, whose shape the freezer does "
                          f"not know; the thresholds of their quantizer are per channel")
    bits = builder.input.bits
    builder.pending = _Pending(where, None, torch.full((shape[1],), builder.input.scale,
                                                       dtype=torch.float64), False,
                               tensor="input", frac=0, fixed_bound=(1 << bits) - 1)


def _channel_slice(builder, states, node, where):
    """``x[:, a:b]`` of activation codes: a `Slice` of channels a .. b - 1 (REAF's input
    channel groups, concatenated for each output group)."""
    value, index = node.args
    full = slice(None)
    index = index if isinstance(index, tuple) else (index,)
    rest = index[2:]
    channels = index[1] if len(index) > 1 else None
    if (len(index) < 2 or index[0] != full or not isinstance(channels, slice)
            or channels.step not in (None, 1) or not isinstance(channels.start or 0, int)
            or not isinstance(channels.stop, int)
            or not all(i == full or i is Ellipsis for i in rest)):
        raise UnsupportedLayerError(f"{where}: indexes {index!r}; bitfab maps x[:, a:b], a "
                                    f"slice of channels with both ends given")
    _load(builder, states, value, node)
    if builder.pending is not None:
        raise FreezeError(f"{where}: slices the value of {builder.pending.path} before its "
                          f"quantizer; slice channels of activation codes")
    if builder.activation is None or builder.flatten:
        raise FreezeError(f"{where}: slices {builder.tensor}, which is not activation codes; "
                          f"slice channels after a quantizer, before any flatten")
    start, stop = channels.start or 0, channels.stop
    if start < 0 or stop <= start:
        raise UnsupportedLayerError(f"{where}: slices channels {start} .. {stop - 1}; give "
                                    f"0 <= a < b")
    builder.nodes.append(Slice(node.name, [builder.tensor], start=start, stop=stop))
    states[node] = _State(builder.activation, None, False, node.name)


def _join_concat(builder, states, node, where):
    tensors = node.args[0] if node.args else node.kwargs.get("tensors")
    dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
    if dim != 1:
        raise UnsupportedLayerError(f"{where}: concatenates along dimension {dim}; bitfab "
                                    f"concatenates channels (dim=1)")
    inputs = []
    for value in tensors:
        _load(builder, states, value, node)
        if builder.activation is None or builder.pending is not None or builder.flatten:
            raise FreezeError(f"{where}: concatenates activation codes (after a quantizer, "
                              f"before any flatten); {builder.tensor} is not")
        inputs.append((builder.tensor, builder.activation))
    first = inputs[0][1]
    for tensor, act in inputs[1:]:
        if (act.encoding, act.planes, act.values) != (first.encoding, first.planes,
                                                      first.values):
            raise FreezeError(f"{where}: concatenates codes of different quantizers "
                              f"({inputs[0][0]}: {first.encoding} {first.planes} planes, "
                              f"{tensor}: {act.encoding} {act.planes} planes, or their "
                              f"levels differ); the next layer's coefficients need one")
    builder.nodes.append(Concat(node.name, [t for t, _ in inputs]))
    states[node] = _State(first, None, False, node.name)


def _check_finite(path, module):
    """Refuse a module holding a NaN or an infinity in a parameter or buffer: frozen, it
    would become an integer out of every width (a threshold of -2^63) or no integer."""
    tensors = [*module.named_parameters(recurse=False), *module.named_buffers(recurse=False)]
    for name, tensor in tensors:
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            bad = int((~torch.isfinite(tensor)).sum())
            raise FreezeError(f"{path}.{name}: {bad} of {tensor.numel()} values are NaN or "
                              f"infinite; a golden model holds integers made from finite "
                              f"values only")


@handler(BitplaneInput)
def _bitplane_input(builder, path, module):
    if builder.activation is not None or builder.nodes:
        raise FreezeError(f"{path}: BitplaneInput must be the first module")
    values = [2.0 ** b * module.scale for b in range(module.bits)]
    builder.activation = _Activation("bitplanes", module.bits, values)
    builder.input = module


@handler(nn.Flatten)
def _flatten(builder, path, module):
    if module.start_dim != 1 or module.end_dim != -1:
        raise UnsupportedLayerError(f"{path}: only Flatten(start_dim=1, end_dim=-1) is "
                                    f"supported, not ({module.start_dim}, {module.end_dim})")
    if builder.pending is not None:
        if isinstance(builder.producer(builder.pending.tensor), GlobalSum):
            return            # a global pooling's (N, C, 1, 1) is (N, C) already
        raise FreezeError(f"{path}: Flatten must come after {builder.pending.path}'s "
                          f"activation quantizer, not before it")
    builder.flatten = True


@handler(nn.MaxPool2d)
def _max_pool(builder, path, module):
    """Max pooling after a convolution's activation quantizer: pooling its codes, which
    is pooling the values (`golden.window.max_pool_codes`)."""
    kernel, stride = module.kernel_size, module.stride
    square = lambda v: v if isinstance(v, int) else (v[0] if len(set(v)) == 1 else None)
    kernel, stride = square(kernel), square(stride)
    padding, dilation = square(module.padding), square(module.dilation)
    if kernel is None or stride is None or padding != 0 or dilation != 1 or module.ceil_mode \
            or module.return_indices:
        raise UnsupportedLayerError(
            f"{path}: max pooling maps to hardware with a square kernel and stride, no "
            f"padding, dilation 1, ceil_mode=False; not kernel {module.kernel_size}, stride "
            f"{module.stride}, padding {module.padding}, dilation {module.dilation}, "
            f"ceil_mode {module.ceil_mode}")
    if builder.pending is not None:
        raise FreezeError(f"{path}: max pooling must come after {builder.pending.path}'s "
                          f"activation quantizer (it pools the codes), not before it")
    last = builder.producer(builder.tensor)
    if last is None or builder.flatten:
        raise FreezeError(f"{path}: max pooling must follow a convolution's activation "
                          f"quantizer (before any Flatten)")
    if (isinstance(last, (PopcountLayer, XnorLayer)) and builder.fanout == 1
            and last.geometry.kind == "conv2d"):
        if last.pool is not None:
            raise FreezeError(f"{path}: a second pooling after {last.name}")
        last.pool = (kernel, stride)      # the layer's own pool, as in a chain
        return
    if isinstance(last, (PopcountLayer, XnorLayer)) and last.geometry.kind != "conv2d":
        raise FreezeError(f"{path}: max pooling must follow a convolution's activation "
                          f"quantizer (before any Flatten)")
    name = _layer_name(path)
    builder.nodes.append(MaxPool(name, [builder.tensor], kernel=kernel, stride=stride))
    builder.tensor = name


@handler(nn.AdaptiveAvgPool2d)
def _adaptive_avg_pool(builder, path, module):
    if module.output_size not in (1, (1, 1), [1, 1]):
        raise UnsupportedLayerError(f"{path}: adaptive average pooling maps to 1 x 1 (global "
                                    f"average pooling), not {module.output_size}")
    _global_sum(builder, path, _layer_name(path))


@handler(nn.Dropout, nn.Identity)
def _no_op(builder, path, module):
    """Identity at inference."""


def _geometry(path, module):
    """Geometry and fan-in K of a linear or conv module; refuses what hardware can't do."""
    if isinstance(module, nn.Linear):
        return Geometry("linear"), module.in_features
    if isinstance(module.padding, str) or module.padding_mode != "zeros":
        raise UnsupportedLayerError(f"{path}: padding must be integers with padding_mode "
                                    f"'zeros', not {module.padding!r}/{module.padding_mode!r}")
    if tuple(module.dilation) != (1, 1):
        raise UnsupportedLayerError(f"{path}: dilation {tuple(module.dilation)} is not "
                                    f"supported (only 1)")
    kh, kw = module.kernel_size
    geometry = Geometry("conv2d", tuple(module.stride), tuple(module.padding), module.groups)
    return geometry, module.in_channels // module.groups * kh * kw


def _layer_name(path):
    return path.removeprefix("model.").replace(".", "_")


def _widths(builder, name, fan_in, bound, coef_bits, coef_frac, hint):
    """Widths of a hidden layer whose accumulator is at most `bound` in magnitude."""
    acc_bits = check_width(name, "accumulator", bound, builder.config.acc_bits, hint)
    return LayerWidths(fan_in, unsigned_bits(fan_in), coef_bits, coef_frac, acc_bits, bound,
                       threshold_bits=signed_bits(-bound, bound + 1))


@handler(PALinear, PAConv2d)
def _pa_layer(builder, path, module):
    builder.need_input(path, module)
    act = builder.activation
    if act.encoding == "sign":
        raise FreezeError(f"{path} ({type(module).__name__}) receives +-1 activations from a "
                          f"SignActivation; PA layers take bit planes or PAActivation codes")
    geometry, fan_in = _geometry(path, module)
    weight = module.weight.detach().double()
    quantizer = module.quantizer
    bases = quantizer.bases(weight)
    alphas = quantizer.alphas(weight)
    # eq. 3.19: phi_k = alpha_i * beta_j, one fixed point for the whole layer.
    phi = [[float(a) * value for value in act.values] for a in alphas]
    coef_bits = builder.config.coef_bits
    frac = choose_frac_bits([p for row in phi for p in row], coef_bits)
    coefficients = torch.tensor([[to_fixed(p, frac) for p in row] for row in phi],
                                dtype=torch.int64)
    name = _layer_name(path)
    # One-hot codes set one plane per input, bit planes up to all of them.
    terms = 1 if act.encoding == "onehot" else act.planes
    bound = fan_in * terms * (1 << (coef_bits - 1))
    widths = _widths(builder, name, fan_in, bound, coef_bits, frac,
                     "lower coef_bits or split the layer")
    layer = PopcountLayer(name, geometry, widths, act.encoding, act.planes, builder.flatten,
                          bases=bases, coefficients=coefficients)
    real_scale = torch.full((weight.shape[0],), 2.0 ** -frac, dtype=torch.float64)
    builder.start(path, module, layer, real_scale, per_class_scale=False)


@handler(XNORLinear, XNORConv2d)
def _xnor_layer(builder, path, module):
    builder.need_input(path, module)
    act = builder.activation
    if act.encoding == "onehot":
        raise FreezeError(f"{path} ({type(module).__name__}) receives PAActivation codes; "
                          f"XNOR layers take bit planes or SignActivation outputs")
    geometry, fan_in = _geometry(path, module)
    weight = module.weight.detach().double()
    positive = (weight >= 0).long()    # sign() with +1 at 0, as `sign_ste`
    alpha = weight.abs().flatten(1).mean(dim=1)
    name = _layer_name(path)
    padded = geometry.kind == "conv2d" and any(geometry.padding)
    if act.encoding == "sign":
        if padded and module.pad_value != -1.0:
            raise FreezeError(f"{path}: pad_value {module.pad_value:g} cannot be held by a "
                              f"+-1 code; use pad_value=-1 for XNOR layers after a "
                              f"SignActivation")
        # |K - 2 popcount(XOR)| <= K; no coefficients.
        widths = _widths(builder, name, fan_in, fan_in, 0, 0, "split the layer")
        layer = XnorLayer(name, geometry, widths, "sign", 1, builder.flatten,
                          weight_bits=positive)
        builder.start(path, module, layer, alpha, per_class_scale=True)
        return
    # Fed with bit planes: sign(W) . x = sum_b 2^b (popcount(T+ & x_b) - popcount(T- & x_b)),
    # the AND datapath with M = 2 bases and integer coefficients +-2^b.
    if padded and module.pad_value != 0.0:
        raise FreezeError(f"{path}: a first layer fed with bit planes pads with pixel 0; "
                          f"set pad_value=0, not {module.pad_value:g}")
    planes = act.planes
    coef_bits = builder.config.coef_bits
    needed = signed_bits(-(1 << (planes - 1)), 1 << (planes - 1))
    if needed > coef_bits:
        raise FreezeError(f"{path}: coefficients +-2^{planes - 1} need {needed} bits, more "
                          f"than coef_bits={coef_bits}")
    bases = torch.stack([1 - positive, positive])
    coefficients = torch.tensor([[-(1 << b) for b in range(planes)],
                                 [1 << b for b in range(planes)]], dtype=torch.int64)
    # These coefficients are structural (never reloaded), so the exact bound holds:
    # |sign(W) . x| <= K * (2^planes - 1).
    bound = fan_in * ((1 << planes) - 1)
    widths = _widths(builder, name, fan_in, bound, needed, 0, "split the layer")
    layer = PopcountLayer(name, geometry, widths, "bitplanes", planes, builder.flatten,
                          bases=bases, coefficients=coefficients)
    builder.start(path, module, layer, alpha * act.values[0], per_class_scale=True)


@handler(nn.BatchNorm1d, nn.BatchNorm2d)
def _batch_norm(builder, path, module):
    builder.need_pending(path, module)
    if builder.pending.bn is not None:
        raise FreezeError(f"{path}: a second batch norm after {builder.pending.path}")
    if module.training or module.running_mean is None:
        raise FreezeError(f"{path}: batch norm must be in eval mode with running statistics "
                          f"(call model.eval() before freeze)")
    inv_std = 1.0 / torch.sqrt(module.running_var.double() + module.eps)
    g = inv_std * (module.weight.double() if module.affine else 1.0)
    h = (module.bias.double() if module.affine else 0.0) - g * module.running_mean.double()
    builder.pending.bn = (g, h)


def _thresholds(pending, endpoints):
    """Integer thresholds T (C, N) and directions so that
    bn(real_scale * Y) >= v_j  <=>  (-Y if descending else Y) >= T_j; `endpoints` v
    (N,) for every channel, or (C, N) a row per channel."""
    scale = pending.real_scale
    g, h = pending.bn if pending.bn is not None else (torch.ones_like(scale),
                                                      torch.zeros_like(scale))
    a = g * scale                              # bn(real output) = a * Y + h
    v = endpoints if endpoints.dim() == 2 else endpoints.view(1, -1)   # per channel, or all
    bound = pending.bound
    descending = a < 0
    safe = torch.where(a == 0, torch.ones_like(a), a).view(-1, 1)
    q = (v - h.view(-1, 1)) / safe            # a > 0: Y >= q;  a < 0: Y <= q <=> -Y >= -q
    t = torch.ceil(torch.where(descending.view(-1, 1), -q, q))
    # a == 0: the code does not depend on Y at all; "always" or "never".
    constant = torch.where(h.view(-1, 1) >= v, float(-bound), float(bound + 1))
    t = torch.where((a == 0).view(-1, 1), constant, t)
    return t.clamp(-bound, bound + 1).long(), descending


@handler(PAActivation)
def _pa_activation(builder, path, module):
    builder.need_pending(path, module)
    v = module.v.detach().double()
    if not bool((v[1:] > v[:-1]).all()):
        raise FreezeError(f"{path}: endpoints v must be strictly increasing, got "
                          f"{[round(x, 4) for x in v.tolist()]} (call constrain_() after "
                          f"each optimiser step)")
    values, descending = _thresholds(builder.pending, v)
    betas = module.beta.detach().double().tolist()
    builder.close(path, Thresholds(values, descending),
                  _Activation("onehot", module.n, betas))


@handler(SignActivation)
def _sign_activation(builder, path, module):
    builder.need_pending(path, module)
    values, descending = _thresholds(builder.pending, torch.zeros(1, dtype=torch.float64))
    builder.close(path, Thresholds(values, descending), _Activation("sign", 1, [1.0]))


def _fold_score_norm(pending):
    """A batch norm (or a constant scale and offset: FINN's TensorNorm) after the last
    layer, g * score + h: g into the per-class scale of XNOR scores, where a layer has
    one (PA scores have none: only a g alike for every class and positive maps); h,
    alike for every class, left out, as it changes no class."""
    g, h = pending.bn
    if float(h.max() - h.min()) != 0.0:
        raise FreezeError(f"batch norm after the last layer {pending.path}: its offsets "
                          f"differ by class ({float(h.min()):g} .. {float(h.max()):g}); the "
                          f"class scores have no bias to hold them")
    uniform = float(g.max() - g.min()) == 0.0
    if not pending.per_class_scale and not (uniform and float(g[0]) > 0):
        raise FreezeError(f"batch norm after the last layer {pending.path}: its gains "
                          f"({float(g.min()):g} .. {float(g.max()):g}) need a multiplier per "
                          f"class, which PA scores have not (a gain alike for every class "
                          f"and positive maps)")
    if pending.per_class_scale:
        pending.real_scale = pending.real_scale * g
    pending.bn = None


@handler(ThresholdSign)
def _threshold_sign(builder, path, module):
    builder.need_pending(path, module)
    t = module.thresholds.double()
    channels = len(builder.pending.real_scale)
    if t.shape[0] not in (1, channels):
        raise FreezeError(f"{path}: {t.shape[0]} thresholds for a value of {channels} "
                          f"channels")
    values, descending = _thresholds(builder.pending, t.expand(channels, 1))
    builder.close(path, Thresholds(values, descending), _Activation("sign", 1, [1.0]))


def _finish_last_layer(builder):
    pending = builder.pending
    if pending is None or pending.layer is None:
        raise FreezeError("the model must end with a compute layer giving class scores, "
                          "not an activation quantizer" + (
                              "" if pending is None else f" or a join ({pending.tensor})"))
    if pending.bn is not None:
        _fold_score_norm(pending)
    layer = pending.layer
    widths = layer.widths
    if pending.per_class_scale:
        # XNOR scores differ per class by mean|W|: keep it as a fixed-point scale.
        coef_bits = builder.config.coef_bits
        scale = pending.real_scale.tolist()
        frac = choose_frac_bits(scale, coef_bits)
        layer.channel_scale = torch.tensor([to_fixed(s, frac) for s in scale],
                                           dtype=torch.int64)
        bound = widths.acc_bound * (1 << (coef_bits - 1))
        logit_bits = check_width(layer.name, "class score", bound, builder.config.acc_bits,
                                 "lower coef_bits")
        layer.widths = replace(widths, threshold_bits=0, scale_bits=coef_bits,
                               scale_frac=frac, logit_bits=logit_bits)
    else:
        # PA: one scale 2^-F for every class; the argmax needs no multiplier.
        layer.widths = replace(widths, threshold_bits=0, logit_bits=widths.acc_bits)
    layer.outputs = [layer.name]
    builder.nodes.append(layer)

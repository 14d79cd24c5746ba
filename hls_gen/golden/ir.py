"""The integer IR produced by `freeze`: it is the golden model.

A `Graph` is a graph of named tensors and nodes in topological order, as an
ONNX/QONNX graph is: the input tensor holds the pixels (bit planes), each
node names the tensors it reads and the one it writes. Compute layers
(`PopcountLayer`, `XnorLayer`) hold only integers (0/1 bases, fixed-point
coefficients, integer thresholds) and their derived widths; the graph ops
(`Affine`, `Add`, `Concat`, `Slice`, `Threshold`, `MaxPool`, `GlobalSum`) make
forks and joins: residual additions in a recorded fixed point, channel
concatenation and slicing (REAF's channel groups), the thresholds after a join,
global average pooling's sum. Every `run`-method delegates to the kernels in
`bitfab.hls_gen.golden.kernels`. `Graph.run` returns every node's intermediate
tensors, and every tensor by name, so a testbench can compare any of them.
Queries follow QONNX's ModelWrapper: `find_producer`, `find_consumers`,
`is_fork_node`, `is_join_node`. A chain of layers (formats 1 and 2, every
`nn.Sequential`) is the graph whose nodes read their predecessor's output.
"""

from dataclasses import asdict, dataclass, field, replace
from math import prod

import torch

from bitfab.hls_gen.golden import kernels as golden
from bitfab.hls_gen.errors import BitfabError, WidthOverflowError
from bitfab.hls_gen.golden.fixedpoint import LayerWidths
from bitfab.hls_gen.golden.kernels import Geometry
from bitfab.hls_gen.golden.window import max_pool_codes

__all__ = ["Thresholds", "PopcountLayer", "XnorLayer", "Affine", "Add", "Concat", "Threshold",
           "MaxPool", "GlobalSum", "Slice", "Graph", "Trace", "TensorInfo", "kernel_shape",
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
    inputs: list | None = None   # tensor names read; None: the previous node's output
    outputs: list | None = None  # tensor names written; None: [name]

    def __post_init__(self):
        self._check_stored()
        self._check_groups()
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

    def _check_groups(self):
        """A grouped convolution's groups must divide its output channels (its weights
        hold each group's input channels): else the golden model could not run it, and
        a hand-edited golden JSON would fail inside torch instead of naming the layer."""
        groups = self.geometry.groups
        if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1:
            raise BitfabError(f"layer {self.name}: groups must be a positive integer, not "
                              f"{groups!r}")
        weights = self.bases[0] if isinstance(self, PopcountLayer) else self.weight_bits
        if groups > 1 and (self.geometry.kind != "conv2d" or weights.shape[0] % groups):
            raise BitfabError(f"layer {self.name}: {groups} groups do not divide its "
                              f"{weights.shape[0]} output channels")

    def group(self, k):
        """Group `k` of a grouped convolution as a layer of its own (groups 1): its output
        channels' weights, thresholds and scales; it reads group `k`'s input channels,
        and the groups' outputs concatenated are this layer's."""
        groups = self.geometry.groups
        if not 0 <= k < groups:
            raise BitfabError(f"layer {self.name}: no group {k} of {groups}")
        weights = self.bases[0] if isinstance(self, PopcountLayer) else self.weight_bits
        rows = weights.shape[0] // groups
        part = slice(k * rows, (k + 1) * rows)
        changes = {"name": f"{self.name}__g{k}", "outputs": [f"{self.name}__g{k}"],
                   "geometry": replace(self.geometry, groups=1),
                   "output": self.output and Thresholds(self.output.values[part],
                                                        self.output.descending[part]),
                   "channel_scale": (None if self.channel_scale is None
                                     else self.channel_scale[part])}
        if isinstance(self, PopcountLayer):
            changes["bases"] = self.bases[:, part]
        else:
            changes["weight_bits"] = self.weight_bits[part]
        return replace(self, **changes)

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

    def run(self, values, trace):
        return self.execute(values[0], trace)

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
    """Per-node intermediate tensors: ``trace[node_name][key]``; every tensor of the
    graph by name in ``trace.tensors``.

    Layer keys: "popcounts" (PA: (B, M, N, C, ...); XNOR: (B, C, ...) XOR counts),
    "acc" (the integer accumulator), and "codes" (next activation codes, pooled
    where the layer pools; "unpooled" then holds them before) or "logits" (a
    layer without thresholds: the class scores, or the accumulator an `Affine`
    reads). Graph ops: "fixed" (`Affine`, `Add`, `GlobalSum`), "codes" (`Threshold`,
    `MaxPool`, `Concat`, `Slice`).
    """

    def __init__(self):
        super().__init__()
        self.tensors = {}


def _names(node, field_name, value):
    """A node's tensor names as a list of non-empty strings, or a `BitfabError`."""
    if (not isinstance(value, (list, tuple)) or not value
            or not all(isinstance(v, str) and v for v in value)):
        raise BitfabError(f"node {node}: {field_name} must be a non-empty list of tensor "
                          f"names, not {value!r}")
    return list(value)


@dataclass
class _Op:
    """A graph op that is not a compute layer: named, reading and writing named tensors."""

    name: str
    inputs: list
    outputs: list | None = None

    #: Inputs the op takes: (least, most); None: no limit.
    arity = (1, 1)

    def __post_init__(self):
        self.inputs = _names(self.name, "inputs", self.inputs)
        self.outputs = _names(self.name, "outputs", self.outputs or [self.name])
        least, most = self.arity
        if len(self.inputs) < least or (most is not None and len(self.inputs) > most):
            raise BitfabError(f"node {self.name} ({type(self).__name__}) takes "
                              f"{least if least == most else f'{least} or more'} inputs, "
                              f"not {len(self.inputs)} ({', '.join(self.inputs)})")
        self._check_stored()

    def _check_stored(self):
        pass

    def _check_shapes(self, values):
        shapes = [tuple(v.shape) for v in values]
        if len(set(shapes)) > 1:
            raise BitfabError(f"node {self.name} ({type(self).__name__}): its inputs must "
                              f"have one shape, not " + ", ".join(
                                  f"{t} {s}" for t, s in zip(self.inputs, shapes)))


@dataclass
class Affine(_Op):
    """A layer's accumulator as a fixed-point value, per channel
    ``y = ((acc * mul[c]) >> shift) + add[c]`` (an arithmetic shift: the floor) with
    `frac` fractional bits: the pre-quantizer value of the layer (its batch norm
    applied) where a join or a fork needs the value itself, not codes (Bi-Real's
    shortcut carries it). `mul` has `coef_bits` signed bits; `bits` is the signed
    width of y, from the freezer's worst case."""

    mul: torch.Tensor = None   # (C,) int64, `coef_bits` signed bits
    add: torch.Tensor = None   # (C,) int64
    shift: int = 0
    frac: int = 0
    coef_bits: int = 16
    bits: int = 32

    def _check_stored(self):
        _check_width(self.name, "mul", self.mul, self.coef_bits)
        _check_width(self.name, "add", self.add, self.bits)
        if self.mul.dim() != 1 or self.mul.shape != self.add.shape:
            raise BitfabError(f"node {self.name}: mul and add must be one value per channel, "
                              f"not shapes {tuple(self.mul.shape)} and {tuple(self.add.shape)}")
        if not isinstance(self.shift, int) or self.shift < 0:
            raise BitfabError(f"node {self.name}: shift must be a non-negative integer, not "
                              f"{self.shift!r}")

    def run(self, values, trace):
        acc = values[0]
        if acc.dim() < 2 or acc.shape[1] != len(self.mul):
            raise BitfabError(f"node {self.name}: scales {len(self.mul)} channels, its input "
                              f"{self.inputs[0]} has shape {tuple(acc.shape)}")
        view = (1, -1) + (1,) * (acc.dim() - 2)
        y = ((acc * self.mul.view(view)) >> self.shift) + self.add.view(view)
        _check_width(self.name, "output", y, self.bits)
        trace["fixed"] = y
        return y


@dataclass
class Add(_Op):
    """The sum of two or more fixed-point tensors of one shape, in the fewest
    fractional bits among them (`frac`): an input with more (`fracs` records each)
    is shifted right to it (the floor; wiring in hardware). A residual shortcut,
    the NASB sum of a cell's ops, a fractal join before its mean (whose 1/k the
    next thresholds hold)."""

    arity = (2, None)

    fracs: list = None
    frac: int = 0
    bits: int = 32

    @property
    def shifts(self):
        """Right shift of each input."""
        return [f - self.frac for f in self.fracs]

    def _check_stored(self):
        if not isinstance(self.fracs, (list, tuple)) or len(self.fracs) != len(self.inputs):
            raise BitfabError(f"node {self.name}: fracs must give the fractional bits of each "
                              f"of its {len(self.inputs)} inputs, not {self.fracs!r}")
        self.fracs = [int(f) for f in self.fracs]
        if self.frac != min(self.fracs):
            raise BitfabError(f"node {self.name}: joins fixed points of {self.fracs} "
                              f"fractional bits into {self.frac}; a sum is in its inputs' "
                              f"fewest ({min(self.fracs)})")

    def run(self, values, trace):
        self._check_shapes(values)
        y = sum(v >> s for v, s in zip(values, self.shifts))
        _check_width(self.name, "sum", y, self.bits)
        trace["fixed"] = y
        return y


@dataclass
class Concat(_Op):
    """Tensors joined along the channels (dimension 1): DenseNet's concatenation, the
    channel groups of a grouped block. Every other dimension must agree."""

    arity = (2, None)

    def run(self, values, trace):
        rest = {(v.dim(), tuple(v.shape[:1]) + tuple(v.shape[2:])) for v in values}
        if len(rest) > 1:
            raise BitfabError(f"node {self.name} (Concat): its inputs differ beyond the "
                              f"channels: " + ", ".join(f"{t} {tuple(v.shape)}" for t, v in
                                                        zip(self.inputs, values)))
        codes = torch.cat(values, dim=1)
        trace["codes"] = codes
        return codes


@dataclass
class Slice(_Op):
    """Channels `start` .. `stop` - 1 (dimension 1) of a tensor of codes: the groups of
    input channels a REAF convolution's output group reads, to be concatenated."""

    start: int = 0
    stop: int = 1

    def _check_stored(self):
        if not (isinstance(self.start, int) and isinstance(self.stop, int)
                and 0 <= self.start < self.stop):
            raise BitfabError(f"node {self.name}: a slice takes channels start .. stop - 1, "
                              f"0 <= start < stop, not {self.start!r} .. {self.stop!r}")

    def run(self, values, trace):
        x = values[0]
        if x.dim() < 2 or x.shape[1] < self.stop:
            raise BitfabError(f"node {self.name} (Slice): channels {self.start} .. "
                              f"{self.stop - 1} of {self.inputs[0]} of shape {tuple(x.shape)}")
        codes = x[:, self.start:self.stop]
        trace["codes"] = codes
        return codes


@dataclass
class Threshold(_Op):
    """Codes from a fixed-point tensor, or from the input pixels: the next activation's
    N comparisons per channel (batch norm and the quantizer's endpoints folded, as a
    layer's own thresholds are; one row of thresholds: the same for every channel);
    `bits` is the signed width of its input."""

    output: Thresholds = None
    bits: int = 32

    def _check_stored(self):
        _check_width(self.name, "thresholds", self.output.values, self.bits + 1)
        values = self.output.values
        if values.numel() and bool((values[..., 1:] < values[..., :-1]).any()):
            raise BitfabError(f"node {self.name}: thresholds must not decrease along each "
                              f"channel's codes")

    def run(self, values, trace):
        y = values[0]
        rows = self.output.values.shape[0]
        if y.dim() < 2 or (y.shape[1] != rows and rows != 1):     # one row: every channel
            raise BitfabError(f"node {self.name}: thresholds for {self.output.values.shape[0]} "
                              f"channels, its input {self.inputs[0]} has shape "
                              f"{tuple(y.shape)}")
        codes = self.output.execute(y)
        trace["codes"] = codes
        return codes


@dataclass
class MaxPool(_Op):
    """Max pooling of codes (or of fixed-point values): `kernel` x `kernel`, `stride`."""

    kernel: int = 2
    stride: int = 2

    def _check_stored(self):
        for what in ("kernel", "stride"):
            value = getattr(self, what)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise BitfabError(f"node {self.name}: pool {what} must be a positive "
                                  f"integer, not {value!r}")

    def run(self, values, trace):
        x = values[0]
        if x.dim() != 4:
            raise BitfabError(f"node {self.name}: pools images (N, C, H, W), not "
                              f"{tuple(x.shape)}")
        codes = max_pool_codes(x.permute(0, 2, 3, 1), self.kernel, self.stride)
        codes = codes.permute(0, 3, 1, 2)
        trace["codes"] = codes
        return codes


@dataclass
class GlobalSum(_Op):
    """Global average pooling's sum: each channel of a fixed-point tensor (N, C, H, W)
    summed over its ``positions`` = H x W positions, then shifted right by `shift`
    (an arithmetic shift: the floor), giving (N, C) with `frac` fractional bits (the
    input's less `shift`). The mean's 1/(H W) is in the next thresholds, as a
    fractal mean's 1/k is; so the image size is part of the model, and an input of
    any other size is refused. `bits` is the signed width of the result."""

    positions: int = 1
    shift: int = 0
    frac: int = 0
    bits: int = 32

    def _check_stored(self):
        for what, low in (("positions", 1), ("shift", 0)):
            value = getattr(self, what)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise BitfabError(f"node {self.name}: {what} must be an integer of at least "
                                  f"{low}, not {value!r}")

    def run(self, values, trace):
        x = values[0]
        if x.dim() != 4 or x.shape[2] * x.shape[3] != self.positions:
            raise BitfabError(f"node {self.name} (GlobalSum): sums images of "
                              f"{self.positions} positions (its thresholds hold 1/"
                              f"{self.positions}), not {self.inputs[0]} of shape "
                              f"{tuple(x.shape)}")
        y = x.sum(dim=(2, 3)) >> self.shift
        _check_width(self.name, "sum", y, self.bits)
        trace["fixed"] = y
        return y


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of a graph: its shape per sample and what its integers are.

    kind: "pixels" (the input, `bits` bit planes), "codes" (activation codes
    0..`levels`, read by their consumers as `encoding`: "onehot", "sign" or
    "bitplanes"), "acc" (a layer's accumulator, `bits` signed), "fixed" (a
    fixed-point value, `bits` signed with `frac` fractional bits) or "scores".
    """

    name: str
    shape: tuple
    kind: str
    bits: int
    levels: int = 0
    encoding: str | None = None
    frac: int = 0


@dataclass
class Graph:
    """The golden model: integer-only, bit-exact specification of the hardware.

    Input: unsigned integer pixels, shape (B, features) or (B, C, H, W), each
    in 0 .. 2**input_bits - 1, in the tensor named `input`. Output: integer class
    scores in the tensor named `output` (the last node's, unless given); the
    class is the first index of the maximum.

    `nodes` are in topological order (they are sorted into one on construction;
    a cycle, a tensor written twice or read but never written, and a node whose
    output nobody reads are refused, naming the nodes). A layer given no
    `inputs` reads the previous node's output, so a list of layers is a chain.
    """

    input_bits: int
    input_scale: float         # real value of one pixel step (documentation only)
    nodes: list
    input: str = "input"
    output: str | None = None

    def __post_init__(self):
        if not isinstance(self.nodes, list) or not self.nodes:
            raise BitfabError(f"a golden model needs at least one node, not {self.nodes!r}")
        previous = self.input
        for node in self.nodes:
            if getattr(node, "inputs", None) is None:
                node.inputs = [previous]
            node.inputs = _names(node.name, "inputs", node.inputs)
            if getattr(node, "outputs", None) is None:
                node.outputs = [node.name]
            node.outputs = _names(node.name, "outputs", node.outputs)
            if len(node.outputs) != 1:
                raise BitfabError(f"node {node.name}: writes one tensor, not "
                                  f"{len(node.outputs)} ({', '.join(node.outputs)})")
            previous = node.outputs[0]
        if self.output is None:
            self.output = previous
        self._check_structure()

    def _check_structure(self):
        names = [node.name for node in self.nodes]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise BitfabError(f"node names must be unique: {', '.join(twice)} named twice")
        producer = {}
        for node in self.nodes:
            for tensor in node.outputs:
                if tensor == self.input or tensor in producer:
                    first = "the graph input" if tensor == self.input else producer[tensor].name
                    raise BitfabError(f"tensor {tensor} is written by both {first} and "
                                      f"node {node.name}")
                producer[tensor] = node
        for node in self.nodes:
            for tensor in node.inputs:
                if tensor != self.input and tensor not in producer:
                    raise BitfabError(f"node {node.name} reads tensor {tensor}, which no "
                                      f"node writes")
        if self.output not in producer:
            raise BitfabError(f"graph output {self.output} is written by no node")
        self.nodes = self._sorted(producer)
        used = {t for node in self.nodes for t in node.inputs} | {self.output}
        for node in self.nodes:
            if node.outputs[0] not in used:
                raise BitfabError(f"node {node.name}: its output {node.outputs[0]} is read "
                                  f"by no node and is not the graph output")

    def _sorted(self, producer):
        """The nodes in a topological order (kept where it already is one), or a
        `BitfabError` naming a cycle."""
        order, state = [], {}

        def visit(node, path):
            if state.get(node.name) == "done":
                return
            if state.get(node.name) == "open":
                cycle = path[path.index(node.name):] + [node.name]
                raise BitfabError(f"the graph has a cycle: {' -> '.join(cycle)}; a streaming "
                                  f"network must be acyclic")
            state[node.name] = "open"
            for tensor in node.inputs:
                if tensor in producer:
                    visit(producer[tensor], path + [node.name])
            state[node.name] = "done"
            order.append(node)

        for node in self.nodes:
            visit(node, [])
        return order

    # Queries, as QONNX's ModelWrapper.
    def node(self, name):
        for node in self.nodes:
            if node.name == name:
                return node
        raise BitfabError(f"the graph has no node {name!r}; its nodes: "
                          f"{', '.join(n.name for n in self.nodes)}")

    def find_producer(self, tensor):
        """The node writing `tensor`, or None for the graph input."""
        return next((n for n in self.nodes if tensor in n.outputs), None)

    def find_consumers(self, tensor):
        """The nodes reading `tensor`, in order."""
        return [n for n in self.nodes if tensor in n.inputs]

    def is_fork_node(self, node):
        """`node`'s output feeds more than one node."""
        return len(self.find_consumers(node.outputs[0])) > 1

    def is_join_node(self, node):
        return len(node.inputs) > 1

    @property
    def is_chain(self):
        """Every node a layer reading the one before (the graph input for the first)."""
        previous = self.input
        for node in self.nodes:
            if not isinstance(node, _Layer) or node.inputs != [previous]:
                return False
            previous = node.outputs[0]
        return previous == self.output

    @property
    def layers(self):
        """The layers of a chain, in order (the list itself: editing it edits the graph).
        A graph with forks or joins is refused, naming its first: what reads `layers`
        (the chain flow, `bitfab build`) maps chains only."""
        if self.is_chain:
            return self.nodes
        for node in self.nodes:
            readers = self.find_consumers(node.outputs[0])
            if not isinstance(node, _Layer):
                what = f"a {type(node).__name__} op"
            elif self.is_join_node(node):
                what = "a join"
            elif len(readers) > 1:
                what = f"a fork, read by {', '.join(n.name for n in readers)}"
            else:
                continue
            raise BitfabError(f"node {node.name} ({what}): this step maps chains of layers; "
                              f"a graph with forks and joins maps to hardware with "
                              f"bitfab.hls_gen.compiler.graph.map_graph")
        raise BitfabError("the graph's nodes do not form a chain")

    def tensors(self, input_shape):
        """Every tensor's `TensorInfo`, for inputs of `input_shape` per sample (shapes
        found by running the golden model on one zero input)."""
        _, trace = self.run(torch.zeros((1, *input_shape), dtype=torch.int64))
        infos = {self.input: TensorInfo(self.input, tuple(input_shape), "pixels",
                                        self.input_bits, encoding="bitplanes")}
        for node in self.nodes:
            name = node.outputs[0]
            shape = tuple(trace.tensors[name].shape[1:])
            reader = next((n for n in self.find_consumers(name) if isinstance(n, _Layer)),
                          None)
            encoding = reader.input_encoding if reader is not None else None
            if isinstance(node, _Layer) and node.output is not None:
                info = TensorInfo(name, shape, "codes", node.output.values.shape[1],
                                  levels=node.output.values.shape[1], encoding=encoding)
            elif isinstance(node, _Layer):
                kind = "scores" if name == self.output else "acc"
                info = TensorInfo(name, shape, kind, node.widths.logit_bits
                                  or node.widths.acc_bits)
            elif isinstance(node, (Affine, Add, GlobalSum)):
                info = TensorInfo(name, shape, "fixed", node.bits, frac=node.frac)
            elif isinstance(node, Threshold):
                levels = node.output.values.shape[1]
                info = TensorInfo(name, shape, "codes", levels, levels=levels,
                                  encoding=encoding)
            else:
                first = infos[node.inputs[0]]
                info = replace(first, name=name, shape=shape,
                               encoding=encoding or first.encoding)
            infos[name] = info
        return infos

    def input_layer(self):
        """The layer that reads the graph's input, or the codes a `Threshold` of the
        pixels makes of it (None if none does)."""
        for node in self.find_consumers(self.input):
            if isinstance(node, Threshold):
                node = next(iter(self.find_consumers(node.outputs[0])), None)
            if isinstance(node, _Layer):
                return node
        return None

    @property
    def thresholds_pixels(self):
        """Whether a `Threshold` reads the input pixels (FINN's TFC binarizes them)."""
        return any(isinstance(n, Threshold) for n in self.find_consumers(self.input))

    @property
    def input_encoding(self):
        """How the input stream carries the pixels: as the layer reading them takes its
        codes (bit planes, or +-1 signs), or as integers where a `Threshold` reads them
        ("bitplanes": their bits)."""
        if self.thresholds_pixels:
            return "bitplanes"
        return self.input_layer().input_encoding

    def check_input(self, pixels):
        """The input as integer codes, or a `BitfabError` naming what is wrong with it:
        its shape (the first layer's), its type, its range (`input_bits`)."""
        if not isinstance(pixels, torch.Tensor):
            raise BitfabError(f"golden model input must be a tensor of pixels, not "
                              f"{type(pixels).__name__}")
        first = self.input_layer()
        if first is not None and first.geometry.kind == "conv2d":
            channels = kernel_shape(first)[0]
            if pixels.dim() != 4 or pixels.shape[1] != channels:
                raise BitfabError(f"golden model input: layer {first.name} takes images "
                                  f"(N, {channels}, H, W), not {tuple(pixels.shape)}")
        elif first is not None and (pixels.dim() < 2
                                    or prod(pixels.shape[1:]) != first.widths.fan_in
                                    or (pixels.dim() > 2 and not first.flatten_input)):
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
        """Run every node; return (scores, Trace)."""
        trace = Trace()
        values = trace.tensors
        values[self.input] = self.check_input(pixels)
        for node in self.nodes:
            trace[node.name] = {}
            values[node.outputs[0]] = node.run([values[t] for t in node.inputs],
                                               trace[node.name])
        return values[self.output], trace

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


def _layer_to_dict(layer):
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
    return entry


def _op_to_dict(op):
    entry = {"type": type(op).__name__, "name": op.name}
    if isinstance(op, Affine):
        entry.update(mul=op.mul.tolist(), add=op.add.tolist(), shift=op.shift, frac=op.frac,
                     coef_bits=op.coef_bits, bits=op.bits)
    elif isinstance(op, Add):
        entry.update(fracs=list(op.fracs), frac=op.frac, bits=op.bits)
    elif isinstance(op, Threshold):
        entry.update(thresholds=op.output.values.tolist(),
                     descending=op.output.descending.long().tolist(), bits=op.bits)
    elif isinstance(op, MaxPool):
        entry.update(kernel=op.kernel, stride=op.stride)
    elif isinstance(op, GlobalSum):
        entry.update(positions=op.positions, shift=op.shift, frac=op.frac, bits=op.bits)
    elif isinstance(op, Slice):
        entry.update(start=op.start, stop=op.stop)
    return entry


def graph_to_dict(graph):
    """The golden model as plain JSON-able data (every tensor an integer list): its
    nodes in topological order, each with the tensors it reads and writes."""
    nodes = []
    for node in graph.nodes:
        entry = _layer_to_dict(node) if isinstance(node, _Layer) else _op_to_dict(node)
        nodes.append({**entry, "inputs": list(node.inputs), "outputs": list(node.outputs)})
    return {"format": FORMAT, "input_bits": graph.input_bits,
            "input_scale": graph.input_scale, "input": graph.input, "output": graph.output,
            "nodes": nodes}


#: The golden JSON format written: a graph of named tensors and nodes. Formats 1 (before
#: pooling) and 2 (a chain of layers) are still read, as chains. A reader of an older
#: format would drop what it does not know without a word, hence each new name.
FORMAT = "bitfab-golden-3"
_CHAIN_FORMATS = ("bitfab-golden-1", "bitfab-golden-2")
_READ_FORMATS = (*_CHAIN_FORMATS, FORMAT)


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


def _layer_from_dict(entry, wiring):
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
        pool=(entry["pool"]["kernel"], entry["pool"]["stride"]) if "pool" in entry else None,
        **wiring)
    if entry["type"] == "PopcountLayer":
        return PopcountLayer(**common, bases=_tensor(entry["bases"]),
                             coefficients=_tensor(entry["coefficients"]))
    return XnorLayer(**common, weight_bits=_tensor(entry["weight_bits"]))


def _op_from_dict(entry, wiring):
    kind, common = entry["type"], dict(name=entry["name"], **wiring)
    if kind == "Affine":
        return Affine(**common, mul=_tensor(entry["mul"]), add=_tensor(entry["add"]),
                      shift=entry["shift"], frac=entry["frac"], coef_bits=entry["coef_bits"],
                      bits=entry["bits"])
    if kind == "Add":
        return Add(**common, fracs=entry["fracs"], frac=entry["frac"], bits=entry["bits"])
    if kind == "Concat":
        return Concat(**common)
    if kind == "Threshold":
        return Threshold(**common, output=Thresholds(_tensor(entry["thresholds"]),
                                                     _tensor(entry["descending"]).bool()),
                         bits=entry["bits"])
    if kind == "Slice":
        return Slice(**common, start=entry["start"], stop=entry["stop"])
    if kind == "GlobalSum":
        return GlobalSum(**common, positions=entry["positions"], shift=entry["shift"],
                         frac=entry["frac"], bits=entry["bits"])
    return MaxPool(**common, kernel=entry["kernel"], stride=entry["stride"])


_NODE_TYPES = ("PopcountLayer", "XnorLayer", "Affine", "Add", "Concat", "Threshold", "MaxPool",
               "GlobalSum", "Slice")


def _graph_from_dict(value):
    chain = value["format"] in _CHAIN_FORMATS
    nodes = []
    for entry in value["layers"] if chain else value["nodes"]:
        if entry["type"] not in _NODE_TYPES:
            raise BitfabError(f"node {entry['name']}: unknown IR node type {entry['type']!r} "
                              f"(known: {', '.join(_NODE_TYPES)})")
        wiring = {} if chain else {"inputs": entry["inputs"], "outputs": entry["outputs"]}
        layer = entry["type"] in ("PopcountLayer", "XnorLayer")
        nodes.append(_layer_from_dict(entry, wiring) if layer else _op_from_dict(entry, wiring))
    if chain:
        return Graph(value["input_bits"], value["input_scale"], nodes)
    return Graph(value["input_bits"], value["input_scale"], nodes, value["input"],
                 value["output"])

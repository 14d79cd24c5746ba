"""QONNX models (as Brevitas exports them) in: each node becomes the bitfab layer or
join it computes, so the model freezes and builds as any bitfab model.

A QONNX graph of a binary network is a chain or graph of ``Conv``/``Gemm``/``MatMul``
nodes whose weights come from ``BipolarQuant`` (sign times a scale),
``BatchNormalization``, ``BipolarQuant`` on activations (sign), and a ``Quant`` of the
input (unsigned integers times a scale: the pixels' bit planes). `module_from_qonnx`
makes each node a module of the same arithmetic, named after the node (``Conv_0``,
``BatchNormalization_0``, ...), and wires them as the graph does, into a
`torch.fx.GraphModule` that `bitfab.hls_gen.golden.freeze.freeze` turns into the
golden model: a ``Conv`` with ``BipolarQuant`` weights is an `XNORConv2d` whose
weights are sign(W) times the scale (so its mean absolute weight is the scale); batch
norm and the next sign fold into thresholds as always. The module takes what the hardware takes: the
input ``Quant``'s integers (the QONNX model's input divided by its scale).

What maps, node by node: ``Quant`` of the graph input (unsigned, zero point 0, up to
16 bits); ``BipolarQuant`` of weights and of activations (scale 1: a sign);
``Conv`` (grouped too, square strides, symmetric pads; a ``Pad`` of a constant before
it is its border value) and ``Gemm``/``MatMul`` with ``BipolarQuant`` weights and no
bias; ``BatchNormalization``; ``MultiThreshold`` of one threshold a channel with
bipolar output (FINN's streamlined batch norm and sign); ``MaxPool``;
``GlobalAveragePool`` (or ``ReduceMean`` over height and width); ``Add`` of two
streams; ``Concat`` on channels; ``Flatten``/``Reshape`` to (batch, features);
``Mul``/``Div``/``Add``/``Sub`` of one constant; ``Identity``. Any other node, a
multi-bit quantizer anywhere but the input, float weights, or a dynamic shape is
refused by node name and op type.

`compare_with_qonnx` runs QONNX's own executor and checks every tensor a node computes
against the golden model's counterpart (`onnx_tensors` pairs each ONNX tensor with the
fx node computing it).
"""

import operator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.fx.passes.shape_prop import TensorMetadata

from bitfab.hls_gen.errors import BitfabError, UnsupportedLayerError
from bitfab.hls_gen.frontend import registrar
from bitfab.hls_gen.frontend.exported import add_submodule
from bitfab.hls_gen.frontend.layers import BitplaneInput, XNORConv2d, XNORLinear
from bitfab.hls_gen.frontend.quant import SignActivation, ThresholdSign
from bitfab.hls_gen.golden.ir import Add, Affine

__all__ = ["load_qonnx", "module_from_qonnx", "onnx_tensors", "compare_with_qonnx", "TensorCheck"]

#: op type -> function(importer, node) -> the fx node of its output.
_NODES = {}
_maps = registrar(_NODES)


def load_qonnx(path):
    """The QONNX model at `path` (cleaned up: constants folded, shapes inferred) as a
    ``qonnx.core.modelwrapper.ModelWrapper``."""
    try:
        import onnx
        from qonnx.core.modelwrapper import ModelWrapper
        from qonnx.util.cleanup import cleanup_model
    except ImportError:
        raise BitfabError("reading a QONNX model needs the qonnx extra: pip install "
                          "'bitfab[qonnx]'") from None
    path = Path(path)
    try:
        model = ModelWrapper(onnx.load(str(path)))
    except Exception as error:  # noqa: BLE001 - any unreadable file is the user's
        raise BitfabError(f"model file {path}: not an ONNX model ({type(error).__name__}: "
                          f"{str(error).splitlines()[0] if str(error) else ''})") from None
    _check_static(model, path)
    try:
        return cleanup_model(model)
    except Exception as error:  # noqa: BLE001 - a graph onnx cannot check is the user's
        raise BitfabError(f"model file {path}: QONNX cannot clean up its graph "
                          f"({type(error).__name__}: {error})") from None


def _check_static(model, path):
    for value in list(model.graph.input) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        dynamic = [d.dim_param or "?" for d in dims if not d.HasField("dim_value")]
        if dynamic:
            raise BitfabError(f"model file {path}: tensor {value.name} has dynamic "
                              f"dimensions ({', '.join(dynamic)}); hardware streams fixed "
                              f"shapes: export with a fixed input shape (batch 1)")


def module_from_qonnx(model, where="the QONNX model"):
    """A `torch.fx.GraphModule` of bitfab modules computing what the QONNX `model` (a
    cleaned-up ``ModelWrapper``, as `load_qonnx` gives) computes on its input's
    integers; its ``meta["onnx"]`` maps each ONNX tensor to the fx node computing it,
    ``meta["qonnx"]`` is `model`."""
    return _Importer(model, where).run()


def onnx_tensors(module):
    """ONNX tensor name -> fx node name, of a module from `module_from_qonnx`."""
    return dict(module.meta["onnx"])


class _Importer:
    def __init__(self, model, where):
        self.model, self.where = model, where
        self.graph = torch.fx.Graph()
        self.root = nn.Module()
        self.env = {}              # ONNX tensor -> fx node
        self.input_scale = None

    def run(self):
        graph = self.model.graph
        if len(graph.input) != 1 or len(graph.output) != 1:
            raise UnsupportedLayerError(f"{self.where}: {len(graph.input)} inputs and "
                                        f"{len(graph.output)} outputs; bitfab's models "
                                        f"take the pixels and give the class scores")
        pixels = self.env[graph.input[0].name] = self.graph.placeholder("pixels")
        pixels.meta["tensor_meta"] = _shape_meta(self.shape(graph.input[0].name))
        self._weights()
        pending = [n for n in graph.node if n.output[0] not in self.env]
        # Walk by tensors (QONNX's cleanup puts the weight quantizers first).
        while pending:
            ready = [n for n in pending if all(self._known(t) for t in n.input if t)]
            if not ready:
                node = pending[0]
                raise UnsupportedLayerError(f"{self.where}: node {node.name} ({node.op_type}) "
                                            f"reads a tensor no node computes")
            for node in ready:
                pending.remove(node)
                fn = _NODES.get(node.op_type)
                if fn is None:
                    raise UnsupportedLayerError(
                        f"{self.where}: node {node.name} ({node.op_type}) is not supported; "
                        f"bitfab maps {', '.join(sorted(_NODES))}")
                made = self.env[node.output[0]] = fn(self, node)
                shape = self.shape(node.output[0])
                if isinstance(made, torch.fx.Node) and shape is not None:
                    # The freezer reads shapes where it needs them (the input's
                    # channels, for the thresholds of a quantizer of the pixels).
                    made.meta["tensor_meta"] = _shape_meta(shape)
        self.graph.output(self.env[graph.output[0].name])
        module = torch.fx.GraphModule(self.root, self.graph)
        module.meta["onnx"] = {t: n.name for t, n in self.env.items()
                               if isinstance(n, torch.fx.Node)}
        module.meta["qonnx"] = self.model
        return module.eval()

    def _known(self, tensor):
        return tensor in self.env or self.model.get_initializer(tensor) is not None

    def _weights(self):
        """Into `env`, the tensors of constant weights: each ``BipolarQuant`` of an
        initializer, as sign(W) times its scale (+1 at 0, as QONNX's executor has it)."""
        for node in self.model.graph.node:
            w = self.model.get_initializer(node.input[0]) if node.input else None
            if w is None:
                continue
            if node.op_type == "BipolarQuant":
                scale = self.constant(node, 1)
                self.env[node.output[0]] = np.where(w >= 0, 1.0, -1.0) * scale
            elif node.op_type in ("Quant", "IntQuant"):
                bits = self.constant(node, 3)
                raise UnsupportedLayerError(
                    f"{self.where}: node {node.name} ({node.op_type}) quantizes weights "
                    f"{node.input[0]} to {float(bits):g} bits; bitfab's layers take 1-bit "
                    f"weights (BipolarQuant)")

    def constant(self, node, k):
        value = self.model.get_initializer(node.input[k]) if len(node.input) > k else None
        if value is None:
            raise UnsupportedLayerError(f"{self.where}: node {node.name} ({node.op_type}): "
                                        f"input {k} must be a constant")
        return np.asarray(value)

    def attrs(self, node):
        import onnx
        return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}

    def value(self, node, k=0):
        tensor = node.input[k]
        if tensor not in self.env:
            raise UnsupportedLayerError(f"{self.where}: node {node.name} ({node.op_type}) "
                                        f"reads constant {tensor} where bitfab takes a "
                                        f"stream")
        found = self.env[tensor]
        if not isinstance(found, torch.fx.Node):
            raise UnsupportedLayerError(f"{self.where}: node {node.name} ({node.op_type}) "
                                        f"reads the weights {tensor} as its input")
        return found

    def weight(self, node, k=1):
        found = self.env.get(node.input[k])
        if not isinstance(found, np.ndarray):
            raise UnsupportedLayerError(
                f"{self.where}: node {node.name} ({node.op_type}): weights {node.input[k]} "
                f"are not 1-bit (no BipolarQuant computes them); bitfab's layers take "
                f"binary weights")
        return torch.from_numpy(np.ascontiguousarray(found)).float()

    def call(self, node, module, *inputs):
        path = _path(node.name)
        add_submodule(self.root, path, module)
        return self.graph.call_module(path, inputs or (self.value(node),))

    def shape(self, tensor):
        return self.model.get_tensor_shape(tensor)

    def pad_of(self, node):
        """A ``Pad`` node's constant and its (top, left, bottom, right) pads of H and W."""
        pads = [int(v) for v in self.constant(node, 1)]
        mode = self.attrs(node).get("mode", b"constant")
        value = float(self.constant(node, 2)) if len(node.input) > 2 and node.input[2] else 0.0
        if mode not in (b"constant", "constant") or len(pads) != 8 or any(pads[:2] + pads[4:6]):
            self.refuse(node, f"pads {pads} in mode {mode!r}; bitfab pads height and width with "
                             f"a constant")
        return value, [pads[2], pads[3], pads[6], pads[7]]

    def refuse(self, node, why):
        raise UnsupportedLayerError(f"{self.where}: node {node.name} ({node.op_type}) {why}")


def _shape_meta(shape):
    """An fx node's ``tensor_meta`` holding `shape` (the freezer reads the shape)."""
    return TensorMetadata(torch.Size(shape), torch.float32, False, (), None, False, {})


def _path(name):
    """A module path from an ONNX node name (an identifier, no dots)."""
    path = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    return path if path[:1].isalpha() else f"n_{path}"


@_maps("Quant")
def _quant(imp, node):
    scale, zero, bits = (float(imp.constant(node, k)) for k in (1, 2, 3))
    attrs = imp.attrs(node)
    if node.input[0] != imp.model.graph.input[0].name:
        imp.refuse(node, f"quantizes {node.input[0]} to {bits:g} bits; bitfab has layers "
                         f"for 1-bit activations (BipolarQuant) and for the input's bit "
                         f"planes only")
    if attrs.get("signed", 1) or zero != 0 or bits != int(bits) or not 1 <= bits <= 16:
        imp.refuse(node, f"quantizes the input as signed={attrs.get('signed', 1)}, zero point "
                         f"{zero:g}, {bits:g} bits; the input's bit planes need unsigned "
                         f"integers, zero point 0, 1..16 bits")
    imp.input_scale = scale
    return imp.call(node, BitplaneInput(int(bits), scale))


@_maps("BipolarQuant")
def _bipolar_quant(imp, node):
    scale = imp.constant(node, 1)
    if not np.all(scale == 1.0):
        imp.refuse(node, f"scales its signs by {scale.tolist()}; bitfab's sign activations "
                         f"are +-1 (put the scale in the batch norm before it)")
    return imp.call(node, SignActivation())


@_maps("MultiThreshold")
def _multi_threshold(imp, node):
    """FINN's streamlined batch norm and sign: one threshold a channel, bipolar out."""
    attrs = imp.attrs(node)
    thresholds = imp.constant(node, 1)
    scale, bias = float(attrs.get("out_scale", 1.0)), float(attrs.get("out_bias", 0.0))
    layout = attrs.get("data_layout", b"")
    layout = layout.decode() if isinstance(layout, bytes) else layout
    if thresholds.ndim != 2 or thresholds.shape[1] != 1 or (scale, bias) != (2.0, -1.0):
        imp.refuse(node, f"has {thresholds.shape[-1] if thresholds.ndim else 0} thresholds "
                         f"a channel, out_scale {scale:g}, out_bias {bias:g}; bitfab has "
                         f"layers for 1-bit activations: one threshold, bipolar out (2, -1)")
    if layout not in ("", "NC", "NCHW"):
        imp.refuse(node, f"has data layout {layout}; bitfab's channels are axis 1 (NCHW)")
    return imp.call(node, ThresholdSign(torch.from_numpy(np.asarray(thresholds,
                                                                    dtype=np.float64))))


@_maps("Conv")
def _conv(imp, node):
    attrs = imp.attrs(node)
    weight = imp.weight(node)
    if len(node.input) > 2 and node.input[2]:
        imp.refuse(node, "has a bias; bitfab's layers have none (batch norm holds it)")
    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    strides = list(attrs.get("strides", [1, 1]))
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET") or pads[:2] != pads[2:]:
        imp.refuse(node, f"pads {pads}; bitfab pads the same on both sides of each axis")
    source = node.input[0]
    pad_value = 0.0
    producer = imp.model.find_producer(source)
    if producer is not None and producer.op_type == "Pad":
        pad_value, extra = imp.pad_of(producer)
        if any(pads):
            imp.refuse(node, f"pads again after {producer.name}")
        pads = extra
    if pad_value not in (0.0, -1.0):
        imp.refuse(node, f"pads with {pad_value:g}; a border holds 0 (pixels) or -1 (signs)")
    groups = int(attrs.get("group", 1))
    module = XNORConv2d(weight.shape[1] * groups, weight.shape[0], tuple(weight.shape[2:]),
                        stride=tuple(strides), padding=tuple(pads[:2]), groups=groups,
                        pad_value=pad_value)
    module.dilation = tuple(attrs.get("dilations", [1, 1]))
    with torch.no_grad():
        module.weight.copy_(weight)
    return imp.call(node, module)


@_maps("Pad")
def _pad(imp, node):
    for consumer in imp.model.find_consumers(node.output[0]):
        if consumer.op_type != "Conv":
            imp.refuse(node, f"feeds {consumer.name} ({consumer.op_type}); bitfab pads "
                             f"only as a convolution's border")
    return imp.value(node)


@_maps("Gemm", "MatMul")
def _linear(imp, node):
    attrs = imp.attrs(node)
    weight = imp.weight(node)
    if node.op_type == "MatMul" or not attrs.get("transB", 0):
        weight = weight.t()
    if attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0:
        imp.refuse(node, "transposes or scales its input; bitfab's layers take x W^T")
    if len(node.input) > 2 and node.input[2]:
        imp.refuse(node, "has a bias; bitfab's layers have none (batch norm holds it)")
    module = XNORLinear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        module.weight.copy_(weight)
    return imp.call(node, module)


@_maps("BatchNormalization")
def _batch_norm(imp, node):
    gamma, beta, mean, var = (torch.from_numpy(imp.constant(node, k).astype(np.float32))
                              for k in (1, 2, 3, 4))
    rank = len(imp.shape(node.input[0]) or [])
    cls = nn.BatchNorm2d if rank == 4 else nn.BatchNorm1d
    module = cls(len(mean), eps=float(imp.attrs(node).get("epsilon", 1e-5)))
    module.load_state_dict({"weight": gamma, "bias": beta, "running_mean": mean,
                            "running_var": var, "num_batches_tracked": torch.tensor(0)})
    return imp.call(node, module.eval())


@_maps("MaxPool")
def _max_pool(imp, node):
    attrs = imp.attrs(node)
    kernel = tuple(attrs["kernel_shape"])
    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    return imp.call(node, nn.MaxPool2d(kernel, tuple(attrs.get("strides", kernel)),
                                       tuple(pads[:2]), tuple(attrs.get("dilations", [1, 1])),
                                       ceil_mode=bool(attrs.get("ceil_mode", 0))))


@_maps("GlobalAveragePool", "ReduceMean")
def _global_average_pool(imp, node):
    if node.op_type == "ReduceMean":
        # Axes as an attribute (opset < 18) or a constant input.
        axes = imp.attrs(node).get("axes")
        if axes is None and len(node.input) > 1:
            axes = imp.constant(node, 1).tolist()
        if sorted(a % 4 for a in axes or []) != [2, 3] or not imp.attrs(node).get(
                "keepdims", 1):
            imp.refuse(node, f"averages over axes {axes}; bitfab maps the global mean over "
                             f"height and width (2, 3), keeping them")
    return imp.call(node, nn.AdaptiveAvgPool2d(1))


@_maps("Add", "Sub")
def _add(imp, node):
    fn = operator.add if node.op_type == "Add" else operator.sub
    constant = imp.model.get_initializer(node.input[1])
    if constant is None:
        if node.op_type == "Sub":
            imp.refuse(node, "subtracts a stream; bitfab subtracts a constant (x - c)")
        return imp.graph.call_function(fn, (imp.value(node, 0), imp.value(node, 1)))
    if np.asarray(constant).size != 1:
        imp.refuse(node, "adds a tensor of constants; bitfab adds one constant to a value "
                         "(its batch norm holds per-channel offsets)")
    return imp.graph.call_function(fn, (imp.value(node), float(np.asarray(constant).item())))


@_maps("Concat")
def _concat(imp, node):
    axis = imp.attrs(node).get("axis")
    rank = len(imp.shape(node.output[0]) or [])
    if axis % max(rank, 1) != 1:
        imp.refuse(node, f"concatenates on axis {axis}; bitfab concatenates channels (1)")
    return imp.graph.call_function(torch.cat, ([imp.value(node, k) for k in
                                                range(len(node.input))], 1))


@_maps("Flatten", "Reshape")
def _flatten(imp, node):
    before, after = imp.shape(node.input[0]), imp.shape(node.output[0])
    if (node.op_type == "Flatten" and imp.attrs(node).get("axis", 1) != 1) or (
            after is None or len(after) != 2 or before is None
            or after[1] != int(np.prod(before[1:]))):
        imp.refuse(node, f"reshapes {before} to {after}; bitfab flattens (batch, ...) to "
                         f"(batch, features) only")
    return imp.graph.call_function(torch.flatten, (imp.value(node), 1))


@_maps("Mul", "Div")
def _scale(imp, node):
    constant = imp.model.get_initializer(node.input[1])
    if constant is None or np.asarray(constant).size != 1:
        imp.refuse(node, "scales by a tensor; bitfab scales a value by one constant")
    fn = operator.mul if node.op_type == "Mul" else operator.truediv
    return imp.graph.call_function(fn, (imp.value(node), float(np.asarray(constant).item())))


@_maps("Identity")
def _identity(imp, node):
    return imp.value(node)


@dataclass
class TensorCheck:
    """One ONNX tensor against the golden model: the golden tensor it is compared with
    (or None where the golden model has none, with the reason), how, the largest
    difference over the images and the difference the relation allows."""

    tensor: str
    op_type: str
    golden: str = None
    relation: str = ""
    max_diff: float = None
    tolerance: float = 0.0

    @property
    def ok(self):
        return self.max_diff is None or self.max_diff <= self.tolerance


def compare_with_qonnx(model, graph, pixels):
    """Every tensor a node of the QONNX `model` computes, from QONNX's own executor on
    each image of `pixels` (integers, the golden model's input; the executor gets
    them times the input scale), against its counterpart in the golden `graph` (frozen
    from `module_from_qonnx(model)`): a list of `TensorCheck`.

    Relations: a convolution's or matrix product's output is the golden accumulator
    times the weights' scale (and the input's, for a layer on the pixels' bit planes):
    integers times powers of two, equal; a sign is the golden code (+1 for 1, -1 for
    0), equal; a value a join reads (batch norm's output, a sum, a global pooling) is
    the golden fixed-point value times 2^-frac, within the fixed point's rounding; a
    batch norm (or scale) whose only reader is a sign has no golden tensor: it is
    folded into that layer's thresholds, and the sign is compared.
    """
    from qonnx.core.onnx_exec import execute_onnx

    imp = _Importer(model, "the QONNX model")
    module = imp.run()
    names = module.meta["onnx"]
    source = model.graph.input[0].name
    scores, trace = graph.run(pixels)
    values = trace.tensors
    ours = {n.name: n for n in graph.nodes}
    results = {}
    for k in range(len(pixels)):
        image = (pixels[k:k + 1].double() * imp.input_scale).numpy().astype(np.float32)
        context = execute_onnx(model, {source: image}, return_full_exec_context=True)
        for node in model.graph.node:
            tensor = node.output[0]
            if tensor not in names or context.get(tensor) is None:
                continue
            check = results.get(tensor)
            if check is None:
                check = results[tensor] = _relation(imp, node, ours, names, trace, results)
            expected = check.expected
            if expected is None:
                continue
            diff = float(np.abs(np.asarray(context[tensor], dtype=np.float64)
                                - expected[k:k + 1].reshape(context[tensor].shape)).max())
            check.max_diff = diff if check.max_diff is None else max(check.max_diff, diff)
    for check in results.values():
        del check.expected
    del scores, values
    return list(results.values())


_ARITHMETIC = {"Mul": np.multiply, "Div": np.divide, "Add": np.add, "Sub": np.subtract}


def _relation(imp, node, ours, names, trace, checks):
    """The `TensorCheck` of `node`'s output, with the golden counterpart's real values
    (``expected``, all images) or None and the reason. `checks` holds those of the
    tensors before it: a reshape, or a constant's arithmetic, of a tensor compared
    there is compared too (FINN's TFC: 2 x - 1 of the pixels, the TensorNorm of its
    scores)."""
    check = TensorCheck(node.output[0], node.op_type)
    check.expected = None
    op, path = node.op_type, _path(node.name)
    golden = ours.get(path) or ours.get(names[node.output[0]])
    producer = imp.model.find_producer(node.input[0])
    if op == "BatchNormalization" and producer is not None and golden is None:
        # A batch norm a join reads is its layer's value (the layer and an `Affine`).
        golden = ours.get(f"{_path(producer.name)}_value")
    values = trace.tensors
    before = checks.get(node.input[0])
    known = golden is None and before is not None and before.expected is not None
    constant = (imp.model.get_initializer(node.input[1]) if op in _ARITHMETIC
                and len(node.input) > 1 else None)
    if known and constant is not None and np.asarray(constant).size == 1:
        c = float(np.asarray(constant).item())
        check.golden = before.golden
        check.relation = f"({before.relation}) {op} {c:g}"
        check.expected = _ARITHMETIC[op](before.expected, c)
        grow = abs(c) if op == "Mul" else 1 / abs(c) if op == "Div" else 1.0
        check.tolerance = before.tolerance * grow + 1e-6 * max(
            1.0, float(np.abs(check.expected).max()))
        return check
    if known and op in ("Reshape", "Flatten", "Identity"):
        check.golden, check.relation = before.golden, before.relation
        check.expected, check.tolerance = before.expected, before.tolerance
        return check
    if op == "Quant":
        check.golden, check.relation = "the input", "pixels x the input scale"
        check.expected = values[next(iter(values))].double().numpy() * imp.input_scale
    elif op in ("Conv", "Gemm", "MatMul"):
        scale = float(np.abs(imp.env[node.input[1]]).max())
        if golden.input_encoding == "bitplanes":
            scale *= imp.input_scale
        check.golden, check.relation = f"{golden.name} acc", f"accumulator x {scale:g}"
        check.expected = trace[golden.name]["acc"].double().numpy() * scale
        check.tolerance = 1e-6 * max(1.0, float(np.abs(check.expected).max()))
    elif op in ("BipolarQuant", "MultiThreshold", "MaxPool", "Concat") and not hasattr(
            golden, "frac"):
        name, codes = ((golden.name, values[golden.outputs[0]]) if op == "Concat"
                       else _codes(imp, node, ours, trace))
        check.golden, check.relation = name, "golden code 1 -> +1, 0 -> -1"
        check.expected = 2.0 * codes.double().numpy() - 1.0
    elif golden is not None and hasattr(golden, "frac"):
        positions = getattr(golden, "positions", 1)
        step = 2.0 ** -golden.frac
        check.golden = golden.name
        check.relation = f"fixed point x 2^-{golden.frac}" + (
            f" / {positions} positions" if positions > 1 else "")
        check.expected = values[golden.outputs[0]].double().numpy() * step / positions
        check.tolerance = _error_bound(golden, ours, {}) / positions + 1e-6 * max(
            1.0, float(np.abs(check.expected).max()))
    elif op in ("Reshape", "Flatten", "Identity", "Pad", "Concat") and golden is None:
        check.relation = "a reshape or copy of its input, compared there"
    else:
        readers = [c.name for c in imp.model.find_consumers(node.output[0])]
        check.relation = (f"folded into the thresholds of the sign that reads it "
                          f"({', '.join(readers)}); compared there")
    return check


def _codes(imp, node, ours, trace):
    """The golden codes a sign (or the max pool of signs) of the QONNX model computes:
    a threshold node of its own, or the thresholds of the layer its batch norm follows
    (before the layer's pooling for the sign, after it for the pool)."""
    path = _path(node.name)
    if path in ours:
        return path, trace.tensors[ours[path].outputs[0]]
    producer = node
    while producer is not None and producer.op_type not in ("Conv", "Gemm", "MatMul"):
        producer = imp.model.find_producer(producer.input[0])
    if producer is None or _path(producer.name) not in ours:
        raise BitfabError(f"node {node.name} ({node.op_type}): no golden codes found for it")
    layer = ours[_path(producer.name)]
    own = trace[layer.name]
    if node.op_type in ("BipolarQuant", "MultiThreshold") and "unpooled" in own:
        return f"{layer.name} codes before its pool", own["unpooled"]
    return f"{layer.name} codes", own["codes"]


def _error_bound(node, ours, memo):
    """How far the golden fixed-point value of `node` (an `Affine`, `Add` or
    `GlobalSum`) may be from the exact real value, in real units: each coefficient's
    rounding times the accumulator's bound, each floor (shift) and rounded offset a
    step of the fixed point; sums add their inputs' bounds."""
    if node.name in memo:
        return memo[node.name]
    step = 2.0 ** -node.frac
    if isinstance(node, Affine):
        layer = ours[node.inputs[0]]
        bound = layer.widths.acc_bound * 2.0 ** -(node.frac + node.shift + 1) + 1.5 * step
    elif isinstance(node, Add):
        bound = sum(_error_bound(ours[t], ours, memo) for t in node.inputs) + step * sum(
            s > 0 for s in node.shifts)
    else:                      # GlobalSum: the sum of its positions, then a floor
        bound = _error_bound(ours[node.inputs[0]], ours, memo) * node.positions + step
    memo[node.name] = bound
    return bound


def check_import(model, module, count=None, log=print):
    """Freeze `module` (from `module_from_qonnx(model)`) as the build does and compare
    every tensor with QONNX's executor (`compare_with_qonnx`) on the inputs the build
    simulates: the digits test images for 64 pixels (or 1 x 8 x 8), `count` photo crops
    (default 32) for 3 channels; returns the checks, each a dict, or None where bitfab
    has no test inputs of the model's shape. A tensor beyond its tolerance is a
    `BitfabError` naming it, before anything is built."""
    from dataclasses import asdict

    from bitfab.hls_gen.datasets import load_digits_split, photo_crops
    from bitfab.hls_gen.golden.freeze import freeze
    shape = tuple(model.get_tensor_shape(model.graph.input[0].name))[1:]
    if shape in ((64,), (1, 8, 8)):
        pixels = load_digits_split().x_test[:count].long().reshape(-1, *shape)
    elif len(shape) == 3 and shape[0] == 3:
        pixels = photo_crops(count or 32, *shape[1:])
    else:
        log(f"qonnx: inputs of shape {shape}: no test inputs to check the import on")
        return None
    checks = compare_with_qonnx(model, freeze(module), pixels)
    bad = next((c for c in checks if not c.ok), None)
    if bad is not None:
        raise BitfabError(f"the import differs from QONNX's executor at tensor {bad.tensor} "
                          f"({bad.op_type}): {bad.max_diff:g} from {bad.golden} "
                          f"({bad.relation}), beyond {bad.tolerance:g}")
    compared = sum(c.max_diff is not None for c in checks)
    log(f"qonnx: {compared} of {len(checks)} tensors equal QONNX's executor on {len(pixels)} "
        f"inputs (within their tolerance); the rest are folded or reshaped")
    return [asdict(c) for c in checks]

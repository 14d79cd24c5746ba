"""A `torch.export` program of bitfab layers, back to modules the freezer reads.

A model whose class lives in its author's own script cannot be unpickled where that
script is not importable; ``torch.export.save(torch.export.export(model, (pixels,)),
"model.pt2")`` keeps its graph and weights without its class. The program is a graph
of aten operations, each tagged with the module call it came from
(``meta["nn_module_stack"]``). Here the operations inside each bitfab layer (the
outermost module of a type `REBUILDERS` knows) become that layer again, made anew
from the program's weights and the operations' arguments (a convolution's stride,
padding and groups, a quantizer's piece count); the operations between layers (the
joins ``x + y``, ``torch.cat``, channel slices, scales by a constant, flatten, the
global mean) become the torch functions the freezer maps. The result is a
`torch.fx.GraphModule` whose submodules keep the layers' paths, so it freezes to the
same golden model, node names and all, as the module it was exported from.
"""

import importlib
import logging
import operator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from bitfab.hls_gen.errors import BitfabError, UnsupportedLayerError
from bitfab.hls_gen.frontend import registrar
from bitfab.hls_gen.frontend.layers import (BitplaneInput, PAConv2d, PALinear, XNORConv2d,
                                            XNORLinear)
from bitfab.hls_gen.frontend.quant import PAActivation, SignActivation

__all__ = ["load_program", "module_from_program", "REBUILDERS"]

aten = torch.ops.aten

#: Layer class -> function(state, ops) -> a new module of that class, from its weights
#: and buffers (`state`, names relative to the layer) and its aten operations (`ops`).
REBUILDERS = {}
rebuilds = registrar(REBUILDERS)


def load_program(path):
    """The module of the `torch.export` program saved at `path` (`module_from_program`)."""
    # The loader logs a warning for every unbacked size symbol (PA quantizers' bincounts).
    logging.getLogger("torch._export.serde.serialize").setLevel(logging.ERROR)
    try:
        program = torch.export.load(path)
    except Exception as error:  # noqa: BLE001 - any unreadable archive is the user's file
        raise BitfabError(f"model file {path}: not a torch.export program "
                          f"({type(error).__name__}: {error}); save one with "
                          f"torch.export.save(torch.export.export(model, (pixels,)), "
                          f"'{Path(path).name}')") from None
    return module_from_program(program, where=f"model file {path}")


def module_from_program(program, where="the exported program"):
    """A `torch.fx.GraphModule` of bitfab layers computing what `program` computes.

    Raises
    ------
    UnsupportedLayerError
        An operation outside every known layer that is not a join, slice, scale, flatten
        or global mean (named with its position and the module it came from); a
        program with more than one input or output.
    BitfabError
        A program exported in training mode (its batch norms update their statistics).
    """
    graph = program.graph
    signature = program.graph_signature
    state = {**program.state_dict, **program.constants}
    lifted = {**signature.inputs_to_parameters, **signature.inputs_to_buffers,
              **getattr(signature, "inputs_to_lifted_tensor_constants", {})}
    users = [n for n in graph.nodes if n.op == "placeholder" and n.name in
             set(signature.user_inputs)]
    if len(users) != 1:
        raise UnsupportedLayerError(f"{where}: takes {len(users)} inputs; bitfab's models "
                                    f"take one, the pixels")
    groups = _groups(graph)
    out = torch.fx.Graph()
    root = nn.Module()
    env = {users[0]: out.placeholder("pixels")}
    for position, node in enumerate(graph.nodes):
        if node.op == "placeholder":
            continue
        if node.op == "output":
            results = node.args[0]
            if len(results) != 1:
                raise UnsupportedLayerError(f"{where}: returns {len(results)} tensors; "
                                            f"bitfab's models return the class scores")
            out.output(env[results[0]])
            continue
        group = groups.get(node)
        if group is None:
            env[node] = _function(out, env, node, position, where)
        elif node is group.result:
            module = group.rebuild(state, where)
            add_submodule(root, group.path, module)
            env[node] = out.call_module(group.path, (env[group.input(lifted, where)],))
    module = torch.fx.GraphModule(root, out)
    return module.eval()


class _Group:
    """The operations of one call of one bitfab layer."""

    def __init__(self, path, cls):
        self.path, self.cls, self.ops = path, cls, []
        self.result = None

    def input(self, lifted, where):
        """The one tensor the layer reads from outside itself."""
        inside = set(self.ops)
        reads = []
        for op in self.ops:
            for arg in op.all_input_nodes:
                if arg not in inside and arg.name not in lifted and arg not in reads:
                    reads.append(arg)
        if len(reads) != 1:
            raise UnsupportedLayerError(
                f"{where}: model.{self.path} ({self.cls.__name__}) reads {len(reads)} "
                f"tensors; bitfab's layers take one")
        return reads[0]

    def state(self, state):
        """The layer's weights and buffers, named as in the layer."""
        prefix = f"{self.path}."
        return {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}

    def rebuild(self, state, where):
        for op in self.ops:
            if op.target is aten.batch_norm.default and op.args[5]:
                raise BitfabError(f"{where}: model.{self.path} was exported in training "
                                  f"mode (its batch norm updates its statistics); call "
                                  f"model.eval() before torch.export.export")
        values = self.state(state)
        module = REBUILDERS[self.cls](values, self.ops)
        own = module.state_dict()
        module.load_state_dict({k: v for k, v in values.items() if k in own}, strict=True)
        return module


def _groups(graph):
    """Each operation inside a bitfab layer -> its `_Group` (one per layer call); the
    group's result is the operation whose value leaves the layer."""
    groups, order = {}, {}
    for node in graph.nodes:
        if node.op != "call_function":
            continue
        for key, (path, type_name) in (node.meta.get("nn_module_stack") or {}).items():
            cls = _known(type_name)
            if path and cls is not None:
                group = order.setdefault(key, _Group(path, cls))
                group.ops.append(node)
                groups[node] = group
                break
    for group in order.values():
        inside = set(group.ops)
        leaving = [op for op in group.ops if any(u not in inside for u in op.users)]
        group.result = leaving[-1] if leaving else group.ops[-1]
    return groups


def _known(type_name):
    """The bitfab-supported class a ``nn_module_stack`` type name names, or None."""
    module_name, _, class_name = str(type_name).rpartition(".")
    if not module_name.startswith(("bitfab.", "torch.nn.")):
        return None
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError):
        return None
    return cls if cls in REBUILDERS else None


def add_submodule(root, path, module):
    *parents, name = path.split(".")
    parent = root
    for part in parents:
        if not hasattr(parent, part):
            parent.add_module(part, nn.Module())
        parent = getattr(parent, part)
    parent.add_module(name, module)


# Operations between layers that carry their input unchanged.
_ALIASES = {aten.to.dtype, aten.clone.default, aten.alias.default, aten.detach.default,
            aten.dropout.default, aten.contiguous.default}
_SKIPPED = {aten._assert_tensor_metadata.default}


def _function(out, env, node, position, where):
    """The torch function of an aten operation between layers, added to `out`."""
    stack = node.meta.get("nn_module_stack") or {}
    inside = [f"model.{p}" if p else "the model's forward" for p, _ in stack.values()]
    at = (f"{where}: node {node.name} ({node.target}, position {position}, in "
          f"{inside[-1] if inside else 'the model'})")
    target, args = node.target, node.args
    arg = lambda k: env[args[k]] if isinstance(args[k], torch.fx.Node) else args[k]
    if target in _SKIPPED:
        return None
    if target in _ALIASES:
        return arg(0)
    if target is aten.add.Tensor and len(args) == 2 and node.kwargs.get("alpha", 1) == 1:
        return out.call_function(operator.add, (arg(0), arg(1)))
    if target in (aten.mul.Tensor, aten.mul.Scalar) and not isinstance(args[1], torch.fx.Node):
        return out.call_function(operator.mul, (arg(0), args[1]))
    if target in (aten.div.Tensor, aten.div.Scalar) and not isinstance(args[1], torch.fx.Node):
        return out.call_function(operator.truediv, (arg(0), args[1]))
    if target is aten.cat.default:
        dim = args[1] if len(args) > 1 else node.kwargs.get("dim", 0)
        return out.call_function(torch.cat, ([env[a] for a in args[0]], dim))
    if target is aten.slice.Tensor:
        dim, start, end = (list(args[1:4]) + [0, None, None])[:3]
        step = args[4] if len(args) > 4 else 1
        size = args[0].meta["val"].shape[dim]
        index = [slice(None)] * (dim % 4) + [slice(start, min(end, size), step)]
        return out.call_function(operator.getitem, (arg(0), tuple(index)))
    if target is aten.mean.dim:
        return out.call_function(torch.mean, (arg(0), tuple(args[1])),
                                 {"keepdim": bool(args[2]) if len(args) > 2 else False})
    if target is aten.adaptive_avg_pool2d.default:
        return out.call_function(F.adaptive_avg_pool2d, (arg(0), tuple(args[1])))
    if target is aten.flatten.using_ints:
        return out.call_function(torch.flatten, tuple(arg(k) for k in range(len(args))))
    if target in (aten.view.default, aten.reshape.default):
        before, after = args[0].meta["val"].shape, node.meta["val"].shape
        if len(after) == 2 and after[0] == before[0]:
            return out.call_function(torch.flatten, (arg(0), 1))
    raise UnsupportedLayerError(f"{at}: not a bitfab layer, and not one of the functions "
                                f"bitfab maps between layers (x + y, torch.cat on channels, "
                                f"x[:, a:b], a scale by a constant, flatten, the global "
                                f"mean)")


def _op(ops, *targets):
    return next((op for op in ops if op.target in targets), None)


def _args(op, defaults):
    """The operation's arguments after its input, with `defaults` for the rest."""
    given = list(op.args[1:]) if op is not None else []
    return given + list(defaults[len(given):])


@rebuilds(BitplaneInput)
def _bitplane_input(state, ops):
    return BitplaneInput(int(state["planes"]), float(state["step"]))


def _conv(cls, state, ops, **extra):
    conv = _op(ops, aten.conv2d.default)
    _, _, stride, padding, dilation, groups = _args(conv, [None, None, [1, 1], [0, 0],
                                                           [1, 1], 1])
    weight = state["weight"]
    module = cls(weight.shape[1] * groups, weight.shape[0], tuple(weight.shape[2:]),
                 stride=tuple(stride), padding=tuple(padding), groups=groups, **extra)
    module.dilation = tuple(dilation)
    return module


def _pieces(ops):
    """A PA weight quantizer's M: its bincount over the M + 1 regions."""
    return int(_args(_op(ops, aten.bincount.default), [None, 0])[1]) - 1


@rebuilds(PAConv2d)
def _pa_conv(state, ops):
    return _conv(PAConv2d, state, ops, m=_pieces(ops))


@rebuilds(XNORConv2d)
def _xnor_conv(state, ops):
    pad = _op(ops, aten.pad.default, aten.constant_pad_nd.default)
    pads, _, value = _args(pad, [[0, 0, 0, 0], "constant", 0.0])
    if pad is not None and pad.target is aten.constant_pad_nd.default:
        value = pad.args[2] if len(pad.args) > 2 else 0.0
    module = _conv(XNORConv2d, state, ops, pad_value=-1.0 if value is None else value)
    module.padding = (pads[2], pads[0])
    return module


@rebuilds(PALinear)
def _pa_linear(state, ops):
    out_features, in_features = state["weight"].shape
    return PALinear(in_features, out_features, m=_pieces(ops))


@rebuilds(XNORLinear)
def _xnor_linear(state, ops):
    out_features, in_features = state["weight"].shape
    return XNORLinear(in_features, out_features)


@rebuilds(nn.BatchNorm1d, nn.BatchNorm2d)
def _batch_norm(state, ops):
    norm = _op(ops, aten.batch_norm.default, aten._native_batch_norm_legit_no_training.default)
    eps = norm.args[-1] if norm.target is not aten.batch_norm.default else norm.args[7]
    dims = len(norm.args[0].meta["val"].shape)
    cls = nn.BatchNorm2d if dims == 4 else nn.BatchNorm1d
    return cls(state["running_mean"].shape[0], eps=eps, affine="weight" in state)


@rebuilds(PAActivation)
def _pa_activation(state, ops):
    return PAActivation(int(state["v"].shape[0]))


@rebuilds(SignActivation)
def _sign_activation(state, ops):
    return SignActivation()


@rebuilds(nn.Flatten)
def _flatten(state, ops):
    start, end = _args(_op(ops, aten.flatten.using_ints), [1, -1])
    return nn.Flatten(start, end)


@rebuilds(nn.MaxPool2d)
def _max_pool(state, ops):
    pool = _op(ops, aten.max_pool2d.default, aten.max_pool2d_with_indices.default)
    kernel, stride, padding, dilation, ceil = _args(pool, [None, [], [0, 0], [1, 1], False])
    return nn.MaxPool2d(tuple(kernel), tuple(stride or kernel), tuple(padding),
                        tuple(dilation), ceil_mode=ceil)


@rebuilds(nn.AdaptiveAvgPool2d)
def _adaptive_avg_pool(state, ops):
    pool = _op(ops, aten.adaptive_avg_pool2d.default)
    if pool is not None:
        return nn.AdaptiveAvgPool2d(tuple(pool.args[1]))
    return nn.AdaptiveAvgPool2d(1)   # traced as the mean over height and width


@rebuilds(nn.Dropout, nn.Identity)
def _identity(state, ops):
    return nn.Identity()

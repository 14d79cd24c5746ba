"""Golden graph -> hardware graph: layers as units, forks, joins, and the FIFOs on
reconvergent paths sized from the static schedule.

`map_graph` turns a golden `Graph` with forks and joins into a `HwGraph`: one
`UnitSpec` per node (a layer: a matrix-vector unit, behind its sliding window for
a convolution; `Affine`: `ChannelAffine`; `Threshold`: `ThresholdUnit`; `Add`:
`AddStreams`; `Concat`: `ChannelConcat`; `MaxPool`: `MaxPool`; `GlobalSum`:
`GlobalSum`; `Slice`: `ChannelSelect`; a grouped layer: a `ChannelSplit`, a unit
a group and a `ChannelConcat`), a fork (`Broadcast`) on every tensor read more
than once, and a queue on every input of a join. Folding is keyed by node name.
Every queue's depth is computed from the schedule (no simulation) and recorded
with its reason. `graph_case` gives the cocotb case (load words, input beats, the
golden beats of every tensor) from what the compiler emitted, and `GraphNetwork`
(`bitfab.rtl.graph_network`) is the hardware.
"""

import re
import time
from dataclasses import asdict, dataclass, field, replace
from math import ceil, gcd, prod
from typing import NamedTuple

from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from bitfab.rtl.add_streams import AddConfig
from bitfab.rtl.affine import AffineConfig
from bitfab.rtl.encoder import ActivationEncoder, orient_thresholds
from bitfab.rtl.global_sum import GlobalSumConfig
from bitfab.rtl.network import load_latency
from bitfab.rtl.graph_network import (LOADED, UNIT_CONFIGS, GraphNetwork,
                                      GraphNetworkInstance, UnitSpec, stream_layouts)
from bitfab.rtl.threshold_unit import ThresholdConfig
from bitfab.rtl.window import WindowConfig
from bitfab.sw_driver.beats import element_values, input_beats
from bitfab.sw_driver.weights import check_load_words

from bitfab.hls_gen.compiler.cases import pixel_rows, position_major
from bitfab.hls_gen.compiler.estimates import _overrun_text, estimate, pool_estimate
from bitfab.hls_gen.compiler.folding import (FOLDING_CAPS, _compute_cycles, _feed,
                                             _pool_cycles, fold, image_cycles)
from bitfab.hls_gen.compiler.plan import (INPUT_BEAT, PlanError, _divisors,
                                          _largest_divisor, layer_config)
from bitfab.hls_gen.compiler.stores import check_plane_sum, load_rows
from bitfab.hls_gen.golden.ir import (Add, Affine, Concat, GlobalSum, MaxPool, PopcountLayer,
    Slice, Threshold, XnorLayer, kernel_shape)

__all__ = ["HwGraph", "Loaded", "map_graph", "fitting_graph", "input_shape", "graph_case",
           "graph_load_stream", "reconvergent_depths", "estimate_graph"]

_LAYERS = (PopcountLayer, XnorLayer)
#: Ops that keep their input's beat: a stream of the same positions and channels.
_KEEP_BEAT = (Affine, Threshold, MaxPool, GlobalSum, Slice, Add, Concat)
_JOINS = (Add, Concat)
#: The depth of a queue on a join's longest path, which never waits for another input.
QUEUE_MARGIN = 2


class Loaded(NamedTuple):
    """A loaded unit in load order: its name, the golden node it holds, the node's input
    shape, and the group of a grouped convolution the unit computes (None: all)."""

    unit: str
    node: str
    shape: tuple
    group: int | None = None


@dataclass
class HwGraph:
    """The hardware graph of a golden graph.

    units : list of UnitSpec, in an order where every stream is written before read.
    layers : list of `Loaded` (unit name, golden node, its input shape, group), load order.
    taps : tap name -> stream (one per golden tensor, at its writer).
    queues : one dict per queue on a join's input: its name, depth, and the reason.
    schedule_cycles : the pipeline's cycles per image (its slowest stage).
    depth_seconds : how long computing the queues' depths took.
    """

    units: list
    input: str
    output: str
    layers: list
    taps: dict
    queues: list = field(default_factory=list)
    schedule_cycles: int = 0
    depth_seconds: float = 0.0
    estimate: dict | None = None

    def network(self, taps=True, module=None):
        """The `GraphNetwork`; with `taps` false, without the taps a bench watches
        (the board's); with a `module` name, a `GraphNetworkInstance` of the Verilog
        module that an earlier conversion of it wrote."""
        taps = self.taps if taps else None
        if module is not None:
            return GraphNetworkInstance(self.units, self.input, self.output, taps, module)
        return GraphNetwork(self.units, self.input, self.output, taps)

    def plan_dict(self):
        """The plan as JSON-able data, for people and reports: every unit (its kind,
        streams and config's fields, a payload as its Amaranth text), every queue's
        depth with its reason, the schedule, the estimate where a board was given."""
        def unit(spec):
            entry = {"name": spec.name, "kind": spec.kind, "inputs": list(spec.inputs),
                     "outputs": list(spec.outputs)}
            if spec.config is not None:
                entry["config"] = asdict(spec.config)
            if spec.shape is not None:
                entry["payload"] = _layout_to_dict(spec.shape)
            if spec.kind == "queue":
                entry["depth"] = spec.depth
            if spec.kind in ("concat", "split", "select"):
                entry["beats"] = list(spec.beats)
            return entry
        return {"input": self.input, "output": self.output,
                "units": [unit(u) for u in self.units],
                "load_order": [[u, n, list(shape), g] for u, n, shape, g in self.layers],
                "queues": self.queues,
                "schedule_cycles_per_image": self.schedule_cycles,
                "queue_depth_seconds": self.depth_seconds, "estimate": self.estimate,
                "taps": self.taps}

    @classmethod
    def from_dict(cls, value):
        """The `HwGraph` whose `plan_dict` is `value` (as a build's plan.json holds it)."""
        units = []
        for entry in value["units"]:
            make = UNIT_CONFIGS.get(entry["kind"])
            payload = entry.get("payload")
            units.append(UnitSpec(
                entry["name"], entry["kind"], entry["inputs"], entry["outputs"],
                config=make(**entry["config"]) if make else None,
                shape=_layout_from_dict(payload) if payload else None,
                beats=tuple(entry.get("beats", ())), depth=entry.get("depth", 0)))
        return cls(units, value["input"], value["output"],
                   [Loaded(u, n, tuple(shape), g) for u, n, shape, g in value["load_order"]],
                   value["taps"], value["queues"], value["schedule_cycles_per_image"],
                   value["queue_depth_seconds"], value["estimate"])

    def with_queue_depths(self, depths):
        """This graph with the queues named in `depths` ({name: depth}) set by hand."""
        names = {q["name"] for q in self.queues}
        unknown = sorted(set(depths) - names)
        if unknown:
            raise PlanError(f"no queue named {', '.join(unknown)}; the queues: "
                            f"{', '.join(sorted(names))}")
        units = [replace(u, depth=depths[u.name]) if u.name in depths else u
                 for u in self.units]
        queues = [{**q, "depth": depths[q["name"]], "reason": "set by hand"}
                  if q["name"] in depths else q for q in self.queues]
        return replace(self, units=units, queues=queues)

    def unit(self, name):
        return next(u for u in self.units if u.name == name)

    @property
    def loaded_configs(self):
        """The loaded units' configs (layers, affine and threshold units), load order."""
        return [self.unit(entry.unit).config for entry in self.layers]

    @property
    def word_bits(self):
        return self.loaded_configs[0].word_bits

    def host_configs(self):
        """`loaded_configs`, checked to start with the layer that reads the input and end
        with the one that writes the output, as a host's wire format takes them
        (`bitfab.sw_driver.protocol.WireFormat.of_layers`)."""
        configs = self.loaded_configs
        first, last = self.layers[0].unit, self.layers[-1].unit
        if self.unit(first).inputs != (self.input,) or self.unit(first).kind not in (
                "layer", "threshold"):
            raise PlanError(f"the graph's input is read by more than layer {first}: a host "
                            f"drives graphs whose input feeds one layer")
        if self.unit(last).outputs != (self.output,) or self.unit(last).kind != "layer":
            raise PlanError(f"the graph's output {self.output} is not written by its last "
                            f"loaded layer {last}: a host reads a layer's scores")
        return configs

    @property
    def configs(self):
        return [self.unit(entry.unit).config for entry in self.layers
                if self.unit(entry.unit).kind == "layer"]


def _layout_to_dict(layout):
    """A stream's payload (an `ArrayLayout` of signed or unsigned elements) as JSON."""
    if not isinstance(layout, data.ArrayLayout):
        raise TypeError(f"a graph's streams carry arrays, not {layout!r}")
    elem = layout.elem_shape
    return {"signed": elem.signed, "bits": elem.width, "length": layout.length}


def _layout_from_dict(value):
    shape = signed(value["bits"]) if value["signed"] else unsigned(value["bits"])
    return data.ArrayLayout(shape, value["length"])


def _unit_estimate(spec, board):
    """Resources of one unit before synthesis: a layer's from `estimates.estimate`; the
    stream units' from their datapaths (a DSP product per multiplier, the operands'
    selection and per lane an adder of the output's bits for an affine unit, n
    comparators for a threshold unit, an adder per input beyond the first for a sum,
    an adder and LUT RAM of running sums per lane for a global sum, a payload
    multiplexer per input for a concatenation), their registers; a queue's beats in
    block RAM where it is deeper than 64 (a shortcut that spans a stage), in LUT RAM
    of 16 words (two LUT4 per 4 bits) below."""
    c = spec.config
    if spec.kind == "layer":
        return estimate(c, board)
    if spec.kind == "pool":
        return pool_estimate(c, board)
    if spec.kind == "affine":
        count, product = c.multipliers or c.lanes, c.in_bits + c.mul_bits
        # Each multiplier's operands chosen among its lanes where a beat takes steps.
        select = count * product * (c.steps - 1)
        return {"luts": c.lanes * c.out_bits + select + 20,
                "ffs": c.lanes * (c.out_bits + product) + 10, "brams": 0, "dsps": count}
    if spec.kind == "threshold":
        return {"luts": c.lanes * c.n * (c.in_bits + 1) + 20,
                "ffs": 3 * c.lanes * (c.in_bits + c.n) + 10, "brams": 0, "dsps": 0}
    if spec.kind == "add":
        return {"luts": c.lanes * c.out_bits * (len(c.in_bits) - 1),
                "ffs": c.lanes * c.out_bits + 1, "brams": 0, "dsps": 0}
    if spec.kind == "globalsum":
        # Per lane an adder of the sum's bits and its running sums in LUT RAM (16 words
        # of 4 bits in two LUT4s).
        width = c.lanes * c.acc_bits
        return {"luts": width + 2 * -(-width // 4) * -(-c.groups // 16) + 20,
                "ffs": c.lanes * c.out_bits + 20, "brams": 0, "dsps": 0}
    width = data.Layout.cast(spec.shape).size
    if spec.kind == "queue":
        if spec.depth > 64:
            return {"luts": 30, "ffs": width + 20, "brams": board.ram_blocks(width, spec.depth),
                    "dsps": 0}
        return {"luts": 2 * -(-width // 4) * -(-spec.depth // 16) + 20, "ffs": width + 20,
                "brams": 0, "dsps": 0}
    inputs = len(spec.inputs)
    return {"luts": width * inputs + 10, "ffs": width + len(spec.outputs), "brams": 0,
            "dsps": 0}


def estimate_graph(hw, board):
    """The per-unit estimates of `hw` on `board` and their total, and the first overrun:
    (unit name, resource, running total) where the total passes what the board can
    hold, or None."""
    total = {key: 0 for key in board.resources}
    units, overrun = [], None
    for spec in hw.units:
        used = _unit_estimate(spec, board)
        units.append({"name": spec.name, "kind": spec.kind, **used})
        for key, value in used.items():
            total[key] += value
            if overrun is None and total[key] > board.usable(key):
                overrun = (spec.name, key, total[key])
    return {"units": units, "total": total}, overrun


def _tap(tensor):
    return "tap_" + re.sub(r"\W", "_", tensor)


def input_shape(graph, image):
    """The shape of one input of `graph` on images of `image` (height, width)."""
    first = graph.input_layer()
    if first is None:
        raise PlanError("the graph's input reaches no layer first; a hardware graph starts "
                        "with a layer")
    if first.geometry.kind == "conv2d":
        return (kernel_shape(first)[0], *image)
    return (first.widths.fan_in,)


def _check_nodes(graph):
    for node in graph.nodes:
        if not isinstance(node, (*_LAYERS, *_KEEP_BEAT)):
            raise PlanError(f"node {node.name} ({type(node).__name__}): no hardware unit maps "
                            f"it")


@dataclass(frozen=True)
class _Stream:
    """What a tensor's stream carries: codes of `planes` bits (one-hot, or a pixel's bit
    planes) or signed values of `bits`."""

    planes: int = 0
    bits: int = 0

    def layout(self, beat):
        return data.ArrayLayout(unsigned(self.planes) if self.planes else signed(self.bits),
                                beat)


def _streams(graph, configs_of):
    """Each tensor's `_Stream`, in node order; `configs_of(node, planes)` gives a layer's
    unfolded config from its input's planes."""
    streams = {graph.input: _Stream(planes=graph.input_bits)}
    for node in graph.nodes:
        ins = [streams[t] for t in node.inputs]
        if isinstance(node, _LAYERS):
            if not ins[0].planes:
                raise PlanError(f"layer {node.name} reads {node.inputs[0]}, a fixed-point "
                                f"value; a layer takes activation codes (a quantizer first)")
            c = configs_of(node, ins[0].planes)
            out = (_Stream(planes=c.n_out) if c.output == "codes"
                   else _Stream(bits=c.logit_bits))
        elif isinstance(node, Affine):
            if ins[0].planes:
                raise PlanError(f"node {node.name} (Affine) reads codes of {node.inputs[0]}; "
                                f"it scales a layer's accumulator")
            out = _Stream(bits=node.bits)
        elif isinstance(node, Threshold):
            if ins[0].planes and node.inputs[0] != graph.input:
                raise PlanError(f"node {node.name} (Threshold) reads codes of "
                                f"{node.inputs[0]}; it quantizes a value (or the pixels)")
            out = _Stream(planes=node.output.values.shape[1])
        elif isinstance(node, (Add, GlobalSum)):
            if any(i.planes for i in ins):
                raise PlanError(f"node {node.name} ({type(node).__name__}) sums codes; a "
                                f"sum takes values")
            out = _Stream(bits=node.bits)
        elif isinstance(node, Slice):
            if not ins[0].planes:
                raise PlanError(f"node {node.name} (Slice) slices the values of "
                                f"{node.inputs[0]}; in hardware it slices codes")
            out = ins[0]
        elif isinstance(node, Concat):
            found = {i.planes for i in ins}
            if len(found) > 1 or 0 in found:
                raise PlanError(f"node {node.name} (Concat): joins codes of "
                                f"{sorted(found)} planes; a concatenation's inputs share one "
                                f"code")
            out = ins[0]
        else:                          # MaxPool
            out = ins[0]
        streams[node.outputs[0]] = out
    return streams


def map_graph(graph, image=(8, 8), folding=None, board=None, caps=(64, 2, 8)):
    """The folded hardware graph of golden `graph` on images of `image` (height, width).

    `folding` maps node names to {"pe", "simd", "multipliers", "fifo"} for a layer,
    {"multipliers"} for an `Affine` (a name that is neither is refused); an affine
    unit not named gets the fewest multipliers that keep its rate within the
    schedule; a layer not named gets the default: PE at
    most ``caps[1]`` (PA) or ``caps[2]`` (XNOR) rows, and the narrowest SIMD (at most
    ``caps[0]``) that keeps it within the slowest layer's cycles per image. Layers
    whose outputs meet in a join, directly or through per-channel ops, share one PE
    (their beats line up)."""
    _check_nodes(graph)
    folding = dict(folding or {})
    layers = [n for n in graph.nodes if isinstance(n, _LAYERS)]
    names = [n.name for n in layers]
    affines = {n.name for n in graph.nodes if isinstance(n, Affine)}
    unknown = sorted(set(folding) - set(names) - affines)
    if unknown:
        raise PlanError(f"folding names {', '.join(unknown)}, which is no layer of the "
                        f"graph; its layers: {', '.join(names)}")
    for name in sorted(set(folding) & affines):
        if set(folding[name]) - {"multipliers"}:
            raise PlanError(f"folding of node {name} (Affine): it takes multipliers only, "
                            f"not {', '.join(sorted(set(folding[name]) - {'multipliers'}))}")
    multipliers = {name: folding.pop(name)["multipliers"] for name in set(folding) & affines}
    infos = graph.tensors(input_shape(graph, image))
    configs = {}

    def config_of(node, planes):
        # A grouped convolution: each group's unit, on its slice of the input channels.
        source, groups = node.inputs[0], node.geometry.groups
        unit, shape = node, infos[source].shape
        if groups > 1:
            unit, shape = node.group(0), (shape[0] // groups, *shape[1:])
        configs[node.name] = layer_config(unit, shape, planes, f"tensor {source}")
        return configs[node.name]

    streams = _streams(graph, config_of)
    pe = _default_pe(graph, layers, configs, folding, caps)
    beat = _beats(graph, configs, pe)
    for node in layers:
        channels = configs[node.name].window and configs[node.name].window.channels
        if node.geometry.groups > 1 and channels % beat[node.inputs[0]]:
            raise PlanError(f"layer {node.name}: its groups of {channels} input channels do "
                            f"not take whole beats of {beat[node.inputs[0]]}; fold the layer "
                            f"before it to a PE dividing {channels}")
    in_beats = [beat[n.inputs[0]] for n in layers]
    simd = _default_simd(graph, layers, configs, pe, in_beats, folding, caps[0])
    plan = [{"pe": pe[n.name], "simd": simd[n.name],
             **{k: v for k, v in folding.get(n.name, {}).items() if k not in ("pe", "simd")}}
            for n in layers]
    unfolded = [configs[n.name] for n in layers]
    folded = fold(unfolded, plan, names, board, in_beats=lambda k, _: in_beats[k])
    configs = dict(zip(names, folded))
    hw = _assemble(graph, configs, beat, streams, infos, multipliers)
    if board is not None:
        fit, overrun = estimate_graph(hw, board)
        if overrun is not None:
            raise PlanError(_overrun_text(board, *overrun, what="unit") + "; fold the layers "
                            "narrower or choose a larger board")
        hw.estimate = fit
    return hw


def fitting_graph(graph, image, folding, board):
    """`map_graph` of the layers `folding` does not name at the widest `FOLDING_CAPS`
    whose estimate fits `board` (as `folding.fitting_folding` folds a chain); refused,
    naming the unit and the resource, when even PE = SIMD = 1 does not fit."""
    for caps in FOLDING_CAPS:
        hw = map_graph(graph, image, folding, caps=caps)
        fit, overrun = estimate_graph(hw, board)
        if overrun is None:
            hw.estimate = fit
            return hw
    raise PlanError(_overrun_text(board, *overrun, what="unit") + ", even folded to PE = "
                    "SIMD = 1 where the folding leaves it; choose a larger board")


def _beat_classes(graph):
    """Tensors whose beats must match, as {tensor: class}: a per-channel op's input and
    output, and every input of a join with its output."""
    parent = {}

    def find(t):
        parent.setdefault(t, t)
        while parent[t] != t:
            t = parent[t]
        return t

    for node in graph.nodes:
        if isinstance(node, _KEEP_BEAT):
            root = find(node.outputs[0])
            for t in node.inputs:
                parent[find(t)] = root
    return {t: find(t) for t in list(parent)}


def _default_pe(graph, layers, configs, folding, caps):
    """Each layer's PE: the folding's, else the widest within its cap; layers whose
    outputs meet (`_beat_classes`) share the widest PE dividing all their rows."""
    pe = {}
    for node in layers:
        c = configs[node.name]
        cap = caps[1] if c.front == "and" else caps[2]
        pe[node.name] = folding.get(node.name, {}).get("pe") or _largest_divisor(c.rows, cap)
    classes = _beat_classes(graph)
    members = {}
    for node in layers:
        if node.outputs[0] in classes:
            members.setdefault(classes[node.outputs[0]], []).append(node)
    for root, group in members.items():
        if len(group) < 2:
            continue
        common = min(pe[w.name] for w in group)
        while any(configs[w.name].rows % common for w in group):
            common -= 1
        for w in group:
            if w.name in folding and folding[w.name].get("pe", common) != common:
                # The first join in this class of beats: the one that makes them meet.
                join = next(n for n in graph.nodes if isinstance(n, _JOINS)
                            and classes.get(n.outputs[0]) == root)
                raise PlanError(f"node {join.name} ({type(join).__name__}): its inputs' "
                                f"layers {', '.join(x.name for x in group)} must share one "
                                f"PE (their beats line up); the folding gives {w.name} "
                                f"pe={folding[w.name]['pe']}")
            pe[w.name] = common
    # A grouped layer's groups and a slice's channels take whole beats: the layer whose
    # beats they read (through per-channel ops) narrows its PE, with the layers whose
    # beats meet its, to divide a group's channels or the slice's ends.
    cuts = [(node.inputs[0], configs[node.name].window.channels) for node in layers
            if node.geometry.groups > 1]
    cuts += [(node.inputs[0], gcd(node.start, node.stop)) for node in graph.nodes
             if isinstance(node, Slice)]
    for tensor, channels in cuts:
        source = _beat_source(graph, tensor)
        if source is None:
            continue
        shared = members.get(classes.get(source.outputs[0]), [source])
        while any(channels % pe[w.name] or configs[w.name].rows % pe[w.name] for w in shared):
            if any("pe" in folding.get(w.name, {}) for w in shared):
                break                      # the folding's: refused, named, by map_graph
            for w in shared:
                pe[w.name] -= 1
    return pe


def _beat_source(graph, tensor):
    """The layer whose output beats `tensor` carries (through per-channel ops and joins,
    whose inputs share their beats), or None (the graph's input)."""
    node = graph.find_producer(tensor)
    while node is not None and not isinstance(node, _LAYERS):
        node = graph.find_producer(node.inputs[0])
    return node


def _beats(graph, configs, pe):
    """Elements per beat of every tensor's stream."""
    first = configs[graph.input_layer().name]
    columns = first.cols if first.window is None else first.window.channels
    beat = {graph.input: _largest_divisor(columns, INPUT_BEAT)}
    for node in graph.nodes:
        if isinstance(node, _LAYERS):
            beat[node.outputs[0]] = pe[node.name]
        else:
            found = {beat[t] for t in node.inputs}
            if len(found) > 1:
                raise PlanError(f"node {node.name} ({type(node).__name__}): its inputs come "
                                f"{sorted(found)} channels a beat; a join's inputs share one "
                                f"beat (fold the layers before it alike)")
            beat[node.outputs[0]] = found.pop()
    return beat


def _default_simd(graph, layers, configs, pe, in_beats, folding, max_simd):
    """The narrowest SIMD keeping each layer within the slowest stage's cycles per image
    (the folding's SIMD where it gives one)."""
    first = configs[layers[0].name]
    widest = {n.name: _largest_divisor(configs[n.name].cols, max_simd) for n in layers}
    stages = [first.image_elements // in_beats[0]]
    for node, in_beat in zip(layers, in_beats):
        c, p = configs[node.name], pe[node.name]
        simd = folding.get(node.name, {}).get("simd", widest[node.name])
        stages += [_compute_cycles(c, p, simd, c.terms), _feed(c, in_beat), _pool_cycles(c, p)]
    target = max(stages)
    chosen = {}
    for node in layers:
        c, p = configs[node.name], pe[node.name]
        if "simd" in folding.get(node.name, {}):
            chosen[node.name] = folding[node.name]["simd"]
            continue
        fits = [s for s in _divisors(c.cols, max_simd)
                if _compute_cycles(c, p, s, c.terms) <= target]
        chosen[node.name] = fits[0] if fits else widest[node.name]
    return chosen


def _op_spec(node, inputs, out, streams, beat, infos):
    """The unit of a graph op that is not a layer, reading streams `inputs`."""
    t = node.inputs[0]
    lanes, info = beat[t], infos[t]
    groups = info.shape[0] // lanes
    if isinstance(node, Affine):
        config = AffineConfig(lanes=lanes, groups=groups, in_bits=streams[t].bits,
                              mul_bits=node.coef_bits, out_bits=node.bits, shift=node.shift)
        return UnitSpec(node.name, "affine", inputs, [out], config=config)
    if isinstance(node, Threshold):
        # The pixels (a stream of codes here is the input's) are unsigned integers.
        pixels, bits = streams[t].planes, streams[t].bits or node.bits
        config = ThresholdConfig(lanes=lanes, groups=groups,
                                 n=node.output.values.shape[1], in_bits=bits,
                                 threshold_bits=bits + 1, pixels=pixels,
                                 positions=_positions(info))
        return UnitSpec(node.name, "threshold", inputs, [out], config=config)
    if isinstance(node, Add):
        config = AddConfig(in_bits=tuple(streams[x].bits for x in node.inputs),
                           shifts=tuple(node.shifts), out_bits=node.bits, lanes=lanes)
        return UnitSpec(node.name, "add", inputs, [out], config=config)
    if isinstance(node, MaxPool):
        if len(info.shape) != 3:
            raise PlanError(f"node {node.name} (MaxPool) pools {t} of shape {info.shape}; it "
                            f"pools images")
        stream = streams[t]
        try:
            config = WindowConfig(channels=info.shape[0], simd=lanes, kernel=node.kernel,
                                  height=info.shape[1], width=info.shape[2],
                                  stride=node.stride, padding=0,
                                  element_bits=stream.planes or stream.bits, pad_code=0)
        except ValueError as error:
            raise PlanError(f"node {node.name} (MaxPool): {error}") from None
        if not stream.planes:
            raise PlanError(f"node {node.name} (MaxPool) pools values; in hardware it pools "
                            f"codes")
        return UnitSpec(node.name, "pool", inputs, [out], config=config)
    if isinstance(node, GlobalSum):
        if len(info.shape) != 3:
            raise PlanError(f"node {node.name} (GlobalSum) sums the positions of {t}, of shape "
                            f"{info.shape}; it sums images")
        config = GlobalSumConfig(lanes=lanes, groups=groups, positions=_positions(info),
                                 in_bits=streams[t].bits, shift=node.shift, out_bits=node.bits)
        return UnitSpec(node.name, "globalsum", inputs, [out], config=config)
    if isinstance(node, Slice):
        if node.start % lanes or node.stop % lanes:
            raise PlanError(f"node {node.name} (Slice): channels {node.start} .. "
                            f"{node.stop - 1} of {t} do not take whole beats of {lanes}; fold "
                            f"the layer before it to a PE dividing {node.start or node.stop} "
                            f"and {node.stop}")
        return UnitSpec(node.name, "select", inputs, [out], shape=streams[t].layout(lanes),
                        beats=(groups, node.start // lanes, node.stop // lanes))
    per_position = [infos[x].shape[0] // beat[x] for x in node.inputs]
    return UnitSpec(node.name, "concat", inputs, [out], shape=streams[out].layout(beat[out]),
                    beats=tuple(per_position))


def _assemble(graph, configs, beat, streams, infos, multipliers):
    """Units, forks and queues of the folded graph, in an order where each stream is
    written before it is read."""
    readers = {}
    for node in graph.nodes:
        for t in node.inputs:
            readers.setdefault(t, []).append(node.name)
    bound = {}                 # (tensor, reader) -> the stream the reader takes
    queues = {}                # (join, input tensor) -> its queue
    units, loaded = [], []
    grouped = {}               # grouped layer -> its concatenation
    group_queues = {}          # a grouped layer's queues: (depth, reason)
    stages = []                # cycles per image of the stream ops and pools

    def layout(t):
        writer = graph.find_producer(t)
        if isinstance(writer, _LAYERS):
            return configs[writer.name].out_layout
        return streams[t].layout(beat[t])

    def fork(tensor):
        names = readers.get(tensor, [])
        if len(names) > 1:
            outs = [f"{tensor}__to__{r}" for r in names]
            units.append(UnitSpec(f"{tensor}__fork", "fork", [tensor], outs,
                                  shape=layout(tensor)))
            bound.update({(tensor, r): o for r, o in zip(names, outs)})
        elif names:
            bound[(tensor, names[0])] = tensor

    fork(graph.input)
    for node in graph.nodes:
        inputs = [bound[(t, node.name)] for t in node.inputs]
        out = node.outputs[0]
        if isinstance(node, _JOINS):
            queued = []
            for t, stream in zip(node.inputs, inputs):
                queue = f"{stream}__queue"
                units.append(UnitSpec(queue, "queue", [stream], [queue], shape=layout(t),
                                      depth=1))
                queues[(node.name, t)] = queue
                queued.append(queue)
            inputs = queued
        if isinstance(node, _LAYERS) and node.geometry.groups > 1:
            units.extend(_grouped(node, inputs[0], out, configs[node.name], layout,
                                  beat[node.inputs[0]], infos, loaded, group_queues))
            grouped[node.name] = units[-1]
            fork(out)
            continue
        if isinstance(node, _LAYERS):
            spec = UnitSpec(node.name, "layer", inputs, [out], config=configs[node.name])
        else:
            spec = _op_spec(node, inputs, out, streams, beat, infos)
        units.append(spec)
        if spec.kind in ("affine", "threshold", "add"):
            # A beat a cycle: positions times beats a position of its output.
            stages.append(_positions(infos[out]) * infos[out].shape[0] // beat[out])
        elif spec.kind == "pool":
            stages.append(spec.config.out_beats)
        elif spec.kind == "globalsum":
            stages.append(spec.config.in_beats)
        elif spec.kind == "select":
            stages.append(_positions(infos[node.inputs[0]]) * spec.beats[0])
        if spec.kind in LOADED:
            loaded.append(Loaded(node.name, node.name, infos[node.inputs[0]].shape))
        fork(out)
    taps = {_tap(n.outputs[0]): n.outputs[0] for n in graph.nodes}
    hw = HwGraph(units, graph.input, graph.output, loaded, taps)
    # The slowest stage: a layer (`image_cycles`), a stream op's beats (one a cycle) or
    # a pool's window beats.
    hw.schedule_cycles = max([image_cycles(hw.configs), *stages])
    _fold_affines(hw, infos, multipliers)
    unit_configs = {u.name: u for u in units}
    # A grouped layer's paths run through its groups' units, alike: the first stands
    # for them.
    unit_configs.update({name: unit_configs[f"{name}__g0"] for name in grouped})
    start = time.perf_counter()
    depths = reconvergent_depths(graph, queues, unit_configs, beat, infos, hw.schedule_cycles)
    depths.update(group_queues)
    hw.depth_seconds = time.perf_counter() - start
    for index, spec in enumerate(hw.units):
        if spec.kind == "queue":
            depth, reason = depths[spec.name]
            hw.units[index] = replace(spec, depth=depth)
            hw.queues.append({"name": spec.name, "depth": depth, "reason": reason})
    return hw


def _grouped(node, source, out, config, layout, in_beat, infos, loaded, queues):
    """The units of grouped convolution `node` reading stream `source`: a `ChannelSplit`
    of each position's channels by group, one layer unit a group (`config`, its
    load words the group's: `Loaded.group`), a queue behind each, and their
    concatenation writing `out`. A queue holds two positions of its group's beats
    and the margin: the concatenation takes a position's groups one after another
    while the groups compute side by side (`queues` gets each depth and reason)."""
    groups = node.geometry.groups
    channels = infos[node.inputs[0]].shape[0] // groups
    per_group = config.rows // config.pe
    names = [f"{node.name}__g{k}" for k in range(groups)]
    units = [UnitSpec(f"{node.name}__split", "split", [source],
                      [f"{name}__in" for name in names], shape=layout(node.inputs[0]),
                      beats=(channels // in_beat,) * groups)]
    for k, name in enumerate(names):
        units.append(UnitSpec(name, "layer", [f"{name}__in"], [name], config=config))
        depth = 2 * per_group + QUEUE_MARGIN
        units.append(UnitSpec(f"{name}__queue", "queue", [name], [f"{name}__queue"],
                              shape=config.out_layout, depth=depth))
        queues[f"{name}__queue"] = (depth, f"group {k} of {node.name}: two positions of its "
                                           f"{per_group} beats and {QUEUE_MARGIN}, while the "
                                           f"concatenation takes the groups in turn")
        loaded.append(Loaded(name, node.name, (channels, *infos[node.inputs[0]].shape[1:]),
                             k))
    units.append(UnitSpec(f"{node.name}__cat", "concat", [f"{n}__queue" for n in names],
                          [out], shape=config.out_layout, beats=(per_group,) * groups))
    return units


def _fold_affines(hw, infos, multipliers):
    """Give each affine unit the fewest multipliers that keep its beats within the
    schedule (`multipliers` names some: {node: count}), and the schedule the slowest
    of them where a count given makes one slower."""
    for index, spec in enumerate(hw.units):
        if spec.kind != "affine":
            continue
        c = spec.config
        beats = _positions(infos[spec.outputs[0]]) * c.groups
        count = multipliers.get(spec.name)
        if count is None:
            # At most half the schedule busy: a layer's beats come in bursts (a window's
            # rows), which a unit at its full time per beat would hold back (measured:
            # the digits ResNet's affine units at 512 of 576 cycles ran at 640).
            steps = _largest_divisor(c.lanes, max(1, hw.schedule_cycles // (2 * beats)))
            count = c.lanes // steps
        try:
            config = replace(c, multipliers=count)
        except ValueError as error:
            raise PlanError(f"node {spec.name} (Affine): {error}") from None
        hw.units[index] = replace(spec, config=config)
        hw.schedule_cycles = max(hw.schedule_cycles, beats * config.steps)


def _need(spec, position):
    """The last input position unit `spec` reads to give output `position` (row-major,
    after a layer's pooling), or None where it reads the whole image (a fully connected
    layer). A window reads a row once the whole row is in (`SlidingWindow`), so the
    last position is the end of the last row its kernel covers; a pooling's window
    likewise, on the rows it pools. Per-channel ops read their own position."""
    if spec.kind == "pool":
        return _window_need(spec.config, position)
    if spec.kind == "globalsum":
        return None
    if spec.kind != "layer":
        return position
    config = spec.config
    if config.window is None:
        return None
    if config.pool is not None:
        position = _window_need(config.pool, position)
    return _window_need(config.window, position)


def _window_need(w, position):
    row = min(position // w.out_width * w.stride - w.padding + w.kernel - 1, w.height - 1)
    return (max(row, 0) + 1) * w.width - 1


def _positions(info):
    return prod(info.shape[1:]) if len(info.shape) == 3 else 1


def reconvergent_depths(graph, queues, specs, beat, infos, schedule):
    """The depth of every queue into a join, from the static schedule; `queues` maps
    (join, input tensor) to the queue's name, `specs` node names to their units,
    `schedule` is the pipeline's cycles per image. Returns {queue name: (depth,
    reason)}.

    A join takes position p of all its inputs together. On an input whose path from
    its fork is shorter, the fork's beats wait while the longer path reads ahead of
    p: its windows read a row once the whole row is in, so a k x k convolution
    needs the rows its kernel covers below p, a pooling the rows of its window,
    composed along the path (`_need`; per-channel ops read ahead of nothing). With
    `ahead` such positions of `bpp` beats, ``ahead * bpp - 1`` beats in the queue
    (the last one the path needs waits in the fork) are the fewest without a
    deadlock. Then the beats the fork sends while the last of them goes through the
    path's pipelines (`_path_latency`, at the schedule's rate of beats), and at least
    a position's, so that the join does not hold the fork back."""
    depths = {}
    for node in graph.nodes:
        if not isinstance(node, _JOINS):
            continue
        paths = {t: _path_from_fork(graph, t, specs, infos) for t in node.inputs}
        for t, (origin, chain) in paths.items():
            queue = queues[(node.name, t)]
            positions = _positions(infos[origin])
            others = [(_lookahead(c, specs, positions), _path_latency(c, specs), c)
                      for o, c in paths.values() if o == origin]
            ahead_most, latency, longest = max(others, key=lambda x: (x[0], x[1]))
            ahead_here, latency_here = _lookahead(chain, specs, positions), \
                _path_latency(chain, specs)
            if (ahead_here, latency_here) >= (ahead_most, latency):
                depths[queue] = (QUEUE_MARGIN, "the join's slowest path: it waits for "
                                               "nothing")
                continue
            # The shorter path's own pipeline does not shorten the wait: its outputs queue
            # up from its first one on (measured: subtracting it left the fractal block's
            # queue 4 beats short of its schedule).
            ahead = ahead_most - ahead_here
            bpp = infos[origin].shape[0] // beat[origin]
            per_beat = schedule / (positions * bpp)
            # (A beat more for each further layer on the path, once measured on the
            # fractal block's two-layer column, is in its latency now: its 15 entries
            # are the fewest at its schedule, `benchmarks/fifo_tightness.py`.)
            extra = max(bpp, ceil(latency / per_beat))
            depths[queue] = (
                max(QUEUE_MARGIN, ahead * bpp - 1 + extra),
                f"the path {', '.join(longest)} reads {ahead} positions of {origin} ahead "
                f"of the one the join takes ({ahead * bpp - 1} beats wait here, one in the "
                f"fork), and its pipelines take {latency} cycles, in which the fork sends "
                f"{ceil(latency / per_beat)} beats at {per_beat:g} cycles a beat ({extra} "
                f"more, at least a position's {bpp})")
    return depths


def _path_latency(path, specs):
    """Cycles from a path's last input beat to its output beat: each layer's window (a
    vector's beats), vector period and latency, its pool's window; a threshold
    unit's encoder; an affine unit's two registers; an add unit's, a fork's and a
    queue's register."""
    cycles = 0
    for name in path:
        spec = specs[name]
        c = spec.config
        if spec.kind == "layer":
            cycles += c.vector_period + c.latency
            for w in (c.window, c.pool):
                if w is not None:
                    cycles += w.kernel ** 2 * w.folds
        elif spec.kind == "pool":
            cycles += c.kernel ** 2 * c.folds
        elif spec.kind == "threshold":
            cycles += ActivationEncoder.LATENCY
        elif spec.kind == "affine":
            cycles += c.latency
        else:
            cycles += 1
    return cycles + 2 if path else 0


def _path_from_fork(graph, tensor, specs, infos):
    """(the forked tensor, or the graph input, this tensor comes from; the nodes between
    them, in order). Through a join the path follows the input that reads furthest
    ahead (then the slowest), as the join waits for it."""
    chain = []
    while len(graph.find_consumers(tensor)) < 2:
        producer = graph.find_producer(tensor)
        if producer is None:
            break
        chain.insert(0, producer.name)
        if len(producer.inputs) == 1:
            tensor = producer.inputs[0]
            continue
        options = [(t, *_path_from_fork(graph, t, specs, infos)) for t in producer.inputs]
        origins = {origin for _, origin, _ in options}
        if len(origins) > 1:
            break
        t, tensor, inner = max(options, key=lambda x: (
            _lookahead(x[2], specs, _positions(infos[x[1]])), _path_latency(x[2], specs)))
        return tensor, inner + chain
    return tensor, chain


def _lookahead(path, specs, positions):
    """The most input positions `path` (node names, in order) reads beyond the output
    position it gives, over all positions."""
    ahead = 0
    for p in range(positions):
        q = p
        for name in reversed(path):
            q = _need(specs[name], q)
            if q is None:
                return positions     # a fully connected layer reads the whole image
        ahead = max(ahead, q - p)
    return ahead


def graph_load_stream(graph, hw):
    """The load words of every loaded unit, in load order: a layer's `load_rows`, an
    affine unit's scales, a threshold unit's oriented thresholds, each packed."""
    words = []
    for name, node_name, shape, group in hw.layers:
        node, spec = graph.node(node_name), hw.unit(name)
        if group is not None:
            node = node.group(group)
        config = spec.config
        if spec.kind == "layer":
            check_plane_sum(node, config)
            words += config.pack(load_rows(node, config, shape))
        elif spec.kind == "affine":
            lanes = config.lanes
            rows = [[{"mul": int(node.mul[g * lanes + k]), "add": int(node.add[g * lanes + k])}
                     for k in range(lanes)] for g in range(config.groups)]
            words += config.pack({"scales": rows})
        else:
            lanes, values = config.lanes, node.output.values
            descending = node.output.descending
            if values.shape[0] == 1:             # one row for every channel
                channels = lanes * config.groups
                values, descending = values.expand(channels, -1), descending.expand(channels)
            rows = [[{"thresholds": orient_thresholds(values[c].tolist(), bool(descending[c])),
                      "descending": int(descending[c])}
                     for c in range(g * lanes, (g + 1) * lanes)] for g in range(config.groups)]
            words += config.pack({"thresholds": rows})
    return words


def _stream_beats(values, layout, planes_encoded):
    """(items, C[, H, W]) codes or scores -> beats of `layout` (an ArrayLayout), position
    by position, each position's channels in beats."""
    rows = position_major(values).tolist()
    if planes_encoded:
        rows = element_values(rows, "onehot")
    beat = layout.length
    return [layout.const(row[k:k + beat]).as_bits() for row in rows
            for k in range(0, len(row), beat)]


def graph_case(graph, hw, pixels):
    """The stream bench's case for `hw` on `pixels`: load words, input beats, and every
    tapped tensor's golden beats (the scores at ``o``): codes as the one-hot planes an
    unsigned stream carries, values as they are on a signed one."""
    _, trace = graph.run(pixels)
    layouts = stream_layouts(hw.units)
    outputs, per_item = {}, {}
    for tap, tensor in hw.taps.items():
        layout = layouts[tensor]
        codes = not layout.elem_shape.signed
        outputs[tap] = _stream_beats(trace.tensors[tensor], layout, codes)
        per_item[tap] = len(outputs[tap]) // len(pixels)
    out_tap = _tap(graph.output)
    outputs["o"], per_item["o"] = outputs[out_tap], per_item[out_tap]
    words = check_load_words(graph_load_stream(graph, hw), hw.loaded_configs)
    if graph.thresholds_pixels:
        inputs = _stream_beats(pixels, layouts[graph.input], False)   # the pixels' values
    else:
        inputs = input_beats(hw.configs[0], pixel_rows(pixels), graph.input_encoding)
    return {"words": words, "loaded_within": load_latency(len(hw.loaded_configs)),
            "inputs": inputs,
            "outputs": outputs, "beats_per_item": per_item}

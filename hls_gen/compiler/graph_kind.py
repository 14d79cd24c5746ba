"""Networks that are graphs: residual, concatenating, fractal and NAS-cell networks, a
`GraphNetwork` of units wired by tensor name.

What the flow's steps make of a graph (a golden `Graph` with forks or joins; a
chain is `network.NetworkKind`'s)::

    golden     golden.json   the integer golden graph
    map_to_hw  hw.json       its tensors (shape, what the stream carries) and nodes
    fold       plan.json     the `HwGraph`: every unit with its config, PE/SIMD per
                             layer (``folding`` keyed by node name; the layers it
                             leaves at the widest default that fits the board),
                             every queue's depth from the schedule with its reason,
                             the estimate; refused if it exceeds the board
    emit_rtl   network.v     the `bitfab.rtl.graph_network.GraphNetwork`, every tensor
                             tapped; weights.json
    sim        sim.json      the digits test images (photo crops for 3 x 8-bit
                             channels), every tensor of the graph checked
    synth                    the graph without its taps behind the serial shell
"""

from bitfab.hls_gen.compiler.design import DesignKind, report_node
from bitfab.hls_gen.compiler.graph import (HwGraph, fitting_graph, graph_case,
                                           graph_load_stream, input_shape, map_graph)
from bitfab.hls_gen.compiler.network import DIGITS_IMAGE, crowded_router, test_inputs
from bitfab.hls_gen.compiler.plan import PlanError
from bitfab.hls_gen.errors import BitfabError
from bitfab.hls_gen.golden.ir import Graph, graph_from_dict, graph_to_dict

__all__ = ["GraphKind", "graph_folding", "check_same_graph_plan"]

UNIT_FIELDS = ("name", "kind", "inputs", "outputs", "pe", "simd", "cycles_per_image",
               "depth", "luts", "brams")


def graph_folding(folding, graph):
    """A build's `folding` for `graph`: {node name: {"pe", "simd", ...}}, or None; a
    list (positional, as chains take) is refused, naming the layers to key it by."""
    if folding is None or isinstance(folding, dict):
        return folding
    names = [n.name for n in graph.nodes if hasattr(n, "widths")]
    raise PlanError(f"a graph's folding names its layers (--fold NAME=PExSIMD,...), not "
                    f"positions; its layers: {', '.join(names)}")


def _layer_folding(hw):
    """The folding that `map_graph` maps back to `hw`'s layers and affine units, keyed
    by golden node (a grouped layer's groups share one)."""
    folding = {}
    for entry in hw.layers:
        unit = hw.unit(entry.unit)
        c = unit.config
        if unit.kind == "layer":
            folding[entry.node] = {"pe": c.pe, "simd": c.simd, "multipliers": c.multipliers,
                                   "fifo": c.fifo, "bank_rows": c.weight_bank_rows}
        elif unit.kind == "affine":
            folding[entry.node] = {"multipliers": c.multipliers}
    return folding


def check_same_graph_plan(graph, plan):
    """Raise unless `graph`, folded as the build was, maps to the build's units: the
    bitstream's memories and widths are fixed, only their contents change."""
    built = HwGraph.from_dict(plan)
    try:
        mapped = map_graph(graph, tuple(plan["image"]), _layer_folding(built))
    except PlanError as error:
        raise BitfabError(f"the model does not map to the build's plan ({error}): build it "
                          f"instead") from None
    ours = {u.name: u for u in built.units}
    theirs = {u.name: u for u in mapped.units}
    if set(ours) != set(theirs):
        extra = sorted(set(theirs) ^ set(ours))
        raise BitfabError(f"the model's units differ from the build's ({', '.join(extra)}): "
                          f"build it instead")
    for name, unit in ours.items():
        if theirs[name] != unit:
            raise BitfabError(f"unit {name}: the model maps to {theirs[name].config or ''} "
                              f"where the build has {unit.config or ''}; the bitstream "
                              f"cannot take it: build the model instead")


class GraphKind(DesignKind):
    """A network with forks and joins (a golden `Graph` that is not a chain)."""

    name = "graph"
    toplevel = "network"

    def __init__(self):
        self._frozen = (None, None)     # (the last module asked about, its graph)

    def _graph(self, model):
        if isinstance(model, Graph):
            return model
        if self._frozen[0] is not model:
            from bitfab.hls_gen.golden.freeze import freeze
            self._frozen = (model, freeze(model))
        return self._frozen[1]

    def accepts(self, model):
        try:
            return not self._graph(model).is_chain
        except BitfabError:
            return False          # the network kind's freeze names what is wrong

    def accepts_golden(self, value):
        if value.get("kind", "network") != "network" or "nodes" not in value:
            return False
        try:
            return not graph_from_dict(value).is_chain
        except BitfabError:
            return False

    def freeze(self, model, log):
        graph = self._graph(model)
        log(f"golden: a graph of {len(graph.nodes)} nodes; joins: "
            f"{', '.join(n.name for n in graph.nodes if graph.is_join_node(n)) or 'none'}")
        return graph_to_dict(graph)

    def synth_options(self, plan, board):
        return crowded_router(plan, board)

    def map_to_hw(self, golden, cfg, log):
        graph = graph_from_dict(golden)
        image = list(cfg.image or DIGITS_IMAGE)
        infos = graph.tensors(input_shape(graph, image))
        return {"image": image,
                "tensors": {name: list(info.shape) for name, info in infos.items()},
                "nodes": [{"name": n.name, "op": type(n).__name__, "inputs": list(n.inputs),
                           "outputs": list(n.outputs)} for n in graph.nodes]}

    def fold(self, hw, cfg, board, log, golden):
        graph = graph_from_dict(golden)
        mapped = fitting_graph(graph, tuple(hw["image"]), graph_folding(cfg.folding, graph),
                               board)
        log("plan: " + ", ".join(f"{u.name} pe={u.config.pe} simd={u.config.simd}"
                                 for u in mapped.units if u.kind == "layer")
            + f"; the schedule: {mapped.schedule_cycles} cycles per image; queues: "
            + ", ".join(f"{q['name']} {q['depth']}" for q in mapped.queues)
            + f" (computed in {1e3 * mapped.depth_seconds:.1f} ms)")
        return {**mapped.plan_dict(), "image": hw["image"], "board": board.name}

    def design(self, plan):
        return HwGraph.from_dict(plan).network()

    def core(self, plan):
        return lambda: HwGraph.from_dict(plan).network(taps=False)

    def load_words(self, golden, plan):
        hw = HwGraph.from_dict(plan)
        return {"word_bits": hw.word_bits,
                "words": graph_load_stream(graph_from_dict(golden), hw)}

    def case(self, golden, plan, cfg, count):
        graph, hw = graph_from_dict(golden), HwGraph.from_dict(plan)
        pixels, _ = test_inputs(graph, hw.configs[0], count)
        return graph_case(graph, hw, pixels), len(pixels)

    def report_layers(self, plan):
        hw, estimates = HwGraph.from_dict(plan), _unit_estimates(plan)
        rows = []
        for unit in hw.units:
            c = unit.config
            layer = unit.kind == "layer"
            rows.append({"name": unit.name, "kind": unit.kind, "inputs": list(unit.inputs),
                         "outputs": list(unit.outputs),
                         "pe": c.pe if layer else None, "simd": c.simd if layer else None,
                         "cycles_per_image": c.positions * c.cycles if layer else None,
                         "depth": unit.depth if unit.kind == "queue" else None,
                         "luts": estimates.get(unit.name, {}).get("luts"),
                         "brams": estimates.get(unit.name, {}).get("brams")})
        return rows

    def report_nodes(self, plan):
        hw, estimates = HwGraph.from_dict(plan), _unit_estimates(plan)
        return [report_node(unit.name, unit.kind,
                            (unit.config.positions * unit.config.cycles
                             if unit.kind == "layer" else None),
                            unit.depth if unit.kind == "queue" else None,
                            estimates.get(unit.name))
                for unit in hw.units]

    def report_extra(self, plan):
        return {"queues": plan["queues"], "queue_depth_seconds": plan["queue_depth_seconds"]}

    def format_layers(self, report):
        def cell(value):
            return "-" if value is None else value
        lines = ["| unit | kind | reads | PE | SIMD | cycles per image | queue depth | "
                 "LUT4 (est.) |", "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {u['name']} | {u['kind']} | {', '.join(u['inputs'])} | {cell(u['pe'])} "
                  f"| {cell(u['simd'])} | {cell(u['cycles_per_image'])} | {cell(u['depth'])} "
                  f"| {cell(u['luts'])} |" for u in report["layers"]]
        lines += ["", "Queues on the paths into joins, sized from the schedule:", ""]
        lines += [f"- {q['name']}: {q['depth']} ({q['reason']})" for q in report["queues"]]
        return lines


def _unit_estimates(plan):
    """The plan's estimate row of each unit, by unit name."""
    return {u["name"]: u for u in (plan.get("estimate") or {}).get("units", [])}

"""The build flow: named steps from a golden model to a verified design and a bitstream.

As FINN's build steps: each step reads its inputs from the output directory
and writes its result there as JSON (or Verilog), so the flow runs from and to
any step (`BuildConfig.start_step` / `stop_step`).

    golden     golden.json   the integer golden model (frozen IR)
    map_to_hw  hw.json       one matrix-vector unit per layer, unfolded
    fold       plan.json     PE/SIMD per layer, memory shapes, widths; refused
                             (`PlanError`) if the estimate exceeds the board
    emit_rtl   network.v     Verilog of the datapath; weights.json, the load words
    sim        sim.json      cocotb on the digits test split, every layer checked
    netlist    netlist.json  the same on the network as yosys maps it for the board
                             (`bitfab.sim.netlist`), when `netlist_images` > 0
    synth      synth.json    yosys + nextpnr + packer: nextpnr's own figures
    report     report.json, report.md

An integer convolution layer (`IntConv2d`) takes the same steps in
`bitfab.hls_gen.compiler.conv_flow`, on a convolution engine (DFNT or direct).
"""

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path


from bitfab.hls_gen.compiler.boards import board as find_board
from bitfab.hls_gen.compiler.clocks import design_clock
from bitfab.hls_gen.errors import BitfabError
from bitfab.hls_gen.golden.ir import graph_from_dict, graph_to_dict
from bitfab.hls_gen.compiler.plan import (check_fit, fitting_folding, fold, load_stream,
    map_to_hw, plan_from_dict, plan_to_dict)

__all__ = ["STEPS", "BuildConfig", "run_flow"]

STEPS = ["golden", "map_to_hw", "fold", "emit_rtl", "sim", "netlist", "synth", "report"]


@dataclass(frozen=True)
class BuildConfig:
    """Everything a build depends on; saved as ``config.json`` beside its results."""

    out: str
    board: str = "ulx3s-85f"
    folding: list | None = None        # [{"pe": .., "simd": ..}, ...] or None: default
    simulator: str = "verilator"
    sim_images: int | None = None      # None: every test image
    seed: int = 20261122
    idle: float = 0.0                  # input stalls in simulation (0: measure throughput)
    backpressure: float = 0.0
    bitstream: bool = True
    start_step: str = "golden"
    stop_step: str = "report"
    engine: str = "auto"               # convolution layers: auto, dfnt or direct
    image: list | None = None          # convolution layers: [height, width] to build for
    clock_mhz: float | None = None     # the design clock; None: the board's (networks) or
                                       # the engine's (`conv_flow.ENGINE_CLOCK_MHZ`)
    netlist_images: int = 0            # test images through the post-synthesis netlist

    def __post_init__(self):
        for name in ("start_step", "stop_step"):
            if getattr(self, name) not in STEPS:
                raise BitfabError(f"{name} {getattr(self, name)!r} is not a step; steps: "
                                  f"{', '.join(STEPS)}")
        if self.clock_mhz is not None:
            design_clock(find_board(self.board), self.clock_mhz)   # a clock the PLL makes
        else:
            find_board(self.board)
        if not isinstance(self.netlist_images, int) or self.netlist_images < 0:
            raise BitfabError(f"netlist_images must be a count of images, not "
                              f"{self.netlist_images!r}")
        if self.engine not in ("auto", "dfnt", "direct"):
            raise BitfabError(f"engine must be auto, dfnt or direct, not {self.engine!r}")
        if self.image is not None and (len(self.image) != 2 or not all(
                isinstance(v, int) and v > 0 for v in self.image)):
            raise BitfabError(f"image must be [height, width], positive integers, "
                              f"not {self.image!r}")


def read_result(out, name):
    path = Path(out) / name
    if not path.exists():
        raise BitfabError(f"{path} is missing: run the step that writes it first")
    return json.loads(path.read_text())


def write_result(out, name, value):
    (Path(out) / name).write_text(json.dumps(value, indent=1) + "\n")


def step_golden(cfg, model, log):
    if model is None:
        raise BitfabError("the golden step needs a model (a frozen graph or a bitfab model)")
    from bitfab.hls_gen.golden.freeze import freeze
    from bitfab.hls_gen.golden.ir import Graph
    graph = model if isinstance(model, Graph) else freeze(model)
    write_result(cfg.out, "golden.json", graph_to_dict(graph))


def step_map_to_hw(cfg, log):
    graph = graph_from_dict(read_result(cfg.out, "golden.json"))
    write_result(cfg.out, "hw.json", plan_to_dict(map_to_hw(graph), [l.name for l in graph.layers]))


def step_fold(cfg, log):
    configs, names = plan_from_dict(read_result(cfg.out, "hw.json"))
    if cfg.folding is None:
        folded, fit = fitting_folding(configs, find_board(cfg.board), names)
    else:
        folded = fold(configs, cfg.folding, names)
        fit = check_fit(folded, find_board(cfg.board), names)
    plan = plan_to_dict(folded, names)
    plan.update(board=cfg.board, estimate=fit,
                cycles_per_layer=[c.cycles for c in folded])
    write_result(cfg.out, "plan.json", plan)
    log(f"plan: " + ", ".join(f"{n} pe={c.pe} simd={c.simd} ({c.cycles} cycles)"
                               for n, c in zip(names, folded)))


def _plan(cfg):
    return plan_from_dict(read_result(cfg.out, "plan.json"))


def step_emit_rtl(cfg, log):
    from amaranth.back import verilog

    from bitfab.rtl.network import Network
    graph = graph_from_dict(read_result(cfg.out, "golden.json"))
    configs, _ = _plan(cfg)
    network = Network(configs)
    words = load_stream(graph, configs)
    write_result(cfg.out, "weights.json", {"word_bits": network.word_bits, "words": words})
    if network_verilog(cfg.out, configs) is not None:
        log("emit_rtl: plan unchanged, network.v kept")
        return
    text = verilog.convert(network, name="network")
    (Path(cfg.out) / "network.v").write_text(text)
    (Path(cfg.out) / "network.v.plan").write_text(_plan_key(configs))


def _plan_key(configs):
    return hashlib.sha1(json.dumps([asdict(c) for c in configs], sort_keys=True).encode()).hexdigest()


def network_verilog(out, configs):
    """network.v if it was written for this plan, else None. The weights are loaded at
    run time, so the Verilog depends on the plan alone and an unchanged plan keeps it
    (converting the network takes minutes)."""
    verilog_path, key_path = Path(out) / "network.v", Path(out) / "network.v.plan"
    if verilog_path.exists() and key_path.exists() and key_path.read_text() == _plan_key(configs):
        return verilog_path.read_text()
    return None


def _network_case(cfg, images):
    """The saved golden model and plan, and the case of the first `images` test images
    (None: all of them) through the network."""
    from bitfab.sim.cases import network_case

    from bitfab.hls_gen.datasets import load_digits_split
    graph = graph_from_dict(read_result(cfg.out, "golden.json"))
    configs, _ = _plan(cfg)
    pixels = load_digits_split().x_test.long().flatten(1)[:images]
    return graph, configs, network_case(graph, configs, pixels), len(pixels)


def step_sim(cfg, log):
    from bitfab.rtl.network import Network
    graph, configs, case, images = _network_case(cfg, cfg.sim_images)
    log(f"sim: {images} test images through the generated network in {cfg.simulator}")
    simulate(cfg, network_verilog(cfg.out, configs) or Network(configs), "network", case,
             plan_to_dict(configs, [l.name for l in graph.layers]), images, log)


def simulate(cfg, design, toplevel, case, key, images, log, step="sim", start=None):
    """Run `case` on `design` in cocotb, building in ``{step}_build``, and write
    ``{step}.json`` (mismatches, cycles, ..., the seconds since `start`, default now)."""
    from bitfab.sim.cases import run_case
    start = time.perf_counter() if start is None else start
    result = run_case(design, toplevel, case, Path(cfg.out) / f"{step}_build", cfg.seed,
                      cfg.simulator, cfg.idle, cfg.backpressure, key=key)
    result.update(simulator=cfg.simulator, images=images,
                  seconds=round(time.perf_counter() - start, 1))
    write_result(cfg.out, f"{step}.json", result)
    log(f"{step}: {result['images']} images, {result['mismatches']} mismatches, "
        f"{result['cycles_per_item']} cycles per image")
    return result


def step_netlist(cfg, log):
    """The first `netlist_images` test images through the network as the bitstream flow's
    yosys script maps it for the board, against the golden model (`bitfab.sim.netlist`)."""
    if not cfg.netlist_images:
        log("netlist: skipped (no netlist images asked for)")
        return
    from bitfab.rtl.network import Network
    _, configs, case, images = _network_case(cfg, cfg.netlist_images)
    log(f"netlist: yosys maps the network for {cfg.board}, then {images} test images "
        f"through the netlist in {cfg.simulator}")
    simulate_netlist(cfg, Network(configs), "network", case, images, log)


def simulate_netlist(cfg, design, toplevel, case, images, log, overrides=None):
    """`simulate` on `design` as the bitstream flow's yosys script (with `overrides`)
    maps it for the board (`bitfab.sim.netlist`): builds in ``netlist_build``, writes
    ``netlist.json``, and its seconds include yosys's."""
    from bitfab.sim.netlist import synthesize
    start = time.perf_counter()
    netlist = synthesize(design, toplevel, Path(cfg.out) / "netlist_build",
                         find_board(cfg.board).platform_class()(), overrides)
    return simulate(cfg, netlist, toplevel, case, None, images, log, "netlist", start)


def step_synth(cfg, log):
    from bitfab.hls_gen.compiler.synth import build_bitstream
    if not cfg.bitstream:
        log("synth: skipped (no bitstream asked for)")
        return
    configs, _ = _plan(cfg)
    board = find_board(cfg.board)
    write_result(cfg.out, "synth.json",
                 build_bitstream(configs, board, cfg.out, log,
                                 clock=design_clock(board, cfg.clock_mhz)))


def report_fields(cfg, plan):
    """The report's fields every design has: RTL-vs-golden, nextpnr's figures, speed."""
    out = Path(cfg.out)
    sim = read_result(out, "sim.json") if (out / "sim.json").exists() else None
    netlist = (read_result(out, "netlist.json")
               if cfg.netlist_images and (out / "netlist.json").exists() else None)
    synth = read_result(out, "synth.json") if cfg.bitstream and (out / "synth.json").exists() else None
    cycles = sim["cycles_per_item"] if sim else None
    fmax = synth["fmax_mhz"] if synth else None
    # (Builds before clock_mhz was recorded routed for the clock they ran at.)
    clock = synth and synth.get("clock_mhz", synth["clock_constraint_mhz"])
    return {
        "board": cfg.board,
        "rtl": ({"images": sim["images"], "mismatches": sim["mismatches"],
                 "simulator": sim["simulator"], "seed": sim["seed"],
                 "beats_checked": sim["beats_checked"],
                 "golden_vs_rtl_agreement": 1 - sim["items_mismatched"] / sim["images"]}
                if sim else None),
        # The same bench on the netlist yosys maps (`step_netlist`), when asked for.
        "netlist": ({"images": netlist["images"], "mismatches": netlist["mismatches"],
                     "simulator": netlist["simulator"], "seed": netlist["seed"],
                     "beats_checked": netlist["beats_checked"]} if netlist else None),
        "luts": synth and synth["luts"], "ffs": synth and synth["ffs"],
        "brams": synth and synth["brams"], "dsps": synth and synth["dsps"],
        "fmax_mhz": fmax,
        "clock_constraint_mhz": synth and synth["clock_constraint_mhz"],   # routed for
        "clock_mhz": clock,                                                # runs at
        # Below the clock it runs at, the bitstream is unsafe on the board.
        "timing_met": synth and fmax >= clock,
        "cycles_per_image": cycles,
        "images_per_s": round(fmax * 1e6 / cycles) if fmax and cycles else None,
        # What the bitstream computes on the board, at the clock it runs at.
        "images_per_s_at_clock": round(clock * 1e6 / cycles) if clock and cycles else None,
        "bitstream": synth and synth["bitstream"],
        "estimate": plan["estimate"]["total"],
    }


def step_report(cfg, log):
    out = Path(cfg.out)
    plan = read_result(out, "plan.json")
    report = report_fields(cfg, plan)
    report["layers"] = [{k: layer[k] for k in ("name", "rows", "cols", "pe", "simd", "m", "n_in",
                                               "front", "acc_bits")} for layer in plan["layers"]]
    write_result(out, "report.json", report)
    (out / "report.md").write_text(format_report(report))
    return report


def format_summary(report):
    """The report's common rows as Markdown lines."""
    rows = [("board", report["board"])]
    if report["rtl"]:
        rtl = report["rtl"]
        rows.append(("RTL vs golden", f"{rtl['images']} images, {rtl['mismatches']} "
                                      f"mismatches ({rtl['simulator']})"))
    if report.get("netlist"):
        net = report["netlist"]
        rows.append(("netlist vs golden", f"{net['images']} images, {net['mismatches']} "
                                          f"mismatches (post-synthesis, {net['simulator']})"))
    for key in ("luts", "ffs", "brams", "dsps", "fmax_mhz", "clock_mhz", "clock_constraint_mhz",
                "timing_met",
                "cycles_per_image", "images_per_s", "images_per_s_at_clock", "bitstream"):
        rows.append((key, report[key]))
    lines = ["# bitfab build report", "", "| | |", "|---|---|"]
    return lines + [f"| {k} | {v if v is not None else '-'} |" for k, v in rows]


def format_report(report):
    if report.get("engine"):
        from bitfab.hls_gen.compiler.conv_flow import format_conv_report
        return format_conv_report(report)
    lines = format_summary(report)
    lines += ["", "| layer | rows x cols | PE | SIMD | M x N | front |", "|---|---|---|---|---|---|"]
    lines += [f"| {l['name']} | {l['rows']} x {l['cols']} | {l['pe']} | {l['simd']} | "
              f"{l['m']} x {l['n_in']} | {l['front']} |" for l in report["layers"]]
    return "\n".join(lines) + "\n"


def _is_conv(cfg, model):
    """A convolution build: the model is an integer convolution layer, or (starting
    later) golden.json holds one."""
    if model is not None:
        from bitfab.hls_gen.golden.intconv import is_conv_model
        return is_conv_model(model)
    path = Path(cfg.out) / "golden.json"
    return path.exists() and json.loads(path.read_text()).get("kind") == "int_conv"


def run_flow(cfg, model=None, log=print):
    """Run the steps from `cfg.start_step` to `cfg.stop_step`; returns the report if made."""
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    write_result(cfg.out, "config.json", asdict(cfg))
    steps = STEPS[STEPS.index(cfg.start_step):STEPS.index(cfg.stop_step) + 1]
    if _is_conv(cfg, model):
        from bitfab.hls_gen.compiler import conv_flow
        functions = vars(conv_flow)
    else:
        functions = globals()
    result = None
    for name in steps:
        fn = functions[f"step_{name}"]
        result = fn(cfg, model, log) if name == "golden" else fn(cfg, log)
    return result

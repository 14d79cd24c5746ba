"""The build flow: one ordered list of named steps, from a model to a verified design
and a bitstream, for every kind of design.

As FINN's build steps: each step is registered by name (`STEP_LOOKUP`, as
FINN's ``build_dataflow_step_lookup``), takes one argument, the `Build` under
way, and writes its results into its own subfolder of the build directory, so
a build runs from and to any step (`BuildConfig.start_step` / ``stop_step``)
and a user may put their own step callables in the list
(`BuildConfig.steps`). What differs between kinds of design (networks, convolution
engines, the kinds to come) is their `bitfab.hls_gen.compiler.design.DesignKind`;
the steps are the same::

    golden     golden/golden.json    the integer golden model
    map_to_hw  map_to_hw/hw.json     the unfolded hardware
    fold       fold/plan.json        folding, memories, widths, the resource estimate;
                                     refused (`PlanError`) if it exceeds the board
    emit_rtl   emit_rtl/network.v    Verilog of the design (``engine.v`` for an
                                     engine); weights.json, its load words
    sim        sim/sim.json          cocotb on real inputs, every output checked
    netlist    netlist/netlist.json  the same on the design as yosys maps it for the
                                     board (`bitfab.sim.netlist`), when
                                     ``netlist_images`` > 0
    synth      synth/synth.json      yosys + nextpnr + packer: nextpnr's own figures;
                                     the tools' files in synth/build
    report     report/report.json    the figures, report.md, and report.html (the page
                                     people look at, plots inline); report.json and
                                     report.html also at the top

``config.json`` at the top records what each step ran with. A build that
starts later (``start_step``) is refused, naming the field, when a field an
earlier step's result depends on (board, folding, clock, model, ...) differs
from what that step ran with: start from that step to rebuild it instead.
"""

import functools
import hashlib
import json
import time
from dataclasses import dataclass, fields
from pathlib import Path

from bitfab.hls_gen.compiler.boards import board as find_board
from bitfab.hls_gen.compiler.clocks import design_clock
from bitfab.hls_gen.compiler.kinds import kind_for_golden, kind_for_model
from bitfab.hls_gen.compiler.report import source_commit
from bitfab.hls_gen.compiler.report import format_report, report_fields
from bitfab.hls_gen.errors import BitfabError

__all__ = ["Step", "STEP_LOOKUP", "STEPS", "register_step", "BuildConfig", "Build", "run_flow",
           "SimulationMismatch",
           "artifact", "read_result", "design_verilog", "format_report", "saved_config"]


@dataclass(frozen=True)
class Step:
    """A named step: `run(build)`, the files it writes into its folder, and the
    `BuildConfig` fields its result depends on."""

    name: str
    run: object
    writes: tuple = ()
    depends_on: tuple = ()


STEP_LOOKUP = {}


def register_step(name, writes=(), depends_on=()):
    """Register a function ``fn(build)`` as the step `name` (a decorator)."""
    def register(fn):
        STEP_LOOKUP[name] = Step(name, fn, tuple(writes), tuple(depends_on))
        return fn
    return register


def as_step(item):
    """A step of a flow's list: a registered name, a `Step`, or a callable
    ``fn(build)`` (named after the function, without a ``step_`` prefix; it may set
    ``writes`` and ``depends_on`` attributes)."""
    if isinstance(item, Step):
        return item
    if isinstance(item, str):
        try:
            return STEP_LOOKUP[item]
        except KeyError:
            raise BitfabError(f"{item!r} is not a step; steps: {', '.join(STEP_LOOKUP)}") from None
    if callable(item):
        name = getattr(item, "__name__", type(item).__name__).removeprefix("step_")
        return Step(name, item, tuple(getattr(item, "writes", ())),
                    tuple(getattr(item, "depends_on", ())))
    raise BitfabError(f"a step is a name or a callable, not {item!r}")


@dataclass(frozen=True)
class BuildConfig:
    """Everything a build depends on; saved in ``config.json`` beside its results."""

    out: str
    board: str = "ulx3s-85f"
    folding: list | dict | None = None # [{"pe": .., "simd": ..}, ...] per layer, or
                                       # {layer name: {...}} (a graph's); None: default
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
                                       # the engine's (`conv_engine.ENGINE_CLOCK_MHZ`)
    netlist_images: int = 0            # test images through the post-synthesis netlist
    steps: tuple | None = None         # the flow: registered names, `Step`s or callables
                                       # ``fn(build)`` (config.json records their names);
                                       # None: `STEPS`
    bitstream_of: str | None = None    # a build whose synth step placed and routed this
                                       # same design (the weights aside): its bitstream
                                       # and figures are this build's, not made again

    def __post_init__(self):
        names = self.step_names
        for name in ("start_step", "stop_step"):
            if getattr(self, name) not in names:
                raise BitfabError(f"{name} {getattr(self, name)!r} is not a step; steps: "
                                  f"{', '.join(names)}")
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

    @property
    def flow(self):
        """The flow's steps (`Step`), in order."""
        return [as_step(s) for s in (self.steps or STEPS)]

    @property
    def step_names(self):
        return [step.name for step in self.flow]

    def to_dict(self):
        """The config as JSON, steps by name."""
        return {**{f.name: getattr(self, f.name) for f in fields(self)}, "steps": self.step_names}


def _step_of(name, steps=None):
    for step in list(steps or ()) + list(STEP_LOOKUP.values()):
        if name in step.writes:
            return step.name
    return None


def artifact(out, name, steps=None):
    """The path of the file `name` in build directory `out`: in the folder of the step
    that writes it (``plan.json`` -> ``out/fold/plan.json``), else wherever a step
    folder holds it, else at the top (``config.json``)."""
    out = Path(out)
    step = _step_of(name, steps)
    if step is not None:
        return out / step / name
    found = sorted(out.glob(f"*/{name}"))
    return found[0] if found else out / name


def read_result(out, name, steps=None):
    path = artifact(out, name, steps)
    if not path.exists():
        raise BitfabError(f"{path} is missing: run the step that writes it first")
    return json.loads(path.read_text())


def _write_json(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=1) + "\n")


def _digest(value):
    return hashlib.sha1(json.dumps(value, sort_keys=True).encode()).hexdigest()


class Build:
    """A build under way: what every step gets.

    Attributes
    ----------
    cfg : BuildConfig
    model : object or None
        The model given to the flow (a PyTorch module or a golden model), if any.
    log : callable
    out : Path
        The build directory; each step writes into ``out / step.name``.
    step : Step
        The step running now.
    """

    def __init__(self, cfg, model, log, steps):
        self.cfg, self.model, self.log, self.steps = cfg, model, log, list(steps)
        self.out, self.step = Path(cfg.out), None

    @property
    def board(self):
        return find_board(self.cfg.board)

    @property
    def folder(self):
        """The running step's folder (made on first use)."""
        folder = self.out / self.step.name
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    @functools.cached_property
    def kind(self):
        """The design kind: the model's, else the saved golden model's."""
        if self.model is not None:
            return kind_for_model(self.model)
        return kind_for_golden(self.read("golden.json"), artifact(self.out, "golden.json"))

    def path(self, name):
        return artifact(self.out, name, self.steps)

    def read(self, name):
        return read_result(self.out, name, self.steps)

    def write(self, name, value):
        """Write JSON `value` as `name` into the running step's folder."""
        _write_json(self.folder / name, value)


# --- the steps ---------------------------------------------------------------------


@register_step("golden", writes=("golden.json",))
def step_golden(build):
    if build.model is None:
        raise BitfabError("the golden step needs a model (a frozen graph or a bitfab model)")
    build.write("golden.json", build.kind.freeze(build.model, build.log))


@register_step("map_to_hw", writes=("hw.json",), depends_on=("engine", "image"))
def step_map_to_hw(build):
    build.write("hw.json", build.kind.map_to_hw(build.read("golden.json"), build.cfg, build.log))


@register_step("fold", writes=("plan.json",), depends_on=("board", "folding"))
def step_fold(build):
    build.write("plan.json", build.kind.fold(build.read("hw.json"), build.cfg, build.board,
                                             build.log, build.read("golden.json")))


def _design_key(plan):
    """What the Verilog depends on: the plan without its board and estimate (the weights
    are loaded at run time), and the source of the blocks it is made of."""
    return _digest({"plan": {k: v for k, v in plan.items() if k not in ("board", "estimate")},
                    "rtl": _rtl_source_digest()})


@functools.cache
def _rtl_source_digest():
    import bitfab.rtl
    digest = hashlib.sha1()
    for path in sorted(Path(bitfab.rtl.__file__).parent.rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def design_verilog(out, kind, plan):
    """The Verilog ``emit_rtl`` wrote for `plan`, or None if it wrote none for this plan
    (converting a network takes minutes, so an unchanged plan keeps it)."""
    path = artifact(out, f"{kind.toplevel}.v", [STEP_LOOKUP["emit_rtl"]])
    key = path.with_suffix(".v.plan")
    if path.exists() and key.exists() and key.read_text() == _design_key(plan):
        return path.read_text()
    return None


@register_step("emit_rtl", writes=("network.v", "engine.v", "weights.json"))
def step_emit_rtl(build):
    from amaranth.back import verilog
    kind, plan = build.kind, build.read("plan.json")
    build.write("weights.json", kind.load_words(build.read("golden.json"), plan))
    if design_verilog(build.out, kind, plan) is not None:
        build.log(f"emit_rtl: plan unchanged, {kind.toplevel}.v kept")
        return
    (build.folder / f"{kind.toplevel}.v").write_text(
        verilog.convert(kind.design(plan), name=kind.toplevel))
    (build.folder / f"{kind.toplevel}.v.plan").write_text(_design_key(plan))


class SimulationMismatch(BitfabError):
    """The design disagreed with its golden model in simulation (the step's JSON holds
    the count, the first mismatch, the seed and the wave dump)."""


def _mismatch_text(build, result):
    """One line: where the first mismatch is (the layer a tap belongs to), what each side
    gave, how many, the seed, and where the step's JSON and the wave dump are."""
    first = result.get("first_mismatch") or {}
    stream = first.get("stream", "?")
    where = stream
    plan = build.read("plan.json") if build.path("plan.json").exists() else {}
    if stream in plan.get("taps", {}):             # a graph's taps: one per tensor
        where = f"tensor {plan['taps'][stream]} ({stream})"
    elif stream.startswith("tap") and stream[3:].isdigit():
        layers = plan.get("layers", [])
        index = int(stream[3:])
        if index < len(layers):
            where = f"layer {layers[index]['name']} ({stream})"
    if "rtl" in first:
        what = f"beat {first['beat']} (image {first['item']}): RTL {first['rtl']}, golden " \
               f"{first['golden']}"
    else:
        what = f"{first.get('rtl_beats')} beats out where the golden model gives " \
               f"{first.get('golden_beats')}"
    return (f"{build.step.name}: {result['mismatches']} mismatches in {result['images']} "
            f"images (seed {result['seed']}); first at {where}, {what}; wave dump: "
            f"{', '.join(result.get('waves', [])) or 'none'}; details in "
            f"{build.path(build.step.name + '.json')}")


def simulate(build, design, case, images, key=None, start=None):
    """Run `case` on `design` in cocotb, building in the step's ``build`` folder, and
    write ``{step}.json`` (mismatches, cycles, ..., the seconds since `start`)."""
    from bitfab.hls_gen.compiler.progress import Progress, stdout_if_print, watch_simulation
    from bitfab.sim.cases import run_case
    cfg, name = build.cfg, build.step.name
    start = time.perf_counter() if start is None else start
    progress_path = build.folder / "build" / "progress.json"
    with watch_simulation(progress_path, Progress(name, build.log, stdout_if_print(build.log))):
        result = run_case(design, build.kind.toplevel, case, build.folder / "build", cfg.seed,
                          cfg.simulator, cfg.idle, cfg.backpressure, key=key,
                          raise_on_mismatch=False, progress=progress_path)
    result.update(simulator=cfg.simulator, images=images,
                  seconds=round(time.perf_counter() - start, 1), commit=source_commit())
    build.write(f"{name}.json", result)
    if result["mismatches"]:
        raise SimulationMismatch(_mismatch_text(build, result))
    build.log(f"{name}: {result['images']} images, {result['mismatches']} mismatches, "
              f"{result['cycles_per_item']} cycles per image")
    return result


def emitted_case(build, plan, count):
    """(case, items): the kind's case for the first `count` real inputs, loading the
    words emit_rtl wrote (weights.json), as a board is loaded."""
    case, images = build.kind.case(build.read("golden.json"), plan, build.cfg, count)
    return {**case, "words": build.read("weights.json")["words"]}, images


@register_step("sim", writes=("sim.json",),
               depends_on=("simulator", "sim_images", "seed", "idle", "backpressure"))
def step_sim(build):
    kind, plan = build.kind, build.read("plan.json")
    case, images = emitted_case(build, plan, build.cfg.sim_images)
    build.log(f"sim: {images} inputs through the generated {kind.toplevel} in "
              f"{build.cfg.simulator}")
    simulate(build, design_verilog(build.out, kind, plan) or kind.design(plan), case, images,
             key=plan)


@register_step("netlist", writes=("netlist.json",),
               depends_on=("board", "netlist_images", "simulator", "seed", "idle",
                           "backpressure"))
def step_netlist(build):
    """The first `netlist_images` inputs through the design as the bitstream flow's yosys
    script maps it for the board, against the golden model (`bitfab.sim.netlist`)."""
    cfg = build.cfg
    if not cfg.netlist_images:
        build.log("netlist: skipped (no netlist images asked for)")
        return
    from bitfab.sim.netlist import synthesize
    kind, plan, board = build.kind, build.read("plan.json"), build.board
    case, images = emitted_case(build, plan, cfg.netlist_images)
    build.log(f"netlist: yosys maps the {kind.toplevel} for {cfg.board}, then {images} "
              f"inputs through the netlist in {cfg.simulator}")
    start = time.perf_counter()
    netlist = synthesize(kind.design(plan), kind.toplevel, build.folder / "yosys",
                         board.platform_class()(),
                         kind.synth_options(plan, board).get("overrides"))
    simulate(build, netlist, case, images, start=start)


@register_step("synth", writes=("synth.json",),
               depends_on=("board", "clock_mhz", "bitstream", "bitstream_of"))
def step_synth(build):
    if not build.cfg.bitstream:
        build.log("synth: skipped (no bitstream asked for)")
        return
    from bitfab.hls_gen.compiler.synth import build_bitstream
    kind, plan, board = build.kind, build.read("plan.json"), build.board
    clock = design_clock(board, kind.clock_mhz(build.cfg, board))
    # What a bitstream is for: the weights are loaded at run time, so another build's
    # bitstream serves this one when these agree.
    design = {"design": _design_key(plan), "board": board.name,
              "clock_mhz": round(clock.mhz, 3)}
    if build.cfg.bitstream_of:
        result = _placed_for(build.cfg.bitstream_of, design)
        build.log(f"synth: the bitstream of {build.cfg.bitstream_of} is this design's (same "
                  f"plan, RTL source, board and clock; the weights are loaded at run time)")
    else:
        commit = source_commit()   # the source the bitstream's design is elaborated from
        result = {**build_bitstream(kind.core(plan), board, build.folder, build.log,
                                    clock=clock, **kind.synth_options(plan, board)),
                  "commit": commit}
    build.write("synth.json", {**result, **design})


def _placed_for(out, design):
    """The synth step's record in build `out`, which must have placed and routed
    `design` (its ``design``, ``board`` and ``clock_mhz``) into a bitstream."""
    path = artifact(out, "synth.json")
    placed = json.loads(path.read_text()) if path.exists() else {}
    if not placed.get("bitstream"):
        raise BitfabError(f"{out} has no bitstream to take: no {path} naming one")
    differ = [name for name in design if placed.get(name) != design[name]]
    if differ:
        detail = ", ".join(f"{n} {placed.get(n)!r} there, {design[n]!r} here" for n in differ)
        raise BitfabError(f"the bitstream of {out} is not this design's: {detail}")
    if not Path(placed["bitstream"]).exists():
        raise BitfabError(f"{out}'s bitstream {placed['bitstream']} is gone")
    return placed


@register_step("report", writes=("report.json", "report.md", "report.html"))
def step_report(build):
    from bitfab.hls_gen.compiler.html_report import write_build_page   # matplotlib
    kind, plan = build.kind, build.read("plan.json")
    report = {**report_fields(build, plan), **kind.report_extra(plan),
              "layers": kind.report_layers(plan), "nodes": kind.report_nodes(plan)}
    build.write("report.json", report)
    (build.folder / "report.md").write_text(format_report(report, kind))
    _write_json(build.out / "report.json", report)     # where machines read it
    # The page people look at, beside it (and where people look first).
    page = write_build_page(build.folder / "report.html", report)
    (build.out / "report.html").write_text(page.read_text())
    return report


STEPS = ["golden", "map_to_hw", "fold", "emit_rtl", "sim", "netlist", "synth", "report"]


# --- running and resuming -----------------------------------------------------------


def saved_config(out):
    """The config a build in `out` last ran with (``config.json``), or {}."""
    return _saved(out).get("config", {})


def _saved(out):
    path = Path(out) / "config.json"
    if not path.exists():
        return {}
    value = json.loads(path.read_text())
    # Builds before 2026-12-05 saved the config alone, without the steps' records.
    return value if "ran" in value else {"config": value, "ran": {}}


def _model_digest(build):
    return _digest(build.kind.freeze(build.model, lambda _: None))


def check_resume(build, earlier, saved):
    """Refuse to start after `earlier` steps when what they ran with differs from this
    build's config (or model), or when one of them ran before a step it follows."""
    ran = saved.get("ran", {})
    for step in earlier:
        record = ran.get(step.name)
        if record is None:
            continue
        for field in step.depends_on:
            now = getattr(build.cfg, field)
            if field in record and record[field] != now:
                raise BitfabError(
                    f"{build.out / 'config.json'}: {field} was {record[field]!r} when step "
                    f"{step.name} ran, this build asks for {now!r}; rebuild from that step "
                    f"(--start {step.name}) or keep {field} as it was")
    if build.model is not None and "golden" in [s.name for s in earlier]:
        if (build.path("golden.json").exists()
                and _model_digest(build) != _digest(build.read("golden.json"))):
            raise BitfabError(
                f"{build.out / 'config.json'}: model differs from the one step golden "
                f"froze; rebuild from that step (--start golden) or leave the model out "
                f"to keep the saved one")
    order = [(s.name, ran[s.name]["run"]) for s in earlier if s.name in ran]
    for (first, n), (later, m) in zip(order, order[1:]):
        if m < n:
            raise BitfabError(f"step {later} ran before step {first} ran again, so its "
                              f"results are stale: rebuild from {later} (--start {later})")


def run_flow(cfg, model=None, log=print):
    """Run the steps of `cfg.flow` from `cfg.start_step` to `cfg.stop_step`; returns
    the report if made."""
    steps, names = cfg.flow, cfg.step_names
    first, last = names.index(cfg.start_step), names.index(cfg.stop_step)
    build = Build(cfg, model, log, steps)
    saved = _saved(cfg.out)
    check_resume(build, steps[:first], saved)
    ran = saved.get("ran", {})
    counter = max((r["run"] for r in ran.values()), default=0)
    build.out.mkdir(parents=True, exist_ok=True)
    result = None
    for step in steps[first:last + 1]:
        build.step = step
        result = step.run(build)
        counter += 1
        record = {"run": counter, **{f: getattr(cfg, f) for f in step.depends_on}}
        ran[step.name] = record
        _write_json(build.out / "config.json", {"config": cfg.to_dict(), "ran": ran})
    return result

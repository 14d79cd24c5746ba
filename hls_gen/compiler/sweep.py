"""``bitfab sweep``: a search over a digits network's design space (its PA bases M and
N, the folding caps, the board, the clock) whose points run as tasks on Dask
distributed: a `LocalCluster` of worker processes by default, or a running scheduler
(``--scheduler tcp://HOST:PORT``; on Slurm, dask-jobqueue's ``SLURMCluster`` gives one).

Each (M, N) is trained once (a task: the float network, then the PA network from it,
frozen to its golden model); each point is a task after it: the build flow to the
plan's estimate and schedule, then, when asked, the RTL on ``sim_images`` test images
in cocotb and place and route. A point's result is kept in
``OUT/points/<key>.json``, `key` the hash of its configuration and the source commit,
so a sweep run again computes only what it lacks. A worker lost mid-task has its task
rerun on another (Dask reschedules it, up to its ``allowed-failures``); a point that
fails on its own (a plan too big for the board, a design that does not route) is
recorded as failed with the reason and not rerun.

Outputs: ``sweep.json`` (every point's figures), ``sweep.csv`` and ``sweep.html``
(LUT4s against images per second with the Pareto front marked, accuracy against M
and N).
"""

import csv
import hashlib
import itertools
import json
import os
import random
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from bitfab.hls_gen.compiler.cluster import dask_client
from bitfab.hls_gen.compiler.report import source_commit
from bitfab.hls_gen.errors import BitfabError

__all__ = ["SweepConfig", "SweepError", "points_of", "run_sweep", "pareto_front", "point_luts"]

#: The fields a sweep space may name, and what each value must be.
FIELDS = {
    "m": "a PA weight piece count M, even, 2..16",
    "n": "a PA activation piece count N, 1..16",
    "caps": "folding caps [max SIMD, max PE of PA layers, max PE of XNOR layers]",
    "board": "a board name (bitfab build --board)",
    "clock_mhz": "a design clock in MHz",
}
#: What a point is when the space leaves a field out.
DEFAULTS = {"m": 4, "n": 5, "caps": [64, 2, 8], "board": "ulx3s-85f", "clock_mhz": None}


class SweepError(BitfabError):
    """A sweep that cannot run: its space."""


@dataclass(frozen=True)
class SweepConfig:
    """Everything a sweep's points depend on besides their own fields."""

    out: str
    arch: str = "cnn"
    epochs: int = 10               # float, then PA fine-tuning, each
    sim_images: int = 0            # 0: the estimate and the schedule only
    bitstream: bool = False        # place and route each point
    samples: int | None = None     # random search: this many points of the grid
    seed: int = 0
    scheduler: str | None = None   # tcp://HOST:PORT; None: a LocalCluster
    workers: int = 2
    space: dict = field(default_factory=dict)


def points_of(space, samples=None, seed=0):
    """The points of `space` ({field: [values]}): the whole grid, or `samples` of them
    drawn with `seed`; each point a dict of every field (`DEFAULTS` for the rest)."""
    if not isinstance(space, dict):
        raise SweepError(f"the sweep space must be a JSON object of fields and value "
                         f"lists, not {space!r}")
    if not space:
        raise SweepError("the sweep space is empty: give at least one field, e.g. "
                         '{"m": [1, 2, 4], "n": [1, 2]}')
    unknown = sorted(set(space) - set(FIELDS))
    if unknown:
        raise SweepError(f"the sweep space names unknown fields {unknown}; fields: "
                         + "; ".join(f"{k} ({v})" for k, v in FIELDS.items()))
    for name, values in space.items():
        if not isinstance(values, list) or not values:
            raise SweepError(f"sweep field {name} must be a non-empty list of values "
                             f"({FIELDS[name]}), not {values!r}")
        for value in values:
            _check_value(name, value)
    names = sorted(space)
    grid = [dict(DEFAULTS, **dict(zip(names, values)))
            for values in itertools.product(*(space[n] for n in names))]
    if samples is not None:
        if samples < 1:
            raise SweepError(f"samples must be at least 1, not {samples}")
        grid = random.Random(seed).sample(grid, min(samples, len(grid)))
    return grid


def _check_value(name, value):
    # (The ranges PAWeightQuantizer and PAActivation take.)
    ok = {"m": lambda v: isinstance(v, int) and 2 <= v <= 16 and v % 2 == 0,
          "n": lambda v: isinstance(v, int) and 1 <= v <= 16,
          "caps": lambda v: (isinstance(v, list) and len(v) == 3
                             and all(isinstance(x, int) and x >= 1 for x in v)),
          "board": lambda v: isinstance(v, str),
          "clock_mhz": lambda v: v is None or (isinstance(v, (int, float)) and v > 0)}[name]
    if not ok(value):
        raise SweepError(f"sweep field {name}: {value!r} is not {FIELDS[name]}")
    if name == "board":
        from bitfab.hls_gen.compiler.boards import board
        board(value)


def _key(*parts):
    return hashlib.sha256(json.dumps([*parts, source_commit()], sort_keys=True)
                          .encode()).hexdigest()[:16]


def train_model(arch, m, n, epochs, folder):
    """A task: the PA network (M = `m`, N = `n`) of `arch` trained on the digits (float
    first, `epochs` each), frozen; {"golden": its golden model as a dict, "accuracy",
    "golden_accuracy"}. Kept in `folder`, keyed by its settings and the source."""
    path = Path(folder) / f"model_{arch}_m{m}n{n}_{_key(arch, m, n, epochs)}.json"
    if path.exists():
        return json.loads(path.read_text())
    from bitfab.hls_gen.datasets import load_digits_split
    from bitfab.hls_gen.digits.demo import DemoConfig, train_from_float
    from bitfab.hls_gen.digits.models import ModelSpec
    from bitfab.hls_gen.digits.train import TrainConfig, accuracy, predict
    from bitfab.hls_gen.golden.freeze import freeze
    from bitfab.hls_gen.golden.ir import graph_to_dict
    split = load_digits_split()
    spec = ModelSpec(arch, "pa", m, n)
    config = DemoConfig(float_training=TrainConfig(epochs=epochs),
                        quantized_training=TrainConfig(lr=1e-3, epochs=epochs))
    model = train_from_float(spec, split, config, log=lambda text: None)["pa"]
    graph = freeze(model, config.freeze)
    golden = graph.predict(split.x_test.view(-1, *spec.input_shape))
    result = {"golden": graph_to_dict(graph),
              "accuracy": accuracy(predict(model, split.x_test, spec.input_shape),
                                   split.y_test),
              "golden_accuracy": accuracy(golden, split.y_test)}
    path.parent.mkdir(parents=True, exist_ok=True)
    # Whole or not at all: a worker killed while writing leaves no half a file.
    partial = path.with_suffix(f".{os.getpid()}.part")
    partial.write_text(json.dumps(result))
    partial.replace(path)
    return result


def evaluate_point(point, trained, settings, folder):
    """A task: `point` through the build flow, from the golden model `trained` gives,
    to its estimate and schedule, then (`settings`: sim_images, bitstream) the RTL
    on test images and place and route. Returns the point's figures; a point that
    fails on its own returns ``status: "failed"`` and the reason."""
    from bitfab.hls_gen.compiler.boards import board as find_board
    from bitfab.hls_gen.compiler.flow import STEPS, BuildConfig, run_flow
    from bitfab.hls_gen.compiler.folding import default_folding
    from bitfab.hls_gen.compiler.network import DIGITS_IMAGE
    from bitfab.hls_gen.compiler.plan import map_to_hw
    from bitfab.hls_gen.golden.ir import graph_from_dict
    start = time.perf_counter()
    result = {"point": point, "accuracy": trained["accuracy"],
              "golden_accuracy": trained["golden_accuracy"]}
    try:
        graph = graph_from_dict(trained["golden"])
        folding = default_folding(map_to_hw(graph, DIGITS_IMAGE), *point["caps"])
        simulate, bitstream = settings["sim_images"] > 0, settings["bitstream"]
        steps = [s for s in STEPS if simulate or s not in ("sim", "netlist")]
        cfg = BuildConfig(out=str(folder), board=point["board"], folding=folding,
                          clock_mhz=point["clock_mhz"], sim_images=settings["sim_images"] or None,
                          bitstream=bitstream, steps=tuple(steps),
                          stop_step="report" if simulate or bitstream else "fold")
        run_flow(cfg, graph, log=lambda text: None)
    except BitfabError as error:
        return {**result, "status": "failed", "reason": str(error),
                "seconds": round(time.perf_counter() - start, 1)}
    plan = json.loads((Path(folder) / "fold" / "plan.json").read_text())
    clock = point["clock_mhz"] or find_board(point["board"]).clock_mhz
    schedule = plan["schedule_cycles_per_image"]
    result.update(status="done", estimate=plan["estimate"]["total"],
                  schedule_cycles_per_image=schedule,
                  images_per_s=round(clock * 1e6 / schedule), clock_mhz=clock,
                  folding=folding)
    report_path = Path(folder) / "report.json"
    if report_path.exists():
        report = json.loads(report_path.read_text())
        result.update(rtl=report.get("rtl"), cycles_per_image=report.get("cycles_per_image"),
                      **{k: report.get(k) for k in ("luts", "ffs", "brams", "dsps",
                                                    "fmax_mhz", "timing_met")})
        if report.get("images_per_s_at_clock"):
            result["images_per_s"] = report["images_per_s_at_clock"]
    result["seconds"] = round(time.perf_counter() - start, 1)
    return result


def run_sweep(cfg, log=print, client=None):
    """Run `cfg`'s sweep (this module's docstring); returns the points' results, also
    written as ``sweep.json``, ``sweep.csv`` and ``sweep.html`` in ``cfg.out``.
    `client`: a Dask client to use (else one `dask_client` makes and closes)."""
    points = points_of(cfg.space, cfg.samples, cfg.seed)
    out = Path(cfg.out)
    (out / "points").mkdir(parents=True, exist_ok=True)
    settings = {"sim_images": cfg.sim_images, "bitstream": cfg.bitstream}
    keys = [_key(cfg.arch, cfg.epochs, settings, p) for p in points]
    results, todo = {}, []
    for key, point in zip(keys, points):
        path = out / "points" / f"{key}.json"
        if path.exists():
            results[key] = json.loads(path.read_text())
        else:
            todo.append((key, point))
    log(f"sweep: {len(points)} points, {len(results)} done before, {len(todo)} to run")
    if todo:
        _run_points(cfg, todo, settings, out, results, log, client)
    ordered = [results[k] for k in keys]
    _write(out, ordered)
    return ordered


def _run_points(cfg, todo, settings, out, results, log, client):
    """Run the points of `todo` ((key, point) pairs) as Dask tasks, each (M, N)'s
    training once before its points; each result into `results` and its file."""
    from dask.distributed import as_completed
    with nullcontext(client) if client else dask_client(cfg.scheduler, cfg.workers) as client:
        models = {}
        futures = {}
        for key, point in todo:
            mn = (point["m"], point["n"])
            if mn not in models:
                models[mn] = client.submit(train_model, cfg.arch, *mn, cfg.epochs,
                                           str(out / "models"), key=f"train-{cfg.arch}-"
                                           f"m{mn[0]}n{mn[1]}-{_key(cfg.arch, *mn)}",
                                           pure=False)
            futures[client.submit(evaluate_point, point, models[mn], settings,
                                  str(out / "builds" / key), key=f"point-{key}",
                                  pure=False)] = key
        for done, (future, result) in enumerate(as_completed(futures, with_results=True), 1):
            key = futures[future]
            partial = out / "points" / f"{key}.part"
            partial.write_text(json.dumps(result, indent=1) + "\n")
            partial.replace(out / "points" / f"{key}.json")
            results[key] = result
            log(f"sweep: point {done} of {len(futures)}: {_describe(result)}")


def _describe(result):
    point = ", ".join(f"{k}={v}" for k, v in result["point"].items() if v is not None)
    if result["status"] != "done":
        return f"{point}: failed: {result['reason']}"
    return (f"{point}: {result['estimate']['luts']} LUT4 (est.), {result['images_per_s']} "
            f"images/s, accuracy {100 * result['golden_accuracy']:.2f}%")


def pareto_front(results):
    """The done points no other beats on both fewer LUT4s and more images per second
    (placed LUT4s where there are, else the estimate's)."""
    done = [r for r in results if r["status"] == "done"]
    front = []
    for r in done:
        luts, speed = point_luts(r), r["images_per_s"]
        if not any(point_luts(o) <= luts and o["images_per_s"] >= speed
                   and (point_luts(o) < luts or o["images_per_s"] > speed) for o in done):
            front.append(r)
    return sorted(front, key=point_luts)


def point_luts(result):
    """A done point's LUT4s: nextpnr's where it was placed, else the estimate's."""
    return result.get("luts") or result["estimate"]["luts"]


COLUMNS = ("m", "n", "caps", "board", "clock_mhz", "status", "accuracy", "golden_accuracy",
           "luts_estimate", "luts", "fmax_mhz", "schedule_cycles_per_image",
           "cycles_per_image", "images_per_s", "mismatches", "pareto", "reason")


def _write(out, results):
    front_points = pareto_front(results)
    front = {id(r) for r in front_points}
    (out / "sweep.json").write_text(json.dumps(
        [{**r, "pareto": id(r) in front} for r in results], indent=1) + "\n")
    with open(out / "sweep.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for r in results:
            p, estimate = r["point"], r.get("estimate") or {}
            writer.writerow([p["m"], p["n"], "x".join(map(str, p["caps"])), p["board"],
                             p["clock_mhz"], r["status"], r["accuracy"], r["golden_accuracy"],
                             estimate.get("luts"), r.get("luts"), r.get("fmax_mhz"),
                             r.get("schedule_cycles_per_image"), r.get("cycles_per_image"),
                             r.get("images_per_s"), (r.get("rtl") or {}).get("mismatches"),
                             id(r) in front, r.get("reason")])
    from bitfab.hls_gen.compiler.html_report import sweep_page
    (out / "sweep.html").write_text(sweep_page(results, front_points, point_luts))

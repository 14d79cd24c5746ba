"""Measurement history: records kept as JSON in ``docs/results/``, rendered as tables
and plots.

Nobody copies a figure by hand. A build's ``report.json`` or a benchmark's last
line of output goes in with ``record``, which adds the commit, the date and the
machine; ``render`` (run by the documentation's ``conf.py``) writes the tables
that ``results.md`` includes, and each design's history as a plot::

    python docs/render_results.py build out/xnor/report.json --design "XNOR MLP"
    python benchmarks/popcount.py | tail -1 > pop.json
    python docs/render_results.py benchmark popcount pop.json
    python docs/render_results.py readme      # the README's headline table

``builds.json`` holds one record per bitstream (design, board, commit, date,
machine, LUTs, FFs, BRAMs, DSPs, fmax, images/s, critical path); ``benchmarks.json`` one
per benchmark run (its figures as the benchmark printed them).
"""

import argparse
import json
import os
import platform
import sys
from datetime import date
from pathlib import Path

from bitfab.hls_gen.compiler.report import source_commit

__all__ = ["render", "build_record", "benchmark_record", "demo_record", "headline_table",
           "update_readme"]

HERE = Path(__file__).resolve().parent
#: A design's table (one per design and board); its critical path follows it.
BUILD_COLUMNS = (("commit", "commit"), ("date", "date"), ("luts", "LUTs"), ("ffs", "FFs"),
                 ("brams", "BRAMs"), ("dsps", "DSPs"), ("fmax_mhz", "fmax (MHz)"),
                 ("images_per_s_at_clock", "images/s"), ("mismatches", "RTL mismatches"))
#: A design's history plots.
HISTORY = (("luts", "LUT4s"), ("fmax_mhz", "fmax (MHz)"), ("images_per_s_at_clock", "images/s"))
#: The runs of a benchmark its table shows, the latest.
BENCHMARK_RUNS = 4


def _machine():
    return f"{platform.machine()}, {os.cpu_count()} cores"


def build_record(report, design):
    """A `builds.json` record from a build's ``report.json`` (as a dict)."""
    if report.get("fmax_mhz") is None:
        raise ValueError("the report has no bitstream figures (a build without synth)")
    rtl = report.get("rtl") or {}
    path = report.get("critical_path") or {}
    return {"design": design, "board": report["board"],
            "commit": report.get("commit") or source_commit(),
            "date": date.today().isoformat(), "machine": _machine(),
            **{k: report[k] for k in ("luts", "ffs", "brams", "dsps", "fmax_mhz")},
            "images_per_s_at_clock": report.get("images_per_s_at_clock"),
            "critical_path": path.get("text") if isinstance(path, dict) else path,
            "mismatches": (f"{rtl['mismatches']} of {rtl['images']} images"
                           if rtl else None),
            "source": "report.json"}


def benchmark_record(name, figures):
    """A `benchmarks.json` record from a benchmark's last line (as a dict)."""
    return {"benchmark": name, "commit": source_commit(), "date": date.today().isoformat(),
            "machine": _machine(), "figures": figures}


def demo_record(report):
    """An ``accuracy.json`` record from ``bitfab demo``'s ``report.json``: every model's
    test accuracy in PyTorch and in the golden model, and their agreement."""
    models = {name: {k: entry.get(k) for k in ("accuracy", "golden_accuracy",
                                              "golden_agreement", "golden_agreement_float64")}
              for name, entry in report["models"].items()}
    return {"commit": report.get("commit") or source_commit(), "date": date.today().isoformat(),
            "machine": _machine(), "test_images": report["test_images"], "models": models,
            "seconds": report.get("seconds"), "bitstream": bool(report.get("bitstream"))}


def _percent(value):
    return "-" if value is None else f"{100 * value:.2f}%"


def _cell(value):
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value).replace("|", "\\|")


def _load(folder, name):
    path = Path(folder) / name
    return json.loads(path.read_text()) if path.exists() else []


def render(folder, target):
    """Write the Markdown of the records in `folder` to `target`, with each design's
    history as a plot (LUT4s, fmax, images/s per record) in ``results_plots/``
    beside it."""
    plots = Path(target).parent / "results_plots"
    plots.mkdir(exist_ok=True)
    lines = ["## Bitstreams", ""]
    builds = sorted(_load(folder, "builds.json"), key=lambda r: (r["design"], r["date"]))
    designs = {}
    for r in builds:
        designs.setdefault((r["design"], r["board"]), []).append(r)
    for (design, board), runs in designs.items():
        image = _history_plot(runs, plots / f"{_slug(design, board)}.png", f"{design}, {board}")
        lines += [f"### {design} ({board})", "", f"![{design} on {board}: history]"
                  f"(results_plots/{image.name})", "",
                  "| " + " | ".join(title for _, title in BUILD_COLUMNS) + " |",
                  "|" + "---|" * len(BUILD_COLUMNS)]
        lines += ["| " + " | ".join(_cell(r.get(key)) for key, _ in BUILD_COLUMNS) + " |"
                  for r in runs]
        lines += ["", f"Critical path at {runs[-1]['commit']}: "
                      f"{_cell(runs[-1].get('critical_path'))}", ""]
    for run in _load(folder, "accuracy.json"):
        took = ""
        if run.get("seconds"):
            minutes, seconds = divmod(round(run["seconds"]), 60)
            took = (f" The demo took {minutes}:{seconds:02d} wall time, "
                    f"{'bitstream included' if run.get('bitstream') else 'no bitstream'}.")
        lines += ["", f"## Accuracy on the digits ({run['test_images']} test images; "
                      f"{run['commit']}, {run['date']}, {run['machine']})", "",
                  took.strip(), "",
                  "| model | PyTorch (float32) | golden model | golden = PyTorch "
                  "| golden = PyTorch in float64 |", "|---|---|---|---|---|"]
        lines += [f"| {name} | " + " | ".join(_percent(m[k]) for k in (
            "accuracy", "golden_accuracy", "golden_agreement", "golden_agreement_float64"))
            + " |" for name, m in run["models"].items()]
    benchmarks = _load(folder, "benchmarks.json")
    for name in sorted({r["benchmark"] for r in benchmarks}):
        runs = [r for r in benchmarks if r["benchmark"] == name]
        shown = runs[-BENCHMARK_RUNS:]
        keys = sorted({k for r in shown for k, v in r["figures"].items()
                       if not isinstance(v, (dict, list))})
        # A row per figure, a column per run: the page's width holds a few runs, not
        # the many figures a benchmark prints.
        lines += ["", f"## Benchmark `{name}`", "",
                  f"{len(runs)} runs; the last {len(shown)}:" if len(runs) > len(shown) else "",
                  "", "| figure | " + " | ".join(f"{r['commit']} ({r['date']})" for r in shown)
                  + " |", "|---|" + "---|" * len(shown)]
        lines += [f"| {k} | " + " | ".join(_cell(r["figures"].get(k)) for r in shown) + " |"
                  for k in keys]
        lines += _latency_table(runs[-1])
        lines += _models_table(runs[-1])
    Path(target).write_text("\n".join(lines) + "\n")
    return len(builds), len(benchmarks)


def _slug(*parts):
    return "_".join("".join(c if c.isalnum() else "-" for c in p.lower()) for p in parts)


def _history_plot(runs, path, title):
    """A design's records as three plots side by side (LUT4s, fmax, images/s), one
    point per record in date order; written to `path` (PNG)."""
    from matplotlib.figure import Figure
    figure = Figure(figsize=(9, 2.4), layout="constrained")
    labels = [f"{r['commit']}\n{r['date'][5:]}" for r in runs]
    for axes, (key, label) in zip(figure.subplots(1, 3), HISTORY):
        points = [(x, r[key]) for x, r in enumerate(runs) if r.get(key) is not None]
        axes.plot([p[0] for p in points], [p[1] for p in points], "o-", color="#1f4e79")
        axes.set_xticks(range(len(runs)), labels, fontsize=6)
        axes.set_title(label, fontsize=9)
        axes.set_xlim(-0.5, len(runs) - 0.5)
        if not points:
            axes.text(0.5, 0.5, "not recorded", transform=axes.transAxes, ha="center")
            axes.set_yticks([])
    figure.suptitle(title, fontsize=10)
    figure.savefig(path, dpi=90)
    return path


def _latency_table(record):
    """Per-layer pipeline latencies of the XNOR and PA versions at equal folding, where a
    benchmark gives them (`benchmarks/cnv.py`: thesis Table 3.8)."""
    figures = record["figures"]
    xnor = figures.get("xnor", {}).get("latency_at_finn_folding")
    pa = figures.get("pa", {}).get("latency_at_finn_folding")
    if not xnor or not pa:
        return []
    lines = ["", f"Pipeline latency per layer at equal folding, cycles from a row's last "
                 f"fold to its output ({record['commit']}):", "",
             "| layer | XNOR | PA (M=4, N=5) | PA - XNOR |", "|---|---|---|---|"]
    return lines + [f"| {k} | {a} | {b} | {b - a} |" for k, (a, b) in enumerate(zip(xnor, pa))]


def _models_table(record):
    """Per-network accuracy over seeds, where a benchmark gives it (`benchmarks/graphs.py`:
    the graph networks beside the plain CNN)."""
    models = record["figures"].get("models")
    if not isinstance(models, dict):
        return []
    f = record["figures"]
    lines = ["", f"Test accuracy over {f.get('seeds')} seeds, {f.get('epochs')} epochs each "
                 f"({record['commit']}):", "",
             "| network | binary weights | accuracy, mean | spread (std) | golden = PyTorch, "
             "lowest |", "|---|---|---|---|---|"]
    return lines + [f"| {name} | {_cell(m.get('binary_weights'))} | "
                     f"{_percent(m.get('accuracy_mean'))} | {_percent(m.get('accuracy_std'))} "
                     f"| {_percent(m.get('golden_agreement_min'))} |"
                     for name, m in models.items()]


README_MARKERS = ("<!-- headline results: docs/render_results.py readme -->",
                  "<!-- end of headline results -->")


def headline_table(folder):
    """The README's headline results: the latest record of each design marked
    ``"headline": true``, with the date and machine it was measured on."""
    latest = {}
    for record in sorted(_load(folder, "builds.json"), key=lambda r: r["date"]):
        if record.get("headline"):
            latest[(record["design"], record["board"])] = record
    lines = ["| design | board | LUTs | FFs | BRAMs | DSPs | fmax (MHz) | RTL mismatches "
             "| measured |", "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['design']} | {r['board']} | {_cell(r['luts'])} | {_cell(r['ffs'])} | "
              f"{_cell(r['brams'])} | {_cell(r['dsps'])} | {_cell(r['fmax_mhz'])} | "
              f"{_cell(r.get('mismatches'))} | {r['date']}, {r['machine']} "
              f"({r['commit']}) |" for _, r in sorted(latest.items())]
    return "\n".join(lines)


def update_readme(folder, readme):
    """Put `headline_table` between the README's markers; returns True if it changed."""
    text = Path(readme).read_text()
    start, end = README_MARKERS
    head, _, rest = text.partition(start)
    _, _, tail = rest.partition(end)
    new = f"{head}{start}\n{headline_table(folder)}\n{end}{tail}"
    Path(readme).write_text(new)
    return new != text


def _append(name, record):
    path = HERE / "results" / name
    records = _load(path.parent, name)
    path.write_text(json.dumps(records + [record], indent=1) + "\n")
    print(f"{path}: {len(records) + 1} records")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="record a build's report.json")
    build.add_argument("report")
    build.add_argument("--design", required=True)
    build.add_argument("--headline", action="store_true",
                       help="the README's headline table shows this design's latest record")
    bench = commands.add_parser("benchmark", help="record a benchmark's last line")
    bench.add_argument("name")
    bench.add_argument("figures", help="a file holding the benchmark's last line")
    demo = commands.add_parser("demo", help="record bitfab demo's accuracies")
    demo.add_argument("report")
    commands.add_parser("render", help="write docs/results_tables.md")
    commands.add_parser("readme", help="put the headline results into README.md")
    args = parser.parse_args(argv)
    if args.command == "build":
        record = build_record(json.loads(Path(args.report).read_text()), args.design)
        _append("builds.json", {**record, "headline": args.headline})
    elif args.command == "benchmark":
        lines = Path(args.figures).read_text().strip().splitlines()
        _append("benchmarks.json", benchmark_record(args.name, json.loads(lines[-1])))
    elif args.command == "demo":
        _append("accuracy.json", demo_record(json.loads(Path(args.report).read_text())))
    elif args.command == "readme":
        update_readme(HERE / "results", HERE.parent / "README.md")
    else:
        print(render(HERE / "results", HERE / "results_tables.md"))


if __name__ == "__main__":
    sys.exit(main())

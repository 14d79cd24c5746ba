"""The build report: what a build proved and measured, as ``report.json`` and Markdown.

The fields every design has come from the step results (`report_fields`); the
kind of design adds its layer table (`DesignKind.report_layers`).
"""

import subprocess
from pathlib import Path

__all__ = ["report_fields", "format_summary", "format_report", "source_commit"]


def source_commit():
    """The commit of the bitfab source this build ran (``-dirty`` with uncommitted
    changes to tracked files), or None outside a git checkout."""
    here = Path(__file__).resolve().parent
    def git(*args):
        run = subprocess.run(["git", *args], cwd=here, capture_output=True, text=True)
        return run.stdout.strip() if run.returncode == 0 else None
    commit = git("rev-parse", "--short", "HEAD")
    if commit and git("status", "--porcelain", "--untracked-files=no"):
        commit += "-dirty"
    return commit


def _optional(build, name, wanted=True):
    path = build.path(name)
    if not wanted or not path.exists():
        return None
    return build.read(name)


def report_fields(build, plan):
    """The report's fields every design has: RTL-vs-golden, nextpnr's figures, speed."""
    cfg = build.cfg
    sim = _optional(build, "sim.json")
    netlist = _optional(build, "netlist.json", bool(cfg.netlist_images))
    synth = _optional(build, "synth.json", cfg.bitstream)
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
        # The same bench on the netlist yosys maps (the netlist step), when asked for.
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
        # What the plan's static schedule says (networks): the slowest stage's cycles.
        "schedule_cycles_per_image": plan.get("schedule_cycles_per_image"),
        "images_per_s": round(fmax * 1e6 / cycles) if fmax and cycles else None,
        # What the bitstream computes on the board, at the clock it runs at.
        "images_per_s_at_clock": round(clock * 1e6 / cycles) if clock and cycles else None,
        "bitstream": synth and synth["bitstream"],
        "critical_path": synth and synth.get("critical_path"),
        # yosys's LUT mapping: "abc9", or "abc" where ABC9 failed on the design.
        "lut_mapper": synth and synth.get("lut_mapper"),
        "estimate": plan["estimate"]["total"],
        # The source the figures come from: the bitstream's, else the simulation's
        # (a step resumed later may run on newer source than the report's).
        "commit": ((synth or {}).get("commit") or (sim or {}).get("commit")
                   or source_commit()),
    }


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
                "timing_met", "cycles_per_image", "images_per_s", "images_per_s_at_clock",
                "bitstream"):
        rows.append((key, report[key]))
    lines = ["# bitfab build report", "", "| | |", "|---|---|"]
    return lines + [f"| {k} | {v if v is not None else '-'} |" for k, v in rows]


def format_report(report, kind):
    """The whole report as Markdown: the summary and `kind`'s layer table."""
    return "\n".join(format_summary(report) + [""] + kind.format_layers(report)) + "\n"

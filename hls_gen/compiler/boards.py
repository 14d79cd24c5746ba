"""The boards bitfab builds for: their amaranth-boards platform, FPGA family and resources."""

import importlib
from dataclasses import dataclass

from bitfab.rtl.families import Family, family

from bitfab.hls_gen.errors import BitfabError

__all__ = ["Board", "BOARDS", "board"]


@dataclass(frozen=True)
class Board:
    """A dev board: where its platform lives, what its FPGA holds, how nextpnr names it.

    `resources` maps luts/ffs/brams/dsps to the device's totals. What the FPGA
    family does differently (nextpnr's cell names, block RAM modes, PLL, carry
    chains, DSPs, estimate calibration) is its `bitfab.rtl.families.Family`. On
    iCE40 a logic cell holds a LUT and a flip-flop: ``luts`` counts cells, and
    products are logic there (synth_ice40 runs without ``-dsp``: the UP5K's 8
    MAC16s are fewer than one PA layer's M x N).
    """

    name: str
    platform: str             # "module:Class" in amaranth_boards
    family: Family
    resources: dict
    clock_mhz: float          # the design's default clock (`bitfab.hls_gen.compiler.clocks`)
    oscillator_mhz: float     # the board's oscillator, the PLL's reference
    placeable: dict = None    # fraction of a resource a design can fill and still place

    def platform_class(self):
        module, name = self.platform.split(":")
        return getattr(importlib.import_module(module), name)

    def usable(self, key):
        """How much of resource `key` a plan may take."""
        return int(self.resources[key] * (self.placeable or {}).get(key, 1))

    @property
    def bels(self):
        """luts/ffs/brams/dsps -> nextpnr's cell names (the family's)."""
        return self.family.bels

    def ram_blocks(self, width, depth):
        """Block RAMs a width x depth memory takes (the family's block RAM modes)."""
        return self.family.ram_blocks(width, depth)


BOARDS = {
    "ulx3s-85f": Board(
        "ulx3s-85f", "amaranth_boards.ulx3s:ULX3S_85F_Platform", family("ecp5"),
        resources={"luts": 83640, "ffs": 83640, "brams": 208, "dsps": 156},
        clock_mhz=100.0, oscillator_mhz=25.0),
    "icebreaker": Board(
        "icebreaker", "amaranth_boards.icebreaker:ICEBreakerPlatform", family("ice40"),
        resources={"luts": 5280, "ffs": 5280, "brams": 30, "dsps": 8},
        clock_mhz=12.0, oscillator_mhz=12.0,
        # nextpnr-ice40 found no legal placement for the digits XNOR MLP (hidden 32) at
        # 4,623 cells (88%): a logic tile's 8 cells share one clock enable and reset.
        placeable={"luts": 0.8}),
}


def board(name):
    try:
        return BOARDS[name]
    except KeyError:
        raise BitfabError(f"unknown board {name!r}; boards: {', '.join(BOARDS)}") from None

"""The boards bitfab builds for: their amaranth-boards platform and their resources."""

import importlib
from dataclasses import dataclass

from .errors import BitfabError

__all__ = ["Board", "BOARDS", "board"]


@dataclass(frozen=True)
class Board:
    """A dev board: where its platform lives, what its FPGA holds, how nextpnr names it.

    `resources` maps luts/ffs/brams/dsps to the device's totals; `bels` maps
    the same keys to nextpnr's cell names in ``--report`` utilization.
    """

    name: str
    platform: str             # "module:Class" in amaranth_boards
    family: str               # "ecp5" or "ice40"
    resources: dict
    bels: dict
    clock_mhz: float          # the design's clock, from a PLL off the board oscillator
    ram_width: int            # block RAM: widest port and depth at that width
    ram_depth: int

    def platform_class(self):
        module, name = self.platform.split(":")
        return getattr(importlib.import_module(module), name)

    def ram_blocks(self, width, depth):
        """Block RAMs a width x depth memory takes (tiles side by side and stacked)."""
        return -(-width // self.ram_width) * -(-depth // self.ram_depth)


BOARDS = {
    "ulx3s-85f": Board(
        "ulx3s-85f", "amaranth_boards.ulx3s:ULX3S_85F_Platform", "ecp5",
        resources={"luts": 83640, "ffs": 83640, "brams": 208, "dsps": 156},
        bels={"luts": "TRELLIS_COMB", "ffs": "TRELLIS_FF", "brams": "DP16KD",
              "dsps": "MULT18X18D"},
        clock_mhz=100.0, ram_width=36, ram_depth=512),
    "icebreaker": Board(
        "icebreaker", "amaranth_boards.icebreaker:ICEBreakerPlatform", "ice40",
        resources={"luts": 5280, "ffs": 5280, "brams": 30, "dsps": 8},
        bels={"luts": "ICESTORM_LC", "ffs": "ICESTORM_LC", "brams": "ICESTORM_RAM",
              "dsps": "ICESTORM_DSP"},
        clock_mhz=12.0, ram_width=16, ram_depth=256),
}


def board(name):
    try:
        return BOARDS[name]
    except KeyError:
        raise BitfabError(f"unknown board {name!r}; boards: {', '.join(BOARDS)}") from None

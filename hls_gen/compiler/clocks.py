"""The design clock on a board: a PLL setting from the board oscillator.

The dividers are searched as Project Trellis's ``ecppll`` (ECP5 ``EHXPLLL``) and
IceStorm's ``icepll`` (iCE40 ``SB_PLL40_PAD``, SIMPLE feedback) search them
(each family's `bitfab.rtl.families.Family.pll_settings`), within the same
limits, but never above the frequency asked for: a clock a little slow is safe
where a little fast may not meet timing.
"""

from bitfab.rtl.board_top import Clock

from bitfab.hls_gen.errors import BitfabError

__all__ = ["Clock", "design_clock"]


def design_clock(board, mhz=None):
    """The clock a design runs at on `board`: `mhz` (default the board's
    `clock_mhz`), made by the FPGA's PLL from the oscillator (an iCE40 design at the
    oscillator's frequency takes it directly). Raises `BitfabError` naming the PLL's
    range when `mhz` is out of it."""
    mhz = board.clock_mhz if mhz is None else mhz
    if isinstance(mhz, bool) or not isinstance(mhz, (int, float)) or mhz <= 0:
        raise BitfabError(f"clock must be a positive number of MHz, not {mhz!r}")
    oscillator, family = board.oscillator_mhz, board.family
    if family.oscillator_is_clock(mhz, oscillator):
        return Clock(float(oscillator), oscillator)
    low, high = family.pll_limits["out"]
    if not low <= mhz <= high:
        extra = (f" (or the {oscillator:g} MHz oscillator itself)"
                 if family.oscillator_is_clock(oscillator, oscillator) else "")
        raise BitfabError(f"clock {mhz:g} MHz: the {board.name} PLL makes {low:g} to "
                          f"{high:g} MHz{extra}")
    settings = [s for s in family.pll_settings(oscillator) if low <= s[0] <= high]
    below = [s for s in settings if s[0] <= mhz + 1e-9]
    if not below:
        raise BitfabError(f"clock {mhz:g} MHz: the {board.name} PLL's lowest clock from the "
                          f"{oscillator:g} MHz oscillator is {min(s[0] for s in settings):g} MHz")
    fout, _, params = family.pll_choice(below, mhz)
    return Clock(fout, oscillator, family.pll_primitive, params)

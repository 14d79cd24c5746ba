"""The design clock on a board: PLL settings from the board oscillator, and the UART's
divisor at that clock.

The dividers are searched as Project Trellis's ``ecppll`` (ECP5 ``EHXPLLL``) and
IceStorm's ``icepll`` (iCE40 ``SB_PLL40_PAD``, SIMPLE feedback) search them,
within the same limits, but never above the frequency asked for: a clock a
little slow is safe where a little fast may not meet timing.
"""

from dataclasses import dataclass

from bitfab.hls_gen.errors import BitfabError

__all__ = ["Clock", "design_clock", "ECP5_LIMITS", "ICE40_LIMITS"]

# MHz: the PLL's output, phase detector and VCO ranges (ecppll's and icepll's).
ECP5_LIMITS = {"out": (10.0, 400.0), "pfd": (3.125, 400.0), "vco": (400.0, 800.0)}
ICE40_LIMITS = {"out": (16.0, 275.0), "pfd": (10.0, 133.0), "vco": (533.0, 1066.0)}


@dataclass(frozen=True)
class Clock:
    """A design clock: `mhz` as the PLL makes it (the oscillator's own when `pll` is
    None), with the primitive's name and parameters."""

    mhz: float
    oscillator_mhz: float
    pll: str | None = None
    params: tuple = ()      # (name, value) pairs, the primitive's p_ parameters

    def divisor(self, baud):
        """Clock cycles per UART bit."""
        return round(self.mhz * 1e6 / baud)


def _ecp5_settings(oscillator):
    """Every (mhz, vco, params) EHXPLLL setting, the output divider giving the VCO
    nearest 600 MHz (as ecppll)."""
    limits, settings = ECP5_LIMITS, []
    (vco_low, vco_high) = limits["vco"]
    for ref in range(1, 129):
        pfd = oscillator / ref
        if not limits["pfd"][0] <= pfd <= limits["pfd"][1]:
            continue
        for feedback in range(1, 81):
            fout = oscillator * feedback / ref
            dividers = range(max(1, -int(-vco_low // fout)), min(128, int(vco_high // fout)) + 1)
            if not dividers:
                continue
            out_div = min(dividers, key=lambda d: abs(fout * d - 600.0))
            # CLKOP feeds back; its coarse phase half a period, as ecppll sets it.
            settings.append((fout, fout * out_div, (
                ("PLLRST_ENA", "DISABLED"), ("INTFB_WAKE", "DISABLED"),
                ("STDBY_ENABLE", "DISABLED"), ("DPHASE_SOURCE", "DISABLED"),
                ("OUTDIVIDER_MUXA", "DIVA"), ("CLKOP_ENABLE", "ENABLED"), ("CLKI_DIV", ref),
                ("CLKFB_DIV", feedback), ("CLKOP_DIV", out_div),
                ("CLKOP_CPHASE", out_div // 2), ("CLKOP_FPHASE", 0), ("FEEDBK_PATH", "CLKOP"))))
    return settings


def _ice40_settings(oscillator):
    """Every (mhz, vco, params) SB_PLL40_PAD setting with SIMPLE feedback (as icepll)."""
    limits, settings = ICE40_LIMITS, []
    for divr in range(16):
        pfd = oscillator / (divr + 1)
        if not limits["pfd"][0] <= pfd <= limits["pfd"][1]:
            continue
        # The loop filter for the phase detector's frequency (icepll's table).
        filter_range = 1 + sum(pfd >= edge for edge in (17, 26, 44, 66, 101))
        for divf in range(128):
            vco = oscillator * (divf + 1) / (divr + 1)
            if limits["vco"][0] <= vco <= limits["vco"][1]:
                settings += [(vco / 2 ** divq, vco, (
                    ("FEEDBACK_PATH", "SIMPLE"), ("DIVR", divr), ("DIVF", divf),
                    ("DIVQ", divq), ("FILTER_RANGE", filter_range))) for divq in range(1, 7)]
    return settings


# family: (primitive, its settings, its limits, the VCO frequency preferred among equal
# outputs: ecppll's 600 MHz; icepll keeps the first setting it finds)
_PLLS = {"ecp5": ("EHXPLLL", _ecp5_settings, ECP5_LIMITS, 600.0),
         "ice40": ("SB_PLL40_PAD", _ice40_settings, ICE40_LIMITS, None)}


def design_clock(board, mhz=None):
    """The clock a design runs at on `board`: `mhz` (default the board's
    `clock_mhz`), made by the FPGA's PLL from the oscillator (an iCE40 design at the
    oscillator's frequency takes it directly). Raises `BitfabError` naming the PLL's
    range when `mhz` is out of it."""
    mhz = board.clock_mhz if mhz is None else mhz
    if isinstance(mhz, bool) or not isinstance(mhz, (int, float)) or mhz <= 0:
        raise BitfabError(f"clock must be a positive number of MHz, not {mhz!r}")
    oscillator = board.oscillator_mhz
    if board.family == "ice40" and abs(mhz - oscillator) < 1e-9:
        return Clock(float(oscillator), oscillator)
    primitive, settings, limits, vco_mid = _PLLS[board.family]
    low, high = limits["out"]
    if not low <= mhz <= high:
        extra = f" (or the {oscillator:g} MHz oscillator itself)" if board.family == "ice40" else ""
        raise BitfabError(f"clock {mhz:g} MHz: the {board.name} PLL makes {low:g} to "
                          f"{high:g} MHz{extra}")
    settings = [s for s in settings(oscillator) if low <= s[0] <= high]
    below = [s for s in settings if s[0] <= mhz + 1e-9]
    if not below:
        raise BitfabError(f"clock {mhz:g} MHz: the {board.name} PLL's lowest clock from the "
                          f"{oscillator:g} MHz oscillator is {min(s[0] for s in settings):g} MHz")
    fout, _, params = min(below, key=lambda s: (mhz - s[0], abs(s[1] - (vco_mid or s[1]))))
    return Clock(fout, oscillator, primitive, params)

"""The top of a bitstream: the design clock, the UART pins and the serial shell.

`BoardTop` puts a core (a network's layers, or any component the shell takes)
behind a `SerialShell` on an amaranth-boards platform. The design clock is a
`Clock`: a PLL setting made by the family's PLL from the board's oscillator
(`bitfab.rtl.families`), or the oscillator itself.
"""

from dataclasses import dataclass

from amaranth.hdl import ClockDomain, Elaboratable, Module
from amaranth.lib import io

from .families import family_of
from .shell import SerialShell

__all__ = ["Clock", "BoardTop"]


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


class BoardTop(Elaboratable):
    """The shell on a board: the design clock, UART pins, LED 0 lit once loaded.

    Parameters
    ----------
    core : list of MVAUConfig, or callable
        The shell's core: a network's layer configs, or a function making a core
        component (a convolution engine).
    clock : Clock
        The design clock; with a PLL, the design is held in reset until it locks.
    baud : int
        The UART's rate; its divisor is the clock's cycles per bit.
    """

    def __init__(self, core, clock, baud):
        if not isinstance(clock, Clock):
            raise TypeError(f"clock must be a Clock, not {clock!r}")
        self.core, self.clock, self.baud = core, clock, baud

    def elaborate(self, platform):
        m = Module()
        clock = self.clock
        if clock.pll is not None:
            family = family_of(platform)
            if family is None:
                raise ValueError(f"a {clock.pll} clock needs a platform of a known FPGA "
                                 f"family, not {type(platform).__name__}")
            m.domains.sync = sync = ClockDomain("sync")
            locked = family.instantiate_pll(m, platform, clock, sync)
            family.hold_in_reset(m, sync, locked)
            # No constraint on sync.clk: nextpnr derives the PLL output's from its
            # dividers and the oscillator's constraint (Amaranth's name for the net
            # did not reach nextpnr, which warned and ignored it).
        core = self.core() if callable(self.core) else self.core
        shell = m.submodules.shell = SerialShell(core, clock.divisor(self.baud))
        uart = platform.request("uart", 0, dir="-")
        rx = m.submodules.rx = io.Buffer("i", uart.rx)
        tx = m.submodules.tx = io.Buffer("o", uart.tx)
        led = m.submodules.led = io.Buffer("o", platform.request("led", 0, dir="-"))
        m.d.comb += [shell.rx.eq(rx.i), tx.o.eq(shell.tx), led.o.eq(shell.loaded)]
        return m

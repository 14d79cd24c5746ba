"""Verilator line coverage (`bitfab.sim.coverage`): a bench built with coverage keeps its
points, the report counts them per module and lists the uncovered ones, and the
Verilog backend's dummy trigger lines are not counted."""

import random

import pytest

from bitfab.rtl.skid import SkidBuffer
from bitfab.sim import coverage
from bitfab.sim.runner import run_vectors


@pytest.mark.sim
def test_a_bench_built_with_coverage_reports_its_blocks(tmp_path, monkeypatch):
    runs = tmp_path / "coverage"
    monkeypatch.setenv(coverage.ENV, str(runs))
    rng = random.Random(5)
    beats = [rng.getrandbits(13) for _ in range(300)]
    build = run_vectors(SkidBuffer(13), "skid", {"inputs": beats, "outputs": beats},
                        tmp_path / "sim", 5)
    assert "VM_COVERAGE = 1" in (build / "Vtop_classes.mk").read_text()
    result = coverage.write_report(runs)
    assert result["runs"] == 1 and "skid" in result["modules"], result
    skid = result["modules"]["skid"]
    assert 0 < skid["lines_covered"] <= skid["lines"]
    assert skid["lines"] - skid["lines_covered"] == len(skid["uncovered"])
    text = (build / "skid.v").read_text()
    assert coverage.DUMMY_TRIGGER in text           # there, and not counted:
    assert not any(coverage.DUMMY_TRIGGER in where for where in skid["uncovered"])
    # Runs merge point by point: the same run twice covers the same blocks.
    again = runs / "again.json"
    again.write_text(next(p for p in runs.glob("skid-*.json")).read_text())
    twice = coverage.write_report(runs)
    assert (twice["runs"], twice["lines"], twice["lines_covered"]) == (
        2, result["lines"], result["lines_covered"])
    assert (runs / "coverage.txt").read_text().startswith("2 runs: line blocks of the "
                                                          "generated RTL")


def test_uncovered_blocks_are_listed_with_their_verilog(tmp_path, monkeypatch):
    """A coverage.dat of three blocks, one never reached, one on a dummy trigger."""
    monkeypatch.setenv(coverage.ENV, str(tmp_path / "runs"))
    build = tmp_path / "verilator_top_1"
    build.mkdir()
    (build / "top.v").write_text("module top;\n  if (\\$auto$verilog_backend.cc:1:x ) begin end\n"
                                 "  if (a) b = 1;\n  else b = 0;\nendmodule\n")

    def point(line, count):
        key = "".join(f"\x01{k}\x02{v}" for k, v in (("f", "top.v"), ("l", line),
                                                      ("page", "v_line/top"), ("o", "if")))
        return f"C '{key}' {count}\n"
    (build / "coverage.dat").write_text("# SystemC::Coverage-3\n" + point(2, 0)
                                        + point(3, 7) + point(4, 0))
    coverage.keep(build, "top")
    assert not (build / "coverage.dat").exists()
    result = coverage.write_report(tmp_path / "runs")
    assert (result["lines"], result["lines_covered"]) == (2, 1)
    assert result["modules"]["top"]["uncovered"] == ["verilator_top_1:4: else b = 0;"]
    assert coverage.summary(result)["line_coverage"] == 0.5


@pytest.mark.sim
def test_toggle_coverage_counts_signal_bits(tmp_path, monkeypatch):
    """With BITFAB_COVERAGE_TOGGLE too, the report counts each signal bit's toggles:
    the skid buffer's 13-bit payload registers toggle on random beats."""
    runs = tmp_path / "coverage"
    monkeypatch.setenv(coverage.ENV, str(runs))
    monkeypatch.setenv(coverage.TOGGLE, "1")
    rng = random.Random(6)
    beats = [rng.getrandbits(13) for _ in range(300)]
    run_vectors(SkidBuffer(13), "skid", {"inputs": beats, "outputs": beats},
                tmp_path / "sim", 6)
    result = coverage.write_report(runs)
    skid = result["modules"]["skid"]
    assert skid["toggles"] > 2 * 13 and 0 < skid["toggles_covered"] <= skid["toggles"]
    assert result["toggle_coverage"] == round(skid["toggles_covered"] / skid["toggles"], 4)
    assert "toggle bits of the generated RTL" in (runs / "coverage.txt").read_text()
    assert coverage.summary(result)["toggle_coverage"] == result["toggle_coverage"]

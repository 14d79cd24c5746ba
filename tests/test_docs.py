"""The documentation builds with warnings as errors, its results tables come from the
JSON records, and the README stays the user's first page."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs"))

import render_results  # noqa: E402


def test_sphinx_builds_the_docs_with_warnings_as_errors(tmp_path):
    run = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q",
                          "-b", "html", str(ROOT / "docs"), str(tmp_path / "html")],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    api = (tmp_path / "html" / "api.html").read_text()
    assert "bitfab.hls_gen.compiler.flow.run_flow" in api and "MatrixVectorUnit" in api
    hardware = (tmp_path / "html" / "hardware.html").read_text()
    # Amaranth's classes link into Amaranth's documentation (intersphinx, no download).
    assert "amaranth-lang.org/docs/amaranth/v" in hardware and "wiring.Component" in hardware


def test_results_tables_are_rendered_from_the_records(tmp_path):
    report = {"board": "ulx3s-85f", "luts": 15755, "ffs": 21283, "brams": 36, "dsps": 80,
              "fmax_mhz": 107.12, "rtl": {"images": 450, "mismatches": 0},
              "critical_path": {"text": "9.34 ns (3.14 routing): ram -> issue"}}
    record = render_results.build_record(report, "PA MLP")
    assert record["luts"] == 15755 and record["critical_path"].startswith("9.34 ns")
    (tmp_path / "builds.json").write_text(json.dumps([record]))
    cnv = {"luts": 20000, "xnor": {"latency_at_finn_folding": [14, 13]},
           "pa": {"latency_at_finn_folding": [22, 20]}}
    (tmp_path / "benchmarks.json").write_text(json.dumps(
        [render_results.benchmark_record("popcount", {"bitfab_lut4_per_bit": 1.668}),
         render_results.benchmark_record("cnv", cnv)]))
    assert render_results.render(tmp_path, tmp_path / "tables.md") == (1, 2)
    tables = (tmp_path / "tables.md").read_text()
    assert "### PA MLP (ulx3s-85f)" in tables and "| 15,755 | 21,283 | 36 | 80 | 107.12 |" in tables
    assert "0 of 450 images" in tables and "| bitfab_lut4_per_bit | 1.668 |" in tables
    # The design's history as a plot beside the tables.
    assert "![PA MLP on ulx3s-85f: history](results_plots/pa-mlp_ulx3s-85f.png)" in tables
    assert (tmp_path / "results_plots" / "pa-mlp_ulx3s-85f.png").stat().st_size > 1000
    # The CNV benchmark's per-layer latencies, XNOR against PA at equal folding.
    assert "| 0 | 14 | 22 | 8 |" in tables and "| 1 | 13 | 20 | 7 |" in tables
    with pytest.raises(ValueError, match="no bitstream figures"):
        render_results.build_record({**report, "fmax_mhz": None}, "PA MLP")


def test_the_readme_is_a_first_page_and_ci_runs_its_test_command():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    command = next(line for line in readme.splitlines() if "-m pytest" in line).strip()
    assert command in (ROOT / ".ci" / "run").read_text()
    # The headline table is the records' own, rendered (docs/render_results.py readme).
    assert render_results.headline_table(ROOT / "docs" / "results") in readme


def test_demo_accuracies_are_rendered_from_the_demo_s_report(tmp_path):
    report = {"test_images": 450, "commit": "abc1234", "models": {
        "mlp_float": {"accuracy": 0.9756},
        "mlp_xnor": {"accuracy": 0.9711, "golden_accuracy": 0.9711, "golden_agreement": 1.0,
                     "golden_agreement_float64": 1.0}}}
    (tmp_path / "accuracy.json").write_text(json.dumps([render_results.demo_record(report)]))
    render_results.render(tmp_path, tmp_path / "tables.md")
    tables = (tmp_path / "tables.md").read_text()
    assert "Accuracy on the digits (450 test images; abc1234" in tables
    assert "| mlp_xnor | 97.11% | 97.11% | 100.00% | 100.00% |" in tables
    assert "| mlp_float | 97.56% | - | - | - |" in tables


def test_graph_network_accuracies_render_per_network(tmp_path):
    figures = {"epochs": 30, "seeds": 3, "models": {
        "resnet_xnor": {"binary_weights": 2384, "accuracy_mean": 0.8852, "accuracy_std": 0.0163,
                        "golden_agreement_min": 1.0}}}
    (tmp_path / "benchmarks.json").write_text(json.dumps(
        [render_results.benchmark_record("graphs", figures)]))
    render_results.render(tmp_path, tmp_path / "tables.md")
    tables = (tmp_path / "tables.md").read_text()
    assert "Test accuracy over 3 seeds, 30 epochs each" in tables
    assert "| resnet_xnor | 2,384 | 88.52% | 1.63% | 100.00% |" in tables

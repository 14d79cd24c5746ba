"""The bitstream (slow: place and route takes tens of minutes on 2 cores): the demo's
PA MLP built for the ULX3S 85F, its report's figures read back from nextpnr."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BITFAB = Path(sys.executable).with_name("bitfab")


@pytest.mark.slow
@pytest.mark.synth
def test_demo_bitstream_for_ulx3s(tmp_path):
    out = tmp_path / "demo"
    run = subprocess.run([str(BITFAB), "demo", "--out", str(out), "--arch", "mlp"],
                         capture_output=True, text=True, timeout=3 * 3600)
    assert run.returncode == 0, run.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["rtl"]["mismatches"] == 0 and report["rtl"]["images"] == 450
    assert Path(report["bitstream"]).stat().st_size > 0
    assert report["fmax_mhz"] >= 100.0
    # The figures are nextpnr's own, not estimates.
    nextpnr = json.loads((Path(report["bitstream"]).parent / "report.json").read_text())
    assert report["luts"] == nextpnr["utilization"]["TRELLIS_COMB"]["used"]
    assert report["dsps"] == nextpnr["utilization"]["MULT18X18D"]["used"]
    assert report["images_per_s"] == round(report["fmax_mhz"] * 1e6 / report["cycles_per_image"])

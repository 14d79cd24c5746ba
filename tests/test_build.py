"""Bitstreams (slow: place and route takes tens of minutes on 2 cores): the demo's
default model, the PA CNN, built for the ULX3S 85F, a small XNOR MLP for the
iCEBreaker, their reports' figures read back from nextpnr."""

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
    run = subprocess.run([str(BITFAB), "demo", "--out", str(out)],
                         capture_output=True, text=True, timeout=3 * 3600)
    assert run.returncode == 0, run.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["default_model"] == "cnn PA M=4 N=5"
    assert report["luts"] == report["models"]["cnn_pa_m4n5"]["hardware"]["luts"]
    assert report["rtl"]["mismatches"] == 0 and report["rtl"]["images"] == 450
    assert Path(report["bitstream"]).stat().st_size > 0
    assert report["fmax_mhz"] >= 100.0
    # The figures are nextpnr's own, not estimates.
    nextpnr = json.loads((Path(report["bitstream"]).parent / "report.json").read_text())
    assert report["luts"] == nextpnr["utilization"]["TRELLIS_COMB"]["used"]
    assert report["dsps"] == nextpnr["utilization"]["MULT18X18D"]["used"]
    assert report["images_per_s"] == round(report["fmax_mhz"] * 1e6 / report["cycles_per_image"])


@pytest.mark.slow
@pytest.mark.synth
def test_small_xnor_mlp_bitstream_for_icebreaker(tmp_path):
    """The iCEBreaker (UP5K) where the plan fits: a digits XNOR MLP with 24 hidden units,
    the default folding narrowed until the estimate fits, its iCE40 netlist against the
    golden model, a bitstream, nextpnr's figures."""
    import torch

    from bitfab.hls_gen.datasets import load_digits_split
    from bitfab.hls_gen.compiler.flow import BuildConfig, artifact, run_flow
    from bitfab.hls_gen.golden.freeze import freeze
    from bitfab.hls_gen.digits.models import ModelSpec, build_model
    from bitfab.hls_gen.digits.train import TrainConfig, init_from, train

    split = load_digits_split()
    models = {}
    for kind in ("float", "xnor"):
        torch.manual_seed(0)
        models[kind] = build_model(ModelSpec("mlp", kind, hidden=24), split.pixel_bits,
                                   split.pixel_scale)
        if kind == "xnor":
            init_from(models[kind], models["float"])
        train(models[kind], split.x_train, split.y_train, (64,),
              TrainConfig(lr=1e-3 if kind == "xnor" else 3e-3))
    report = run_flow(BuildConfig(out=str(tmp_path), board="icebreaker", netlist_images=20),
                      freeze(models["xnor"]), log=print)
    assert report["rtl"]["mismatches"] == 0 and report["rtl"]["images"] == 450
    # The netlist synth_ice40 maps, in Verilator, on the same bench.
    assert (report["netlist"]["images"], report["netlist"]["mismatches"]) == (20, 0), report
    assert Path(report["bitstream"]).suffix == ".bin" and Path(report["bitstream"]).stat().st_size
    nextpnr = json.loads((Path(report["bitstream"]).parent / "report.json").read_text())
    assert report["luts"] == nextpnr["utilization"]["ICESTORM_LC"]["used"] <= 5280
    assert report["brams"] == nextpnr["utilization"]["ICESTORM_RAM"]["used"]
    assert 0 < report["ffs"] < report["luts"], report    # flip-flops share cells with LUTs
    assert report["dsps"] == 0 and report["timing_met"], report
    plan = json.loads(artifact(tmp_path, "plan.json").read_text())
    assert plan["estimate"]["total"]["brams"] == report["brams"]
    assert 0.8 <= plan["estimate"]["total"]["luts"] / report["luts"] <= 1.2, plan["estimate"]


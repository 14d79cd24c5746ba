"""The main job end to end: `bitfab demo` on the real digits, through the console script.

One demo run (under four minutes on an idle 2-core machine: training, then the two
CNNs and the two MLPs through Verilog and cocotb) trains every network; the tests
then read its report and re-check it against the cached trained models.
"""

import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from bitfab.hls_gen.compiler.flow import BuildConfig, artifact, run_flow
from bitfab.hls_gen.datasets import load_digits_split
from bitfab.hls_gen.digits.demo import DemoConfig
from bitfab.hls_gen.golden.freeze import freeze
from bitfab.hls_gen.digits.models import build_model
from bitfab.hls_gen.digits.train import accuracy, predict
from browser import CHROMIUM, NO_CHROMIUM, page_checks
from layercheck import check_layers

BITFAB = Path(sys.executable).with_name("bitfab")


#: Seconds without a line of output after which the demo counts as hung (its longest
#: silent stretch, the PA CNN's 450 images in Verilator, takes about 2 minutes idle).
QUIET_LIMIT = 1500


def _bitfab(*args, quiet_limit=QUIET_LIMIT):
    """Run the console script. A hang guard, not a speed test: a slow machine only makes
    it slower; it stops the run after `quiet_limit` seconds without a line of output,
    naming the last line (the step that hung)."""
    process = subprocess.Popen([str(BITFAB), *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    out, err, last = [], [], [time.monotonic()]

    def read(stream, lines):
        for line in stream:
            lines.append(line)
            last[0] = time.monotonic()

    readers = [threading.Thread(target=read, args=pair, daemon=True)
               for pair in ((process.stdout, out), (process.stderr, err))]
    for reader in readers:
        reader.start()
    while process.poll() is None:
        if time.monotonic() - last[0] > quiet_limit:
            process.kill()
            process.wait()
            step = (out or err or ["(no output at all)"])[-1].strip()
            pytest.fail(f"bitfab {' '.join(args)}: no output for {quiet_limit} s; hung "
                        f"after: {step}")
        time.sleep(1)
    for reader in readers:
        reader.join()
    return subprocess.CompletedProcess(process.args, process.returncode, "".join(out),
                                       "".join(err))


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    # The bitstream is the slow suite's (test_build.py); everything else runs here.
    run = _bitfab("demo", "--out", str(out), "--no-bitstream")
    assert run.returncode == 0, run.stderr
    return out, run.stdout, json.loads((out / "report.json").read_text())


@pytest.fixture(scope="module")
def trained(demo):
    """The demo's trained models, loaded from its cache, with their specs."""
    out, _, _ = demo
    models = {}
    for arch in DemoConfig().archs:
        for spec, _ in DemoConfig().specs(arch):
            model = build_model(spec)
            model.load_state_dict(torch.load(out / "models" / f"{spec.name}.pt",
                                             weights_only=True)["state"])
            models[spec.name] = (spec, model.eval())
    return models


def test_report_fields(demo):
    _, stdout, report = demo
    assert report["test_images"] == 450 >= 360
    for key in ("float", "pa", "xnor", "golden"):
        assert 0.0 <= report["accuracy"][key] <= 1.0
    assert 0.0 <= report["golden_vs_pa_agreement"] <= 1.0
    assert "mlp_pa_m4n5" in stdout and "golden=torch" in stdout
    # Its work ran as tasks on a local Dask cluster of 2 workers; every task's line
    # reached the terminal whole, prefixed by its model.
    assert report["machine"]["workers"] == 2 and report["seconds"] > 0
    assert "  cnn_xnor: sim: 450 images, 0 mismatches" in stdout


def test_the_report_page_has_its_plots_and_links_every_model_s_build_page(demo):
    out, stdout, report = demo
    page = (out / "report.html").read_text()
    assert f"report: {out / 'report.json'}, {out / 'report.html'}" in stdout
    # Accuracy and resources per model, cycles per model, the default model's cycles
    # by node and its FIFO depths.
    assert page.count('<img src="data:image/png;base64,') >= 5
    for name, model in report["models"].items():
        if model.get("hardware"):
            assert f'href="hw/{name}/report.html"' in page
            assert (out / "hw" / name / "report.html").exists()
            # The page's bottleneck is the stage that sets the schedule.
            hardware = model["hardware"]
            assert (max(n["cycles_per_image"] for n in hardware["nodes"])
                    == hardware["schedule_cycles_per_image"]), name


@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
def test_the_report_pages_open_in_a_browser_every_image_loaded(demo):
    """Headless Chromium opens the demo's page and every model's build page: every plot
    loads and no script fails."""
    out, _, _ = demo
    for page in [out / "report.html", *sorted(out.glob("hw/*/report.html"))]:
        checks = page_checks(page)
        assert checks["images"] >= 4, page
        assert checks == {"images": checks["images"], "images-loaded": checks["images"],
                          "script-errors": 0}, page


def test_rtl_matches_golden_on_every_test_image(demo):
    """The generated PA and XNOR MLPs in cocotb: every output of every layer, 450 images;
    the report's top-level figures are the default model's, the PA CNN's."""
    _, stdout, report = demo
    assert report["default_model"] == "cnn PA M=4 N=5"
    assert report["rtl"] == report["models"]["cnn_pa_m4n5"]["hardware"]["rtl"]
    rtl = report["rtl"]
    assert (rtl["images"], rtl["mismatches"], rtl["simulator"]) == (450, 0, "verilator")
    assert rtl["golden_vs_rtl_agreement"] == 1.0
    # Three layers' outputs per image, each a beat per PE row group.
    assert rtl["beats_checked"] > 3 * 450
    for name in ("mlp_pa_m4n5", "mlp_xnor"):
        mlp = report["models"][name]["hardware"]["rtl"]
        assert (mlp["images"], mlp["mismatches"]) == (450, 0), name
    assert report["cycles_per_image"] > 0 and report["board"] == "ulx3s-85f"
    assert report["bitstream"] is None and "0 mismatches" in stdout


def test_the_cnns_run_in_rtl_on_every_test_image(demo):
    """The PA and XNOR CNNs in cocotb: sliding windows into matrix-vector units, every
    output of every layer (64 and 16 positions, then the scores), 450 images."""
    _, _, report = demo
    for name in ("cnn_pa_m4n5", "cnn_xnor"):
        hardware = report["models"][name]["hardware"]
        rtl = hardware["rtl"]
        assert (rtl["images"], rtl["mismatches"]) == (450, 0), name
        assert rtl["beats_checked"] > (64 + 16) * 450, name
        assert [bool(layer["window"]) for layer in hardware["layers"]] == [True, True, False]
        # With the FIFO depths the schedule gives, the pipeline runs at its schedule.
        assert hardware["cycles_per_image"] == hardware["schedule_cycles_per_image"], name


@pytest.mark.sim
def test_the_cnns_run_every_test_image_through_stalls_and_backpressure(demo, tmp_path):
    """The demo's PA and XNOR CNN builds again from their sim step, the input idle and
    the output held back in 30% of the cycles (seeded): every output of every layer,
    450 images, 0 mismatches. (The demo itself runs them unstalled, to measure the
    schedule.)"""
    out, _, report = demo
    for name in ("cnn_pa_m4n5", "cnn_xnor"):
        build = tmp_path / name
        shutil.copytree(out / "hw" / name, build, ignore=shutil.ignore_patterns("build"))
        run_flow(BuildConfig(out=str(build), start_step="sim", stop_step="sim",
                             bitstream=False, idle=0.3, backpressure=0.3), log=lambda _: None)
        sim = json.loads(artifact(build, "sim.json").read_text())
        assert (sim["items"], sim["mismatches"], sim["beats_checked"]) == (
            450, 0, report["models"][name]["hardware"]["rtl"]["beats_checked"]), name
        config = json.loads(artifact(build, "config.json").read_text())["config"]
        assert (config["idle"], config["backpressure"]) == (0.3, 0.3)


def test_pa_mlp_close_to_full_precision(demo):
    _, _, report = demo
    acc = report["accuracy"]
    print(f"float {acc['float']:.4f} pa(4,5) {acc['pa']:.4f} pa(8,7) {acc['pa_large']:.4f} "
          f"xnor {acc['xnor']:.4f}")
    assert acc["float"] - acc["pa"] <= 0.020
    assert acc["float"] - acc["pa_large"] <= 0.010
    assert acc["xnor"] > 0.5          # reported as it is; only "it learned something" here


def test_golden_agrees_with_pa_model(demo):
    _, _, report = demo
    assert report["golden_vs_pa_agreement"] >= 0.99
    for name, entry in report["models"].items():
        if "golden_agreement_float64" in entry:
            assert entry["golden_agreement_float64"] >= 0.99, name


def test_report_matches_the_models(demo, trained):
    """Every accuracy in the report is recomputed from the saved models."""
    _, _, report = demo
    split = load_digits_split()
    for name, (spec, model) in trained.items():
        entry = report["models"][name]
        predictions = predict(model, split.x_test, spec.input_shape)
        assert entry["accuracy"] == accuracy(predictions, split.y_test), name
        if spec.kind != "float":
            golden = freeze(model).predict(split.x_test.view(-1, *spec.input_shape))
            assert entry["golden_accuracy"] == accuracy(golden, split.y_test), name
            assert entry["golden_agreement"] == accuracy(golden, predictions), name


def test_trained_golden_models_exact_per_layer(trained):
    split = load_digits_split()
    for name, (spec, model) in trained.items():
        if spec.kind != "float":
            pixels = split.x_test.view(-1, *spec.input_shape)
            check_layers(model, freeze(model), pixels)


def test_second_run_loads_cached_models(demo):
    out, _, report = demo
    again = _bitfab("demo", "--out", str(out), "--arch", "mlp", "--no-bitstream",
                    "--images", "10")
    assert again.returncode == 0, again.stderr
    assert "loaded from" in again.stdout and "trained in" not in again.stdout
    models = json.loads((out / "report.json").read_text())["models"]
    assert models["mlp_pa_m4n5"]["accuracy"] == report["models"]["mlp_pa_m4n5"]["accuracy"]


def test_cli_reports_width_overflow(demo):
    out, _, _ = demo
    run = _bitfab("demo", "--out", str(out), "--arch", "mlp", "--acc-bits", "20")
    assert run.returncode == 2
    assert "error: layer 1: worst-case accumulator" in run.stderr
    # Raised in a Dask task, it is still one line: no worker's log, no traceback.
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert "acc_bits=20" in run.stderr


def test_the_hang_guard_names_the_step_that_hung(monkeypatch, tmp_path):
    """A run that stops printing is stopped after the quiet limit, naming its last line;
    one that keeps printing is never stopped, however long it takes."""
    script = tmp_path / "bitfab"
    script.write_text("#!/bin/sh\necho 'sim: 3 inputs'\nsleep 30\n")
    script.chmod(0o755)
    monkeypatch.setattr(sys.modules[__name__], "BITFAB", script)
    with pytest.raises(pytest.fail.Exception, match="no output for 2 s; hung after: sim: 3"):
        _bitfab("demo", quiet_limit=2)
    script.write_text("#!/bin/sh\nfor i in 1 2 3 4; do echo step $i; sleep 1; done\n")
    run = _bitfab("demo", quiet_limit=2)
    assert run.returncode == 0 and run.stdout.split() == ["step", "1", "step", "2", "step",
                                                         "3", "step", "4"]

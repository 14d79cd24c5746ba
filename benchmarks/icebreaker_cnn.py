"""Benchmark: a digits CNN small enough for the iCEBreaker (iCE40 UP5K), trained,
frozen, simulated and built, with its accuracy as it is.

The demo's XNOR CNN (`bitfab.hls_gen.digits.models`, 3x3 convolution on 5-bit
pixel planes, 3x3 stride-2 XNOR convolution, XNOR head) narrowed to 8 and 8
channels (the demo's has 16 and 32: it does not fit the UP5K), trained as the
demo trains (float first, then the XNOR model from it) on scikit-learn's digits.
Accuracy on the 450 test images of the float model, the XNOR model (torch) and
its golden model; then `bitfab build`'s flow for the iCEBreaker: every output of
every layer in cocotb on all 450 test images, 20 images through the netlist
yosys maps for the iCE40 (`synth_ice40`), nextpnr-ice40's figures (logic cells,
block RAMs, fmax) at the board's 12 MHz.

Last line: one JSON object. ``--no-bitstream`` stops after simulation.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

from bitfab.hls_gen.compiler.flow import BuildConfig, run_flow
from bitfab.hls_gen.datasets import load_digits_split
from bitfab.hls_gen.digits.demo import DemoConfig, train_from_float
from bitfab.hls_gen.digits.models import ModelSpec
from bitfab.hls_gen.digits.train import accuracy, predict
from bitfab.hls_gen.golden.freeze import freeze

BOARD = "icebreaker"
CHANNELS = (8, 8)
NETLIST_IMAGES = 20


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="build directory (default: a temporary one)")
    parser.add_argument("--no-bitstream", action="store_true")
    args = parser.parse_args()
    log = lambda text: print(text, flush=True)
    out = Path(args.out or tempfile.mkdtemp(prefix="icebreaker-cnn-"))
    start = time.perf_counter()
    split, config = load_digits_split(), DemoConfig()
    spec = ModelSpec("cnn", "xnor", channels=CHANNELS)
    models = train_from_float(spec, split, config, log)
    graph = freeze(models["xnor"], config.freeze)
    pixels = split.x_test.view(-1, *spec.input_shape)
    golden = graph.predict(pixels)
    xnor = predict(models["xnor"], split.x_test, spec.input_shape)
    figures = {"board": BOARD, "model": spec.name, "channels": list(CHANNELS),
               "test_images": len(split.x_test),
               "float_accuracy": accuracy(predict(models["float"], split.x_test,
                                                  spec.input_shape), split.y_test),
               "xnor_accuracy": accuracy(xnor, split.y_test),
               "golden_accuracy": accuracy(golden, split.y_test),
               "golden_agreement": accuracy(golden, xnor)}
    log(f"accuracy: float {figures['float_accuracy']:.4f}, XNOR {figures['xnor_accuracy']:.4f}, "
        f"golden {figures['golden_accuracy']:.4f}")
    build = BuildConfig(out=str(out), board=BOARD, netlist_images=NETLIST_IMAGES,
                        bitstream=not args.no_bitstream)
    report = run_flow(build, graph, log=lambda text: log(f"  {text}"))
    rtl, netlist = report["rtl"], report["netlist"] or {}
    figures.update({key: report[key] for key in (
        "luts", "ffs", "brams", "dsps", "fmax_mhz", "clock_mhz", "timing_met",
        "cycles_per_image", "schedule_cycles_per_image", "images_per_s_at_clock",
        "bitstream", "commit")})
    figures.update(rtl_images=rtl["images"], rtl_mismatches=rtl["mismatches"],
                   netlist_images=netlist.get("images"),
                   netlist_mismatches=netlist.get("mismatches"),
                   estimate=report["estimate"], seconds=round(time.perf_counter() - start))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

"""Benchmark: FINN's TFC-W1A1 from Brevitas, through bitfab to the ULX3S 85F.

The model is Brevitas' own definition (``brevitas_examples``' bnn_pynq `FC`, 64-64-64
binary neurons, the input binarized as 2 x - 1 and its sign, a TensorNorm on the
scores) on the 8 x 8 digits behind a 5-bit pixel quantizer
(`bitfab.hls_gen.digits.finn`), trained briefly at three seeds: the digits test
accuracy of each, PyTorch's and the golden model's. The first seed's model is
exported to QONNX and built as ``bitfab build tfc.onnx`` builds it: the import
checked against QONNX's executor on every tensor, golden model -> plan -> RTL ->
cocotb on all 450 test images -> yosys + nextpnr (figures from nextpnr's report).

Last line: one JSON object. ``--no-bitstream`` stops after simulation.

    .venv/bin/python benchmarks/tfc.py --out build/tfc
"""

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from bitfab.hls_gen.cli import _load_model
from bitfab.hls_gen.compiler.flow import BuildConfig, run_flow
from bitfab.hls_gen.datasets import load_digits_split
from bitfab.hls_gen.digits.finn import TFC_EPOCHS, export_tfc, train_tfc
from bitfab.hls_gen.frontend.onnx_import import load_qonnx, module_from_qonnx
from bitfab.hls_gen.golden.freeze import freeze

SEEDS = (0, 1, 2)
BOARD = "ulx3s-85f"


def accuracies(digits, seed, folder):
    """(the trained model's file, PyTorch's test accuracy, the golden model's, their
    agreement) for `seed`."""
    model = train_tfc(digits.x_train, digits.y_train, seed=seed)
    path = export_tfc(model, folder / f"tfc_seed{seed}.onnx")
    graph = freeze(module_from_qonnx(load_qonnx(path)))
    pixels = digits.x_test.long().view(-1, 1, 8, 8)
    with torch.no_grad():
        theirs = model(pixels.float() / 16).argmax(1)
    ours = graph.predict(pixels)
    mean = lambda v: float(v.double().mean())
    return path, mean(theirs == digits.y_test), mean(ours == digits.y_test), mean(ours == theirs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="build directory (default: a temporary one)")
    parser.add_argument("--no-bitstream", action="store_true")
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="tfc-"))
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    digits = load_digits_split()
    runs = [accuracies(digits, seed, out) for seed in SEEDS]
    for seed, (_, pytorch, golden, agree) in zip(SEEDS, runs):
        print(f"seed {seed}: PyTorch {pytorch:.4f}, golden {golden:.4f}, agreement "
              f"{agree:.4f}", flush=True)
    golden = [r[2] for r in runs]
    build = BuildConfig(out=str(out / "build"), board=BOARD, bitstream=not args.no_bitstream)
    report = run_flow(build, _load_model(runs[0][0]), log=lambda text: print(f"  {text}",
                                                                             flush=True))
    figures = {key: report[key] for key in (
        "board", "luts", "ffs", "brams", "dsps", "fmax_mhz", "clock_mhz", "timing_met",
        "cycles_per_image", "images_per_s", "bitstream")}
    figures.update(
        epochs=TFC_EPOCHS, seeds=list(SEEDS),
        accuracy=runs[0][2], accuracy_mean=round(statistics.mean(golden), 4),
        accuracy_spread=round(max(golden) - min(golden), 4),
        pytorch_accuracy=[round(r[1], 4) for r in runs],
        golden_accuracy=[round(r[2], 4) for r in runs],
        golden_agreement=[round(r[3], 4) for r in runs],
        images=report["rtl"]["images"], mismatches=report["rtl"]["mismatches"],
        seconds=round(time.perf_counter() - start))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

"""Benchmark: FINN's CNV-W1A1 topology through bitfab on the ULX3S 85F, against FINN's
published CNV-W1A1 on the PYNQ-Z1.

The network (`bitfab.hls_gen.cnv`): 3 x 32 x 32 8-bit pixels, 3x3 convolutions of
64, 64, max pool, 128, 128, max pool, 256, 256 channels, fully connected 512, 512,
10; binary weights, binary activations after the first layer; random weights
with thresholds at the medians of their accumulators on photo crops. Folded as
FINN folds it (BNN-PYNQ's cnvW1A1 config: PE x SIMD 16x3, 32x32, 16x32, 16x32,
4x32, 1x32, 1x4, 1x8 and 4x1, here 2x1 over 10 rows), built by `bitfab build`'s
flow: golden model -> plan -> RTL -> cocotb on photo crops (every output of
every layer against the golden model; the cycles per frame measured there) ->
yosys + nextpnr (figures from nextpnr's report).

FINN's anchor (Xilinx/BNN-PYNQ, PYNQ-Z1): 26,072 LUT6 at 100 MHz; its folding
takes 32,768 cycles a frame in its slowest layers (3,052 frames/s), 0.117
frames/s per LUT. Target: at least that many frames/s per LUT4.

The PA version (M = 4, N = 5) at the same folding: its plan's estimate, and the
board's refusal where it does not fit; the widest default folding that fits,
with its cycles per frame, or the refusal at every folding (its M weight bases
take M times the weight memory, whatever the folding). PA vs XNOR latency (thesis Table 3.8): each layer's
pipeline latency at equal folding, from a row's last fold to its output.

Where the design misses the board's 100 MHz, it is placed and routed again at a clock
below its fmax (up to `RETRIES` times), and frames/s are those of the bitstream at the
clock it meets (``first_try`` keeps the first run's clock and fmax).

Last line: one JSON object. ``--no-bitstream`` stops after simulation.
"""

import argparse
import json
import math
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from bitfab.hls_gen.cnv import FINN_FOLDING, cnv_graph
from bitfab.hls_gen.compiler.boards import board
from bitfab.hls_gen.compiler.flow import BuildConfig, run_flow
from bitfab.hls_gen.compiler.estimates import check_fit
from bitfab.hls_gen.compiler.folding import fitting_folding, fold, image_cycles
from bitfab.hls_gen.compiler.plan import PlanError, map_to_hw

FINN = {"design": "FINN CNV-W1A1, PYNQ-Z1 (Xilinx/BNN-PYNQ)", "luts": 26072, "lut_inputs": 6,
        "clock_mhz": 100, "cycles_per_frame": 32768}
FINN["frames_per_s"] = round(FINN["clock_mhz"] * 1e6 / FINN["cycles_per_frame"])
FINN["frames_per_s_per_lut"] = round(FINN["frames_per_s"] / FINN["luts"], 4)
BOARD = "ulx3s-85f"
IMAGE = (32, 32)
RETRIES = 2      # place-and-route runs at a lower clock where the first misses its own


def finn_folding():
    return [{"pe": pe, "simd": simd} for pe, simd in FINN_FOLDING]


def latencies(configs):
    """Each layer's pipeline latency in cycles: a row's last fold from issue to output."""
    return [c.latency for c in configs]


def pa_version(log):
    """The PA CNV (M = 4, N = 5): at FINN's folding, and at the widest that fits."""
    graph = cnv_graph("pa", m=4, n=5, calibration=16)
    names = [layer.name for layer in graph.layers]
    configs = map_to_hw(graph, IMAGE)
    folded = fold(configs, finn_folding(), names, board(BOARD))
    figures = {"m": 4, "n": 5, "estimate_at_finn_folding": None}
    try:
        figures["estimate_at_finn_folding"] = check_fit(folded, board(BOARD), names)["total"]
        figures["fits_at_finn_folding"] = True
    except PlanError as error:
        figures["fits_at_finn_folding"] = False
        figures["refused"] = str(error)
    log(f"PA at FINN's folding: {figures.get('refused', 'fits')}")
    # What the weights alone take: M bases of one bit per weight.
    figures["weight_bits"] = sum(c.rows * c.cols * c.m for c in configs)
    try:
        narrowed, fit = fitting_folding(configs, board(BOARD), names)
    except PlanError as error:
        figures["fits_at_any_folding"] = False
        figures["refused_at_any_folding"] = str(error)
        log(f"PA at any folding: {error}")
    else:
        figures["fits_at_any_folding"] = True
        figures["fitting_folding"] = [f"{c.pe}x{c.simd}x{c.multipliers}" for c in narrowed]
        figures["fitting_estimate"] = fit["total"]
        figures["fitting_cycles_per_frame"] = image_cycles(narrowed)
    # Table 3.8: at equal folding, every merge one multiplier per phi_k.
    equal = fold(configs, [{**f, "multipliers": c.terms}
                           for f, c in zip(finn_folding(), configs)], names, board(BOARD))
    figures["latency_at_finn_folding"] = latencies(equal)
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="build directory (default: a temporary one)")
    parser.add_argument("--images", type=int, default=32, help="photo crops to simulate")
    parser.add_argument("--no-bitstream", action="store_true")
    args = parser.parse_args()
    log = lambda text: print(text, flush=True)
    out = Path(args.out or tempfile.mkdtemp(prefix="cnv-"))
    start = time.perf_counter()
    graph = cnv_graph("xnor")
    build = BuildConfig(out=str(out / "xnor"), board=BOARD, folding=finn_folding(),
                        image=list(IMAGE), sim_images=args.images,
                        bitstream=not args.no_bitstream)
    report = run_flow(build, graph, log=lambda text: log(f"  {text}"))
    first_try = {key: report[key] for key in ("clock_mhz", "fmax_mhz", "timing_met")}
    for _ in range(RETRIES):
        if not report["fmax_mhz"] or report["timing_met"]:
            break
        # A bitstream whose clock the design does not meet may compute wrong results:
        # place and route again at a clock below its fmax, as `bitfab build` advises.
        clock = math.floor(report["fmax_mhz"])
        log(f"timing not met at {report['clock_mhz']:g} MHz (fmax {report['fmax_mhz']} MHz): "
            f"placing and routing again at {clock} MHz")
        build = replace(build, clock_mhz=clock, start_step="synth")
        report = run_flow(build, graph, log=lambda text: log(f"  {text}"))
    names = [layer.name for layer in graph.layers]
    configs = fold(map_to_hw(graph, IMAGE), finn_folding(), names, board(BOARD))
    rtl = report["rtl"]
    xnor = {key: report[key] for key in ("luts", "ffs", "brams", "dsps", "fmax_mhz",
                                          "clock_mhz", "timing_met", "cycles_per_image",
                                          "bitstream")}
    xnor["first_try"] = first_try
    xnor.update(weight_bits=sum(c.rows * c.cols * c.m for c in configs),
                images=rtl["images"], mismatches=rtl["mismatches"],
                beats_checked=rtl["beats_checked"], estimate=report["estimate"],
                schedule_cycles_per_frame=image_cycles(configs),
                fifo_depths=[c.fifo_depth for c in configs],
                latency_at_finn_folding=latencies(configs))
    if report["fmax_mhz"]:
        # At the clock the bitstream runs where the design meets it, else at its fmax.
        mhz = report["clock_mhz"] if report["timing_met"] else report["fmax_mhz"]
        fps = mhz * 1e6 / report["cycles_per_image"]
        xnor["frames_per_s"] = round(fps)
        xnor["frames_per_s_per_lut4"] = round(fps / report["luts"], 4)
    pa = pa_version(log)
    # The headline figures flat (the results page tabulates those), the rest nested.
    figures = {"board": BOARD, **{k: v for k, v in xnor.items() if not isinstance(v, (dict, list))},
               "cycles_per_frame": xnor["cycles_per_image"],
               "finn_frames_per_s_per_lut": FINN["frames_per_s_per_lut"],
               "pa_fits_at_finn_folding": pa["fits_at_finn_folding"],
               "pa_fits_at_any_folding": pa["fits_at_any_folding"],
               "xnor": xnor, "pa": pa, "finn": FINN, "seconds": round(time.perf_counter() - start)}
    figures.pop("cycles_per_image")
    if "frames_per_s_per_lut4" in xnor:
        figures["target_met"] = xnor["frames_per_s_per_lut4"] >= FINN["frames_per_s_per_lut"]
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

"""Benchmark: a CIFAR-shaped binary ResNet-20 (`bitfab.hls_gen.resnet`) through bitfab's
graph flow on the ULX3S 85F, beside bitfab's CNV-W1A1 chain.

The network: 3 x 32 x 32 8-bit pixels; a 3x3 stem of 16 channels; three stages of
three residual blocks at 16, 32 and 64 channels, each block two Bi-Real units whose
shortcut carries the real-valued pre-sign activation (a fixed point the freezer
chooses); downsampling units with a binary 1x1 stride-2 shortcut; global average
pooling, its sign and 10 class scores. Random weights, batch-norm statistics from
photo crops the simulation does not use. Frozen at 22-bit coefficients and 40-bit
accumulators (random weights leave small margins: 16 bits agree with float64 on 81%
of crops, 22 on 99.6%, `tests/test_resnet.py`).

Built by `bitfab build`'s flow: golden model -> hardware graph (every queue on a
path into a join sized from the schedule, its computation timed) -> RTL -> cocotb on
photo crops (every output of every node against the golden model, with the cycles
per frame measured) -> yosys + nextpnr (figures from nextpnr's report).

Anchor: bitfab's CNV-W1A1 (a chain) does about 16.7 MOp/s per LUT4 (59.4 M MACs a
frame, 2,351 frames/s, 16,711 LUT4). Last line: one JSON object. ``--no-bitstream``
stops after simulation; ``--pe`` sets every convolution's PE (default: 4, the widest
whose estimate fits the 85F's block RAMs).
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from bitfab.hls_gen.compiler.boards import board
from bitfab.hls_gen.compiler.flow import BuildConfig, run_flow
from bitfab.hls_gen.compiler.graph import estimate_graph, map_graph
from bitfab.hls_gen.golden.freeze import FreezeConfig, freeze
from bitfab.hls_gen.golden.ir import PopcountLayer, XnorLayer
from bitfab.hls_gen.resnet import IMAGE, resnet20

BOARD = "ulx3s-85f"
FREEZE = FreezeConfig(coef_bits=22, acc_bits=40, image=IMAGE[1:])
CHAIN = {"design": "bitfab CNV-W1A1 (benchmarks/cnv.py)", "mop_per_s_per_lut4": 16.7}


def macs_per_frame(graph):
    """Multiply-accumulates a frame: each layer's outputs times its fan-in."""
    _, trace = graph.run(torch.zeros((1, *IMAGE), dtype=torch.int64))
    total = 0
    for node in graph.nodes:
        if isinstance(node, (PopcountLayer, XnorLayer)):
            acc = trace[node.name]["acc"]
            total += acc[0].numel() * node.widths.fan_in
    return total


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="build directory (default: a temporary one)")
    parser.add_argument("--images", type=int, default=32, help="photo crops to simulate")
    parser.add_argument("--pe", type=int, default=4, help="every convolution's PE")
    parser.add_argument("--no-bitstream", action="store_true")
    parser.add_argument("--start", default="golden",
                        help="first step, the earlier ones read from --out (e.g. synth)")
    args = parser.parse_args()
    log = lambda text: print(text, flush=True)
    out = Path(args.out or tempfile.mkdtemp(prefix="resnet-"))
    start = time.perf_counter()
    graph = freeze(resnet20(), FREEZE)
    layers = [n.name for n in graph.nodes if isinstance(n, (PopcountLayer, XnorLayer))]
    folding = {name: {"pe": args.pe} for name in layers if name != "head"}
    hw = map_graph(graph, IMAGE[1:], folding)
    estimate, _ = estimate_graph(hw, board(BOARD))
    log(f"plan: {len(hw.queues)} queues sized in {hw.depth_seconds * 1e3:.1f} ms; estimate "
        f"{estimate['total']}")
    report = run_flow(BuildConfig(out=str(out), board=BOARD, folding=folding,
                                  image=list(IMAGE[1:]), sim_images=args.images,
                                  bitstream=not args.no_bitstream, start_step=args.start),
                      graph, log=lambda text: log(f"  {text}"))
    macs = macs_per_frame(graph)
    figures = {"board": BOARD, "pe": args.pe, "macs_per_frame": macs,
               "images": report["rtl"]["images"], "mismatches": report["rtl"]["mismatches"],
               "cycles_per_frame": report["cycles_per_image"],
               "schedule_cycles_per_frame": report["schedule_cycles_per_image"],
               "queues": len(hw.queues), "fifo_depth_seconds": round(hw.depth_seconds, 4),
               "fifo_depths": {q["name"]: q["depth"] for q in hw.queues},
               "estimate": estimate["total"]}
    for key in ("luts", "ffs", "brams", "dsps", "fmax_mhz", "clock_mhz", "timing_met",
                "bitstream"):
        figures[key] = report.get(key)
    if report.get("fmax_mhz"):
        clock = report["clock_mhz"] if report["timing_met"] else report["fmax_mhz"]
        fps = clock * 1e6 / report["cycles_per_image"]
        figures["frames_per_s"] = round(fps)
        figures["mop_per_s_per_lut4"] = round(2 * macs * fps / report["luts"] / 1e6, 2)
        figures["chain"] = CHAIN
        figures["target_met"] = figures["mop_per_s_per_lut4"] >= CHAIN["mop_per_s_per_lut4"]
    figures["seconds"] = round(time.perf_counter() - start)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

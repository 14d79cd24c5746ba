"""Benchmark: how tight the computed queue depths are. For each digits graph network
(XNOR, 8 channels, the folding `tests/test_graph_hw.py` uses), each queue on a path
into a join is made smaller, one entry at a time, alone, until the cycles per image
measured in Verilator (4 test images) rise above the schedule or the bench calls a
deadlock; the fewest entries that keep the schedule are printed beside the
computed depth. Last line: one JSON object, {network: {queue: {"computed": n,
"fewest": n}}}.

    .venv/bin/python benchmarks/fifo_tightness.py --archs fractal,nasb
"""

import argparse
import json
import tempfile
from pathlib import Path

import torch

from bitfab.hls_gen.compiler.graph import graph_case, map_graph
from bitfab.hls_gen.datasets import load_digits_split
from bitfab.hls_gen.digits.graphs import GRAPH_ARCHS, GraphSpec, build_graph_model
from bitfab.hls_gen.digits.train import TrainConfig, train
from bitfab.hls_gen.golden.freeze import freeze
from bitfab.sim.cases import run_case

CAPS = (64, 8, 8)
SEED = 20261207
STALL_LIMIT = 3000


def fewest(hw, case, folder, name, computed):
    """The fewest entries of queue `name` at which the schedule holds (the others as
    computed), counting down from `computed`."""
    def cycles(depth):
        try:
            return run_case(hw.with_queue_depths({name: depth}).network(), "fifo_tightness",
                            case, folder, SEED, "verilator", key=[name, depth],
                            optimize=True, stall_limit=STALL_LIMIT)["cycles_per_item"]
        except RuntimeError:
            return None                         # a deadlock the bench named
    depth = computed
    while depth > 1 and cycles(depth - 1) == hw.schedule_cycles:
        depth -= 1
    return depth


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--archs", default=",".join(GRAPH_ARCHS))
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args(argv)
    digits = load_digits_split()
    figures = {}
    with tempfile.TemporaryDirectory() as folder:
        for arch in args.archs.split(","):
            torch.manual_seed(0)
            model = train(build_graph_model(GraphSpec(arch, "xnor", channels=8)),
                          digits.x_train, digits.y_train, GraphSpec.input_shape,
                          TrainConfig(epochs=args.epochs))
            graph = freeze(model)
            hw = map_graph(graph, caps=CAPS)
            case = graph_case(graph, hw, digits.x_test[:4].long().view(-1, 1, 8, 8))
            base = run_case(hw.network(), "fifo_tightness", case, Path(folder), SEED,
                            "verilator", optimize=True)["cycles_per_item"]
            assert base == hw.schedule_cycles, (arch, base, hw.schedule_cycles)
            figures[arch] = {}
            for queue in hw.queues:
                least = fewest(hw, case, Path(folder), queue["name"], queue["depth"])
                figures[arch][queue["name"]] = {"computed": queue["depth"], "fewest": least}
                print(f"{arch} {queue['name']}: computed {queue['depth']}, fewest {least}",
                      flush=True)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

"""The wire protocol's fuzzer on a simulated board (`bitfab.sim.wire_fuzz`): sequences
per kind, statuses compared with the model's prediction (a mismatch or a hang
raises), frames dropped, skipped and refused, seconds, then every digits test
image after a clean load. The last line is one JSON object of the figures.

    python benchmarks/wire_fuzz.py [--sequences 10000] [--seed 20261205]
"""

import argparse
import json
import tempfile

from bitfab.hls_gen.golden.synthetic import digits_graph
from bitfab.hls_gen.compiler.deploy import board_target
from bitfab.sim.wire_fuzz import fuzz_simulated_board


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequences", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=20261205)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        figures = fuzz_simulated_board(board_target(digits_graph(1)), root, args.sequences, args.seed)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

"""The fuzzer against the shell (`bitfab.sim.wire_fuzz`): 10,000 malformed sequences on
a simulated board (the shell's byte streams, a digits network behind them), each
followed by a status that must be exactly the one `ShellModel` predicts (else
`FuzzMismatch`, naming the sequence); every read has a deadline and the host no
retries (a hang fails). Then a clean load and every digits test image, each score
equal to the golden model's."""

import json

import pytest

from bitfab.hls_gen.compiler.deploy import board_target
from bitfab.sim.wire_fuzz import KINDS, fuzz_simulated_board
from networks import digits_graph

SEQUENCES, SEED = 10_000, 20261205


@pytest.mark.sim
def test_the_shell_survives_the_fuzzer(tmp_path):
    figures = fuzz_simulated_board(board_target(digits_graph(1)), tmp_path, SEQUENCES, SEED)
    print(json.dumps(figures))
    assert sum(figures[kind] for kind in KINDS) == SEQUENCES
    assert all(figures[kind] > SEQUENCES / len(KINDS) / 2 for kind in KINDS), figures
    assert figures["statuses"] > SEQUENCES
    assert min(figures["dropped"], figures["skipped"], figures["refused"]) > 1000, figures
    # No sequence carried a whole input frame in order: the network would be inside an
    # image, and the run after out of step.
    assert (figures["inputs_taken"], figures["faults"]) == (0, 0), figures
    assert figures["images"] == 450 and figures["mismatches"] == 0, figures

"""PopcountTree: parameter checks, and cocotb against the golden model in Verilator."""

import pytest

from bitfab.rtl.popcount import Front, PopcountTree
from bitfab.sim.runner import run_bench, simulators

SEED = 20261122


@pytest.mark.parametrize("width,message", [(0, "positive integer, not 0"),
                                           (-3, "positive integer, not -3")])
def test_width_must_be_positive(width, message):
    with pytest.raises(ValueError, match=message):
        PopcountTree(width)


@pytest.mark.parametrize("kwargs,error", [
    (dict(width=8.0), TypeError), (dict(width=True), TypeError),
    (dict(width=8, front="and"), TypeError), (dict(width=8, stages=4), ValueError),
    (dict(width=8, stages=-1), ValueError), (dict(width=1, stages=2), ValueError),
])
def test_parameters_checked(kwargs, error):
    with pytest.raises(error):
        PopcountTree(**kwargs)


def test_signature_and_latency():
    tree = PopcountTree(256, Front.XNOR, stages=4)
    assert tree.count_bits == 9 and tree.levels == 8 and tree.latency == 4
    assert tree.signature.members["o"].signature.members["payload"].shape.width == 9


# (width, front, stages): the small ones are exhaustive over both operands.
CONFIGS = [(1, "none", 1), (5, "and", 2), (6, "xnor", 3), (12, "none", 0),
           (100, "and", 0), (256, "xnor", 4)]


@pytest.mark.sim
@pytest.mark.parametrize("sim", simulators() or ["verilator"])
@pytest.mark.parametrize("width,front,stages", CONFIGS)
def test_popcount_cocotb(tmp_path_factory, sim, width, front, stages):
    params = {"width": width, "front": front, "stages": stages, "vectors": 2000}
    try:
        run_bench(PopcountTree(width, Front(front), stages), "popcount_tree",
                  "bitfab.sim.popcount_tb", params, tmp_path_factory.getbasetemp() / "sim",
                  seed=SEED, sim=sim)
    except Exception as error:
        pytest.fail(f"{sim} {params} seed={SEED}: {error}")

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
@pytest.mark.parametrize("sim", simulators())
@pytest.mark.parametrize("width,front,stages", CONFIGS)
def test_popcount_cocotb(tmp_path_factory, sim, width, front, stages):
    params = {"width": width, "front": front, "stages": stages, "vectors": 2000}
    try:
        run_bench(PopcountTree(width, Front(front), stages), "popcount_tree",
                  "bitfab.sim.popcount_tb", params, tmp_path_factory.getbasetemp() / "sim",
                  seed=SEED, sim=sim)
    except Exception as error:
        pytest.fail(f"{sim} {params} seed={SEED}: {error}")


@pytest.mark.sim
def test_bench_in_a_relative_directory(tmp_path, monkeypatch):
    """`bitfab build --out b` hands the runner a relative path; the simulator's tools run
    in other directories, so it must still find its sources."""
    monkeypatch.chdir(tmp_path)
    params = {"width": 3, "front": "xnor", "stages": 1, "vectors": 200}
    run_bench(PopcountTree(3, Front.XNOR, 1), "popcount_tree", "bitfab.sim.popcount_tb",
              params, "sim", seed=SEED)
    assert list(tmp_path.glob("sim/verilator_popcount_tree_*/popcount_tree.v"))


class _ICE40:
    """Stands in for an iCE40 platform: `count_ones` builds the plain adder tree there."""
    family = "iCE40"


@pytest.mark.parametrize("platform", [None, _ICE40()], ids=["carry-chain", "adder-tree"])
@pytest.mark.parametrize("front", list(Front))
def test_both_structures_count_exactly(platform, front):
    """Amaranth's simulator on the carry-chain tree (as simulated everywhere and placed on
    ECP5) and on the adder tree (other FPGAs): exhaustive up to 4 bits (both operands),
    seeded random vectors up to 70 bits, combinational and fully pipelined."""
    import itertools
    import random

    from amaranth.hdl import Fragment
    from amaranth.sim import Simulator

    rng = random.Random(SEED)
    for width in (1, 2, 3, 4, 5, 7, 11, 16, 33, 70):
        for stages in (0, max(1, (width - 1).bit_length())):
            dut = PopcountTree(width, front, stages)
            if width <= 4:
                vectors = list(itertools.product(range(1 << width), repeat=2))
            else:
                vectors = [(rng.getrandbits(width), rng.getrandbits(width)) for _ in range(40)]
            mask = (1 << width) - 1
            want = [bin({Front.NONE: a, Front.AND: a & b,
                         Front.XNOR: ~(a ^ b) & mask}[front]).count("1") for a, b in vectors]
            got = []

            async def bench(ctx):
                ctx.set(dut.o.ready, 1)
                for a, b in vectors + [(0, 0)] * stages:
                    if front is Front.NONE:
                        ctx.set(dut.i.payload, a)
                    else:
                        ctx.set(dut.i.payload.a, a)
                        ctx.set(dut.i.payload.b, b)
                    ctx.set(dut.i.valid, 1)
                    if stages == 0:
                        got.append(ctx.get(dut.o.payload))
                        continue
                    if ctx.get(dut.o.valid):
                        got.append(ctx.get(dut.o.payload))
                    await ctx.tick()

            sim = Simulator(Fragment.get(dut, platform))
            if stages:
                sim.add_clock(1e-6)
            sim.add_testbench(bench)
            sim.run()
            got = got[:len(want)]
            bad = next((k for k, (g, w) in enumerate(zip(got, want)) if g != w), None)
            assert len(got) == len(want) and bad is None, \
                (f"width {width} stages {stages} seed {SEED}: vector {bad} {vectors[bad]}: "
                 f"got {got[bad]}, want {want[bad]}" if bad is not None else len(got))

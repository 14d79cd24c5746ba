"""FIFO depths from the static schedule (`MVAUConfig.scheduled_fifo_depth`), shown
tight: a unit whose row groups issue back to back runs at its schedule with the
computed depth and slower with one place less, and in a network the same holds for
the whole pipeline when that unit sets its rate; a depth that can never issue is
refused."""

import pytest
from amaranth.sim import Simulator

from bitfab.rtl.mvau import MatrixVectorUnit, MVAUConfig

# Units whose compute is longer than their input (in_beat wide), so their rows issue
# back to back: PA with a time-shared merge, XNOR, PA at one multiplier per phi_k, and
# scores through the scale's DSP block.
COMPUTE_BOUND = {
    "pa_shared_merge": dict(rows=16, cols=9, pe=2, simd=9, m=4, n_in=5, multipliers=10,
                            coef_bits=12, in_beat=9),
    "pa_three_folds": dict(rows=4, cols=9, pe=1, simd=3, m=2, n_in=5, coef_bits=6),
    "xnor_4_folds": dict(rows=8, cols=16, pe=2, simd=4, front="xnor", in_beat=16),
    "pa_parallel_merge": dict(rows=8, cols=32, pe=1, simd=8, m=2, n_in=2, in_beat=32),
    "scores": dict(rows=6, cols=12, pe=1, simd=4, m=2, n_in=3, output="scores",
                   scale_bits=8, in_beat=12),
}


def _zero_stores(config):
    rows = {"weights": [0] * config.weight_rows}
    for segment in config.segments:
        if segment.name == "coefficients":
            rows[segment.name] = [[0] * (config.m * config.n_in)]
        elif segment.name == "thresholds":
            rows[segment.name] = [[{"thresholds": [0] * config.n_out, "descending": 0}]
                                  * config.pe] * config.groups
        elif segment.name == "scales":
            rows[segment.name] = [[1] * config.pe] * config.groups
    return config.pack(rows)


def steady_cycles(config, vectors=8):
    """Cycles per vector from the first vector's last output to the last one's, on
    average (Amaranth's simulator), input always valid, output always ready."""
    dut = MatrixVectorUnit(config)
    words, ends = _zero_stores(config), []

    async def bench(ctx):
        ctx.set(dut.load.valid, 1)
        for word in words:
            ctx.set(dut.load.payload, word)
            await ctx.tick().until(dut.load.ready)
        ctx.set(dut.load.valid, 0)
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.i.valid, 1)
        beats, cycle = 0, 0
        while beats < vectors * config.groups and cycle < 50 * vectors * config.cycles:
            _, _, valid = await ctx.tick().sample(dut.o.valid)
            if valid:
                beats += 1
                if beats % config.groups == 0:
                    ends.append(cycle)
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert len(ends) == vectors, f"{len(ends)} of {vectors} vectors out"
    return (ends[-1] - ends[0]) / (vectors - 1)


@pytest.mark.parametrize("name", sorted(COMPUTE_BOUND))
def test_the_scheduled_depth_is_the_least_at_which_the_unit_keeps_its_schedule(name):
    config = MVAUConfig(**COMPUTE_BOUND[name])
    assert config.vector_period == config.cycles
    depth = config.fifo_depth
    assert steady_cycles(config) == config.cycles
    assert steady_cycles(MVAUConfig(**COMPUTE_BOUND[name], fifo=depth - 1)) > config.cycles


def test_the_scheduled_depth_counts_bursts_of_an_input_bound_unit():
    """A unit waiting for its input issues a vector's 4 rows in a burst: the depth holds
    the burst (the next is too far off to count) and the margin."""
    burst = MVAUConfig(rows=8, cols=32, pe=2, simd=16, front="xnor")
    assert (burst.vector_period, burst.cycles, burst.groups) == (32, 8, 4)
    assert burst.latency + 2 < burst.vector_period and burst.fifo_depth == 4 + 2
    assert steady_cycles(burst) == burst.vector_period


@pytest.mark.parametrize("fifo", [0, 1, 2.5, True])
def test_a_fifo_that_never_has_room_is_refused(fifo):
    with pytest.raises(ValueError, match="fifo must be a depth of at least 2"):
        MVAUConfig(rows=8, cols=16, fifo=fifo)


# The digits CNN with its first convolution folded to 3 folds a row: 4 rows of 3 folds
# at each of 64 positions, back to back, the pipeline's slowest stage (768 cycles an
# image; the second window's feed is 576).
SLOW_FIRST = [{"pe": 1, "simd": 3, "multipliers": 10}, {"pe": 1, "simd": 36},
              {"pe": 1, "simd": 96}]


@pytest.mark.sim
def test_a_network_keeps_its_schedule_with_the_computed_fifos_and_not_with_one_less(
        tmp_path):
    import json

    from networks import cnn_graph

    from bitfab.hls_gen.compiler.flow import BuildConfig, artifact, run_flow
    from bitfab.hls_gen.compiler.folding import fold, image_cycles
    from bitfab.hls_gen.compiler.plan import map_to_hw

    graph = cnn_graph(1)
    configs = fold(map_to_hw(graph, (8, 8)), SLOW_FIRST)
    schedule = image_cycles(configs)
    assert schedule == 64 * configs[0].cycles == 64 * 4 * 3
    depth = configs[0].fifo_depth
    measured = {}
    for fifo in (None, depth - 1):
        out = tmp_path / f"fifo{fifo}"
        folding = [{**SLOW_FIRST[0], "fifo": fifo}, *SLOW_FIRST[1:]]
        run_flow(BuildConfig(out=str(out), bitstream=False, sim_images=6, folding=folding,
                             stop_step="sim"), graph, log=lambda _: None)
        sim = json.loads(artifact(out, "sim.json").read_text())
        assert sim["mismatches"] == 0
        measured[fifo] = sim["cycles_per_item"]
    assert measured[None] == schedule, measured
    assert measured[depth - 1] > schedule, measured

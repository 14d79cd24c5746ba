"""The graph's stream primitives against the golden model's ops: the fork (`Broadcast`),
the fixed-point sum (`AddStreams`, golden `ir.Add`) and the channel concatenation
(`ChannelConcat`, golden `ir.Concat`). In cocotb with random stalls on every input
and random backpressure on every output (the seed is printed on failure); the sum
exhaustively over two 3-bit inputs; rates and latencies in Amaranth's simulator."""

import random

import pytest
import torch
from amaranth.hdl import unsigned
from amaranth.lib import data
from amaranth.sim import Simulator

from bitfab.hls_gen.golden.ir import Add, Concat, Slice
from bitfab.rtl.add_streams import AddConfig, AddStreams
from bitfab.rtl.broadcast import Broadcast
from bitfab.rtl.concat import ChannelConcat
from bitfab.rtl.queue import StreamQueue
from bitfab.rtl.select import ChannelSelect
from bitfab.rtl.split import ChannelSplit
from bitfab.sim.runner import default_simulator, run_vectors

SEED = 20261207
SIM = default_simulator()
MULTI = "bitfab.sim.multi_tb"


def _beats(layout, rows):
    return [layout.const(list(row)).as_bits() for row in rows]


@pytest.mark.sim
def test_broadcast_gives_every_output_every_beat(tmp_path_factory):
    rng = random.Random(SEED)
    beats = [rng.getrandbits(11) for _ in range(2000)]
    run_vectors(Broadcast(11, outputs=3), "broadcast",
                {"inputs": {"i": beats}, "outputs": {f"o{k}": beats for k in range(3)}},
                tmp_path_factory.getbasetemp() / "sim", SEED, SIM, bench=MULTI)


@pytest.mark.sim
@pytest.mark.parametrize("depth", [1, 2, 5, 70])
def test_a_queue_passes_every_beat_in_order(tmp_path_factory, depth):
    rng = random.Random(SEED + depth)
    beats = [rng.getrandbits(9) for _ in range(1500)]
    run_vectors(StreamQueue(9, depth), f"queue_{depth}",
                {"inputs": {"i": beats}, "outputs": {"o": beats}},
                tmp_path_factory.getbasetemp() / "sim", SEED, SIM, key=depth, bench=MULTI)


@pytest.mark.parametrize("depth", [1, 2, 3, 4, 18])
def test_a_queue_holds_depth_beats_and_answers_two_cycles_late(depth):
    """Held back, a queue takes exactly `depth` beats; it gives them in order, a beat a
    cycle, `StreamQueue.latency` cycles after they came."""
    dut, taken, out = StreamQueue(8, depth), [], []

    async def bench(ctx):
        ctx.set(dut.i.valid, 1)
        for _ in range(depth + 4):              # the output held back: it fills
            ctx.set(dut.i.payload, sum(taken))  # the next beat, held until taken
            taken.append(ctx.get(dut.i.ready))
            await ctx.tick()
        ctx.set(dut.i.valid, 0)
        ctx.set(dut.o.ready, 1)
        for _ in range(depth + 4):
            if ctx.get(dut.o.valid):
                out.append(ctx.get(dut.o.payload))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert sum(taken) == depth and out == list(range(depth))
    # `_rate`'s 0 is a registered output's: a queue of up to 3 beats is that many
    # registers; deeper, its FIFO's two cycles and the output register.
    late = StreamQueue(4, depth).latency - 1
    assert late == (depth - 1 if depth <= StreamQueue.REGISTERS else 2)
    assert _rate(StreamQueue(4, depth), ["i"], ["o"], 8)["o"] == list(range(late, late + 8))


def _golden_add(values, in_bits, shifts, out_bits):
    """`ir.Add` on lanes `values` (inputs, beats, lanes): the sum of fixed points whose
    fractional bits exceed the sum's by `shifts`."""
    frac = 0
    node = Add("join", [f"x{k}" for k in range(len(in_bits))],
               fracs=[frac + s for s in shifts], frac=frac, bits=out_bits)
    return node.run([torch.tensor(v, dtype=torch.int64) for v in values], {})


def _add_case(config, values):
    want = _golden_add(values, config.in_bits, config.shifts, config.out_bits)
    return {"inputs": {f"i{k}": _beats(config.in_layout(k), v) for k, v in enumerate(values)},
            "outputs": {"o": _beats(config.out_layout, want.tolist())}}


@pytest.mark.sim
def test_add_streams_equals_the_golden_add(tmp_path_factory):
    root = tmp_path_factory.getbasetemp() / "sim"
    # Exhaustive: every pair of 3-bit values, the second shifted right by one.
    pairs = [(a, b) for a in range(-4, 4) for b in range(-4, 4)]
    config = AddConfig(in_bits=(3, 3), shifts=(0, 1), out_bits=4)
    values = [[[a] for a, _ in pairs], [[b] for _, b in pairs]]
    run_vectors(AddStreams(config), "add_exhaustive", _add_case(config, values), root, SEED,
                SIM, bench=MULTI)
    # Random: three inputs of four lanes, each shifted differently, at their extremes too.
    rng = random.Random(SEED)
    config = AddConfig(in_bits=(12, 9, 16), shifts=(2, 0, 3), out_bits=15, lanes=4)
    values = []
    for bits in config.in_bits:
        low, high = -(1 << bits - 1), (1 << bits - 1) - 1
        values.append([[rng.choice([low, high, rng.randint(low, high)]) for _ in range(4)]
                       for _ in range(1500)])
    run_vectors(AddStreams(config), "add_random", _add_case(config, values), root, SEED, SIM,
                bench=MULTI)


@pytest.mark.sim
def test_channel_concat_equals_the_golden_concat(tmp_path_factory):
    """Two images of codes, 4 and 6 channels, 2 channels a beat: per position, 2 beats
    of the first then 3 of the second."""
    gen = torch.Generator().manual_seed(SEED)
    a = torch.randint(0, 8, (6, 4, 5, 5), generator=gen)
    b = torch.randint(0, 8, (6, 6, 5, 5), generator=gen)
    want = Concat("cat", ["a", "b"]).run([a, b], {})
    layout = data.ArrayLayout(unsigned(3), 2)

    def beats(codes):
        # Position by position, each position's channels 2 a beat, as a unit streams them.
        return _beats(layout, codes.permute(0, 2, 3, 1).reshape(-1, 2).tolist())

    run_vectors(ChannelConcat(layout, (2, 3)), "concat",
                {"inputs": {"i0": beats(a), "i1": beats(b)}, "outputs": {"o": beats(want)}},
                tmp_path_factory.getbasetemp() / "sim", SEED, SIM, bench=MULTI)


@pytest.mark.sim
def test_channel_split_gives_each_output_its_channels(tmp_path_factory):
    """Images of 10 channels, 2 a beat: per position, 2 beats to the first output (its 4
    channels), then 3 to the second: the golden concatenation undone."""
    gen = torch.Generator().manual_seed(SEED)
    x = torch.randint(0, 8, (6, 10, 5, 5), generator=gen)
    a, b = x[:, :4], x[:, 4:]
    assert torch.equal(Concat("cat", ["a", "b"]).run([a, b], {}), x)
    layout = data.ArrayLayout(unsigned(3), 2)

    def beats(codes):
        return _beats(layout, codes.permute(0, 2, 3, 1).reshape(-1, 2).tolist())

    run_vectors(ChannelSplit(layout, (2, 3)), "split",
                {"inputs": {"i": beats(x)}, "outputs": {"o0": beats(a), "o1": beats(b)}},
                tmp_path_factory.getbasetemp() / "sim", SEED, SIM, bench=MULTI)


@pytest.mark.sim
@pytest.mark.parametrize("start,stop", [(0, 2), (2, 5), (1, 4)])
def test_channel_select_passes_the_golden_slice(tmp_path_factory, start, stop):
    """Images of 10 channels, 2 a beat: beats start .. stop - 1 of each position pass,
    channels 2 start .. 2 stop - 1, as the golden `Slice` cuts them."""
    gen = torch.Generator().manual_seed(SEED + start)
    x = torch.randint(0, 8, (6, 10, 5, 5), generator=gen)
    want = Slice("part", ["x"], start=2 * start, stop=2 * stop).run([x], {})
    layout = data.ArrayLayout(unsigned(3), 2)

    def beats(codes):
        return _beats(layout, codes.permute(0, 2, 3, 1).reshape(-1, 2).tolist())

    run_vectors(ChannelSelect(layout, 5, start, stop), f"select_{start}_{stop}",
                {"inputs": {"i": beats(x)}, "outputs": {"o": beats(want)}},
                tmp_path_factory.getbasetemp() / "sim", SEED, SIM, key=(start, stop),
                bench=MULTI)


def test_split_passes_one_beat_a_cycle():
    seen = _rate(ChannelSplit(4, (2, 3)), ["i"], ["o0", "o1"], 10)
    assert seen == {"o0": [0, 1, 5, 6], "o1": [2, 3, 4, 7, 8, 9]}


def _rate(dut, inputs, outputs, beats):
    """Drive every input valid and every output ready for `beats` + 2 cycles; returns,
    per output, the cycles at which a beat left."""
    seen = {name: [] for name in outputs}

    async def bench(ctx):
        for k in range(beats + 2):
            for name in inputs:
                port = getattr(dut, name)
                ctx.set(port.valid, k < beats)
            for name in outputs:
                ctx.set(getattr(dut, name).ready, 1)
            await ctx.tick()
            for name in outputs:
                if ctx.get(getattr(dut, name).valid):
                    seen[name].append(k)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return seen


@pytest.mark.parametrize("dut,inputs,outputs", [
    (Broadcast(4, 2), ["i"], ["o0", "o1"]),
    (AddStreams(AddConfig((4, 4), (0, 0), 5, lanes=2)), ["i0", "i1"], ["o"]),
])
def test_one_beat_a_cycle_one_cycle_late(dut, inputs, outputs):
    seen = _rate(dut, inputs, outputs, 8)
    assert all(cycles == list(range(8)) for cycles in seen.values()), seen


def test_concat_passes_one_beat_a_cycle():
    seen = _rate(ChannelConcat(4, (2, 3)), ["i0", "i1"], ["o"], 10)
    assert seen["o"] == list(range(10))


@pytest.mark.parametrize("make,match", [
    (lambda: Broadcast(4, outputs=1), "at least 2 outputs, not 1"),
    (lambda: AddConfig((4,), (0,), 5), "joins at least 2 inputs, not 1"),
    (lambda: AddConfig((4, 4), (0,), 5), r"must give one shift per input \(2\)"),
    (lambda: AddConfig((4, 4), (0, -1), 5), "shifts must be integers of at least 0"),
    (lambda: AddConfig((4, 4), (0, 0), 0), "out_bits must be a positive integer, not 0"),
    (lambda: ChannelConcat(4, (2,)), "at least 2 inputs"),
    (lambda: ChannelConcat(4, (2, 0)), "each a positive integer"),
    (lambda: ChannelSplit(4, (3,)), "at least 2 outputs"),
    (lambda: ChannelSelect(4, 5, 3, 3), "0 <= start < stop <= beats, not 3 .. 3 of 5"),
])
def test_bad_parameters_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()

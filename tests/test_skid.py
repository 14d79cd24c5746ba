"""The skid buffer in cocotb: every beat through, in order, under random stalls and
backpressure; and, in Amaranth's simulator, one beat per cycle with no stalls."""

import random
from pathlib import Path

import pytest
from amaranth.sim import Simulator

from bitfab.rtl.skid import SkidBuffer
from bitfab.sim.runner import default_simulator, run_vectors

SEED = 20261123
SIM = default_simulator()


@pytest.mark.sim
def test_skid_buffer_cocotb(tmp_path_factory):
    rng = random.Random(SEED)
    beats = [rng.getrandbits(13) for _ in range(3000)]
    run_vectors(SkidBuffer(13), "skid", {"inputs": beats, "outputs": beats},
                tmp_path_factory.getbasetemp() / "sim", SEED, SIM)


@pytest.mark.sim
def test_a_mismatch_names_seed_index_values_and_leaves_waves(tmp_path):
    """The failure path every bench relies on: one golden value off by one."""
    rng = random.Random(SEED)
    beats = [rng.getrandbits(13) for _ in range(200)]
    wrong = beats[:57] + [beats[57] ^ 1] + beats[58:]
    with pytest.raises(RuntimeError) as failure:
        run_vectors(SkidBuffer(13), "skid", {"inputs": beats, "outputs": wrong},
                    tmp_path, SEED, SIM)
    message = str(failure.value)
    assert (f"seed {SEED}: first mismatch at output 57: rtl {beats[57]}, golden "
            f"{wrong[57]}") in message
    dump = message.split("wave dump: ")[1].split(";")[0]
    assert dump.startswith(str(tmp_path)) and Path(dump).stat().st_size > 0


def test_full_rate_and_registered_ready():
    dut = SkidBuffer(8)

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        got = []
        for k in range(10):
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload, k)
            assert ctx.get(dut.i.ready)
            await ctx.tick()
            if ctx.get(dut.o.valid):
                got.append(ctx.get(dut.o.payload))
        assert got == list(range(10))      # one cycle later, one beat per cycle
        # Output stalls: the beat in flight goes to the skid register, then ready drops.
        ctx.set(dut.o.ready, 0)
        ctx.set(dut.i.payload, 10)
        await ctx.tick()
        assert not ctx.get(dut.i.ready) and ctx.get(dut.o.payload) == 9
        ctx.set(dut.i.valid, 0)
        ctx.set(dut.o.ready, 1)
        for want in (9, 10):
            assert ctx.get(dut.o.valid) and ctx.get(dut.o.payload) == want
            await ctx.tick()
        assert not ctx.get(dut.o.valid) and ctx.get(dut.i.ready)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()

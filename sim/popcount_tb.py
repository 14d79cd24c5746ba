"""cocotb bench of `bitfab.rtl.popcount.PopcountTree` against the golden model.

Exhaustive over every input (both operands) when that is at most 4096
vectors, random otherwise; random input stalls and output backpressure
throughout. Parameters come as JSON in BITFAB_PARAMS: width, front, stages,
vectors (random count).
"""

import itertools
import json
import os
import random

import cocotb
import torch
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge, Timer

from bitfab.hls_gen.golden import kernels as golden

PARAMS = json.loads(os.environ.get("BITFAB_PARAMS", "{}"))


def expected_counts(a, b, front, width):
    """The golden kernels' count for each (a, b) pair of bit vectors (lists of ints)."""
    geometry = golden.Geometry("linear")
    counts = []
    for x, w in zip(a, b):
        x = torch.tensor([x], dtype=torch.int64)
        w = torch.ones_like(x) if front == "none" else torch.tensor([w], dtype=torch.int64)
        if front == "xnor":      # agreements = K - disagreements
            counts.append(width - int(golden.xor_popcounts(x, w, geometry)))
        else:                    # one activation plane against one weight base
            counts.append(int(golden.and_popcounts(x.unsqueeze(1), w.unsqueeze(0), geometry)))
    return counts


def _bits(value, width):
    return [(value >> k) & 1 for k in range(width)]


class TB:
    """Clock, reset, a stalling driver, a backpressuring monitor, and a scoreboard."""

    def __init__(self, dut, params):
        self.dut = dut
        self.width = params["width"]
        self.front = params["front"]
        self.rng = random.Random(cocotb.RANDOM_SEED)
        self.idle = params.get("idle", 0.3)          # probability of an input bubble
        self.backpressure = params.get("backpressure", 0.3)

    async def start(self):
        # A tree with no pipeline registers has no clock or reset port: the bench
        # then steps a 10 ns time base of its own, one transfer per step.
        self.clocked = hasattr(self.dut, "clk")
        self.dut.i__valid.value = 0
        self.dut.o__ready.value = 0
        if self.clocked:
            cocotb.start_soon(Clock(self.dut.clk, 10, unit="ns").start())
            self.dut.rst.value = 1
        for _ in range(2):
            await self.tick()
        if self.clocked:
            self.dut.rst.value = 0

    async def tick(self):
        if self.clocked:
            await RisingEdge(self.dut.clk)
        else:
            await Timer(10, unit="ns")

    def vectors(self, count):
        width, two = self.width, self.front != "none"
        space = 1 << (2 * width if two else width)
        if space <= 4096:
            pairs = itertools.product(range(1 << width), repeat=2) if two else \
                ((v, 0) for v in range(space))
            return list(pairs)
        top = (1 << width) - 1
        edges = [(0, 0), (top, top), (top, 0), (0, top)]
        return edges + [(self.rng.getrandbits(width), self.rng.getrandbits(width) if two else 0)
                        for _ in range(count)]

    async def drive(self, vectors):
        for a, b in vectors:
            while self.rng.random() < self.idle:
                self.dut.i__valid.value = 0
                await self.tick()
            self.dut.i__valid.value = 1
            self.dut.i__payload.value = a | (b << self.width) if self.front != "none" else a
            while True:
                await ReadOnly()
                accepted = bool(self.dut.i__ready.value)
                await self.tick()
                if accepted:
                    break
        self.dut.i__valid.value = 0

    async def monitor(self, count):
        got = []
        while len(got) < count:
            self.dut.o__ready.value = int(self.rng.random() >= self.backpressure)
            await ReadOnly()
            if self.dut.o__valid.value and self.dut.o__ready.value:
                value = self.dut.o__payload.value
                # A 1-bit port reads as Logic, a wider one as LogicArray.
                got.append(value.to_unsigned() if hasattr(value, "to_unsigned") else int(value))
            await self.tick()
        return got

    def score(self, vectors, got):
        want = expected_counts([_bits(a, self.width) for a, _ in vectors],
                               [_bits(b, self.width) for _, b in vectors],
                               self.front, self.width)
        for index, (w, g) in enumerate(zip(want, got, strict=True)):
            assert g == w, (f"seed {cocotb.RANDOM_SEED}: first mismatch at vector {index} "
                            f"{vectors[index]}: rtl {g}, golden {w}")


@cocotb.test()
async def popcount_matches_golden(dut):
    tb = TB(dut, PARAMS)
    await tb.start()
    vectors = tb.vectors(PARAMS.get("vectors", 2000))
    monitor = cocotb.start_soon(tb.monitor(len(vectors)))
    await tb.drive(vectors)
    got = await monitor
    tb.score(vectors, got)
    dut._log.info("%d vectors, 0 mismatches (seed %d)", len(vectors), cocotb.RANDOM_SEED)

"""valid/ready stream driver and monitor for cocotb benches, with random stalls.

Ports follow Amaranth's Verilog names: a stream member ``i`` becomes
``i__valid``, ``i__ready`` and ``i__payload`` (the payload's bits flattened).
"""

import logging
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

__all__ = ["value_of", "StreamSource", "StreamSink", "exchange", "exchange_streams",
           "StreamTB"]


def value_of(handle):
    """A port's unsigned value (a 1-bit port reads as Logic, a wider one as LogicArray)."""
    value = handle.value
    return value.to_unsigned() if hasattr(value, "to_unsigned") else int(value)


class _StreamPort:
    """The ``<name>__valid``, ``__ready`` and ``__payload`` handles of one stream."""

    def __init__(self, dut, name, rng):
        self.clk = dut.clk
        self.valid = getattr(dut, f"{name}__valid")
        self.ready = getattr(dut, f"{name}__ready")
        self.payload = getattr(dut, f"{name}__payload")
        self.rng = rng


class StreamSource(_StreamPort):
    """Drives ``<name>__valid/payload`` from a list (through `exchange`), idling with
    probability `idle`."""

    def __init__(self, dut, name, rng, idle=0.0):
        super().__init__(dut, name, rng)
        self.idle = idle
        self.valid.value = 0


class StreamSink(_StreamPort):
    """Takes ``<name>__payload`` transfers (through `exchange`), holding ``ready`` low
    with probability `backpressure`."""

    def __init__(self, dut, name, rng, backpressure=0.0):
        super().__init__(dut, name, rng)
        self.backpressure = backpressure
        self.ready.value = 0


# Cycles without a transfer on either stream after which `exchange` gives up: a design
# that loses a beat then fails with its outputs short instead of hanging the suite.
STALL_LIMIT = 100_000


async def exchange(source, payloads, sink, count, taps=(), cycles=None,
                   stall_limit=STALL_LIMIT):
    """Send `payloads` through `source` while taking `count` beats from `sink` (either
    may be None) and recording every transfer on `taps` ((valid, payload, list)
    handles): `exchange_streams` with one stream each way.

    Returns the sink's beats; `cycles` (a list) gets the cycle of each.
    """
    got = await exchange_streams([(source, payloads)] if source is not None else [],
                                 [(sink, count)] if sink is not None else [], taps, cycles,
                                 stall_limit)
    return got[0] if sink is not None else []


async def exchange_streams(sources, sinks, taps=(), cycles=None, stall_limit=STALL_LIMIT):
    """Send each ``(source, payloads)`` of `sources` while taking ``count`` beats from each
    ``(sink, count)`` of `sinks`, recording every transfer on `taps`, all in one loop:
    two triggers a cycle however many streams there are, since cocotb's cost is per
    trigger. Stalls and backpressure as each source and sink is configured; a beat,
    once offered, is held until taken. Stops early after `stall_limit` cycles in
    which no stream moved.

    Returns each sink's beats; `cycles` (a list) gets the cycle of each beat of the
    first sink.
    """
    sent = [0] * len(sources)
    offered = [False] * len(sources)
    got = [[] for _ in sinks]
    cycle, quiet = 0, 0
    clk = (sources[0][0] if sources else sinks[0][0]).clk

    def busy():
        return (any(n < len(payloads) for n, (_, payloads) in zip(sent, sources))
                or any(len(beats) < count for beats, (_, count) in zip(got, sinks)))

    while busy():
        quiet += 1
        if quiet > stall_limit:
            logging.getLogger("bitfab.sim").warning(
                "no transfer for %d cycles: %s sent of %s, %s taken of %s", stall_limit,
                sent, [len(p) for _, p in sources], [len(g) for g in got],
                [c for _, c in sinks])
            break
        for k, (source, payloads) in enumerate(sources):
            if offered[k]:
                continue
            if sent[k] < len(payloads) and not (source.idle and
                                                source.rng.random() < source.idle):
                source.valid.value = 1
                source.payload.value = payloads[sent[k]]
                offered[k] = True
            else:
                source.valid.value = 0
        ready = []
        for sink, _ in sinks:
            ready.append(not (sink.backpressure and sink.rng.random() < sink.backpressure))
            sink.ready.value = int(ready[-1])
        await ReadOnly()
        for k, (source, _) in enumerate(sources):
            if offered[k] and source.ready.value:
                sent[k], offered[k], quiet = sent[k] + 1, False, 0
        for k, (sink, _) in enumerate(sinks):
            if ready[k] and sink.valid.value:
                quiet = 0
                got[k].append(value_of(sink.payload))
                if cycles is not None and k == 0:
                    cycles.append(cycle)
        for valid, payload, seen in taps:
            if valid.value:
                seen.append(value_of(payload))
        await RisingEdge(clk)
        cycle += 1
    for source, _ in sources:
        source.valid.value = 0
    for sink, _ in sinks:
        sink.ready.value = 0
    return got


class StreamTB:
    """What every stream bench's ``TB`` starts from (as cocotb's matrix_multiplier
    example): the seed and its random source, a stalling driver on ``i``, a
    backpressuring monitor on ``o``, the clock and the reset.

    `params` is the bench's BITFAB_PARAMS: ``seed``, and ``idle`` / ``backpressure``
    (default `idle` / `backpressure` here) the probabilities of an input bubble and
    of ``o`` not ready in a cycle.
    """

    def __init__(self, dut, params, idle=0.0, backpressure=0.0):
        self.dut, self.seed = dut, params["seed"]
        self.rng = random.Random(self.seed)
        self.idle = params.get("idle", idle)
        self.backpressure = params.get("backpressure", backpressure)

    def driver(self, name="i"):
        return StreamSource(self.dut, name, self.rng, self.idle)

    def monitor(self, name="o"):
        return StreamSink(self.dut, name, self.rng, self.backpressure)

    async def reset(self, cycles=2):
        """Start the 10 ns clock and hold reset for `cycles` cycles."""
        cocotb.start_soon(Clock(self.dut.clk, 10, unit="ns").start())
        self.dut.rst.value = 1
        for _ in range(cycles):
            await RisingEdge(self.dut.clk)
        self.dut.rst.value = 0

"""valid/ready stream driver and monitor for cocotb benches, with random stalls.

Ports follow Amaranth's Verilog names: a stream member ``i`` becomes
``i__valid``, ``i__ready`` and ``i__payload`` (the payload's bits flattened).
"""

import logging
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

__all__ = ["value_of", "StreamSource", "StreamSink", "exchange", "StreamTB"]


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
    handles), all in one loop: two triggers a cycle however many streams there are,
    since cocotb's cost is per trigger. Stalls and backpressure as the source and
    sink are configured; a beat, once offered, is held until taken. Stops early
    after `stall_limit` cycles in which neither stream moved.

    Returns the sink's beats; `cycles` (a list) gets the cycle of each.
    """
    sent, got, offered, cycle, quiet = 0, [], False, 0, 0
    clk = (source or sink).clk
    while (source is not None and sent < len(payloads)) or (sink is not None and len(got) < count):
        quiet += 1
        if quiet > stall_limit:
            logging.getLogger("bitfab.sim").warning(
                "no transfer for %d cycles: %d of %d sent, %d of %d taken",
                stall_limit, sent, len(payloads), len(got), count)
            break
        if source is not None and not offered:
            if sent < len(payloads) and not (source.idle and source.rng.random() < source.idle):
                source.valid.value = 1
                source.payload.value = payloads[sent]
                offered = True
            else:
                source.valid.value = 0
        ready = sink is not None and not (sink.backpressure and
                                          sink.rng.random() < sink.backpressure)
        if sink is not None:
            sink.ready.value = int(ready)
        await ReadOnly()
        if offered and source.ready.value:
            sent, offered, quiet = sent + 1, False, 0
        if ready and sink.valid.value:
            quiet = 0
            got.append(value_of(sink.payload))
            if cycles is not None:
                cycles.append(cycle)
        for valid, payload, seen in taps:
            if valid.value:
                seen.append(value_of(payload))
        await RisingEdge(clk)
        cycle += 1
    if source is not None:
        source.valid.value = 0
    if sink is not None:
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

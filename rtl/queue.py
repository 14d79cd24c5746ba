"""A stream FIFO: the buffer on a path into a join."""

from amaranth.hdl import Module, Shape, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

__all__ = ["StreamQueue"]


class StreamQueue(wiring.Component):
    """Up to `depth` beats of a stream, in order.

    Parameters
    ----------
    shape : shape-like
        The payload.
    depth : int
        Beats held, at least 1 (the compiler sizes it from the static schedule).

    Members
    -------
    i : In(stream.Signature(shape))
    o : Out(stream.Signature(shape))

    Raises
    ------
    ValueError
        `depth` not a positive integer.

    Throughput 1 beat per cycle at every depth. Up to `REGISTERS` beats, a chain of
    `depth` registers (latency `depth`); deeper, a FIFO of ``depth - 1`` beats
    (`amaranth.lib.fifo.SyncFIFOBuffered`, in block RAM when deep; latency 2) and an
    output register in the fabric that holds the last beat (latency 3), so that a deep
    queue's block RAM output does not feed the join's adder in the same cycle (the
    Bi-Real digits network's critical path at 94.7 MHz). (`SyncFIFOBuffered` of
    fewer than 3 beats passes a beat every other cycle.)
    """

    REGISTERS = 3

    def __init__(self, shape, depth):
        if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
            raise ValueError(f"a queue holds at least 1 beat, not {depth!r}")
        self.shape, self.depth = shape, depth
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    @property
    def latency(self):
        return self.depth if self.depth <= self.REGISTERS else 3

    def elaborate(self, platform):
        m = Module()
        width = Shape.cast(self.shape).width
        if self.depth > self.REGISTERS:
            m.submodules.fifo = fifo = SyncFIFOBuffered(width=width, depth=self.depth - 1)
            m.d.comb += [fifo.w_data.eq(self.i.payload), fifo.w_en.eq(self.i.valid),
                         self.i.ready.eq(fifo.w_rdy)]
            source = (fifo.r_rdy, fifo.r_data, fifo.r_en)
            stages = 1
        else:
            source = (self.i.valid, self.i.payload, self.i.ready)
            stages = self.depth
        for k in range(stages):
            last = k == stages - 1
            valid = self.o.valid if last else Signal(name=f"valid{k}")
            payload = self.o.payload if last else Signal(width, name=f"payload{k}")
            ready = self.o.ready if last else Signal(name=f"ready{k}")
            free = ~valid | ready
            m.d.comb += source[2].eq(free)
            with m.If(source[0] & free):
                m.d.sync += [valid.eq(1), payload.eq(source[1])]
            with m.Elif(ready):
                m.d.sync += valid.eq(0)
            source = (valid, payload, ready)
        return m

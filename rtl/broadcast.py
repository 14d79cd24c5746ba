"""A fork: one stream to several consumers, each taking every beat (FINN's
DuplicateStreams)."""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Broadcast"]


class Broadcast(wiring.Component):
    """Every beat of ``i`` to each of ``o0`` .. ``o<outputs-1>``, in order; a consumer
    that is not ready holds back only the beats after the one it still owes.

    Each output has its own registered valid: a beat taken on ``i`` is offered to
    every output from the next cycle, and each output drops it once taken. ``i`` is
    ready when every output has taken its beat or takes it this cycle, so with all
    consumers ready it passes one beat a cycle.

    Parameters
    ----------
    shape : shape-like
        The payload.
    outputs : int
        Consumers, at least 2.

    Members
    -------
    i : In(stream.Signature(shape))
    o<k> : Out(stream.Signature(shape)), k = 0 .. outputs - 1

    Raises
    ------
    ValueError
        `outputs` not an integer of at least 2.

    Latency 1 cycle; throughput 1 beat per cycle while every consumer is ready.
    """

    def __init__(self, shape, outputs=2):
        if not isinstance(outputs, int) or isinstance(outputs, bool) or outputs < 2:
            raise ValueError(f"a broadcast feeds at least 2 outputs, not {outputs!r}")
        self.shape, self.outputs = shape, outputs
        members = {"i": In(stream.Signature(shape))}
        members.update({f"o{k}": Out(stream.Signature(shape)) for k in range(outputs)})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        ports = [getattr(self, f"o{k}") for k in range(self.outputs)]
        owed = Signal(self.outputs)           # outputs still to take the held beat
        held = Signal.like(self.i.payload)
        done = Cat(~owed[k] | port.ready for k, port in enumerate(ports))
        m.d.comb += self.i.ready.eq(done.all())
        for k, port in enumerate(ports):
            m.d.comb += [port.valid.eq(owed[k]), port.payload.eq(held)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [held.eq(self.i.payload), owed.eq(-1)]
        with m.Else():
            m.d.sync += owed.eq(owed & ~Cat(port.ready for port in ports))
        return m

"""A slice of a stream's channels: of each position's beats, a run passes and the rest
are dropped (the golden model's `Slice`, REAF's input channel groups)."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["ChannelSelect"]


class ChannelSelect(wiring.Component):
    """Of each position's `beats` beats of ``i``, beats `start` .. `stop` - 1 pass to
    ``o``; the others are taken and dropped.

    Parameters
    ----------
    shape : shape-like
        The payload of a beat.
    beats : int
        Beats per position of the input.
    start, stop : int
        The beats that pass, ``0 <= start < stop <= beats``.

    Members
    -------
    i : In(stream.Signature(shape))
    o : Out(stream.Signature(shape))

    Raises
    ------
    ValueError
        Beats that are not integers with ``0 <= start < stop <= beats``.

    Latency 1 cycle (a registered output); throughput 1 beat per cycle.
    """

    def __init__(self, shape, beats, start, stop):
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (beats, start, stop)) \
                or not 0 <= start < stop <= beats:
            raise ValueError(f"a select passes beats start .. stop - 1 of a position's beats, "
                             f"0 <= start < stop <= beats, not {start!r} .. {stop!r} of "
                             f"{beats!r}")
        self.shape, self.beats, self.start, self.stop = shape, beats, start, stop
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    def elaborate(self, platform):
        m = Module()
        count = Signal(range(self.beats))
        keep = (count >= self.start) & (count < self.stop)
        free = ~self.o.valid | self.o.ready
        m.d.comb += self.i.ready.eq(~keep | free)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += count.eq(Mux(count == self.beats - 1, 0, count + 1))
        with m.If(self.i.valid & keep & free):
            m.d.sync += [self.o.valid.eq(1), self.o.payload.eq(self.i.payload)]
        with m.Elif(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        return m

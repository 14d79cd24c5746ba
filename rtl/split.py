"""A stream's channels split, position by position, among several streams: the channel
groups of a grouped convolution, each to its own unit (the inverse of `ChannelConcat`)."""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .concat import beat_turns

__all__ = ["ChannelSplit"]


class ChannelSplit(wiring.Component):
    """For each position, the first `beats[0]` beats of ``i`` to ``o0``, the next
    `beats[1]` to ``o1``, and so on: each output a slice of the channels, in order.

    Parameters
    ----------
    shape : shape-like
        The payload of a beat.
    beats : tuple of int
        Beats per position of each output.

    Members
    -------
    i : In(stream.Signature(shape))
    o<k> : Out(stream.Signature(shape)), k = 0 .. len(beats) - 1

    Raises
    ------
    ValueError
        Fewer than two outputs, or a beat count that is not a positive integer.

    Latency 1 cycle (registered outputs); throughput 1 beat per cycle. The input
    waits while the output its beat goes to holds one.
    """

    def __init__(self, shape, beats):
        beats = tuple(beats) if isinstance(beats, (tuple, list)) else beats
        if not isinstance(beats, tuple) or len(beats) < 2 or not all(
                isinstance(b, int) and not isinstance(b, bool) and b >= 1 for b in beats):
            raise ValueError(f"a split takes beats per position of at least 2 outputs, each a "
                             f"positive integer, not {beats!r}")
        self.shape, self.beats = shape, beats
        members = {"i": In(stream.Signature(shape))}
        members.update({f"o{k}": Out(stream.Signature(shape)) for k in range(len(beats))})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        outputs = [getattr(self, f"o{k}") for k in range(len(self.beats))]
        take = Signal()
        target = beat_turns(m, self.beats, take)   # the output this beat goes to
        ready = 0
        for k, port in enumerate(outputs):
            here = target == k
            free = ~port.valid | port.ready
            ready = ready | (here & free)
            with m.If(self.i.valid & here & free):
                m.d.sync += [port.valid.eq(1), port.payload.eq(self.i.payload)]
            with m.Elif(port.ready):
                m.d.sync += port.valid.eq(0)
        m.d.comb += [self.i.ready.eq(ready), take.eq(self.i.valid & ready)]
        return m

"""A join that concatenates the channels of streams, position by position (FINN's
StreamingConcat)."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["ChannelConcat", "beat_turns"]


def beat_turns(m, beats, step):
    """Which of several streams a position's beat belongs to, when each takes its
    `beats[k]` beats of a position in turn: the index, advanced a beat at each `step`
    (a beat transferred), back to the first stream after the last's."""
    index = Signal(range(len(beats)))
    count = Signal(range(max(beats)))
    last = Signal()
    for k, n in enumerate(beats):
        with m.If(index == k):
            m.d.comb += last.eq(count == n - 1)
    with m.If(step):
        with m.If(last):
            m.d.sync += [count.eq(0), index.eq(Mux(index == len(beats) - 1, 0, index + 1))]
        with m.Else():
            m.d.sync += count.eq(count + 1)
    return index


class ChannelConcat(wiring.Component):
    """For each position, `beats[0]` beats of ``i0``, then `beats[1]` of ``i1``, and so on:
    the channels of every input, in input order, as one stream of the same payload.

    The streams carry a position's channels in beats (a producer's PE channels a
    beat), positions one after another, as every unit's output does; all inputs
    share the beat's payload shape.

    Parameters
    ----------
    shape : shape-like
        The payload of a beat.
    beats : tuple of int
        Beats per position of each input (its channels / its beat's channels).

    Members
    -------
    i<k> : In(stream.Signature(shape)), k = 0 .. len(beats) - 1
    o : Out(stream.Signature(shape))

    Raises
    ------
    ValueError
        Fewer than two inputs, or a beat count that is not a positive integer.

    Latency 1 cycle (a registered output); throughput 1 beat per cycle. An input
    waits while another's channels of the same position pass.
    """

    def __init__(self, shape, beats):
        beats = tuple(beats) if isinstance(beats, (tuple, list)) else beats
        if not isinstance(beats, tuple) or len(beats) < 2 or not all(
                isinstance(b, int) and not isinstance(b, bool) and b >= 1 for b in beats):
            raise ValueError(f"a concatenation takes beats per position of at least 2 inputs, "
                             f"each a positive integer, not {beats!r}")
        self.shape, self.beats = shape, beats
        members = {f"i{k}": In(stream.Signature(shape)) for k in range(len(beats))}
        members["o"] = Out(stream.Signature(shape))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        inputs = [getattr(self, f"i{k}") for k in range(len(self.beats))]
        take = Signal()
        source = beat_turns(m, self.beats, take)   # the input whose channels pass now
        free = ~self.o.valid | self.o.ready
        valid, payload = 0, inputs[0].payload
        for k, port in enumerate(inputs):
            here = source == k
            m.d.comb += port.ready.eq(here & free)
            valid = valid | (here & port.valid)
            payload = Mux(here, port.payload, payload)
        m.d.comb += take.eq(valid & free)
        with m.If(take):
            m.d.sync += [self.o.valid.eq(1), self.o.payload.eq(payload)]
        with m.Elif(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        return m

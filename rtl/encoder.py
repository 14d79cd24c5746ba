"""Activation encoder: integer thresholds to the next layer's one-hot codes."""

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["ActivationEncoder", "threshold_layout"]


def threshold_layout(n, threshold_bits):
    """One channel's thresholds T_1..T_n and its comparison direction."""
    return data.StructLayout({
        "thresholds": data.ArrayLayout(signed(threshold_bits), n),
        "descending": unsigned(1),
    })


class ActivationEncoder(wiring.Component):
    """N comparators per channel against integer thresholds (batch norm and the next
    quantizer's endpoints folded in by the freezer).

    ``code = #{j : s * acc >= T_j}`` with ``s = -1`` where the channel is
    ``descending``; the output is the code in one-hot planes, bit ``j`` set when
    ``code == j + 1`` (PA bases V_j, eq. 3.18; code 0 sets none). With n = 1 the
    single bit is a sign code (1 for +1).

    Parameters
    ----------
    channels : int
        Channels per beat (the MVAU's PE count).
    n : int
        Thresholds per channel, 1..16.
    acc_bits, threshold_bits : int
        Signed widths of the accumulators and the thresholds.

    Members
    -------
    i : In(stream.Signature(StructLayout({"acc", "channel"})))
        ``acc``: ``channels`` signed accumulators; ``channel``: their
        `threshold_layout` entries.
    o : Out(stream.Signature(ArrayLayout(unsigned(n), channels)))
        One-hot codes.

    Latency two cycles; throughput one beat per cycle.
    """

    def __init__(self, *, channels, n, acc_bits, threshold_bits):
        for name, value in (("channels", channels), ("acc_bits", acc_bits),
                            ("threshold_bits", threshold_bits)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if not isinstance(n, int) or not 1 <= n <= 16:
            raise ValueError(f"encoder n must be an integer in 1..16, not {n!r}")
        self.channels, self.n = channels, n
        self.acc_bits, self.threshold_bits = acc_bits, threshold_bits
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({
                "acc": data.ArrayLayout(signed(acc_bits), channels),
                "channel": data.ArrayLayout(threshold_layout(n, threshold_bits), channels),
            }))),
            "o": Out(stream.Signature(data.ArrayLayout(unsigned(self.n), channels))),
        })

    def elaborate(self, platform):
        m = Module()
        advance = Signal()
        m.d.comb += [advance.eq(~self.o.valid | self.o.ready), self.i.ready.eq(advance)]
        # Stage 1: the comparisons; stage 2: count them and encode one-hot.
        ge = Signal(data.ArrayLayout(unsigned(self.n), self.channels))
        compared = Signal()
        for c in range(self.channels):
            acc, channel = self.i.payload.acc[c], self.i.payload.channel[c]
            signed_acc = Mux(channel.descending, -acc, acc)
            with m.If(advance):
                m.d.sync += ge[c].eq(Cat(signed_acc >= channel.thresholds[j]
                                         for j in range(self.n)))
            # Count, not a thermometer: the result is exact even for unsorted thresholds.
            code = sum(ge[c][j] for j in range(self.n))
            with m.If(advance):
                m.d.sync += self.o.payload[c].eq(Cat(code == j + 1 for j in range(self.n)))
        with m.If(advance):
            m.d.sync += [compared.eq(self.i.valid), self.o.valid.eq(compared)]
        return m

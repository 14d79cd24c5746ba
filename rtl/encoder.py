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

    Latency `LATENCY` cycles; throughput one beat per cycle.
    """

    # Stage 1 registers s * acc, stage 2 the comparisons, stage 3 the one-hot code.
    # Negating in the comparison's cycle put two carry chains (the negation and the
    # comparison's subtraction) in series: the critical path of the whole PA MLP
    # on ECP5 (10.6 ns, 7 of it routing between the chains).
    LATENCY = 3

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
        # -acc of the most negative acc needs one more bit.
        oriented = Signal(data.ArrayLayout(signed(self.acc_bits + 1), self.channels))
        thresholds = Signal(data.ArrayLayout(data.ArrayLayout(signed(self.threshold_bits),
                                                              self.n), self.channels))
        ge = Signal(data.ArrayLayout(unsigned(self.n), self.channels))
        for c in range(self.channels):
            acc, channel = self.i.payload.acc[c], self.i.payload.channel[c]
            with m.If(advance):
                m.d.sync += [oriented[c].eq(Mux(channel.descending, -acc, acc)),
                             thresholds[c].eq(channel.thresholds)]
                m.d.sync += ge[c].eq(Cat(oriented[c] >= thresholds[c][j]
                                         for j in range(self.n)))
            # Count, not a thermometer: the result is exact even for unsorted thresholds.
            code = sum(ge[c][j] for j in range(self.n))
            with m.If(advance):
                m.d.sync += self.o.payload[c].eq(Cat(code == j + 1 for j in range(self.n)))
        oriented_valid, compared = Signal(), Signal()
        with m.If(advance):
            m.d.sync += [oriented_valid.eq(self.i.valid), compared.eq(oriented_valid),
                         self.o.valid.eq(compared)]
        return m

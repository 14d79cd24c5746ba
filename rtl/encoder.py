"""Activation encoder: integer thresholds to the next layer's one-hot codes."""

from amaranth.hdl import Cat, Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["ActivationEncoder", "orient_thresholds", "threshold_layout"]


def threshold_layout(n, threshold_bits):
    """One channel's thresholds as the encoder stores them, `orient_thresholds` of
    T_1..T_n (`threshold_bits` each: one bit more), and its comparison direction."""
    return data.StructLayout({
        "thresholds": data.ArrayLayout(signed(threshold_bits + 1), n),
        "descending": unsigned(1),
    })


def orient_thresholds(thresholds, descending):
    """The thresholds T_j of a channel as `ActivationEncoder` takes them: T_j itself,
    or 1 - T_j for a `descending` channel, where -acc >= T_j is not(acc >= 1 - T_j).
    So the encoder compares acc itself and never negates it."""
    return [1 - t if descending else t for t in thresholds]


class ActivationEncoder(wiring.Component):
    """N comparators per channel against integer thresholds (batch norm and the next
    quantizer's endpoints folded in by the freezer).

    ``code = #{j : s * acc >= T_j}`` with ``s = -1`` where the channel is
    ``descending``; the output is the code in one-hot planes, bit ``j`` set when
    ``code == j + 1`` (PA bases V_j, eq. 3.18; code 0 sets none). With n = 1 the
    single bit is a sign code (1 for +1). The thresholds come oriented
    (`orient_thresholds`: 1 - T_j for a descending channel), so each comparison is
    ``acc >= T'_j``, inverted for a descending channel: no negation of acc.

    Parameters
    ----------
    channels : int
        Channels per beat (the MVAU's PE count).
    n : int
        Thresholds per channel, 1..16.
    acc_bits, threshold_bits : int
        Signed widths of the accumulators and the thresholds T_j (the oriented
        thresholds take one bit more: `threshold_layout`).

    Members
    -------
    i : In(stream.Signature(StructLayout({"acc", "channel"})))
        ``acc``: ``channels`` signed accumulators; ``channel``: their
        `threshold_layout` entries.
    o : Out(stream.Signature(ArrayLayout(unsigned(n), channels)))
        One-hot codes.

    Latency `LATENCY` cycles; throughput one beat per cycle.
    """

    # Stage 1 registers acc and the thresholds, stage 2 the comparisons, stage 3 the
    # one-hot code. Negating acc for a descending channel took a carry chain and a
    # multiplexer per channel (about 2 LUT4 per accumulator bit: CNV-W1A1 went from
    # 21,689 to 18,852 LUT4 by yosys without them), and in the comparison's cycle it
    # was the PA MLP's critical path on ECP5 (two carry chains in series); the
    # oriented thresholds need neither.
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
        accs = Signal.like(self.i.payload.acc)
        thresholds = Signal.like(self.i.payload.channel)
        ge = Signal(data.ArrayLayout(unsigned(self.n), self.channels))
        for c in range(self.channels):
            with m.If(advance):
                m.d.sync += [accs[c].eq(self.i.payload.acc[c]),
                             thresholds[c].eq(self.i.payload.channel[c])]
                channel = thresholds[c]
                # -acc >= T_j is not(acc >= 1 - T_j): the stored T'_j is 1 - T_j.
                m.d.sync += ge[c].eq(Cat((accs[c] >= channel.thresholds[j]) ^ channel.descending
                                         for j in range(self.n)))
            # Count, not a thermometer: the result is exact even for unsorted thresholds.
            code = sum(ge[c][j] for j in range(self.n))
            with m.If(advance):
                m.d.sync += self.o.payload[c].eq(Cat(code == j + 1 for j in range(self.n)))
        registered_valid, compared = Signal(), Signal()
        with m.If(advance):
            m.d.sync += [registered_valid.eq(self.i.valid), compared.eq(registered_valid),
                         self.o.valid.eq(compared)]
        return m

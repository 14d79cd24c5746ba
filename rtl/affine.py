"""A per-channel fixed-point scale and offset on a stream: a layer's value before its
quantizer, where a join needs the value (golden `ir.Affine`)."""

from dataclasses import dataclass

from amaranth.hdl import Array, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring

from .channel_store import ChannelStoreConfig, channel_rows
from .loader import engine_members

__all__ = ["AffineConfig", "ChannelAffine"]


@dataclass(frozen=True)
class AffineConfig(ChannelStoreConfig):
    """``y = ((x * mul[c]) >> shift) + add[c]`` on `lanes` channels a beat.

    Parameters
    ----------
    lanes : int
        Channels per beat (the producer's PE).
    groups : int
        Beats per position: channel c is lane ``c % lanes`` of group ``c // lanes``.
    in_bits, mul_bits, out_bits : int
        Signed widths of x, of mul, and of y and add.
    shift : int
        Right shift of the product (the floor), at least 0.
    word_bits : int
        Width of the load stream.
    multipliers : int or None
        Multipliers the unit has, dividing `lanes` (None: one a lane): a beat then
        takes ``lanes / multipliers`` cycles (`steps`), for a stream slower than a
        beat a cycle.
    """

    STORE = "scales"   # the store's name in `pack`'s rows

    lanes: int
    groups: int
    in_bits: int
    mul_bits: int
    out_bits: int
    shift: int = 0
    word_bits: int = 32
    multipliers: int | None = None

    def __post_init__(self):
        if self.multipliers is not None and (
                not isinstance(self.multipliers, int) or isinstance(self.multipliers, bool)
                or self.multipliers < 1 or self.lanes % self.multipliers):
            raise ValueError(f"affine multipliers must divide its {self.lanes} lanes, not "
                             f"{self.multipliers!r}")
        for name in ("lanes", "groups", "in_bits", "mul_bits", "out_bits", "word_bits"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"affine {name} must be a positive integer, not {value!r}")
        if not isinstance(self.shift, int) or isinstance(self.shift, bool) or self.shift < 0:
            raise ValueError(f"affine shift must be a non-negative integer, not "
                             f"{self.shift!r}")

    @property
    def steps(self):
        """Cycles a beat takes: the lanes' products, `multipliers` at a time."""
        return self.lanes // (self.multipliers or self.lanes)

    @property
    def latency(self):
        """Cycles from a beat in to its values out: its products, then the sums."""
        return self.steps + 1

    @property
    def row_layout(self):
        return data.ArrayLayout(data.StructLayout({"mul": signed(self.mul_bits),
                                                   "add": signed(self.out_bits)}), self.lanes)

    @property
    def out_layout(self):
        return data.ArrayLayout(signed(self.out_bits), self.lanes)


class ChannelAffine(wiring.Component):
    """The per-channel affine map of `AffineConfig`, its parameters loaded at run time.

    Members
    -------
    i : In(stream.Signature(config.in_layout))
    o : Out(stream.Signature(config.out_layout))
    load : In(stream.Signature(unsigned(config.word_bits)))
        ``groups`` rows (`AffineConfig.pack`).
    load_restart : In(1)
    loaded : Out(1)
        Inputs are taken only once loaded.

    Latency `AffineConfig.latency` cycles: the products (and the offsets read with
    them) are registered, `multipliers` of them a cycle, then the shifted sums; the
    scales come from a register that reads the next beat's row ahead, so the
    store's read, the multiplier and the adder each have a cycle of their own (the
    Bi-Real digits network's critical path at 99 MHz ran from the read through the
    operands' selection into the multiplier). Throughput a beat per
    `AffineConfig.steps` cycles.
    """

    def __init__(self, config):
        if not isinstance(config, AffineConfig):
            raise TypeError(f"config must be an AffineConfig, not {config!r}")
        self.config = config
        super().__init__(engine_members(config.in_layout, config.out_layout,
                                        unsigned(config.word_bits)))

    def elaborate(self, platform):
        cfg = self.config
        m = Module()
        take, advance, work = Signal(), Signal(), Signal()
        staged = Signal()                              # the products' register is full
        products = [Signal(signed(cfg.in_bits + cfg.mul_bits), name=f"product{lane}")
                    for lane in range(cfg.lanes)]
        offsets = [Signal(signed(cfg.out_bits), name=f"offset{lane}")
                   for lane in range(cfg.lanes)]
        step = Signal(range(cfg.steps))
        last_step = step == cfg.steps - 1
        settled = Signal()                   # loaded a cycle ago: the row register holds
        m.d.sync += settled.eq(self.loaded)  # the store's rows (`channel_rows`)
        ready = self.loaded & settled & (~staged | advance)
        m.d.comb += [advance.eq(staged & (~self.o.valid | self.o.ready)),
                     work.eq(self.i.valid & ready),
                     self.i.ready.eq(ready & last_step),
                     take.eq(self.i.valid & self.i.ready)]
        row = channel_rows(m, self, cfg.row_layout, cfg.groups, cfg.word_bits, take,
                           registered=True)
        width = cfg.multipliers or cfg.lanes
        with m.If(work):
            m.d.sync += step.eq(Mux(last_step, 0, step + 1))
            for lane in range(cfg.lanes):
                m.d.sync += offsets[lane].eq(row[lane].add)
            # Multiplier j takes lane step * width + j: one product each per cycle.
            for j in range(width):
                lanes = range(j, cfg.lanes, width)
                x = Array(self.i.payload[lane] for lane in lanes)[step]
                mul = Array(row[lane].mul for lane in lanes)[step]
                product = Signal.like(products[j], name=f"multiplier{j}")
                m.d.comb += product.eq(x * mul)
                with m.Switch(step):
                    for k, lane in enumerate(lanes):
                        with m.Case(k):
                            m.d.sync += products[lane].eq(product)
        with m.If(take):
            m.d.sync += staged.eq(1)
        with m.Elif(advance):
            m.d.sync += staged.eq(0)
        with m.If(advance):
            m.d.sync += self.o.valid.eq(1)
            for lane in range(cfg.lanes):
                m.d.sync += self.o.payload[lane].eq((products[lane] >> cfg.shift)
                                                    + offsets[lane])
        with m.Elif(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        return m

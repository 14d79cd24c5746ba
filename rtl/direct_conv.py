"""Direct integer convolution: k x k dot products with multipliers, the baseline the DFNT
engine is measured against (and the engine for layers too small for the DFNT to pay)."""

import math
from dataclasses import dataclass

from amaranth.hdl import Array, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, wiring

from .loader import engine_members, load_rows

__all__ = ["DirectConvConfig", "DirectConvEngine"]


@dataclass(frozen=True)
class DirectConvConfig:
    """`outputs` neighbouring outputs of a row per input patch, each a k x k dot product
    spread over `folds` cycles (ceil(k^2 / folds) multipliers per output)."""

    in_channels: int
    out_channels: int
    kernel: int
    outputs: int = 1
    folds: int = 1
    x_bits: int = 8
    w_bits: int = 8

    def __post_init__(self):
        for name in ("in_channels", "out_channels", "kernel", "outputs", "folds", "x_bits",
                     "w_bits"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"direct convolution {name} must be a positive integer, "
                                 f"not {value!r}")
        if self.folds > self.kernel ** 2:
            raise ValueError(f"direct convolution folds must be at most kernel^2 = "
                             f"{self.kernel ** 2}, not {self.folds}")

    @property
    def terms(self):
        """Products per fold and output: the multipliers each output has."""
        return math.ceil(self.kernel ** 2 / self.folds)

    @property
    def multipliers(self):
        return self.outputs * self.terms

    @property
    def patch_cols(self):
        return self.kernel + self.outputs - 1

    @property
    def acc_bits(self):
        peak = self.in_channels * self.kernel ** 2 << (self.x_bits - 1) + (self.w_bits - 1)
        return peak.bit_length() + 1

    @property
    def in_layout(self):
        """A k x (k + outputs - 1) patch of one input channel, row-major."""
        return data.ArrayLayout(signed(self.x_bits), self.kernel * self.patch_cols)

    @property
    def out_layout(self):
        return data.ArrayLayout(signed(self.acc_bits), self.outputs)

    @property
    def word_bits(self):
        return self.w_bits

    @property
    def load_words(self):
        """Weights (o, c, fold, term): w[o, c] row-major, zero past k^2."""
        return self.out_channels * self.in_channels * self.folds * self.terms


class DirectConvEngine(wiring.Component):
    """`outputs` convolution outputs from each input patch, accumulated over input channels.

    Members
    -------
    i : In(stream.Signature(config.in_layout))
        Per output position group: the input channels' patches in order.
    o : Out(stream.Signature(config.out_layout))
        Per group, each output channel's `outputs` values, in channel order.
    load : In(stream.Signature(signed(w_bits)))
        `config.load_words` weights, see `DirectConvConfig.load_words`.
    load_restart : In(1)
    loaded : Out(1)

    `multipliers` multipliers; each patch is used for out_channels x folds cycles.
    Latency 2 cycles; throughput `outputs` per (in_channels x out_channels x folds) cycles.
    """

    def __init__(self, config):
        if not isinstance(config, DirectConvConfig):
            raise TypeError(f"config must be a DirectConvConfig, not {config!r}")
        self.config = config
        super().__init__(engine_members(config.in_layout, config.out_layout,
                                        signed(config.w_bits)))

    def elaborate(self, platform):
        cfg = self.config
        k, terms = cfg.kernel, cfg.terms
        m = Module()
        weights = m.submodules.weights = memory.Memory(
            shape=unsigned(terms * cfg.w_bits),
            depth=cfg.out_channels * cfg.in_channels * cfg.folds, init=[])

        load_rows(m, self, weights, terms, cfg.w_bits)

        # Issue: each patch for every (output channel, fold).
        patch = Signal(cfg.in_layout)
        have = Signal()
        out, fold, channel = (Signal(range(cfg.out_channels)), Signal(range(cfg.folds)),
                              Signal(range(cfg.in_channels)))
        issued = Signal()
        issued_first, issued_last, issued_out = Signal(), Signal(), Signal(range(cfg.out_channels))
        issued_fold = Signal(range(cfg.folds))
        advance = ~self.o.valid | self.o.ready
        fire = have & advance
        last_use = (fold == cfg.folds - 1) & (out == cfg.out_channels - 1)
        m.d.comb += self.i.ready.eq(self.loaded & (~have | (fire & last_use)))
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [patch.eq(self.i.payload), have.eq(1)]
        with m.Elif(fire & last_use):
            m.d.sync += have.eq(0)
        read = weights.read_port()
        m.d.comb += [read.addr.eq((out * cfg.in_channels + channel) * cfg.folds + fold),
                     read.en.eq(advance)]
        with m.If(advance):
            m.d.sync += issued.eq(fire)
        with m.If(fire):
            m.d.sync += [issued_first.eq(channel == 0),
                         issued_last.eq(channel == cfg.in_channels - 1),
                         issued_out.eq(out), issued_fold.eq(fold), fold.eq(fold + 1)]
            with m.If(fold == cfg.folds - 1):
                m.d.sync += [fold.eq(0), out.eq(out + 1)]
                with m.If(out == cfg.out_channels - 1):
                    m.d.sync += [out.eq(0),
                                 channel.eq(Mux(channel == cfg.in_channels - 1, 0, channel + 1))]
        held = Signal(cfg.in_layout)
        with m.If(fire):
            m.d.sync += held.eq(patch)

        # Multiply-accumulate: output p, term t of fold f is kernel tap f*terms + t at
        # patch column p + tap column.
        sums = []
        for p in range(cfg.outputs):
            products = []
            for t in range(terms):
                taps = []
                for f in range(cfg.folds):
                    tap = f * terms + t
                    taps.append(held[(tap // k) * cfg.patch_cols + tap % k + p]
                                if tap < k * k else 0)
                x = Array(taps)[issued_fold] if cfg.folds > 1 else taps[0]
                w = read.data.word_select(t, cfg.w_bits).as_signed()
                products.append(x * w)
            while len(products) > 1:
                products = [products[i] + products[i + 1] if i + 1 < len(products)
                            else products[i] for i in range(0, len(products), 2)]
            sums.append(products[0])
        acc = [[Signal(signed(cfg.acc_bits), name=f"acc{o}_{p}") for p in range(cfg.outputs)]
               for o in range(cfg.out_channels)]
        result = Signal(cfg.out_layout)
        with m.If(advance):
            m.d.sync += self.o.valid.eq(0)
        with m.If(issued & advance):
            fresh = issued_first & (issued_fold == 0)
            done = issued_last & (issued_fold == cfg.folds - 1)
            for o in range(cfg.out_channels):
                with m.If(issued_out == o):
                    for p in range(cfg.outputs):
                        total = Mux(fresh, 0, acc[o][p]) + sums[p]
                        m.d.sync += [acc[o][p].eq(total), result[p].eq(total)]
            m.d.sync += self.o.valid.eq(done)
        m.d.comb += self.o.payload.eq(result)
        return m

"""Activation codes from a stream of values: the quantizer after a join (golden
`ir.Threshold`), N comparisons per channel against thresholds loaded at run time."""

from dataclasses import dataclass

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import data, wiring

from .channel_store import ChannelStoreConfig, channel_rows
from .encoder import ActivationEncoder, threshold_layout
from .loader import engine_members

__all__ = ["ThresholdConfig", "ThresholdUnit"]


@dataclass(frozen=True)
class ThresholdConfig(ChannelStoreConfig):
    """`lanes` channels a beat of `in_bits`-bit signed values, `groups` beats a position,
    `n` thresholds a channel of `threshold_bits` bits (`threshold_layout`).

    With `pixels` (bits, 0 for none) the beats carry a network's input pixels, unsigned
    integers of that many bits (`in_bits` at least one more), `positions` of them an
    image a channel: FINN's TFC binarizes its pixels so (2 x - 1, then the sign)."""

    STORE = "thresholds"   # the store's name in `pack`'s rows

    lanes: int
    groups: int
    n: int
    in_bits: int
    threshold_bits: int
    word_bits: int = 32
    pixels: int = 0
    positions: int = 1

    def __post_init__(self):
        for name in ("lanes", "groups", "in_bits", "threshold_bits", "word_bits"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"threshold {name} must be a positive integer, not "
                                 f"{value!r}")
        if not isinstance(self.n, int) or isinstance(self.n, bool) or not 1 <= self.n <= 16:
            raise ValueError(f"threshold n must be an integer in 1..16, not {self.n!r}")
        if (not isinstance(self.pixels, int) or isinstance(self.pixels, bool)
                or not 0 <= self.pixels < self.in_bits):
            raise ValueError(f"threshold pixels must be an integer in 0..in_bits - 1 "
                             f"({self.in_bits - 1}), not {self.pixels!r}")
        if not isinstance(self.positions, int) or isinstance(self.positions, bool) \
                or self.positions < 1:
            raise ValueError(f"threshold positions must be a positive integer, not "
                             f"{self.positions!r}")

    @property
    def in_layout(self):
        """`lanes` signed values of `in_bits` a beat, or unsigned pixels of `pixels`."""
        if self.pixels:
            return data.ArrayLayout(unsigned(self.pixels), self.lanes)
        return super().in_layout

    @property
    def in_beat(self):
        return self.lanes

    @property
    def image_elements(self):
        """Input elements an image (a host's input beats: `image_elements` / `in_beat`)."""
        return self.lanes * self.groups * self.positions

    @property
    def row_layout(self):
        return data.ArrayLayout(threshold_layout(self.n, self.threshold_bits), self.lanes)

    @property
    def out_layout(self):
        return data.ArrayLayout(unsigned(self.n), self.lanes)


class ThresholdUnit(wiring.Component):
    """`ActivationEncoder` over a stream, each beat with its channel group's thresholds.

    Members
    -------
    i : In(stream.Signature(config.in_layout))
    o : Out(stream.Signature(config.out_layout))
        One-hot codes, as a layer's.
    load, load_restart, loaded :
        ``groups`` rows (`ThresholdConfig.pack`); inputs are taken only once loaded.

    Latency `ActivationEncoder.LATENCY` cycles; throughput 1 beat per cycle.
    """

    def __init__(self, config):
        if not isinstance(config, ThresholdConfig):
            raise TypeError(f"config must be a ThresholdConfig, not {config!r}")
        self.config = config
        super().__init__(engine_members(config.in_layout, config.out_layout,
                                        unsigned(config.word_bits)))

    def elaborate(self, platform):
        cfg = self.config
        m = Module()
        m.submodules.encoder = encoder = ActivationEncoder(
            channels=cfg.lanes, n=cfg.n, acc_bits=cfg.in_bits,
            threshold_bits=cfg.threshold_bits)
        take = Signal()
        m.d.comb += [self.i.ready.eq(self.loaded & encoder.i.ready),
                     take.eq(self.i.valid & self.i.ready)]
        row = channel_rows(m, self, cfg.row_layout, cfg.groups, cfg.word_bits, take)
        m.d.comb += [encoder.i.valid.eq(self.i.valid & self.loaded),
                     # Pixels are zero-extended (`in_bits` holds them signed).
                     *(encoder.i.payload.acc[k].eq(self.i.payload[k])
                       for k in range(cfg.lanes)),
                     encoder.i.payload.channel.eq(row)]
        wiring.connect(m, encoder.o, wiring.flipped(self.o))
        return m

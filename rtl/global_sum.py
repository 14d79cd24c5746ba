"""Global average pooling's sum: each channel of a stream of fixed-point lanes summed over
an image's positions (the golden model's `GlobalSum`)."""

from dataclasses import dataclass

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["GlobalSumConfig", "GlobalSum"]


@dataclass(frozen=True)
class GlobalSumConfig:
    """The sum's stream: `lanes` signed values a beat, `groups` beats a position
    (channels = lanes x groups), `positions` positions an image.

    Parameters
    ----------
    lanes, groups, positions : int
    in_bits : int
        Signed width of the input values.
    shift : int
        Right shift of each channel's sum (the floor).
    out_bits : int
        Signed width of the shifted sum; the golden model's worst case must fit it.
    """

    lanes: int
    groups: int
    positions: int
    in_bits: int
    shift: int
    out_bits: int

    def __post_init__(self):
        for name, low in (("lanes", 1), ("groups", 1), ("positions", 1), ("in_bits", 1),
                          ("shift", 0), ("out_bits", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"global sum {name} must be an integer of at least {low}, "
                                 f"not {value!r}")

    @property
    def acc_bits(self):
        """A channel's running sum: the input's width and the positions' bits."""
        return self.in_bits + (self.positions - 1).bit_length()

    @property
    def in_layout(self):
        return data.ArrayLayout(signed(self.in_bits), self.lanes)

    @property
    def out_layout(self):
        return data.ArrayLayout(signed(self.out_bits), self.lanes)

    @property
    def in_beats(self):
        """Input beats an image: one a cycle at full rate."""
        return self.positions * self.groups


class GlobalSum(wiring.Component):
    """``o[g][l] = (sum_p i[p][g][l]) >> shift``: each image's `positions` positions of
    `groups` beats in, then (with the last position) its `groups` sums out, one beat
    per group. The running sums of the groups wait in a memory of `groups` rows of
    `lanes` x `acc_bits` bits (LUT RAM), read and written in the cycle of a beat.

    Members
    -------
    i : In(stream.Signature(config.in_layout))
    o : Out(stream.Signature(config.out_layout))

    Latency 1 cycle (a registered output) from an image's last input beat of a group
    to its sum; throughput 1 input beat per cycle. In the last position a beat is
    taken only when the output register is free or being emptied.
    """

    def __init__(self, config):
        if not isinstance(config, GlobalSumConfig):
            raise TypeError(f"config must be a GlobalSumConfig, not {config!r}")
        self.config = config
        super().__init__({"i": In(stream.Signature(config.in_layout)),
                          "o": Out(stream.Signature(config.out_layout))})

    def elaborate(self, platform):
        cfg = self.config
        m = Module()
        row = data.ArrayLayout(signed(cfg.acc_bits), cfg.lanes)
        m.submodules.sums = sums = Memory(shape=row, depth=cfg.groups, init=[])
        read, write = sums.read_port(domain="comb"), sums.write_port()
        group = Signal(range(cfg.groups))
        position = Signal(range(cfg.positions))
        first, last = position == 0, position == cfg.positions - 1
        take = Signal()
        m.d.comb += [take.eq(self.i.valid & self.i.ready),
                     self.i.ready.eq(~last | ~self.o.valid | self.o.ready),
                     read.addr.eq(group), write.addr.eq(group),
                     write.en.eq(take & ~last)]
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(take & last):
            m.d.sync += self.o.valid.eq(1)
        with m.If(take):
            for lane in range(cfg.lanes):
                total = Mux(first, 0, read.data[lane]) + self.i.payload[lane]
                m.d.comb += write.data[lane].eq(total)
                with m.If(last):
                    m.d.sync += self.o.payload[lane].eq(total >> cfg.shift)
            with m.If(group == cfg.groups - 1):
                m.d.sync += [group.eq(0), position.eq(Mux(last, 0, position + 1))]
            with m.Else():
                m.d.sync += group.eq(group + 1)
        return m

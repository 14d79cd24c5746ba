"""Per-channel parameters of a stream unit: one row per channel group, loaded at run
time and read by the group of the beat passing."""

from amaranth.hdl import Mux, Signal, signed, unsigned
from amaranth.lib import data
from amaranth.lib.memory import Memory

from .loader import load_rows
from .mvau import Segment, pack_segments

__all__ = ["ChannelStoreConfig", "channel_rows"]


class ChannelStoreConfig:
    """What the config of a stream unit with one per-group store shares: its input
    (`in_layout`), its `segments` (one, `STORE`, of `groups` rows of `row_layout`),
    `load_words` and `pack`."""

    STORE = "params"

    @property
    def in_layout(self):
        """`lanes` signed values of `in_bits` a beat."""
        return data.ArrayLayout(signed(self.in_bits), self.lanes)

    @property
    def segments(self):
        return [Segment(self.STORE, self.row_layout, self.groups)]

    @property
    def load_words(self):
        return self.groups * -(-self.row_layout.size // self.word_bits)

    def pack(self, rows):
        """Load words from ``rows[STORE]``: a row per group, a `row_layout` value each."""
        return pack_segments(self.segments, rows, self.word_bits)


def channel_rows(m, unit, layout, groups, word_bits, take, registered=False):
    """A store of `groups` rows of `layout`, written through ``unit.load`` (`load_rows`:
    ``ceil(width / word_bits)`` words a row), and the row of the channel group of the
    beat `take` transfers now: the groups follow one another, beat by beat, and start
    again after the last (a position's channels, then the next position's).

    Returns the row (a view of `layout`), read without a clock edge (the store is
    as small as a unit's channel groups); with `registered`, from a register that
    reads the next beat's row a cycle ahead (the store's read off the unit's
    critical path; the row of a store written in the last cycle is then a cycle
    late, so such a unit takes beats a cycle after it is loaded)."""
    width = data.Layout.cast(layout).size
    m.submodules.store = store = Memory(shape=unsigned(width), depth=groups, init=[])
    load_rows(m, unit, store, -(-width // word_bits), word_bits)
    read = store.read_port(domain="comb")
    group = Signal(range(groups))
    following = Mux(group == groups - 1, 0, group + 1) if groups > 1 else 0
    if groups > 1:
        with m.If(take):
            m.d.sync += group.eq(following)
    if not registered:
        m.d.comb += read.addr.eq(group)
        return layout(read.data)
    row = Signal(width)
    m.d.comb += read.addr.eq(Mux(take, following, group))
    m.d.sync += row.eq(read.data)
    return layout(row)

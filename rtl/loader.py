"""The run-time weight port shared by the engines: words in, memory rows written."""

from amaranth.hdl import Cat, Signal
from amaranth.lib import stream
from amaranth.lib.wiring import In, Out

__all__ = ["engine_members", "load_rows"]


def engine_members(in_layout, out_layout, word_shape):
    """The members of a unit with a weight port: ``i``, ``o``, ``load`` (words of
    `word_shape`), ``load_restart`` and ``loaded``."""
    return {
        "i": In(stream.Signature(in_layout)),
        "o": Out(stream.Signature(out_layout)),
        "load": In(stream.Signature(word_shape)),
        "load_restart": In(1),
        "loaded": Out(1),
    }


def load_rows(m, unit, memory, words_per_row, word_bits):
    """Write `unit.load`'s words into `memory`, `words_per_row` to a row (the first word
    lowest), rows in address order; raise `unit.loaded` after the last row, drop it on
    `unit.load_restart`. ``load`` is taken only while not loaded."""
    row = Signal(words_per_row * word_bits)
    count = Signal(range(words_per_row))
    address = Signal(range(memory.depth))
    port = memory.write_port()
    m.d.comb += [unit.load.ready.eq(~unit.loaded), port.addr.eq(address), port.en.eq(0),
                 port.data.eq(Cat(row[:(words_per_row - 1) * word_bits], unit.load.payload))]
    with m.If(unit.load.valid & unit.load.ready):
        m.d.sync += row.word_select(count, word_bits).eq(unit.load.payload)
        with m.If(count == words_per_row - 1):
            m.d.comb += port.en.eq(1)
            m.d.sync += [count.eq(0), address.eq(address + 1)]
            with m.If(address == memory.depth - 1):
                m.d.sync += [address.eq(0), unit.loaded.eq(1)]
        with m.Else():
            m.d.sync += count.eq(count + 1)
    with m.If(unit.load_restart):
        m.d.sync += [unit.loaded.eq(0), address.eq(0), count.eq(0)]

"""Corner turn: blocks of row vectors in, column vectors out."""

from amaranth.hdl import Array, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Transpose"]


class Transpose(wiring.Component):
    """Transposes blocks of `rows` vectors of `length` elements into `length` vectors
    of `length` elements: output j of a block holds element j of each input row, then
    `fill` for rows `rows`..`length` - 1 (the zero padding of a transform tile).

    Parameters
    ----------
    shape : shape-like
        One element.
    length : int
        Elements per vector, 1 or more.
    rows : int
        Input vectors per block, 1..`length`.
    fill : int
        The element standing for the rows not sent.

    Members
    -------
    i : In(stream.Signature(ArrayLayout(shape, length)))
    o : Out(stream.Signature(ArrayLayout(shape, length)))

    Two banks of registers: one fills while the other drains, so a block takes
    max(rows, length) cycles; the first column leaves the cycle after its block's
    last row arrives.
    """

    def __init__(self, shape, length, rows, fill=0):
        for name, value in (("length", length), ("rows", rows)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"transpose {name} must be a positive integer, not {value!r}")
        if rows > length:
            raise ValueError(f"transpose rows must be at most length {length}, not {rows}")
        self.shape, self.length, self.rows, self.fill = shape, length, rows, fill
        layout = data.ArrayLayout(shape, length)
        super().__init__({"i": In(stream.Signature(layout)), "o": Out(stream.Signature(layout))})

    def elaborate(self, platform):
        m = Module()
        length, rows = self.length, self.rows
        banks = [[[Signal(self.shape, name=f"bank{k}_r{r}_c{c}") for c in range(length)]
                  for r in range(rows)] for k in range(2)]
        full, filled, drained = Signal(2), Signal(2), Signal(2)
        fill_side, drain_side = Signal(), Signal()
        row = Signal(range(rows))
        column = Signal(range(length))

        m.d.comb += self.i.ready.eq(~full.bit_select(fill_side, 1))
        with m.If(self.i.valid & self.i.ready):
            for k in range(2):
                for r in range(rows):
                    with m.If((fill_side == k) & (row == r)):
                        m.d.sync += [banks[k][r][c].eq(self.i.payload[c]) for c in range(length)]
            with m.If(row == rows - 1):
                m.d.comb += filled.bit_select(fill_side, 1).eq(1)
                m.d.sync += [row.eq(0), fill_side.eq(~fill_side)]
            with m.Else():
                m.d.sync += row.eq(row + 1)

        m.d.comb += self.o.valid.eq(full.bit_select(drain_side, 1))
        for r in range(length):
            if r < rows:
                element = Array(Array(banks[k][r]) for k in range(2))[drain_side][column]
            else:
                element = self.fill
            m.d.comb += self.o.payload[r].eq(element)
        with m.If(self.o.valid & self.o.ready):
            with m.If(column == length - 1):
                m.d.comb += drained.bit_select(drain_side, 1).eq(1)
                m.d.sync += [column.eq(0), drain_side.eq(~drain_side)]
            with m.Else():
                m.d.sync += column.eq(column + 1)
        m.d.sync += full.eq((full | filled) & ~drained)
        return m

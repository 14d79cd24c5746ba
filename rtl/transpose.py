"""Corner turn: blocks of row vectors in, column vectors out."""

from amaranth.hdl import Array, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Transpose", "PingPong"]


class PingPong:
    """Two banks of `depth` entries (registers) filled in turn from `stream`, one entry
    per beat: while one bank fills, the other is read. A full bank takes no more
    beats until its reader calls `release` for it.

    `banks[k][j]` is entry j of bank k (the payload's shape); `full(side)` says bank
    `side` holds a whole block.
    """

    def __init__(self, m, stream, depth, name):
        self.m = m
        self.banks = [[Signal(stream.payload.shape(), name=f"{name}{k}_{j}")
                       for j in range(depth)] for k in range(2)]
        self._full, filled, self._drained = Signal(2), Signal(2), Signal(2)
        fill_side, index = Signal(), Signal(range(depth))
        m.d.comb += stream.ready.eq(~self.full(fill_side))
        with m.If(stream.valid & stream.ready):
            for k in range(2):
                for j in range(depth):
                    with m.If((fill_side == k) & (index == j)):
                        m.d.sync += self.banks[k][j].eq(stream.payload)
            with m.If(index == depth - 1):
                m.d.comb += filled.bit_select(fill_side, 1).eq(1)
                m.d.sync += [index.eq(0), fill_side.eq(~fill_side)]
            with m.Else():
                m.d.sync += index.eq(index + 1)
        m.d.sync += self._full.eq((self._full | filled) & ~self._drained)

    def full(self, side):
        return self._full.bit_select(side, 1)

    def release(self, side):
        """Bank `side` is read out: it fills again from the next cycle (call under the
        condition that ends the reading)."""
        self.m.d.comb += self._drained.bit_select(side, 1).eq(1)


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
    max(rows, length) cycles; the first column leaves two cycles after its block's
    last row arrives (the output is registered).
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
        rows_in = PingPong(m, self.i, rows, "bank")
        drain_side = Signal()
        column = Signal(range(length))

        # The column multiplexer feeds an output register: the next unit's first
        # adders no longer sit behind it (the DFNT engine's critical path ran from
        # the column counter through this multiplexer into an FNT butterfly).
        advance = Signal()
        m.d.comb += advance.eq(~self.o.valid | self.o.ready)
        with m.If(advance):
            m.d.sync += self.o.valid.eq(rows_in.full(drain_side))
        with m.If(rows_in.full(drain_side) & advance):
            for r in range(length):
                if r < rows:
                    element = Array(Array(rows_in.banks[k][r][c] for c in range(length))
                                    for k in range(2))[drain_side][column]
                else:
                    element = self.fill
                m.d.sync += self.o.payload[r].eq(element)
            with m.If(column == length - 1):
                rows_in.release(drain_side)
                m.d.sync += [column.eq(0), drain_side.eq(~drain_side)]
            with m.Else():
                m.d.sync += column.eq(column + 1)
        return m

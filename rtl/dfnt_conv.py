"""The DFNT convolution engine: integer convolution through the diminished-1 Fermat
number transform (thesis ch. 2), with run-time weight spectra.

Dataflow, one tile (T = L - k + 1 rows and columns of the image) at a time::

    tile rows -> codes -> FNT of each row -> corner turn -> FNT of each column
      -> pointwise products with every output channel's weight spectrum,
         accumulated over input channels -> inverse FNT of each column
      -> corner turn -> inverse FNT of each row -> integers -> overlap-add
      -> output rows

Each input tile is transformed once, whatever the number of output channels;
each output tile is inverse-transformed once, whatever the number of input
channels. The weight spectra (the FNT of each flipped, zero-padded kernel,
`bitfab.hls_gen.golden.dfnt.DFNTConv.weights`) are written through the load port.
"""

import math
from dataclasses import dataclass

from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import connect

from .dim1 import Dim1VectorMultiplier, check_dim1_width, code_shape, dim1_add_style, \
    dim1_from_int, dim1_to_int
from .fnt import FNT, check_fnt_length
from .loader import engine_members, load_rows
from .skid import SkidBuffer
from .transpose import PingPong, Transpose

__all__ = ["DFNTEngineConfig", "DFNTConvEngine"]


def _positive(name, value, low=1):
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"DFNT engine {name} must be an integer >= {low}, not {value!r}")


@dataclass(frozen=True)
class DFNTEngineConfig:
    """One convolution layer (stride 1, no groups) as the engine computes it.

    `height` x `width` images of `in_channels` signed `x_bits` integers, an
    `out_channels` x `in_channels` x `kernel` x `kernel` signed `w_bits` kernel,
    zero `padding` up to kernel - 1; modulus 2^`b` + 1 and an L = `length` point
    transform (a power of two, kernel <= L <= 2b). `adder` is the diminished-1
    adder of the transforms and accumulators: ``"carry"`` (carry chains, smaller and
    faster on an FPGA) or ``"prefix"`` (parallel prefix), see `Dim1Adder`.
    """

    in_channels: int
    out_channels: int
    kernel: int
    height: int
    width: int
    padding: int = 0
    b: int = 32
    length: int = 8
    x_bits: int = 8
    w_bits: int = 8
    adder: str = "carry"

    def __post_init__(self):
        check_dim1_width(self.b)
        if self.adder not in ("prefix", "carry"):
            raise ValueError(f"DFNT engine adder must be prefix or carry, not {self.adder!r}")
        for name in ("in_channels", "out_channels", "kernel", "height", "width", "x_bits",
                     "w_bits"):
            _positive(name, getattr(self, name))
        _positive("padding", self.padding, 0)
        length = self.length
        check_fnt_length(self.b, length, "DFNT engine")
        if self.kernel > length:
            raise ValueError(f"a {self.kernel}x{self.kernel} kernel needs a transform length "
                             f">= {self.kernel}, not {length}")
        if self.padding > self.kernel - 1:
            raise ValueError(f"DFNT engine padding must be at most kernel - 1 = "
                             f"{self.kernel - 1}, not {self.padding}")
        if self.out_height < 1 or self.out_width < 1:
            raise ValueError(f"a {self.height}x{self.width} image padded by {self.padding} is "
                             f"smaller than the {self.kernel}x{self.kernel} kernel")
        if max(self.x_bits, self.w_bits) > self.b:
            raise ValueError(f"x_bits {self.x_bits} and w_bits {self.w_bits} must be at most "
                             f"b = {self.b}")
        limit = (1 << self.b) // 2
        if self.peak > limit:
            raise ValueError(
                f"eq. 2.11 bound fails: {self.in_channels} channels x {self.kernel}x"
                f"{self.kernel} kernel x 2^{self.x_bits - 1} x 2^{self.w_bits - 1} gives peak "
                f"{self.peak} > (F - 1)/2 = {limit} for F = 2^{self.b} + 1")

    @property
    def tile(self):
        """Image rows and columns per transform tile."""
        return self.length - self.kernel + 1

    @property
    def tile_rows(self):
        return math.ceil(self.height / self.tile)

    @property
    def tile_cols(self):
        return math.ceil(self.width / self.tile)

    @property
    def out_height(self):
        return self.height + 2 * self.padding - self.kernel + 1

    @property
    def out_width(self):
        return self.width + 2 * self.padding - self.kernel + 1

    @property
    def out_beats_per_row(self):
        return math.ceil(self.out_width / self.length)

    @property
    def peak(self):
        """eq. 2.11: the largest abs(output) the integer widths allow."""
        return self.in_channels * self.kernel ** 2 << (self.x_bits - 1) + (self.w_bits - 1)

    @property
    def out_bits(self):
        return self.peak.bit_length() + 1

    @property
    def in_layout(self):
        return data.ArrayLayout(signed(self.x_bits), self.tile)

    @property
    def out_layout(self):
        return data.ArrayLayout(signed(self.out_bits), self.length)

    @property
    def word_bits(self):
        return self.b + 1

    @property
    def load_words(self):
        """Weight-spectrum codes: (out, in channel, column frequency, row frequency)."""
        return self.out_channels * self.in_channels * self.length ** 2

    @property
    def in_beats(self):
        """Per image: tiles in row-major order, then channels, then the tile's rows."""
        return self.tile_rows * self.tile_cols * self.in_channels * self.tile

    @property
    def out_beats(self):
        """Per image: output channels, then rows, then `length`-wide column groups."""
        return self.out_channels * self.out_height * self.out_beats_per_row

    @property
    def cycles(self):
        """Steady-state cycles per image: the pointwise stage (one spectrum column of
        one channel pair per cycle) or the readout, whichever is longer."""
        tiles = self.tile_rows * self.tile_cols
        return max(tiles * self.in_channels * self.out_channels * self.length,
                   tiles * self.in_channels * self.length) + self.out_beats


class DFNTConvEngine(wiring.Component):
    """A convolution layer through the DFNT, exact while eq. 2.11 holds (checked by
    `DFNTEngineConfig` from the integer widths).

    Members
    -------
    i : In(stream.Signature(config.in_layout))
        One tile row of `tile` integers per beat: tiles in row-major order, each
        tile's input channels in order, each channel's `tile` rows. Tiles past the
        image's edge carry zeros.
    o : Out(stream.Signature(config.out_layout))
        ``conv2d(x, w, padding=padding)``: per output channel, per output row,
        ``ceil(out_width / length)`` beats of `length` values; values past
        `out_width` are 0.
    load : In(stream.Signature(unsigned(b + 1)))
        The weight spectra, `load_words` codes: for each output channel, input
        channel and column frequency k2, the codes of rows k1 = 0..L-1.
    load_restart : In(1)
        Forget the loaded weights; the next word starts again at the first.
    loaded : Out(1)
        Every weight has been written; inputs are accepted only then.

    Latency a few tiles; throughput one image per about `config.cycles` cycles.
    """

    def __init__(self, config):
        if not isinstance(config, DFNTEngineConfig):
            raise TypeError(f"config must be a DFNTEngineConfig, not {config!r}")
        self.config = config
        super().__init__(engine_members(config.in_layout, config.out_layout,
                                        unsigned(config.word_bits)))

    def elaborate(self, platform):
        cfg = self.config
        b, length = cfg.b, cfg.length
        m = Module()
        code = code_shape(b)
        vector = data.ArrayLayout(code, length)
        levels = int(math.log2(length))
        zero = 1 << b

        weights = m.submodules.weights = memory.Memory(
            shape=unsigned(length * (b + 1)), depth=cfg.out_channels * cfg.in_channels * length,
            init=[])
        load_rows(m, self, weights, length, cfg.word_bits)

        rows = m.submodules.rows = FNT(b, length, stages=levels, adder=cfg.adder)
        turn = m.submodules.turn = Transpose(code, length, cfg.tile, fill=zero)
        columns = m.submodules.columns = FNT(b, length, stages=levels, adder=cfg.adder)
        m.d.comb += [rows.i.valid.eq(self.i.valid & self.loaded),
                     self.i.ready.eq(rows.i.ready & self.loaded)]
        for j in range(length):
            m.d.comb += rows.i.payload[j].eq(
                dim1_from_int(self.i.payload[j], b) if j < cfg.tile else zero)
        connect(m, rows.o, turn.i)
        connect(m, turn.o, columns.i)

        spectra = self._pointwise(m, columns.o, weights, vector)

        inverse_columns = m.submodules.inverse_columns = FNT(b, length, inverse=True,
                                                             stages=levels, adder=cfg.adder)
        inverse_turn = m.submodules.inverse_turn = Transpose(code, length, length, fill=zero)
        inverse_rows = m.submodules.inverse_rows = FNT(b, length, inverse=True, stages=levels,
                                                       adder=cfg.adder)
        connect(m, spectra, inverse_columns.i)
        connect(m, inverse_columns.o, inverse_turn.i)
        connect(m, inverse_turn.o, inverse_rows.i)
        self._overlap_add(m, inverse_rows.o)
        return m

    def _pointwise(self, m, spectra_in, weights, vector):
        """Each input spectrum (L column vectors) times every output channel's weight
        spectrum, accumulated over input channels; returns the stream of finished
        output spectra (per output channel, L column vectors)."""
        cfg = self.config
        b, length = cfg.b, cfg.length
        outs, ins = cfg.out_channels, cfg.in_channels

        # Two banks of one input spectrum each: one fills while the other is used.
        spectrum = PingPong(m, spectra_in, length, "spectrum")
        use_side = Signal()

        # Issue (output channel o, column k2) of input channel c; the weight row
        # arrives from the memory with the registered operands.
        side = data.StructLayout({"o": range(outs), "k2": range(length), "first": 1, "last": 1})
        multiply = m.submodules.multiply = Dim1VectorMultiplier(b, length, side.size, stages=4,
                                                                   adder=cfg.adder)
        out, k2, channel = Signal(range(outs)), Signal(range(length)), Signal(range(ins))
        issued = Signal(vector)
        issued_side = Signal(side)
        issued_valid = Signal()
        advance = ~issued_valid | multiply.i.ready
        fire = spectrum.full(use_side) & advance
        read = weights.read_port()
        m.d.comb += [read.addr.eq((out * ins + channel) * length + k2), read.en.eq(advance),
                     multiply.i.valid.eq(issued_valid),
                     multiply.i.payload.x.eq(issued),
                     multiply.i.payload.y.eq(read.data),
                     multiply.i.payload.side.eq(issued_side)]
        with m.If(advance):
            m.d.sync += issued_valid.eq(fire)
        spectra = Array(Array(column.as_value() for column in bank)
                        for bank in spectrum.banks)
        with m.If(fire):
            m.d.sync += [issued.eq(spectra[use_side][k2]),
                         issued_side.o.eq(out), issued_side.k2.eq(k2),
                         issued_side.first.eq(channel == 0),
                         issued_side.last.eq(channel == ins - 1),
                         k2.eq(k2 + 1)]
            with m.If(k2 == length - 1):
                m.d.sync += [k2.eq(0), out.eq(out + 1)]
                with m.If(out == outs - 1):
                    m.d.sync += [out.eq(0), use_side.eq(~use_side),
                                 channel.eq(Mux(channel == ins - 1, 0, channel + 1))]
                    spectrum.release(use_side)

        # Skid buffers on both sides of the accumulator: its stall (a finished sum
        # waiting for the inverse transform) would otherwise reach the multiplier's
        # and the issue stage's clock enables in the same cycle.
        products = m.submodules.products = SkidBuffer(multiply.o.payload.shape())
        connect(m, multiply.o, products.i)

        # Accumulate over input channels; the last channel's sums leave.
        sums = m.submodules.sums = memory.Memory(shape=unsigned(length * (b + 1)),
                                                 depth=outs * length, init=[])
        write = sums.write_port()
        previous = sums.read_port(transparent_for=(write,))
        product = Signal(products.o.payload.shape())
        held = Signal()
        result = stream.Signature(vector).create()
        where = data.View(side, product.side)
        taken = ~held | ~where.last | result.ready
        incoming = data.View(side, products.o.payload.side)
        m.d.comb += [products.o.ready.eq(taken),
                     previous.addr.eq(incoming.o * length + incoming.k2),
                     previous.en.eq(taken)]
        with m.If(taken):
            m.d.sync += [held.eq(products.o.valid), product.eq(products.o.payload)]
        accumulated = data.View(vector, previous.data)
        total = Cat(*[Mux(where.first, product.z[j],
                          self._add(m, product.z[j], accumulated[j], f"acc{j}"))
                      for j in range(length)])
        m.d.comb += [write.addr.eq(where.o * length + where.k2), write.data.eq(total),
                     write.en.eq(held & ~where.last),
                     result.valid.eq(held & where.last), result.payload.eq(total)]
        finished = m.submodules.finished = SkidBuffer(vector)
        connect(m, result, finished.i)
        return finished.o

    def _add(self, m, x, y, name):
        return dim1_add_style(m, x, y, self.config.b, lambda values: values, self.config.adder,
                              name)

    def _overlap_add(self, m, pieces):
        """Each output tile's rows added into the output image at the tile's offset,
        cropped to the padded convolution's window; once the image is complete it
        is read out row by row, each word cleared as it leaves."""
        cfg = self.config
        b, length, tile = cfg.b, cfg.length, cfg.tile
        outs, height, width = cfg.out_channels, cfg.out_height, cfg.out_width
        groups = cfg.out_beats_per_row
        offset = cfg.kernel - 1 - cfg.padding
        shift = int(math.log2(length))
        depth = outs * height * groups
        value = signed(cfg.out_bits)
        # Column x lives in bank x mod L, so a tile row's L columns, wherever the tile
        # starts, touch each bank once.
        banks = []
        for j in range(length):
            banks.append(memory.Memory(shape=value, depth=depth, init=[]))
            m.submodules[f"image{j}"] = banks[-1]
        writes = [bank.write_port() for bank in banks]
        reads = [bank.read_port(transparent_for=(port,)) for bank, port in zip(banks, writes)]

        # Tile (r, q), output channel o, tile row n covers full-convolution row
        # r*T + n and columns q*T..q*T + L - 1: `top` + n and `left`.. in the window.
        coordinate = signed((max(cfg.tile_rows, cfg.tile_cols) * tile + length).bit_length() + 1)
        n, out = Signal(range(length)), Signal(range(outs))
        tile_row, tile_col = Signal(range(cfg.tile_rows)), Signal(range(cfg.tile_cols))
        top = Signal(coordinate, init=-offset)
        left = Signal(coordinate, init=-offset)
        reading, emitting = Signal(), Signal()
        accept = Signal()
        m.d.comb += [pieces.ready.eq(~reading & ~emitting), accept.eq(pieces.valid & pieces.ready)]
        y = top + n
        row_ok = (y >= 0) & (y < height)
        pending = Signal()
        m.d.sync += pending.eq(accept)
        read_addr, shown = Signal(range(depth)), Signal(range(depth))
        values = Array(dim1_to_int(pieces.payload[i], b) for i in range(length))
        for j in range(length):
            lane = (j - left)[:shift]
            x = left + lane
            addr = Signal(range(depth), name=f"tile_addr{j}")
            m.d.comb += addr.eq((out * height + y[:height.bit_length()]) * groups +
                                (x >> shift)[:groups.bit_length()])
            add, add_addr, add_ok = (Signal(value, name=f"add{j}"),
                                     Signal(range(depth), name=f"add_addr{j}"),
                                     Signal(name=f"add_ok{j}"))
            with m.If(accept):
                m.d.sync += [add.eq(values[lane]), add_addr.eq(addr),
                             add_ok.eq(row_ok & (x >= 0) & (x < width))]
            m.d.comb += [reads[j].addr.eq(Mux(reading, read_addr, addr)), writes[j].en.eq(0)]
            with m.If(pending):
                m.d.comb += [writes[j].addr.eq(add_addr), writes[j].data.eq(add + reads[j].data),
                             writes[j].en.eq(add_ok)]
            with m.Elif(emitting & self.o.ready):
                m.d.comb += [writes[j].addr.eq(shown), writes[j].data.eq(0), writes[j].en.eq(1)]
            m.d.comb += self.o.payload[j].eq(reads[j].data)
        with m.If(accept):
            m.d.sync += n.eq(n + 1)
            with m.If(n == length - 1):
                m.d.sync += [n.eq(0), out.eq(out + 1)]
                with m.If(out == outs - 1):
                    m.d.sync += [out.eq(0), tile_col.eq(tile_col + 1), left.eq(left + tile)]
                    with m.If(tile_col == cfg.tile_cols - 1):
                        m.d.sync += [tile_col.eq(0), left.eq(-offset),
                                     tile_row.eq(tile_row + 1), top.eq(top + tile)]
                        with m.If(tile_row == cfg.tile_rows - 1):
                            m.d.sync += [tile_row.eq(0), top.eq(-offset), reading.eq(1)]

        # Readout: (o, y, column group) in order, one word of every bank per beat.
        r_out, r_y, r_group = Signal(range(outs)), Signal(range(height)), Signal(range(groups))
        advance = ~emitting | self.o.ready
        fire = reading & advance
        m.d.comb += read_addr.eq((r_out * height + r_y) * groups + r_group)
        m.d.comb += [port.en.eq(Mux(reading | emitting, advance, 1)) for port in reads]
        m.d.comb += self.o.valid.eq(emitting)
        with m.If(advance):
            m.d.sync += emitting.eq(fire)
        with m.If(fire):
            m.d.sync += [shown.eq(read_addr), r_group.eq(r_group + 1)]
            with m.If(r_group == groups - 1):
                m.d.sync += [r_group.eq(0), r_y.eq(r_y + 1)]
                with m.If(r_y == height - 1):
                    m.d.sync += [r_y.eq(0), r_out.eq(r_out + 1)]
                    with m.If(r_out == outs - 1):
                        m.d.sync += [r_out.eq(0), reading.eq(0)]

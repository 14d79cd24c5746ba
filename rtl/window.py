"""The sliding-window unit of a streaming convolution: pixels in, windows out.

A convolution layer is a matrix-vector unit fed with windows. This block takes
an image as a stream of pixels (row-major, each pixel's channels in ``simd``
wide beats) and streams, for each output position (row-major), for each kernel
row and column, that pixel's channels, or the padding code where the window
hangs over the image's edge: the order of
`bitfab.hls_gen.golden.window.sliding_windows`, its specification.
"""

from dataclasses import dataclass

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from .ram import registered_read, uncontended_memory

__all__ = ["WindowConfig", "SlidingWindow"]

KERNELS = range(1, 8)
STRIDES = (1, 2)
OUTPUT_FIFO_DEPTH = 5


def _positive(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")


@dataclass(frozen=True)
class WindowConfig:
    """The parameters of a `SlidingWindow`.

    Parameters
    ----------
    channels : int
        Elements per pixel.
    simd : int
        Elements per beat; divides `channels`.
    kernel : int
        The window is kernel x kernel pixels, 1 to 7.
    height, width : int
        The input image.
    stride : int
        1 or 2.
    padding : int
        Pixels of padding on every side, 0 to kernel - 1.
    element_bits : int
        Bits per element (an activation code, a bit plane group, ...).
    pad_code : int
        The element a padding position holds: the code of the value 0 in the
        layer's input encoding, not necessarily all-zero bits.
    """

    channels: int
    simd: int
    kernel: int
    height: int
    width: int
    stride: int = 1
    padding: int = 0
    element_bits: int = 1
    pad_code: int = 0

    def __post_init__(self):
        for name in ("channels", "simd", "height", "width", "element_bits"):
            _positive(name, getattr(self, name))
        if self.channels % self.simd:
            raise ValueError(f"simd {self.simd} does not divide {self.channels} channels")
        if self.kernel not in KERNELS:
            raise ValueError(f"kernel must be 1 to 7, not {self.kernel!r}")
        if self.stride not in STRIDES:
            raise ValueError(f"stride must be 1 or 2, not {self.stride!r}")
        if not isinstance(self.padding, int) or not 0 <= self.padding < self.kernel:
            raise ValueError(f"padding must be 0 to kernel - 1 = {self.kernel - 1}, not "
                             f"{self.padding!r}")
        for name in ("height", "width"):
            if getattr(self, name) + 2 * self.padding < self.kernel:
                raise ValueError(f"{name} {getattr(self, name)} padded by {self.padding} is "
                                 f"smaller than the {self.kernel}x{self.kernel} kernel")
        if not isinstance(self.pad_code, int) or not 0 <= self.pad_code < 1 << self.element_bits:
            raise ValueError(f"pad_code must fit {self.element_bits} unsigned bits, not "
                             f"{self.pad_code!r}")

    @property
    def folds(self):
        """Beats per pixel."""
        return self.channels // self.simd

    @property
    def out_height(self):
        return (self.height + 2 * self.padding - self.kernel) // self.stride + 1

    @property
    def out_width(self):
        return (self.width + 2 * self.padding - self.kernel) // self.stride + 1

    @property
    def buffer_rows(self):
        """Image rows the buffer holds: a window's kernel rows and the stride's next ones,
        so the next rows arrive while the present ones are read, and as many more as
        the next image's first window needs beyond those while this image's last
        output row is read (none for a 3x3 kernel with padding 1), so images follow
        one another without a gap."""
        k, s, p = self.kernel, self.stride, self.padding
        unused = (self.height + 2 * p - k) % s      # rows below the last window
        return k + s + max(0, (k - p) - (p + s - unused))

    @property
    def image_jump(self):
        """Rows from the last output row's top to the next image's first (its top
        padding row): ``height - (out_height - 1) * stride``."""
        return self.height - (self.out_height - 1) * self.stride

    @property
    def address_bits(self):
        """Widths of the line buffer's two low address fields, fold and column; the row
        slot sits above them. Each field is as wide as its own counter, so an address
        is the three counters side by side (no multiplier or adder between them and
        the memory)."""
        return (self.folds - 1).bit_length(), (self.width - 1).bit_length()

    @property
    def depth(self):
        """Entries (beats) of the line buffer: `buffer_rows` rows of the width and the
        folds each rounded up to a power of two (`address_bits`)."""
        return self.buffer_rows << sum(self.address_bits)

    @property
    def in_beats(self):
        """Input beats per image."""
        return self.height * self.width * self.folds

    @property
    def out_beats(self):
        """Output beats per image."""
        return self.out_height * self.out_width * self.kernel ** 2 * self.folds

    @property
    def layout(self):
        """A beat: `simd` elements, element 0 in the low bits."""
        return data.ArrayLayout(unsigned(self.element_bits), self.simd)


class SlidingWindow(wiring.Component):
    """Streams every window of each image that comes in, with its padding.

    The line buffer (`WindowConfig.depth` beats in one memory) holds
    `WindowConfig.buffer_rows` image rows, a ring over the rows of every image in
    turn. A pixel is written once its row's slot is no longer needed by the window
    being read (its row is ``buffer_rows`` behind the window's top row, counting on
    across images); a window beat is read once its image row is complete. Padding
    beats come from the pad code, not the buffer. The next image's rows are written
    while this image's last windows are read.

    Parameters
    ----------
    config : WindowConfig

    Members
    -------
    i : In(stream.Signature(config.layout))
        The image, row-major, each pixel's channels in `WindowConfig.folds` beats.
    o : Out(stream.Signature(config.layout))
        Per output position (row-major), per kernel row, per kernel column, the
        pixel's `WindowConfig.folds` beats.

    Latency: a window beat leaves four cycles after the input beat that
    completes its image row (padding beats need no input; the first one after
    reset, four cycles after it). Throughput: one
    output beat per cycle once an image's first window rows are in; each
    image then needs about ``kernel ** 2 / stride ** 2`` output beats per input
    beat, so a continuous input never limits it, and the next image's first window
    rows fit in the buffer beside this image's last ones: no gap between images
    when the input keeps up.
    """

    def __init__(self, config):
        if not isinstance(config, WindowConfig):
            raise TypeError(f"config must be a WindowConfig, not {config!r}")
        self.config = config
        super().__init__({"i": In(stream.Signature(config.layout)),
                          "o": Out(stream.Signature(config.layout))})

    def elaborate(self, platform):
        c = self.config
        m = Module()
        k, s, p, folds, rows = c.kernel, c.stride, c.padding, c.folds, c.buffer_rows
        width = c.layout.size

        # A row's slot is written only once no window reads it, and read only once its
        # row is complete: a read never meets a write to its beat.
        m.submodules.buffer = buffer = uncontended_memory(unsigned(width), c.depth)
        write = buffer.write_port()
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=width, depth=OUTPUT_FIFO_DEPTH)

        # The writer: the pixel at column wx, fold wf, into row slot wslot, the ring's next.
        wx = Signal(range(c.width))
        wf = Signal(range(folds))
        wslot = Signal(range(rows))

        # The position: output (oy, ox), kernel position (ky, kx), fold rf. top and left
        # are the window's first input row and column (oy * s - p, ox * s - p); base_slot
        # the buffer slot of row top. ahead: rows written beyond the top row of the
        # window being read, counting on into the next image (-stride .. rows).
        span = 2 * (c.height + c.width + k + 2)
        top = Signal(signed(span.bit_length() + 1), init=-p)
        left = Signal(signed(span.bit_length() + 1), init=-p)
        oy = Signal(range(c.out_height))
        ox = Signal(range(c.out_width))
        ky = Signal(range(k))
        kx = Signal(range(k))
        rf = Signal(range(folds))
        base_slot = Signal(range(rows), init=(-p) % rows)
        ahead = Signal(signed((rows + c.image_jump).bit_length() + 1), init=p)

        # A row slot is free once the window being read starts below the row it held.
        m.d.comb += self.i.ready.eq(ahead < rows)
        row_written = Signal()
        with m.If(self.i.valid & self.i.ready):
            m.d.comb += [write.en.eq(1), write.addr.eq(Cat(wf, wx, wslot)),
                         write.data.eq(self.i.payload)]
            m.d.sync += wf.eq(wf + 1)
            with m.If(wf == folds - 1):
                m.d.sync += [wf.eq(0), wx.eq(wx + 1)]
                with m.If(wx == c.width - 1):
                    m.d.comb += row_written.eq(1)
                    m.d.sync += [wx.eq(0), wslot.eq(Mux(wslot == rows - 1, 0, wslot + 1))]

        iy = Signal(signed(top.shape().width + 1))
        ix = Signal(signed(left.shape().width + 1))
        slot = Signal(range(2 * rows))
        inside = Signal()
        m.d.comb += [iy.eq(top + ky), ix.eq(left + kx), slot.eq(base_slot + ky),
                     inside.eq((iy >= 0) & (iy < c.height) & (ix >= 0) & (ix < c.width))]
        row_slot = Mux(slot >= rows, slot - rows, slot)
        column = ix.as_unsigned()[:c.address_bits[1]]

        # The next beat, staged in registers (its buffer address, whether it is padding,
        # its kernel row, and how far the window's top moves once it is read), so that
        # the read's address and its go-ahead come straight from flip-flops. The
        # position moves on as the staged beat is taken.
        staged = Signal()
        staged_addr = Signal(range(c.depth))
        staged_pad = Signal()
        staged_ky = Signal.like(ky)
        moved = Signal(range(max(s, c.image_jump) + 1))      # at the position
        staged_moved = Signal.like(moved)

        # Issue a read while the output FIFO has room for it and the beat in flight,
        # judged a cycle early with a slot of margin for the beat issued meanwhile, so
        # that the go-ahead comes from flip-flops (the FIFO's level through an adder
        # into every counter's enable was the unit's slowest path on ECP5).
        in_flight = Signal()
        pad = Signal()
        room = Signal()
        m.d.sync += room.eq(fifo.w_level + in_flight < OUTPUT_FIFO_DEPTH - 1)
        issue = Signal()
        advance = Signal()
        m.d.comb += [issue.eq(staged & room & (staged_pad | (staged_ky < ahead))),
                     advance.eq(~staged | issue)]
        read = registered_read(m, buffer, staged_addr, "window_beat")
        m.d.sync += [in_flight.eq(issue), pad.eq(staged_pad)]
        with m.If(advance):
            m.d.sync += [staged.eq(1), staged_addr.eq(Cat(rf, column, row_slot)),
                         staged_pad.eq(~inside), staged_ky.eq(ky), staged_moved.eq(moved)]

        pad_beat = Const(sum(c.pad_code << (j * c.element_bits) for j in range(c.simd)), width)
        m.d.comb += [fifo.w_en.eq(in_flight), fifo.w_data.eq(Mux(pad, pad_beat, read)),
                     self.o.valid.eq(fifo.r_rdy), self.o.payload.eq(fifo.r_data),
                     fifo.r_en.eq(self.o.ready)]

        # The window's top moves down `stride` rows after each output row, and after the
        # last one to the next image's first (`WindowConfig.image_jump` rows on).
        jump_slot = c.image_jump % rows
        with m.If(advance):
            m.d.sync += rf.eq(rf + 1)
            with m.If(rf == folds - 1):
                m.d.sync += [rf.eq(0), kx.eq(kx + 1)]
                with m.If(kx == k - 1):
                    m.d.sync += [kx.eq(0), ky.eq(ky + 1)]
                    with m.If(ky == k - 1):
                        m.d.sync += [ky.eq(0), ox.eq(ox + 1), left.eq(left + s)]
                        with m.If(ox == c.out_width - 1):
                            m.d.sync += [ox.eq(0), left.eq(-p)]
                            with m.If(oy == c.out_height - 1):
                                m.d.comb += moved.eq(c.image_jump)
                                m.d.sync += [oy.eq(0), top.eq(-p),
                                             base_slot.eq(Mux(base_slot + jump_slot >= rows,
                                                              base_slot + jump_slot - rows,
                                                              base_slot + jump_slot))]
                            with m.Else():
                                m.d.comb += moved.eq(s)
                                m.d.sync += [oy.eq(oy + 1), top.eq(top + s),
                                             base_slot.eq(Mux(base_slot + s >= rows,
                                                              base_slot + s - rows,
                                                              base_slot + s))]
        m.d.sync += ahead.eq(ahead + row_written - Mux(issue, staged_moved, 0))
        return m

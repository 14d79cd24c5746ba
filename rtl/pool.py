"""Max pooling on activation codes, streamed: a sliding window and a running maximum.

`bitfab.hls_gen.golden.window.max_pool_codes` is the specification: pooling sits
after a layer's activation, on its codes, where the largest code is the code of
the largest value.
"""

from amaranth.hdl import Array, Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .window import SlidingWindow, WindowConfig

__all__ = ["MaxPool"]


class MaxPool(wiring.Component):
    """k x k max pooling of a stream of pixels, element by element.

    Each element is compared as an unsigned integer: one-hot activation planes, bit
    planes and sign bits all order that way. The window unit streams each output
    position's kernel positions fold by fold; a register per fold keeps the running
    maximum, and the last kernel position's beat of a fold leaves as the result.

    Parameters
    ----------
    config : WindowConfig
        The pool's window; its `pad_code` must be 0, the smallest code, and its
        padding at most kernel // 2 (PyTorch's limit).

    Members
    -------
    i : In(stream.Signature(config.layout))
        Pixels, row-major, each pixel's channels in `WindowConfig.folds` beats.
    o : Out(stream.Signature(config.layout))
        Pooled pixels, in the same order.

    Throughput: one output beat per ``kernel ** 2`` window beats; the window unit
    streams one beat per cycle, so an output pixel takes ``kernel ** 2 * folds``
    cycles.
    """

    def __init__(self, config):
        if not isinstance(config, WindowConfig):
            raise TypeError(f"config must be a WindowConfig, not {config!r}")
        if config.pad_code != 0:
            raise ValueError(f"a max pool pads with code 0, the smallest, not "
                             f"{config.pad_code}")
        if config.padding > config.kernel // 2:
            raise ValueError(f"max pool padding must be at most kernel // 2 = "
                             f"{config.kernel // 2}, not {config.padding}")
        self.config = config
        super().__init__({"i": In(stream.Signature(config.layout)),
                          "o": Out(stream.Signature(config.layout))})

    def elaborate(self, platform):
        c = self.config
        m = Module()
        m.submodules.window = window = SlidingWindow(c)
        wiring.connect(m, wiring.flipped(self.i), window.i)

        positions, bits = c.kernel ** 2, c.element_bits
        position = Signal(range(positions))
        fold = Signal(range(c.folds))
        running = Array(Signal(c.layout.size, name=f"max{f}") for f in range(c.folds))
        beat = window.o.payload.as_value()
        best = running[fold]
        larger = Cat(*(Mux(beat[j * bits:(j + 1) * bits] > best[j * bits:(j + 1) * bits],
                           beat[j * bits:(j + 1) * bits], best[j * bits:(j + 1) * bits])
                       for j in range(c.simd)))
        merged = Mux(position == 0, beat, larger)

        last = position == positions - 1
        m.d.comb += window.o.ready.eq(~last | ~self.o.valid | self.o.ready)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(window.o.valid & window.o.ready):
            m.d.sync += [running[fold].eq(merged), fold.eq(fold + 1)]
            with m.If(fold == c.folds - 1):
                m.d.sync += [fold.eq(0), position.eq(Mux(last, 0, position + 1))]
            with m.If(last):
                m.d.sync += [self.o.valid.eq(1), self.o.payload.eq(merged)]
        return m

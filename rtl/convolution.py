"""A convolution layer: the sliding-window unit feeding a matrix-vector unit.

Each window (`bitfab.rtl.window.SlidingWindow`) is one input vector of the
`bitfab.rtl.mvau.MatrixVectorUnit`, its columns in the window's order (kernel
row, kernel column, channel), so the unit's weight rows are the kernels
flattened in that order. Folding (PE, SIMD), weights, coefficients and
thresholds are the unit's, loaded at run time through ``load`` as for a fully
connected layer.
"""

from dataclasses import replace

from amaranth.hdl import Module, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .mvau import MatrixVectorUnit, MVAUConfig
from .pool import MaxPool
from .window import SlidingWindow, WindowConfig

__all__ = ["ConvolutionUnit"]


class ConvolutionUnit(wiring.Component):
    """A k x k convolution as windows into a matrix-vector unit.

    Parameters
    ----------
    window : WindowConfig
        The image and the window: its `element_bits` are the unit's input planes
        (``n_in``), its `simd` the unit's ``in_beat``, and its `pad_code` the
        planes of the value 0 in the layer's input encoding.
    mvau : MVAUConfig
        The unit over windows: ``cols = kernel ** 2 * channels``. Its `pool`, if
        any, puts a `MaxPool` on the unit's codes.

    Members
    -------
    i : In(stream.Signature(window.layout))
        The image, pixel by pixel, row-major.
    o : Out(stream.Signature(mvau.out_layout))
        Per output position (row-major, after pooling), the unit's output row groups.
    load : In(stream.Signature(unsigned(mvau.word_bits)))
        The unit's stores, as `MatrixVectorUnit`'s.
    load_restart : In(1)
    loaded : Out(1)

    Raises
    ------
    ValueError
        When the window does not make the unit's input vectors.
    """

    def __init__(self, window, mvau):
        if not isinstance(window, WindowConfig):
            raise TypeError(f"window must be a WindowConfig, not {window!r}")
        if not isinstance(mvau, MVAUConfig):
            raise TypeError(f"mvau must be an MVAUConfig, not {mvau!r}")
        columns = window.kernel ** 2 * window.channels
        for name, want, have in (("cols", columns, mvau.cols),
                                 ("in_beat", window.simd, mvau.in_beat),
                                 ("n_in", window.element_bits, mvau.n_in)):
            if want != have:
                raise ValueError(f"the MVAU's {name} is {have}, the window makes {want}")
        self.window, self.mvau = window, mvau
        super().__init__({
            "i": In(stream.Signature(window.layout)),
            "o": Out(stream.Signature(mvau.out_layout)),
            "load": In(stream.Signature(unsigned(mvau.word_bits))),
            "load_restart": In(1),
            "loaded": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.window = window = SlidingWindow(self.window)
        m.submodules.mvau = mvau = MatrixVectorUnit(replace(self.mvau, pool=None))
        wiring.connect(m, wiring.flipped(self.i), window.i)
        wiring.connect(m, window.o, mvau.i)
        if self.mvau.pool is None:
            wiring.connect(m, mvau.o, wiring.flipped(self.o))
        else:
            m.submodules.pool = pool = MaxPool(self.mvau.pool)
            m.d.comb += [pool.i.valid.eq(mvau.o.valid), mvau.o.ready.eq(pool.i.ready),
                         pool.i.payload.eq(mvau.o.payload)]
            wiring.connect(m, pool.o, wiring.flipped(self.o))
        wiring.connect(m, wiring.flipped(self.load), mvau.load)
        m.d.comb += [mvau.load_restart.eq(self.load_restart), self.loaded.eq(mvau.loaded)]
        return m

"""The Fermat number transform in diminished-1: butterfly and a pipelined transform
(thesis eq. 2.4-2.9, root 2, modulus 2^b + 1)."""

import math

from amaranth.hdl import Cat
from amaranth.lib import data

from .dim1 import _Dim1Unit, _ForwardCuts, check_adder_style, check_dim1_width, code_shape, \
    dim1_add, dim1_add_carry, dim1_neg, dim1_shift_const, prefix_levels

__all__ = ["FNTButterfly", "FNT", "butterfly", "check_fnt_length"]


def check_fnt_length(b, length, what="FNT"):
    """Root 2 has order 2b modulo 2^b + 1: a transform is a power of two, 2..2b long."""
    if (not isinstance(length, int) or length < 2 or length & (length - 1) or length > 2 * b
            or (2 * b) % length):
        raise ValueError(f"{what} length must be a power of two dividing {2 * b} for b={b} "
                         f"(root 2 has order {2 * b}), not {length!r}")


def _no_cut(values):
    return values


def butterfly(m, u, v, b, shift, cut=_no_cut, name="bf", adder="prefix"):
    """eq. 2.5/2.6: (u + v 2^shift, u - v 2^shift); the twiddle is wiring. `adder` is
    ``"prefix"`` (`dim1_add`, `cut` offered its levels) or ``"carry"`` (`dim1_add_carry`,
    no cut points)."""
    t = dim1_shift_const(v, b, shift)
    if adder == "carry":
        return (dim1_add_carry(m, u, t, b, name=f"{name}_sum"),
                dim1_add_carry(m, u, dim1_neg(t, b), b, name=f"{name}_diff"))
    forward = _ForwardCuts(cut, {"u": u, "t": t})
    total = dim1_add(m, u, t, b, forward, name=f"{name}_sum")
    # The difference's adder takes the operands as carried through the sum's registers.
    u, t = forward.carried["u"], forward.carried["t"]
    difference = dim1_add(m, u, dim1_neg(t, b), b, _no_cut, name=f"{name}_diff")
    return total, difference


class FNTButterfly(_Dim1Unit):
    """Decimation-in-time butterfly with a constant twiddle 2^`shift`.

    Members
    -------
    i : In(stream.Signature(StructLayout({"u": unsigned(b + 1), "v": unsigned(b + 1)})))
    o : Out(stream.Signature(StructLayout({"sum": unsigned(b + 1), "diff": unsigned(b + 1)})))
        u + v 2^shift and u - v 2^shift, diminished-1 codes.

    `stages` 0..ceil(log2 b): registers after the sum adder's prefix levels.
    """

    def __init__(self, b, shift, stages=0):
        if not isinstance(shift, int) or isinstance(shift, bool):
            raise TypeError(f"twiddle shift must be an integer, not {shift!r}")
        self.shift = shift
        shape = code_shape(b)
        super().__init__(b, stages, data.StructLayout({"u": shape, "v": shape}),
                         data.StructLayout({"sum": shape, "diff": shape}))

    @staticmethod
    def max_stages_for(b):
        return prefix_levels(b)

    def datapath(self, m, payload, cut):
        # The difference adder is combinational after the sum's last cut.
        total, difference = butterfly(m, payload.u, payload.v, self.b, self.shift, cut)
        return Cat(total, difference)


class FNT(_Dim1Unit):
    """A whole `length`-point FNT (or inverse) per beat: log2(length) levels of
    butterflies with constant twiddles, only adders and wiring.

    Parameters
    ----------
    b : int
        4, 8, 16, 32 or 64; the root is 2, so `length` is a power of two, 2..2b.
    length : int
    inverse : bool
        eq. 2.9: twiddles 2^-e and a final 1/L = 2^-log2(L) (wiring).
    stages : int
        0..log2(length): a register after that many evenly spread levels.
    adder : str
        The butterflies' adders, ``"prefix"`` or ``"carry"`` (see `Dim1Adder`).

    Members
    -------
    i : In(stream.Signature(ArrayLayout(unsigned(b + 1), length)))
        x(0..L-1) in natural order, diminished-1 codes.
    o : Out(stream.Signature(ArrayLayout(unsigned(b + 1), length)))
        X(0..L-1) in natural order.

    Latency `stages` cycles, one transform per cycle.
    """

    def __init__(self, b, length, inverse=False, stages=0, adder="prefix"):
        check_dim1_width(b)
        check_adder_style(adder, "FNT adder")
        self.adder = adder
        check_fnt_length(b, length)
        self.length, self.inverse = length, inverse
        layout = data.ArrayLayout(code_shape(b), length)
        self._levels = int(math.log2(length))
        super().__init__(b, stages, layout, layout)

    def max_stages_for(self, b):
        return int(math.log2(self.length))

    def datapath(self, m, payload, cut):
        b, length = self.b, self.length
        bits = self._levels
        order = [int(f"{i:0{bits}b}"[::-1], 2) for i in range(length)]
        x = [payload[order[i]] for i in range(length)]
        sign = -1 if self.inverse else 1
        span = 2
        while span <= length:
            half = span // 2
            out = list(x)
            for group in range(0, length, span):
                for q in range(half):
                    shift = sign * q * (2 * b // span)          # eq. 2.8: a^q, a = 2^(2b/span)
                    out[group + q], out[group + q + half] = butterfly(
                        m, x[group + q], x[group + q + half], b, shift,
                        name=f"l{span}_{group + q}", adder=self.adder)
            live = cut({str(i): value for i, value in enumerate(out)})
            x = [live[str(i)] for i in range(length)]
            span *= 2
        if self.inverse:
            x = [dim1_shift_const(value, b, -bits) for value in x]     # 1/L
        return Cat(*x)

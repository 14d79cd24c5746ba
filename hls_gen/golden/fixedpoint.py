"""Integer widths and fixed-point formats shared by the freezer and the golden model."""

import math
from dataclasses import dataclass

from bitfab.hls_gen.errors import WidthOverflowError

__all__ = ["signed_bits", "unsigned_bits", "choose_frac_bits", "to_fixed",
           "LayerWidths", "check_width"]


def unsigned_bits(max_value):
    """Bits of an unsigned integer that holds 0..max_value."""
    if max_value < 0:
        raise ValueError(f"max_value must be >= 0, not {max_value}")
    return max(1, int(max_value).bit_length())


def signed_bits(lo, hi):
    """Bits of a two's complement integer that holds every value in lo..hi."""
    if lo > hi:
        raise ValueError(f"empty range {lo}..{hi}")
    bits = 1
    while not (-(1 << (bits - 1)) <= lo and hi <= (1 << (bits - 1)) - 1):
        bits += 1
    return bits


def choose_frac_bits(values, coef_bits, max_frac_bits=32):
    """Largest F such that every round(v * 2**F) fits a signed `coef_bits` integer.

    F may be negative when the values are large. Raises `WidthOverflowError` if
    no F in range fits (a value too large for `coef_bits` at F = -max_frac_bits).
    """
    limit = (1 << (coef_bits - 1)) - 1
    peak = max((abs(float(v)) for v in values), default=0.0)
    if peak == 0.0:
        return 0
    # Start from the analytic guess and step down: round() may push a value over.
    frac = min(max_frac_bits, coef_bits - 1 - math.ceil(math.log2(peak)))
    while frac >= -max_frac_bits:
        if all(abs(round(float(v) * 2.0 ** frac)) <= limit for v in values):
            return frac
        frac -= 1
    raise WidthOverflowError(f"coefficient {peak} does not fit {coef_bits} signed bits")


def to_fixed(value, frac_bits):
    """round(value * 2**frac_bits) as a Python int (round half to even)."""
    return int(round(float(value) * 2.0 ** frac_bits))


@dataclass(frozen=True)
class LayerWidths:
    """Integer widths of one layer's datapath, derived from its worst case.

    Attributes
    ----------
    fan_in : int
        Input bits per output (K): the length of every popcount.
    popcount_bits : int
        Unsigned width of one popcount, 0..K.
    coef_bits, coef_frac : int
        Signed width and fractional bits of the merged coefficients phi_k
        (0, 0 for an XNOR layer, which has none): real = integer * 2**-coef_frac.
    acc_bits, acc_bound : int
        Signed width of the accumulator and its worst case abs(Y) for any weights,
        coefficients and inputs of this format.
    threshold_bits : int
        Signed width of the activation thresholds, clamped to
        [-acc_bound, acc_bound + 1] ("always" and "never"); 0 for the last layer.
    scale_bits, scale_frac, logit_bits : int
        The last layer's per-class scale (XNOR only; 0 otherwise) and the width
        of the class scores it produces.
    """

    fan_in: int
    popcount_bits: int
    coef_bits: int
    coef_frac: int
    acc_bits: int
    acc_bound: int
    threshold_bits: int = 0
    scale_bits: int = 0
    scale_frac: int = 0
    logit_bits: int = 0


def check_width(name, what, bound, max_bits, hint):
    """Signed bits for abs(value) <= bound; `WidthOverflowError` naming the layer if
    that exceeds `max_bits`."""
    bits = signed_bits(-bound, bound)
    if bits > max_bits:
        raise WidthOverflowError(
            f"layer {name}: worst-case {what} {bound} needs {bits} signed bits, "
            f"more than acc_bits={max_bits}; {hint}")
    return bits

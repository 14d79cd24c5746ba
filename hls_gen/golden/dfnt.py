"""The diminished-1 Fermat number transform and integer convolution through it (thesis ch. 2).

Everything here works on diminished-1 codes (`bitfab.hls_gen.golden.dim1`) modulo
F = 2^b + 1 with root 2, the golden model of the DFNT hardware:

- `fnt` / `ifnt`: eq. 2.4 and 2.9 along the last dimension, length L a power of
  two with 2 <= L <= 2b (2 has order 2b modulo F, so the root of order L is
  2^(2b/L) and every twiddle, and 1/L, is a shift), computed with the
  decimation-in-time butterflies of eq. 2.5-2.8;
- `fnt2d` / `ifnt2d`: eq. 2.10, rows then columns;
- `dfnt_conv2d`: `torch.nn.functional.conv2d` (stride 1, no groups) on integer
  tensors: input tiles transformed once, products accumulated over input
  channels in the transform domain, one inverse transform per output tile,
  overlap-add for images larger than a tile. Exact whenever eq. 2.11 holds,
  and `check_bound` refuses a layer whose integer widths cannot guarantee it.

A residue mod F is unique, so the same transforms and sums computed another way
give the same codes: `DFNTConv.correlate`, the software DFNT, works on residues
with exact modular matrix products in float64 (`fnt2d_residues` and
`pointwise_accumulate` expose its transform and its channel sums) and is
checked against `DFNTConv.correlate_dim1`, which does every step in
diminished-1 codes as the engine does.
"""

import math
from dataclasses import dataclass

import torch

from bitfab.hls_gen.golden.dim1 import Dim1, is_power_of_two
from bitfab.hls_gen.errors import WidthOverflowError

__all__ = ["DFNTBoundError", "check_length", "fnt", "ifnt", "fnt2d", "ifnt2d",
           "transform_matrix", "fnt2d_residues", "pointwise_accumulate",
           "pointwise_accumulate_dim1", "check_bound", "WeightSpectra",
           "DFNTConv", "dfnt_conv2d", "engine_layer", "engine_load_codes", "engine_input_rows",
           "engine_output_rows"]


class DFNTBoundError(WidthOverflowError):
    """A convolution whose peak output may not fit the modulus (eq. 2.11)."""


def check_length(dim1, length):
    """Refuse a transform length that 2 is not a root of unity of modulo 2^b + 1: a power
    of two dividing 2b (2 has order 2b; the root is 2^(2b/L), eq. 2.8)."""
    if not is_power_of_two(length) or not 2 <= length <= 2 * dim1.b or (2 * dim1.b) % length:
        raise ValueError(f"FNT length must be a power of two dividing {2 * dim1.b} for "
                         f"b={dim1.b} (root 2 has order {2 * dim1.b}), not {length!r}")


def _bit_reverse(length):
    bits = length.bit_length() - 1
    return [int(f"{i:0{bits}b}"[::-1], 2) if bits else 0 for i in range(length)]


def fnt(codes, dim1, inverse=False):
    """Eq. 2.4 (or 2.9 when `inverse`) along the last dimension of a code tensor."""
    length = codes.shape[-1]
    check_length(dim1, length)
    dim1.check_codes(codes)
    sign = -1 if inverse else 1
    x = codes[..., _bit_reverse(length)]
    span = 2
    while span <= length:
        half = span // 2
        groups = x.reshape(*x.shape[:-1], length // span, 2, half)
        # eq. 2.7/2.8: the odd half is weighted by a^q = 2^(q * 2b / span) before the
        # butterfly of eq. 2.5/2.6.
        exponents = sign * torch.arange(half) * (2 * dim1.b // span)
        even, odd = groups[..., 0, :], dim1.mul_pow2(groups[..., 1, :], exponents)
        x = torch.stack([dim1.add(even, odd), dim1.sub(even, odd)], dim=-2).reshape(x.shape)
        span *= 2
    if inverse:
        x = dim1.mul_pow2(x, -(length.bit_length() - 1))      # 1/L = 2^-log2(L)
    return x


def ifnt(codes, dim1):
    return fnt(codes, dim1, inverse=True)


def fnt2d(codes, dim1, inverse=False):
    """Eq. 2.10: the 1-D transform on every row, then on every column."""
    rows = fnt(codes, dim1, inverse)
    return fnt(rows.transpose(-1, -2), dim1, inverse).transpose(-1, -2)


def ifnt2d(codes, dim1):
    return fnt2d(codes, dim1, inverse=True)


def pointwise_accumulate_dim1(x, w, dim1):
    """Y[..., o, :, :] = sum_c X[..., c, :, :] * W[o, c, :, :] with diminished-1 multiply
    and add, one input channel after another, as the engine's accumulator does.
    x: (..., C, L, L) codes, w: (O, C, L, L) codes -> (..., O, L, L) codes.
    """
    x = x.unsqueeze(-4)                                    # (..., 1, C, L, L)
    total = torch.full(x.shape[:-4] + (w.shape[0],) + x.shape[-2:], dim1.zero, dtype=torch.int64)
    for c in range(w.shape[1]):
        total = dim1.add(total, dim1.mul(x[..., c, :, :], w[:, c]))
    return total


# float64 holds every integer of magnitude up to 2^53: a matrix product of integers
# is exact while each of its sums stays there (the order of the additions, and
# fused multiply-adds, change nothing).
_EXACT = 1 << 53


# The reductions below work in place, on int64 tensors their callers own: a fresh
# tensor of this size costs more in page faults than the arithmetic on it.
def _fold(x, bound, dim1):
    """Same residues, smaller: high * 2^b + low = low - high (2^b = -1). abs(x) <= bound
    in, x (folded) and its bound out."""
    high = x >> dim1.b
    x &= dim1.mask
    x -= high
    return x, (1 << dim1.b) + (bound >> dim1.b) + 1


def _reduced(x, bound, dim1):
    """Fold until abs(x) <= 2^(b+2), the form residues travel in between the steps here."""
    while bound > 1 << (dim1.b + 2):
        x, bound = _fold(x, bound, dim1)
    return x, bound


def _reduced_input(x, dim1):
    """`_reduced` for integers of unknown size (abs(x) < 2^63), their bound measured."""
    bound = max(1, int(x.abs().max())) if x.numel() else 1
    return _reduced(x, bound, dim1)


def _add_modulus_if_negative(x, dim1):
    sign = x >> 63                                              # -1 where negative
    sign &= dim1.modulus
    x += sign


def _canonical(x, bound, dim1):
    """Residues 0..2^b of x, abs(x) <= bound < 2^63."""
    x, bound = _fold(*_reduced(x, bound, dim1), dim1)          # now -4 <= x < 2^b + 4
    _add_modulus_if_negative(x, dim1)                          # 0 <= x < F + 3
    x -= dim1.modulus
    _add_modulus_if_negative(x, dim1)
    return x


def _digits(m, terms, x_bound, dim1):
    """A matrix of residues (int64, 0..2^b), centred in -(F-1)/2..(F-1)/2 and cut into
    balanced base-2^s digits (float64, lowest first), s as wide as keeps a product
    of `terms` terms with abs(x) <= x_bound exact. Returns (s, digits)."""
    limit = (_EXACT - 1) // (x_bound * terms)
    if limit < 2:
        raise ValueError(f"{terms} terms of up to {x_bound} are too many for exact "
                         f"float64 products")
    shift = limit.bit_length()                                    # 2^(s-1) <= limit
    half = 1 << (shift - 1)
    m = dim1.centred(m)
    digits = []
    while not digits or bool(m.any()):
        digit = m + half
        digit &= (1 << shift) - 1
        digit -= half                                             # -half <= digit < half
        digits.append(digit.double())
        m -= digit
        m >>= shift
    return shift, digits


def _shifted(x, bound, shift, dim1):
    """x * 2^shift, reduced between steps short enough not to overflow int64."""
    while shift:
        step = min(shift, 62 - bound.bit_length())
        x <<= step
        x, bound = _reduced(x, bound << step, dim1)
        shift -= step
    return x, bound


def _mod_matmul(x, x_bound, shift, digits, dim1):
    """(x @ M) mod F for float64 integers x, abs(x) <= x_bound, and M given by its
    `_digits` (made for at least this x_bound): the int64 result, |.| <= 2^(b+2), and
    its bound. The digits' products are added highest first, Horner's way."""
    part_bound = x_bound * (1 << (shift - 1)) * digits[0].shape[-2]
    product, total, bound = None, None, 0
    for digit in reversed(digits):
        product = torch.matmul(x, digit, out=product)
        part, bound_k = _reduced(product.long(), part_bound, dim1)
        if total is None:
            total, bound = part, bound_k
        else:
            total, bound = _shifted(total, bound, shift, dim1)
            total += part
            total, bound = _reduced(total, bound + bound_k, dim1)
    return total, bound


def _as_float(x):
    """int64 -> float64 (exact below 2^53), contiguous, in one pass."""
    return x.to(torch.float64, memory_format=torch.contiguous_format)


def transform_matrix(dim1, length, inverse=False):
    """The L x L matrix of eq. 2.4 (eq. 2.9 with its 1/L when `inverse`) as residues:
    entry (k, n) is a^(kn) with a = 2^(2b/L), a^-1 for the inverse. Symmetric."""
    check_length(dim1, length)
    f = dim1.modulus
    root = pow(2, 2 * dim1.b // length, f)
    scale = 1
    if inverse:
        root, scale = pow(root, -1, f), pow(length, -1, f)
    return torch.tensor([[scale * pow(root, k * n, f) % f for n in range(length)]
                         for k in range(length)], dtype=torch.int64)


def _fnt2d(x, bound, dim1, inverse=False):
    """Eq. 2.10 as exact modular matrix products over the last two dimensions, on int64
    x with abs(x) <= bound <= 2^(b+2): each pass transforms the columns and transposes
    (T is symmetric), so two give T X T. Returns (result, its bound)."""
    length = x.shape[-1]
    if x.shape[-2] != length:
        raise ValueError(f"want square L x L tiles, not {tuple(x.shape[-2:])}")
    matrix = transform_matrix(dim1, length, inverse)
    for _ in range(2):
        shift, digits = _digits(matrix, length, bound, dim1)
        flat, bound = _mod_matmul(_as_float(x.transpose(-1, -2)).reshape(-1, length), bound,
                                  shift, digits, dim1)
        x = flat.reshape(x.shape)
    return x, bound


def fnt2d_residues(values, dim1, inverse=False):
    """The residues (0..2^b) of `fnt2d` on the codes of `values` (any int64 integers,
    abs(values) < 2^63), computed as exact modular matrix products: the software DFNT's
    transform."""
    if dim1.b > 32:
        raise ValueError(f"tensors are limited to b <= 32, not b={dim1.b}")
    y, bound = _fnt2d(*_reduced_input(values.to(torch.int64, copy=True), dim1), dim1, inverse)
    return _canonical(y, bound, dim1)


def _per_bin(x):
    """(..., C, L, L) -> (L*L, B, C) float64, B the product of the leading dimensions:
    one matrix per frequency bin, contiguous (a batched matmul over a permuted view
    ran 25x slower than over a contiguous copy)."""
    channels, rows, cols = x.shape[-3:]
    return _as_float(x.reshape(-1, channels, rows * cols).permute(2, 0, 1))


@dataclass(frozen=True)
class WeightSpectra:
    """A layer's transformed weights, ready for `DFNTConv.correlate`: per frequency bin
    a (C, O) matrix of residues as its `_digits`, made for inputs abs(x) <= x_bound."""

    length: int
    out_channels: int
    x_bound: int
    shift: int
    digits: tuple

    @classmethod
    def of(cls, residues, dim1):
        """From (O, C, L, L) residues 0..2^b, for inputs reduced to 2^(b+2)."""
        out_channels, channels, length = residues.shape[:3]
        per_bin = residues.reshape(out_channels, channels, length * length).permute(2, 1, 0)
        x_bound = 1 << (dim1.b + 2)
        shift, digits = _digits(per_bin.contiguous(), channels, x_bound, dim1)
        return cls(length, out_channels, x_bound, shift, tuple(digits))

    def accumulate(self, xs, x_bound, dim1):
        """Per bin, the products with (bins, B, C) inputs summed over the channels:
        (bins, B, O) and its bound."""
        if x_bound > self.x_bound:
            raise ValueError(f"inputs up to {x_bound}, the spectra were cut for {self.x_bound}")
        return _mod_matmul(xs, x_bound, self.shift, self.digits, dim1)


def pointwise_accumulate(x, w, dim1):
    """Same result as `pointwise_accumulate_dim1`, computed as one exact modular matrix
    product per frequency bin (the residue of a sum is unique); codes in, codes out.
    """
    lead, (rows, cols) = x.shape[:-3], x.shape[-2:]
    spectra = WeightSpectra.of(dim1.decode(w), dim1)
    ys, bound = spectra.accumulate(_per_bin(dim1.decode(x)), dim1.modulus, dim1)
    ys = _canonical(ys, bound, dim1)
    return dim1.encode(ys.permute(1, 2, 0).reshape(*lead, w.shape[0], rows, cols))


def check_bound(dim1, channels, kernel, x_bits, w_bits, layer="convolution"):
    """Eq. 2.11 from integer widths: every output of a C-channel k x k convolution of
    signed `x_bits` inputs and `w_bits` weights must lie within +-(F - 1)/2, so the
    residue names it uniquely. Returns the worst-case abs(output).
    """
    for name, value in (("x_bits", x_bits), ("w_bits", w_bits), ("channels", channels),
                        ("kernel", kernel)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{layer}: {name} must be a positive integer, not {value!r}")
    peak = channels * kernel * kernel * (1 << (x_bits - 1)) * (1 << (w_bits - 1))
    limit = (dim1.modulus - 1) // 2
    if peak > limit:
        raise DFNTBoundError(
            f"{layer}: eq. 2.11 bound fails: {channels} channels x {kernel}x{kernel} kernel x "
            f"|x| <= 2^{x_bits - 1} x |w| <= 2^{w_bits - 1} gives peak {peak} > (F - 1)/2 = "
            f"{limit} for modulus F = 2^{dim1.b} + 1; use a larger b, narrower widths or "
            f"fewer channels")
    return peak


def _tiles(x, tile, rows, cols):
    """(N, C, H, W) -> (N, rows, cols, C, tile, tile): the image zero-extended to whole
    tiles, in row-major tile order."""
    n, c, height, width = x.shape
    x = torch.nn.functional.pad(x, (0, cols * tile - width, 0, rows * tile - height))
    return x.reshape(n, c, rows, tile, cols, tile).permute(0, 2, 4, 1, 3, 5)


@dataclass(frozen=True)
class DFNTConv:
    """One integer convolution layer computed by the DFNT.

    Parameters: `b` (modulus 2^b + 1), the signed widths of inputs and weights,
    the channels and kernel (checked against eq. 2.11 here), the transform
    `length` L (a power of two, k <= L <= 2b; None picks the smallest that
    holds a whole image's linear convolution, H + k - 1, capped at 2b) and
    `padding`. Each L x L transform tile carries T = L - k + 1 input rows and
    columns of the unpadded image; the padding is cut from the full result.
    """

    channels: int
    kernel: int
    b: int = 32
    x_bits: int = 8
    w_bits: int = 8
    length: int | None = None
    padding: int = 0

    def __post_init__(self):
        dim1 = Dim1(self.b)     # the engine's diminished-1 units' widths
        if self.length is not None:
            check_length(dim1, self.length)
            if self.length < self.kernel:
                raise ValueError(f"FNT length {self.length} is shorter than the "
                                 f"{self.kernel}x{self.kernel} kernel")
        elif self.kernel > 2 * self.b:
            raise ValueError(f"a {self.kernel}x{self.kernel} kernel needs an FNT longer than "
                             f"2b = {2 * self.b}; use a larger b")
        if not isinstance(self.padding, int) or self.padding < 0:
            raise ValueError(f"padding must be a non-negative integer, not {self.padding!r}")
        check_bound(dim1, self.channels, self.kernel, self.x_bits, self.w_bits)

    @property
    def dim1(self):
        return Dim1(self.b)

    def transform_length(self, height, width):
        if self.length is not None:
            return self.length
        needed = max(height, width) + self.kernel - 1
        return max(2, min(2 * self.b, 1 << math.ceil(math.log2(needed))))

    def check_data(self, name, values, bits):
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        if values.dtype.is_floating_point or values.dtype == torch.bool:
            raise TypeError(f"{name} must be an integer tensor, not {values.dtype}")
        if values.numel() and (int(values.min()) < lo or int(values.max()) > hi):
            raise DFNTBoundError(f"{name} holds values in {int(values.min())}..{int(values.max())}, "
                                 f"outside the declared signed {bits}-bit range {lo}..{hi}")

    def weights(self, w, length):
        """Transform the (O, C, k, k) weights once, flipped (correlation) and zero-padded,
        with the diminished-1 butterflies: the codes the engine loads."""
        dim1 = self.dim1
        return fnt2d(dim1.encode(self._padded_kernels(w, length)), dim1)

    def spectra(self, w, length):
        """The same transform as `weights`, for the software DFNT (`correlate`)."""
        return WeightSpectra.of(fnt2d_residues(self._padded_kernels(w, length), self.dim1),
                                self.dim1)

    def _padded_kernels(self, w, length):
        padded = (0, length - self.kernel, 0, length - self.kernel)
        return torch.nn.functional.pad(w.long().flip(-1, -2), padded)

    def __call__(self, x, w):
        if x.dim() != 4 or w.dim() != 4:
            raise ValueError(f"want x (N, C, H, W) and w (O, C, k, k), not {tuple(x.shape)} "
                             f"and {tuple(w.shape)}")
        if x.shape[1] != self.channels or w.shape[1] != self.channels or \
                w.shape[-2:] != (self.kernel, self.kernel):
            raise ValueError(f"layer is {self.channels} channels, {self.kernel}x{self.kernel}; "
                             f"got x {tuple(x.shape)}, w {tuple(w.shape)}")
        self.check_data("x", x, self.x_bits)
        self.check_data("w", w, self.w_bits)
        x, pad = self._padded(x)
        length = self.transform_length(*x.shape[-2:])
        return self._crop(self.correlate(x, self.spectra(w, length)), x, pad)

    def _padded(self, x):
        """The tiles cover the unpadded image; the full linear convolution they give holds
        every output for a padding up to k - 1, so only more is added as zeros. Returns
        the image and the padding left to cut."""
        k = self.kernel
        extra = max(0, self.padding - (k - 1))
        x = torch.nn.functional.pad(x.long(), (extra,) * 4)
        pad = self.padding - extra
        height, width = x.shape[-2:]
        if min(height, width) + 2 * pad < k:
            raise ValueError(f"padded image {height + 2 * pad}x{width + 2 * pad} is smaller than "
                             f"the {k}x{k} kernel")
        return x, pad

    def _crop(self, full, x, pad):
        k, (height, width) = self.kernel, x.shape[-2:]
        return full[:, :, k - 1 - pad:height + pad, k - 1 - pad:width + pad]

    def correlate(self, x, spectra):
        """Full linear convolution of x (N, C, H, W) with the flipped kernels whose
        transform is `spectra` (see `spectra`): (N, O, H + k - 1, W + k - 1)."""
        dim1, length = self.dim1, spectra.length
        tiles, geometry = self._tile(x, length)                       # (N, R, Q, C, L, L)
        xs, bound = _fnt2d(*_reduced_input(tiles, dim1), dim1)
        ys, bound = spectra.accumulate(_per_bin(xs), bound, dim1)    # (bins, N*R*Q, O)
        ys = ys.permute(1, 2, 0).reshape(*tiles.shape[:3], spectra.out_channels, length, length)
        pieces, bound = _fnt2d(ys, bound, dim1, inverse=True)
        pieces = dim1.centred(_canonical(pieces, bound, dim1))
        return self._overlap_add(pieces, x, length, geometry)

    def correlate_dim1(self, x, w, length):
        """`correlate` with every step in diminished-1 codes, as the engine computes:
        the butterflies of `fnt2d` and the multiply-accumulate of
        `pointwise_accumulate_dim1`. Slow; the reference for `correlate`."""
        dim1 = self.dim1
        tiles, geometry = self._tile(x, length)
        spectra = pointwise_accumulate_dim1(fnt2d(dim1.encode(tiles), dim1),
                                            self.weights(w, length), dim1)
        return self._overlap_add(dim1.decode_signed(ifnt2d(spectra, dim1)), x, length, geometry)

    def _tile(self, x, length):
        """(N, R, Q, C, L, L) tiles of T = L - k + 1 rows and columns, zero-extended."""
        k = self.kernel
        tile = length - k + 1
        rows, cols = math.ceil(x.shape[-2] / tile), math.ceil(x.shape[-1] / tile)
        return torch.nn.functional.pad(_tiles(x.long(), tile, rows, cols),
                                       (0, k - 1, 0, k - 1)), (tile, rows, cols)

    def _overlap_add(self, pieces, x, length, geometry):
        """Each tile's full linear convolution (N, R, Q, O, L, L) added at its offset."""
        k, (tile, rows, cols) = self.kernel, geometry
        n, height, width = x.shape[0], x.shape[-2], x.shape[-1]
        full = torch.zeros(n, pieces.shape[3], rows * tile + k - 1, cols * tile + k - 1,
                           dtype=torch.int64)
        for r in range(rows):
            for q in range(cols):
                full[:, :, r * tile:r * tile + length, q * tile:q * tile + length] += pieces[:, r, q]
        return full[:, :, :height + k - 1, :width + k - 1]


def dfnt_conv2d(x, w, b=32, x_bits=8, w_bits=8, padding=0, length=None):
    """`conv2d(x, w, padding=padding)` on integer tensors, exactly, through the DFNT."""
    layer = DFNTConv(channels=x.shape[1], kernel=w.shape[-1], b=b, x_bits=x_bits,
                     w_bits=w_bits, length=length, padding=padding)
    return layer(x, w)


def engine_layer(config):
    """The golden layer of a `bitfab.rtl.dfnt_conv.DFNTEngineConfig`."""
    return DFNTConv(channels=config.in_channels, kernel=config.kernel, b=config.b,
                    x_bits=config.x_bits, w_bits=config.w_bits, length=config.length,
                    padding=config.padding)


def engine_load_codes(config, w):
    """The engine's load words for (O, C, k, k) weights: each kernel's spectrum, for
    every (o, c) the column frequencies k2 in order, each the codes of rows k1."""
    spectra = engine_layer(config).weights(w, config.length)        # (O, C, k1, k2)
    return spectra.transpose(-1, -2).flatten().tolist()


def engine_input_rows(config, x):
    """(N, C, H, W) integers -> the engine's input rows: per image, tiles in row-major
    order, channels, then the tile's rows of T values (zeros past the edge)."""
    tile = config.tile
    return _tiles(x.long(), tile, config.tile_rows, config.tile_cols).reshape(-1, tile).tolist()


def engine_output_rows(config, y):
    """(N, O, Hout, Wout) outputs -> the engine's output beats of L values each."""
    groups = config.out_beats_per_row * config.length
    y = torch.nn.functional.pad(y.long(), (0, groups - y.shape[-1]))
    return y.reshape(-1, config.length).tolist()

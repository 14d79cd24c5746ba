"""The diminished-1 Fermat number transform and integer convolution through it (thesis ch. 2).

Everything here works on diminished-1 codes (`bitfab.hls_gen.dim1`) modulo
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
"""

import math
from dataclasses import dataclass

import torch

from .dim1 import Dim1, is_power_of_two
from .errors import WidthOverflowError

__all__ = ["DFNTBoundError", "check_length", "fnt", "ifnt", "fnt2d", "ifnt2d",
           "pointwise_accumulate", "pointwise_accumulate_dim1", "check_bound",
           "DFNTConv", "dfnt_conv2d", "engine_layer", "engine_load_codes", "engine_input_rows",
           "engine_output_rows"]


class DFNTBoundError(WidthOverflowError):
    """A convolution whose peak output may not fit the modulus (eq. 2.11)."""


def check_length(dim1, length):
    if not is_power_of_two(length) or not 2 <= length <= 2 * dim1.b:
        raise ValueError(f"FNT length must be a power of two in 2..{2 * dim1.b} for b={dim1.b} "
                         f"(root 2 has order {2 * dim1.b}), not {length!r}")


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


def _mulmod_sum(a, b, modulus):
    """(a @ b) mod F for residues a, b < 2^33, exact: 17-bit limbs in float64 (each limb
    product sum < 2^53 while the inner dimension is < 2^19) and 2^32 = -1 for b = 32.
    """
    shift = 17
    limb = (1 << shift) - 1
    ah, al = (a >> shift).double(), (a & limb).double()
    bh, bl = (b >> shift).double(), (b & limb).double()
    high = torch.matmul(ah, bh).long() % modulus
    middle = (torch.matmul(ah, bl).long() + torch.matmul(al, bh).long()) % modulus
    low = torch.matmul(al, bl).long() % modulus
    return (((high << shift) % modulus << shift) + (middle << shift) + low) % modulus


def pointwise_accumulate(x, w, dim1):
    """Same result as `pointwise_accumulate_dim1`, computed as one exact modular
    matrix product per frequency bin (the residue of a sum is unique, so the codes
    are identical); this is the fast path of the software DFNT.
    """
    if x.shape[-3] >= 1 << 19:
        raise ValueError(f"at most {(1 << 19) - 1} input channels, not {x.shape[-3]}")
    lead, (channels, rows, cols) = x.shape[:-3], x.shape[-3:]
    # Contiguous per bin: a batched matmul over the permuted views ran 25x slower than
    # over contiguous copies (0.8 s -> 0.03 s per limb product, plus one copy).
    xs = dim1.decode(x).reshape(-1, channels, rows * cols).permute(2, 0, 1).contiguous()
    ws = dim1.decode(w).reshape(w.shape[0], channels, rows * cols).permute(2, 1, 0).contiguous()
    ys = _mulmod_sum(xs, ws, dim1.modulus)                                     # (bins, B, O)
    return dim1.encode(ys.permute(1, 2, 0).reshape(*lead, w.shape[0], rows, cols))


def check_bound(dim1, channels, kernel, x_bits, w_bits, layer="convolution"):
    """Eq. 2.11 from integer widths: every output of a C-channel k x k convolution of
    signed `x_bits` inputs and `w_bits` weights must lie within +-(F - 1)/2, so the
    residue names it uniquely. Returns the worst-case |output|.
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
        dim1 = Dim1(self.b)
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
        """Transform the (O, C, k, k) weights once: flipped (correlation), zero-padded."""
        dim1 = self.dim1
        flipped = w.long().flip(-1, -2)
        padded = torch.nn.functional.pad(flipped, (0, length - self.kernel, 0, length - self.kernel))
        return fnt2d(dim1.encode(padded), dim1)

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
        dim1, k = self.dim1, self.kernel
        # The tiles cover the unpadded image; the full linear convolution they give
        # holds every output for a padding up to k - 1 (more is explicit zeros).
        extra = max(0, self.padding - (k - 1))
        x = torch.nn.functional.pad(x.long(), (extra,) * 4)
        pad = self.padding - extra
        n, c, height, width = x.shape
        if min(height, width) + 2 * pad < k:
            raise ValueError(f"padded image {height + 2 * pad}x{width + 2 * pad} is smaller than "
                             f"the {k}x{k} kernel")
        length = self.transform_length(height, width)
        return self.correlate(x, self.weights(w, length), length)[
            :, :, k - 1 - pad:height + pad, k - 1 - pad:width + pad]

    def correlate(self, x, spectra_w, length, pointwise=pointwise_accumulate):
        """Full linear convolution of x with the flipped kernels whose transform is
        `spectra_w` (see `weights`): (N, O, H + k - 1, W + k - 1)."""
        dim1, k = self.dim1, self.kernel
        n, c, height, width = x.shape
        tile = length - k + 1
        rows, cols = math.ceil(height / tile), math.ceil(width / tile)
        tiles = torch.nn.functional.pad(_tiles(x, tile, rows, cols), (0, k - 1, 0, k - 1))
        # tiles: (N, R, Q, C, L, L)
        spectra = pointwise(fnt2d(dim1.encode(tiles), dim1), spectra_w, dim1)
        pieces = dim1.decode_signed(ifnt2d(spectra, dim1))                # (N, R, Q, O, L, L)
        # Overlap-add: each tile's full linear convolution lands at its own offset.
        full = torch.zeros(n, spectra_w.shape[0], rows * tile + k - 1, cols * tile + k - 1,
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

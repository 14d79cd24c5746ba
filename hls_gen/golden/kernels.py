"""Integer kernels of the golden model: exactly what the hardware computes.

Every tensor here is int64 and every operation is exact: popcounts are integer
convolutions of 0/1 tensors, coefficients are fixed-point integers, activation
codes come from integer comparisons. No floats, no Amaranth, no cocotb.
Testbenches and the IR (`bitfab.hls_gen.golden.ir`) call these functions.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = [
    "Geometry", "to_planes", "and_popcounts", "merge_coefficients",
    "xor_popcounts", "xnor_dot", "threshold_codes",
]


@dataclass(frozen=True)
class Geometry:
    """How a layer's inputs reach each output: a dense product or a 2-D convolution.

    For ``kind="linear"`` only `in_features` matters; for ``"conv2d"`` the
    input is (B, C, H, W) and the weights (C_out, C_in / groups, kh, kw).
    """

    kind: str
    stride: tuple = (1, 1)
    padding: tuple = (0, 0)
    groups: int = 1

    def __post_init__(self):
        if self.kind not in ("linear", "conv2d"):
            raise ValueError(f"geometry kind must be 'linear' or 'conv2d', not {self.kind!r}")

    def apply(self, x, w, pad_value=0):
        """sum over inputs of x * w, for 0/1 int64 tensors: an exact popcount."""
        if self.kind == "linear":
            return x @ w.T
        ph, pw = self.padding
        if ph or pw:
            x = F.pad(x, (pw, pw, ph, ph), value=pad_value)
        return F.conv2d(x, w, stride=self.stride, groups=self.groups)


def to_planes(codes, encoding, n):
    """Activation codes (B, C, ...) to n binary planes (B, n, C, ...), int64 0/1.

    encoding: ``"bitplanes"``: plane b is bit b of an unsigned code (the input
    pixels); ``"onehot"``: plane j is ``code == j + 1`` (PA bases V_j, eq. 3.18,
    code 0 is the zero piece and sets no plane); ``"sign"``: one plane, the
    code itself (1 means +1, 0 means -1).
    """
    if encoding == "bitplanes":
        shifts = torch.arange(n).view(1, n, *([1] * (codes.dim() - 1)))
        return (codes.unsqueeze(1) >> shifts) & 1
    if encoding == "onehot":
        levels = torch.arange(1, n + 1).view(1, n, *([1] * (codes.dim() - 1)))
        return (codes.unsqueeze(1) == levels).long()
    if encoding == "sign":
        return codes.unsqueeze(1).long()
    raise ValueError(f"unknown activation encoding {encoding!r}")


def and_popcounts(planes, bases, geometry):
    """M x N AND-popcounts, eq. 3.20: popcount(T_i AND V_j) for every pair.

    planes: (B, N, ...) activation bases; bases: (M, C_out, ...) weight bases.
    Returns (B, M, N, C_out, ...). Zero padding is exact: a 0 sets no base.
    """
    batch, n = planes.shape[:2]
    m, c_out = bases.shape[:2]
    groups = geometry.groups
    kernel = bases.shape[2:]
    # One product for all pairs: the N planes go into the batch, the M bases into
    # the output channels, interleaved so that each group keeps its own channels.
    weights = (bases.reshape(m, groups, c_out // groups, *kernel).transpose(0, 1)
               .reshape(groups * m * (c_out // groups), *kernel))
    out = geometry.apply(planes.flatten(0, 1), weights)
    spatial = out.shape[2:]
    out = out.reshape(batch, n, groups, m, c_out // groups, *spatial)
    return out.permute(0, 3, 1, 2, 4, *range(5, 5 + len(spatial))).reshape(
        batch, m, n, c_out, *spatial)


def merge_coefficients(popcounts, coefficients):
    """eq. 3.19: Y = sum_k phi_k * popcount_k, with phi_k as (M, N) fixed-point integers."""
    shape = (1, *coefficients.shape) + (1,) * (popcounts.dim() - 3)
    return (popcounts * coefficients.view(shape)).sum(dim=(1, 2))


def xor_popcounts(bits, weight_bits, geometry, pad_bit=0):
    """popcount(x XOR w) per output: the number of sign disagreements.

    x XOR w = x (1 - w) + (1 - x) w, so it is two AND-popcounts. The border
    holds `pad_bit` (0 is the -1 of a +-1 code).
    """
    ones_x = 1 - bits
    pad_not = 1 - pad_bit
    return (geometry.apply(bits, 1 - weight_bits, pad_bit)
            + geometry.apply(ones_x, weight_bits, pad_not))


def xnor_dot(xor_count, fan_in):
    """The +-1 dot product K - 2 * popcount(XOR) (the thesis's eq. 3.21, corrected:
    it prints N - 2 * bitcount(XNOR), which has the sign of the result reversed)."""
    return fan_in - 2 * xor_count


def threshold_codes(acc, thresholds, descending):
    """N integer comparisons per channel: code = #{j : s * Y >= T_j}.

    acc: (B, C, ...); thresholds: (C, N) int64; descending: (C,) bool, True
    where the batch-norm scale is negative and the comparison is on -Y.
    Thresholds are increasing along N, so the comparisons form a thermometer
    and the count is the next layer's activation code 0..N.
    """
    view = (1, -1) + (1,) * (acc.dim() - 2)
    signed = torch.where(descending.view(view), -acc, acc)
    t_view = (1, *thresholds.shape) + (1,) * (acc.dim() - 2)
    return (signed.unsqueeze(2) >= thresholds.view(t_view)).sum(dim=2)

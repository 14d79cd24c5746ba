"""Diminished-1 arithmetic modulo the Fermat number F = 2^b + 1 (thesis ch. 2, Algorithm 1).

A residue x in 0..2^b is held in b + 1 bits (Leibowitz's code): bit b is the
zero indicator, the b low bits hold x - 1. So 1..2^b are the codes 0..2^b - 1
and zero is the single code 2^b (zero flag set, low bits clear). Every code
this module returns is canonical; `check_codes` refuses anything else.

The functions follow Algorithm 1 step by step (the hardware in `bitfab.rtl.dim1`
does the same steps) and take Python ints or int64 tensors alike. Two places
where the thesis's pseudo-code is off are corrected and tested against the
modular definition: negation is the b-bit complement of X_b (the text's
"2^b - X_b" is one too many; its prose says "complemented"), and the
multiplication's special case when Y == 2^b - 1 returns -X.

Tensors are limited to b <= 32 (a b-bit product must fit int64 in two halves);
Python ints take any b.
"""

from dataclasses import dataclass

import torch

__all__ = ["HARDWARE_WIDTHS", "Dim1", "is_power_of_two"]

#: The widths b the diminished-1 units in `bitfab.rtl.dim1` take (2^t, t = 2..6).
HARDWARE_WIDTHS = (4, 8, 16, 32, 64)


def is_power_of_two(value):
    return isinstance(value, int) and value > 0 and value & (value - 1) == 0


def _where(cond, a, b):
    if isinstance(cond, torch.Tensor):
        return torch.where(cond, a, b)
    return a if cond else b


@dataclass(frozen=True)
class Dim1:
    """Diminished-1 code for b data bits; the modulus is 2^b + 1.

    As the specification of the units in `bitfab.rtl.dim1` it takes their widths,
    `HARDWARE_WIDTHS`, and refuses the rest. The arithmetic itself holds for any
    b >= 2 (the FNT wants b = 2^t): ``Dim1(b, any_width=True)`` computes modulo
    2^b + 1 for such a b, with no hardware to match.
    """

    b: int
    any_width: bool = False

    def __post_init__(self):
        if not isinstance(self.b, int) or isinstance(self.b, bool) or self.b < 2:
            raise ValueError(f"diminished-1 width b must be an integer >= 2, not {self.b!r}")
        if not self.any_width and self.b not in HARDWARE_WIDTHS:
            raise ValueError(f"diminished-1 width b must be 2^t for t = 2..6 (4, 8, 16, 32, "
                             f"64), as the hardware units take, not {self.b}; "
                             f"Dim1(b, any_width=True) computes modulo 2^b + 1 for any b >= 2")

    @property
    def modulus(self):
        return (1 << self.b) + 1

    @property
    def mask(self):
        return (1 << self.b) - 1

    @property
    def zero(self):
        """The code of 0: the zero indicator set, the data bits clear."""
        return 1 << self.b

    def _check_tensor(self, value):
        if isinstance(value, torch.Tensor) and self.b > 32:
            raise ValueError(f"diminished-1 tensors are limited to b <= 32, not b={self.b}; "
                             f"use Python ints")

    def check_codes(self, codes, name="code"):
        """Raise ValueError unless every code is canonical (0..2^b - 1, or exactly 2^b)."""
        if isinstance(codes, torch.Tensor):
            bad = (codes < 0) | (codes > self.zero)
            if bool(bad.any()):
                index = tuple(int(i) for i in bad.nonzero()[0])
                raise ValueError(f"{name} {int(codes[index])} at {index} is not a b={self.b} "
                                 f"diminished-1 code (0..{self.zero})")
        elif not 0 <= codes <= self.zero:
            raise ValueError(f"{name} {codes} is not a b={self.b} diminished-1 code "
                             f"(0..{self.zero})")

    # -- conversions -------------------------------------------------------------------
    def encode(self, x):
        """Any integer (or int64 tensor) -> the code of x mod 2^b + 1 (nb_to_d-1)."""
        self._check_tensor(x)
        residue = x % self.modulus
        return _where(residue == 0, self.zero, residue - 1)

    def decode(self, code):
        """Code -> residue in 0..2^b (d-1_to_nb)."""
        self._check_tensor(code)
        return _where(code == self.zero, 0, code + 1)

    def decode_signed(self, code):
        """Code -> the residue's representative in -(2^b)/2 .. 2^b / 2 (eq. 2.11's range)."""
        return self.centred(self.decode(code))

    def centred(self, residue):
        """Residue 0..2^b -> its representative in -(2^b)/2 .. 2^b / 2."""
        return _where(residue > self.modulus // 2, residue - self.modulus, residue)

    # -- Algorithm 1 -------------------------------------------------------------------
    def add(self, x, y):
        """X + Y: the b-bit sum plus its complemented carry; either operand zero passes the other."""
        total = (x & self.mask) + (y & self.mask)
        carry = total >> self.b
        # Without a carry, (X + Y) + 1 may reach 2^b: that is the zero result, flag set.
        inverted_end_around = (total & self.mask) + (1 - carry)
        return _where(x == self.zero, y, _where(y == self.zero, x, inverted_end_around))

    def neg(self, x):
        """-X: the complement of the data bits; zero stays zero."""
        return _where(x == self.zero, x, ~x & self.mask)

    def sub(self, x, y):
        return self.add(x, self.neg(y))

    def mul_pow2(self, x, k):
        """X * 2^k for any integer k, or a tensor of them (2^(2b) = 1, 2^b = -1).

        One left shift by 1 is a rotation with the wrapped bit complemented; k < b
        such shifts are a rotation by k with the k wrapped bits complemented, and
        2^(b + k) is the negation of 2^k. So 2^-k = 2^(2b - k) is a shift too.
        """
        k = k % (2 * self.b)
        negate, k = k // self.b, k % self.b
        low = x & self.mask
        wrapped = low >> (self.b - k)
        rotated = ((low << k) & self.mask) | (~wrapped & ((1 << k) - 1))
        result = _where(x == self.zero, x, rotated)
        return _where(negate == 1, self.neg(result), result)

    def mul(self, x, y):
        """X * Y: zero and -1 (code 2^b - 1, the value 2^b) are special; otherwise the
        b-bit product of the normal-binary operands split into its high and low b
        bits, Z_l - Z_h (2^b = -1).
        """
        minus_one = self.mask
        high, low = self._product_halves(self.decode(x) & self.mask, self.decode(y) & self.mask)
        general = self.sub(self.encode(low), self.encode(high))
        result = _where(x == minus_one, self.neg(y), _where(y == minus_one, self.neg(x), general))
        return _where((x == self.zero) | (y == self.zero), self.zero, result)

    def _product_halves(self, a, b):
        """(high, low) b-bit halves of a * b for a, b < 2^b, without overflowing int64."""
        if self.b <= 31 or not isinstance(a, torch.Tensor):
            product = a * b
            return product >> self.b, product & self.mask
        half = self.b // 2
        half_mask = (1 << half) - 1
        upper = (a >> half) * b                           # < 2^(b + half)
        lower = (a & half_mask) * b
        low_sum = lower + ((upper & half_mask) << half)   # < 2^(b + half + 1)
        return (upper >> half) + (low_sum >> self.b), low_sum & self.mask

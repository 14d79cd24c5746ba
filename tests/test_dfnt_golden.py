"""The diminished-1 / DFNT golden model against the modular definitions and independent references.

The arithmetic is checked against "decode, do the integer operation, reduce
mod 2^b + 1" (exhaustively for b <= 8, 100k seeded vectors at b = 16 and 32),
the FNT against eq. 2.4 evaluated term by term, the convolution against
torch's conv2d on random tensors and real photos, and, at b = 16 (65537 is
prime), against sympy's number-theoretic convolution.
"""

import random

import pytest
import torch

from bitfab.hls_gen.golden.dfnt import (DFNTBoundError, DFNTConv, check_bound, check_length,
    dfnt_conv2d, fnt, fnt2d, fnt2d_residues, ifnt, ifnt2d, pointwise_accumulate,
    pointwise_accumulate_dim1)
from bitfab.hls_gen.golden.dim1 import Dim1

SEED = 20261123


def _operands(dim1, count=None):
    """Every pair of codes (count None) or `count` seeded random pairs with the specials first."""
    if count is None:
        codes = torch.arange(dim1.zero + 1)
        x, y = torch.meshgrid(codes, codes, indexing="ij")
        return x.flatten(), y.flatten()
    generator = torch.Generator().manual_seed(SEED)
    x = torch.randint(0, dim1.zero + 1, (count,), generator=generator)
    y = torch.randint(0, dim1.zero + 1, (count,), generator=generator)
    specials = torch.tensor([0, 1, dim1.mask - 1, dim1.mask, dim1.zero])
    grid = torch.cartesian_prod(specials, specials)
    x[:len(grid)], y[:len(grid)] = grid[:, 0], grid[:, 1]
    return x, y


def _modular_reference(dim1, op, x, y):
    """The operation on residues as Python integers (no int64 limits)."""
    f = dim1.modulus
    fns = {"add": lambda a, c: a + c, "sub": lambda a, c: a - c, "mul": lambda a, c: a * c}
    return [fns[op](dim1.decode(int(a)), dim1.decode(int(c))) % f for a, c in zip(x, y)]


def _accepts(check, *args):
    """False if `check(*args)` refuses its arguments (ValueError or TypeError)."""
    try:
        check(*args)
    except (ValueError, TypeError):
        return False
    return True


def _expect_equal(got, want, what):
    got, want = list(map(int, got)), list(map(int, want))
    for index, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"{what}: first mismatch at {index}: got {g}, want {w} (seed {SEED})"
    assert len(got) == len(want)


@pytest.mark.parametrize("b", [2, 3, 4, 5, 8, 16, 32])
@pytest.mark.parametrize("op", ["add", "sub", "mul"])
def test_two_operand_ops_match_modular_arithmetic(b, op):
    dim1 = Dim1(b, any_width=True)
    x, y = _operands(dim1, None if b <= 8 else 100_000)
    got = dim1.decode(getattr(dim1, op)(x, y))
    _expect_equal(got, _modular_reference(dim1, op, x, y), f"b={b} {op}")


@pytest.mark.parametrize("b", [2, 4, 8, 16, 32, 64])
def test_one_operand_ops_and_conversions(b):
    dim1 = Dim1(b, any_width=True)
    f = dim1.modulus
    rng = random.Random(SEED)
    values = list(range(f)) if b <= 8 else [0, 1, f - 1, f - 2, 1 << b - 1] + \
        [rng.randrange(f) for _ in range(2000)]
    for value in values:
        code = dim1.encode(value)
        assert dim1.decode(code) == value and dim1.encode(value - 3 * f) == code
        assert dim1.decode(dim1.neg(code)) == -value % f
        for k in (0, 1, b - 1, b, b + 1, 2 * b - 1, 2 * b + 3, -1, -b - 2):
            assert dim1.decode(dim1.mul_pow2(code, k)) == value * pow(2, k, f) % f, (value, k)
    assert dim1.encode(0) == 1 << b and dim1.decode_signed(dim1.encode(-1)) == -1


def test_python_ints_agree_with_tensors_at_b64():
    dim1 = Dim1(64)
    rng = random.Random(SEED)
    for _ in range(5000):
        a, c = rng.randrange(dim1.modulus), rng.randrange(dim1.modulus)
        assert dim1.decode(dim1.mul(dim1.encode(a), dim1.encode(c))) == a * c % dim1.modulus
        assert dim1.decode(dim1.add(dim1.encode(a), dim1.encode(c))) == (a + c) % dim1.modulus
    with pytest.raises(ValueError, match="b <= 32"):
        dim1.encode(torch.tensor([1]))


def test_bad_codes_and_widths_are_refused():
    dim1 = Dim1(8)
    with pytest.raises(ValueError, match="257 at \\(1,\\) is not a b=8"):
        dim1.check_codes(torch.tensor([3, 257]))
    with pytest.raises(ValueError, match="b must be an integer >= 2, not 1"):
        Dim1(1)
    with pytest.raises(ValueError, match="power of two dividing 16 for b=8"):
        fnt(torch.zeros(3, 32, dtype=torch.int64), dim1)
    with pytest.raises(ValueError, match="not a b=8 diminished-1 code"):
        fnt(torch.full((4,), 300), dim1)


@pytest.mark.parametrize("b", [4, 8, 16, 32])
def test_fnt_equals_its_definition_and_inverts(b):
    dim1 = Dim1(b)
    f = dim1.modulus
    generator = torch.Generator().manual_seed(SEED)
    length = 2
    while length <= 2 * b:
        x = torch.randint(0, f, (4, length), generator=generator)
        root = pow(2, 2 * b // length, f)
        want = [[sum(int(x[r, l]) * pow(root, l * k, f) for l in range(length)) % f
                 for k in range(length)] for r in range(4)]                       # eq. 2.4
        spectrum = fnt(dim1.encode(x), dim1)
        assert dim1.decode(spectrum).tolist() == want, (b, length)
        assert torch.equal(dim1.decode(ifnt(spectrum, dim1)), x)
        length *= 2
    image = torch.randint(0, f, (2, 8, 8), generator=generator)
    assert torch.equal(dim1.decode(ifnt2d(fnt2d(dim1.encode(image), dim1), dim1)), image)


@pytest.mark.parametrize("b", [4, 8, 16, 32])
def test_residue_transform_equals_the_butterflies(b):
    """The software DFNT's matrix-product transform gives the residues of the
    diminished-1 butterflies, forward and inverse, at every length, zeros included."""
    dim1 = Dim1(b)
    generator = torch.Generator().manual_seed(SEED + b)
    length = 2
    while length <= 2 * b:
        x = torch.randint(0, dim1.modulus, (3, length, length), generator=generator)
        x[0, 0] = 0
        x[1] = 0
        x[2, :, -1] = dim1.modulus - 1
        for inverse in (False, True):
            want = dim1.decode(fnt2d(dim1.encode(x), dim1, inverse))
            assert torch.equal(fnt2d_residues(x, dim1, inverse), want), (b, length, inverse)
        length *= 2
    assert torch.equal(fnt2d_residues(fnt2d_residues(x, dim1), dim1, inverse=True), x)


@pytest.mark.parametrize("k,size,length,b,bits", [(3, 9, 8, 32, 8), (5, 11, 8, 32, 8),
                                                  (3, 7, 4, 16, 4), (2, 6, 16, 8, 2)])
def test_software_dfnt_equals_the_dim1_computation(k, size, length, b, bits):
    """`correlate` (residues, matrix products) against `correlate_dim1` (every step in
    diminished-1 codes, the engine's arithmetic), several tiles overlap-added."""
    generator = torch.Generator().manual_seed(SEED + size)
    x, w = _random_layer(generator, 2, 2, 3, k, size, bits)
    layer = DFNTConv(channels=2, kernel=k, b=b, x_bits=bits, w_bits=bits, length=length)
    fast = layer.correlate(x, layer.spectra(w, length))
    assert torch.equal(fast, layer.correlate_dim1(x, w, length))
    assert torch.equal(fast, torch.nn.functional.conv2d(x, w, padding=k - 1))


def _random_layer(generator, n, c, o, k, size, bits):
    lo, hi = -(1 << bits - 1), 1 << bits - 1
    return (torch.randint(lo, hi, (n, c, size, size + 3), generator=generator),
            torch.randint(lo, hi, (o, c, k, k), generator=generator))


@pytest.mark.parametrize("k,size,padding,length", [(3, 9, 1, None), (5, 20, 2, 16), (7, 40, 0, None),
                                                   (1, 5, 0, 2), (3, 30, 1, 4)])
def test_conv_matches_torch_conv2d(k, size, padding, length):
    generator = torch.Generator().manual_seed(SEED + k)
    x, w = _random_layer(generator, 2, 6, 5, k, size, 8)
    want = torch.nn.functional.conv2d(x, w, padding=padding)
    got = dfnt_conv2d(x, w, b=32, padding=padding, length=length)
    assert got.shape == want.shape and int((got != want).sum()) == 0
    # Extreme inputs: every product at its peak, the sums at eq. 2.11's edge.
    x_peak, w_peak = torch.full_like(x, -128), torch.full_like(w, -128)
    assert torch.equal(dfnt_conv2d(x_peak, w_peak, padding=padding),
                       torch.nn.functional.conv2d(x_peak, w_peak, padding=padding))


def test_dim1_accumulator_equals_the_fast_path():
    dim1 = Dim1(32)
    generator = torch.Generator().manual_seed(SEED)
    x = torch.randint(0, dim1.zero + 1, (2, 3, 7, 8, 8), generator=generator)
    w = torch.randint(0, dim1.zero + 1, (4, 7, 8, 8), generator=generator)
    x[0, 0, :, 0, 0] = dim1.zero
    assert torch.equal(pointwise_accumulate(x, w, dim1), pointwise_accumulate_dim1(x, w, dim1))


def test_conv_on_real_photos():
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    photos = sklearn_datasets.load_sample_images().images        # two 427x640 RGB photos
    x = torch.stack([torch.tensor(p[100:164, 200:264]).permute(2, 0, 1) for p in photos])
    x = x.long() - 128                                            # INT8 pixels
    generator = torch.Generator().manual_seed(SEED)
    w = torch.randint(-128, 128, (8, 3, 5, 5), generator=generator)
    got = dfnt_conv2d(x, w, b=32, padding=2)
    assert torch.equal(got, torch.nn.functional.conv2d(x, w, padding=2))


def test_b16_conv_matches_sympy_ntt_convolution():
    """65537 is prime: sympy's NTT convolution is a reference nobody here wrote."""
    convolution_ntt = pytest.importorskip("sympy.discrete.convolutions").convolution_ntt
    prime = 65537
    generator = torch.Generator().manual_seed(SEED)
    x, w = _random_layer(generator, 1, 2, 2, 3, 6, 4)
    got = dfnt_conv2d(x, w, b=16, x_bits=4, w_bits=4)
    height, width, k = x.shape[2], x.shape[3], w.shape[-1]
    stride = width + k - 1                       # rows laid end to end (Kronecker substitution)
    for o in range(w.shape[0]):
        total = [0] * (stride * (height + k - 1))
        for c in range(x.shape[1]):
            flat_x = [0] * (stride * height)
            for i in range(height):
                flat_x[i * stride:i * stride + width] = x[0, c, i].tolist()
            flipped = w[o, c].flip(0, 1)
            flat_w = [0] * (stride * (k - 1) + k)
            for i in range(k):
                flat_w[i * stride:i * stride + k] = flipped[i].tolist()
            full = convolution_ntt([v % prime for v in flat_x], [v % prime for v in flat_w], prime)
            total = [(t + v) % prime for t, v in zip(total, full + [0] * len(total))]
        signed = [v - prime if v > prime // 2 else v for v in total]
        want = [[signed[(i + k - 1) * stride + j + k - 1] for j in range(width - k + 1)]
                for i in range(height - k + 1)]
        assert got[0, o].tolist() == want, o


def test_bound_from_widths_is_enforced():
    with pytest.raises(DFNTBoundError, match="eq. 2.11 bound fails: 3 channels x 3x3 kernel"):
        DFNTConv(channels=3, kernel=3, b=16, x_bits=8, w_bits=8)
    assert check_bound(Dim1(16), 2, 3, 4, 4) == 2 * 9 * 8 * 8
    layer = DFNTConv(channels=2, kernel=3, b=16, x_bits=4, w_bits=4)
    with pytest.raises(DFNTBoundError, match="x holds values in -9..7, outside the declared signed "
                                             "4-bit range -8..7"):
        layer(torch.tensor([-9, 7] * 32).reshape(1, 2, 4, 8), torch.zeros(1, 2, 3, 3, dtype=torch.int64))
    with pytest.raises(TypeError, match="integer tensor"):
        layer(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 3, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match="longer than 2b = 8"):
        DFNTConv(channels=1, kernel=9, b=4, x_bits=1, w_bits=1)


def test_a_length_that_2_is_no_root_of_is_refused():
    """b = 6, L = 8: 2 is no root of order 8 modulo 2^6 + 1 (2b / L is not whole). The
    golden model took it and returned [13, -2, -4, 6, -32, -22] where every output is
    4, with its eq. 2.11 bound check passing; now it refuses the length, as the RTL's
    transform does (`bitfab.rtl.fnt.check_fnt_length`)."""
    # The convolution refuses b = 6 itself, as the engine's diminished-1 units do.
    with pytest.raises(ValueError, match="b must be 2.t for t = 2..6 .*not 6"):
        dfnt_conv2d(torch.ones(1, 1, 7, 2, dtype=torch.int64),
                    torch.ones(1, 1, 2, 2, dtype=torch.int64), b=6, x_bits=2, w_bits=2,
                    length=8)
    with pytest.raises(ValueError, match="power of two dividing 12 for b=6.*not 8"):
        fnt(torch.zeros(8, dtype=torch.int64), Dim1(6, any_width=True))
    # Every length it takes inverts (L = 2, 4 for b = 6).
    for length in (2, 4):
        x = torch.arange(length, dtype=torch.int64)
        assert torch.equal(ifnt(fnt(x, Dim1(6, any_width=True)), Dim1(6, any_width=True)), x)
    # RTL and golden model take the same widths for the convolution (up to the golden
    # tensors' 32 bits) and the same lengths for every width the RTL has.
    from bitfab.rtl.dim1 import check_dim1_width
    from bitfab.rtl.fnt import check_fnt_length
    for b in range(0, 34):
        try:
            DFNTConv(channels=1, kernel=1, b=b, x_bits=1, w_bits=1)
            golden = True
        except ValueError:
            golden = False
        try:
            check_dim1_width(b)
            rtl = True
        except ValueError:
            rtl = False
        assert golden == rtl, b
    # Dim1 itself, the units' specification, takes the units' widths and no others.
    for b in [*range(0, 70), True, 8.0, "8", None]:
        assert _accepts(Dim1, b) == _accepts(check_dim1_width, b), b
    assert Dim1(6, any_width=True).modulus == 65
    for b in (4, 8, 16, 32, 64):
        for length in range(1, 2 * b + 3):
            try:
                check_length(Dim1(b), length)
                golden = True
            except ValueError:
                golden = False
            try:
                check_fnt_length(b, length)
                rtl = True
            except ValueError:
                rtl = False
            assert golden == rtl, (b, length)

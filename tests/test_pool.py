"""Max pooling on activation codes: the golden model's proof that pooling codes is
pooling the activation values (and that pooling before the thresholds is not, once
a batch norm's scale is negative), and the streaming unit against it in cocotb."""

import pytest
import torch
import torch.nn.functional as F

from bitfab.hls_gen.errors import BitfabError
from bitfab.hls_gen.golden.kernels import threshold_codes
from bitfab.hls_gen.golden.window import max_pool_codes
from bitfab.rtl.pool import MaxPool
from bitfab.rtl.window import WindowConfig
from bitfab.sim.runner import default_simulator, run_vectors
from bitfab.sw_driver.beats import element_values

SEED = 20261205
SIM = default_simulator()


def test_pooling_codes_is_pooling_the_activation_values():
    """Codes from thresholds (ascending and descending channels) decoded by any
    non-decreasing table of values: the code of the max is the max of the values."""
    gen = torch.Generator().manual_seed(SEED)
    acc = torch.randint(-50, 50, (4, 6, 7, 5), generator=gen)            # (B, C, H, W)
    thresholds = torch.randint(-40, 40, (6, 3), generator=gen).sort(dim=1).values
    descending = torch.tensor([False, True, False, True, True, False])
    codes = threshold_codes(acc, thresholds, descending)                   # 0..3
    beta = torch.tensor([0.0, 0.25, 0.5, 1.5], dtype=torch.float64)       # non-decreasing
    for k, s, p in [(2, 2, 0), (3, 2, 1), (3, 1, 1)]:
        pooled = max_pool_codes(codes.permute(0, 2, 3, 1), k, s, p).permute(0, 3, 1, 2)
        values = F.max_pool2d(beta[codes], k, s, p)
        assert torch.equal(beta[pooled], values), (k, s, p)
    # Pooled before the thresholds, a descending channel takes the largest accumulator,
    # whose code is the smallest: not the same.
    early = threshold_codes(F.max_pool2d(acc.double(), 2, 2).long(), thresholds, descending)
    late = max_pool_codes(codes.permute(0, 2, 3, 1), 2, 2).permute(0, 3, 1, 2)
    assert torch.equal(early[:, ~descending], late[:, ~descending])
    assert not torch.equal(early[:, descending], late[:, descending])


def test_pool_padding_is_limited_as_pytorch_s():
    with pytest.raises(BitfabError, match="padding must be at most kernel // 2 = 1, not 2"):
        max_pool_codes(torch.zeros(1, 4, 4, 1, dtype=torch.long), 3, 1, 2)
    with pytest.raises(ValueError, match="padding must be at most kernel // 2 = 1, not 2"):
        MaxPool(WindowConfig(channels=1, simd=1, kernel=3, height=4, width=4, padding=2))
    with pytest.raises(ValueError, match="pads with code 0"):
        MaxPool(WindowConfig(channels=1, simd=1, kernel=2, height=4, width=4, pad_code=1))


def _beats(planes, config):
    flat = planes.reshape(-1, config.simd).tolist()
    return [sum(v << (j * config.element_bits) for j, v in enumerate(beat)) for beat in flat]


CASES = {
    # name: (encoding, levels, channels, simd, kernel, stride, padding, height, width, images)
    "onehot_2x2_s2_folds": ("onehot", 4, 4, 2, 2, 2, 0, 6, 8, 3),
    "sign_3x3_s2_p1": ("sign", 2, 2, 1, 3, 2, 1, 7, 5, 2),
    "bitplanes_3x3_s1_p1": ("bitplanes", 17, 3, 3, 3, 1, 1, 4, 4, 2),
}


@pytest.mark.sim
@pytest.mark.parametrize("name", sorted(CASES))
def test_max_pool_cocotb(tmp_path_factory, name):
    encoding, levels, c, simd, k, s, p, h, w, images = CASES[name]
    bits = {"onehot": levels - 1, "sign": 1, "bitplanes": (levels - 1).bit_length()}[encoding]
    config = WindowConfig(channels=c, simd=simd, kernel=k, height=h, width=w, stride=s,
                          padding=p, element_bits=bits)
    gen = torch.Generator().manual_seed(SEED + len(name))
    codes = torch.randint(0, levels, (images, h, w, c), generator=gen)
    pooled = max_pool_codes(codes, k, s, p)

    def planes(t):
        return torch.tensor(element_values(t.reshape(-1, c).tolist(), encoding))

    case = {"inputs": _beats(planes(codes), config), "outputs": _beats(planes(pooled), config)}
    run_vectors(MaxPool(config), "pool", case, tmp_path_factory.getbasetemp() / "sim", SEED,
                SIM, key=name)

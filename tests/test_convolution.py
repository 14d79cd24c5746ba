"""A convolution layer in hardware: the sliding-window unit feeding a matrix-vector
unit, against the golden model's convolution, in cocotb with random stalls and
backpressure; and the golden model's proof that a convolution is the unit's
product over windows."""

from dataclasses import replace

import pytest
import torch

from bitfab.hls_gen.compiler.folding import fold
from bitfab.hls_gen.compiler.plan import map_to_hw
from bitfab.hls_gen.golden.ir import Graph
from bitfab.hls_gen.golden.kernels import Geometry
from bitfab.hls_gen.golden.window import sliding_windows
from bitfab.rtl.convolution import ConvolutionUnit
from bitfab.rtl.mvau import MVAUConfig
from bitfab.rtl.window import WindowConfig
from bitfab.hls_gen.compiler.cases import network_case
from bitfab.sim.cases import run_case
from bitfab.sim.runner import default_simulator
from bitfab.sw_driver.beats import element_values
from networks import random_layer

SEED = 20261205
SIM = default_simulator()

CASES = {
    # name: (kind, channels, simd, kernel, height, width, stride, padding, out_channels,
    #        m, n, pe, unit_simd, images)
    "pa_3x3_s1_p1": ("pa", 4, 2, 3, 5, 6, 1, 1, 6, 2, 3, 2, 6, 3),
    "xnor_3x3_s2_p1": ("xnor", 8, 4, 3, 7, 7, 2, 1, 8, 1, 1, 4, 24, 2),
    "pa_1x1": ("pa", 6, 3, 1, 4, 4, 1, 0, 4, 2, 2, 1, 3, 2),
}


def conv_layer(case, gen):
    """(the unit's layer over windows, the same weights as a convolution layer, codes)."""
    kind, c, _, k, h, w, s, p, o, m, n, *_, images = case
    layer = random_layer(gen, kind, o, k * k * c, m, n, n_out=1 if kind == "xnor" else n)
    geometry = Geometry("conv2d", (s, s), (p, p))
    if kind == "pa":      # columns (ky, kx, channel) -> the convolution's (channel, ky, kx)
        conv = replace(layer, geometry=geometry,
                       bases=layer.bases.view(m, o, k, k, c).permute(0, 1, 4, 2, 3))
    else:
        conv = replace(layer, geometry=geometry,
                       weight_bits=layer.weight_bits.view(o, k, k, c).permute(0, 3, 1, 2))
    codes = torch.randint(0, n + 1 if kind == "pa" else 2, (images, h, w, c), generator=gen)
    return layer, conv, codes


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_convolution_is_the_unit_over_windows(name):
    """The golden model's convolution (PA: zero code at the border; XNOR: -1) equals the
    window layer's product over `sliding_windows`, window by window."""
    case = CASES[name]
    layer, conv, codes = conv_layer(case, torch.Generator().manual_seed(SEED))
    k, s, p = case[3], case[6], case[7]
    windows = sliding_windows(codes, k, s, p, pad=0)
    images, rows, cols = windows.shape[:3]
    flat = layer.execute(windows.reshape(images * rows * cols, -1), {})
    whole = conv.execute(codes.permute(0, 3, 1, 2), {})
    assert torch.equal(flat.view(images, rows, cols, -1).permute(0, 3, 1, 2), whole)


@pytest.mark.sim
@pytest.mark.parametrize("name", sorted(CASES))
def test_convolution_unit_cocotb(tmp_path_factory, name):
    result = _run(tmp_path_factory, name)
    kind, c, simd, k, h, w, s, p, *_, images = CASES[name]
    window = WindowConfig(channels=c, simd=simd, kernel=k, height=h, width=w, stride=s,
                          padding=p)
    assert result["mismatches"] == 0
    assert result["items"] == images * window.out_height * window.out_width


@pytest.mark.sim
def test_a_wrong_pad_code_fails_the_bench(tmp_path_factory):
    """The bench can fail: the same PA layer with the window padding code 1 instead of
    the zero code differs from the golden model at the border."""
    with pytest.raises(RuntimeError, match="mismatches"):
        _run(tmp_path_factory, "pa_3x3_s1_p1", pad_code=1)


def _run(tmp_path_factory, name, pad_code=0):
    case = CASES[name]
    kind, c, simd, k, h, w, s, p, o, m, n, pe, unit_simd, images = case
    layer, _, codes = conv_layer(case, torch.Generator().manual_seed(SEED))
    planes = n if kind == "pa" else 1
    graph = Graph(planes, 1.0, [layer])
    [config] = fold(map_to_hw(graph), [{"pe": pe, "simd": unit_simd}])
    config = replace(config, in_beat=simd)
    window = WindowConfig(channels=c, simd=simd, kernel=k, height=h, width=w, stride=s,
                          padding=p, element_bits=planes, pad_code=pad_code)
    windows = sliding_windows(codes, k, s, p, pad=0)
    golden = network_case(graph, [config], windows.reshape(-1, k * k * c), taps=False)
    encoding = layer.input_encoding
    pixels = element_values(codes.reshape(-1, c).tolist(), encoding)
    golden["inputs"] = [window.layout.const(pixel[b:b + simd]).as_bits()
                        for pixel in pixels for b in range(0, c, simd)]
    return run_case(ConvolutionUnit(window, config), "conv", golden,
                    tmp_path_factory.getbasetemp() / "sim", SEED, SIM, idle=0.3,
                    backpressure=0.3, key=[name, pad_code])


def test_a_window_that_does_not_make_the_unit_s_vectors_is_refused():
    window = WindowConfig(channels=4, simd=2, kernel=3, height=5, width=5, element_bits=3)
    with pytest.raises(ValueError, match="the MVAU's cols is 35, the window makes 36"):
        ConvolutionUnit(window, MVAUConfig(rows=2, cols=35, n_in=3, in_beat=1))
    with pytest.raises(ValueError, match="the MVAU's in_beat is 4, the window makes 2"):
        ConvolutionUnit(window, MVAUConfig(rows=2, cols=36, n_in=3, in_beat=4))
    with pytest.raises(ValueError, match="the MVAU's n_in is 2, the window makes 3"):
        ConvolutionUnit(window, MVAUConfig(rows=2, cols=36, n_in=2, in_beat=2))

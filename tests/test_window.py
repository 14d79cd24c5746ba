"""The sliding-window unit against its golden model: the windows of random images
(several per run, so image boundaries are crossed) under random stalls and
backpressure, over kernels 1 to 7, strides 1 and 2, padding with a pad code that
is not zero; the golden model against torch's unfold; and both refusing the
same parameters."""

import itertools
import random

import pytest
import torch
import torch.nn.functional as F

from bitfab.hls_gen.errors import BitfabError
from bitfab.hls_gen.golden.window import check_window, sliding_windows
from bitfab.rtl.window import SlidingWindow, WindowConfig
from bitfab.sim.runner import default_simulator, run_vectors

SEED = 20261205
SIM = default_simulator()


def test_windows_are_torch_s_unfold_in_the_hardware_s_order():
    gen = torch.Generator().manual_seed(SEED)
    for k, s, p in [(1, 1, 0), (3, 1, 1), (3, 2, 1), (5, 2, 2), (7, 1, 3), (2, 2, 1)]:
        x = torch.randint(0, 4, (2, 9, 7, 3), generator=gen)
        got = sliding_windows(x, k, s, p)
        # unfold: (N, C * k * k, L) with C slowest; ours: (N, H', W', k, k, C).
        want = F.unfold(x.permute(0, 3, 1, 2).double(), k, padding=p, stride=s)
        want = want.round().long().view(2, 3, k, k, got.shape[1], got.shape[2])
        assert torch.equal(got, want.permute(0, 4, 5, 2, 3, 1)), (k, s, p)


def test_padding_holds_the_pad_code():
    x = torch.zeros(1, 2, 2, 1, dtype=torch.long)
    windows = sliding_windows(x, 3, 1, 1, pad=1)
    assert windows.shape == (1, 2, 2, 3, 3, 1)
    assert windows[0, 0, 0, :, :, 0].tolist() == [[1, 1, 1], [1, 0, 0], [1, 0, 0]]


def test_golden_and_rtl_refuse_the_same_windows():
    for h, k, s, p in itertools.product((1, 2, 5), (0, 1, 3, 7, 8), (0, 1, 2, 3), (-1, 0, 2, 6)):
        try:
            check_window(h, 4, k, s, p)
            golden = True
        except BitfabError:
            golden = False
        try:
            WindowConfig(channels=1, simd=1, kernel=k, height=h, width=4, stride=s, padding=p)
            rtl = True
        except ValueError:
            rtl = False
        assert golden == rtl, (h, k, s, p)
    with pytest.raises(ValueError, match="simd 3 does not divide 4 channels"):
        WindowConfig(channels=4, simd=3, kernel=3, height=4, width=4)
    with pytest.raises(ValueError, match="pad_code must fit 2 unsigned bits, not 4"):
        WindowConfig(channels=1, simd=1, kernel=3, height=4, width=4, element_bits=2,
                     pad_code=4)


def _beats(elements, config):
    """(..., channels) codes -> beats of `simd` elements, element 0 low."""
    flat = elements.reshape(-1, config.simd).tolist()
    return [sum(v << (j * config.element_bits) for j, v in enumerate(beat)) for beat in flat]


CASES = {
    # name: (channels, simd, kernel, height, width, stride, padding, bits, pad, images)
    "k3_s1_p1_folds": (4, 2, 3, 5, 6, 1, 1, 2, 1, 3),
    "k3_s2_unused_rows": (2, 2, 3, 6, 6, 2, 0, 1, 0, 2),
    "k1": (3, 1, 1, 4, 3, 1, 0, 3, 0, 3),
    "k7_s1_p3_xnor_pad": (1, 1, 7, 8, 8, 1, 3, 1, 1, 2),
    "k5_s2_p2": (2, 1, 5, 9, 7, 2, 2, 2, 3, 2),
    "k2_s2_p1_one_column": (2, 2, 2, 5, 1, 2, 1, 2, 2, 3),
}


@pytest.mark.sim
@pytest.mark.parametrize("name", sorted(CASES))
def test_sliding_window_cocotb(tmp_path_factory, name):
    channels, simd, k, h, w, s, p, bits, pad, images = CASES[name]
    config = WindowConfig(channels=channels, simd=simd, kernel=k, height=h, width=w,
                          stride=s, padding=p, element_bits=bits, pad_code=pad)
    gen = torch.Generator().manual_seed(SEED + len(name))
    x = torch.randint(0, 1 << bits, (images, h, w, channels), generator=gen)
    windows = sliding_windows(x, k, s, p, pad)
    case = {"inputs": _beats(x, config), "outputs": _beats(windows, config)}
    assert len(case["outputs"]) == images * config.out_beats
    run_vectors(SlidingWindow(config), "window", case, tmp_path_factory.getbasetemp() / "sim",
                SEED, SIM, key=name)


@pytest.mark.sim
def test_a_window_bench_fails_on_a_wrong_window(tmp_path):
    """The bench can fail: one output element off gives a mismatch naming it."""
    config = WindowConfig(channels=1, simd=1, kernel=3, height=4, width=4, padding=1,
                          element_bits=2)
    x = torch.tensor(random.Random(SEED).choices(range(4), k=16)).view(1, 4, 4, 1)
    outputs = _beats(sliding_windows(x, 3, 1, 1), config)
    outputs[40] ^= 1
    with pytest.raises(Exception, match="first mismatch at output 40"):
        run_vectors(SlidingWindow(config), "window", {"inputs": _beats(x, config),
                                                      "outputs": outputs},
                    tmp_path / "sim", SEED, SIM, key="wrong")


def _stream(config, images):
    """Amaranth's simulator, input always valid, output always ready: the cycles of
    every input and output transfer, the outputs checked against the golden model."""
    from amaranth.sim import Simulator
    c = config
    dut = SlidingWindow(config)
    gen = torch.Generator().manual_seed(SEED)
    x = torch.randint(0, 1 << c.element_bits, (images, c.height, c.width, c.channels),
                      generator=gen)
    beats = _beats(x, config)
    want = _beats(sliding_windows(x, c.kernel, c.stride, c.padding), config)
    got, out_cycles, in_cycles = [], [], []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        sent, cycle = 0, 0
        while len(got) < len(want) and cycle < 10 * len(want):
            ctx.set(dut.i.valid, sent < len(beats))
            ctx.set(dut.i.payload.as_value(), beats[min(sent, len(beats) - 1)])
            _, _, i_ready, o_valid, o_payload = await ctx.tick().sample(
                dut.i.ready, dut.o.valid, dut.o.payload.as_value())
            if sent < len(beats) and i_ready:
                in_cycles.append(cycle)
                sent += 1
            if o_valid:
                got.append(o_payload)
                out_cycles.append(cycle)
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert got == want
    return in_cycles, out_cycles


@pytest.mark.parametrize("stride", [1, 2])
def test_an_image_streams_one_window_beat_per_cycle(stride):
    """Padding beats go out at once (the first four cycles after reset: one to stage
    it, one to read, two through the output FIFO), a beat that needs an image row
    follows the beat completing that row four cycles later, and once the first window's rows are in,
    the rest of the image streams one beat per cycle with no gap."""
    config = WindowConfig(channels=2, simd=1, kernel=3, height=6, width=5, stride=stride,
                          padding=1, element_bits=2)
    in_cycles, out_cycles = _stream(config, 1)
    gaps = [(a, b) for a, b in zip(out_cycles, out_cycles[1:]) if b != a + 1]
    # The first window's first pixel row (ky = 1, image row 0) and its last (image row 1)
    # are complete at input beats 10 and 20 (5 pixels of 2 folds a row).
    row0, row1 = in_cycles[5 * 2 - 1], in_cycles[2 * 5 * 2 - 1]
    assert out_cycles[0] == 4 and gaps == [(gaps[0][0], row0 + 4), (gaps[1][0], row1 + 4)]


@pytest.mark.parametrize("kernel,stride,padding,height", [
    (3, 1, 1, 6), (3, 1, 0, 6), (3, 2, 1, 7), (3, 2, 0, 7), (5, 1, 0, 7), (1, 1, 0, 4)])
def test_images_follow_one_another_without_a_gap(kernel, stride, padding, height):
    """Three images back to back: once the first image's first window is out, the
    windows of all three stream one beat per cycle. The next image's first window
    rows go into the buffer (`WindowConfig.buffer_rows`) while this image's last
    output row is read; a buffer of kernel + stride rows would stall two rows per
    image for a 3x3 kernel without padding."""
    config = WindowConfig(channels=2, simd=2, kernel=kernel, height=height, width=5,
                          stride=stride, padding=padding, element_bits=2)
    _, out_cycles = _stream(config, 3)
    assert len(out_cycles) == 3 * config.out_beats
    start = kernel * kernel - 1          # the first window's last beat
    assert out_cycles[-1] - out_cycles[start] == len(out_cycles) - 1 - start

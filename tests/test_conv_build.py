"""An INT8 convolution layer through the build flow: engine selection, the plan's fit
check, Verilog, cocotb on real images against the golden layer, the report; and the
errors a bad layer or plan gets."""

import json
import re

import pytest
import torch

from bitfab.hls_gen.golden.intconv import freeze_conv
from bitfab.hls_gen.compiler.engines import load_words, select_engine
from bitfab.hls_gen.golden.dfnt import DFNTBoundError
from bitfab.hls_gen.errors import BitfabError, UnsupportedLayerError
from bitfab.hls_gen.compiler.flow import BuildConfig, artifact, run_flow
from bitfab.hls_gen.frontend.layers import IntConv2d
from bitfab.hls_gen.compiler.plan import PlanError
from bitfab.sim.runner import default_simulator

SEED = 20261123
SIM = default_simulator()


def _layer(in_channels=1, out_channels=2, kernel=5, padding=2, x_bits=8, w_bits=8, seed=SEED):
    layer = IntConv2d(in_channels, out_channels, kernel, padding=padding, x_bits=x_bits,
                      w_bits=w_bits)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        layer.weight.copy_(torch.randint(-128, 128, layer.weight.shape, generator=gen).float())
    return layer


def test_int_conv_module_is_its_golden_model():
    layer = _layer(in_channels=3)
    x = torch.randint(-128, 128, (2, 3, 9, 7))
    golden = freeze_conv(torch.nn.Sequential(layer))
    assert torch.equal(golden.execute(x), layer(x.float()).round().long())
    assert golden.weight.dtype == torch.int64 and int(golden.weight.abs().max()) <= 128


@pytest.mark.sim
def test_dfnt_build_to_report(tmp_path):
    """auto picks the DFNT engine for a 5x5 INT8 layer, 3 -> 2 channels; cocotb runs it
    on 8 crops of scikit-learn's photos (32 x 32, 64 tiles each) with random stalls and
    backpressure: 0 mismatches against the golden layer (conv2d). Then the same golden
    model on the direct engine, starting at map_to_hw."""
    out = tmp_path / "conv"
    model = _layer(in_channels=3)
    with torch.no_grad():
        model.weight[0, 0] = torch.tensor([-128.0, 127.0, 0.0, -1.0, 1.0]).repeat(5, 1)
    report = run_flow(BuildConfig(out=str(out), bitstream=False, simulator=SIM, seed=SEED,
                                  idle=0.2, backpressure=0.2), model, log=lambda *_: None)
    assert report["engine"] == "dfnt" and report["layers"][0]["multipliers"] == 8
    assert report["rtl"]["images"] == 8 and report["rtl"]["mismatches"] == 0
    assert report["cycles_per_image"] > 0 and report["estimate"]["dsps"] == 32
    assert report["bitstream"] is None and report["timing_met"] is None
    assert artifact(out, "engine.v").exists() and json.loads(artifact(out, "weights.json").read_text())["words"]

    report = run_flow(BuildConfig(out=str(out), bitstream=False, simulator=SIM, seed=SEED,
                                  engine="direct", start_step="map_to_hw", sim_images=2),
                      log=lambda *_: None)
    assert report["engine"] == "direct" and report["rtl"]["mismatches"] == 0
    assert report["layers"][0]["multipliers"] == 25


def test_auto_takes_direct_for_a_pointwise_kernel():
    assert select_engine(freeze_conv(_layer(kernel=1, padding=0)), 8, 8)[0] == "direct"
    assert select_engine(freeze_conv(_layer(kernel=3, padding=1)), 8, 8)[0] == "dfnt"


def test_dfnt_modulus_is_the_narrowest_the_bound_allows():
    """b = 16 wherever eq. 2.11 holds modulo 2^16 + 1 (peak <= 32768), else b = 32; and
    b = 32 for a kernel whose transform is longer than 2 x 16 points."""
    def shape(**widths):
        layer = freeze_conv(_layer(**{"kernel": 3, "padding": 1, **widths}))
        _, config = select_engine(layer, 40, 40, "dfnt")
        return config.b, config.length
    assert shape(x_bits=6, w_bits=4) == (16, 8)           # 9 x 2^5 x 2^3 = 2304
    assert shape(x_bits=8, w_bits=5) == (16, 8)           # 9 x 2^7 x 2^4 = 18432
    assert shape(x_bits=8, w_bits=6) == (32, 8)           # 36864 > 32768
    assert shape(x_bits=8, w_bits=8) == (32, 8)           # INT8
    assert shape(x_bits=2, w_bits=2, kernel=33, padding=0) == (32, 64)


@pytest.mark.synth
@pytest.mark.parametrize("engine,beats", [
    ("direct", 2 * 8 * 8),      # one output per beat
    # An image row of 8 outputs per beat. Slow: yosys maps about 18,000 LUT4s and
    # Verilator compiles them (200 s of the default suite's 20 minutes); the DFNT
    # engine's RTL runs against the golden layer in test_dfnt_build_to_report.
    pytest.param("dfnt", 2 * 8, marks=pytest.mark.slow),
])
def test_engine_netlist_matches_the_golden_layer(tmp_path, engine, beats):
    """`bitfab build --netlist-images 8`: a 3x3 layer (1 -> 2 channels, 6-bit digits,
    4-bit weights, so b = 16 on the DFNT engine) as yosys maps it for the ECP5, with
    plain ABC as its bitstream is, on 8 test digits under random stalls and
    backpressure: every output equals the golden layer's."""
    out = tmp_path / engine
    model = _layer(kernel=3, padding=1, x_bits=6, w_bits=4)
    report = run_flow(BuildConfig(out=str(out), bitstream=False, simulator="verilator",
                                  seed=SEED, engine=engine, sim_images=2, netlist_images=8,
                                  idle=0.2, backpressure=0.2), model, log=lambda *_: None)
    assert report["engine"] == engine and report["rtl"]["mismatches"] == 0
    assert report["netlist"] == {"images": 8, "mismatches": 0, "simulator": "verilator",
                                 "seed": SEED, "beats_checked": 8 * beats}
    markdown = artifact(out, "report.md").read_text()
    assert "| netlist vs golden | 8 images, 0 mismatches" in markdown
    assert f"| conv | {'dfnt mod 2^16 + 1' if engine == 'dfnt' else 'direct'} | 3x3 |" in markdown
    netlist = (out / "netlist" / "yosys" / "engine_netlist.v").read_text()
    for cell in ("MULT18X18D", "CCU2C", "TRELLIS_DPR16X4", "LUT4", "TRELLIS_FF"):
        assert re.search(rf"^\s+{cell} ", netlist, re.MULTILINE), cell


@pytest.mark.parametrize("make,config,error,message", [
    (lambda: torch.nn.Sequential(_layer(), torch.nn.ReLU()), {}, UnsupportedLayerError,
     "1 \\(ReLU\\): an integer convolution model holds exactly one IntConv2d"),
    (lambda: _layer(), {"board": "icebreaker"}, PlanError,
     "does not fit icebreaker: layer conv on the dfnt engine needs .* luts"),
    (lambda: _layer(in_channels=64, kernel=7, padding=3, x_bits=16, w_bits=16),
     {"engine": "dfnt"}, DFNTBoundError, "layer conv: eq. 2.11 bound fails: 64 channels"),
    (lambda: _layer(), {"folding": [{"pe": 1, "simd": 1}]}, BitfabError,
     "a convolution engine has no such folding"),
    (lambda: _layer(padding=0), {"image": [3, 3]}, BitfabError,
     "layer conv: a 3x3 image padded by 0 is smaller than the 5x5 kernel"),
])
def test_bad_layers_and_plans_refused(tmp_path, make, config, error, message):
    cfg = BuildConfig(out=str(tmp_path), bitstream=False, stop_step="fold", **config)
    with pytest.raises(error, match=message):
        run_flow(cfg, make(), log=lambda *_: None)


def test_int_conv_parameters_checked():
    with pytest.raises(ValueError, match="x_bits must be an integer in 2..16, not 1"):
        IntConv2d(1, 1, 3, x_bits=1)
    strided = _layer()
    strided.stride = (2, 2)
    with pytest.raises(UnsupportedLayerError, match="conv: only stride 1, groups 1, dilation 1"):
        freeze_conv(strided)


def test_engine_load_words_are_checked():
    """The DFNT engine's words are b + 1 = 33-bit codes (5 bytes on the wire): a stream of
    the plan's length passes, one word short or one 34-bit word is refused."""
    from bitfab.rtl.dfnt_conv import DFNTEngineConfig
    from bitfab.sw_driver.weights import check_load_words
    config = DFNTEngineConfig(in_channels=3, out_channels=2, kernel=5, height=8, width=8,
                              padding=2)
    weight = _layer(in_channels=3).weight.detach().long()
    weight[0, 0] = 0                                    # a zero spectrum: code 2^32 (zero flag)
    words = load_words("dfnt", config, weight)
    assert len(words) == 2 * 3 * 8 * 8 and words[:64] == [1 << 32] * 64
    with pytest.raises(ValueError, match="weight stream has 383 words, the plan loads 384 "
                                         r"\(layer 0: 384\) of 33 bits"):
        check_load_words(words[:-1], [config])
    with pytest.raises(ValueError, match="word 5 is 17179869184, not a 33-bit"):
        check_load_words(words[:5] + [1 << 34] + words[6:], [config])


def test_cli_builds_a_saved_layer_to_the_plan(tmp_path):
    from bitfab.hls_gen.cli import main
    path = tmp_path / "conv.pt"
    torch.save(_layer(), path)
    out = tmp_path / "out"
    assert main(["build", str(path), "--out", str(out), "--stop", "fold", "--engine", "direct",
                 "--image", "6x7"]) == 0
    plan = json.loads(artifact(out, "plan.json").read_text())
    assert plan["engine"] == "direct" and plan["board"] == "ulx3s-85f"
    assert main(["build", str(path), "--out", str(out), "--stop", "fold",
                 "--board", "icebreaker"]) == 2       # the DFNT engine does not fit


@pytest.mark.slow
@pytest.mark.synth
def test_dfnt_bitstream_for_ulx3s(tmp_path):
    """`bitfab build` of an INT8 5x5 layer on the DFNT engine, to a ULX3S bitstream that
    meets the engine's default clock (`bitfab build` exits 2 if it did not)."""
    from bitfab.hls_gen.cli import main
    path = tmp_path / "conv.pt"
    torch.save(_layer(), path)
    out = tmp_path / "out"
    assert main(["build", str(path), "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["engine"] == "dfnt" and report["rtl"]["mismatches"] == 0
    assert report["dsps"] > 0 and report["fmax_mhz"] > 0
    # Run at 50 MHz, routed for the board's 100.
    assert report["clock_mhz"] == 50.0 and report["clock_constraint_mhz"] == 100.0, report
    assert report["timing_met"] and report["fmax_mhz"] >= 50.0, report
    assert report["images_per_s_at_clock"] == round(50e6 / report["cycles_per_image"])
    assert (out / "synth" / "build" / "bitfab.bit").stat().st_size > 0


@pytest.mark.slow
@pytest.mark.synth
def test_int8_dfnt_netlist_matches_the_golden_layer(tmp_path):
    """The netlist step on the INT8 DFNT engine (b = 32, 5x5, 3 -> 2 channels, 32 x 32
    photo crops; 32 MULT18X18D, 16 DP16KD): 2 crops, 0 mismatches, about 6 minutes."""
    out = tmp_path / "int8"
    report = run_flow(BuildConfig(out=str(out), bitstream=False, simulator="verilator",
                                  seed=SEED, sim_images=1, netlist_images=2, idle=0.2,
                                  backpressure=0.2), _layer(in_channels=3), log=lambda *_: None)
    assert report["engine"] == "dfnt" and report["layers"][0]["b"] == 32
    assert report["netlist"]["images"] == 2 and report["netlist"]["mismatches"] == 0
    assert report["netlist"]["beats_checked"] == 2 * 2 * 32 * 4   # rows of 8 outputs
    netlist = (out / "netlist" / "yosys" / "engine_netlist.v").read_text()
    assert re.search(r"^\s+DP16KD ", netlist, re.MULTILINE)

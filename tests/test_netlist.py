"""Post-synthesis simulation (`bitfab.sim.netlist`): a network as yosys maps it for the
ECP5 (MULT18X18D products, CCU2C popcount chains, block and distributed RAM, LUT4s)
runs the stream bench against the golden model, and a netlist that computes
something else, or uses a cell configuration the models do not cover, fails."""

import re

import pytest

from bitfab.hls_gen.boards import board
from bitfab.hls_gen.data import load_digits_split
from bitfab.hls_gen.errors import BitfabError
from bitfab.hls_gen.plan import fitting_folding, map_to_hw
from bitfab.hls_gen.synth import PLAIN_ABC
from bitfab.rtl.network import Network
from bitfab.sim.cases import network_case, run_case
from bitfab.sim.netlist import cell_models, synthesize
from test_host import digits_graph

pytestmark = [pytest.mark.sim, pytest.mark.synth]

SEED = 20261124


def _design():
    graph = digits_graph(5)
    ulx3s = board("ulx3s-85f")
    configs, _ = fitting_folding(map_to_hw(graph), ulx3s, [l.name for l in graph.layers])
    pixels = load_digits_split().x_test.long().flatten(1)[:40]
    return graph, configs, ulx3s.platform_class()(), network_case(graph, configs, pixels)


@pytest.fixture(scope="module")
def design():
    return _design()


@pytest.fixture(scope="module")
def netlist(design, tmp_path_factory):
    _, configs, platform, _ = design
    return synthesize(Network(configs), "network", tmp_path_factory.mktemp("synth"), platform)


def _cells(netlist, name):
    return len(re.findall(rf"^\s+{name} ", netlist, re.MULTILINE))


def test_the_netlist_holds_the_vendor_cells(netlist):
    # The PA layer's phi_k products in DSPs, popcounts in carry chains, weights in RAM.
    for cell in ("MULT18X18D", "CCU2C", "DP16KD", "LUT4", "TRELLIS_FF"):
        assert _cells(netlist, cell) > 0, cell


def test_the_mapped_network_matches_the_golden_model(design, netlist, tmp_path):
    _, _, _, case = design
    result = run_case(netlist, "network", case, tmp_path, SEED, idle=0.2, backpressure=0.2)
    assert result["mismatches"] == 0 and result["items"] == 40
    assert result["beats_checked"] == sum(len(v) for v in case["outputs"].values())


@pytest.mark.slow
def test_plain_abc_mapping_matches_too(design, tmp_path):
    """The LUT mapping the convolution engines are built with (`PLAIN_ABC`)."""
    _, configs, platform, case = design
    text = synthesize(Network(configs), "network", tmp_path / "synth", platform, PLAIN_ABC)
    assert run_case(text, "network", case, tmp_path, SEED)["mismatches"] == 0


def test_a_netlist_computing_something_else_is_caught(design, netlist, tmp_path):
    """Tie every DSP's clock enable low: its registers never load, every product is 0."""
    _, _, _, case = design
    wrong = netlist.replace(".CE0(1'h1)", ".CE0(1'h0)")
    assert wrong != netlist
    with pytest.raises(RuntimeError, match=rf"seed {SEED}: [1-9]\d* mismatches; first"):
        run_case(wrong, "network", case, tmp_path, SEED)


def test_a_cell_configuration_without_a_model_stops_the_simulation(design, netlist, tmp_path):
    _, _, _, case = design
    wrong = netlist.replace('.MULT_BYPASS("DISABLED")', '.MULT_BYPASS("ENABLED")', 1)
    assert wrong != netlist
    with pytest.raises(RuntimeError, match="failed") as failure:
        run_case(wrong, "network", case, tmp_path, SEED)
    log = re.search(r"log: ([^;\s]+)", str(failure.value)).group(1)
    assert "bitfab's MULT18X18D model covers" in open(log).read()


def test_only_ecp5_netlists_are_simulated(design, tmp_path):
    _, configs, _, _ = design
    with pytest.raises(BitfabError, match="models ECP5 cells; .* is not an ECP5 platform"):
        synthesize(Network(configs), "network", tmp_path,
                   board("icebreaker").platform_class()())


def test_the_models_replace_yosys_black_boxes():
    models = cell_models()
    for cell in ("DP16KD", "MULT18X18D", "LUT4", "CCU2C", "TRELLIS_FF"):
        assert len(re.findall(rf"^module {cell}\(", models, re.MULTILINE)) == 1, cell
    assert "(* blackbox *)" not in models


def test_the_build_flow_reports_the_netlist_against_the_golden_model(tmp_path):
    from bitfab.hls_gen.flow import BuildConfig, run_flow
    out = tmp_path / "build"
    report = run_flow(BuildConfig(out=str(out), sim_images=12, netlist_images=12,
                                  bitstream=False), digits_graph(5), log=lambda _: None)
    assert report["netlist"]["images"] == 12 and report["netlist"]["mismatches"] == 0
    assert report["netlist"]["beats_checked"] == report["rtl"]["beats_checked"] > 0
    assert "| netlist vs golden | 12 images, 0 mismatches" in (out / "report.md").read_text()


def test_netlist_images_are_checked_before_any_work(tmp_path):
    from bitfab.hls_gen.flow import BuildConfig
    with pytest.raises(BitfabError, match="models ECP5 cells; board icebreaker is ice40"):
        BuildConfig(out=str(tmp_path), board="icebreaker", netlist_images=5)
    with pytest.raises(BitfabError, match="netlist_images must be a count of images, not -1"):
        BuildConfig(out=str(tmp_path), netlist_images=-1)

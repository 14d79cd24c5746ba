"""Post-synthesis simulation (`bitfab.sim.netlist`): a network as yosys maps it for the
ECP5 (MULT18X18D products, CCU2C popcount chains, block and distributed RAM, LUT4s)
or the iCE40 runs the stream bench against the golden model through the build flow,
and a cell configuration the models do not cover stops the simulation. (A netlist computing
something else is caught: `test_pe_encoder.test_pe_netlist_cocotb`.)"""

import json
import re

import pytest

from bitfab.hls_gen.compiler.boards import board
from bitfab.hls_gen.datasets import load_digits_split
from bitfab.hls_gen.errors import BitfabError
from bitfab.hls_gen.compiler.flow import BuildConfig, artifact, run_flow
from bitfab.hls_gen.compiler.folding import fitting_folding
from bitfab.hls_gen.compiler.plan import map_to_hw, plan_from_dict
from bitfab.rtl.families.ecp5 import PLAIN_ABC
from bitfab.rtl.network import Network
from bitfab.hls_gen.compiler.cases import network_case
from bitfab.sim.cases import run_case
from bitfab.sim.netlist import cell_models, synthesize
from bitfab.sim.runner import run_vectors
from networks import digits_graph, pe_case

pytestmark = [pytest.mark.sim, pytest.mark.synth]

SEED = 20261124


def test_the_flow_runs_the_mapped_network_against_the_golden_model(tmp_path):
    """`bitfab build --netlist-images`: a PA + XNOR network on 40 test digits, under
    random stalls and backpressure, as yosys maps it (its phi_k products in DSPs,
    popcounts in carry chains, weights and tables in block RAM, the PA layer's
    weights in two banks, FIFOs in distributed RAM)."""
    out = tmp_path / "build"
    graph = digits_graph(5)
    folding = [{"pe": 1, "simd": 64, "bank_rows": 4}, {"pe": 5, "simd": 2}]
    run_flow(BuildConfig(out=str(out), stop_step="emit_rtl", folding=folding), graph,
             log=lambda _: None)
    report = run_flow(BuildConfig(out=str(out), start_step="netlist", netlist_images=40,
                                  idle=0.2, backpressure=0.2, bitstream=False, seed=SEED,
                                  folding=folding),
                      log=lambda _: None)
    configs, _ = plan_from_dict(json.loads(artifact(out, "plan.json").read_text()))
    assert [c.weight_banks for c in configs] == [2, 1]
    pixels = load_digits_split().x_test.long().flatten(1)[:40]
    case = network_case(graph, configs, pixels)
    assert report["netlist"] == {"images": 40, "mismatches": 0, "simulator": "verilator",
                                 "seed": SEED, "beats_checked":
                                 sum(len(v) for v in case["outputs"].values())}
    assert "| netlist vs golden | 40 images, 0 mismatches" in artifact(out, "report.md").read_text()
    netlist = (out / "netlist" / "yosys" / "network_netlist.v").read_text()
    for cell in ("MULT18X18D", "CCU2C", "DP16KD", "TRELLIS_DPR16X4", "LUT4", "TRELLIS_FF"):
        assert re.search(rf"^\s+{cell} ", netlist, re.MULTILINE), cell


@pytest.mark.slow
def test_plain_abc_mapping_matches_too(tmp_path):
    """The LUT mapping the convolution engines are built with (`PLAIN_ABC`)."""
    graph = digits_graph(5)
    ulx3s = board("ulx3s-85f")
    configs, _ = fitting_folding(map_to_hw(graph), ulx3s, [l.name for l in graph.layers])
    pixels = load_digits_split().x_test.long().flatten(1)[:40]
    text = synthesize(Network(configs), "network", tmp_path / "synth",
                      ulx3s.platform_class()(), PLAIN_ABC)
    case = network_case(graph, configs, pixels)
    assert run_case(text, "network", case, tmp_path, SEED)["mismatches"] == 0


def test_a_cell_configuration_without_a_model_stops_the_simulation(tmp_path):
    pe, case = pe_case("and", 2, 3, 5, 1, 12, 0)
    netlist = synthesize(pe, "pa_pe", tmp_path / "synth", board("ulx3s-85f").platform_class()())
    wrong = netlist.replace('.MULT_BYPASS("DISABLED")', '.MULT_BYPASS("ENABLED")', 1)
    assert wrong != netlist
    with pytest.raises(RuntimeError, match="failed") as failure:
        run_vectors(wrong, "pa_pe", case, tmp_path / "sim", SEED)
    assert "bitfab's MULT18X18D model covers" in str(failure.value)


def test_the_flow_runs_the_mapped_network_for_the_icebreaker(tmp_path):
    """The same on the iCE40 (`synth_ice40`, yosys's models of every cell): 20 digits
    through a network as it maps for the iCEBreaker, 0 mismatches; with the truth table
    of one LUT of the input register inverted, the same bench fails."""
    out = tmp_path / "build"
    graph = digits_graph(5)
    report = run_flow(BuildConfig(out=str(out), board="icebreaker", netlist_images=20,
                                  sim_images=2, idle=0.2, backpressure=0.2, bitstream=False,
                                  seed=SEED), graph, log=lambda _: None)
    assert report["netlist"]["images"] == 20 and report["netlist"]["mismatches"] == 0
    netlist = (out / "netlist" / "yosys" / "network_netlist.v").read_text()
    for cell in ("SB_LUT4", "SB_CARRY", "SB_RAM40_4K", "SB_DFFESR"):
        assert re.search(rf"^\s+{cell} ", netlist, re.MULTILINE), cell
    # A LUT in front of the network's input register (`Network`'s skid buffer, entry).
    init = re.search(r"SB_LUT4 #\(\s*\.LUT_INIT\(16'h([0-9a-f]{4})\)\s*\) \\entry\.o__payload",
                     netlist)
    wrong = (netlist[:init.start(1)] + f"{0xffff ^ int(init.group(1), 16):04x}"
             + netlist[init.end(1):])
    configs, _ = plan_from_dict(json.loads(artifact(out, "plan.json").read_text()))
    pixels = load_digits_split().x_test.long().flatten(1)[:20]
    with pytest.raises(RuntimeError, match="first mismatch: {'stream'"):
        run_case(wrong + "\n" + cell_models("ice40"), "network",
                 network_case(graph, configs, pixels), tmp_path / "wrong", SEED)


def test_only_lattice_netlists_are_simulated(tmp_path):
    from amaranth_boards.arty_a7 import ArtyA7_35Platform
    pe, _ = pe_case("and", 2, 3, 5, 1, 12, 0)
    with pytest.raises(BitfabError, match="models ECP5 and iCE40 cells; ArtyA7_35Platform is "
                                          "neither"):
        synthesize(pe, "pa_pe", tmp_path, ArtyA7_35Platform())


def test_the_models_replace_yosys_black_boxes():
    models = cell_models()
    for cell in ("DP16KD", "MULT18X18D", "LUT4", "CCU2C", "TRELLIS_FF"):
        assert len(re.findall(rf"^module {cell}\(", models, re.MULTILINE)) == 1, cell
    assert "(* blackbox *)" not in models
    models = cell_models("ice40")
    for cell in ("SB_LUT4", "SB_CARRY", "SB_DFFESR", "SB_RAM40_4K", "SB_MAC16"):
        assert len(re.findall(rf"^module {cell}\b", models, re.MULTILINE)) == 1, cell


def test_netlist_images_are_checked_before_any_work(tmp_path):
    with pytest.raises(BitfabError, match="netlist_images must be a count of images, not -1"):
        BuildConfig(out=str(tmp_path), netlist_images=-1)

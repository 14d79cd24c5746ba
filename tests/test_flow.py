"""The build flow's steps and their JSON intermediates, from and to any step, and the
board smoke test (the bitstream itself is the slow suite's, in test_build.py)."""

import json
from pathlib import Path

import pytest
import torch

from bitfab.hls_gen.compiler.boards import board
from bitfab.hls_gen.errors import BitfabError
from bitfab.hls_gen.compiler.flow import BuildConfig, artifact, run_flow
from bitfab.hls_gen.golden.ir import Graph, graph_from_dict, graph_to_dict
from bitfab.hls_gen.compiler.folding import fold
from bitfab.hls_gen.compiler.plan import PlanError, map_to_hw, plan_from_dict
from bitfab.hls_gen.compiler.stores import load_rows, load_stream
from bitfab.hls_gen.compiler.clocks import design_clock
from bitfab.hls_gen.compiler.synth import use_yowasp
from bitfab.rtl.board_top import BoardTop
from bitfab.rtl.shell import BAUD
from networks import cnn_graph, small_graph



def test_golden_json_round_trip():
    graph = small_graph()
    again = graph_from_dict(json.loads(json.dumps(graph_to_dict(graph))))
    pixels = torch.randint(0, 8, (20, 16), generator=torch.Generator().manual_seed(1))
    assert torch.equal(graph(pixels), again(pixels))
    with pytest.raises(BitfabError, match="not a bitfab golden model"):
        graph_from_dict({"format": "onnx"})


def test_steps_from_and_to_any_step(tmp_path):
    out = tmp_path / "build"
    run_flow(BuildConfig(out=str(out), stop_step="emit_rtl"), small_graph(), log=lambda _: None)
    # Each step writes into its own folder.
    for step, name in (("golden", "golden.json"), ("map_to_hw", "hw.json"), ("fold", "plan.json"),
                       ("emit_rtl", "network.v"), ("emit_rtl", "weights.json")):
        assert (out / step / name).exists() and artifact(out, name) == out / step / name
    plan = json.loads(artifact(out, "plan.json").read_text())
    assert [(l["pe"], l["simd"]) for l in plan["layers"]] == [(2, 16), (1, 8)]
    words = json.loads(artifact(out, "weights.json").read_text())["words"]
    assert len(words) == sum(c.load_words for c in plan_from_dict(plan)[0]) > 0
    # Refold from the saved hardware graph without redoing the golden step.
    run_flow(BuildConfig(out=str(out), start_step="fold", stop_step="fold",
                         folding=[{"pe": 4, "simd": 4}, {"pe": 1, "simd": 2}]),
             log=lambda _: None)
    plan = json.loads(artifact(out, "plan.json").read_text())
    assert [(l["pe"], l["simd"]) for l in plan["layers"]] == [(4, 4), (1, 2)]
    # The first layer's 2 x 3 phi_k share one multiplier per PE: its 2 row groups
    # then take 6 cycles each, within the second layer's 16, whose rows of 4 folds
    # leave time for a 3-step merge of 2 multipliers.
    assert [l["multipliers"] for l in plan["layers"]] == [1, 2]
    assert plan["cycles_per_layer"] == [2 * 6, 4 * 4]
    with pytest.raises(PlanError, match="layer pa4x8: simd=3 does not divide its 8 input columns"):
        run_flow(BuildConfig(out=str(out), start_step="fold", stop_step="fold",
                             folding=[{"pe": 4, "simd": 4}, {"pe": 1, "simd": 3}]),
                 log=lambda _: None)
    with pytest.raises(BitfabError, match="missing: run the step that writes it first"):
        run_flow(BuildConfig(out=str(tmp_path / "empty"), start_step="fold"),
                 log=lambda _: None)
    with pytest.raises(BitfabError, match="'place' is not a step"):
        BuildConfig(out=str(out), start_step="place")


def test_plan_too_big_is_refused_before_synthesis(tmp_path):
    with pytest.raises(PlanError, match="does not fit icebreaker: layer"):
        run_flow(BuildConfig(out=str(tmp_path), board="icebreaker",
                             folding=[{"pe": 8, "simd": 16}, {"pe": 4, "simd": 8}]),
                 small_graph(), log=lambda _: None)
    assert not artifact(tmp_path, "network.v").exists() and not (tmp_path / "build").exists()


@pytest.mark.synth
def test_board_top_prepares_for_ulx3s(tmp_path, monkeypatch):
    """Amaranth's build plan for the ULX3S: PLL, reset buffer, the 100 MHz target, UART
    pins."""
    use_yowasp()
    configs = fold(map_to_hw(small_graph()))
    ulx3s = board("ulx3s-85f")
    plan = ulx3s.platform_class()().build(BoardTop(configs, design_clock(ulx3s), BAUD), name="top",
                                          do_build=False)
    rtlil = plan.files["top.il"]
    assert "EHXPLLL" in rtlil and "uart" in plan.files["top.lpf"]
    # The reset, held until the PLL locks, reaches the flip-flops on a global network:
    # nextpnr-ecp5 takes a clock buffer's output to one (`ECP5.hold_in_reset`).
    assert rtlil.count("cell \\DCCA ") == 1 and "LOCK" in rtlil
    assert "FREQUENCY PORT \"clk25_0__io\" 25000000.0 HZ" in plan.files["top.lpf"]
    # Every layer's weights and table go to block RAM, however shallow (here 2 and 4
    # rows), and yosys builds no read-first logic for them.
    tables = sum(c.output == "codes" or bool(c.scale_bits) for c in configs)
    assert rtlil.count('attribute \\ram_style "block"') == len(configs) + tables
    assert rtlil.count('attribute \\no_rw_check 1') >= len(configs) + tables
    # Every phi_k product is a MULT18X18D with its input, pipeline and output registers.
    dsps = [cell for cell in rtlil.split("\n  cell ")[1:] if cell.startswith("\\MULT18X18D")]
    assert len(dsps) == sum(c.pe * c.m * c.n_in for c in configs)
    assert all('parameter \\REG_PIPELINE_CLK "CLK0"' in cell for cell in dsps)


def test_nextpnr_options(monkeypatch):
    from bitfab.hls_gen.compiler.synth import nextpnr_opts
    monkeypatch.delenv("BITFAB_NEXTPNR_OPTS", raising=False)
    assert nextpnr_opts() == "--report report.json --timing-allow-fail"
    monkeypatch.setenv("BITFAB_NEXTPNR_OPTS", "--seed 7")
    assert nextpnr_opts("router2") == ("--report report.json --timing-allow-fail "
                                       "--router router2 --seed 7")


def test_a_toolchain_failure_names_the_tools_errors(tmp_path):
    """nextpnr (or yosys) failing ends the build with their ERROR lines, not a
    subprocess traceback."""
    from amaranth.build.run import BuildPlan

    from bitfab.hls_gen.compiler.synth import run_plan
    plan = BuildPlan("build_bitfab")
    plan.add_file("build_bitfab.sh",
                  "echo 'Info: placing' > bitfab.tim\n"
                  "echo \"ERROR: Unable to place cell 'x', no BELs remaining\" >> bitfab.tim\n"
                  "exit 1\n")
    with pytest.raises(BitfabError, match=r"the toolchain failed \(exit status 1\) in .*: "
                                          r"ERROR: Unable to place cell 'x', no BELs remaining$"):
        run_plan(plan, tmp_path, "bitfab", board("ulx3s-85f").family)


def test_flip_flops_come_from_yosys_s_last_statistics(tmp_path):
    """On iCE40 nextpnr counts logic cells, not flip-flops: the report takes them from
    the design hierarchy's totals in yosys's log, summed over the SB_DFF kinds."""
    from bitfab.hls_gen.compiler.synth import yosys_flip_flops
    module = ("=== bitfab ===\n\n     2027   SB_LUT4\n      139   SB_DFF\n"
              "     1316   SB_DFFESR\n")
    hierarchy = ("=== design hierarchy ===\n\n       37 bitfab\n      290   SB_CARRY\n"
                 "      139   SB_DFF\n       63   SB_DFFE\n     1316   SB_DFFESR\n"
                 "      568   SB_DFFSR\n     2027   SB_LUT4\n")
    log = tmp_path / "bitfab.rpt"
    log.write_text("2.50. Printing statistics.\n\n" + module + "\n" + hierarchy +
                   "\n2.51. Executing CHECK pass.\n")
    assert yosys_flip_flops(log) == 139 + 63 + 1316 + 568
    log.write_text("no statistics here\n")
    with pytest.raises(BitfabError, match="no flip-flop count"):
        yosys_flip_flops(log)


def test_load_stream_is_every_layer_s_words_in_order():
    graph = small_graph()
    configs = fold(map_to_hw(graph))
    words = load_stream(graph, configs)
    assert words == [w for layer, config in zip(graph.layers, configs)
                     for w in config.pack(load_rows(layer, config))]
    assert len(words) == sum(c.load_words for c in configs)
    with pytest.raises(PlanError, match="1 layers for a plan of 2"):
        load_stream(Graph(3, 1.0, graph.layers[:1]), configs)


def _quiet(_):
    pass


def test_a_resumed_build_is_refused_when_an_earlier_step_ran_otherwise(tmp_path):
    """config.json records what each step ran with; starting later with another board,
    folding or model is refused, naming the field, and starting at that step rebuilds."""
    out = str(tmp_path / "build")
    run_flow(BuildConfig(out=out, stop_step="fold"), small_graph(), log=_quiet)
    saved = json.loads((tmp_path / "build" / "config.json").read_text())
    assert saved["ran"]["fold"]["board"] == "ulx3s-85f" and saved["config"]["steps"][0] == "golden"
    with pytest.raises(BitfabError, match="board was 'ulx3s-85f' when step fold ran, this "
                                          "build asks for 'icebreaker'.*--start fold"):
        run_flow(BuildConfig(out=out, board="icebreaker", start_step="emit_rtl",
                             stop_step="emit_rtl"), log=_quiet)
    with pytest.raises(BitfabError, match="folding was None when step fold ran"):
        run_flow(BuildConfig(out=out, folding=[{"pe": 1, "simd": 4}, {"pe": 1, "simd": 2}],
                             start_step="emit_rtl", stop_step="emit_rtl"), log=_quiet)
    # The same model again is fine; another one is refused.
    run_flow(BuildConfig(out=out, start_step="map_to_hw", stop_step="map_to_hw"), small_graph(),
             log=_quiet)
    other = small_graph(seed=4)
    with pytest.raises(BitfabError, match="model differs from the one step golden froze"):
        run_flow(BuildConfig(out=out, start_step="map_to_hw", stop_step="map_to_hw"), other,
                 log=_quiet)
    # map_to_hw ran again after fold: fold's plan is stale until fold runs again.
    with pytest.raises(BitfabError, match="step fold ran before step map_to_hw ran again"):
        run_flow(BuildConfig(out=out, start_step="emit_rtl", stop_step="emit_rtl"), log=_quiet)
    # Starting at the step that changes rebuilds it, and the board then sticks.
    run_flow(BuildConfig(out=out, board="icebreaker", start_step="fold", stop_step="fold"),
             log=_quiet)
    assert json.loads(artifact(out, "plan.json").read_text())["board"] == "icebreaker"
    run_flow(BuildConfig(out=out, board="icebreaker", start_step="emit_rtl",
                         stop_step="emit_rtl"), log=_quiet)


def test_a_user_step_runs_in_the_flow_with_its_own_folder(tmp_path):
    """A callable in the step list runs like a registered step: it gets the build, reads
    earlier results, writes into its own folder, and its config fields are checked."""
    def step_count_rows(build):
        rows = sum(layer["rows"] for layer in build.read("plan.json")["layers"])
        build.write("rows.json", {"rows": rows, "clock": build.cfg.clock_mhz})
    step_count_rows.depends_on = ("clock_mhz",)
    out = tmp_path / "build"
    steps = ["golden", "map_to_hw", "fold", step_count_rows, "report"]
    run_flow(BuildConfig(out=str(out), stop_step="count_rows", steps=steps), small_graph(),
             log=_quiet)
    assert json.loads((out / "count_rows" / "rows.json").read_text()) == {"rows": 12,
                                                                          "clock": None}
    with pytest.raises(BitfabError, match="clock_mhz was None when step count_rows ran"):
        run_flow(BuildConfig(out=str(out), clock_mhz=50, start_step="report", steps=steps),
                 log=_quiet)
    with pytest.raises(BitfabError, match="stop_step 'sim' is not a step; steps: golden, "
                                          "map_to_hw, fold, count_rows, report"):
        BuildConfig(out=str(out), stop_step="sim", steps=steps)
    with pytest.raises(BitfabError, match="'place' is not a step"):
        BuildConfig(out=str(out), steps=["golden", "place"])


def test_the_critical_path_is_the_design_clock_s():
    from bitfab.hls_gen.compiler.synth import critical_path
    hop = lambda kind, delay, cell: {"type": kind, "delay": delay, "from": {"cell": cell},
                                     "to": {"cell": cell}}
    report = {"critical_paths": [
        {"from": "<async>", "to": "posedge clk", "path": [hop("routing", 9.0, "rx")]},
        {"from": "posedge clk", "to": "posedge clk",
         "path": [hop("clk-to-q", 5.83, "ram"), hop("routing", 2.25, "ram"),
                  hop("logic", 0.36, "issue")]}]}
    path = critical_path(report, "clk")
    assert (path["ns"], path["routing_ns"], path["from"], path["to"]) == (8.44, 2.25, "ram",
                                                                          "issue")
    assert path["text"] == "8.44 ns (2.25 routing): ram -> issue"
    assert critical_path(report, "other") is None


@pytest.mark.parametrize("family, opened", [("ulx3s-85f", True), ("icebreaker", False)])
def test_the_family_edits_yosys_s_netlist_before_place_and_route(tmp_path, monkeypatch,
                                                                 family, opened):
    """On ECP5 the build script opens the tied-off ends of bitfab's carry chains
    (`free_chain_ends`) between yosys and nextpnr; on iCE40 it leaves the netlist be."""
    from amaranth.build.run import BuildPlan

    from bitfab.hls_gen.compiler.synth import run_plan
    monkeypatch.setenv("YOSYS", "true")
    cell = {"type": "CCU2C", "attributes": {"bitfab_chain": "head"},
            "connections": {"CIN": [0], "S0": [5]}}
    plan = BuildPlan("build_bitfab")
    plan.add_file("mapped.json", json.dumps({"modules": {"top": {"cells": {"c": cell}}}}))
    plan.add_file("build_bitfab.sh", 'cp mapped.json bitfab.json\n'
                                     '"$YOSYS" -q -l bitfab.rpt bitfab.ys\n')
    run_plan(plan, tmp_path, "bitfab", board(family).family)
    netlist = json.loads((tmp_path / "bitfab.json").read_text())
    cin = netlist["modules"]["top"]["cells"]["c"]["connections"]["CIN"]
    assert cin == (["x"] if opened else [0])


def test_a_resumed_cli_build_keeps_the_options_it_was_made_with(tmp_path, capsys):
    """`bitfab build --start X` without --board takes the build's board; with another
    board it exits 2 naming the field."""
    from bitfab.hls_gen.cli import main
    model, out = tmp_path / "small.golden.json", str(tmp_path / "build")
    model.write_text(json.dumps(graph_to_dict(small_graph())))
    assert main(["build", str(model), "--out", out, "--board", "icebreaker",
                 "--fold", "1x2,1x2", "--stop", "fold"]) == 0
    assert main(["build", "--out", out, "--start", "emit_rtl", "--stop", "emit_rtl"]) == 0
    saved = json.loads((tmp_path / "build" / "config.json").read_text())["config"]
    assert saved["board"] == "icebreaker" and saved["folding"] == [{"pe": 1, "simd": 2}] * 2
    capsys.readouterr()
    assert main(["build", "--out", out, "--start", "emit_rtl", "--board", "ulx3s-85f"]) == 2
    assert "board was 'icebreaker' when step fold ran" in capsys.readouterr().err


def test_a_network_without_test_inputs_is_refused_before_simulation(tmp_path):
    """The sim step's inputs are the digits; a network of another input width is
    refused by name instead of failing inside the golden model."""
    out = str(tmp_path / "build")
    run_flow(BuildConfig(out=out, stop_step="emit_rtl"), small_graph(), log=_quiet)
    with pytest.raises(BitfabError, match="takes 16 inputs of 3 bits; .* the digits "
                                          r"\(8 x 8 = 64 pixels of 5 bits\)"):
        run_flow(BuildConfig(out=out, start_step="sim", stop_step="sim"), log=_quiet)


def test_the_cli_folding_sets_each_pa_layer_s_merge_multipliers(tmp_path, capsys):
    """--fold PExSIMDxMULT fixes a PA layer's merge multipliers per PE; PExSIMD leaves
    them to the planner; a count outside 1..M*N, or not a number, exits 2 by name."""
    from bitfab.hls_gen.cli import main
    model, out = tmp_path / "small.golden.json", str(tmp_path / "build")
    model.write_text(json.dumps(graph_to_dict(small_graph())))
    assert main(["build", str(model), "--out", out, "--fold", "2x16x6,1x2",
                 "--stop", "fold"]) == 0
    plan = json.loads(artifact(tmp_path / "build", "plan.json").read_text())
    # The second layer's 4 rows of 4 folds leave time for a merge of 3 steps.
    assert [l["multipliers"] for l in plan["layers"]] == [6, 2]
    capsys.readouterr()
    assert main(["build", str(model), "--out", out + "2", "--fold", "2x16x7,1x8",
                 "--stop", "fold"]) == 2
    assert ("layer pa8x16: MVAU multipliers must be an integer in 1..6 (m * n_in phi_k per "
            "PE), not 7") in capsys.readouterr().err
    assert main(["build", str(model), "--out", out + "3", "--fold", "2x16xtwo,1x8"]) == 2
    assert "folding must look like 2x64,2x64x5,1x64" in capsys.readouterr().err


@pytest.mark.sim
def test_a_failed_simulation_is_a_report_and_a_one_line_error(tmp_path, monkeypatch, capsys):
    """RTL that disagrees with its golden model (here, one golden beat flipped): the
    sim step writes sim.json (count, first mismatch, seed, wave dump) and `bitfab
    build` exits 2 with one line naming the layer, the beat, both values, the count,
    the seed and the dump; it raised a RuntimeError traceback from sim/cases.py."""
    from bitfab.hls_gen import cli
    from bitfab.hls_gen.compiler import cases

    made = cases.network_case

    def one_beat_off(*args, **kwargs):
        case = made(*args, **kwargs)
        case["outputs"]["tap1"][3] ^= 1
        return case

    monkeypatch.setattr(cases, "network_case", one_beat_off)
    model = tmp_path / "model.json"
    model.write_text(json.dumps(graph_to_dict(cnn_graph(1))))
    out = tmp_path / "build"
    code = cli.main(["build", str(model), "--out", str(out), "--images", "3",
                     "--no-bitstream"])
    error = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(error) == 1, error
    sim = json.loads(artifact(out, "sim.json").read_text())
    assert sim["mismatches"] == 1 and sim["first_mismatch"]["beat"] == 3
    first = sim["first_mismatch"]
    name = json.loads(artifact(out, "plan.json").read_text())["layers"][1]["name"]
    assert (f"sim: 1 mismatches in 3 images (seed {sim['seed']}); first at layer {name} "
            f"(tap1), beat 3 (image {first['item']}): RTL {first['rtl']}, golden "
            f"{first['golden']}; wave dump: ") in error[0]
    dump = error[0].split("wave dump: ")[1].split(";")[0]
    assert dump.endswith((".vcd", ".fst")) and Path(dump).exists(), dump


def test_a_design_abc9_fails_on_is_mapped_with_plain_abc(tmp_path):
    """yosys 0.70's ABC9 fails on some netlists (an assertion as it reintegrates them,
    or no word at all); the bitstream flow then maps the LUTs with plain ABC, says so,
    and reports the mapper. Any other failure is the build's error."""
    from bitfab.hls_gen.compiler.synth import abc9_failed, with_lut_mapper_fallback
    ecp5 = board("ulx3s-85f").family
    rpt = tmp_path / "bitfab.rpt"
    steps = {"silent": "2.46.18.5. Executing ABC9.\nRunning ABC command: ...\n",
             "assert": "2.46.19.7. Executing ABC_OPS_REINTEGRATE pass (reintegrate).\n"
                       "ERROR: Assert `GetSize(conn.first) == GetSize(conn.second)' failed\n",
             "other": "2.46.19.7. Executing ABC_OPS_REINTEGRATE pass (reintegrate).\n"
                      "2.47. Executing OPT pass.\nERROR: something else\n"}
    assert not abc9_failed(rpt)
    for name, text in steps.items():
        rpt.write_text("1. Executing RTLIL frontend.\n" + text)
        assert abc9_failed(rpt) == (name != "other"), name
        calls, said = [], []

        def build(overrides):
            calls.append(overrides)
            if len(calls) == 1:
                raise BitfabError("the toolchain failed")
        if name == "other":
            with pytest.raises(BitfabError, match="the toolchain failed"):
                with_lut_mapper_fallback(build, {"router": "router2"}, ecp5, rpt, said.append)
            assert len(calls) == 1
        else:
            assert with_lut_mapper_fallback(build, {"router": "router2"}, ecp5, rpt,
                                            said.append) == "abc"
            assert calls == [{"router": "router2"},
                             {"router": "router2", **ecp5.engine_overrides()}]
            assert "ABC9 failed on this design" in said[0]
    calls.clear()
    assert with_lut_mapper_fallback(lambda o: calls.append(o), {}, ecp5, rpt) == "abc9"
    # Already plain ABC (the convolution engines): built once, as asked.
    assert with_lut_mapper_fallback(lambda o: calls.append(o), ecp5.engine_overrides(), ecp5,
                                    rpt) == "abc"
    assert calls == [{}, ecp5.engine_overrides()]
    # A family without a plain-ABC mapping re-raises.
    with pytest.raises(BitfabError):
        with_lut_mapper_fallback(lambda o: (_ for _ in ()).throw(BitfabError("x")), {},
                                 board("icebreaker").family, rpt)


def test_the_bitstream_build_falls_back_to_plain_abc_on_a_platform_of_its_own(
        tmp_path, monkeypatch):
    """`build_bitstream` prepares the second (plain ABC) build on a new platform: a
    platform prepares one build (CNV-W1A1's fallback died of Amaranth's
    ``assert not self._prepared``). The toolchain is a stand-in: ABC9 fails, then
    the plain build stops the test."""
    from bitfab.hls_gen.compiler import synth

    class Stop(Exception):
        pass

    runs = []

    def run_plan(plan, build_dir, name, family):
        runs.append(plan)
        if len(runs) == 1:
            Path(build_dir).mkdir(parents=True, exist_ok=True)
            (Path(build_dir) / "bitfab.rpt").write_text("2.46.19.5. Executing ABC9.\n")
            raise BitfabError("yosys failed")
        raise Stop
    monkeypatch.setattr(synth, "run_plan", run_plan)
    configs = fold(map_to_hw(small_graph()))
    with pytest.raises(Stop):
        synth.build_bitstream(configs, board("ulx3s-85f"), tmp_path, log=lambda _: None)
    assert len(runs) == 2


def test_a_build_takes_another_s_bitstream_only_for_the_same_design(tmp_path, monkeypatch):
    """The weights are loaded at run time: a build of other weights takes the bitstream
    a build of the same design made (the demo places and routes beside its simulations
    so), and refuses one of another folding, clock or none at all. The toolchain is a
    stand-in here that counts its runs (the real one: test_build.py, slow)."""
    runs = []

    def toolchain(core, board, out_dir, log, clock, **options):
        runs.append(out_dir)
        bitstream = Path(out_dir) / "build" / "bitfab.bit"
        bitstream.parent.mkdir(parents=True)
        bitstream.write_bytes(b"\xff")
        return {"luts": 123, "ffs": 45, "brams": 0, "dsps": 1, "fmax_mhz": 150.0,
                "clock_constraint_mhz": 25.0, "clock_mhz": clock.mhz,
                "bitstream": str(bitstream)}

    monkeypatch.setattr("bitfab.hls_gen.compiler.synth.build_bitstream", toolchain)
    to_synth = {"steps": ("golden", "map_to_hw", "fold", "emit_rtl", "synth"),
                "stop_step": "synth"}
    placed = tmp_path / "placed"
    run_flow(BuildConfig(out=str(placed), **to_synth), small_graph(seed=3), log=lambda _: None)
    messages = []
    run_flow(BuildConfig(out=str(tmp_path / "other_weights"), bitstream_of=str(placed),
                         **to_synth), small_graph(seed=4), log=messages.append)
    assert len(runs) == 1 and f"the bitstream of {placed} is this design's" in messages[-1]
    taken = json.loads(artifact(tmp_path / "other_weights", "synth.json").read_text())
    assert taken == json.loads(artifact(placed, "synth.json").read_text())
    assert taken["luts"] == 123 and Path(taken["bitstream"]).exists()
    refolded = BuildConfig(out=str(tmp_path / "refolded"), bitstream_of=str(placed),
                           folding=[{"pe": 4, "simd": 4}, {"pe": 1, "simd": 2}], **to_synth)
    with pytest.raises(BitfabError, match=f"the bitstream of {placed} is not this design's: "
                                          f"design '[0-9a-f]+' there, '[0-9a-f]+' here$"):
        run_flow(refolded, small_graph(seed=4), log=lambda _: None)
    faster = BuildConfig(out=str(tmp_path / "faster"), bitstream_of=str(placed),
                         clock_mhz=50, **to_synth)
    with pytest.raises(BitfabError, match="not this design's: clock_mhz 100.0 there, 50.0 here"):
        run_flow(faster, small_graph(seed=4), log=lambda _: None)
    with pytest.raises(BitfabError, match=f"{tmp_path / 'refolded'} has no bitstream to take"):
        run_flow(BuildConfig(out=str(tmp_path / "again"), bitstream_of=str(tmp_path / "refolded"),
                             **to_synth), small_graph(seed=4), log=lambda _: None)
    assert len(runs) == 1

"""A network with forks and joins through the build flow and the host driver: the
digits' dense-concatenation network (pickled, as a user saves it) through golden ->
map_to_hw -> fold -> emit_rtl -> sim on all 450 test images with stalls, its plan
and report naming every queue's computed depth; then `bitfab run` on the simulated
board; the foldings and models a graph build refuses, by name."""

import json
import re

import pytest
import torch

from bitfab.hls_gen.cli import main
from bitfab.hls_gen.compiler.flow import BuildConfig, run_flow
from bitfab.hls_gen.datasets import load_digits_split
from bitfab.hls_gen.digits.graphs import GraphSpec, build_graph_model
from bitfab.hls_gen.digits.train import TrainConfig, train
from bitfab.hls_gen.golden.freeze import freeze
from bitfab.hls_gen.golden.ir import graph_to_dict


def _model(arch, epochs=4):
    torch.manual_seed(0)
    digits = load_digits_split()
    model = build_graph_model(GraphSpec(arch, "xnor", channels=8))
    return train(model, digits.x_train, digits.y_train, GraphSpec.input_shape,
                 TrainConfig(epochs=epochs)).eval()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The dense network saved with torch.save and built without a bitstream, with
    random input stalls and output backpressure in simulation."""
    root = tmp_path_factory.mktemp("graph_flow")
    torch.save(_model("dense"), root / "dense.pt")
    out = root / "build"
    model = torch.load(root / "dense.pt", weights_only=False)
    # PE 8 for the convolutions: 1,152 cycles per image, the 450 images in seconds.
    folding = {"stem": {"pe": 8}, "grow": {"pe": 8}, "merge": {"pe": 8},
               "head": {"pe": 5, "simd": 4}}
    lines = []
    report = run_flow(BuildConfig(out=str(out), bitstream=False, idle=0.3, backpressure=0.3,
                                  folding=folding), model, log=lines.append)
    return root, out, report, lines


@pytest.mark.sim
def test_a_graph_builds_and_every_tensor_matches_on_every_test_image(built):
    _, out, report, _ = built
    assert report["rtl"]["images"] == 450 and report["rtl"]["mismatches"] == 0
    assert round(report["cycles_per_image"]) == report["schedule_cycles_per_image"] == 1152
    plan = json.loads((out / "fold" / "plan.json").read_text())
    golden = json.loads((out / "golden" / "golden.json").read_text())
    # Every tensor of the graph had its tap in the bench.
    assert set(plan["taps"].values()) == {n["outputs"][0] for n in golden["nodes"]}
    assert {u["name"]: u["kind"] for u in plan["units"]}["cat"] == "concat"
    head = next(u for u in plan["units"] if u["name"] == "head")["config"]
    assert (head["pe"], head["simd"]) == (5, 4)
    # Every queue's depth, computed from the schedule, with its reason, in the plan and
    # the report; measured cycles per image equal the schedule's despite the stalls.
    assert [q["name"] for q in plan["queues"]] == ["stem__to__cat__queue", "grow__queue"]
    assert report["queues"] == plan["queues"] and report["queue_depth_seconds"] < 1
    markdown = (out / "report" / "report.md").read_text()
    for queue in plan["queues"]:
        assert f"- {queue['name']}: {queue['depth']} ({queue['reason']})" in markdown
    assert report["estimate"]["luts"] == sum(u["luts"] for u in plan["estimate"]["units"])


@pytest.mark.sim
def test_the_host_runs_the_graph_on_the_simulated_board(built, capsys):
    _, out, _, _ = built
    assert main(["run", str(out), "--images", "40"]) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["images"] == 40 and run["mismatches"] == 0
    assert run["accuracy"] == run["golden_accuracy"] > 0.5
    assert run["load_words"] == sum(c["load_words"] for c in _loaded(out))


def _loaded(out):
    """The load words of every loaded unit of the build's plan, from Amaranth's
    configs (layers, affine and threshold units)."""
    from bitfab.hls_gen.compiler.graph import HwGraph
    hw = HwGraph.from_dict(json.loads((out / "fold" / "plan.json").read_text()))
    return [{"load_words": c.load_words} for c in hw.loaded_configs]


def test_another_graph_cannot_take_the_build_s_bitstream(built, capsys):
    root, out, _, _ = built
    other = root / "resnet.json"
    torch.manual_seed(0)
    resnet = build_graph_model(GraphSpec("resnet", "xnor", channels=8)).eval()
    other.write_text(json.dumps(graph_to_dict(freeze(resnet))))
    assert main(["deploy", str(out), "--port", "socket://127.0.0.1:9", "--model",
                 str(other)]) == 2
    # Refused before the port is opened (nothing listens at port 9).
    assert ("the model does not map to the build's plan (folding names grow, merge, which "
            "is no layer of the graph" in capsys.readouterr().err)


@pytest.mark.parametrize("fold,match", [
    ("nowhere=1x1", "folding names nowhere, which is no layer of the graph; its layers: "
                    "stem, grow, merge, head"),
    ("1x1,1x1,1x1,1x1", "a graph's folding names its layers .* its layers: stem, grow, "
                        "merge, head"),
])
def test_a_graph_folding_names_layers(built, fold, match, capsys):
    root, _, _, _ = built
    assert main(["sim", str(root / "dense.pt"), "--out", str(root / "refused"),
                 "--fold", fold]) == 2
    error = capsys.readouterr().err
    assert error.startswith("bitfab sim: error: ") and re.search(match, error), error
    # Refused at the fold step: nothing emitted or simulated.
    assert not (root / "refused" / "emit_rtl").exists()


@pytest.mark.sim
def test_the_simulation_shows_its_progress_in_images(built):
    """The bench writes how many images have come out; the flow shows it while the
    simulation runs (a line a phase in a log), ending at all of them."""
    *_, lines = built
    shown = [line for line in lines if line.startswith("sim: simulating: image ")]
    assert shown and shown[-1].startswith("sim: simulating: image 450 of 450 ("), lines


def test_a_graph_crowding_the_block_rams_routes_with_router2():
    """As a chain does: router1 stalls on designs that fill most of the ECP5's block
    RAMs (CNV-W1A1; the ResNet-20 at 163 of 208 estimated)."""
    from bitfab.hls_gen.compiler.boards import BOARDS
    from bitfab.hls_gen.compiler.graph_kind import GraphKind
    plan = lambda brams: {"estimate": {"total": {"brams": brams}}}
    assert GraphKind().synth_options(plan(163), BOARDS["ulx3s-85f"]) == {"router": "router2"}
    assert GraphKind().synth_options(plan(11), BOARDS["ulx3s-85f"]) == {}
    assert GraphKind().synth_options(plan(25), BOARDS["icebreaker"]) == {}

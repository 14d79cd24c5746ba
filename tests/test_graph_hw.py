"""Graph networks in hardware: the digits graph networks (Bi-Real residual blocks, with
global average pooling too, a fractal block, a NASB cell, dense concatenation, a
grouped convolution, a REAF convolution) from their golden graphs through
`map_graph` to a `GraphNetwork` in cocotb, every tensor checked on all 450 test
images with random input stalls and output backpressure; the queues on reconvergent
paths sized from the schedule and shown tight; the graphs and foldings the hardware
flow refuses, by node name."""

import pytest
import torch

from bitfab.hls_gen.compiler.graph import graph_case, map_graph
from bitfab.hls_gen.compiler.plan import PlanError
from bitfab.hls_gen.datasets import load_digits_split
from bitfab.hls_gen.digits.graphs import GraphSpec, build_graph_model
from bitfab.hls_gen.digits.train import TrainConfig, train
from bitfab.hls_gen.golden.freeze import freeze
from bitfab.sim.cases import run_case
from bitfab.sim.runner import default_simulator

SEED = 20261207
SIM = default_simulator()
#: PE 8 where the rows allow (one beat a position at 8 channels): 576 cycles per image
#: for the residual network, so that all 450 images run in cocotb in seconds.
CAPS = (64, 8, 8)


@pytest.fixture(scope="module")
def digits():
    return load_digits_split()


def _trained(digits, arch, kind):
    torch.manual_seed(0)
    model = train(build_graph_model(GraphSpec(arch, kind, channels=8)), digits.x_train,
                  digits.y_train, GraphSpec.input_shape, TrainConfig(epochs=4))
    return freeze(model)


def _images(digits, count=None):
    return digits.x_test[:count].long().view(-1, 1, 8, 8)


@pytest.mark.sim
@pytest.mark.parametrize("arch,kind", [
    # (The dense network runs through the build flow with stalls: test_graph_flow.py.)
    ("resnet", "xnor"), ("resnet_gap", "xnor"), ("fractal", "xnor"), ("nasb", "xnor"),
    ("grouped", "xnor"), ("reaf", "xnor"),
    # The PA networks' units (M x N lanes a PE) simulate 3-4 times slower: about 90 s
    # each for 450 images, so they run with `-m slow`.
    pytest.param("resnet", "pa", marks=pytest.mark.slow),
    pytest.param("resnet_gap", "pa", marks=pytest.mark.slow),
    pytest.param("fractal", "pa", marks=pytest.mark.slow),
    pytest.param("nasb", "pa", marks=pytest.mark.slow),
    pytest.param("dense", "pa", marks=pytest.mark.slow),
    pytest.param("grouped", "pa", marks=pytest.mark.slow),
    pytest.param("reaf", "pa", marks=pytest.mark.slow),
])
def test_graph_networks_run_in_rtl_on_every_test_image_with_stalls(digits, arch, kind,
                                                                    tmp_path):
    graph = _trained(digits, arch, kind)
    hw = map_graph(graph, caps=CAPS)
    result = run_case(hw.network(), f"graph_{arch}", graph_case(graph, hw, _images(digits)),
                      tmp_path, SEED, SIM, idle=0.3, backpressure=0.3, key=kind,
                      optimize=True)
    assert result["items"] == 450 and result["mismatches"] == 0
    # Every tensor of the graph was tapped and checked, not only the scores.
    assert set(hw.taps.values()) == {n.outputs[0] for n in graph.nodes}


def test_the_residual_network_is_assembled_edge_by_edge(digits):
    graph = _trained(digits, "resnet", "xnor")
    hw = map_graph(graph, caps=CAPS)
    kinds = {u.name: u.kind for u in hw.units}
    assert kinds["stem_value"] == "affine" and kinds["acts_0"] == "threshold"
    assert kinds["add"] == "add" and kinds["pool"] == "pool"
    assert kinds["stem_value__fork"] == "fork"
    add = hw.unit("add")
    assert add.inputs == ("stem_value__to__add__queue", "convs_0_value__queue")
    assert hw.schedule_cycles == 576


@pytest.fixture(scope="module")
def resnet(digits):
    graph = _trained(digits, "resnet", "xnor")
    return graph, map_graph(graph, caps=CAPS)


def test_queue_depths_come_from_the_schedule_with_their_reasons(resnet):
    import json
    _, hw = resnet
    # The plan, as JSON, names every queue's depth and why.
    plan = json.loads(json.dumps(hw.plan_dict()))
    assert plan["queues"] == hw.queues and plan["schedule_cycles_per_image"] == 576
    assert {u["name"]: u.get("depth") for u in plan["units"]}["stem_value__to__add__queue"] == 19
    assert next(u for u in plan["units"] if u["name"] == "add")["config"]["shifts"]
    depths = {q["name"]: q for q in hw.queues}
    shortcut = depths["stem_value__to__add__queue"]
    # convs_0's 3 x 3 window reads the next row of 8 positions before its first output:
    # 15 positions ahead at a beat each, 14 in the queue and one in the fork; then the
    # path's 39 cycles of pipeline (its affine unit's 2 multipliers take a beat's 8
    # lanes in 4 cycles), 5 beats at 9 cycles a beat.
    assert shortcut["depth"] == 19
    assert "reads 15 positions of stem_value ahead" in shortcut["reason"]
    assert "39 cycles" in shortcut["reason"]
    assert depths["convs_0_value__queue"]["depth"] == 2
    assert hw.depth_seconds < 1.0


@pytest.mark.sim
def test_each_queue_one_entry_less_is_slower_and_fewer_deadlock_named(resnet, digits,
                                                                      tmp_path):
    graph, hw = resnet
    case = graph_case(graph, hw, _images(digits, 4))

    def run(depths, **options):
        return run_case(hw.with_queue_depths(depths).network(), "graph_resnet_fifo", case,
                        tmp_path, SEED, SIM, key=sorted(depths.items()), **options)

    assert run({})["cycles_per_item"] == hw.schedule_cycles
    shortcuts = [q for q in hw.queues if q["depth"] > 2]
    assert len(shortcuts) == 2
    for queue in shortcuts:
        slower = run({queue["name"]: queue["depth"] - 1})
        assert slower["mismatches"] == 0, queue
        assert slower["cycles_per_item"] > hw.schedule_cycles, queue
    # 15 positions of one beat, less the one in the fork: fewer deadlock.
    with pytest.raises(RuntimeError, match=r"deadlock: no beat moved for 2000 cycles; stopped: "
                                           r"tap_stem \d+ of 256 beats"):
        run({"stem_value__to__add__queue": 13}, stall_limit=2000)


def test_a_grouped_convolution_is_split_by_group_and_concatenated(digits):
    graph = _trained(digits, "grouped", "xnor")
    hw = map_graph(graph, caps=CAPS)
    kinds = {u.name: u.kind for u in hw.units}
    assert kinds["group__split"] == "split" and kinds["group__cat"] == "concat"
    assert [kinds[f"group__g{k}"] for k in range(4)] == ["layer"] * 4
    # Each group's unit loads its own weights; their load words follow one another.
    assert [(e.unit, e.node, e.group) for e in hw.layers][1:5] == [
        (f"group__g{k}", "group", k) for k in range(4)]
    # 2 channels a group: the stem, whose beats the groups take, narrows to PE 2.
    assert hw.unit("stem").config.pe == 2 and hw.unit("group__split").beats == (1,) * 4
    with pytest.raises(PlanError, match="layer group: its groups of 2 input channels do not "
                                        "take whole beats of 8; fold the layer before it to "
                                        "a PE dividing 2"):
        map_graph(graph, folding={"stem": {"pe": 8}}, caps=CAPS)


@pytest.fixture(scope="module")
def dense(digits):
    graph = _trained(digits, "dense", "xnor")
    return graph, map_graph(graph)


@pytest.mark.parametrize("folding,match", [
    ({"nowhere": {"pe": 1}}, "folding names nowhere, which is no layer of the graph; its "
                             "layers: stem, grow, merge, head"),
    ({"grow": {"pe": 4}, "stem": {"pe": 2}}, r"node cat \(Concat\): its inputs' layers stem, "
                                             r"grow must share one PE"),
    ({"merge": {"pe": 3}}, "layer merge: pe=3 does not divide its 8 output rows"),
])
def test_bad_foldings_are_refused_naming_the_node(dense, folding, match):
    graph, _ = dense
    with pytest.raises(PlanError, match=match):
        map_graph(graph, folding=folding)


def test_a_queue_override_must_name_a_queue(dense):
    _, hw = dense
    with pytest.raises(PlanError, match="no queue named cat; the queues: grow__queue, "
                                        "stem__to__cat__queue"):
        hw.with_queue_depths({"cat": 4})


def test_the_estimate_counts_every_unit_and_a_graph_too_big_is_refused(resnet):
    from bitfab.hls_gen.compiler.boards import BOARDS
    from bitfab.hls_gen.compiler.graph import estimate_graph
    _, hw = resnet
    fit, overrun = estimate_graph(hw, BOARDS["ulx3s-85f"])
    assert overrun is None
    assert [u["name"] for u in fit["units"]] == [u.name for u in hw.units]
    for key in ("luts", "ffs", "brams", "dsps"):
        assert fit["total"][key] == sum(u[key] for u in fit["units"])
    # The shortcut queues (19 beats of 8 x 24 bits) sit in LUT RAM; the affine units'
    # products in DSPs, 2 for 8 lanes: 64 beats an image at 4 cycles a beat are within
    # half the schedule's 576.
    queue = next(u for u in fit["units"] if u["name"] == "stem_value__to__add__queue")
    assert queue["brams"] == 0 and queue["luts"] == 2 * 48 * 2 + 20
    assert next(u for u in fit["units"] if u["name"] == "stem_value")["dsps"] == 2
    torch.manual_seed(0)
    wide = freeze(build_graph_model(GraphSpec("resnet", "pa", channels=64)).eval())
    with pytest.raises(PlanError, match=r"plan does not fit icebreaker: unit stem brings luts "
                                        r"to \d+ \(estimated\), the device has 5280"):
        map_graph(wide, caps=CAPS, board=BOARDS["icebreaker"])


def test_an_affine_unit_s_multipliers_are_a_folding_option(resnet):
    graph, _ = resnet
    hw = map_graph(graph, folding={"stem_value": {"multipliers": 8}}, caps=CAPS)
    assert hw.unit("stem_value").config.multipliers == 8
    assert hw.unit("convs_0_value").config.multipliers == 2      # the default
    for folding, match in (({"stem_value": {"multipliers": 3}},
                            r"node stem_value \(Affine\): affine multipliers must divide its "
                            r"8 lanes, not 3"),
                           ({"stem_value": {"pe": 2}},
                            r"folding of node stem_value \(Affine\): it takes multipliers "
                            r"only, not pe")):
        with pytest.raises(PlanError, match=match):
            map_graph(graph, folding=folding, caps=CAPS)

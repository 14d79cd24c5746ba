"""The CIFAR-shaped binary ResNet-20 (`bitfab.hls_gen.resnet`): its topology, its golden
model against PyTorch on photo crops, and its hardware graph's queue depths computed
from the schedule in well under a second (no simulation)."""

import torch

from bitfab.hls_gen.compiler.graph import map_graph
from bitfab.hls_gen.datasets import photo_crops
from bitfab.hls_gen.golden.freeze import FreezeConfig, freeze
from bitfab.hls_gen.golden.ir import Add, GlobalSum, PopcountLayer, XnorLayer
from bitfab.hls_gen.resnet import resnet20

#: Random weights leave small margins, and a flipped sign spreads through 18 residual
#: units: 16-bit coefficients agree with float64 on 81% of crops, 22 bits on 99.6%.
WIDE = FreezeConfig(coef_bits=22, acc_bits=40, image=(32, 32))


def test_resnet20_is_20_layers_2_shortcut_convolutions_and_a_global_pool():
    graph = freeze(resnet20(calibration=16), WIDE)
    # The stem takes the pixels' bit planes (a popcount layer); 18 units, 2 downsampling
    # shortcuts and the head are XNOR layers.
    assert isinstance(graph.node("stem"), PopcountLayer)
    layers = [n for n in graph.nodes if isinstance(n, XnorLayer)]
    assert len(layers) == 18 + 2 + 1
    assert sum(n.name.endswith("_short") for n in layers) == 2
    assert sum(isinstance(n, Add) for n in graph.nodes) == 18
    gap = next(n for n in graph.nodes if isinstance(n, GlobalSum))
    assert gap.positions == 8 * 8
    crops = photo_crops(128, 32, 32)
    model = resnet20(calibration=16).double()
    with torch.no_grad():
        expected = model(crops.double()).argmax(1)
    assert float((graph.predict(crops) == expected).double().mean()) >= 0.99


def test_resnet20_queue_depths_come_from_the_schedule_in_well_under_a_second():
    graph = freeze(resnet20(calibration=16), WIDE)
    layers = [n.name for n in graph.nodes if isinstance(n, (PopcountLayer, XnorLayer))]
    hw = map_graph(graph, (32, 32), {name: {"pe": 16} for name in layers if name != "head"})
    assert len(hw.queues) == 2 * 18 and hw.depth_seconds < 1.0
    shortcuts = [q for q in hw.queues if q["depth"] > 2]
    # Every shortcut around a 3x3 convolution waits for its window's next row: at least
    # a row of 32 positions at the first stage.
    assert all("positions" in q["reason"] for q in shortcuts)
    assert max(q["depth"] for q in shortcuts) > 32

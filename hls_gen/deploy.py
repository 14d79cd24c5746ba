"""``bitfab run``: a build's weights and the digits test images down a serial link to the
board, its scores back, each compared with the golden model.

The bitstream holds no weights: they go down first (`Host.load`), so another
model of the same plan (retrained, refrozen: ``--model``) runs on the same
bitstream. The port is a board's serial device or ``sim``, the build's own
Verilog under the serial shell in Verilator (`bitfab.sim.board`), which the
host drives over the same protocol.
"""

import time
from dataclasses import asdict
from pathlib import Path

from .errors import BitfabError
from .flow import network_verilog, read_result, write_result
from .ir import graph_from_dict
from .plan import fold, load_rows, map_to_hw, plan_from_dict

__all__ = ["run_on_board", "check_same_plan"]


def check_same_plan(graph, configs, names):
    """Raise unless `graph`, folded as the build was, maps to the build's `configs`:
    the bitstream's memories and widths are fixed, only their contents change."""
    mapped = map_to_hw(graph)
    if len(mapped) != len(configs):
        raise BitfabError(f"the model has {len(mapped)} layers, the build's plan "
                          f"{len(configs)}: build it instead")
    folded = fold(mapped, [{"pe": c.pe, "simd": c.simd} for c in configs], names)
    for name, theirs, ours in zip(names, folded, configs):
        for field, value in asdict(ours).items():
            if getattr(theirs, field) != value:
                raise BitfabError(f"layer {name}: {field} is {getattr(theirs, field)} in the "
                                  f"model, {value} in the build's plan; the bitstream "
                                  f"cannot take it: build the model instead")


def run_on_board(out, port="sim", model=None, images=None, timeout=None, log=print):
    """Load the weights of `model` (a frozen graph; default the build's golden.json) into
    the board at `port`, stream `images` digits test images (default all), and
    write ``out/run.json``: mismatches against the golden model, accuracy, speed."""
    import torch

    from bitfab.rtl.network import NetworkInstance
    from bitfab.sw_driver.host import Host, open_link
    from bitfab.sw_driver.protocol import WireFormat

    from .data import load_digits_split
    plan = read_result(out, "plan.json")
    if "layers" not in plan:
        raise BitfabError(f"{Path(out) / 'plan.json'} is not a network's plan (a convolution "
                          f"engine's?): bitfab run drives networks")
    configs, names = plan_from_dict(plan)
    graph = model if model is not None else graph_from_dict(read_result(out, "golden.json"))
    check_same_plan(graph, configs, names)
    words = [w for layer, config in zip(graph.layers, configs)
             for w in config.pack(load_rows(layer, config))]
    split = load_digits_split()
    pixels = split.x_test.long().flatten(1)[:images]
    labels = split.y_test[:images]
    golden = graph.run(pixels)[0]

    def session(url, seconds):
        link = open_link(url, timeout=min(seconds, 2.0))
        try:
            host = Host(link, WireFormat.of_layers(configs), timeout=seconds)
            log(f"run: {len(words)} load words, then {len(pixels)} images, to {url}")
            start = time.perf_counter()
            host.load(words, configs)
            scores = host.scores(configs, pixels, graph.layers[0].input_encoding)
            return scores, time.perf_counter() - start
        finally:
            link.close()

    if port == "sim":
        from bitfab.sim.board import SimulatedBoard, shell_verilog
        log("run: the simulated board (the build's Verilog under the serial shell, "
            "in Verilator)")
        design = shell_verilog(NetworkInstance(configs), _network_v(out, configs, log))
        with SimulatedBoard(design, Path(out) / "board_sim") as board:
            scores, seconds = session(board.url, timeout or 120.0)
    else:
        scores, seconds = session(port, timeout or 2.0)
    scores = torch.tensor(scores)
    wrong = (scores != golden).any(dim=1)
    result = {"port": port, "images": len(pixels), "mismatches": int(wrong.sum()),
              "first_mismatch": int(wrong.nonzero()[0]) if wrong.any() else None,
              "accuracy": (scores.argmax(1) == labels).float().mean().item(),
              "golden_accuracy": (golden.argmax(1) == labels).float().mean().item(),
              "load_words": len(words), "seconds": round(seconds, 2)}
    write_result(out, "run.json", result)
    log(f"run: {result['images']} images, {result['mismatches']} score mismatches against "
        f"the golden model, accuracy {100 * result['accuracy']:.1f}%, {seconds:.1f} s")
    return result


def _network_v(out, configs, log):
    text = network_verilog(out, configs)
    if text is None:
        from amaranth.back import verilog

        from bitfab.rtl.network import Network
        log("run: network.v is not this plan's; converting the network (minutes)")
        text = verilog.convert(Network(configs), name="network")
    return text

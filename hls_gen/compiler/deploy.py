"""``bitfab deploy``, ``run`` and ``board``: a build's weights and the digits test images
down a serial link to the board, its scores back, each compared with the golden
model.

The bitstream holds no weights: they go down first (`deploy_weights`, or
`run_on_board` before the images), so another model of the same plan
(retrained, refrozen: ``--model``) runs on the same bitstream. The port is a
board's serial device, a pyserial URL, or ``sim``: the build's own Verilog under
the serial shell in Verilator (`bitfab.sim.board`), which the host drives over
the same protocol. ``bitfab board`` keeps such a simulated board running for
several commands, as a powered board stays loaded between them.
"""

import json
import time
from dataclasses import fields
from pathlib import Path

from bitfab.hls_gen.errors import BitfabError
from bitfab.hls_gen.compiler.cases import pixel_rows
from bitfab.hls_gen.compiler.flow import design_verilog, read_result
from bitfab.hls_gen.compiler.graph import HwGraph, graph_load_stream
from bitfab.hls_gen.compiler.graph_kind import GraphKind, check_same_graph_plan
from bitfab.hls_gen.compiler.network import NetworkKind
from bitfab.hls_gen.golden.ir import graph_from_dict
from bitfab.hls_gen.compiler.folding import fold
from bitfab.hls_gen.compiler.plan import map_to_hw, plan_from_dict
from bitfab.hls_gen.compiler.stores import load_stream
from bitfab.rtl.network import Network, NetworkInstance

__all__ = ["deploy_weights", "run_on_board", "serve_board", "simulated_board",
           "check_same_plan", "board_target"]

# Seconds to wait for a reply from a board, and from a simulated one (``sim``, or
# ``bitfab board``'s socket://), which runs far slower than the wire.
TIMEOUT_S, SIM_TIMEOUT_S = 2.0, 600.0
OPTIMIZE_ABOVE_WORDS = 500


def _timeout(port, timeout):
    if timeout is not None:
        return timeout
    return SIM_TIMEOUT_S if port == "sim" or port.startswith("socket://") else TIMEOUT_S


def check_same_plan(graph, configs, names):
    """Raise unless `graph`, folded as the build was, maps to the build's `configs`:
    the bitstream's memories and widths are fixed, only their contents change."""
    window = configs[0].window
    mapped = map_to_hw(graph, window and (window.height, window.width))
    if len(mapped) != len(configs):
        raise BitfabError(f"the model has {len(mapped)} layers, the build's plan "
                          f"{len(configs)}: build it instead")
    folded = fold(mapped, [{"pe": c.pe, "simd": c.simd, "multipliers": c.multipliers,
                            "fifo": c.fifo, "bank_rows": c.weight_bank_rows}
                           for c in configs], names)
    for name, theirs, ours in zip(names, folded, configs):
        for field in (f.name for f in fields(ours)):
            value = getattr(ours, field)
            if getattr(theirs, field) != value:
                raise BitfabError(f"layer {name}: {field} is {getattr(theirs, field)} in the "
                                  f"model, {value} in the build's plan; the bitstream "
                                  f"cannot take it: build the model instead")


def _plan(out):
    """The plan of a network's build (a chain's or a graph's), as plan.json holds it."""
    plan = read_result(out, "plan.json")
    if "layers" not in plan and "units" not in plan:
        raise BitfabError(f"the plan in {out} is not a network's plan (a convolution "
                          f"engine's?): bitfab deploy, run and board drive networks")
    return plan


def _core(plan):
    """(the kind, a function making the network, a function making it as an instance of
    the build's network.v, its load words) of a network's `plan`."""
    if "units" in plan:
        hw = HwGraph.from_dict(plan)
        return (GraphKind(), hw.network, lambda: hw.network(module="network"),
                sum(c.load_words for c in hw.loaded_configs))
    configs = plan_from_dict(plan)[0]
    return (NetworkKind(), lambda: Network(configs), lambda: NetworkInstance(configs),
            sum(c.load_words for c in configs))


def _build(out, model):
    """(the host's configs, the model to load, its load words) of the build in `out`:
    the loaded units' configs, the first reading the input and the last writing the
    scores; the model (default the build's golden.json) checked against the plan."""
    plan = _plan(out)
    graph = model if model is not None else graph_from_dict(read_result(out, "golden.json"))
    if "units" in plan:
        check_same_graph_plan(graph, plan)
        hw = HwGraph.from_dict(plan)
        return hw.host_configs(), graph, graph_load_stream(graph, hw)
    configs, names = plan_from_dict(plan)
    check_same_plan(graph, configs, names)
    return configs, graph, load_stream(graph, configs)


def simulated_board(out, sessions=1, log=print):
    """A `SimulatedBoard` of the build in `out`, serving `sessions` hosts (0: no end)."""
    from amaranth.back import verilog

    from bitfab.sim.board import SimulatedBoard, shell_verilog
    plan = _plan(out)
    kind, design, instance, words = _core(plan)
    text = design_verilog(out, kind, plan)
    if text is None:
        log("network.v is not this plan's; converting the network (minutes)")
        text = verilog.convert(design(), name="network")
    # A network of more than a few hundred load words runs long enough over the line
    # that an optimised simulator pays for its longer build.
    optimize = words > OPTIMIZE_ABOVE_WORDS
    log(f"the simulated board: the build's Verilog under the shell's frames, in Verilator"
        f"{' (-O1)' if optimize else ''}")
    # The shell's byte streams driven directly: the frames a board's UART carries,
    # without simulating each bit of them.
    return SimulatedBoard(shell_verilog(instance(), text, uart=False),
                          Path(out) / "board_sim", sessions=sessions, optimize=optimize,
                          uart=False)


def _link_bound(configs):
    """Bytes per image on the line and the images/s a UART at `BAUD` (8N1: 10 bits a
    byte) carries: a board's bound, far below what its network computes."""
    from bitfab.rtl.shell import BAUD
    from bitfab.sw_driver.protocol import WireFormat
    per_image = WireFormat.of_layers(configs).item_bytes(
        configs[0].image_elements // configs[0].in_beat, configs[-1].groups)
    return {"wire_bytes_per_image": per_image,
            "link_images_per_s": round(BAUD / 10 / per_image, 1), "baud": BAUD}


def _session(url, configs, timeout, work):
    """`work(host)` over a link to `url`, closed after."""
    from bitfab.sw_driver.host import Host, open_link
    from bitfab.sw_driver.protocol import WireFormat
    link = open_link(url, timeout=min(timeout, TIMEOUT_S))
    with Host(link, WireFormat.of_layers(configs), timeout=timeout) as host:
        return work(host)


def deploy_weights(out, port, model=None, timeout=None, log=print):
    """Load `model`'s weights (default the build's golden.json) into the board at `port`
    and leave them there."""
    if port == "sim":
        raise BitfabError("a simulated board started for one command forgets its weights "
                          "when the command ends: start one with `bitfab board BUILD` and "
                          "deploy to the URL it prints")
    configs, _, words = _build(out, model)
    status = _session(port, configs, _timeout(port, timeout),
                      lambda host: host.load(words, configs))
    log(f"deploy: {len(words)} load words to {port}, taken whole (CRC {status.crc:#06x})")
    return len(words)


def run_on_board(out, port="sim", model=None, images=None, timeout=None, load=True,
                 log=print):
    """Load the weights of `model` (a frozen graph; default the build's golden.json) into
    the board at `port` (unless `load` is false: deployed before), stream `images`
    digits test images (default all), and write ``out/run.json``: mismatches
    against `model`, accuracy, speed. Any mismatch then raises, naming the first. A
    network on photo crops (3 channels of 8 bits) runs crops, which have no labels:
    its accuracy is None."""
    import torch

    from bitfab.hls_gen.compiler.network import test_inputs
    from bitfab.hls_gen.datasets import load_digits_split
    if images is not None and (not isinstance(images, int) or images < 1):
        raise BitfabError(f"images must be a positive number of test images, not {images!r}")
    if port == "sim" and not load:
        raise BitfabError("--no-load needs a board that holds weights: `bitfab board "
                          "BUILD` and its URL, or a real board")
    configs, graph, words = _build(out, model)
    count = images if images is not None else len(load_digits_split().x_test)
    pixels, labels = test_inputs(graph, configs[0], count)
    golden = graph.run(pixels)[0]
    pixels = pixel_rows(pixels)

    def work(host):
        log(f"run: {len(words) if load else 'no'} load words, then {len(pixels)} images")
        start = time.perf_counter()
        if load:
            host.load(words, configs)
        elif not host.status().loaded:
            raise BitfabError(f"the board at {port} holds no weights: `bitfab deploy` "
                              f"them first, or run without --no-load")
        scores = host.scores(configs, pixels, graph.input_encoding)
        return scores, time.perf_counter() - start

    if port == "sim":
        with simulated_board(out, log=log) as board:
            scores, seconds = _session(board.url, configs, _timeout(port, timeout), work)
    else:
        scores, seconds = _session(port, configs, _timeout(port, timeout), work)
    scores = torch.tensor(scores)
    wrong = (scores != golden).any(dim=1)
    result = {"port": port, "images": len(pixels), "mismatches": int(wrong.sum()),
              "first_mismatch": int(wrong.nonzero()[0]) if wrong.any() else None,
              "accuracy": _accuracy(scores, labels), "golden_accuracy": _accuracy(golden, labels),
              "load_words": len(words) if load else 0, "seconds": round(seconds, 2),
              **_link_bound(configs)}
    (Path(out) / "run.json").write_text(json.dumps(result, indent=1) + "\n")
    accuracy = "" if labels is None else f", accuracy {100 * result['accuracy']:.1f}%"
    log(f"run: {result['images']} images, {result['mismatches']} score mismatches against "
        f"the golden model{accuracy}, {seconds:.1f} s")
    if wrong.any():
        k = result["first_mismatch"]
        raise BitfabError(f"the board's scores differ from the golden model's on "
                          f"{result['mismatches']} of {len(pixels)} images (first: test image "
                          f"{k}, board {scores[k].tolist()}, golden {golden[k].tolist()}); "
                          f"{Path(out) / 'run.json'}")
    return result


def _accuracy(scores, labels):
    return None if labels is None else (scores.argmax(1) == labels).float().mean().item()


def serve_board(out, log=print):
    """The build's simulated board, serving hosts one after another until interrupted."""
    with simulated_board(out, sessions=0, log=log) as board:
        log(f"board: listening at {board.url} (Ctrl-C stops it)")
        board.wait()


def board_target(graph):
    """A `bitfab.sim.wire_fuzz.BoardTarget` of chain `graph` at the default folding: the
    shell around its network, converted to Verilog, its load words, every digits test
    image (or photo crop) and the golden scores."""
    from amaranth.back import verilog

    from bitfab.hls_gen.compiler.network import test_inputs
    from bitfab.sim.board import shell_verilog
    from bitfab.sim.wire_fuzz import BoardTarget
    from bitfab.sw_driver.protocol import WireFormat
    configs = fold(map_to_hw(graph))
    design = shell_verilog(NetworkInstance(configs),
                           verilog.convert(Network(configs), name="network"), uart=False)
    pixels, _ = test_inputs(graph, configs[0], None)
    return BoardTarget(design, load_stream(graph, configs), WireFormat.of_layers(configs),
                       configs, pixel_rows(pixels), graph.input_encoding,
                       graph.run(pixels)[0])

"""Networks of matrix-vector units: PA and XNOR layers, one `MatrixVectorUnit` each.

What the flow's steps make of a network::

    golden     golden.json   the integer golden model (a frozen `Graph`)
    map_to_hw  hw.json       one matrix-vector unit per layer, unfolded
    fold       plan.json     PE/SIMD per layer (``folding``, or the widest default
                             that fits the board), memory shapes, widths, estimate
    emit_rtl   network.v     the `bitfab.rtl.network.Network`; weights.json
    sim        sim.json      the digits test images (photo crops for 3 x 8-bit
                             channels), every layer's output checked
"""

from bitfab.hls_gen.compiler.design import DesignKind, report_node
from bitfab.hls_gen.compiler.estimates import check_fit
from bitfab.hls_gen.compiler.folding import (default_folding, fitting_folding, fold,
                                             image_cycles, stage_cycles)
from bitfab.hls_gen.compiler.plan import PlanError, map_to_hw, plan_from_dict, plan_to_dict
from bitfab.hls_gen.compiler.stores import load_stream
from bitfab.hls_gen.errors import BitfabError
from bitfab.hls_gen.golden.ir import Graph, graph_from_dict, graph_to_dict

__all__ = ["NetworkKind", "test_inputs", "crowded_router"]

LAYER_FIELDS = ("name", "rows", "cols", "pe", "simd", "m", "n_in", "front", "acc_bits",
                "window", "multipliers", "pool", "fifo_depth")
DIGITS_IMAGE = (8, 8)
#: On the ECP5 a plan estimated to fill more than this share of the block RAMs is
#: routed by nextpnr's router2: CNV-W1A1 (195 of 208 estimated, 161 placed) left
#: router1 near 4,000 overused wires after 47 minutes; router2 routed it in 231 s.
#: Smaller networks keep router1, which their recorded builds used.
ROUTER2_ABOVE_BRAM_SHARE = 0.5


def crowded_router(plan, board):
    """nextpnr's router2 for a plan whose estimate fills more than
    `ROUTER2_ABOVE_BRAM_SHARE` of an ECP5's block RAMs (chains and graphs alike)."""
    brams = plan["estimate"]["total"]["brams"]
    crowded = brams > ROUTER2_ABOVE_BRAM_SHARE * board.resources["brams"]
    return {"router": "router2"} if crowded and board.family.name == "ecp5" else {}


def test_inputs(graph, first, count):
    """The test inputs for a network whose first layer (or threshold unit of the
    pixels) is `first`: the digits test
    images for 8 x 8 pixels of 5 bits (one channel, or 64 features); crops of
    scikit-learn's photos for a convolution on 3 channels of 8-bit pixels, at its
    image size; anything else is refused by name. Returns (pixels, labels): the
    digits' classes, or None for photo crops, which have none."""
    from bitfab.hls_gen.datasets import load_digits_split, photo_crops
    w = getattr(first, "window", None)      # a threshold unit of the pixels has none
    if w is not None and (w.channels, graph.input_bits) == (3, 8):
        return photo_crops(count, w.height, w.width), None
    digits = load_digits_split()
    if (first.image_elements != digits.x_test[0].numel() or graph.input_bits < digits.pixel_bits
            or (w and (w.height, w.width) != DIGITS_IMAGE)):
        shape = f"{w.channels} x {w.height} x {w.width}" if w else f"{first.image_elements}"
        raise BitfabError(
            f"the network takes {shape} inputs of {graph.input_bits} bits; the test inputs "
            f"bitfab has for networks are the digits (8 x 8 = {digits.x_test[0].numel()} "
            f"pixels of {digits.pixel_bits} bits) and photo crops (3 channels of 8 bits), "
            f"so it cannot be simulated here")
    pixels = digits.x_test.long()[:count]
    pixels = pixels.view(-1, 1, *DIGITS_IMAGE) if w else pixels.flatten(1)
    return pixels, digits.y_test[:count]


def _by_position(folding, configs, names):
    """A chain's folding as a list: given by layer name ({name: {"pe", "simd", ...}}),
    the layers not named take the default folding; a name that is no layer is refused."""
    if not isinstance(folding, dict):
        return folding
    unknown = sorted(set(folding) - set(names))
    if unknown:
        raise PlanError(f"folding names {', '.join(unknown)}, which is no layer of the "
                        f"network; its layers: {', '.join(names)}")
    return [folding.get(name, default) for name, default in zip(names, default_folding(configs))]


class NetworkKind(DesignKind):
    """A network of PA and XNOR layers (`bitfab.hls_gen.golden.ir.Graph`)."""

    name = "network"
    toplevel = "network"

    def accepts(self, model):
        # Any other module: the freezer maps it, or names the layer it cannot map.
        # (`kinds.KINDS` asks the other kinds first.)
        return True

    def accepts_golden(self, value):
        return value.get("kind", "network") == "network"

    def freeze(self, model, log):
        from bitfab.hls_gen.golden.freeze import freeze
        graph = model if isinstance(model, Graph) else freeze(model)
        return graph_to_dict(graph)

    def map_to_hw(self, golden, cfg, log):
        graph = graph_from_dict(golden)
        # A network that starts with a convolution sees images: the digits' 8 x 8 unless
        # the build says otherwise (--image).
        configs = map_to_hw(graph, cfg.image or DIGITS_IMAGE)
        if configs[0].window is not None:
            w = configs[0].window
            log(f"map_to_hw: a convolutional network on {w.channels} x {w.height} x "
                f"{w.width} inputs")
        return plan_to_dict(configs, [layer.name for layer in graph.layers])

    def fold(self, hw, cfg, board, log, golden):
        configs, names = plan_from_dict(hw)
        if cfg.folding is None:
            folded, fit = fitting_folding(configs, board, names)
        else:
            folded = fold(configs, _by_position(cfg.folding, configs, names), names, board)
            fit = check_fit(folded, board, names)
        schedule = image_cycles(folded)
        log("plan: " + ", ".join(f"{n} pe={c.pe} simd={c.simd} ({c.positions * c.cycles} "
                                 f"cycles per image)" for n, c in zip(names, folded))
            + f"; the pipeline's schedule: {schedule} cycles per image")
        return {**plan_to_dict(folded, names), "board": board.name, "estimate": fit,
                "cycles_per_layer": [c.cycles for c in folded],
                "schedule_cycles_per_image": schedule}

    def synth_options(self, plan, board):
        return crowded_router(plan, board)

    def design(self, plan):
        from bitfab.rtl.network import Network
        return Network(plan_from_dict(plan)[0])

    def core(self, plan):
        return plan_from_dict(plan)[0]

    def load_words(self, golden, plan):
        configs = plan_from_dict(plan)[0]
        # (The Network checks that every layer shares this width when it is built.)
        return {"word_bits": configs[0].word_bits,
                "words": load_stream(graph_from_dict(golden), configs)}

    def case(self, golden, plan, cfg, count):
        from bitfab.hls_gen.compiler.cases import network_case
        graph, configs = graph_from_dict(golden), plan_from_dict(plan)[0]
        pixels, _ = test_inputs(graph, configs[0], count)
        return network_case(graph, configs, pixels), len(pixels)

    def report_layers(self, plan):
        return [{k: layer.get(k) for k in LAYER_FIELDS} for layer in plan["layers"]]

    def report_nodes(self, plan):
        configs, names = plan_from_dict(plan)
        estimates = {row["name"]: row for row in plan["estimate"].get("layers", [])}
        return [report_node(name, "layer", stage_cycles(c), c.fifo_depth, estimates.get(name))
                for name, c in zip(names, configs)]

    def format_layers(self, report):
        def window(layer):
            w = layer.get("window")
            return (f"{w['kernel']}x{w['kernel']} conv, stride {w['stride']}, on "
                    f"{w['channels']} x {w['height']} x {w['width']}" if w else "fully connected")
        lines = ["| layer | rows x cols | PE | SIMD | M x N | front | kind | FIFO |",
                 "|---|---|---|---|---|---|---|---|"]
        return lines + [f"| {l['name']} | {l['rows']} x {l['cols']} | {l['pe']} | {l['simd']} "
                        f"| {l['m']} x {l['n_in']} | {l['front']} | {window(l)} "
                        f"| {l.get('fifo_depth')} |"
                        for l in report["layers"]]



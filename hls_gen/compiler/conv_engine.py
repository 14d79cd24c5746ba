"""One integer convolution layer (`IntConv2d`) on a convolution engine, DFNT or direct.

What the flow's steps make of it::

    golden     golden.json   the integer layer (weights, padding, widths)
    map_to_hw  hw.json       the engine chosen (``engine``) and its config
    fold       plan.json     the engine's estimate; refused if it exceeds the board
    emit_rtl   engine.v      Verilog of the engine; weights.json, its load words
    sim        sim.json      real images (digits or photo crops), every output
                             against the golden layer
    synth                    the engine behind the UART shell, at `ENGINE_CLOCK_MHZ`
"""

from bitfab.hls_gen.compiler.design import DesignKind
from bitfab.hls_gen.compiler.engines import (check_engine_fit, engine_from_dict, engine_to_dict,
                                             load_words, select_engine)
from bitfab.hls_gen.errors import BitfabError
from bitfab.hls_gen.golden.intconv import IntConvLayer, freeze_conv, is_conv_model

__all__ = ["EngineKind", "ENGINE_CLOCK_MHZ", "CONV_IMAGE", "image_size"]

CONV_IMAGE = {1: (8, 8)}          # the digits; photo crops otherwise
PHOTO_IMAGE = (32, 32)
SIM_IMAGES = 8
# The engines' default clock where it differs from the board's: on the ULX3S the DFNT
# engine routes at 61 to 64 MHz and a 3x3 direct engine at 54, short of the
# networks' 100 MHz.
ENGINE_CLOCK_MHZ = {"ulx3s-85f": 50.0}


def image_size(cfg, layer):
    """(height, width) the engine is built for: ``cfg.image``, else the data set's."""
    if cfg.image is not None:
        return tuple(cfg.image)
    return CONV_IMAGE.get(layer.in_channels, PHOTO_IMAGE)


def _engine(kind, config):
    if kind == "dfnt":
        from bitfab.rtl.dfnt_conv import DFNTConvEngine
        return DFNTConvEngine(config)
    from bitfab.rtl.direct_conv import DirectConvEngine
    return DirectConvEngine(config)


class EngineKind(DesignKind):
    """An `IntConvLayer` on the DFNT or the direct convolution engine."""

    name = IntConvLayer.kind
    toplevel = "engine"

    def accepts(self, model):
        return is_conv_model(model)

    def accepts_golden(self, value):
        return value.get("kind") == self.name

    def freeze(self, model, log):
        layer = freeze_conv(model)
        log(f"golden: {layer.name}: {layer.in_channels} -> {layer.out_channels} channels, "
            f"{layer.kernel}x{layer.kernel}, padding {layer.padding}, x {layer.x_bits} bits, "
            f"w {layer.w_bits} bits")
        return layer.to_dict()

    def map_to_hw(self, golden, cfg, log):
        layer = IntConvLayer.from_dict(golden)
        height, width = image_size(cfg, layer)
        kind, config = select_engine(layer, height, width, cfg.engine)
        detail = f" (modulus 2^{config.b} + 1, L = {config.length})" if kind == "dfnt" else ""
        log(f"map_to_hw: {layer.name} on the {kind} engine{detail} for {height}x{width} images")
        return {**engine_to_dict(kind, config), "layer": layer.name}

    def fold(self, hw, cfg, board, log, golden):
        if cfg.folding is not None:
            raise BitfabError("--fold sets PE x SIMD of matrix-vector layers; a convolution "
                              "engine has no such folding")
        kind, config = engine_from_dict(hw)
        used = check_engine_fit(hw["layer"], kind, config, board)
        log(f"plan: {kind} engine, estimate {used}")
        return {**hw, "board": board.name, "estimate": {"total": used},
                "cycles": getattr(config, "cycles", None)}

    def design(self, plan):
        return _engine(*engine_from_dict(plan))

    def load_words(self, golden, plan):
        kind, config = engine_from_dict(plan)
        weight = IntConvLayer.from_dict(golden).weight
        return {"word_bits": config.word_bits, "words": load_words(kind, config, weight)}

    def case(self, golden, plan, cfg, count):
        from bitfab.hls_gen.datasets import conv_images
        from bitfab.hls_gen.compiler.cases import dfnt_case, direct_case
        layer = IntConvLayer.from_dict(golden)
        kind, config = engine_from_dict(plan)
        height, width = image_size(cfg, layer)
        x = conv_images(layer, count or SIM_IMAGES, height, width)
        y = layer.execute(x)
        case = (dfnt_case(config, x, layer.weight, y) if kind == "dfnt" else
                direct_case(config, x, layer.weight, y, layer.padding))
        return case, len(x)

    def clock_mhz(self, cfg, board):
        return cfg.clock_mhz if cfg.clock_mhz is not None else ENGINE_CLOCK_MHZ.get(board.name)

    def synth_options(self, plan, board):
        # router2 routes the DFNT engine in minutes; router1 had not finished after an hour.
        router = "router2" if plan["engine"] == "dfnt" else None
        return {"overrides": board.family.engine_overrides(), "router": router}

    def report_extra(self, plan):
        return {"engine": plan["engine"]}

    def report_layers(self, plan):
        kind, config = engine_from_dict(plan)
        return [{"name": plan["layer"], "engine": kind, "kernel": config.kernel,
                 "in_channels": config.in_channels, "out_channels": config.out_channels,
                 "multipliers": config.length if kind == "dfnt" else config.multipliers,
                 **({"length": config.length, "b": config.b, "height": config.height,
                     "width": config.width} if kind == "dfnt" else {})}]

    def format_layers(self, report):
        def engine(l):
            return f"{l['engine']} mod 2^{l['b']} + 1" if "b" in l else l["engine"]
        lines = ["| layer | engine | kernel | channels | multipliers |", "|---|---|---|---|---|"]
        return lines + [f"| {l['name']} | {engine(l)} | {l['kernel']}x{l['kernel']} | "
                        f"{l['in_channels']} -> {l['out_channels']} | {l['multipliers']} |"
                        for l in report["layers"]]

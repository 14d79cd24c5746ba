"""The build flow's steps for an integer convolution layer (`bitfab.hls_gen.compiler.engines`).

Same step names and files as `bitfab.hls_gen.compiler.flow`, which dispatches here when
the model is an `IntConv2d` (or golden.json holds one):

    golden     golden.json   the integer layer (weights, padding, widths)
    map_to_hw  hw.json       the engine chosen (`BuildConfig.engine`) and its config
    fold       plan.json     the engine's estimate; refused if it exceeds the board
    emit_rtl   engine.v      Verilog of the engine; weights.json, its load words
    sim        sim.json      cocotb on real images, every output against the golden layer
    netlist    netlist.json  the same on the engine as yosys maps it for the board
                             (`bitfab.sim.netlist`), when `netlist_images` > 0
    synth      synth.json    the engine behind the UART shell: yosys + nextpnr + packer
    report     report.json, report.md
"""

import hashlib
import json
from pathlib import Path

from bitfab.hls_gen.compiler.boards import board as find_board
from bitfab.hls_gen.compiler.clocks import design_clock
from bitfab.hls_gen.golden.intconv import IntConvLayer, freeze_conv
from bitfab.hls_gen.compiler.engines import (check_engine_fit, engine_from_dict,
    engine_to_dict, load_words, select_engine)
from bitfab.hls_gen.datasets import conv_images
from bitfab.hls_gen.errors import BitfabError
from bitfab.hls_gen.compiler.flow import read_result, simulate, simulate_netlist, write_result

__all__ = ["CONV_IMAGE", "ENGINE_CLOCK_MHZ", "image_size"]

CONV_IMAGE = {1: (8, 8)}          # the digits; photo crops otherwise
PHOTO_IMAGE = (32, 32)
SIM_IMAGES = 8
# The engines' default clock where it differs from the board's: on the ULX3S the DFNT
# engine routes at 61 to 64 MHz and a 3x3 direct engine at 54 (README), short of the
# networks' 100 MHz.
ENGINE_CLOCK_MHZ = {"ulx3s-85f": 50.0}


def image_size(cfg, layer):
    if cfg.image is not None:
        height, width = cfg.image
    else:
        height, width = CONV_IMAGE.get(layer.in_channels, PHOTO_IMAGE)
    return height, width


def _layer(cfg):
    return IntConvLayer.from_dict(read_result(cfg.out, "golden.json"))


def _engine(kind, config):
    if kind == "dfnt":
        from bitfab.rtl.dfnt_conv import DFNTConvEngine
        return DFNTConvEngine(config)
    from bitfab.rtl.direct_conv import DirectConvEngine
    return DirectConvEngine(config)


def step_golden(cfg, model, log):
    layer = freeze_conv(model)
    write_result(cfg.out, "golden.json", layer.to_dict())
    log(f"golden: {layer.name}: {layer.in_channels} -> {layer.out_channels} channels, "
        f"{layer.kernel}x{layer.kernel}, padding {layer.padding}, x {layer.x_bits} bits, "
        f"w {layer.w_bits} bits")


def step_map_to_hw(cfg, log):
    layer = _layer(cfg)
    height, width = image_size(cfg, layer)
    kind, config = select_engine(layer, height, width, cfg.engine)
    write_result(cfg.out, "hw.json", {**engine_to_dict(kind, config), "layer": layer.name})
    detail = f" (modulus 2^{config.b} + 1, L = {config.length})" if kind == "dfnt" else ""
    log(f"map_to_hw: {layer.name} on the {kind} engine{detail} for {height}x{width} images")


def step_fold(cfg, log):
    if cfg.folding is not None:
        raise BitfabError("--fold sets PE x SIMD of matrix-vector layers; a convolution "
                          "engine has no such folding")
    hw = read_result(cfg.out, "hw.json")
    kind, config = engine_from_dict(hw)
    board = find_board(cfg.board)
    used = check_engine_fit(hw["layer"], kind, config, board)
    write_result(cfg.out, "plan.json", {**hw, "board": cfg.board, "estimate": {"total": used},
                                  "cycles": getattr(config, "cycles", None)})
    log(f"plan: {kind} engine, estimate {used}")


def _plan(cfg):
    return engine_from_dict(read_result(cfg.out, "plan.json"))


def _key(plan):
    return hashlib.sha1(json.dumps(plan, sort_keys=True).encode()).hexdigest()


def _verilog(cfg, plan):
    path, key = Path(cfg.out) / "engine.v", Path(cfg.out) / "engine.v.plan"
    if path.exists() and key.exists() and key.read_text() == _key(plan):
        return path.read_text()
    return None


def step_emit_rtl(cfg, log):
    from amaranth.back import verilog
    layer = _layer(cfg)
    plan = read_result(cfg.out, "plan.json")
    kind, config = engine_from_dict(plan)
    write_result(cfg.out, "weights.json", {"word_bits": config.word_bits,
                                     "words": load_words(kind, config, layer.weight)})
    if _verilog(cfg, plan) is not None:
        log("emit_rtl: plan unchanged, engine.v kept")
        return
    (Path(cfg.out) / "engine.v").write_text(verilog.convert(_engine(kind, config), name="engine"))
    (Path(cfg.out) / "engine.v.plan").write_text(_key(plan))


def _conv_case(cfg, count):
    """(kind, config, plan, case, images): `count` real images for the planned engine
    and the golden layer's outputs for them."""
    from bitfab.sim.cases import dfnt_case, direct_case
    layer = _layer(cfg)
    plan = read_result(cfg.out, "plan.json")
    kind, config = engine_from_dict(plan)
    height, width = image_size(cfg, layer)
    x = conv_images(layer, count, height, width)
    y = layer.execute(x)
    case = dfnt_case(config, x, layer.weight, y) if kind == "dfnt" else \
        direct_case(config, x, layer.weight, y, layer.padding)
    return kind, config, plan, case, len(x)


def step_sim(cfg, log):
    kind, config, plan, case, images = _conv_case(cfg, cfg.sim_images or SIM_IMAGES)
    log(f"sim: {images} images through the {kind} engine in {cfg.simulator}")
    simulate(cfg, _verilog(cfg, plan) or _engine(kind, config), "engine", case, plan, images,
             log)


def _overrides(board):
    return board.family.engine_overrides()


def step_netlist(cfg, log):
    """The first `netlist_images` images through the engine as the bitstream flow's yosys
    script (plain ABC on the ECP5, as `step_synth`) maps it, against the golden layer."""
    if not cfg.netlist_images:
        log("netlist: skipped (no netlist images asked for)")
        return
    kind, config, _, case, images = _conv_case(cfg, cfg.netlist_images)
    log(f"netlist: yosys maps the {kind} engine for {cfg.board}, then {images} images "
        f"through the netlist in {cfg.simulator}")
    simulate_netlist(cfg, _engine(kind, config), "engine", case, images, log,
                     _overrides(find_board(cfg.board)))


def step_synth(cfg, log):
    from bitfab.hls_gen.compiler.synth import build_bitstream
    if not cfg.bitstream:
        log("synth: skipped (no bitstream asked for)")
        return
    kind, config = _plan(cfg)
    board = find_board(cfg.board)
    # router2 routes the DFNT engine in minutes; router1 had not finished after an hour.
    router = "router2" if kind == "dfnt" else None
    mhz = cfg.clock_mhz if cfg.clock_mhz is not None else ENGINE_CLOCK_MHZ.get(board.name)
    write_result(cfg.out, "synth.json",
                 build_bitstream(lambda: _engine(kind, config), board, cfg.out, log,
                                 _overrides(board), router, design_clock(board, mhz)))


def step_report(cfg, log):
    from bitfab.hls_gen.compiler.flow import report_fields
    out = Path(cfg.out)
    plan = read_result(out, "plan.json")
    kind, config = engine_from_dict(plan)
    report = report_fields(cfg, plan)
    report["engine"] = kind
    report["layers"] = [{"name": plan["layer"], "engine": kind, "kernel": config.kernel,
                         "in_channels": config.in_channels, "out_channels": config.out_channels,
                         "multipliers": config.length if kind == "dfnt" else config.multipliers,
                         **({"length": config.length, "b": config.b, "height": config.height,
                             "width": config.width} if kind == "dfnt" else {})}]
    write_result(out, "report.json", report)
    (out / "report.md").write_text(format_conv_report(report))
    return report


def format_conv_report(report):
    from bitfab.hls_gen.compiler.flow import format_summary
    lines = format_summary(report)
    lines += ["", "| layer | engine | kernel | channels | multipliers |", "|---|---|---|---|---|"]
    def engine(l):
        return f"{l['engine']} mod 2^{l['b']} + 1" if "b" in l else l["engine"]
    lines += [f"| {l['name']} | {engine(l)} | {l['kernel']}x{l['kernel']} | "
              f"{l['in_channels']} -> {l['out_channels']} | {l['multipliers']} |"
              for l in report["layers"]]
    return "\n".join(lines) + "\n"

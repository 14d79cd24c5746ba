"""Convolution engines for an integer convolution layer: choice, load words, estimate.

The layer's golden model is `bitfab.hls_gen.golden.intconv.IntConvLayer`.
`select_engine` maps it to a hardware engine:

- ``dfnt``: `bitfab.rtl.dfnt_conv.DFNTConvEngine`, modulus 2^b + 1 for the
  narrowest b of `DFNT_WIDTHS` whose eq. 2.11 bound the layer's integer widths
  guarantee (b = 16 for narrow layers, 32 for INT8), L = 8 point transforms for
  kernels up to 7x7 (16 beyond);
- ``direct``: `bitfab.rtl.direct_conv.DirectConvEngine`, one output per cycle;
- ``auto``: the DFNT engine whenever eq. 2.11 holds and the kernel is 3x3 or
  larger (a 1x1 or 2x2 kernel has nothing for the transform to save).
"""

import math
from dataclasses import asdict

import torch

from bitfab.sw_driver.weights import check_load_words

from bitfab.hls_gen.golden.dfnt import DFNTBoundError, check_bound
from bitfab.hls_gen.golden.dim1 import Dim1
from bitfab.hls_gen.errors import BitfabError
from bitfab.hls_gen.compiler.plan import PlanError

__all__ = ["select_engine", "engine_to_dict", "engine_from_dict", "estimate_engine",
           "check_engine_fit", "load_words", "ENGINES"]

ENGINES = ("auto", "dfnt", "direct")
# The moduli 2^b + 1 the compiler picks from, narrowest first. At b = 16 every code,
# adder and transform is half as wide as at 32 and a modular multiplier is one
# 18x18 DSP instead of four 16x16 partial products.
DFNT_WIDTHS = (16, 32)


def _dfnt_length(layer, b):
    """8 for kernels up to 7x7, else the next power of two that leaves a tile of 2 or more."""
    kernel, length = layer.kernel, 8
    while length - kernel + 1 < 2:
        length *= 2
    if length > 2 * b:
        raise DFNTBoundError(f"layer {layer.name}: a {kernel}x{kernel} kernel needs a "
                             f"transform longer than 2b = {2 * b}")
    return length


def _dfnt_shape(layer):
    """(b, L) at the narrowest b of `DFNT_WIDTHS` where eq. 2.11 holds for `layer` and
    its kernel's transform fits; the widest b's `DFNTBoundError` when none does."""
    for b in DFNT_WIDTHS:
        try:
            check_bound(Dim1(b), layer.in_channels, layer.kernel, layer.x_bits, layer.w_bits,
                        f"layer {layer.name}")
            return b, _dfnt_length(layer, b)
        except DFNTBoundError:
            if b == DFNT_WIDTHS[-1]:
                raise


def select_engine(layer, height, width, engine="auto"):
    """(kind, config) for `layer` on height x width images; `engine` is auto, dfnt or direct."""
    from bitfab.rtl.dfnt_conv import DFNTEngineConfig
    from bitfab.rtl.direct_conv import DirectConvConfig
    if engine not in ENGINES:
        raise BitfabError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    k = layer.kernel
    if layer.padding > k - 1:
        raise BitfabError(f"layer {layer.name}: padding {layer.padding} is more than kernel - 1 "
                          f"= {k - 1}; the engines crop the full convolution")
    if height + 2 * layer.padding < k or width + 2 * layer.padding < k:
        raise BitfabError(f"layer {layer.name}: a {height}x{width} image padded by "
                          f"{layer.padding} is smaller than the {k}x{k} kernel")
    if engine in ("auto", "dfnt"):
        try:
            b, length = _dfnt_shape(layer)
        except DFNTBoundError:
            if engine == "dfnt":
                raise
        else:
            if engine == "dfnt" or k >= 3:
                return "dfnt", DFNTEngineConfig(
                    in_channels=layer.in_channels, out_channels=layer.out_channels, kernel=k,
                    height=height, width=width, padding=layer.padding, b=b, length=length,
                    x_bits=layer.x_bits, w_bits=layer.w_bits)
    return "direct", DirectConvConfig(in_channels=layer.in_channels,
                                      out_channels=layer.out_channels, kernel=k,
                                      x_bits=layer.x_bits, w_bits=layer.w_bits)


def load_words(kind, config, weight):
    """The words the engine's load port takes for (O, C, k, k) integer weights."""
    if kind == "dfnt":
        from bitfab.hls_gen.golden.dfnt import engine_load_codes
        words = engine_load_codes(config, weight)
    else:
        k = config.kernel
        taps = torch.nn.functional.pad(weight.long().flatten(2),
                                       (0, config.folds * config.terms - k * k))
        words = [v & ((1 << config.w_bits) - 1) for v in taps.flatten().tolist()]
    return check_load_words(words, [config])


def engine_to_dict(kind, config):
    return {"engine": kind, "config": asdict(config)}


def engine_from_dict(value):
    from bitfab.rtl.dfnt_conv import DFNTEngineConfig
    from bitfab.rtl.direct_conv import DirectConvConfig
    cls = {"dfnt": DFNTEngineConfig, "direct": DirectConvConfig}[value["engine"]]
    return value["engine"], cls(**value["config"])


def estimate_engine(kind, config, board):
    """Resources of an engine before synthesis (the report gives nextpnr's own).

    DFNT, fitted to nextpnr's count for b = 32, L = 8, 4 -> 4 channels, 32 x 32
    (31.7k LUT4, 18.0k FFs, 32 DSPs): four L-point transforms of (L/2) log2 L
    butterflies, each two carry-select adders of about 5.5 LUT4 per bit; L
    modular multipliers of four 18x18 DSPs and about 17 LUT4 per bit each; the
    corner turns' and the spectrum buffer's multiplexers; block RAM for the
    weight spectra, the accumulators and the output image. At b = 16 (3x3, 1 -> 2
    channels, 8 x 8) the same terms give 17,888 LUTs and 8 DSPs where nextpnr placed
    16,263 LUTs, UART shell included, and 8 DSPs. Direct: one DSP and the adder
    tree per multiplier.
    """
    if kind == "dfnt":
        b, length = config.b, config.length
        butterflies = length // 2 * int(math.log2(length))
        code = b + 1
        luts = (4 * butterflies * 2 * int(5.5 * b) + length * 17 * b + 3 * length * length * code
                + 4000)
        ffs = (4 * int(math.log2(length)) * length * code + 4 * length * length * code
               + 3 * length * code * 2 + 6 * length * code + 2000)
        dsps = length * (4 if b > 17 else 1)
        image = config.out_channels * config.out_height * config.out_beats_per_row
        brams = (board.ram_blocks(length * code, config.load_words // length)
                 + board.ram_blocks(length * code, config.out_channels * length)
                 + length * board.ram_blocks(config.out_bits, image))
    else:
        luts = config.multipliers * (config.acc_bits + 8) + 200
        ffs = config.in_layout.size * 2 + config.out_channels * config.outputs * \
            config.acc_bits + 200
        dsps = config.multipliers
        brams = board.ram_blocks(config.terms * config.w_bits, config.load_words // config.terms)
    return {"luts": luts, "ffs": ffs, "brams": brams, "dsps": dsps}


def check_engine_fit(name, kind, config, board):
    used = estimate_engine(kind, config, board)
    for key, value in used.items():
        if value > board.resources[key]:
            raise PlanError(f"plan does not fit {board.name}: layer {name} on the {kind} engine "
                            f"needs {value} {key} (estimated), the device has "
                            f"{board.resources[key]}; choose a larger board"
                            + (" or --engine direct" if kind == "dfnt" else ""))
    return used

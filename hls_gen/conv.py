"""Integer convolution layers for the hardware: front end, golden model, engine choice.

A model for this path is one `IntConv2d` (or an `nn.Sequential` holding only
one): signed integer inputs and weights (INT8 by default), stride 1. `freeze_conv`
turns it into an `IntConvLayer`, the golden model: `execute` is the exact
integer convolution. `select_engine` maps it to a hardware engine:

- ``dfnt``: `bitfab.rtl.dfnt_conv.DFNTConvEngine`, modulus 2^b + 1 for the
  narrowest b of `DFNT_WIDTHS` whose eq. 2.11 bound the layer's integer widths
  guarantee (b = 16 for narrow layers, 32 for INT8), L = 8 point transforms for
  kernels up to 7x7 (16 beyond);
- ``direct``: `bitfab.rtl.direct_conv.DirectConvEngine`, one output per cycle;
- ``auto``: the DFNT engine whenever eq. 2.11 holds and the kernel is 3x3 or
  larger (a 1x1 or 2x2 kernel has nothing for the transform to save).
"""

import math
from dataclasses import asdict, dataclass

import torch

from bitfab.sw_driver.weights import check_load_words

from .dfnt import DFNTBoundError, check_bound
from .dim1 import Dim1
from .errors import BitfabError, UnsupportedLayerError
from .plan import PlanError

__all__ = ["IntConvLayer", "freeze_conv", "is_conv_model", "select_engine", "engine_from_dict",
           "estimate_engine", "check_engine_fit", "conv_images", "load_words", "ENGINES"]

ENGINES = ("auto", "dfnt", "direct")
# The moduli 2^b + 1 the compiler picks from, narrowest first. At b = 16 every code,
# adder and transform is half as wide as at 32 and a modular multiplier is one
# 18x18 DSP instead of four 16x16 partial products.
DFNT_WIDTHS = (16, 32)


@dataclass
class IntConvLayer:
    """The golden model of one integer convolution (stride 1, no groups, no bias)."""

    name: str
    weight: torch.Tensor        # (O, C, k, k) int64
    padding: int
    x_bits: int
    w_bits: int

    kind = "int_conv"

    @property
    def in_channels(self):
        return self.weight.shape[1]

    @property
    def out_channels(self):
        return self.weight.shape[0]

    @property
    def kernel(self):
        return self.weight.shape[-1]

    def check_input(self, x):
        lo, hi = -(1 << (self.x_bits - 1)), (1 << (self.x_bits - 1)) - 1
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise BitfabError(f"layer {self.name}: want inputs (N, {self.in_channels}, H, W), "
                              f"not {tuple(x.shape)}")
        if x.numel() and (int(x.min()) < lo or int(x.max()) > hi):
            raise BitfabError(f"layer {self.name}: inputs span {int(x.min())}..{int(x.max())}, "
                              f"outside signed {self.x_bits}-bit {lo}..{hi}")

    def execute(self, x):
        """The exact integer convolution (float64 holds every partial sum exactly:
        |sum| <= C k^2 2^(x_bits + w_bits - 2) < 2^53)."""
        self.check_input(x)
        y = torch.nn.functional.conv2d(x.double(), self.weight.double(), padding=self.padding)
        return y.round().long()

    def to_dict(self):
        return {"kind": self.kind, "name": self.name, "weight": self.weight.tolist(),
                "padding": self.padding, "x_bits": self.x_bits, "w_bits": self.w_bits}

    @classmethod
    def from_dict(cls, value):
        return cls(value["name"], torch.tensor(value["weight"], dtype=torch.int64),
                   value["padding"], value["x_bits"], value["w_bits"])


def _conv_module(model):
    from .layers import IntConv2d
    if isinstance(model, IntConv2d):
        return "conv", model
    if isinstance(model, torch.nn.Sequential):
        modules = [(name, m) for name, m in model.named_children()]
        for name, module in modules:
            if not isinstance(module, IntConv2d):
                raise UnsupportedLayerError(
                    f"{name} ({type(module).__name__}): an integer convolution model holds "
                    f"exactly one IntConv2d and nothing else")
        if len(modules) != 1:
            raise UnsupportedLayerError(f"an integer convolution model holds exactly one "
                                        f"IntConv2d, not {len(modules)}")
        return modules[0]
    return None


def is_conv_model(model):
    """True for an `IntConv2d` (alone or in an `nn.Sequential`) or an `IntConvLayer`."""
    from .layers import IntConv2d
    if isinstance(model, (IntConv2d, IntConvLayer)):
        return True
    return isinstance(model, torch.nn.Sequential) and \
        any(isinstance(m, IntConv2d) for m in model.modules())


def freeze_conv(model):
    if isinstance(model, IntConvLayer):
        return model
    found = _conv_module(model)
    if found is None:
        raise UnsupportedLayerError(f"{type(model).__name__} is not an integer convolution model")
    name, module = found
    if module.stride != (1, 1) or module.groups != 1 or module.dilation != (1, 1):
        raise UnsupportedLayerError(f"{name}: only stride 1, groups 1, dilation 1 are supported, "
                                    f"not stride {module.stride}, groups {module.groups}, "
                                    f"dilation {module.dilation}")
    return IntConvLayer(name, module.integer_weight(), module.padding[0], module.x_bits,
                        module.w_bits)


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
        from .dfnt import engine_load_codes
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


def conv_images(layer, count, height, width):
    """Real images for simulation, as signed `x_bits` integers: the digits test split
    (pixels 0..16) for a one-channel layer; crops of scikit-learn's bundled photos
    (RGB, pixel - 128, rescaled to x_bits) for three channels and more (channels past
    the photo's three repeat them)."""
    if layer.in_channels == 1:
        from .data import load_digits_split
        digits = load_digits_split().x_test[:count].reshape(-1, 1, 8, 8)
        x = torch.zeros(len(digits), 1, height, width, dtype=torch.int64)
        h, w = min(8, height), min(8, width)
        x[:, :, :h, :w] = digits[:, :, :h, :w]
        limit = (1 << (layer.x_bits - 1)) - 1
        return x.clamp(max=limit)
    from sklearn.datasets import load_sample_images
    photos = [torch.from_numpy(p.copy()).long().permute(2, 0, 1)
              for p in load_sample_images().images]
    crops = []
    for k in range(count):
        photo = photos[k % len(photos)]
        top = (37 * k) % (photo.shape[1] - height)
        left = (53 * k) % (photo.shape[2] - width)
        crop = photo[:, top:top + height, left:left + width] - 128
        crops.append(crop[torch.arange(layer.in_channels) % 3])
    x = torch.stack(crops)
    shift = 8 - layer.x_bits
    return x >> shift if shift > 0 else x

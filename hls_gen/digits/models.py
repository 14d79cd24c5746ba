"""The reference networks for the digits: an MLP and a small CNN, each in three kinds.

- ``float``: full precision (batch norm + ReLU), the accuracy reference;
- ``pa``: PA multi-binary weights (M pieces) and activations (N pieces);
- ``xnor``: single-binary +-1 weights and activations (XNOR-Net style).

All start with `BitplaneInput` (integer pixels in) and end with a layer that
gives 10 class scores, so the PA and XNOR kinds freeze to golden models.
"""

from dataclasses import dataclass

from torch import nn

from bitfab.hls_gen.frontend.layers import (BitplaneInput, PAConv2d, PALinear, XNORConv2d,
    XNORLinear)
from bitfab.hls_gen.frontend.quant import PAActivation, SignActivation

__all__ = ["ModelSpec", "build_model"]

KINDS = ("float", "pa", "xnor")
ARCHS = ("mlp", "cnn")


@dataclass(frozen=True)
class ModelSpec:
    """Which network to build.

    Parameters
    ----------
    arch : str
        ``"mlp"`` (64 -> hidden -> hidden -> 10) or ``"cnn"`` (3x3 conv 16,
        3x3 stride-2 conv 32, linear 512 -> 10, by default), for 8x8 inputs.
    kind : str
        ``"float"``, ``"pa"`` or ``"xnor"``.
    m, n : int
        PA weight and activation pieces (ignored for other kinds).
    hidden : int
        MLP hidden width.
    channels : tuple
        CNN convolution widths (first, second); the head takes second x 4 x 4.
    """

    arch: str = "mlp"
    kind: str = "pa"
    m: int = 4
    n: int = 5
    hidden: int = 128
    channels: tuple = (16, 32)

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, not {self.arch!r}")
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {self.kind!r}")
        channels = tuple(self.channels)
        if len(channels) != 2 or not all(isinstance(c, int) and c >= 1 for c in channels):
            raise ValueError(f"channels must be two positive widths, not {self.channels!r}")
        object.__setattr__(self, "channels", channels)

    @property
    def name(self):
        suffix = f"_m{self.m}n{self.n}" if self.kind == "pa" else ""
        if self.arch == "cnn" and self.channels != (16, 32):
            suffix += f"_c{self.channels[0]}x{self.channels[1]}"
        return f"{self.arch}_{self.kind}{suffix}"

    @property
    def input_shape(self):
        return (64,) if self.arch == "mlp" else (1, 8, 8)


def _linear(spec, fan_in, fan_out):
    if spec.kind == "pa":
        return PALinear(fan_in, fan_out, m=spec.m)
    if spec.kind == "xnor":
        return XNORLinear(fan_in, fan_out)
    return nn.Linear(fan_in, fan_out, bias=False)


def _conv(spec, fan_in, fan_out, stride, first):
    if spec.kind == "pa":
        return PAConv2d(fan_in, fan_out, 3, stride=stride, padding=1, m=spec.m)
    if spec.kind == "xnor":
        # The first layer's border is pixel 0; after a sign it must be -1.
        return XNORConv2d(fan_in, fan_out, 3, stride=stride, padding=1,
                          pad_value=0.0 if first else -1.0)
    return nn.Conv2d(fan_in, fan_out, 3, stride=stride, padding=1, bias=False)


def _activation(spec):
    if spec.kind == "pa":
        return PAActivation(spec.n)
    if spec.kind == "xnor":
        return SignActivation()
    return nn.ReLU()


def build_model(spec, pixel_bits=5, pixel_scale=1 / 16):
    """A fresh, untrained `nn.Sequential` for `spec`."""
    layers = [BitplaneInput(pixel_bits, pixel_scale)]
    if spec.arch == "mlp":
        layers += [_linear(spec, 64, spec.hidden), nn.BatchNorm1d(spec.hidden), _activation(spec),
                   _linear(spec, spec.hidden, spec.hidden), nn.BatchNorm1d(spec.hidden),
                   _activation(spec), _linear(spec, spec.hidden, 10)]
    else:
        first, second = spec.channels
        layers += [_conv(spec, 1, first, 1, first=True), nn.BatchNorm2d(first),
                   _activation(spec), _conv(spec, first, second, 2, first=False),
                   nn.BatchNorm2d(second), _activation(spec), nn.Flatten(),
                   _linear(spec, second * 4 * 4, 10)]
    return nn.Sequential(*layers)

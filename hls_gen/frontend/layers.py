"""Trainable bitfab layers: PA multi-binary and XNOR single-binary, linear and conv.

A network for bitfab is an `nn.Sequential` that starts with `BitplaneInput`
and alternates compute layers (`PALinear`, `PAConv2d`, `XNORLinear`,
`XNORConv2d`) with an optional `BatchNorm1d/2d` and an activation quantizer
(`PAActivation` or `SignActivation`); the last compute layer gives the class
scores. `Flatten` and `Dropout` may sit between. `bitfab.hls_gen.golden.freeze` turns
such a model into the integer golden model.
"""

import torch
import torch.nn.functional as F
from torch import nn

from bitfab.hls_gen.frontend.quant import PAWeightQuantizer, xnor_weight

__all__ = ["BitplaneInput", "PALinear", "PAConv2d", "XNORLinear", "XNORConv2d", "IntConv2d"]


class BitplaneInput(nn.Module):
    """The first layer's input encoding: unsigned integer pixels as bit planes.

    The network receives raw integer pixels (digits: 0..16) and the float model
    sees ``pixel * scale``. The hardware never sees a float: it takes the
    `bits` bit planes x_b of each pixel as `bits` activation bases, and
    pixel * scale = sum_b (2^b * scale) * x_b, so the first layer is the same
    AND-popcount datapath as every PA layer, with beta_b = 2^b * scale. This is
    exact (no input quantization error), and costs 5 bases for the 17 digit
    levels where a one-hot code would need 16.

    Parameters
    ----------
    bits : int
        Bit planes per pixel (digits: 5, for 0..16).
    scale : float
        Real value of one pixel step (digits: 1/16, so the float input is 0..1).
    """

    def __init__(self, bits=5, scale=1 / 16):
        super().__init__()
        if not isinstance(bits, int) or not 1 <= bits <= 16:
            raise ValueError(f"input bits must be an integer in 1..16, not {bits!r}")
        if scale <= 0:
            raise ValueError(f"input scale must be positive, not {scale}")
        self.bits = bits
        self.scale = float(scale)
        # A buffer so that the output follows the model's dtype (`model.double()`).
        self.register_buffer("step", torch.tensor(self.scale), persistent=False)
        # The plane count, which the forward does not use, kept where a torch.export
        # program keeps the step (`bitfab.hls_gen.frontend.exported`).
        self.register_buffer("planes", torch.tensor(bits), persistent=False)

    def forward(self, pixels):
        return pixels.to(self.step.dtype) * self.step

    def extra_repr(self):
        return f"bits={self.bits}, scale={self.scale:g}"


class PALinear(nn.Linear):
    """Fully connected layer with PA weights (M pieces); no bias (batch norm absorbs it)."""

    def __init__(self, in_features, out_features, m=4, lambda_w=1.0):
        super().__init__(in_features, out_features, bias=False)
        self.quantizer = PAWeightQuantizer(m, lambda_w)

    def forward(self, x):
        return F.linear(x, self.quantizer(self.weight))


class PAConv2d(nn.Conv2d):
    """2-D convolution with PA weights (M pieces); stride, zero padding, groups; no bias."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 groups=1, m=4, lambda_w=1.0):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride,
                         padding=padding, groups=groups, bias=False)
        self.quantizer = PAWeightQuantizer(m, lambda_w)

    def forward(self, x):
        return self._conv_forward(x, self.quantizer(self.weight), None)


class XNORLinear(nn.Linear):
    """Fully connected layer with sign weights scaled by mean|W| per output; no bias."""

    def __init__(self, in_features, out_features):
        super().__init__(in_features, out_features, bias=False)

    def forward(self, x):
        return F.linear(x, xnor_weight(self.weight))


class XNORConv2d(nn.Conv2d):
    """2-D convolution with sign weights scaled by mean|W| per output channel; no bias.

    `pad_value` is what the border holds. Inputs that are +-1 codes cannot hold
    a 0, so hidden layers pad with -1 (bit 0); a first layer fed with bit planes
    pads with 0 (pixel 0). The freezer checks which one the layer needs.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 groups=1, pad_value=-1.0):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride,
                         padding=padding, groups=groups, bias=False)
        if pad_value not in (0.0, -1.0):
            raise ValueError(f"pad_value must be 0 or -1, not {pad_value}")
        self.pad_value = float(pad_value)

    def forward(self, x):
        ph, pw = self.padding
        x = F.pad(x, (pw, pw, ph, ph), value=self.pad_value)
        return F.conv2d(x, xnor_weight(self.weight), None, self.stride, 0,
                        self.dilation, self.groups)

    def extra_repr(self):
        return super().extra_repr() + f", pad_value={self.pad_value:g}"


class _RoundSTE(torch.autograd.Function):
    """round() forward, identity backward (the straight-through estimator)."""

    @staticmethod
    def forward(ctx, x):
        return torch.round(x)

    @staticmethod
    def backward(ctx, grad):
        return grad


class IntConv2d(nn.Conv2d):
    """2-D convolution of signed `x_bits` integers with signed `w_bits` integer weights
    (an INT8 layer by default): stride 1, zero padding, no groups, no bias.

    The weights train as floats and are rounded (straight through) and clamped to
    `w_bits` in the forward pass, so the module computes exactly what the hardware
    does on integer inputs. `integer_weight()` gives the weights the hardware loads.
    """

    def __init__(self, in_channels, out_channels, kernel_size, padding=0, x_bits=8, w_bits=8):
        super().__init__(in_channels, out_channels, kernel_size, padding=padding, bias=False)
        for name, bits in (("x_bits", x_bits), ("w_bits", w_bits)):
            if not isinstance(bits, int) or not 2 <= bits <= 16:
                raise ValueError(f"{name} must be an integer in 2..16, not {bits!r}")
        if self.kernel_size[0] != self.kernel_size[1]:
            raise ValueError(f"kernel must be square, not {self.kernel_size}")
        if self.padding[0] != self.padding[1]:
            raise ValueError(f"padding must be the same on both axes, not {self.padding}")
        self.x_bits, self.w_bits = x_bits, w_bits

    def _weight(self):
        limit = 1 << (self.w_bits - 1)
        return torch.clamp(_RoundSTE.apply(self.weight), -limit, limit - 1)

    def integer_weight(self):
        return self._weight().detach().round().long()

    def forward(self, x):
        return self._conv_forward(x, self._weight(), None)

    def extra_repr(self):
        return super().extra_repr() + f", x_bits={self.x_bits}, w_bits={self.w_bits}"

"""A CIFAR-shaped binary ResNet-20 in the Bi-Real style, as a PyTorch model of bitfab's
layers, with random weights and batch-norm statistics from photo crops.

Three 8-bit channels of 32 x 32 pixels; a 3x3 stem convolution of 16 channels and
its batch norm; three stages of three residual blocks at 16, 32 and 64 channels;
global average pooling of the real-valued block output, its sign, and a fully
connected layer of 10 scores. Each block is two Bi-Real units, each
``x = x + bn(conv(sign(x)))``: the shortcut carries the real value, every
convolution has its own. The first unit of stages 2 and 3 halves the image: its
3x3 convolution has stride 2, and its shortcut is a binary 1x1 convolution of
stride 2 on the same signs, with its batch norm (ReActNet's downsampling with a
binary 1x1 in place of the real-valued one). ResNet-20's 20 layers (the stem, 18
convolutions in the units, the head) and the 2 shortcut convolutions.

The weights are random (nothing can be downloaded here); the batch norms'
statistics come from photo crops the simulation does not use, so every sign
splits its channel's values and no code is constant.
"""

import torch
from torch import nn

from bitfab.hls_gen.cnv import CALIBRATION_FIRST
from bitfab.hls_gen.datasets import photo_crops
from bitfab.hls_gen.frontend.layers import BitplaneInput, XNORConv2d, XNORLinear
from bitfab.hls_gen.frontend.quant import SignActivation

__all__ = ["ResNet20", "resnet20", "IMAGE", "INPUT_BITS"]

IMAGE = (3, 32, 32)
INPUT_BITS = 8


class _Unit(nn.Module):
    """One Bi-Real unit: ``bn(conv(sign(x)))``, added to the shortcut by its block."""

    def __init__(self, fan_in, fan_out, stride):
        super().__init__()
        self.act = SignActivation()
        self.conv = XNORConv2d(fan_in, fan_out, 3, stride=stride, padding=1, pad_value=-1.0)
        self.bn = nn.BatchNorm2d(fan_out)
        if stride != 1 or fan_in != fan_out:
            self.short = XNORConv2d(fan_in, fan_out, 1, stride=stride)
            self.short_bn = nn.BatchNorm2d(fan_out)
        else:
            self.short = None

    def forward(self, x):
        signs = self.act(x)
        main = self.bn(self.conv(signs))
        if self.short is None:
            return x + main
        return self.short_bn(self.short(signs)) + main


class ResNet20(nn.Module):
    """The network of this module's docstring at `channels` (one width per stage) and
    `blocks` residual blocks a stage (two units each)."""

    def __init__(self, channels=(16, 32, 64), blocks=3):
        super().__init__()
        self.input = BitplaneInput(INPUT_BITS, 1 / 256)
        self.stem = XNORConv2d(IMAGE[0], channels[0], 3, padding=1, pad_value=0.0)
        self.stem_bn = nn.BatchNorm2d(channels[0])
        units, fan_in = [], channels[0]
        for stage, width in enumerate(channels):
            for k in range(2 * blocks):
                units.append(_Unit(fan_in, width, 2 if stage and k == 0 else 1))
                fan_in = width
        self.units = nn.ModuleList(units)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.out_act = SignActivation()
        self.head = XNORLinear(fan_in, 10)

    def forward(self, pixels):
        x = self.stem_bn(self.stem(self.input(pixels)))
        for unit in self.units:
            x = unit(x)
        return self.head(self.out_act(self.flatten(self.gap(x))))


def resnet20(channels=(16, 32, 64), blocks=3, seed=0, calibration=64, image=IMAGE[1:]):
    """A `ResNet20` with random weights (`seed`), its batch norms' statistics from
    `calibration` photo crops of `image` (height, width), in eval mode."""
    torch.manual_seed(seed)
    model = ResNet20(channels, blocks)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = None             # a cumulative average: exact statistics
    model.train()
    with torch.no_grad():
        model(photo_crops(calibration, *image, first=CALIBRATION_FIRST))
    return model.eval()

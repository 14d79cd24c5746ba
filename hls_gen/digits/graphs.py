"""Digits networks that are graphs, not chains: the topologies of the thesis's ch. 4-6.

Each is an `nn.Module` with its own `forward` (the freezer captures it with
torch.fx), for 8 x 8 digits of 5-bit pixels, in a PA (M x N) or an XNOR kind:

- ``resnet``: Bi-Real style residual blocks (ch. 4-5): the shortcut carries the
  real-valued pre-quantizer activation, ``x = x + bn(conv(act(x)))``;
- ``resnet_gap``: the same blocks ending in global average pooling of the real
  value, its quantizer and the head on C codes, as CIFAR and ImageNet ResNets
  end;
- ``fractal``: a UA-ResNet fractal block of two columns (ch. 5), one and two
  convolutions deep, joined by their mean;
- ``dense``: dense concatenation of the block input's codes and a convolution's;
- ``nasb``: a NASB-style cell (ch. 4), three binary convolutions (3 x 3, 3 x 3
  dilated to a 1 x 1 here, 1 x 1) of one input summed at the output node;
- ``grouped``: a grouped convolution (4 groups) between two full ones, the
  special case of REAF (ch. 6) where each output group reads one input group;
- ``reaf``: a REAF convolution (ch. 6, eq. 6.5-6.6, G_I = 4, G_M = 3, G_O = 4):
  each output group convolves the concatenation of three of the four input
  channel groups, a different three for each, and the groups' codes are
  concatenated.

All others end with the quantizer, a 2 x 2 max pool and one fully connected
layer of 10 class scores.
"""

import itertools
from dataclasses import dataclass

import torch
from torch import nn

from bitfab.hls_gen.frontend.layers import (BitplaneInput, PAConv2d, PALinear, XNORConv2d,
    XNORLinear)
from bitfab.hls_gen.frontend.quant import PAActivation, SignActivation

__all__ = ["GraphSpec", "build_graph_model", "GRAPH_ARCHS"]

GRAPH_ARCHS = ("resnet", "resnet_gap", "fractal", "dense", "nasb", "grouped", "reaf")


@dataclass(frozen=True)
class GraphSpec:
    """Which graph network to build (`GRAPH_ARCHS`), its kind ("pa" or "xnor"), the PA
    bases M and N, and its width."""

    arch: str = "resnet"
    kind: str = "xnor"
    m: int = 4
    n: int = 5
    channels: int = 16

    def __post_init__(self):
        if self.arch not in GRAPH_ARCHS:
            raise ValueError(f"arch must be one of {GRAPH_ARCHS}, not {self.arch!r}")
        if self.kind not in ("pa", "xnor"):
            raise ValueError(f"kind must be 'pa' or 'xnor', not {self.kind!r}")
        if not isinstance(self.channels, int) or self.channels < 4 or self.channels % 4:
            raise ValueError(f"channels must be a positive multiple of 4, not "
                             f"{self.channels!r}")

    @property
    def name(self):
        suffix = f"_m{self.m}n{self.n}" if self.kind == "pa" else ""
        return f"{self.arch}_{self.kind}{suffix}"

    input_shape = (1, 8, 8)


class _Parts:
    """The layer factories of one kind."""

    def __init__(self, spec):
        self.spec = spec

    def conv(self, fan_in, fan_out, kernel=3, first=False, groups=1):
        padding = kernel // 2
        if self.spec.kind == "pa":
            return PAConv2d(fan_in, fan_out, kernel, padding=padding, groups=groups,
                            m=self.spec.m)
        return XNORConv2d(fan_in, fan_out, kernel, padding=padding, groups=groups,
                          pad_value=0.0 if first else -1.0)

    def act(self):
        return PAActivation(self.spec.n) if self.spec.kind == "pa" else SignActivation()

    def head(self, fan_in):
        return (PALinear(fan_in, 10, m=self.spec.m) if self.spec.kind == "pa"
                else XNORLinear(fan_in, 10))


class _GraphNet(nn.Module):
    """The stem (input, first convolution, batch norm) and the tail (quantizer, pool,
    flatten, head) every graph network here shares."""

    def __init__(self, spec, out_channels):
        super().__init__()
        parts = _Parts(spec)
        c = spec.channels
        self.input = BitplaneInput(5, 1 / 16)
        self.stem = parts.conv(1, c, first=True)
        self.stem_bn = nn.BatchNorm2d(c)
        self.out_act = parts.act()
        self.pool = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.head = parts.head(out_channels * 4 * 4)

    def stem_value(self, pixels):
        return self.stem_bn(self.stem(self.input(pixels)))

    def tail(self, value):
        return self.head(self.flatten(self.pool(self.out_act(value))))


class ResNet(_GraphNet):
    """Bi-Real residual blocks: x = x + bn(conv(act(x))), the shortcut the real value."""

    def __init__(self, spec, blocks=2):
        super().__init__(spec, spec.channels)
        parts, c = _Parts(spec), spec.channels
        self.acts = nn.ModuleList(parts.act() for _ in range(blocks))
        self.convs = nn.ModuleList(parts.conv(c, c) for _ in range(blocks))
        self.bns = nn.ModuleList(nn.BatchNorm2d(c) for _ in range(blocks))

    def forward(self, pixels):
        x = self.stem_value(pixels)
        for act, conv, bn in zip(self.acts, self.convs, self.bns):
            x = x + bn(conv(act(x)))
        return self.tail(x)


class ResNetGAP(ResNet):
    """The Bi-Real blocks ending as CIFAR and ImageNet ResNets do: global average
    pooling of the real-valued block output, its quantizer, the head on C codes."""

    def __init__(self, spec, blocks=2):
        super().__init__(spec, blocks)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.head = _Parts(spec).head(spec.channels)
        del self.pool

    def tail(self, value):
        return self.head(self.out_act(self.flatten(self.gap(value))))


class Fractal(_GraphNet):
    """A fractal block of two columns on the stem's codes, joined by their mean."""

    def __init__(self, spec):
        super().__init__(spec, spec.channels)
        parts, c = _Parts(spec), spec.channels
        self.act = parts.act()
        self.short = parts.conv(c, c)
        self.short_bn = nn.BatchNorm2d(c)
        self.deep1, self.deep1_bn, self.deep_act = parts.conv(c, c), nn.BatchNorm2d(c), parts.act()
        self.deep2, self.deep2_bn = parts.conv(c, c), nn.BatchNorm2d(c)

    def forward(self, pixels):
        x = self.act(self.stem_value(pixels))
        short = self.short_bn(self.short(x))
        deep = self.deep2_bn(self.deep2(self.deep_act(self.deep1_bn(self.deep1(x)))))
        return self.tail((short + deep) / 2)


class Dense(_GraphNet):
    """Dense concatenation: the block's input codes beside a convolution's codes.

    One quantizer module gives both (PA codes concatenate only with one set of
    levels, which the next layer's coefficients assume)."""

    def __init__(self, spec):
        super().__init__(spec, spec.channels)
        parts, c = _Parts(spec), spec.channels
        self.act = parts.act()
        self.grow = parts.conv(c, c)
        self.grow_bn = nn.BatchNorm2d(c)
        self.merge = parts.conv(2 * c, c)
        self.merge_bn = nn.BatchNorm2d(c)

    def forward(self, pixels):
        x = self.act(self.stem_value(pixels))
        grown = self.act(self.grow_bn(self.grow(x)))
        return self.tail(self.merge_bn(self.merge(torch.cat([x, grown], dim=1))))


class NASBCell(_GraphNet):
    """A NASB-style cell: three binary convolutions of one input summed at its output."""

    def __init__(self, spec):
        super().__init__(spec, spec.channels)
        parts, c = _Parts(spec), spec.channels
        self.act = parts.act()
        self.ops = nn.ModuleList([parts.conv(c, c, 3), parts.conv(c, c, 1),
                                  parts.conv(c, c, 3)])
        self.op_bns = nn.ModuleList(nn.BatchNorm2d(c) for _ in range(3))

    def forward(self, pixels):
        x = self.act(self.stem_value(pixels))
        total = self.op_bns[0](self.ops[0](x))
        for op, bn in zip(self.ops[1:], self.op_bns[1:]):
            total = total + bn(op(x))
        return self.tail(total)


class Grouped(_GraphNet):
    """A REAF-style block: a grouped convolution (4 groups) between two full ones."""

    def __init__(self, spec):
        super().__init__(spec, spec.channels)
        parts, c = _Parts(spec), spec.channels
        self.act = parts.act()
        self.group = parts.conv(c, c, groups=4)
        self.group_bn, self.group_act = nn.BatchNorm2d(c), parts.act()
        self.full = parts.conv(c, c)
        self.full_bn = nn.BatchNorm2d(c)

    def forward(self, pixels):
        x = self.act(self.stem_value(pixels))
        x = self.group_act(self.group_bn(self.group(x)))
        return self.tail(self.full_bn(self.full(x)))


class REAF(_GraphNet):
    """A REAF convolution between the stem and a full one: the input codes in G_I = 4
    channel groups; output group l convolves the concatenation of E_l, the l-th of
    the C(4, 3) = 4 combinations of three groups (eq. 6.5-6.6); the output groups'
    codes (one quantizer, so that they concatenate) are joined on channels."""

    GROUPS, MERGED = 4, 3

    def __init__(self, spec):
        super().__init__(spec, spec.channels)
        parts, c = _Parts(spec), spec.channels
        self.width = c // self.GROUPS
        self.combinations = list(itertools.combinations(range(self.GROUPS), self.MERGED))
        self.act = parts.act()
        self.convs = nn.ModuleList(parts.conv(self.MERGED * self.width, self.width)
                                   for _ in self.combinations)
        self.bns = nn.ModuleList(nn.BatchNorm2d(self.width) for _ in self.combinations)
        self.group_act = parts.act()
        self.full = parts.conv(c, c)
        self.full_bn = nn.BatchNorm2d(c)

    def forward(self, pixels):
        x = self.act(self.stem_value(pixels))
        q = self.width
        groups = []
        for combination, conv, bn in zip(self.combinations, self.convs, self.bns):
            reused = torch.cat([x[:, g * q:(g + 1) * q] for g in combination], dim=1)
            groups.append(self.group_act(bn(conv(reused))))
        return self.tail(self.full_bn(self.full(torch.cat(groups, dim=1))))


_CLASSES = {"resnet": ResNet, "resnet_gap": ResNetGAP, "reaf": REAF, "fractal": Fractal, "dense": Dense, "nasb": NASBCell,
            "grouped": Grouped}


def build_graph_model(spec):
    """A fresh, untrained graph network for `spec`."""
    return _CLASSES[spec.arch](spec)

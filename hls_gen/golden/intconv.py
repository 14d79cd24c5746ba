"""The golden model of one integer convolution layer (`IntConv2d`): the exact integer
convolution the DFNT and direct engines are checked against (stride 1, no groups,
no bias)."""

from dataclasses import dataclass

import torch

from bitfab.hls_gen.errors import BitfabError, UnsupportedLayerError

__all__ = ["IntConvLayer", "freeze_conv", "is_conv_model"]


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
        abs(sum) <= C k^2 2^(x_bits + w_bits - 2) < 2^53)."""
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
    from bitfab.hls_gen.frontend.layers import IntConv2d
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
    from bitfab.hls_gen.frontend.layers import IntConv2d
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



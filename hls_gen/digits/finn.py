"""FINN's TFC-W1A1 on the digits: Brevitas' own definition (``brevitas_examples``'
bnn_pynq `FC`, the model FINN's end-to-end flow builds), trained briefly and exported to
QONNX as a FINN user would.

FINN's TFC takes a 28 x 28 MNIST image x in [0, 1], binarizes it (2 x - 1, then the
sign), and has three binary fully connected layers of 64 (batch norm and a sign after
each) and a fourth of 10 scores, normalized by a TensorNorm (one mean, variance, gain
and offset for every score). Here the same `FC` with ``in_features=(8, 8)`` behind a
quantizer that states what the digits are: 5-bit unsigned integers times 1/16 (the
pixels 0..16 as 0..1), so that the QONNX model's input is the pixels the hardware
takes and its binarization, pixel >= 8, is integer thresholds on them. Training:
`bitfab.hls_gen.digits.train.train` (Adam, cosine decay, cross entropy on the
TensorNorm's scores), the weights clipped to [-1, 1] after each step as FINN's
bnn_pynq trainer does.

Needs the ``qonnx`` extra (Brevitas).
"""

import torch
from torch import nn

from bitfab.hls_gen.digits.train import TrainConfig, train

__all__ = ["digits_pixels", "tfc_w1a1", "train_tfc", "export_tfc", "TFC_EPOCHS"]

#: Epochs `train_tfc` trains for by default ("trained briefly").
TFC_EPOCHS = 30


def digits_pixels():
    """Brevitas' quantizer of the digits' pixels: unsigned 5-bit integers times 1/16."""
    from brevitas.core.scaling import ScalingImplType
    from brevitas.quant import Uint8ActPerTensorFloat

    class Pixels(Uint8ActPerTensorFloat):
        bit_width = 5
        scaling_impl_type = ScalingImplType.CONST
        scaling_init = 31 / 16

    return Pixels


def tfc_w1a1():
    """FINN's TFC-W1A1 (`FC` of bnn_pynq: 64, 64, 64 binary neurons, 10 scores) on 8 x 8
    pixels, behind the digits' input quantizer; takes x = pixels / 16."""
    from brevitas.nn import QuantIdentity
    from brevitas_examples.bnn_pynq.models.FC import FC
    fc = FC(num_classes=10, weight_bit_width=1, act_bit_width=1, in_bit_width=1,
            in_channels=1, out_features=[64, 64, 64], in_features=(8, 8))
    return nn.Sequential(QuantIdentity(act_quant=digits_pixels()), fc)


class _Digits(nn.Module):
    """`model` on the digits' integer pixels: it takes x = pixels / 16."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pixels):
        return self.model(pixels / 16)


def train_tfc(x, y, epochs=TFC_EPOCHS, seed=0, lr=0.03):
    """`tfc_w1a1()` trained on pixels `x` (N, 64) 0..16 and labels `y`; in eval mode."""
    torch.manual_seed(seed)
    model = tfc_w1a1()
    train(_Digits(model), x.float(), y, (1, 8, 8), TrainConfig(epochs=epochs, lr=lr, seed=seed),
          after_step=lambda: model[1].clip_weights(-1.0, 1.0))
    return model.eval()


def export_tfc(model, path):
    """Export `model` to QONNX at `path` with Brevitas' exporter, input (1, 1, 8, 8)."""
    from brevitas.export import export_qonnx
    export_qonnx(model.eval(), torch.zeros(1, 1, 8, 8), str(path))
    return path

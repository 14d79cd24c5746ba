"""Bad input to the freezer and the golden model: a clear error naming the problem."""

import re

import pytest
import torch
from torch import nn

from bitfab.hls_gen.errors import (BitfabError, FreezeError, UnsupportedLayerError,
    WidthOverflowError)
from bitfab.hls_gen.golden.fixedpoint import choose_frac_bits, signed_bits, unsigned_bits
from bitfab.hls_gen.golden.freeze import FreezeConfig, freeze
from bitfab.hls_gen.frontend.layers import (BitplaneInput, PAConv2d, PALinear, XNORConv2d,
    XNORLinear)
from bitfab.hls_gen.digits.models import ModelSpec, build_model
from bitfab.hls_gen.frontend.quant import PAActivation, SignActivation


def _eval(*modules):
    return nn.Sequential(*modules).eval()


def test_unsupported_module_names_path_and_type():
    model = _eval(BitplaneInput(), PALinear(64, 8), nn.BatchNorm1d(8), nn.ReLU(), PALinear(8, 10))
    with pytest.raises(UnsupportedLayerError, match=r"model\.3 \(torch\.nn\.modules\."
                                                    r"activation\.ReLU\) is not supported"):
        freeze(model)


def test_full_precision_model_is_refused():
    model = build_model(ModelSpec("mlp", "float")).eval()
    with pytest.raises(UnsupportedLayerError, match=r"model\.1 \(.*Linear\)"):
        freeze(model)


def test_nested_sequential_paths():
    model = _eval(BitplaneInput(), nn.Sequential(PALinear(64, 8), nn.Sequential(nn.GELU())))
    with pytest.raises(UnsupportedLayerError, match=r"model\.1\.1\.0 \(.*GELU\)"):
        freeze(model)


def test_not_a_sequential():
    with pytest.raises(UnsupportedLayerError, match="nn.Sequential.*not PALinear"):
        freeze(PALinear(4, 4))


def test_input_encoding_must_come_first():
    with pytest.raises(FreezeError, match=r"model\.0 \(PALinear\).*start with BitplaneInput"):
        freeze(_eval(PALinear(64, 10)))


def test_layers_without_activation_between():
    model = _eval(BitplaneInput(), PALinear(64, 8), nn.BatchNorm1d(8), PALinear(8, 10))
    with pytest.raises(FreezeError, match=r"model\.3: the output of model\.1 reaches it "
                                          r"without an activation quantizer"):
        freeze(model)


def test_model_must_end_with_scores():
    model = _eval(BitplaneInput(), PALinear(64, 8), nn.BatchNorm1d(8), PAActivation(3))
    with pytest.raises(FreezeError, match="must end with a compute layer"):
        freeze(model)


def _score_norm(gain, offset):
    bn = nn.BatchNorm1d(10)
    with torch.no_grad():
        bn.weight.copy_(torch.as_tensor(gain, dtype=torch.float32).expand(10))
        bn.bias.copy_(torch.as_tensor(offset, dtype=torch.float32).expand(10))
    return bn


@pytest.mark.parametrize("layer, gain, offset, message", [
    (PALinear(64, 10), 1.0, torch.arange(10.0), r"offsets differ by class \(0 \.\. 9\)"),
    (PALinear(64, 10), torch.linspace(0.5, 1.0, 10), 0.0, r"need a multiplier per class"),
    (PALinear(64, 10), -1.0, 0.0, r"need a multiplier per class"),
    (XNORLinear(64, 10), 1.0, torch.arange(10.0), r"offsets differ by class"),
])
def test_batch_norm_after_last_layer(layer, gain, offset, message):
    model = _eval(BitplaneInput(), layer, _score_norm(gain, offset))
    with pytest.raises(FreezeError, match=r"batch norm after the last layer model\.1: .*"
                                          + message):
        freeze(model)


def test_a_norm_of_the_scores_changes_no_class():
    """FINN's TensorNorm (one gain and offset for every score) after the last layer: an
    XNOR layer's per-class scale takes the gain, even a negative one; the offset
    changes no class."""
    torch.manual_seed(0)
    pixels = torch.randint(0, 17, (64, 64))
    for gain in (0.5, -2.0):
        model = _eval(BitplaneInput(), XNORLinear(64, 10), _score_norm(gain, 3.0))
        graph = freeze(model)
        scores = model(pixels.float())           # BitplaneInput scales the pixels
        assert torch.equal(graph.predict(pixels), scores.argmax(dim=1)), gain


def test_batch_norm_in_training_mode():
    model = nn.Sequential(BitplaneInput(), PALinear(64, 8), nn.BatchNorm1d(8), PAActivation(3),
                          PALinear(8, 10))
    with pytest.raises(FreezeError, match=r"model\.2: batch norm must be in eval mode"):
        freeze(model)


def test_unsorted_endpoints():
    act = PAActivation(3)
    with torch.no_grad():
        act.v.copy_(torch.tensor([0.5, 0.2, 1.0]))
    model = _eval(BitplaneInput(), PALinear(64, 8), act, PALinear(8, 10))
    with pytest.raises(FreezeError, match=r"model\.2: endpoints v must be strictly increasing"):
        freeze(model)


def test_pa_layer_after_sign_activation():
    model = _eval(BitplaneInput(), XNORLinear(64, 8), SignActivation(), PALinear(8, 10))
    with pytest.raises(FreezeError, match=r"model\.3 \(PALinear\) receives \+-1 activations"):
        freeze(model)


def test_xnor_layer_after_pa_activation():
    model = _eval(BitplaneInput(), PALinear(64, 8), PAActivation(2), XNORLinear(8, 10))
    with pytest.raises(FreezeError, match=r"model\.3 \(XNORLinear\) receives PAActivation"):
        freeze(model)


def test_xnor_zero_padding_after_sign():
    model = _eval(BitplaneInput(), XNORConv2d(1, 4, 3, padding=1, pad_value=0.0),
                  SignActivation(), XNORConv2d(4, 4, 3, padding=1, pad_value=0.0),
                  SignActivation(), nn.Flatten(), XNORLinear(256, 10))
    with pytest.raises(FreezeError, match=r"model\.3: pad_value 0 cannot be held by a \+-1"):
        freeze(model)


def test_xnor_first_layer_pads_with_pixel_zero():
    model = _eval(BitplaneInput(), XNORConv2d(1, 4, 3, padding=1, pad_value=-1.0),
                  SignActivation(), nn.Flatten(), XNORLinear(256, 10))
    with pytest.raises(FreezeError, match=r"model\.1: a first layer fed with bit planes"):
        freeze(model)


@pytest.mark.parametrize("kwargs,message", [
    (dict(padding="same"), "padding must be integers"),
    (dict(padding=1, padding_mode="reflect"), "padding must be integers with padding_mode"),
    (dict(dilation=2), r"dilation \(2, 2\) is not supported"),
])
def test_conv_options_hardware_cannot_do(kwargs, message):
    conv = PAConv2d(1, 4, 3)
    for key, value in kwargs.items():
        setattr(conv, key, (value, value) if key == "dilation" else value)
    model = _eval(BitplaneInput(), conv, PAActivation(2), nn.Flatten(), PALinear(144, 10))
    with pytest.raises(UnsupportedLayerError, match=r"model\.1: " + message):
        freeze(model)


def test_accumulator_overflow_is_refused_before_running():
    model = build_model(ModelSpec("mlp", "pa", 4, 5, hidden=128)).eval()
    # First layer: 64 inputs x 5 bit planes x 2^11 = 655360, 21 signed bits.
    with pytest.raises(WidthOverflowError, match=r"layer 1: worst-case accumulator 655360 "
                                                 r"needs 21 signed bits, more than acc_bits=20"):
        freeze(model, FreezeConfig(coef_bits=12, acc_bits=20))
    freeze(model, FreezeConfig(coef_bits=12, acc_bits=21))     # exactly fits


def test_xnor_class_score_overflow():
    model = build_model(ModelSpec("mlp", "xnor", hidden=128)).eval()
    # First layer: |sign(W) . pixels| <= 64 x 31 = 1984 fits; last layer: |dot| <= 128,
    # times a 12-bit scale 2^11: 262144 needs 20 bits.
    with pytest.raises(WidthOverflowError, match=r"layer 7: worst-case class score 262144"):
        freeze(model, FreezeConfig(coef_bits=12, acc_bits=19))


@pytest.mark.parametrize("field,value", [("coef_bits", 1), ("coef_bits", 40), ("acc_bits", 63),
                                         ("acc_bits", 8.0)])
def test_freeze_config_checks(field, value):
    with pytest.raises(ValueError, match=field):
        FreezeConfig(**{field: value})


def test_golden_input_range():
    graph = freeze(build_model(ModelSpec("mlp", "pa", 2, 1, hidden=16)).eval())
    with pytest.raises(BitfabError, match=r"input pixels must be in 0\.\.31 \(5 bit planes\), "
                                          r"got 0\.\.32"):
        graph(torch.tensor([[0] * 63 + [32]]))
    with pytest.raises(BitfabError, match="integer pixels"):
        graph(torch.full((1, 64), 0.5))
    assert graph(torch.full((1, 64), 16.0)).shape == (1, 10)


def test_width_helpers():
    assert signed_bits(-8, 7) == 4 and signed_bits(-9, 7) == 5 and signed_bits(-8, 8) == 5
    assert signed_bits(0, 0) == 1 and unsigned_bits(64) == 7 and unsigned_bits(63) == 6
    # 0.75 -> F = 10 at 12 bits: 768 fits 2047, F = 11 gives 1536 which still fits, 12 -> 3072.
    assert choose_frac_bits([0.75, -0.1], 12) == 11
    assert choose_frac_bits([300.0], 8) == -2          # 300 / 4 = 75 <= 127
    with pytest.raises(WidthOverflowError):
        choose_frac_bits([1e30], 4, max_frac_bits=8)


def _with_non_finite(kind, value):
    """The digits XNOR or PA MLP, eval mode, with one `value` written into `kind`'s
    tensor: the XNOR layer's weights, a batch norm's running variance, the PA layer's
    weights, the PA activation's scales (beta)."""
    arch, target = {"xnor_weight": ("xnor", "model.1.weight"),
                    "bn_running_var": ("xnor", "model.2.running_var"),
                    "pa_weight": ("pa", "model.1.weight"),
                    "pa_beta": ("pa", "model.3.beta")}[kind]
    torch.manual_seed(0)
    model = build_model(ModelSpec("mlp", arch, hidden=16)).eval()
    tensors = {f"model.{name}": t for name, t in
               [*model.named_parameters(), *model.named_buffers()]}
    with torch.no_grad():
        tensors[target].view(-1)[3] = value
    return model, target


@pytest.mark.parametrize("kind", ["xnor_weight", "bn_running_var", "pa_weight", "pa_beta"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_a_nan_or_infinity_anywhere_is_refused_naming_the_tensor(kind, value):
    """A NaN in an XNOR layer's weights or a batch norm's running variance froze into a
    threshold of -2^63, which the load words then cut to 0 (the RTL disagreed with its
    own golden model); in PA weights or beta it failed in fixedpoint.py naming no layer."""
    model, target = _with_non_finite(kind, value)
    with pytest.raises(FreezeError, match="^" + re.escape(target) + r": 1 of \d+ values are "
                                          r"NaN or infinite"):
        freeze(model)


def test_the_golden_model_names_what_is_wrong_with_its_input():
    """An input of the wrong shape gave torch's own error ("mat1 and mat2 shapes cannot
    be multiplied (20x63 and 64x222)"); now the golden model names the layer and the
    shape it takes."""
    torch.manual_seed(0)
    mlp = freeze(build_model(ModelSpec("mlp", "pa", hidden=16)).eval())
    cnn = freeze(build_model(ModelSpec("cnn", "xnor", channels=(2, 2))).eval())
    for graph, x, message in [
            (mlp, torch.zeros(20, 63, dtype=torch.long), r"takes \(N, 64\) inputs, not \(20, 63\)"),
            (mlp, torch.zeros(20, 1, 8, 8, dtype=torch.long), r"not \(20, 1, 8, 8\)"),
            (mlp, [[0] * 64], "must be a tensor of pixels, not list"),
            (mlp, torch.zeros(2, 64, dtype=torch.bool), "must be integer pixels, not torch.bool"),
            (mlp, torch.full((2, 64), 0.5), "non-integer floats"),
            (mlp, torch.full((2, 64), 32), r"must be in 0..31 \(5 bit planes\), got 32..32"),
            (cnn, torch.zeros(3, 64, dtype=torch.long),
             r"takes images \(N, 1, H, W\), not \(3, 64\)")]:
        with pytest.raises(BitfabError, match=message):
            graph.run(x)
    assert mlp(torch.zeros(2, 64)).shape == (2, 10)
    assert cnn(torch.zeros(2, 1, 8, 8, dtype=torch.long)).shape == (2, 10)


class _Arithmetic(nn.Module):
    """BitplaneInput, a constant's arithmetic `how` on the pixels or the codes, a sign and
    an XNOR layer."""

    def __init__(self, how, on_codes=False):
        super().__init__()
        self.pixels, self.how, self.on_codes = BitplaneInput(), how, on_codes
        self.fc, self.bn, self.act = XNORLinear(64, 8), nn.BatchNorm1d(8), SignActivation()
        self.head = XNORLinear(8, 10)

    def forward(self, x):
        x = self.pixels(x)
        if not self.on_codes:
            return self.head(self.act(self.bn(self.fc(self.act(self.how(x))))))
        return self.head(self.how(self.act(self.bn(self.fc(x)))))


@pytest.mark.parametrize("how, on_codes, error, match", [
    (lambda x: 1.0 - x, False, UnsupportedLayerError,
     r"node sub .*: subtracts a value from a constant; bitfab maps x - c and x \+ c"),
    (lambda x: x + float("nan"), False, UnsupportedLayerError,
     r"node add .*: adds nan; only a finite constant number maps"),
    (lambda x: x - 1.0, True, FreezeError,
     r"node sub .*: offsets activation codes; do it to the value before its quantizer"),
    (lambda x: 2 * x - 1, False, FreezeError,
     r"node mul .*: scales the input pixels, whose shape the freezer does not know"),
])
def test_a_constants_arithmetic_it_cannot_map_is_refused(how, on_codes, error, match):
    with pytest.raises(error, match=match):
        freeze(_Arithmetic(how, on_codes).eval())

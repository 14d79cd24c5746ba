"""Properties over random small models (hypothesis): whatever freezes, its golden JSON
reads back to the same model, its load words carry every stored value exactly
(nothing cut to a width), and its generated network simulates to 0 mismatches."""

import json

import pytest
import torch
from amaranth.lib import data
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from bitfab.hls_gen.compiler.folding import fold
from bitfab.hls_gen.compiler.plan import map_to_hw
from bitfab.hls_gen.compiler.stores import load_rows
from bitfab.hls_gen.frontend.layers import BitplaneInput, PALinear, XNORLinear
from bitfab.hls_gen.frontend.quant import PAActivation, SignActivation
from bitfab.hls_gen.golden.freeze import freeze
from bitfab.hls_gen.golden.ir import graph_from_dict, graph_to_dict

SETTINGS = settings(max_examples=30, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def models(draw):
    """A random two-layer PA or XNOR MLP, eval mode: pixel bits, widths, M and N,
    weights and batch-norm statistics from a drawn seed."""
    kind = draw(st.sampled_from(["pa", "xnor"]))
    bits = draw(st.integers(1, 6))
    inputs, hidden = draw(st.integers(2, 24)), draw(st.integers(1, 12))
    m, n = draw(st.sampled_from([2, 4, 6])), draw(st.integers(1, 6))
    torch.manual_seed(draw(st.integers(0, 2 ** 16)))
    if kind == "pa":
        layers = [PALinear(inputs, hidden, m=m), nn.BatchNorm1d(hidden), PAActivation(n),
                  PALinear(hidden, 10, m=m)]
    else:
        layers = [XNORLinear(inputs, hidden), nn.BatchNorm1d(hidden), SignActivation(),
                  XNORLinear(hidden, 10)]
    model = nn.Sequential(BitplaneInput(bits, 1 / (1 << bits)), *layers)
    norm = layers[1]
    scale = draw(st.floats(0.01, 100))
    norm.running_mean.uniform_(-2, 2)
    norm.running_var.uniform_(0.01, 4)
    norm.weight.data.uniform_(-scale, scale)
    norm.bias.data.uniform_(-scale, scale)
    return model.eval(), inputs, bits


@SETTINGS
@given(models(), st.integers(0, 2 ** 16))
def test_a_frozen_model_reads_back_from_its_json_unchanged(drawn, seed):
    model, inputs, bits = drawn
    graph = freeze(model)
    again = graph_from_dict(json.loads(json.dumps(graph_to_dict(graph))))
    assert graph_to_dict(again) == graph_to_dict(graph)
    pixels = torch.randint(0, 1 << bits, (16, inputs),
                           generator=torch.Generator().manual_seed(seed))
    assert torch.equal(again(pixels), graph(pixels))


def _unpack(config, words):
    """`MVAUConfig.pack`'s inverse: each store's rows as integers, from the words."""
    rows, at = {}, 0
    for segment in config.segments:
        per_row = config.words_per_row(segment)
        rows[segment.name] = []
        for _ in range(segment.depth):
            bits = sum(w << (k * config.word_bits) for k, w in enumerate(words[at:at + per_row]))
            rows[segment.name].append(bits)
            at += per_row
    assert at == len(words)
    return rows


@SETTINGS
@given(models())
def test_load_words_carry_every_stored_value_exactly(drawn):
    model, _, _ = drawn
    graph = freeze(model)
    for layer, config in zip(graph.layers, fold(map_to_hw(graph))):
        rows = load_rows(layer, config)
        got = _unpack(config, config.pack(rows))
        for segment in config.segments:
            for value, bits in zip(rows[segment.name], got[segment.name]):
                if isinstance(segment.shape, data.Layout):
                    # Read each field back from the bits: a value cut to its width
                    # would come back different.
                    assert data.Const(segment.shape, bits).as_value().value == bits
                    view = data.Const(segment.shape, bits)
                    back = [[view[p]["thresholds"][j] for j in range(len(v["thresholds"]))]
                            for p, v in enumerate(value)] if segment.name == "thresholds" \
                        else [view[j] for j in range(len(value))]
                    want = ([v["thresholds"] for v in value] if segment.name == "thresholds"
                            else value)
                    assert back == want, (layer.name, segment.name)
                else:
                    assert bits == value, (layer.name, segment.name)


def test_a_value_beyond_its_field_is_refused_not_cut():
    """Amaranth's layout constants cut a value to its field (100 in signed(4) reads back
    as 4); packing refuses it instead, naming the store, the row and the field."""
    from bitfab.rtl.mvau import MVAUConfig
    config = MVAUConfig(rows=2, cols=4, m=2, n_in=1, coef_bits=4, n_out=2, threshold_bits=4)
    rows = {"coefficients": [[1, 2]], "weights": [0] * config.weight_rows,
            "thresholds": [[{"thresholds": [100, -3], "descending": 0}]] * config.groups}
    # threshold_bits 4: the encoder stores them oriented (1 - T when descending), in 5.
    with pytest.raises(ValueError, match=r"thresholds\[0\]\.thresholds\[0\]: 100 does not "
                                         r"fit signed\(5\) \(-16..15\)"):
        config.pack(rows)
    rows["thresholds"] = [[{"thresholds": [1, 3], "descending": 0}]] * config.groups
    rows["coefficients"] = [[-9, 1]]
    with pytest.raises(ValueError, match=r"coefficients\[0\]: -9 does not fit signed\(4\)"):
        config.pack(rows)


@pytest.mark.sim
@settings(max_examples=4, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(models(), st.integers(0, 2 ** 16))
def test_whatever_freezes_simulates_to_0_mismatches(tmp_path, drawn, seed):
    """The whole chain on a random model: frozen, mapped, folded by default, packed,
    generated and run in Verilator (random stalls and backpressure), every layer's
    every output equal to the golden model's. (Few examples: each is a simulator
    build.)"""
    from bitfab.rtl.network import Network
    from bitfab.hls_gen.compiler.cases import network_case
    from bitfab.sim.cases import run_case
    model, inputs, bits = drawn
    graph = freeze(model)
    configs = fold(map_to_hw(graph))
    pixels = torch.randint(0, 1 << bits, (6, inputs),
                           generator=torch.Generator().manual_seed(seed))
    case = network_case(graph, configs, pixels)
    result = run_case(Network(configs), "network", case, tmp_path / f"sim_{seed}", seed,
                      idle=0.3, backpressure=0.3, key=[repr(c) for c in configs])
    assert result["mismatches"] == 0, result

"""The PA and XNOR quantizers against the thesis's equations, on hand-computed cases."""

import math

import pytest
import torch

from bitfab.hls_gen.frontend.quant import (PAActivation, PAWeightQuantizer, SignActivation,
    weight_endpoint_multiples, xnor_weight)


def test_weight_endpoints_m8_are_table_3_1():
    assert weight_endpoint_multiples(8) == (-1.5, -1.0, -0.5, -0.25, 0.25, 0.5, 1.0, 1.5)


@pytest.mark.parametrize("m", [2, 4, 6, 10, 12, 14, 16])
def test_weight_endpoints_rule(m):
    u = weight_endpoint_multiples(m)
    assert len(u) == m
    assert list(u) == sorted(u) and len(set(u)) == m
    assert u == tuple(-x for x in reversed(u))           # symmetric about the mean
    assert max(u) <= 1.5 and min(abs(x) for x in u) > 0  # outermost <= 1.5 std, zero piece


@pytest.mark.parametrize("m", [0, 1, 3, 7, 18, 2.0])
def test_weight_pieces_must_be_even_2_to_16(m):
    with pytest.raises(ValueError, match="even integer in 2..16"):
        PAWeightQuantizer(m)


def _weight_case():
    # w has mean 1 and std sqrt(2) (unbiased: squares of deviations sum to 10, / 5).
    # M = 4: endpoints 1 + sqrt(2) * (-1.5, -0.75, 0.75, 1.5) = (-1.121, -0.061, 2.061, 3.121).
    w = torch.tensor([-1.0, 0.0, 1.0, 1.0, 2.0, 3.0], dtype=torch.float64, requires_grad=True)
    return w, PAWeightQuantizer(m=4, lambda_w=0.5)


def test_weight_forward_eq_3_6_and_3_7():
    w, quantizer = _weight_case()
    r2 = math.sqrt(2)
    u = quantizer.endpoints(w)
    assert torch.allclose(u, torch.tensor([1 - 1.5 * r2, 1 - 0.75 * r2, 1 + 0.75 * r2,
                                           1 + 1.5 * r2], dtype=torch.float64))
    # Regions: -1 in [u1, u2) -> alpha_2; 0, 1, 1, 2 in [u2, u3) -> the zero piece;
    # 3 in [u3, u4) -> alpha_3. alpha_2 = mean{-1} = -1, alpha_3 = mean{3} = 3.
    # alpha_1 and alpha_4 have no weights: they take their endpoints u1 and u4.
    levels = quantizer.levels(w)
    assert torch.allclose(levels, torch.tensor([1 - 1.5 * r2, -1.0, 0.0, 3.0, 1 + 1.5 * r2],
                                               dtype=torch.float64))
    assert torch.equal(quantizer(w).detach(),
                       torch.tensor([-1.0, 0, 0, 0, 0, 3.0], dtype=torch.float64))


def test_weight_backward_eq_3_8_and_3_9():
    w, quantizer = _weight_case()
    r2 = math.sqrt(2)
    # eq. 3.9: s = midpoints of u = 1 + sqrt(2) * (-1.125, 0, 1.125) = (-0.591, 1, 2.591).
    # Levels L = (u1, -1, 0, 3, u4); on [s_{r-1}, s_r) the slope is lambda_W (L_r - L_{r-1}):
    #   -1 -> piece 1: 0.5 * (-1 - u1) = 0.5 * (1.5 sqrt(2) - 2)
    #    0 -> piece 2: 0.5 * (0 - -1) = 0.5
    #  1,1,2 -> piece 3 (1 >= s_2 = 1): 0.5 * (3 - 0) = 1.5
    #    3 -> piece 4: 0.5 * (u4 - 3) = 0.5 * (1.5 sqrt(2) - 2)
    upstream = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], dtype=torch.float64)
    quantizer(w).backward(upstream)
    outer = 0.5 * (1.5 * r2 - 2)
    slopes = torch.tensor([outer, 0.5, 1.5, 1.5, 1.5, outer], dtype=torch.float64)
    assert torch.allclose(w.grad, upstream * slopes)


@pytest.mark.parametrize("m", [2, 4, 8, 16])
def test_weight_bases_are_one_hot_and_rebuild_eq_3_15(m):
    torch.manual_seed(m)
    w = torch.randn(32, 40, dtype=torch.float64) * 0.1 + 0.01
    quantizer = PAWeightQuantizer(m)
    bases = quantizer.bases(w)
    assert bases.shape == (m, 32, 40) and set(bases.unique().tolist()) <= {0, 1}
    assert int(bases.sum(0).max()) == 1                  # at most one base per weight
    zero_piece = quantizer.regions(w, quantizer.endpoints(w)) == m // 2
    assert torch.equal(bases.sum(0) == 0, zero_piece)    # exactly the zero piece sets none
    # eq. 3.15: W-bar = sum_i alpha_i T_i
    rebuilt = (quantizer.alphas(w).view(-1, 1, 1) * bases).sum(0)
    assert torch.equal(rebuilt, quantizer(w).detach())


def _activation_case():
    # N = 3, v = (0.5, 1.5, 2.5), beta = (1, 3, 4), lambda_A = 2, lambda_delta = 0.5.
    act = PAActivation(3, lambda_a=2.0, lambda_delta=0.5)
    with torch.no_grad():
        act.v.copy_(torch.tensor([0.5, 1.5, 2.5]))
        act.beta.copy_(torch.tensor([1.0, 3.0, 4.0]))
    a = torch.tensor([-1.0, -0.1, 0.1, 0.5, 1.0, 1.6, 2.4, 2.6, 2.9, 3.1, 10.0],
                     requires_grad=True)
    return act, a


def test_activation_forward_eq_3_10():
    act, a = _activation_case()
    assert act.codes(a).tolist() == [0, 0, 0, 1, 1, 2, 2, 3, 3, 3, 3]
    assert act(a).tolist() == [0.0, 0.0, 0.0, 1.0, 1.0, 3.0, 3.0, 4.0, 4.0, 4.0, 4.0]


def test_activation_backward_eq_3_11_to_3_14():
    act, a = _activation_case()
    # eq. 3.12: t1 = 1, t2 = 2, t0 = 2 v1 - t1 = 0, t3 = v3 + lambda_delta = 3.
    # Gradient pieces [t_{i-1}, t_i): -1, -0.1 -> below t0; 0.1, 0.5 -> 1; 1.0, 1.6 -> 2;
    # 2.4, 2.6, 2.9 -> 3; 3.1, 10 -> above t3. Jumps beta_i - beta_{i-1} = 1, 2, 1,
    # so eq. 3.11 slopes are 0, 2, 4, 2, 0.
    upstream = torch.arange(1.0, 12.0)
    act(a).backward(upstream)
    slopes = torch.tensor([0.0, 0, 2, 2, 4, 4, 2, 2, 2, 0, 0])
    assert torch.equal(a.grad, upstream * slopes)
    # eq. 3.13: sum of the upstream gradient over each code's elements:
    # code 1 -> 4 + 5, code 2 -> 6 + 7, code 3 -> 8 + 9 + 10 + 11.
    assert act.beta.grad.tolist() == [9.0, 13.0, 38.0]
    # eq. 3.14 (with the minus sign of dA-bar/dv): -lambda_A * jump_i * sum over piece i:
    # v1: -2 * 1 * (3 + 4), v2: -2 * 2 * (5 + 6), v3: -2 * 1 * (7 + 8 + 9).
    assert act.v.grad.tolist() == [-14.0, -44.0, -48.0]


def test_activation_single_piece():
    # N = 1: t0 = v1 - lambda_delta, t1 = v1 + lambda_delta.
    act = PAActivation(1, lambda_a=1.0, lambda_delta=0.25)
    with torch.no_grad():
        act.v.fill_(0.5)
        act.beta.fill_(2.0)
    a = torch.tensor([0.2, 0.3, 0.6, 0.8], requires_grad=True)
    out = act(a)
    assert out.tolist() == [0.0, 0.0, 2.0, 2.0]
    out.sum().backward()
    assert a.grad.tolist() == [0.0, 2.0, 2.0, 0.0]


def test_endpoint_gradient_lowers_the_loss():
    # An input just below v1 with a target of beta_1: descending the v gradient must
    # lower v1 past the input. With the sign printed in eq. 3.14 v1 would rise instead.
    act = PAActivation(1, lambda_a=1.0, lambda_delta=0.25)
    with torch.no_grad():
        act.v.fill_(0.5)
        act.beta.fill_(1.0)
    a = torch.tensor([0.45])
    loss = (act(a) - 1.0).pow(2).sum()
    before = loss.item()
    loss.backward()
    assert act.v.grad.item() > 0
    with torch.no_grad():
        act.v -= 0.1 * act.v.grad
        assert (act(a) - 1.0).pow(2).sum().item() < before


def test_activation_initial_state_and_constrain():
    act = PAActivation(5)
    assert torch.allclose(act.v, torch.tensor([0.3, 0.9, 1.5, 2.1, 2.7]))
    assert torch.allclose(act.beta, torch.tensor([0.6, 1.2, 1.8, 2.4, 3.0]))
    with torch.no_grad():
        act.v.copy_(torch.tensor([0.3, 0.2, 1.5, 1.4, 2.7]))
    act.constrain_(min_gap=0.01)
    assert torch.allclose(act.v, torch.tensor([0.3, 0.31, 1.5, 1.51, 2.7]))


@pytest.mark.parametrize("n", [0, 17, 2.5])
def test_activation_pieces_must_be_1_to_16(n):
    with pytest.raises(ValueError, match="integer in 1..16"):
        PAActivation(n)


def test_sign_activation_forward_and_clipped_ste():
    x = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5], requires_grad=True)
    y = SignActivation()(x)
    assert y.tolist() == [-1.0, -1.0, -1.0, 1.0, 1.0, 1.0, 1.0]
    y.backward(torch.full_like(x, 3.0))
    assert x.grad.tolist() == [0.0, 3.0, 3.0, 3.0, 3.0, 3.0, 0.0]


def test_xnor_weight_scale_is_mean_abs_per_output():
    w = torch.tensor([[0.5, -1.5, 0.0], [-0.2, -0.4, 0.6]])
    assert torch.allclose(xnor_weight(w), torch.tensor([[2 / 3, -2 / 3, 2 / 3],
                                                        [-0.4, -0.4, 0.4]]))

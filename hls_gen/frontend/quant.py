"""Quantizers: the piecewise approximation (PA) scheme of thesis ch. 3, and XNOR sign.

Weights (eq. 3.6-3.9) are split into M pieces plus a middle piece that is
exactly 0; each piece's value is the mean of its weights. Activations
(eq. 3.10-3.14) are split into N pieces above a lowest piece that is exactly 0,
with trainable endpoints v_i and scales beta_i. Both become one-hot 0/1 bases
at inference (eq. 3.15-3.18), which is what the golden model and the hardware
compute with.

Conventions (the thesis writes closed intervals on both sides):

- a value equal to an endpoint belongs to the piece above it;
- pieces are numbered from 0: weight region r in 0..M (region M/2 is the zero
  piece), activation code c in 0..N (code 0 is the zero piece).
"""

import torch
from torch import nn

__all__ = [
    "weight_endpoint_multiples", "PAWeightQuantizer", "PAActivation",
    "sign_ste", "SignActivation", "ThresholdSign", "xnor_weight",
]


def weight_endpoint_multiples(m):
    """The weight endpoints u_1..u_M in units of std(W), before adding mean(W).

    For M = 8 these are Table 3.1: -1.5 -1 -0.5 -0.25 0.25 0.5 1 1.5. For any
    even M = 2h the rule that reproduces the table is: step d = 1.5 / (h - 1);
    positive endpoints d/2, d, 2d, ..., (h-1)d (so the outermost is 1.5 std and
    the zero piece is half a step wide on each side); negative ones mirrored.
    M = 2 (ternary) uses +-0.6 std, close to TWN's 0.7 * mean|W| for a Gaussian.
    """
    if not isinstance(m, int) or m < 2 or m > 16 or m % 2:
        raise ValueError(f"weight pieces M must be an even integer in 2..16, not {m!r}")
    half = m // 2
    if half == 1:
        positive = [0.6]
    else:
        step = 1.5 / (half - 1)
        positive = [step / 2] + [step * j for j in range(1, half)]
    return tuple([-p for p in reversed(positive)] + positive)


class _PiecewiseWeight(torch.autograd.Function):
    """Forward eq. 3.6 (given levels), backward eq. 3.8 (slopes between levels)."""

    @staticmethod
    def forward(ctx, w, u, levels, lambda_w):
        region = torch.bucketize(w, u, right=True)
        # eq. 3.9: gradient pieces change at the midpoints s_i of the endpoints.
        s = (u[1:] + u[:-1]) / 2
        ctx.save_for_backward(torch.bucketize(w, s, right=True), levels)
        ctx.lambda_w = lambda_w
        return levels[region]

    @staticmethod
    def backward(ctx, grad):
        piece, levels = ctx.saved_tensors
        # eq. 3.8: on [s_{r-1}, s_r] the slope is lambda_W * (L_r - L_{r-1}),
        # where L_0..L_M are the M+1 output levels in increasing order.
        slopes = ctx.lambda_w * (levels[1:] - levels[:-1])
        return grad * slopes[piece], None, None, None


class PAWeightQuantizer(nn.Module):
    """Piecewise approximation of a weight tensor with M pieces (thesis eq. 3.6-3.9).

    Parameters
    ----------
    m : int
        Number of non-zero weight pieces (binary weight bases), even, 2..16.
    lambda_w : float
        Gradient scale of eq. 3.8. With Adam its overall size mostly cancels;
        what matters is that each piece's slope follows its level step.

    The whole tensor shares one set of endpoints and scales (the thesis
    quantizes weights "as a whole"), so a layer has M coefficients alpha_i.
    """

    def __init__(self, m=4, lambda_w=1.0):
        super().__init__()
        self.multiples = weight_endpoint_multiples(m)
        if lambda_w <= 0:
            raise ValueError(f"lambda_w must be positive, not {lambda_w}")
        self.m = m
        self.lambda_w = float(lambda_w)

    def endpoints(self, w):
        """u_1..u_M from the weights' mean and std (Table 3.1 rule)."""
        w = w.detach()
        mean, std = w.mean(), w.std()
        return mean + std * torch.tensor(self.multiples, dtype=w.dtype, device=w.device)

    def regions(self, w, u):
        """Region of each weight, 0..M; region M/2 is the zero piece."""
        return torch.bucketize(w.detach(), u, right=True)

    def levels(self, w, u=None):
        """The M+1 output levels L_0..L_M: alpha_1..alpha_{M/2}, 0, alpha_{M/2+1}..alpha_M.

        eq. 3.7: each alpha is the mean of the weights in its piece. An empty
        piece takes the midpoint of its interval (the endpoint itself for the
        two outer pieces) so the levels stay ordered.
        """
        w = w.detach()
        u = self.endpoints(w) if u is None else u
        region = self.regions(w, u).flatten()
        count = torch.bincount(region, minlength=self.m + 1).to(w.dtype)
        total = torch.zeros(self.m + 1, dtype=w.dtype, device=w.device)
        total.index_add_(0, region, w.flatten())
        fallback = torch.cat([u[:1], (u[1:] + u[:-1]) / 2, u[-1:]])
        levels = torch.where(count > 0, total / count.clamp(min=1), fallback)
        levels[self.m // 2] = 0.0
        return levels

    def alphas(self, w):
        """The M scaling coefficients alpha_1..alpha_M (the levels without the zero)."""
        levels = self.levels(w)
        return torch.cat([levels[: self.m // 2], levels[self.m // 2 + 1:]])

    def bases(self, w):
        """One-hot weight bases T_i (eq. 3.16): int64 tensor of shape ``(M, *w.shape)``."""
        u = self.endpoints(w)
        region = self.regions(w, u)
        half = self.m // 2
        # Base index of each region: regions above the zero piece shift down by one.
        base = torch.where(region > half, region - 1, region)
        pieces = torch.arange(self.m, device=w.device).view(-1, *([1] * w.dim()))
        return ((base.unsqueeze(0) == pieces) & (region != half).unsqueeze(0)).long()

    def forward(self, w):
        u = self.endpoints(w)
        return _PiecewiseWeight.apply(w, u, self.levels(w, u), self.lambda_w)

    def extra_repr(self):
        return f"m={self.m}, lambda_w={self.lambda_w}"


class _PiecewiseActivation(torch.autograd.Function):
    """Forward eq. 3.10, backward eq. 3.11-3.14."""

    @staticmethod
    def forward(ctx, a, v, beta, lambda_a, lambda_delta):
        code = torch.bucketize(a, v, right=True)
        levels = torch.cat([beta.new_zeros(1), beta])
        # eq. 3.12: t_0..t_N. The thesis's "t_0 = 2 v_0 - s_1" has no v_0 or s_1
        # in this context; read as t_0 = 2 v_1 - t_1, which centres the first
        # gradient piece on v_1 like every other one.
        inner = (v[1:] + v[:-1]) / 2
        t_last = (v[-1] + lambda_delta).reshape(1)
        t_first = 2 * v[:1] - torch.cat([inner, t_last])[:1]
        t = torch.cat([t_first, inner, t_last])
        ctx.save_for_backward(code, torch.bucketize(a, t, right=True), levels)
        ctx.lambda_a = lambda_a
        return levels[code]

    @staticmethod
    def backward(ctx, grad):
        code, piece, levels = ctx.saved_tensors
        n = levels.numel() - 1
        jumps = levels[1:] - levels[:-1]          # beta_i - beta_{i-1}, beta_0 = 0
        zero = jumps.new_zeros(1)
        # eq. 3.11: piece i in 1..N is [t_{i-1}, t_i) with slope lambda_A * jump_i;
        # below t_0 (piece 0) and above t_N (piece N+1) the gradient is 0.
        slopes = torch.cat([zero, ctx.lambda_a * jumps, zero])
        grad_a = grad * slopes[piece]
        flat = grad.flatten()
        # eq. 3.13: dC/dbeta_i sums the incoming gradient over piece i.
        grad_beta = torch.zeros(n + 1, dtype=grad.dtype).index_add_(0, code.flatten(), flat)[1:]
        # eq. 3.14, with the sign that follows from eq. 3.11: raising v_i moves the
        # step right, which lowers A-bar near v_i, so dA-bar/dv_i = -lambda_A * jump_i.
        # (The thesis prints the magnitude without the minus sign.)
        per_piece = torch.zeros(n + 2, dtype=grad.dtype).index_add_(0, piece.flatten(), flat)
        grad_v = -ctx.lambda_a * jumps * per_piece[1:n + 1]
        return grad_a, grad_v, grad_beta, None, None


class PAActivation(nn.Module):
    """Piecewise approximation of activations with N pieces (thesis eq. 3.10-3.14).

    Parameters
    ----------
    n : int
        Number of non-zero activation pieces (binary activation bases), 1..16.
    step : float
        Initial spacing of the endpoints; v_i starts at (i - 1/2) * step and
        beta_i at i * step, a rounding quantizer of a ReLU (the thesis initialises
        the endpoints positive and drops the bounded activation).
    lambda_a : float or None
        Gradient scale of eq. 3.11; default 1/step, so the surrogate's slope
        integrates to the step height over its piece.
    lambda_delta : float or None
        Width of the last gradient piece above v_N (eq. 3.12); default step / 2.

    The endpoints must stay strictly increasing; training calls `constrain_()`
    after each optimiser step to keep them so.
    """

    def __init__(self, n=5, step=None, lambda_a=None, lambda_delta=None):
        super().__init__()
        if not isinstance(n, int) or not 1 <= n <= 16:
            raise ValueError(f"activation pieces N must be an integer in 1..16, not {n!r}")
        step = min(1.0, 3.0 / n) if step is None else float(step)
        if step <= 0:
            raise ValueError(f"step must be positive, not {step}")
        self.n = n
        self.lambda_a = 1.0 / step if lambda_a is None else float(lambda_a)
        self.lambda_delta = step / 2 if lambda_delta is None else float(lambda_delta)
        if self.lambda_a <= 0 or self.lambda_delta <= 0:
            raise ValueError(f"lambda_a and lambda_delta must be positive, not "
                             f"{self.lambda_a} and {self.lambda_delta}")
        index = torch.arange(1, n + 1, dtype=torch.float32)
        self.v = nn.Parameter((index - 0.5) * step)
        self.beta = nn.Parameter(index * step)

    def codes(self, a):
        """Activation code c in 0..N of each element (0 is the zero piece)."""
        return torch.bucketize(a.detach(), self.v.detach(), right=True)

    def forward(self, a):
        return _PiecewiseActivation.apply(a, self.v, self.beta, self.lambda_a, self.lambda_delta)

    @torch.no_grad()
    def constrain_(self, min_gap=1e-3):
        """Keep v strictly increasing (a projection after each optimiser step)."""
        for i in range(1, self.n):
            self.v[i] = torch.maximum(self.v[i], self.v[i - 1] + min_gap)

    def extra_repr(self):
        return f"n={self.n}, lambda_a={self.lambda_a:g}, lambda_delta={self.lambda_delta:g}"


class _SignSTE(torch.autograd.Function):
    """sign with +1 at 0; straight-through gradient clipped to abs(x) <= 1."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1).to(grad.dtype)


def sign_ste(x):
    """+1 where x >= 0, -1 elsewhere; gradient passes where abs(x) <= 1."""
    return _SignSTE.apply(x)


class SignActivation(nn.Module):
    """Binary +-1 activation of XNOR-Net / Bi-Real nets (sign with clipped STE)."""

    def forward(self, x):
        return sign_ste(x)


class ThresholdSign(nn.Module):
    """+1 where x >= t, -1 elsewhere, a threshold t per channel (or one for all): a
    QONNX ``MultiThreshold`` of one threshold with bipolar output (FINN's streamlined
    form of batch norm and a sign). Inference only.

    Parameters
    ----------
    thresholds : tensor
        (C, 1) or (1, 1): each channel's threshold, finite.
    """

    def __init__(self, thresholds):
        super().__init__()
        thresholds = torch.as_tensor(thresholds, dtype=torch.float64)
        if thresholds.dim() != 2 or thresholds.shape[1] != 1:
            raise ValueError(f"thresholds must be (channels, 1), not "
                             f"{tuple(thresholds.shape)}")
        if not torch.isfinite(thresholds).all():
            raise ValueError("thresholds must be finite")
        self.register_buffer("thresholds", thresholds)

    def forward(self, x):
        view = (1, -1) + (1,) * (x.dim() - 2)
        return torch.where(x >= self.thresholds[:, 0].view(view).to(x.dtype), 1.0,
                           -1.0).to(x.dtype)


def xnor_weight(w):
    """XNOR-Net weights: sign(W) times mean|W| of each output channel (dim 0)."""
    # Flattened and viewed back, not broadcast by a shape built from w.dim(): torch.fx
    # traces this (a proxy's dim() is not a number).
    alpha = w.abs().flatten(1).mean(dim=1, keepdim=True)
    return (sign_ste(w).flatten(1) * alpha).view_as(w)

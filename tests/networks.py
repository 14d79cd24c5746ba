"""Networks and cases the tests share: random layers of the golden model
(`bitfab.hls_gen.golden.synthetic`), a small PA network, a digits network whose hidden codes depend on the image, and a PA
processing element's case against the golden kernels."""

import torch
from amaranth.lib import data
from amaranth.hdl import signed

from bitfab.hls_gen.datasets import load_digits_split
from bitfab.hls_gen.golden import kernels as golden
from bitfab.hls_gen.golden.ir import Graph
from bitfab.hls_gen.golden.kernels import Geometry
from bitfab.hls_gen.golden.synthetic import digits_graph, median_thresholds, random_layer
from bitfab.rtl.pe import PAProcessingElement
from bitfab.rtl.popcount import Front

SEED = 20261122
# The tests take digits_graph from here; it lives in the package for the benchmarks too.
__all__ = ["digits_graph", "random_layer", "small_graph", "pe_golden", "pe_case", "cnn_graph",
           "SEED"]


def small_graph(seed=3):
    """Two PA layers (16 3-bit pixels -> 8 -> 4 scores), random weights from `seed`."""
    gen = torch.Generator().manual_seed(seed)
    hidden = random_layer(gen, "pa", 8, 16, m=2, n=3, n_out=3, coef_bits=6)
    hidden.input_encoding, hidden.input_planes = "bitplanes", 3
    scores = random_layer(gen, "pa", 4, 8, m=2, n=3, coef_bits=6)
    return Graph(3, 1.0, [hidden, scores])

def pe_golden(front, coef, w, x, k):
    """One row: w (M, K) and x (N, K) 0/1 over all folds -> the golden accumulator."""
    geometry = golden.Geometry("linear")
    if front == "xnor":
        return int(golden.xnor_dot(golden.xor_popcounts(x, w, geometry), k))
    counts = golden.and_popcounts(x.unsqueeze(0), w.unsqueeze(1), geometry)
    return int(golden.merge_coefficients(counts, coef))

def pe_case(front, m, n, simd, folds, coef_bits, stages, multipliers=None, plane_sum=False):
    """A PE and its case: 152 rows (all zeros, all ones, random) against the golden kernel;
    `multipliers` below its lanes makes its merge time-shared. With `plane_sum` the
    phi_k are alpha_i * 2^j, the form that datapath takes."""
    gen = torch.Generator().manual_seed(SEED)
    k = simd * folds
    top = 1 << max(coef_bits - 1, 0)
    coef = torch.randint(-top, top, (m, n), generator=gen) if front == "and" else None
    if plane_sum:
        alpha = torch.randint(-(top >> (n - 1)), top >> (n - 1), (m, 1), generator=gen)
        coef = alpha * (1 << torch.arange(n)).view(1, n)
    bound = k * n * top if front == "and" else k
    acc_bits = (2 * bound).bit_length() + 1
    pe = PAProcessingElement(m=m, n=n, simd=simd, front=Front(front), coef_bits=coef_bits or 1,
                             acc_bits=acc_bits, popcount_stages=stages,
                             multipliers=multipliers, cols=k, plane_sum=plane_sum)
    layout = pe.signature.members["i"].signature.members["payload"].shape
    inputs, outputs = [], []
    rows = [(torch.zeros(m, k, dtype=torch.long), torch.zeros(n, k, dtype=torch.long)),
            (torch.ones(m, k, dtype=torch.long), torch.ones(n, k, dtype=torch.long))]
    rows += [(torch.randint(0, 2, (m, k), generator=gen),
              torch.randint(0, 2, (n, k), generator=gen)) for _ in range(150)]
    for w, x in rows:
        want = pe_golden(front, coef, w, x, k)
        outputs.append(want & ((1 << acc_bits) - 1))
        for f in range(folds):
            part = slice(f * simd, (f + 1) * simd)
            as_int = lambda t: int("".join(str(b) for b in reversed(t[:, part].flatten().tolist())), 2)
            inputs.append(layout.const({"w": as_int(w), "x": as_int(x),
                                        "last": int(f == folds - 1)}).as_bits())
    case = {"inputs": inputs, "outputs": outputs, "signed_bits": acc_bits}
    if front == "and":
        coef_layout = data.ArrayLayout(signed(coef_bits), m * n)
        case["static"] = {"coef": coef_layout.const(coef.flatten().tolist()).as_bits()}
    return pe, case


def cnn_graph(seed, pool=False):
    """A small CNN for the digits (1 x 8 x 8 pixels in 5 bit planes): a 3x3 PA
    convolution (4 channels, 3 codes), a 3x3 stride-2 PA convolution over those
    one-hot codes (6 channels, binary codes) and an XNOR head over the flattened
    6 x 4 x 4, thresholds at quantiles of their accumulators over training digits.
    With `pool`, the first convolution's codes are max pooled 2x2 (stride 2) and the
    second has stride 1: the same shapes, through a pool."""
    from dataclasses import replace
    gen = torch.Generator().manual_seed(seed)
    first = random_layer(gen, "pa", 4, 9, m=2, n=5, n_out=3, coef_bits=6)
    first = replace(first, name="conv1", geometry=Geometry("conv2d", (1, 1), (1, 1)),
                    input_encoding="bitplanes", input_planes=5,
                    bases=first.bases.view(2, 4, 1, 3, 3))
    second = random_layer(gen, "pa", 6, 36, m=2, n=3, n_out=1, coef_bits=6)
    stride = (1, 1) if pool else (2, 2)
    second = replace(second, name="conv2", geometry=Geometry("conv2d", stride, (1, 1)),
                     bases=second.bases.view(2, 6, 4, 3, 3))
    head = replace(random_layer(gen, "xnor", 10, 96), name="head", flatten_input=True)
    if pool:
        first.pool = (2, 2)
    graph = Graph(5, 1.0, [first, second, head])
    pixels = load_digits_split().x_train[:300].long().view(-1, 1, 8, 8)
    median_thresholds(graph, first, pixels, 3)
    median_thresholds(graph, second, pixels, 1)
    return graph

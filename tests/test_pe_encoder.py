"""The PA processing element and the activation encoder in cocotb against the golden
kernels, with random stalls and backpressure; and their parameter checks."""

import itertools
import random

import pytest
import torch
from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from bitfab.hls_gen.golden import kernels as golden
from bitfab.rtl.encoder import ActivationEncoder, orient_thresholds, threshold_layout
from bitfab.rtl.mvau import ISSUE_STAGES, READ_STAGES
from bitfab.rtl.pe import PAProcessingElement
from bitfab.rtl.popcount import Front
from bitfab.sim import runner
from bitfab.sim.runner import default_simulator
from networks import pe_case

SEED = 20261122
SIM = default_simulator()


def run_vectors(tmp_path_factory, component, toplevel, key, case):
    runner.run_vectors(component, toplevel, case, tmp_path_factory.getbasetemp() / "sim", SEED,
                       SIM, key=key)



# (front, m, n, simd, folds, coef_bits, popcount_stages, multipliers): the last three
# time-share their merge, with rows shorter than the merge (1 multiplier for 20 phi_k
# over 3 folds; a single fold), a merge step count that does not divide (7 of 20: 3
# steps, one padded) and rows longer than the merge.
PE_CASES = [("and", 4, 5, 8, 3, 8, None, None), ("and", 2, 3, 5, 1, 12, 0, None),
            ("and", 8, 7, 8, 3, 16, 3, None), ("xnor", 1, 1, 32, 4, 0, None, None),
            ("and", 4, 5, 8, 3, 8, None, 1), ("and", 2, 3, 5, 1, 12, 0, 2),
            ("and", 4, 5, 4, 5, 16, None, 7)]
PE_PARAMETERS = "front,m,n,simd,folds,coef_bits,stages,multipliers"


@pytest.mark.parametrize(PE_PARAMETERS, PE_CASES)
def test_latency_of_is_the_latency_of_the_pe_it_describes(front, m, n, simd, folds, coef_bits,
                                                          stages, multipliers):
    pe = PAProcessingElement(m=m, n=n, simd=simd, front=Front(front), coef_bits=coef_bits or 1,
                             popcount_stages=stages, multipliers=multipliers, cols=simd * folds)
    assert PAProcessingElement.latency_of(m=m, n=n, simd=simd, front=Front(front),
                                          popcount_stages=stages,
                                          multipliers=multipliers) == pe.latency
    # ... and the stages its pipeline is built from.
    shared = pe.merge_steps if pe.shared else 0
    assert pe.latency == pe.popcount_stages + pe.product_stages + pe.sum_stages + shared + 1
    pe.elaborate(None)


@pytest.mark.parametrize("multipliers,error", [
    (0, "multipliers must be an integer in 1..20"), (21, "in 1..20"), (2.5, "in 1..20"),
    (True, "in 1..20")])
def test_pe_refuses_a_multiplier_count_outside_its_merge(multipliers, error):
    with pytest.raises(ValueError, match=error):
        PAProcessingElement(m=4, n=5, simd=8, multipliers=multipliers, cols=64)


def test_a_time_shared_pe_needs_its_row_length():
    with pytest.raises(ValueError, match="cols must be a positive integer"):
        PAProcessingElement(m=4, n=5, simd=8, multipliers=4)
    with pytest.raises(ValueError, match="cols=12 is not a whole number of folds"):
        PAProcessingElement(m=4, n=5, simd=8, multipliers=4, cols=12)
    with pytest.raises(ValueError, match=r"cols=\d+ is too large"):
        PAProcessingElement(m=4, n=5, simd=8, multipliers=4, cols=8 << 17)
    with pytest.raises(ValueError, match="XNOR PE has no phi_k merge"):
        PAProcessingElement(m=1, n=1, simd=8, front=Front.XNOR, multipliers=2, cols=8)


def test_a_plan_makes_no_component_it_does_not_use(monkeypatch):
    """Planning reads a PE's latency (`MVAUConfig.fifo_depth`) without making a PE that
    is then dropped: each drew Amaranth's UnusedElaboratable warning in builds."""
    from networks import random_layer

    from bitfab.hls_gen.golden.ir import Graph
    from bitfab.hls_gen.compiler.folding import fold
    from bitfab.hls_gen.compiler.plan import map_to_hw
    made, init = [], PAProcessingElement.__init__

    def counted(self, **kwargs):
        made.append(kwargs)
        init(self, **kwargs)

    monkeypatch.setattr(PAProcessingElement, "__init__", counted)
    gen = torch.Generator().manual_seed(SEED)
    graph = Graph(3, 1.0, [random_layer(gen, "pa", 4, 8, m=2, n=3, coef_bits=6)])
    [config] = fold(map_to_hw(graph))
    latency = config.processing_element().latency
    assert (config.output, config.scale_bits) == ("scores", 0)    # a head, unscaled
    assert config.latency == READ_STAGES + ISSUE_STAGES + latency + 1 + 1
    assert config.fifo_depth == config.scheduled_fifo_depth > 2
    assert len(made) == 1       # the one just made here



@pytest.mark.sim
@pytest.mark.parametrize(PE_PARAMETERS, PE_CASES)
def test_pe_cocotb(tmp_path_factory, front, m, n, simd, folds, coef_bits, stages, multipliers):
    pe, case = pe_case(front, m, n, simd, folds, coef_bits, stages, multipliers)
    run_vectors(tmp_path_factory, pe, "pa_pe", ["pe", front, m, n, simd, folds, coef_bits,
                                                stages, multipliers], case)


# (m, n, simd, folds, coef_bits, stages, multipliers) with plane_sum: CNV's first layer
# (two bases, eight pixel planes, three pixels a fold) with its merge in parallel and
# time-shared, and an odd shape with popcount stages cut.
PLANE_SUM_CASES = [(2, 8, 3, 9, 9, None, 2), (2, 8, 3, 9, 9, None, 1), (3, 4, 5, 2, 10, 1, 2)]


@pytest.mark.parametrize("m,n,simd,folds,coef_bits,stages,multipliers", PLANE_SUM_CASES)
def test_a_plane_sum_pe_merges_one_lane_per_base(m, n, simd, folds, coef_bits, stages,
                                                  multipliers):
    pe = PAProcessingElement(m=m, n=n, simd=simd, coef_bits=coef_bits, popcount_stages=stages,
                             multipliers=multipliers, cols=simd * folds, plane_sum=True)
    assert pe.terms == m and pe.merge_steps == -(-m // multipliers)
    assert pe.latency == PAProcessingElement.latency_of(
        m=m, n=n, simd=simd, front=Front.AND, popcount_stages=stages,
        multipliers=multipliers, plane_sum=True)
    with pytest.raises(ValueError, match=f"multipliers must be an integer in 1..{m} "):
        PAProcessingElement(m=m, n=n, simd=simd, multipliers=m + 1, cols=simd * folds,
                            plane_sum=True)
    with pytest.raises(ValueError, match="an XNOR PE has none"):
        PAProcessingElement(m=1, n=1, simd=simd, front=Front.XNOR, plane_sum=True)


@pytest.mark.sim
@pytest.mark.parametrize("m,n,simd,folds,coef_bits,stages,multipliers", PLANE_SUM_CASES)
def test_plane_sum_pe_cocotb(tmp_path_factory, m, n, simd, folds, coef_bits, stages,
                             multipliers):
    """Per weight base the sum of its N-bit elements, merged with phi_(i, 0): the golden
    kernel's sum over all M x N popcounts when phi_(i, j) = phi_(i, 0) * 2^j."""
    pe, case = pe_case("and", m, n, simd, folds, coef_bits, stages, multipliers,
                       plane_sum=True)
    run_vectors(tmp_path_factory, pe, "pa_pe", ["plane_sum", m, n, simd, folds, coef_bits,
                                                stages, multipliers], case)


@pytest.mark.sim
@pytest.mark.synth
def test_pe_netlist_cocotb(tmp_path):
    """The PE as yosys maps it for the ECP5 (`bitfab.sim.netlist`: its phi_k products in
    MULT18X18Ds with their three registers, its popcounts in CCU2C chains), under the
    same stalls and backpressure; and the same netlist with each DSP's pipeline register
    taken out, which the bench must catch (the products then arrive a cycle early)."""
    from bitfab.hls_gen.compiler.boards import board
    from bitfab.sim.netlist import synthesize
    pe, case = pe_case("and", 4, 5, 8, 3, 8, None)
    netlist = synthesize(pe, "pa_pe", tmp_path / "synth",
                         board("ulx3s-85f").platform_class()())
    assert netlist.count("MULT18X18D #(") == 4 * 5
    runner.run_vectors(netlist, "pa_pe", case, tmp_path / "sim", SEED, key="netlist")
    early = netlist.replace('.REG_PIPELINE_CLK("CLK0")', '.REG_PIPELINE_CLK("NONE")')
    with pytest.raises(RuntimeError, match=f"seed {SEED}: first mismatch at output"):
        runner.run_vectors(early, "pa_pe", case, tmp_path / "sim", SEED, key="early")


def encoder_vectors(channels, n, acc_bits, threshold_bits, rng, exhaustive):
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    tlo, thi = -(1 << (threshold_bits - 1)), (1 << (threshold_bits - 1)) - 1
    if exhaustive:   # one channel: every accumulator, threshold pair and direction
        for acc, t, d in itertools.product(range(lo, hi + 1),
                                           itertools.product(range(tlo, thi + 1), repeat=n),
                                           (0, 1)):
            yield [acc], [list(t)], [d]
        return
    for _ in range(400):
        thresholds = [[rng.randint(tlo, thi) for _ in range(n)] for _ in range(channels)]
        if rng.random() < 0.7:       # the freezer's thresholds are sorted; not all here
            thresholds = [sorted(t) for t in thresholds]
        yield ([rng.choice([lo, hi, rng.randint(lo, hi)]) for _ in range(channels)],
               thresholds, [rng.randint(0, 1) for _ in range(channels)])


@pytest.mark.sim
@pytest.mark.parametrize("channels,n,acc_bits,threshold_bits", [(1, 2, 4, 3), (4, 5, 12, 13),
                                                               (2, 1, 8, 9), (3, 16, 20, 21)])
def test_encoder_cocotb(tmp_path_factory, channels, n, acc_bits, threshold_bits):
    rng = random.Random(SEED)
    encoder = ActivationEncoder(channels=channels, n=n, acc_bits=acc_bits,
                                threshold_bits=threshold_bits)
    layout = data.StructLayout({
        "acc": data.ArrayLayout(signed(acc_bits), channels),
        "channel": data.ArrayLayout(threshold_layout(n, threshold_bits), channels)})
    out_layout = data.ArrayLayout(unsigned(n), channels)
    inputs, outputs = [], []
    for acc, thresholds, descending in encoder_vectors(channels, n, acc_bits, threshold_bits,
                                                        rng, exhaustive=channels == 1):
        codes = golden.threshold_codes(torch.tensor([acc]), torch.tensor(thresholds),
                                       torch.tensor(descending).bool())[0]
        onehot = golden.to_planes(codes.view(1, -1), "onehot", n)[0]     # (n, channels)
        outputs.append(out_layout.const([sum(int(onehot[j, c]) << j for j in range(n))
                                         for c in range(channels)]).as_bits())
        inputs.append(layout.const({"acc": acc, "channel": [
            {"thresholds": orient_thresholds(t, d), "descending": d}
            for t, d in zip(thresholds, descending)]}).as_bits())
    run_vectors(tmp_path_factory, encoder, "encoder", ["enc", channels, n, acc_bits,
                                                       threshold_bits], {"inputs": inputs,
                                                                         "outputs": outputs})


@pytest.mark.parametrize("kwargs,message", [
    (dict(m=0, n=1, simd=4), "m must be a positive integer, not 0"),
    (dict(m=2, n=2, simd=4, front=Front.XNOR), "XNOR PE has m = n = 1"),
    (dict(m=1, n=1, simd=4, front=Front.NONE), "front must be Front.AND or Front.XNOR"),
    (dict(m=1, n=1, simd=4, popcount_stages=3), r"popcount_stages must be in 0..2"),
])
def test_pe_parameters_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PAProcessingElement(**kwargs)


def test_encoder_parameters_checked():
    with pytest.raises(ValueError, match="encoder n must be an integer in 1..16, not 17"):
        ActivationEncoder(channels=1, n=17, acc_bits=8, threshold_bits=9)
    with pytest.raises(ValueError, match="channels must be a positive integer, not 0"):
        ActivationEncoder(channels=0, n=2, acc_bits=8, threshold_bits=9)

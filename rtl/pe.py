"""The PA processing element: M x N AND-popcount lanes, the phi_k merge, a fold accumulator."""

import math

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from . import dsp
from .dsp import registered_product
from .popcount import Front, adder_tree, count_ones, spread, stage

__all__ = ["PAProcessingElement", "merge_lanes", "lane_sum_bound"]


def _positive_int(name, value):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")


class PAProcessingElement(wiring.Component):
    """One output row of a multi-binary layer, SIMD input bits per cycle.

    For each input fold it counts ``popcount(w_i AND x_j)`` for all M weight
    bases and N activation bases over the same SIMD-wide slice (eq. 3.20),
    merges them as ``sum_k phi_k * popcount_k`` with the coefficients in the
    golden model's fixed point (eq. 3.19), and accumulates over folds. With the
    ``XNOR`` front (M = N = 1, +-1 values) a fold contributes
    ``2 * popcount(w XNOR x) - SIMD``, so the folds sum to ``K - 2 * popcount(XOR)``.

    Parameters
    ----------
    m, n : int
        Weight and activation bases (1 and 1 for ``XNOR``).
    simd : int
        Input bits per base per cycle.
    front : Front
        ``AND`` (PA bases) or ``XNOR`` (+-1 codes).
    coef_bits : int
        Signed width of each phi_k (``AND`` only).
    acc_bits : int
        Signed width of the accumulator, which must hold every partial sum.
    popcount_stages : int or None
        Registers inside each popcount tree; default one after every tree level
        (on ECP5 each register can share its slice with the carry-chain half
        that drives it, and two chain levels per register measured 156 MHz
        against 274 MHz for one, in `benchmarks/popcount.py`).
    multipliers : int or None
        Multipliers of the phi_k merge (``AND`` only), 1..M*N; default M*N, one
        per phi_k, merging every fold. With fewer, each lane's counts are summed
        over the row (exact: the merge is linear) and the M*N sums merged once per
        row, `multipliers` at a time, over ``merge_steps = ceil(M*N / multipliers)``
        cycles, as ReBNet's multi-level accumulators. A row then takes at least
        `merge_steps` cycles: the PE stalls its input on a row's last fold while
        the merge of the row before is not in its final step.
    cols : int or None
        Input bits per base of one row (folds x SIMD), which bounds each lane's
        sum; needed with fewer than M*N multipliers.
    plane_sum : bool
        The N activation planes are the bits of N-bit unsigned elements (a first
        layer's pixels as bit planes) and ``phi_(i, j) = phi_(i, 0) * 2^j`` (``AND``
        only): each weight base then sums its elements' values over the fold, one
        lane per base instead of M x N popcounts, merged with ``phi_(i, 0)``. Exact
        for such coefficients (the merge is linear); the other phi_k are not read,
        so whoever loads them must hold them to that form.
    spaced_rows : bool
        The producer never sends a row's last fold sooner than `merge_steps`
        cycles after the last one's (`MatrixVectorUnit` spaces its rows so), so a
        time-shared merge never holds the lanes back: no stall logic on the
        popcount pipelines' enables (a combinational enable on every lane
        register). Rows closer than that then merge wrongly; leave it False for
        any other producer.

    Members
    -------
    i : In(stream.Signature(StructLayout({"w", "x", "last"})))
        ``w`` holds base i's SIMD bits at ``[i*simd, (i+1)*simd)``, ``x`` plane j's
        at ``[j*simd, (j+1)*simd)``; ``last`` marks the row's final fold.
    coef : In(ArrayLayout(signed(coef_bits), m*n))
        phi_k with k = i*n + j; held steady while folds are in flight (each
        multiplier registers it beside its count).
    o : Out(stream.Signature(signed(acc_bits)))
        The row's sum, one per ``last`` fold.

    Latency is ``popcount_stages + product_stages + sum_stages + 1`` cycles from a
    ``last`` fold to its sum (`latency`): each phi_k product takes three, the input,
    pipeline and output registers of its DSP block on ECP5 (`bitfab.rtl.dsp`), and
    the XNOR front's ``2 * count - SIMD`` two; a time-shared merge adds
    `merge_steps` (the hand-over to the merge and its steps). Throughput one fold
    per cycle, and one row per `merge_steps` cycles. The pipeline stalls as a
    whole while ``o.valid`` is high and ``o.ready`` low.
    """

    XNOR_PRODUCT_STAGES = 2

    def __init__(self, *, m, n, simd, front=Front.AND, coef_bits=16, acc_bits=32,
                 popcount_stages=None, multipliers=None, cols=None, plane_sum=False,
                 spaced_rows=False):
        for name, value in (("m", m), ("n", n), ("simd", simd), ("acc_bits", acc_bits)):
            _positive_int(name, value)
        if front not in (Front.AND, Front.XNOR):
            raise ValueError(f"PE front must be Front.AND or Front.XNOR, not {front!r}")
        if front is Front.XNOR and (m, n) != (1, 1):
            raise ValueError(f"an XNOR PE has m = n = 1, not m={m}, n={n}")
        if front is Front.AND:
            _positive_int("coef_bits", coef_bits)
        if plane_sum and front is not Front.AND:
            raise ValueError("plane_sum sums N-bit elements under AND bases; an XNOR PE "
                             "has none")
        self.plane_sum = bool(plane_sum)
        self.terms = merge_lanes(m, n, self.plane_sum)
        self.m, self.n, self.simd, self.front = m, n, simd, front
        self.coef_bits, self.acc_bits = coef_bits, acc_bits
        self.tree_levels = _tree_levels(simd)
        if popcount_stages is None:
            popcount_stages = self.tree_levels
        if not isinstance(popcount_stages, int) or not 0 <= popcount_stages <= self.tree_levels:
            raise ValueError(f"popcount_stages must be in 0..{self.tree_levels} for simd "
                             f"{simd}, not {popcount_stages!r}")
        self.popcount_stages = popcount_stages
        self.spaced_rows = bool(spaced_rows)
        self.multipliers = _check_multipliers(self.terms, front, multipliers)
        self.cols = None
        if self.shared:
            _positive_int("cols", cols)
            if cols % simd:
                raise ValueError(f"cols={cols} is not a whole number of folds of simd {simd}")
            self.cols = cols
        self.lane_bound = lane_sum_bound(self.cols if self.shared else simd, n, self.plane_sum)
        if self.shared and not dsp.fits_dsp(signed(coef_bits),
                                            unsigned(self.lane_bound.bit_length())):
            raise ValueError(f"a time-shared merge multiplies phi_k by row sums up to "
                             f"{self.lane_bound} in one {dsp.OPERAND_BITS}-bit DSP operand; "
                             f"cols={cols} is too large")
        self.sum_levels = _sum_levels(self.multipliers, 1)
        self.sum_stages = self.sum_levels   # every merge level registered (timing)
        members = {
            "i": In(stream.Signature(data.StructLayout({
                "w": unsigned(m * simd), "x": unsigned(n * simd), "last": unsigned(1)}))),
            "o": Out(stream.Signature(signed(acc_bits))),
        }
        if front is Front.AND:
            members["coef"] = In(data.ArrayLayout(signed(coef_bits), m * n))
        super().__init__(members)

    @property
    def shared(self):
        """True when the merge is time-shared: fewer multipliers than lanes."""
        return self.multipliers < self.terms

    @property
    def merge_steps(self):
        """Cycles the merge takes per row: ``ceil(lanes / multipliers)``."""
        return _merge_steps(self.terms, self.multipliers)

    @property
    def product_stages(self):
        return self._product_stages(self.front)

    @classmethod
    def _product_stages(cls, front):
        return dsp.LATENCY if front is Front.AND else cls.XNOR_PRODUCT_STAGES

    @property
    def latency(self):
        return self.latency_of(m=self.m, n=self.n, simd=self.simd, front=self.front,
                               popcount_stages=self.popcount_stages,
                               multipliers=self.multipliers, plane_sum=self.plane_sum)

    @classmethod
    def latency_of(cls, *, m, n, simd, front, popcount_stages=None, multipliers=None,
                   plane_sum=False):
        """`latency` of the PE these parameters make, without making one (a component
        made and never elaborated draws Amaranth's UnusedElaboratable warning):
        ``popcount_stages + product_stages + sum_stages + 1``, plus `merge_steps` for
        a time-shared merge."""
        if popcount_stages is None:
            popcount_stages = _tree_levels(simd)
        terms = merge_lanes(m, n, plane_sum)
        multipliers = _check_multipliers(terms, front, multipliers)
        steps = _merge_steps(terms, multipliers)
        shared = steps if multipliers < terms else 0
        return (popcount_stages + cls._product_stages(front) + _sum_levels(multipliers, 1)
                + shared + 1)

    def elaborate(self, platform):
        m = Module()
        advance = Signal()
        m.d.comb += advance.eq(~self.o.valid | self.o.ready)
        # The popcount lanes move with `front`: `advance`, held back on a row's last
        # fold while a time-shared merge is still busy with the row before.
        front = Signal()
        m.d.comb += self.i.ready.eq(front)

        simd = self.simd
        w, x = self.i.payload.w, self.i.payload.x
        counts, valid, last = [], self.i.valid, [self.i.payload.last]
        if self.plane_sum:
            # Per weight base, the sum of its elements' N-bit values over the fold.
            for i in range(self.m):
                values = [Mux(w[i * simd + b], Cat(x[j * simd + b] for j in range(self.n)), 0)
                          for b in range(simd)]
                count, lane_valid, lane_last = adder_tree(
                    m, values, self.tree_levels,
                    spread(self.popcount_stages, self.tree_levels), front, valid, last,
                    name=f"ps{i}")
                counts.append(count)
        for i in range(0 if self.plane_sum else self.m):
            for j in range(self.n):
                wi, xj = w[i * simd:(i + 1) * simd], x[j * simd:(j + 1) * simd]
                count, lane_valid, lane_last = count_ones(
                    m, platform, [(wi[b], xj[b]) for b in range(simd)], self.front,
                    self.popcount_stages, front, valid, last, name=f"pc{i}_{j}")
                counts.append(count)
        valid, last = lane_valid, lane_last

        merge = self._shared_merge if self.shared else self._parallel_merge
        total, valid, last = merge(m, platform, counts, valid, last, advance, front)

        acc = Signal(signed(self.acc_bits))
        fresh = Signal(init=1)   # the next fold starts a new row
        with m.If(advance):
            m.d.sync += self.o.valid.eq(valid & last[0])
            with m.If(valid):
                m.d.sync += [acc.eq(Mux(fresh, total, acc + total)), fresh.eq(last[0])]
        m.d.comb += self.o.payload.eq(acc)
        return m

    def _parallel_merge(self, m, platform, counts, valid, last, advance, front):
        """Merge every fold's counts: M*N multipliers (one ``2 * count - SIMD`` for XNOR)
        and an adder tree; returns (fold sum, valid, [last])."""
        m.d.comb += front.eq(advance)
        if self.front is Front.AND:
            # eq. 3.19: merge alpha_i * beta_j (phi_k, fixed point) with each count, in
            # DSP blocks whose own registers take the operands and hold the products.
            products = [registered_product(m, platform, self._lane_coef(k), counts[k], advance,
                                           f"product{k}") for k in range(self.terms)]
        else:
            products = [(counts[0] << 1) - self.simd]
        for s in range(self.product_stages):
            if self.front is Front.XNOR:
                products = [stage(m, products[0], advance, f"product{s}_0")]
            valid = stage(m, valid, advance, f"product{s}_valid")
            last = [stage(m, last[0], advance, f"product{s}_last")]
        return adder_tree(m, products, self.sum_levels, set(range(1, self.sum_stages + 1)),
                          advance, valid, last, name="merge")

    def _lane_coef(self, k):
        """Lane k's phi: phi_k, or with `plane_sum` its base's phi_(k, 0)."""
        return self.coef[k * self.n] if self.plane_sum else self.coef[k]

    def _shared_merge(self, m, platform, counts, valid, last, advance, front):
        """Sum each lane's counts over the row; merge the sums `multipliers` at a time.

        On a row's last fold the M*N sums move to a shift register (padded with
        zeros to a whole number of steps), so multiplier p always takes its position
        p; its phi_k comes from `coef` (static while rows are in flight) through a
        multiplexer on the step, ``merge_steps`` to one (cheaper than a rotating
        copy of the phi_k: a LUT per bit and its flip-flop in every lane). Returns
        (step sum, valid, [last step]) as the parallel merge's adder tree does, for
        the row accumulator.
        """
        last = last[0]
        lanes, width = self.terms, self.multipliers * self.merge_steps
        sum_shape = unsigned(self.lane_bound.bit_length())
        sums = [Signal(sum_shape, name=f"lane_sum{k}") for k in range(lanes)]
        fresh = Signal(init=1)   # the next fold starts a new row
        row_sums = [Mux(fresh, count, total + count) for count, total in zip(counts, sums)]
        with m.If(front & valid):
            m.d.sync += [total.eq(value) for total, value in zip(sums, row_sums)]
            m.d.sync += fresh.eq(last)

        held = [Signal(sum_shape, name=f"held{k}") for k in range(width)]
        step = Signal(range(self.merge_steps))
        busy = Signal()
        final = busy & (step == self.merge_steps - 1)
        start = Signal()
        m.d.comb += start.eq(valid & last & front)
        if self.merge_steps > 1 and not self.spaced_rows:
            m.d.comb += front.eq(advance & ~(valid & last & busy & ~final))
        else:
            m.d.comb += front.eq(advance)
        step_size = self.multipliers
        with m.If(advance):
            with m.If(start):
                padded = row_sums + [0] * (width - lanes)
                m.d.sync += [h.eq(v) for h, v in zip(held, padded)]
                m.d.sync += [busy.eq(1), step.eq(0)]
            with m.Elif(busy):
                m.d.sync += [h.eq(v) for h, v in zip(held, held[step_size:])]
                m.d.sync += [busy.eq(~final), step.eq(step + 1)]
        coef = ([self._lane_coef(k) for k in range(lanes)]
                + [Const(0, signed(self.coef_bits))] * (width - lanes))
        phis = [Array(coef[s * step_size + p] for s in range(self.merge_steps))[step]
                for p in range(step_size)]
        products = [registered_product(m, platform, phis[p], held[p], advance, f"product{p}")
                    for p in range(self.multipliers)]
        valid, last = busy, final
        for s in range(dsp.LATENCY):
            valid = stage(m, valid, advance, f"product{s}_valid")
            last = stage(m, last, advance, f"product{s}_last")
        return adder_tree(m, products, self.sum_levels, set(range(1, self.sum_stages + 1)),
                          advance, valid, [last], name="merge")


def merge_lanes(m, n, plane_sum):
    """Lanes merged: one per weight base with `plane_sum`, else one per phi_k."""
    return m if plane_sum else m * n


def lane_sum_bound(per_lane, n, plane_sum):
    """The largest lane sum over `per_lane` elements (N-bit values with `plane_sum`)."""
    return per_lane * ((1 << n) - 1) if plane_sum else per_lane


def _check_multipliers(terms, front, multipliers):
    """`multipliers` checked against the `terms` lanes (default: all of them)."""
    if multipliers is None:
        return terms
    if front is not Front.AND and multipliers != 1:
        raise ValueError(f"an XNOR PE has no phi_k merge; multipliers must be 1 or None, "
                         f"not {multipliers!r}")
    if not isinstance(multipliers, int) or isinstance(multipliers, bool) \
            or not 1 <= multipliers <= terms:
        raise ValueError(f"multipliers must be an integer in 1..{terms} (one per lane), "
                         f"not {multipliers!r}")
    return multipliers


def _merge_steps(terms, multipliers):
    return math.ceil(terms / multipliers)


def _tree_levels(simd):
    return max(1, math.ceil(math.log2(simd)))


def _sum_levels(m, n):
    """Adder levels merging the M x N products (each registered: `sum_stages`)."""
    return math.ceil(math.log2(m * n)) if m * n > 1 else 0

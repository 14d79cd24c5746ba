"""Diminished-1 arithmetic modulo F = 2^b + 1, b = 2^t (t = 2..6) (thesis ch. 2, Algorithm 1).

A code is b + 1 bits: bit b is the zero indicator, bits b-1..0 hold x - 1 for
x in 1..2^b; zero is exactly 2^b. Every unit takes and returns canonical
codes, the same as `bitfab.hls_gen.golden.dim1.Dim1`, which is their specification.

Each unit is a stream component: ``i`` carries the operands, ``o`` the
result. `stages` pipeline registers (0 up to the unit's `max_stages`) are
spread over the unit's natural cut points; latency is `stages` cycles,
throughput one result per cycle, and the whole pipeline holds while ``o`` is
valid and not ready.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .popcount import spread, stage

__all__ = ["check_dim1_width", "code_shape", "Dim1Adder", "Dim1Subtractor", "Dim1Negator",
           "Dim1ConstShifter", "Dim1Shifter", "Dim1Multiplier", "Dim1FromInt", "Dim1ToInt",
           "Dim1VectorMultiplier", "ADDER_STYLES", "check_adder_style", "dim1_add",
           "dim1_add_carry", "dim1_add_style", "dim1_neg", "dim1_shift_const",
           "dim1_mul_operand", "dim1_mul_reduce", "dim1_mul_select", "dim1_from_int",
           "dim1_to_int", "prefix_levels"]


def check_dim1_width(b):
    if not isinstance(b, int) or isinstance(b, bool):
        raise TypeError(f"diminished-1 width b must be an integer, not {b!r}")
    if b not in (4, 8, 16, 32, 64):
        raise ValueError(f"diminished-1 width b must be 2^t for t = 2..6 (4, 8, 16, 32, 64), "
                         f"not {b}")


def code_shape(b):
    """unsigned(b + 1): the data bits and the zero indicator. Checks b."""
    check_dim1_width(b)
    return unsigned(b + 1)


def prefix_levels(b):
    return (b - 1).bit_length()


class _Cuts:
    """Pipeline registers at a unit's numbered cut points (1..n): values passed to
    `cut` are registered, with `valid`, when that point is in `registered`."""

    def __init__(self, m, advance, valid, registered, name):
        self.m, self.advance, self.valid = m, advance, valid
        self.registered, self.name, self.point = registered, name, 0

    def __call__(self, values):
        self.point += 1
        if self.point not in self.registered:
            return values
        self.valid = stage(self.m, self.valid, self.advance, f"{self.name}_c{self.point}_valid")
        return {key: stage(self.m, value, self.advance, f"{self.name}_c{self.point}_{key}")
                for key, value in values.items()}


def dim1_neg(x, b):
    """eq. (Algorithm 1) negation: complement the data bits; zero stays zero."""
    return Mux(x[b], x, Cat(~x[:b], Const(0, 1)))


def dim1_shift_const(x, b, k):
    """x * 2^k for a constant k: a rotation by k mod b with the wrapped bits complemented,
    negated for k mod 2b >= b. Only wiring and inverters."""
    k %= 2 * b
    negate, k = divmod(k, b)
    low = x[:b]
    rotated = Cat(~low[b - k:], low[:b - k]) if k else low
    result = Mux(x[b], x, Cat(rotated, Const(0, 1)))
    return dim1_neg(result, b) if negate else result


def dim1_add(m, x, y, b, cut, name="add"):
    """Parallel-prefix adder with inverted end-around carry (Zimmermann 1999).

    With generate g = x & y and propagate p = x ^ y on the data bits, a
    Kogge-Stone prefix gives each group (G, P) over bits i..0. The carry-in is
    the complement of the carry-out, G over all bits, so every carry is
    c_i = G_i | (P_i & ~G_all) (no second pass round the loop). When all bits
    propagate, x + y + 1 = 2^b: the sum bits are 0 and the zero flag is P_all.
    A zero operand passes the other through. `cut` (a `_Cuts`, or any callable
    taking and returning a dict of values) is offered the live values after
    each prefix level.
    """
    live = {"x": x, "y": y}
    g, p = Signal(b, name=f"{name}_g"), Signal(b, name=f"{name}_p")
    m.d.comb += [g.eq(x[:b] & y[:b]), p.eq(x[:b] ^ y[:b])]
    big_g, big_p, bit_p = g, p, p
    distance, level = 1, 0
    while distance < b:
        level += 1
        next_g, next_p = Signal(b, name=f"{name}_g{level}"), Signal(b, name=f"{name}_p{level}")
        m.d.comb += [
            next_g.eq(Cat(*[big_g[i] | (big_p[i] & big_g[i - distance]) if i >= distance
                            else big_g[i] for i in range(b)])),
            next_p.eq(Cat(*[big_p[i] & big_p[i - distance] if i >= distance else big_p[i]
                            for i in range(b)])),
        ]
        distance *= 2
        live = cut({**live, "g": next_g, "p": next_p, "bit_p": bit_p})
        big_g, big_p, bit_p = live["g"], live["p"], live["bit_p"]
    p = bit_p
    carry_in = ~big_g[b - 1]
    carries = [carry_in] + [big_g[i] | (big_p[i] & carry_in) for i in range(b - 1)]
    total = Cat(*[p[i] ^ carries[i] for i in range(b)], big_p[b - 1])
    # A named signal, so a chain of adders shares it rather than nesting expressions.
    result = Signal(b + 1, name=f"{name}_z")
    m.d.comb += result.eq(Mux(live["x"][b], live["y"], Mux(live["y"][b], live["x"], total)))
    return result


ADDER_STYLES = ("prefix", "carry")


def check_adder_style(style, what="adder style"):
    if style not in ADDER_STYLES:
        raise ValueError(f"{what} must be one of {', '.join(ADDER_STYLES)}, not {style!r}")


def dim1_add_style(m, x, y, b, cut, style, name="add"):
    """`dim1_add` (``"prefix"``, `cut` offered its levels) or `dim1_add_carry`
    (``"carry"``, no cut points)."""
    if style == "carry":
        return dim1_add_carry(m, x, y, b, name=name)
    return dim1_add(m, x, y, b, cut, name=name)


def dim1_add_carry(m, x, y, b, name="add"):
    """The same sum by carry select: s0 = x + y and s1 = x + y + 1 on two carry chains;
    the inverted end-around carry picks s1 when s0 has no carry out, and s1's carry
    out is then the zero flag (x + y = 2^b - 1, so X + Y = F).

    One LUT level follows the chains. A zero operand's data bits are clear (codes
    are canonical), so s0 is then already the other operand: the select only has
    to prefer s0 when either flag is set. s0's chain computes that select itself,
    one bit above the data: operands (z, 1) there carry out z | c_b.
    """
    either = Signal(name=f"{name}_either_zero")
    s0 = Signal(b + 2, name=f"{name}_s0")
    s1 = Signal(b + 2, name=f"{name}_s1")
    m.d.comb += [
        either.eq(x[b] | y[b]),
        s0.eq(Cat(x[:b], either) + Cat(y[:b], Const(1, 1))),
        # Carry-in 1 as a 1 appended below both operands: one chain, no second adder.
        s1.eq(Cat(1, x[:b]) + Cat(1, y[:b])),
    ]
    take_s0 = s0[b + 1]
    result = Signal(b + 1, name=f"{name}_z")
    m.d.comb += result.eq(Mux(take_s0, Cat(s0[:b], x[b] & y[b]), s1[1:]))
    return result


def _check_stages(stages, max_stages, unit):
    if not isinstance(stages, int) or isinstance(stages, bool):
        raise TypeError(f"{unit} stages must be an integer, not {stages!r}")
    if not 0 <= stages <= max_stages:
        raise ValueError(f"{unit} stages must be in 0..{max_stages}, not {stages}")


class _Dim1Unit(wiring.Component):
    """Stream plumbing shared by the units: `datapath(m, payload, cut)` returns the result."""

    def __init__(self, b, stages, payload_in, payload_out):
        check_dim1_width(b)
        _check_stages(stages, self.max_stages_for(b), type(self).__name__)
        self.b, self.stages = b, stages
        super().__init__({"i": In(stream.Signature(payload_in)),
                          "o": Out(stream.Signature(payload_out))})

    @property
    def max_stages(self):
        return self.max_stages_for(self.b)

    @property
    def latency(self):
        return self.stages

    def elaborate(self, platform):
        m = Module()
        advance = Signal()
        m.d.comb += [advance.eq(~self.o.valid | self.o.ready), self.i.ready.eq(advance)]
        cut = _Cuts(m, advance, self.i.valid,
                    spread(self.stages, self.max_stages), type(self).__name__.lower())
        result = self.datapath(m, self.i.payload, cut)
        # Points a smaller datapath never reached still count: pad with output registers.
        while cut.point < self.max_stages:
            result = cut({"result": result})["result"]
        m.d.comb += [self.o.payload.eq(result), self.o.valid.eq(cut.valid)]
        return m


def _operands(b):
    return data.StructLayout({"x": code_shape(b), "y": code_shape(b)})


class Dim1Adder(_Dim1Unit):
    """x + y mod 2^b + 1 in diminished-1.

    Parameters
    ----------
    b : int
        Data bits, 4, 8, 16, 32 or 64.
    stages : int
        Pipeline registers, 0..ceil(log2 b): ``"prefix"`` puts one after each
        prefix level; ``"carry"`` has no inner cut point and puts them all at the
        output (so either style drops in for the other at the same latency).
    style : str
        ``"prefix"``: the parallel-prefix inverted end-around-carry adder
        (`dim1_add`). ``"carry"``: carry select on the FPGA's carry chains
        (`dim1_add_carry`), faster where a chain beats a LUT prefix tree.

    Members
    -------
    i : In(stream.Signature(StructLayout({"x": unsigned(b + 1), "y": unsigned(b + 1)})))
    o : Out(stream.Signature(unsigned(b + 1)))

    Latency `stages` cycles; one sum per cycle.
    """

    STYLES = ADDER_STYLES

    def __init__(self, b, stages=0, style="prefix"):
        check_adder_style(style)
        self.style = style
        super().__init__(b, stages, _operands(b), code_shape(b))

    @staticmethod
    def max_stages_for(b):
        return prefix_levels(b)

    def datapath(self, m, payload, cut):
        return self._add(m, payload.x, payload.y, cut)

    def _add(self, m, x, y, cut):
        return dim1_add_style(m, x, y, self.b, cut, self.style)


class Dim1Subtractor(Dim1Adder):
    """x - y: the adder with y's data bits complemented (a zero y stays zero).

    Same parameters, members, latency and throughput as `Dim1Adder`.
    """

    def datapath(self, m, payload, cut):
        return self._add(m, payload.x, dim1_neg(payload.y, self.b), cut)


class Dim1Negator(_Dim1Unit):
    """-x: the data bits complemented, zero kept. ``i``/``o`` carry unsigned(b + 1) codes;
    `stages` 0 or 1 (an output register)."""

    def __init__(self, b, stages=0):
        super().__init__(b, stages, code_shape(b), code_shape(b))

    @staticmethod
    def max_stages_for(b):
        return 1

    def datapath(self, m, payload, cut):
        return dim1_neg(payload, self.b)


class Dim1ConstShifter(_Dim1Unit):
    """x * 2^k for a constant integer `k` (negative k divides: 2^-k = 2^(2b - k)).

    Wiring and inverters only. ``i``/``o`` carry unsigned(b + 1) codes; `stages` 0 or 1.
    """

    def __init__(self, b, k, stages=0):
        if not isinstance(k, int) or isinstance(k, bool):
            raise TypeError(f"shift k must be an integer, not {k!r}")
        self.k = k
        super().__init__(b, stages, code_shape(b), code_shape(b))

    @staticmethod
    def max_stages_for(b):
        return 1

    def datapath(self, m, payload, cut):
        return dim1_shift_const(payload, self.b, self.k)


class Dim1Shifter(_Dim1Unit):
    """x * 2^k for a variable k in 0..2b - 1 (2^-j is k = 2b - j): one conditional
    constant shift by 2^s per bit s of k, the last (2^b) a negation.

    Members
    -------
    i : In(stream.Signature(StructLayout({"x": unsigned(b + 1), "k": unsigned(log2(2b))})))
    o : Out(stream.Signature(unsigned(b + 1)))

    `stages` 0..log2(2b), a register after each shift level.
    """

    def __init__(self, b, stages=0):
        check_dim1_width(b)
        layout = data.StructLayout({"x": code_shape(b), "k": unsigned((2 * b - 1).bit_length())})
        super().__init__(b, stages, layout, code_shape(b))

    @staticmethod
    def max_stages_for(b):
        return (2 * b - 1).bit_length()

    def datapath(self, m, payload, cut):
        live = {"x": payload.x, "k": payload.k}
        for s in range(self.max_stages):
            x = live["x"]
            live = cut({"x": Mux(live["k"][s], dim1_shift_const(x, self.b, 1 << s), x),
                        "k": live["k"]})
        return live["x"]


class Dim1Multiplier(_Dim1Unit):
    """x * y mod 2^b + 1 in diminished-1 (Algorithm 1).

    A zero operand gives zero; -1 (code 2^b - 1) negates the other operand.
    Otherwise both operands are below 2^b in normal binary (code + 1), their
    2b-bit product P = Z_h 2^b + Z_l = Z_l - Z_h (mod F), and the code of
    Z_l - Z_h is the inverted end-around-carry sum of Z_l and ~Z_h (no zero
    flags: the -1 of the code cancels the +1 of the complement).

    Members
    -------
    i : In(stream.Signature(StructLayout({"x": unsigned(b + 1), "y": unsigned(b + 1)})))
    o : Out(stream.Signature(unsigned(b + 1)))

    `stages` 0..2 + ceil(log2 b): after the increments, after the product, then
    after each prefix level of the final adder.
    """

    def __init__(self, b, stages=0):
        super().__init__(b, stages, _operands(b), code_shape(b))

    @staticmethod
    def max_stages_for(b):
        return 2 + prefix_levels(b)

    def datapath(self, m, payload, cut):
        b = self.b
        x, y = payload.x, payload.y
        live = cut({"x": x, "y": y, "xn": dim1_mul_operand(x, b), "yn": dim1_mul_operand(y, b)})
        live = cut({"x": live["x"], "y": live["y"], "product": live["xn"] * live["yn"]})
        adder_cut = _ForwardCuts(cut, {"x0": live["x"], "y0": live["y"]})
        general = dim1_mul_reduce(m, live["product"], b, adder_cut)
        return dim1_mul_select(adder_cut.carried["x0"], adder_cut.carried["y0"], general, b)


def dim1_mul_operand(x, b):
    """The normal-binary value of a code that is neither zero nor -1: its data bits + 1."""
    return (x[:b] + 1)[:b]


def dim1_mul_reduce(m, product, b, cut, style="prefix"):
    """The code of a 2b-bit product P mod 2^b + 1: P = Z_h 2^b + Z_l = Z_l - Z_h, whose
    code Z_l - Z_h - 1 is the inverted end-around-carry sum of Z_l and ~Z_h.

    `style` is the adder's (`Dim1Adder`); both operands are codes with the zero
    flag clear, so either style's proof covers the sum. ``"carry"`` has no cut
    points."""
    low = Cat(product[:b], Const(0, 1))
    high = Cat(~product[b:2 * b], Const(0, 1))
    return dim1_add_style(m, low, high, b, cut, style, name="mul_add")


def dim1_mul_select(x, y, general, b):
    """Algorithm 1's special cases: a zero operand gives zero, -1 negates the other."""
    minus_one = (1 << b) - 1
    return Mux(x[b] | y[b], Const(1 << b, b + 1),
               Mux(x == minus_one, dim1_neg(y, b),
                   Mux(y == minus_one, dim1_neg(x, b), general)))


class Dim1VectorMultiplier(_Dim1Unit):
    """`length` products x[j] * y[j] mod 2^b + 1 per beat (Algorithm 1, as
    `Dim1Multiplier`), with a `side` field carried alongside unchanged.

    Members
    -------
    i : In(stream.Signature(StructLayout({"x": ArrayLayout(unsigned(b + 1), length),
                                          "y": ..., "side": unsigned(side_bits)})))
    o : Out(stream.Signature(StructLayout({"z": ArrayLayout(unsigned(b + 1), length),
                                           "side": unsigned(side_bits)})))

    `stages` 0..4: after the increments, after the partial products, after their
    sum, after the reduction. Operands wider than `PART_BITS` are split in halves,
    so each partial product fits a DSP (18 x 18 on ECP5) and is registered before
    the adders that sum them. `adder` is the reduction's adder style
    (`Dim1Adder`): ``"carry"`` is the faster one on FPGAs. Latency `stages`
    cycles; one vector per cycle.
    """

    PART_BITS = 16

    def __init__(self, b, length, side_bits=0, stages=0, adder="prefix"):
        check_adder_style(adder)
        self.adder = adder
        if not isinstance(length, int) or isinstance(length, bool) or length < 1:
            raise ValueError(f"vector length must be a positive integer, not {length!r}")
        if not isinstance(side_bits, int) or isinstance(side_bits, bool) or side_bits < 0:
            raise ValueError(f"side field width must be a non-negative integer, not {side_bits!r}")
        self.length, self.side_bits = length, side_bits
        vector = data.ArrayLayout(code_shape(b), length)
        super().__init__(b, stages,
                         data.StructLayout({"x": vector, "y": vector,
                                            "side": unsigned(side_bits)}),
                         data.StructLayout({"z": vector, "side": unsigned(side_bits)}))

    @staticmethod
    def max_stages_for(b):
        return 4

    def datapath(self, m, payload, cut):
        b, lanes = self.b, range(self.length)
        codes = {"side": payload.side, **{f"x{j}": payload.x[j] for j in lanes},
                 **{f"y{j}": payload.y[j] for j in lanes}}
        live = cut({**codes, **{f"xn{j}": dim1_mul_operand(payload.x[j], b) for j in lanes},
                    **{f"yn{j}": dim1_mul_operand(payload.y[j], b) for j in lanes}})
        half = b // 2 if b > self.PART_BITS else b

        def split(value):
            return [(value[:half], 0), (value[half:], half)] if half < b else [(value, 0)]
        parts, shifts = {}, {}      # partial product name -> value, -> (lane, shift)
        for j in lanes:
            for xp, xs in split(live[f"xn{j}"]):
                for yp, ys in split(live[f"yn{j}"]):
                    parts[f"p{j}_{xs}_{ys}"] = xp * yp
                    shifts[f"p{j}_{xs}_{ys}"] = (j, xs + ys)
        live = cut({**{k: live[k] for k in codes}, **parts})
        sums = {}
        for j in lanes:
            terms = [live[k] << shift for k, (lane, shift) in shifts.items() if lane == j]
            sums[f"p{j}"] = sum(terms[1:], terms[0])[:2 * b]
        live = cut({**{k: live[k] for k in codes}, **sums})
        products = [dim1_mul_select(live[f"x{j}"], live[f"y{j}"],
                                    dim1_mul_reduce(m, live[f"p{j}"], b, lambda v: v,
                                                    self.adder), b)
                    for j in lanes]
        return Cat(*products, live["side"])


class _ForwardCuts:
    """Wraps a `_Cuts` so extra values ride through an inner datapath's registers."""

    def __init__(self, cut, carried):
        self.cut, self.carried = cut, carried

    def __call__(self, values):
        out = self.cut({**values, **{f"fwd_{k}": v for k, v in self.carried.items()}})
        self.carried = {k: out[f"fwd_{k}"] for k in self.carried}
        return {k: out[k] for k in values}


class Dim1FromInt(_Dim1Unit):
    """A `width`-bit integer (two's complement when `signed`) to its diminished-1 code.

    Negative x (abs(x) <= 2^(b-1)) is 2^b + x, the b-bit two's complement of x itself;
    positive x is x - 1; zero is 2^b. `width` <= b (signed) or <= b (unsigned).
    ``i`` carries signed/unsigned(width), ``o`` unsigned(b + 1). `stages` 0 or 1.
    """

    def __init__(self, b, width, signed_input=True, stages=0):
        check_dim1_width(b)
        if not isinstance(width, int) or isinstance(width, bool) or not 1 <= width <= b:
            raise ValueError(f"integer width must be in 1..{b} for b={b}, not {width!r}")
        self.width, self.signed_input = width, signed_input
        shape = signed(width) if signed_input else unsigned(width)
        super().__init__(b, stages, shape, code_shape(b))

    @staticmethod
    def max_stages_for(b):
        return 1

    def datapath(self, m, payload, cut):
        return dim1_from_int(payload.as_signed() if self.signed_input else payload.as_unsigned(),
                             self.b)


class Dim1ToInt(_Dim1Unit):
    """A diminished-1 code to the integer it names: the residue 0..2^b (unsigned), or
    (`signed_output`) its representative in -2^(b-1)..2^(b-1) (the residue 2^(b-1) + 1
    is -2^(b-1)), the range of eq. 2.11. ``o`` is (un)signed(b + 1). `stages` 0 or 1.
    """

    def __init__(self, b, signed_output=True, stages=0):
        check_dim1_width(b)
        self.signed_output = signed_output
        shape = signed(b + 1) if signed_output else unsigned(b + 1)
        super().__init__(b, stages, code_shape(b), shape)

    @staticmethod
    def max_stages_for(b):
        return 1

    def datapath(self, m, payload, cut):
        return dim1_to_int(payload, self.b, self.signed_output)


def dim1_from_int(value, b):
    """The code of an integer value (abs(value) <= 2^(b-1) when negative)."""
    wide = value + Const(0, signed(b + 1))          # sign- or zero-extended to b + 1 bits
    data_bits = Mux(wide < 0, wide[:b], (wide - 1)[:b])
    return Mux(wide == 0, Const(1 << b, b + 1), Cat(data_bits, Const(0, 1)))


def dim1_to_int(code, b, signed_output=True):
    """The residue a code names, 0..2^b, or (`signed_output`) its representative in
    -2^(b-1)..2^(b-1)."""
    residue = Mux(code[b], 0, code[:b] + 1)
    if not signed_output:
        return residue
    # Codes 2^(b-1)..2^b - 1 name residues above F/2: the value is the code as b-bit
    # two's complement.
    return Mux(code[b - 1] & ~code[b], code[:b].as_signed(), residue)

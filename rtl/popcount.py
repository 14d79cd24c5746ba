"""Population count of a bit vector, with an optional AND or XNOR front."""

import enum
import math

from amaranth.hdl import Cat, Const, Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .carry import Chain, has_carry_chains, lut_init

__all__ = ["Front", "PopcountTree", "adder_tree", "count_ones", "spread", "stage"]


class Front(enum.Enum):
    """What the tree counts: the input bits, a AND b (0/1 bases, thesis eq. 3.20), or
    a XNOR b (+-1 values, agreements)."""

    NONE = "none"
    AND = "and"
    XNOR = "xnor"


class PopcountTree(wiring.Component):
    """Pipelined counter of the ones of a `width`-bit vector: on ECP5 a tree of
    carry-chain additions with the front inside the chain cells (`count_ones`).

    Parameters
    ----------
    width : int
        Number of input bits, 1 or more.
    front : Front
        ``NONE`` counts ``i.payload`` itself; ``AND`` and ``XNOR`` count
        ``a & b`` or ``~(a ^ b)`` of the payload's two members.
    stages : int
        Pipeline registers, 0..levels where levels = max(1, ceil(log2(width)));
        they are spread evenly over the tree's levels.

    Members
    -------
    i : In(stream.Signature(...))
        ``payload`` is ``width`` bits (``NONE``) or a struct of ``a`` and ``b``.
    o : Out(stream.Signature(unsigned(count_bits)))
        The count, ``count_bits = (width).bit_length()``.

    Latency is `stages` cycles; throughput one vector per cycle. The whole
    pipeline stalls while ``o.valid`` is high and ``o.ready`` low.

    Raises
    ------
    TypeError
        If `width` or `stages` is not an integer or `front` not a `Front`.
    ValueError
        If `width` < 1 or `stages` is out of range.
    """

    def __init__(self, width, front=Front.NONE, stages=0):
        if not isinstance(width, int) or isinstance(width, bool):
            raise TypeError(f"popcount width must be an integer, not {width!r}")
        if width < 1:
            raise ValueError(f"popcount width must be a positive integer, not {width}")
        if not isinstance(front, Front):
            raise TypeError(f"front must be a Front, not {front!r}")
        levels = max(1, math.ceil(math.log2(width)))
        if not isinstance(stages, int) or isinstance(stages, bool):
            raise TypeError(f"stages must be an integer, not {stages!r}")
        if not 0 <= stages <= levels:
            raise ValueError(f"stages must be in 0..{levels} for width {width}, not {stages}")
        self.width = width
        self.front = front
        self.stages = stages
        self.levels = levels
        self.count_bits = width.bit_length()
        if front is Front.NONE:
            payload = unsigned(width)
        else:
            payload = data.StructLayout({"a": unsigned(width), "b": unsigned(width)})
        super().__init__({
            "i": In(stream.Signature(payload)),
            "o": Out(stream.Signature(unsigned(self.count_bits))),
        })

    @property
    def latency(self):
        return self.stages

    def elaborate(self, platform):
        m = Module()
        advance = Signal()
        m.d.comb += advance.eq(~self.o.valid | self.o.ready)
        m.d.comb += self.i.ready.eq(advance)

        if self.front is Front.NONE:
            pairs = [(self.i.payload[k], Const(0, 1)) for k in range(self.width)]
        else:
            pairs = [(self.i.payload.a[k], self.i.payload.b[k]) for k in range(self.width)]
        count, valid, _ = count_ones(m, platform, pairs, self.front, self.stages, advance,
                                     self.i.valid)
        m.d.comb += [self.o.payload.eq(count), self.o.valid.eq(valid)]
        return m


def spread(stages, levels):
    """The levels (1..levels) after which `stages` pipeline registers sit, evenly spread."""
    return {round((s + 1) * levels / stages) for s in range(stages)} if stages else set()


def stage(m, value, advance, name):
    """A pipeline register holding `value`, loaded while `advance` is high."""
    reg = Signal(value.shape(), name=name)
    with m.If(advance):
        m.d.sync += reg.eq(value)
    return reg


def stage_bits(m, bits, advance, name):
    """One pipeline register (`stage`) for several 1-bit values; returns its bits. (A
    register a bit is the same hardware, but a statement per bit in the Verilog that
    the simulators compile.)"""
    if not bits:
        return []
    reg = stage(m, Cat(*bits), advance, name)
    return [reg[j] for j in range(len(bits))]


def adder_tree(m, terms, levels, registered, advance, valid, tags=(), name="tree"):
    """Sum `terms` pairwise over `levels` levels, with a register after each level in
    `registered`; `valid` and the `tags` travel alongside. Each register grows by the
    one bit its sum needs, so a level-L popcount holds exactly 0..2^L.

    Returns (sum, valid, tags) as seen after the last level.
    """
    terms, tags = list(terms), list(tags)
    for level in range(1, levels + 1):
        # Sum neighbours; an odd one out passes through to the next level.
        terms = [terms[k] + terms[k + 1] if k + 1 < len(terms) else terms[k]
                 for k in range(0, len(terms), 2)]
        if level in registered:
            terms = [stage(m, t, advance, f"{name}_l{level}_{k}") for k, t in enumerate(terms)]
            valid = stage(m, valid, advance, f"{name}_l{level}_valid")
            tags = [stage(m, t, advance, f"{name}_l{level}_tag{k}") for k, t in enumerate(tags)]
    return terms[0], valid, tags


# Per front: the bit a chain cell computes from an input pair (x, w), whether that
# bit is the complement of the counted one, and a constant pair that counts 0.
# XNOR counts are built from XOR bits: a full adder of complements yields the
# complements of its sum and carry, so the tree runs complemented up to the first
# adder, whose LUTs take the complement for free. Each cell function is 0 at (0, 0),
# which the full-adder cell needs (see `_leaf`).
_CELL = {
    Front.NONE: (lambda x, w: x, False, (0, 0)),
    Front.AND: (lambda x, w: x & w, False, (0, 0)),
    Front.XNOR: (lambda x, w: x ^ w, True, (1, 0)),
}

# Halves per physical chain: nextpnr times a chain end to end (the carry runs through
# the halves that restart it), so long levels are split into several chains.
CHAIN_HALVES = 24


def _leaves(width):
    """Full-adder leaves of the carry-chain tree: L leaves and L - 1 adder nodes take
    3L + (L - 1) input pairs."""
    return max(1, -(-(width + 1) // 4))


def tree_depth(width):
    """Levels of `count_ones`'s carry-chain tree for `width` inputs (<= ceil(log2 width))."""
    return 1 + math.ceil(math.log2(_leaves(width)))


def count_ones(m, platform, pairs, front, stages, advance, valid, tags=(), name="pc"):
    """Count the ones of `front`(x, w) over `pairs` [(x, w), ...] of 1-bit values, with
    `stages` pipeline registers; `valid` and `tags` travel alongside.

    On ECP5 (and in simulation, where the same cells are modelled) the count is a
    tree of carry-chain additions, every LUT of which sits on a chain: leaves are
    full adders of three input pairs (the front computed inside the adding cell,
    two halves per leaf), and each adder node of two k-bit sums takes one more
    input pair as its carry-in, through the half that also ends the previous
    addition (k + 1 halves per node). About 1.5 LUT4 per input bit, the front
    included. Elsewhere (iCE40) it is `adder_tree` on the front's bits.

    Registers sit after the levels `spread(stages, depth)` picks, any stages past the
    tree's depth at its output. Returns (count, valid, tags) with count
    `len(pairs).bit_length()` bits wide.
    """
    width = len(pairs)
    cell, inverted, pad = _CELL[front]
    count_bits = width.bit_length()
    if not (platform is None or has_carry_chains(platform)):
        bits = [cell(x, w) ^ int(inverted) for x, w in pairs]
        levels = max(1, math.ceil(math.log2(width)))
        count, valid, tags = adder_tree(m, bits, levels, spread(stages, levels), advance,
                                        valid, tags, name)
        return count[:count_bits], valid, tags
    depth = tree_depth(width)
    registered = spread(min(stages, depth), depth)
    leaves = _leaves(width)
    pairs = list(pairs) + [tuple(Const(v, 1) for v in pad)] * (4 * leaves - 1 - width)
    spare = pairs[3 * leaves:]            # one carry-in for each adder node

    def cut(level, numbers, spare, valid, tags):
        if level not in registered:
            return numbers, spare, valid, tags
        tag = f"{name}_l{level}"
        numbers = [(stage_bits(m, bits, advance, f"{tag}_n{k}"), inv)
                   for k, (bits, inv) in enumerate(numbers)]
        flat = stage_bits(m, [v for pair in spare for v in pair], advance, f"{tag}_cin")
        spare = [(flat[2 * k], flat[2 * k + 1]) for k in range(len(spare))]
        valid = stage(m, valid, advance, f"{tag}_valid")
        tags = [stage(m, t, advance, f"{tag}_tag{k}") for k, t in enumerate(tags)]
        return numbers, spare, valid, tags

    # Level 1: full adders of (carry-in, x1, x2) over the pairs, in the cells' domain.
    nodes = [_leaf(cell, pairs[3 * k], pairs[3 * k + 1], pairs[3 * k + 2]) for k in range(leaves)]
    numbers = [(bits, inverted) for bits in _emit(m, platform, nodes, f"{name}_l1")]
    level = 1
    numbers, spare, valid, tags = cut(level, numbers, spare, valid, tags)
    while len(numbers) > 1:
        level += 1
        nodes, passed = [], numbers[len(numbers) // 2 * 2:]
        for k in range(0, len(numbers) - 1, 2):
            x, w = spare.pop(0)
            nodes.append(_node(numbers[k], numbers[k + 1],
                               (x, w, lambda a, b: cell(a, b) ^ inverted)))
        numbers = [(bits, False) for bits in _emit(m, platform, nodes, f"{name}_l{level}")]
        numbers, spare, valid, tags = cut(level, numbers + passed, spare, valid, tags)
    assert not spare and level == depth
    bits, inv = numbers[0]
    count = Cat(*bits) ^ Const(-int(inv), len(bits))
    for k in range(stages - depth):
        count = stage(m, count, advance, f"{name}_out{k}")
        valid = stage(m, valid, advance, f"{name}_out{k}_valid")
        tags = [stage(m, t, advance, f"{name}_out{k}_tag{j}") for j, t in enumerate(tags)]
    result = Signal(count_bits, name=f"{name}_count")
    m.d.comb += result.eq(count)
    return result, valid, tags


def _leaf(cell, carry_in, first, second):
    """A full adder of three pairs' cell bits: the carry-in's starts the carry, one half
    adds the other two. Its LUT, cell(A, B) ^ cell(C, D), equals cell(A, B) (the
    generate the carry logic reads) whenever C = D = 0, because cell(0, 0) = 0."""
    init = lut_init(lambda a, b, c, d: cell(a, b) ^ cell(c, d))
    return carry_in + (cell,), [(init, (*first, *second))]


def _node(a, b, carry_in):
    """Two sums (bits, complemented) added with a carry-in (x, w, generate function):
    one half per bit, each LUT the complement-corrected a_i ^ b_i on A, B (D tied 1),
    its generate quarter (C = D = 0) a_i."""
    (a_bits, a_inv), (b_bits, b_inv) = a, b
    init = lut_init(lambda p, q, c, d: ((p ^ a_inv) ^ (q ^ b_inv)) if d else (p ^ a_inv))
    cells = []
    for i in range(max(len(a_bits), len(b_bits))):
        # A missing bit is a constant whose value, corrected, is 0.
        ai = a_bits[i] if i < len(a_bits) else Const(int(a_inv), 1)
        bi = b_bits[i] if i < len(b_bits) else Const(int(b_inv), 1)
        cells.append((init, (ai, bi, Const(0, 1), Const(1, 1))))
    return carry_in, cells


def _emit(m, platform, nodes, name):
    """Chains for one level's nodes [((x, w, generate), cells), ...]; returns each node's
    sum bits: its cells' S, then the S of the half after them (its carry out).

    Before each node a half with C tied 1 (so its LUT is 0: S = CIN, COUT = the
    generate) ends the previous node's addition and starts this node's carry with
    generate(x, w); a last such half ends the chain."""
    low, high = Const(0, 1), Const(1, 1)
    chains, placed = [], []
    for (x, w, generate), cells in nodes:
        if not chains or len(chains[-1]) + len(cells) + 2 > CHAIN_HALVES:
            if chains:
                chains[-1].add(0, low, low, high, low)
            chains.append(Chain(f"{name}_c{len(chains)}"))
        chain = chains[-1]
        chain.add(lut_init(lambda a, b, c, d: 0 if c else generate(a, b)), x, w, high, low)
        first = len(chain)
        for init, ins in cells:
            chain.add(init, *ins)
        placed.append((chain, first, len(cells)))
    chains[-1].add(0, low, low, high, low)
    for chain in chains:
        chain.emit(m, platform)
    return [chain.sums[first:first + count + 1] for chain, first, count in placed]

"""Population count of a bit vector, with an optional AND or XNOR front."""

import enum
import math

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Front", "PopcountTree", "adder_tree", "spread", "stage"]


class Front(enum.Enum):
    """What the tree counts: the input bits, a AND b (0/1 bases, thesis eq. 3.20), or
    a XNOR b (+-1 values, agreements)."""

    NONE = "none"
    AND = "and"
    XNOR = "xnor"


class PopcountTree(wiring.Component):
    """Pipelined adder tree counting the ones of a `width`-bit vector.

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
            bits = self.i.payload
        elif self.front is Front.AND:
            bits = self.i.payload.a & self.i.payload.b
        else:
            bits = ~(self.i.payload.a ^ self.i.payload.b)
        count, valid, _ = adder_tree(m, [bits[k] for k in range(self.width)], self.levels,
                                     spread(self.stages, self.levels), advance, self.i.valid)
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

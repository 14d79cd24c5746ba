"""Population count of a bit vector, with an optional AND or XNOR front."""

import enum
import math

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Front", "PopcountTree"]


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

    def _registered_levels(self):
        """Tree levels (1..levels) after which a pipeline register sits."""
        return {round((s + 1) * self.levels / self.stages) for s in range(self.stages)} \
            if self.stages else set()

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
        terms = [bits[k] for k in range(self.width)]
        valid = self.i.valid
        registered = self._registered_levels()
        for level in range(1, self.levels + 1):
            # Sum neighbours; an odd one out passes through to the next level.
            terms = [terms[k] + terms[k + 1] if k + 1 < len(terms) else terms[k]
                     for k in range(0, len(terms), 2)]
            if level in registered:
                staged = []
                for k, term in enumerate(terms):
                    # A level-L partial sum counts at most min(2^L, width) bits.
                    reg = Signal(range(min(2 ** level, self.width) + 1), name=f"l{level}_{k}")
                    with m.If(advance):
                        m.d.sync += reg.eq(term)
                    staged.append(reg)
                terms = staged
                valid_reg = Signal(name=f"l{level}_valid")
                with m.If(advance):
                    m.d.sync += valid_reg.eq(valid)
                valid = valid_reg
        m.d.comb += [self.o.payload.eq(terms[0]), self.o.valid.eq(valid)]
        return m

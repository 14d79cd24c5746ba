"""A join that adds streams of fixed-point lanes (FINN's AddStreams, with the golden
model's alignment shifts)."""

from dataclasses import dataclass

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["AddConfig", "AddStreams"]


@dataclass(frozen=True)
class AddConfig:
    """The join's inputs and output: `lanes` signed values a beat on every stream.

    Parameters
    ----------
    in_bits : tuple of int
        Signed width of each input's values (two or more inputs).
    shifts : tuple of int
        Right shift of each input (the floor), aligning its fixed point with the sum's
        (`bitfab.hls_gen.golden.ir.Add.shifts`).
    out_bits : int
        Signed width of the sum; the golden model's worst case must fit it.
    lanes : int
        Values per beat (the producers' PE).
    """

    in_bits: tuple
    shifts: tuple
    out_bits: int
    lanes: int = 1

    def __post_init__(self):
        for name in ("in_bits", "shifts"):
            value = getattr(self, name)
            if not isinstance(value, (tuple, list)):
                raise ValueError(f"add {name} must be a tuple, one per input, not {value!r}")
            object.__setattr__(self, name, tuple(value))
        if len(self.in_bits) < 2:
            raise ValueError(f"an add joins at least 2 inputs, not {len(self.in_bits)}")
        if len(self.shifts) != len(self.in_bits):
            raise ValueError(f"add shifts {self.shifts} must give one shift per input "
                             f"({len(self.in_bits)})")
        for name, values, low in (("in_bits", self.in_bits, 1), ("shifts", self.shifts, 0)):
            if not all(isinstance(v, int) and not isinstance(v, bool) and v >= low
                       for v in values):
                raise ValueError(f"add {name} must be integers of at least {low}, not "
                                 f"{values}")
        for name in ("out_bits", "lanes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"add {name} must be a positive integer, not {value!r}")

    def in_layout(self, k):
        return data.ArrayLayout(signed(self.in_bits[k]), self.lanes)

    @property
    def out_layout(self):
        return data.ArrayLayout(signed(self.out_bits), self.lanes)


class AddStreams(wiring.Component):
    """``o[l] = sum_k (i<k>[l] >> shifts[k])``, lane by lane, one beat of every input per
    output beat. The sum is cut to ``out_bits`` (the golden model's `Add` checks that
    its worst case fits; the freezer derives it).

    Members
    -------
    i<k> : In(stream.Signature(config.in_layout(k))), k = 0 .. inputs - 1
    o : Out(stream.Signature(config.out_layout))

    Latency 1 cycle (a registered output); throughput 1 beat per cycle. The inputs
    are taken together, when every one is valid and the output register is free or
    being emptied.
    """

    def __init__(self, config):
        if not isinstance(config, AddConfig):
            raise TypeError(f"config must be an AddConfig, not {config!r}")
        self.config = config
        members = {f"i{k}": In(stream.Signature(config.in_layout(k)))
                   for k in range(len(config.in_bits))}
        members["o"] = Out(stream.Signature(config.out_layout))
        super().__init__(members)

    def elaborate(self, platform):
        cfg = self.config
        m = Module()
        inputs = [getattr(self, f"i{k}") for k in range(len(cfg.in_bits))]
        free = ~self.o.valid | self.o.ready
        ready = Signal()
        m.d.comb += ready.eq(free & _all(port.valid for port in inputs))
        for port in inputs:
            m.d.comb += port.ready.eq(ready)
        with m.If(ready):
            m.d.sync += self.o.valid.eq(1)
            for lane in range(cfg.lanes):
                total = sum(port.payload[lane] >> shift
                            for port, shift in zip(inputs, cfg.shifts))
                m.d.sync += self.o.payload[lane].eq(total)
        with m.Elif(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        return m


def _all(signals):
    result = 1
    for signal in signals:
        result = result & signal
    return result

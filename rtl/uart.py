"""8N1 UART receiver and transmitter as byte streams."""

from amaranth.hdl import Cat, Module, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["UARTReceiver", "UARTTransmitter"]


def _check_divisor(divisor):
    if not isinstance(divisor, int) or divisor < 4:
        raise ValueError(f"UART divisor (clock cycles per bit) must be an integer >= 4, "
                         f"not {divisor!r}")


class UARTReceiver(wiring.Component):
    """Samples ``rx`` mid-bit, `divisor` clock cycles per bit; a byte whose stop bit
    is 0 is dropped and flagged on ``framing_error``, a byte that replaces one not yet
    taken is flagged on ``overrun``.

    Members
    -------
    rx : In(1)
        The serial line (idle high); synchronised here with two flip-flops.
    o : Out(stream.Signature(unsigned(8)))
        Received bytes. A byte not taken before the next one completes is lost.
    framing_error : Out(1)
        High for one cycle when a byte is dropped for a stop bit of 0 (a wrong baud
        or a corrupted line).
    overrun : Out(1)
        High for one cycle when a byte completes while ``o`` still holds the one
        before, which is lost (the sender did not wait).
    """

    rx: In(1, init=1)
    o: Out(stream.Signature(unsigned(8)))
    framing_error: Out(1)
    overrun: Out(1)

    def __init__(self, divisor):
        _check_divisor(divisor)
        self.divisor = divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        line = Signal(2, init=0b11)
        m.d.sync += line.eq(Cat(self.rx, line[0]))
        rx = line[1]
        timer = Signal(range(self.divisor * 3 // 2 + 1))
        bits = Signal(range(10))
        shift = Signal(9)
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        m.d.sync += [self.framing_error.eq(0), self.overrun.eq(0)]
        with m.FSM():
            with m.State("idle"):
                with m.If(~rx):
                    # First sample in the middle of data bit 0.
                    m.d.sync += [timer.eq(self.divisor * 3 // 2 - 1), bits.eq(0)]
                    m.next = "data"
            with m.State("data"):
                with m.If(timer == 0):
                    m.d.sync += [shift.eq(Cat(shift[1:], rx)), bits.eq(bits + 1),
                                 timer.eq(self.divisor - 1)]
                    with m.If(bits == 8):
                        # The middle of the stop bit: decide now, so the next start
                        # bit, half a bit away, is seen in time.
                        with m.If(rx):
                            m.d.sync += [self.o.payload.eq(shift[1:]), self.o.valid.eq(1),
                                         self.overrun.eq(self.o.valid & ~self.o.ready)]
                            m.next = "idle"
                        with m.Else():
                            m.d.sync += self.framing_error.eq(1)
                            m.next = "wait"
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
            with m.State("wait"):
                with m.If(rx):
                    m.next = "idle"
        return m


class UARTTransmitter(wiring.Component):
    """Sends each byte of ``i`` as 8N1, `divisor` clock cycles per bit.

    Members
    -------
    i : In(stream.Signature(unsigned(8)))
    tx : Out(1)
    """

    i: In(stream.Signature(unsigned(8)))
    tx: Out(1, init=1)

    def __init__(self, divisor):
        _check_divisor(divisor)
        self.divisor = divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        timer = Signal(range(self.divisor))
        frame = Signal(10, init=0x3FF)
        left = Signal(range(11))
        m.d.comb += [self.i.ready.eq(left == 0), self.tx.eq(frame[0])]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [frame.eq(Cat(0, self.i.payload, 1)), left.eq(10),
                         timer.eq(self.divisor - 1)]
        with m.Elif(left != 0):
            with m.If(timer == 0):
                m.d.sync += [frame.eq(Cat(frame[1:], 1)), left.eq(left - 1),
                             timer.eq(self.divisor - 1)]
            with m.Else():
                m.d.sync += timer.eq(timer - 1)
        return m

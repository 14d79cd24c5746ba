"""A serial shell around a `Network`: the bitstream's only I/O is a UART.

Bytes from the host, little-endian: ``'L'`` + 4 bytes writes one load word,
``'R'`` restarts loading, ``'I'`` + `in_bytes` bytes is one input beat; any
other command byte is ignored. Every output beat goes back as `out_bytes`
bytes. (The host driver builds its framed protocol on top of this.)
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .network import Network
from .uart import UARTReceiver, UARTTransmitter

__all__ = ["SerialShell", "LOAD", "RESTART", "INPUT"]

LOAD, RESTART, INPUT = ord("L"), ord("R"), ord("I")


class SerialShell(wiring.Component):
    """`Network` of `layers` behind a UART at ``clock / divisor`` baud.

    Members
    -------
    rx : In(1)
    tx : Out(1)
    loaded : Out(1)
        All weights are loaded (an LED on a board).
    """

    rx: In(1, init=1)
    tx: Out(1)
    loaded: Out(1)

    def __init__(self, layers, divisor):
        self.network = Network(layers)
        self.divisor = divisor
        self.in_bytes = -(-self.network.layers[0].in_layout.size // 8)
        self.out_bytes = -(-self.network.layers[-1].out_layout.size // 8)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        net = m.submodules.network = self.network
        rx = m.submodules.rx = UARTReceiver(self.divisor)
        tx = m.submodules.tx = UARTTransmitter(self.divisor)
        m.d.comb += [rx.rx.eq(self.rx), self.tx.eq(tx.tx), self.loaded.eq(net.loaded)]

        # Host -> network: a command byte, then the bytes of one word or beat.
        width = max(4, self.in_bytes) * 8
        data = Signal(width)
        left = Signal(range(max(4, self.in_bytes) + 1))
        command = Signal(8)
        m.d.comb += [net.load.payload.eq(data[width - 32:]),
                     net.i.payload.eq(data[width - self.in_bytes * 8:])]
        with m.FSM():
            with m.State("command"):
                m.d.comb += rx.o.ready.eq(1)
                with m.If(rx.o.valid):
                    m.d.sync += command.eq(rx.o.payload)
                    with m.If(rx.o.payload == LOAD):
                        m.d.sync += left.eq(4)
                        m.next = "data"
                    with m.If(rx.o.payload == INPUT):
                        m.d.sync += left.eq(self.in_bytes)
                        m.next = "data"
                    with m.If(rx.o.payload == RESTART):
                        m.d.comb += net.load_restart.eq(1)
            with m.State("data"):
                m.d.comb += rx.o.ready.eq(1)
                with m.If(rx.o.valid):
                    # Bytes arrive low first and shift down from the top.
                    m.d.sync += [data.eq((data >> 8) | (rx.o.payload << (width - 8))),
                                 left.eq(left - 1)]
                    with m.If(left == 1):
                        m.next = "deliver"
            with m.State("deliver"):
                with m.If(command == LOAD):
                    m.d.comb += net.load.valid.eq(1)
                    with m.If(net.load.ready):
                        m.next = "command"
                with m.Else():
                    m.d.comb += net.i.valid.eq(1)
                    with m.If(net.i.ready):
                        m.next = "command"

        # Network -> host: each output beat as out_bytes bytes, low first.
        out = Signal(self.out_bytes * 8)
        sending = Signal(range(self.out_bytes + 1))
        m.d.comb += [net.o.ready.eq(sending == 0), tx.i.payload.eq(out[:8]),
                     tx.i.valid.eq(sending != 0)]
        with m.If(net.o.valid & net.o.ready):
            m.d.sync += [out.eq(net.o.payload), sending.eq(self.out_bytes)]
        with m.Elif(tx.i.valid & tx.i.ready):
            m.d.sync += [out.eq(out >> 8), sending.eq(sending - 1)]
        return m

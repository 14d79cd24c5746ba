"""A serial shell around a `Network`: the bitstream's only I/O is a UART.

Bytes from the host, little-endian: ``'L'`` + `load_bytes` bytes (4 for a
`Network`) writes one load word,
``'R'`` restarts loading, ``'I'`` + `in_bytes` bytes is one input beat; any
other command byte is ignored. Every output beat goes back as `out_bytes`
bytes. (The host driver builds its framed protocol on top of this.)
"""

from amaranth.hdl import Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .network import Network
from .uart import UARTReceiver, UARTTransmitter

__all__ = ["SerialShell", "LOAD", "RESTART", "INPUT", "BAUD"]

LOAD, RESTART, INPUT = ord("L"), ord("R"), ord("I")
# The line rate on a board (8N1): the build sets the divisor from it, the host opens
# the port at it.
BAUD = 115200


class SerialShell(wiring.Component):
    """A core behind a UART at ``clock / divisor`` baud: a `Network` of `layers` (a list of
    `MVAUConfig`), or any component with the same members (``i``, ``o``, ``load``,
    ``load_restart``, ``loaded``), such as a convolution engine.

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
        self.network = layers if isinstance(layers, wiring.Component) else Network(layers)
        members = self.network.signature.members
        for name in ("i", "o", "load", "load_restart", "loaded"):
            if name not in members:
                raise TypeError(f"the shell's core has no {name!r} member")
        self.divisor = divisor
        self.in_bytes, self.out_bytes, self.load_bytes = (
            -(-len(Value.cast(port.payload)) // 8)
            for port in (self.network.i, self.network.o, self.network.load))
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        net = m.submodules.network = self.network
        rx = m.submodules.rx = UARTReceiver(self.divisor)
        tx = m.submodules.tx = UARTTransmitter(self.divisor)
        m.d.comb += [rx.rx.eq(self.rx), self.tx.eq(tx.tx), self.loaded.eq(net.loaded)]

        # Host -> network: a command byte, then the bytes of one word or beat.
        most = max(self.load_bytes, self.in_bytes)
        width = most * 8
        data = Signal(width)
        left = Signal(range(most + 1))
        command = Signal(8)
        m.d.comb += [net.load.payload.eq(data[width - self.load_bytes * 8:]),
                     net.i.payload.eq(data[width - self.in_bytes * 8:])]
        with m.FSM():
            with m.State("command"):
                m.d.comb += rx.o.ready.eq(1)
                with m.If(rx.o.valid):
                    m.d.sync += command.eq(rx.o.payload)
                    with m.If(rx.o.payload == LOAD):
                        m.d.sync += left.eq(self.load_bytes)
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

"""A serial shell around a `Network`: the bitstream's only I/O is a UART.

Bytes from the host, little-endian: ``'L'`` + `load_bytes` bytes (4 for a
`Network`) writes one load word,
``'R'`` restarts loading, ``'I'`` + `in_bytes` bytes is one input beat, ``'C'``
asks for the status; any other command byte is ignored. Every output beat goes
back as `out_bytes` bytes, the status as `STATUS_BYTES` bytes (`STATUS`). (The
host driver builds its protocol on top of this.)

The status lets the host prove that weights, inputs and outputs crossed the
line as they were sent, since it has neither flow control nor parity. Since
the last ``'R'``: the CRC-16/CCITT-FALSE (polynomial 0x1021, initial value
0xFFFF, the one Python's ``binascii.crc_hqx(data, 0xFFFF)`` computes) of every
load frame's data bytes as received, the load words the core took, whether it
is loaded. Since the last ``'R'`` or status: the bytes the receiver lost to a
bad stop bit or to an overrun, the CRC of the input frames' data bytes as
received, and the CRC of the output bytes sent.
"""

from amaranth.hdl import Cat, Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .network import Network
from .uart import UARTReceiver, UARTTransmitter

__all__ = ["SerialShell", "LOAD", "RESTART", "INPUT", "CHECK", "BAUD", "STATUS",
           "STATUS_BYTES", "WINDOW", "CRC_POLY", "CRC_INIT"]

LOAD, RESTART, INPUT, CHECK = ord("L"), ord("R"), ord("I"), ord("C")
# The status's fields, low byte first: (name, bytes). Counts saturate. The fields from
# framing_errors on restart after each status (`WINDOW`).
STATUS = (("crc", 2), ("words", 3), ("loaded", 1), ("framing_errors", 1), ("overruns", 1),
          ("in_crc", 2), ("out_crc", 2))
WINDOW = ("framing_errors", "overruns", "in_crc", "out_crc")
STATUS_BYTES = sum(size for _, size in STATUS)
CRC_POLY, CRC_INIT = 0x1021, 0xFFFF
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

        # The status: load fields reset by 'R', window fields by 'R' and by each status.
        fields = {name: Signal(8 * size, name=f"status_{name}",
                               init=CRC_INIT if name.endswith("crc") else 0)
                  for name, size in STATUS}
        crc, words = fields["crc"], fields["words"]
        m.d.comb += fields["loaded"].eq(net.loaded)
        restart, reported = Signal(), Signal()
        for count, strobe in ((fields["framing_errors"], rx.framing_error),
                              (fields["overruns"], rx.overrun),
                              (words, net.load.valid & net.load.ready)):
            with m.If(strobe & (count != (1 << len(count)) - 1)):     # saturating
                m.d.sync += count.eq(count + 1)

        # Network -> host: each output beat as out_bytes bytes, low first, or the
        # status once asked for (between items: the host asks after a load or a run).
        checking, status_out = Signal(), Signal()
        out = Signal(max(self.out_bytes, STATUS_BYTES) * 8)
        sending = Signal(range(max(self.out_bytes, STATUS_BYTES) + 1))
        m.d.comb += [net.o.ready.eq((sending == 0) & ~checking), tx.i.payload.eq(out[:8]),
                     tx.i.valid.eq(sending != 0)]
        with m.If(net.o.valid & net.o.ready):
            m.d.sync += [out.eq(net.o.payload), sending.eq(self.out_bytes), status_out.eq(0)]
        with m.Elif(checking & (sending == 0)):
            m.d.sync += [out.eq(Cat(*fields.values())), sending.eq(STATUS_BYTES),
                         status_out.eq(1), checking.eq(0)]
            m.d.comb += reported.eq(1)
        with m.Elif(tx.i.valid & tx.i.ready):
            m.d.sync += [out.eq(out >> 8), sending.eq(sending - 1)]
            with m.If(~status_out):
                m.d.sync += fields["out_crc"].eq(_crc_byte(fields["out_crc"], tx.i.payload))
        with m.If(restart | reported):
            m.d.sync += [fields[name].eq(fields[name].init) for name in WINDOW]
        with m.If(restart):
            m.d.sync += [crc.eq(crc.init), words.eq(words.init)]
        m.d.comb += net.load_restart.eq(restart)

        # Host -> network: a command byte, then the bytes of one word or beat. 'R'
        # restarts the cycle after its byte, from a register: decoded from the
        # receiver's byte in the same cycle, it reached the status counters' resets
        # across the die through the PLL's lock (the PA MLP's critical path, 9.98 ns,
        # 8.07 of it routing).
        m.d.sync += restart.eq(0)
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
                        m.d.sync += restart.eq(1)
                    with m.If(rx.o.payload == CHECK):
                        m.d.sync += checking.eq(1)
            with m.State("data"):
                m.d.comb += rx.o.ready.eq(1)
                with m.If(rx.o.valid):
                    # Bytes arrive low first and shift down from the top.
                    m.d.sync += [data.eq((data >> 8) | (rx.o.payload << (width - 8))),
                                 left.eq(left - 1)]
                    with m.If(command == LOAD):
                        m.d.sync += crc.eq(_crc_byte(crc, rx.o.payload))
                    with m.Else():
                        m.d.sync += fields["in_crc"].eq(_crc_byte(fields["in_crc"],
                                                                  rx.o.payload))
                    with m.If(left == 1):
                        m.next = "deliver"
            with m.State("deliver"):
                with m.If(command == LOAD):
                    m.d.comb += net.load.valid.eq(~net.loaded)
                    # A word beyond the core's plan is dropped, not waited on: the
                    # status then shows fewer words taken than sent.
                    with m.If(net.load.ready | net.loaded):
                        m.next = "command"
                with m.Else():
                    # An input beat before the weights is dropped too, so that the
                    # shell still hears the 'R' and 'L' that load them.
                    m.d.comb += net.i.valid.eq(net.loaded)
                    with m.If(net.i.ready | ~net.loaded):
                        m.next = "command"
        return m


def _crc_step(crc, byte):
    """CRC-16 `crc` (an int) after one more `byte`, most significant bit first, as
    ``binascii.crc_hqx`` does it: eight shift-and-XOR steps."""
    crc ^= byte << 8
    for _ in range(8):
        crc = ((crc << 1) ^ CRC_POLY if crc & 0x8000 else crc << 1) & 0xFFFF
    return crc


def _crc_byte(crc, byte):
    """The same step in logic. It is linear over GF(2) in (crc, byte), so each new bit
    is the XOR of the inputs its mask selects, found by stepping each input bit alone
    (eight steps written as nested `Mux`es would copy the expression 2^8 times)."""
    inputs = Cat(crc, byte)
    columns = [_crc_step(1 << j, 0) if j < 16 else _crc_step(0, 1 << (j - 16))
               for j in range(24)]
    masks = [sum(((column >> i) & 1) << j for j, column in enumerate(columns))
             for i in range(16)]
    return Cat(*((inputs & mask).xor() for mask in masks))

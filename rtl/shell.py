"""The board's shell around a `Network`: framed commands in, framed replies out.

Every command and every reply is a frame: its bytes, then a CRC-16 of them
(big-endian, so that the CRC over the whole frame is 0), COBS-encoded (no byte
0 inside) and ended by a byte 0. A frame that is cut, too long, of an unknown
command or whose CRC fails is dropped and counted; the next byte 0 starts the
next frame, so a fault costs one frame, never the line's step. Decoded frames
(`frame_sizes`), integers little-endian:

=============  ==========================================================
``R``          restart loading (and the input and output counts)
``C`` tag      send the status, tagged with `tag`
``L`` i w      load word `w`, index `i` (3 bytes): taken only if `i` is the
               number of words taken since ``R``
``I`` i b      input beat `b`, index `i` (2 bytes): taken only if `i` is the
               number of beats taken since ``R`` (modulo 2^16)
``O`` s b      (reply) output beat `b`, the `s`-th since ``R`` (modulo 2^16)
``S`` tag f    (reply) the status's fields `f` (`STATUS`)
=============  ==========================================================

The indices make a dropped frame harmless: the frames after it are refused
(counted as ``skipped``) until the host sends the missing one again, so the
core never takes a word or beat out of place. A load word beyond the core's plan
and an input beat before its weights are ``refused`` (not waited on). The
status lets the host prove that weights, inputs and outputs crossed the line as
they were sent: since the last ``R``, the CRC-16/CCITT-FALSE (polynomial
0x1021, initial value 0xFFFF, Python's ``binascii.crc_hqx(data, 0xFFFF)``) of
the words taken, their count, whether the core is loaded, the input beats
taken and output beats sent; since the last ``R`` or status (`WINDOW`), the
bytes the receiver lost (bad stop bit, overrun), the frames dropped, skipped and
refused, and the CRCs of the input beats taken and the output beats sent.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .network import Network
from .uart import UARTReceiver, UARTTransmitter

__all__ = ["FrameShell", "SerialShell", "frame_sizes", "LOAD", "RESTART", "INPUT", "CHECK",
           "OUTPUT", "REPLY", "BAUD", "STATUS", "STATUS_BYTES", "WINDOW", "CRC_POLY",
           "CRC_INIT", "LOAD_INDEX_BYTES", "INPUT_INDEX_BYTES", "SEQUENCE_BYTES"]

LOAD, RESTART, INPUT, CHECK = ord("L"), ord("R"), ord("I"), ord("C")
OUTPUT, REPLY = ord("O"), ord("S")
LOAD_INDEX_BYTES, INPUT_INDEX_BYTES, SEQUENCE_BYTES, TAG_BYTES, CRC_BYTES = 3, 2, 2, 1, 2
# The status's fields, low byte first: (name, bytes). Counts saturate, except the input
# and output counts, which wrap as the frames' indices do. The fields in WINDOW
# restart after each status.
STATUS = (("crc", 2), ("words", 3), ("loaded", 1), ("framing_errors", 1), ("overruns", 1),
          ("in_crc", 2), ("out_crc", 2), ("dropped", 2), ("skipped", 2), ("refused", 2),
          ("inputs", 2), ("outputs", 2))
WINDOW = ("framing_errors", "overruns", "in_crc", "out_crc", "dropped", "skipped", "refused")
STATUS_BYTES = sum(size for _, size in STATUS)
CRC_POLY, CRC_INIT = 0x1021, 0xFFFF
# The line rate on a board (8N1): the build sets the divisor from it, the host opens
# the port at it.
BAUD = 115200
# COBS needs no code byte of 0xFF (a block of 254 bytes) while a frame is shorter: the
# decoder here takes 0xFF blocks, the encoder never writes one.
LONGEST_FRAME = 253


def frame_sizes(load_bytes, in_bytes, out_bytes):
    """Decoded bytes of each frame, by its first byte (the command or reply), CRC
    included."""
    return {RESTART: 1 + CRC_BYTES, CHECK: 1 + TAG_BYTES + CRC_BYTES,
            LOAD: 1 + LOAD_INDEX_BYTES + load_bytes + CRC_BYTES,
            INPUT: 1 + INPUT_INDEX_BYTES + in_bytes + CRC_BYTES,
            OUTPUT: 1 + SEQUENCE_BYTES + out_bytes + CRC_BYTES,
            REPLY: 1 + TAG_BYTES + STATUS_BYTES + CRC_BYTES}


def _core_members(core):
    core = core if isinstance(core, wiring.Component) else Network(core)
    members = core.signature.members
    for name in ("i", "o", "load", "load_restart", "loaded"):
        if name not in members:
            raise TypeError(f"the shell's core has no {name!r} member")
    return core


class FrameShell(wiring.Component):
    """The shell's frames (see the module) over byte streams, around `core`: a
    `Network` of `core` (a list of `MVAUConfig`), or any component with the same
    members (``i``, ``o``, ``load``, ``load_restart``, ``loaded``), such as a
    convolution engine. `SerialShell` puts a UART on each stream; a simulated
    board drives the streams directly.

    Members
    -------
    rx : In(stream.Signature(unsigned(8)))
        Bytes from the host. Not ready while a frame's word or beat waits for the
        core, or a status request for the transmitter (at most an output frame).
    tx : Out(stream.Signature(unsigned(8)))
        Bytes to the host.
    framing_error, overrun : In(1)
        A byte lost by the receiver (counted in the status).
    loaded : Out(1)
        All weights are loaded (an LED on a board).

    A frame's command takes effect a cycle after its closing byte 0 (a status
    request's once the core's `load_latency` has passed since the last load word,
    so that it says whether those words loaded the core); a reply goes
    out a byte a cycle, after a cycle per byte spent on its CRC (and one fetching the
    first), one marking its bytes 0 and one per byte finding its COBS blocks.
    """

    def __init__(self, core):
        self.network = _core_members(core)
        # Cycles from a load word taken to the core's `loaded` (a network's load chain).
        self.load_latency = getattr(self.network, "load_latency", 0)
        self.in_bytes, self.out_bytes, self.load_bytes = (
            -(-len(Value.cast(port.payload)) // 8)
            for port in (self.network.i, self.network.o, self.network.load))
        self.sizes = frame_sizes(self.load_bytes, self.in_bytes, self.out_bytes)
        for command, size in self.sizes.items():
            if size > LONGEST_FRAME:
                raise ValueError(f"the shell's {chr(command)!r} frame would be {size} bytes, "
                                 f"more than {LONGEST_FRAME}: the core's ports are too wide")
        super().__init__({"rx": In(stream.Signature(unsigned(8))),
                          "tx": Out(stream.Signature(unsigned(8))),
                          "framing_error": In(1), "overrun": In(1), "loaded": Out(1)})

    def elaborate(self, platform):
        m = Module()
        net = m.submodules.network = self.network
        m.d.comb += self.loaded.eq(net.loaded)
        fields = {name: Signal(8 * size, name=f"status_{name}",
                               init=CRC_INIT if name.endswith("crc") else 0)
                  for name, size in STATUS}
        m.d.comb += fields["loaded"].eq(net.loaded)
        # Strobes of the receive side's counts, set below.
        counts = {name: Signal(name=f"count_{name}")
                  for name in ("dropped", "skipped", "refused")}
        for name, strobe in (("framing_errors", self.framing_error), ("overruns", self.overrun),
                             *((name, counts[name]) for name in counts)):
            count = fields[name]
            with m.If(strobe & (count != (1 << len(count)) - 1)):     # saturating
                m.d.sync += count.eq(count + 1)
        restart, reported = Signal(), Signal()
        checking, tag = Signal(), Signal(8)
        # A status tells what the frames before its request did: it waits until the
        # last load word has had the core's load latency to raise `loaded` (bytes fed
        # a cycle each, a status request right behind the last word was answered
        # before FINN's TFC, a threshold unit and four layers, said it was loaded).
        settling = Signal(range(self.load_latency + 1))
        with m.If(net.load.valid & net.load.ready):
            m.d.sync += settling.eq(self.load_latency)
        with m.Elif(settling != 0):
            m.d.sync += settling.eq(settling - 1)
        self._receive(m, net, fields, counts, restart, checking, tag, settling)
        self._send(m, net, fields, checking, tag, reported)
        with m.If(restart | reported):
            m.d.sync += [fields[name].eq(fields[name].init) for name in WINDOW]
        with m.If(restart):
            m.d.sync += [fields[name].eq(fields[name].init)
                         for name in ("crc", "words", "inputs", "outputs")]
        m.d.comb += net.load_restart.eq(restart)
        return m

    def _receive(self, m, net, fields, counts, restart, checking, tag, settling):
        """Bytes -> COBS-decoded frames -> commands."""
        sizes = self.sizes
        longest = max(sizes[c] for c in (RESTART, CHECK, LOAD, INPUT))
        width = 8 * (longest - 1)
        # Decoded bytes after the command byte shift down from the top: a frame's
        # last byte (its CRC's low byte) ends at the top.
        body, command = Signal(width), Signal(8)
        count = Signal(range(longest + 2))         # decoded bytes, saturating above
        block_left = Signal(8)     # encoded bytes left in this COBS block; 0: a code next
        zero_after = Signal()      # the block before this code byte implies a byte 0
        started = Signal()         # a byte of this frame came (an empty frame is no frame)
        frame_crc = Signal(16, init=CRC_INIT)
        # The CRC of the payload so far continuing the stream CRC it extends; the stream
        # CRC takes it only when the frame's word or beat is taken.
        payload_crc = Signal(16)

        def part(size_of, offset, size):
            """Bytes offset..offset+size (counting after the command byte) of a frame
            of `size_of` decoded bytes, once it is whole."""
            low = width - 8 * (sizes[size_of] - 1) + 8 * offset
            return body[low:low + 8 * size]

        load_index = part(LOAD, 0, LOAD_INDEX_BYTES)
        input_index = part(INPUT, 0, INPUT_INDEX_BYTES)
        m.d.comb += [net.load.payload.eq(part(LOAD, LOAD_INDEX_BYTES, self.load_bytes)),
                     net.i.payload.eq(part(INPUT, INPUT_INDEX_BYTES, self.in_bytes))]

        decoded, byte = Signal(), Signal(8)
        rx = self.rx
        m.d.sync += restart.eq(0)
        with m.FSM():
            with m.State("frame"):
                m.d.comb += rx.ready.eq(1)
                with m.If(rx.valid & (rx.payload == 0)):
                    m.d.sync += [started.eq(0), block_left.eq(0), zero_after.eq(0),
                                 count.eq(0), frame_crc.eq(CRC_INIT)]
                    whole = started & (block_left == 0) & (frame_crc == 0)
                    with m.If(whole & (command == RESTART) & (count == sizes[RESTART])):
                        m.d.sync += restart.eq(1)
                    with m.Elif(whole & (command == CHECK) & (count == sizes[CHECK])):
                        m.next = "check"
                    with m.Elif(whole & (command == LOAD) & (count == sizes[LOAD])):
                        m.next = "load"
                    with m.Elif(whole & (command == INPUT) & (count == sizes[INPUT])):
                        m.next = "input"
                    with m.Elif(started):
                        m.d.comb += counts["dropped"].eq(1)
                with m.Elif(rx.valid):
                    m.d.sync += started.eq(1)
                    with m.If(block_left == 0):            # a code byte
                        m.d.sync += [block_left.eq(rx.payload - 1),
                                     zero_after.eq(rx.payload != 0xFF)]
                        m.d.comb += [decoded.eq(zero_after), byte.eq(0)]
                    with m.Else():
                        m.d.sync += block_left.eq(block_left - 1)
                        m.d.comb += [decoded.eq(1), byte.eq(rx.payload)]
            with m.State("check"):
                with m.If(settling == 0):
                    m.d.sync += [checking.eq(1), tag.eq(body[width - 24:width - 16])]
                    m.next = "reporting"
            with m.State("reporting"):
                # Nothing more comes in until the status is taken to be sent: it tells
                # what the frames before its request did.
                with m.If(~checking):
                    m.next = "frame"
            with m.State("load"):
                with m.If(load_index != fields["words"]):
                    m.d.comb += counts["skipped"].eq(1)
                    m.next = "frame"
                with m.Elif(net.loaded):
                    m.d.comb += counts["refused"].eq(1)     # a word beyond the plan
                    m.next = "frame"
                with m.Else():
                    m.d.comb += net.load.valid.eq(1)
                    with m.If(net.load.ready):
                        m.d.sync += [fields["words"].eq(fields["words"] + 1),
                                     fields["crc"].eq(payload_crc)]
                        m.next = "frame"
            with m.State("input"):
                with m.If(~net.loaded):
                    m.d.comb += counts["refused"].eq(1)     # no weights yet
                    m.next = "frame"
                with m.Elif(input_index != fields["inputs"]):
                    m.d.comb += counts["skipped"].eq(1)
                    m.next = "frame"
                with m.Else():
                    m.d.comb += net.i.valid.eq(1)
                    with m.If(net.i.ready):
                        m.d.sync += [fields["inputs"].eq(fields["inputs"] + 1),
                                     fields["in_crc"].eq(payload_crc)]
                        m.next = "frame"

        # A decoded byte: the command, or into the body; through the frame's CRC and,
        # within a word's or a beat's payload, the payload's.
        with m.If(decoded):
            m.d.sync += [frame_crc.eq(_crc_bytes(frame_crc, byte)),
                         count.eq(count + (count != longest + 1))]
            with m.If(count == 0):
                m.d.sync += command.eq(byte)
            with m.Else():
                m.d.sync += body.eq((body >> 8) | (byte << (width - 8)))
            first = {LOAD: 1 + LOAD_INDEX_BYTES, INPUT: 1 + INPUT_INDEX_BYTES}
            stream_crc = {LOAD: fields["crc"], INPUT: fields["in_crc"]}
            for which, size in ((LOAD, self.load_bytes), (INPUT, self.in_bytes)):
                with m.If((command == which) & (count >= first[which])
                          & (count < first[which] + size)):
                    base = Mux(count == first[which], stream_crc[which], payload_crc)
                    m.d.sync += payload_crc.eq(_crc_bytes(base, byte))

    def _send(self, m, net, fields, checking, tag, reported):
        """Output beats and the status -> frames -> COBS-encoded bytes."""
        sizes = self.sizes
        longest = max(sizes[OUTPUT], sizes[REPLY])
        raw = Signal(8 * longest)      # the frame's bytes not yet sent, next at the bottom
        left = Signal(range(longest + 1))
        at = Signal(range(longest + 1))
        status_out = Signal()
        frame_crc = Signal(16)
        run = Signal(range(longest + 1))           # bytes left in this COBS block
        zero_next = Signal()                       # the block ends at a byte 0
        now = Signal(8)                 # the CRC's next byte, the frame's byte at - 1
        zeros = Signal(longest)         # per byte from the block's next on: is it 0
        tx = self.tx
        output_frame = Cat(Const(OUTPUT, 8), fields["outputs"], net.o.payload)
        status_frame = Cat(Const(REPLY, 8), tag, *fields.values())
        lengths = {0: sizes[OUTPUT] - CRC_BYTES, 1: sizes[REPLY] - CRC_BYTES}
        payload_from = 1 + SEQUENCE_BYTES

        with m.FSM():
            with m.State("idle"):
                with m.If(net.o.valid):
                    m.d.comb += net.o.ready.eq(1)
                    m.d.sync += [raw.eq(output_frame), status_out.eq(0),
                                 fields["outputs"].eq(fields["outputs"] + 1)]
                    m.next = "fetch"
                with m.Elif(checking):
                    m.d.sync += [raw.eq(status_frame), status_out.eq(1), checking.eq(0)]
                    m.d.comb += reported.eq(1)
                    m.next = "fetch"
                m.d.sync += [at.eq(0), frame_crc.eq(CRC_INIT)]
            # The byte the CRC takes is fetched into a register a cycle ahead (a
            # multiplexer over the frame's bytes and the CRC's XORs in one cycle were
            # a CNN build's critical path on ECP5).
            with m.State("fetch"):
                m.d.sync += [now.eq(raw.word_select(at, 8)), at.eq(at + 1)]
                m.next = "crc"
            with m.State("crc"):
                # A byte a cycle through the frame's CRC (and, for an output beat's
                # payload, the window's CRC of the bytes sent); then the CRC goes on the
                # end, high byte first.
                m.d.sync += [frame_crc.eq(_crc_bytes(frame_crc, now)), at.eq(at + 1),
                             now.eq(raw.word_select(at, 8))]
                with m.If(~status_out & (at > payload_from)
                          & (at <= payload_from + self.out_bytes)):
                    m.d.sync += fields["out_crc"].eq(_crc_bytes(fields["out_crc"], now))
                for kind, length in lengths.items():
                    with m.If((status_out == kind) & (at == length)):
                        done = _crc_bytes(frame_crc, now)
                        m.d.sync += [raw[8 * length:8 * length + 16].eq(Cat(done[8:], done[:8])),
                                     left.eq(length + CRC_BYTES), run.eq(0)]
                        m.next = "zeros"
            with m.State("zeros"):
                m.d.sync += zeros.eq(Cat(raw.word_select(k, 8) == 0 for k in range(longest)))
                m.next = "scan"
            with m.State("scan"):
                # COBS: a block's code byte is 1 + its bytes before the next byte 0 (or
                # the frame's end), found a byte a cycle (a priority encoder over the
                # frame's bytes was the iCE40 shell's critical path) on flags that shift
                # along (a multiplexer on `run` over the frame's bytes was the ECP5's).
                with m.If((run == left) | zeros[0]):
                    m.d.sync += zero_next.eq(run != left)
                    m.next = "code"
                with m.Else():
                    m.d.sync += [run.eq(run + 1), zeros.eq(zeros >> 1)]
            with m.State("code"):
                m.d.comb += [tx.valid.eq(1), tx.payload.eq(run + 1)]
                with m.If(tx.ready):
                    m.next = "data"
            with m.State("data"):
                with m.If(run != 0):
                    m.d.comb += [tx.valid.eq(1), tx.payload.eq(raw[:8])]
                    with m.If(tx.ready):
                        m.d.sync += [raw.eq(raw >> 8), left.eq(left - 1), run.eq(run - 1)]
                with m.Elif(zero_next):
                    m.d.sync += [raw.eq(raw >> 8), left.eq(left - 1),   # the byte 0
                                 zeros.eq(zeros >> 1)]
                    m.next = "scan"
                with m.Else():
                    m.next = "end"
            with m.State("end"):
                m.d.comb += [tx.valid.eq(1), tx.payload.eq(0)]
                with m.If(tx.ready):
                    m.next = "idle"


class SerialShell(wiring.Component):
    """`FrameShell` around `core` behind a UART at ``clock / divisor`` baud (8N1).

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

    def __init__(self, core, divisor):
        self.frames = FrameShell(core)
        self.network = self.frames.network
        self.in_bytes, self.out_bytes, self.load_bytes = (
            self.frames.in_bytes, self.frames.out_bytes, self.frames.load_bytes)
        self.divisor = divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        frames = m.submodules.frames = self.frames
        rx = m.submodules.rx = UARTReceiver(self.divisor)
        tx = m.submodules.tx = UARTTransmitter(self.divisor)
        wiring.connect(m, rx.o, frames.rx)
        wiring.connect(m, frames.tx, tx.i)
        m.d.comb += [rx.rx.eq(self.rx), self.tx.eq(tx.tx), self.loaded.eq(frames.loaded),
                     frames.framing_error.eq(rx.framing_error),
                     frames.overrun.eq(rx.overrun)]
        return m


def _crc_step(crc, byte):
    """CRC-16 `crc` (an int) after one more `byte`, most significant bit first, as
    ``binascii.crc_hqx`` does it: eight shift-and-XOR steps."""
    crc ^= byte << 8
    for _ in range(8):
        crc = ((crc << 1) ^ CRC_POLY if crc & 0x8000 else crc << 1) & 0xFFFF
    return crc


def _crc_bytes(crc, byte):
    """The same step in logic. It is linear over GF(2) in (crc, byte), so each new bit
    is the XOR of the inputs its mask selects, found by stepping each input bit alone
    (eight steps written as nested `Mux`es would copy the expression 2^8 times)."""
    inputs = Cat(crc, byte)
    columns = [_crc_step(1 << j, 0) if j < 16 else _crc_step(0, 1 << (j - 16))
               for j in range(24)]
    masks = [sum(((column >> i) & 1) << j for j, column in enumerate(columns))
             for i in range(16)]
    return Cat(*((inputs & mask).xor() for mask in masks))

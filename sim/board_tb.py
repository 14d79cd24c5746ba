"""The simulated board's cocotb side: a `SerialShell` in the simulator behind a TCP port.

BITFAB_PARAMS gives the shell's clock divisor, a file to write the port to,
how many host sessions to serve (0: until killed) and whether the top is the
`SerialShell` (UART pins) or the bare `FrameShell` (byte streams, ``bytes``). The bench listens on
127.0.0.1 and serves one connection at a time (the host, e.g. pyserial's
``socket://`` URL): every byte it receives goes onto the shell's ``rx`` pin at
the shell's baud (8N1, low bit first), every byte the shell sends on ``tx``
goes back over the connection. A session ends when the host closes its
connection; the design keeps running between sessions, weights loaded, as a
powered board does between two programs that open its port.
"""

import json
import os
import select
import socket
import time
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, RisingEdge, Timer
from cocotb.utils import get_sim_time

PARAMS = json.loads(os.environ.get("BITFAB_PARAMS", "{}"))
#: The shell's byte streams are driven directly (`FrameShell`, no UART): a byte a
#: cycle instead of one per ten bit times.
BYTES = PARAMS.get("bytes", False)
PERIOD_NS = 10
PARENT = os.getppid()
#: Clock cycles without a byte on either pin after which the design counts as idle
#: (the digits networks answer an input within a few thousand cycles); from then on
#: the bench stops the simulator and waits for the host in real time, instead of
#: simulating an idle design as fast as it can (most of a core). About a second of
#: simulation.
QUIET_CYCLES = 50_000
IDLE_WAIT_S = 0.05
#: Bit times the design runs on between two looks at the connection while no byte is
#: waiting (a look costs a trip through Python: at 10, reaching `QUIET_CYCLES` took
#: seconds of a core).
LOOK_EVERY_BITS = 100


def _readable(sock, host, deadline=None):
    """True when `sock` has bytes (or a connection) waiting. Once the design has been
    quiet for `QUIET_CYCLES`, wait for them in real time instead, the simulator
    stopped (`IDLE_WAIT_S` at a time, checking `deadline`)."""
    while True:
        # The bench ends if the process that started it does (no host will come back).
        assert os.getppid() == PARENT, "the process that started the simulated board ended"
        assert deadline is None or time.monotonic() < deadline, "no host connected"
        quiet = get_sim_time("ns") - host["active_ns"] > QUIET_CYCLES * PERIOD_NS
        if select.select([sock], [], [], IDLE_WAIT_S if quiet else 0)[0]:
            return True
        if not quiet:
            return False


@cocotb.test()
async def serve(dut):
    divisor = PARAMS["divisor"]
    bit_ns = divisor * PERIOD_NS
    cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns").start())
    if BYTES:
        dut.rx__valid.value = 0
    else:
        dut.rx.value = 1
    dut.rst.value = 1
    for _ in range(2):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    await FallingEdge(dut.clk)      # from here on, every wait ends on a falling edge

    server = socket.create_server(("127.0.0.1", 0))
    partial = Path(PARAMS["port_file"] + ".partial")      # listening already
    partial.write_text(str(server.getsockname()[1]))
    os.replace(partial, PARAMS["port_file"])
    host = {"conn": None, "sent": 0, "active_ns": get_sim_time("ns")}

    async def transmit():
        """The shell's tx pin -> the connection, one byte per start bit."""
        while True:
            await FallingEdge(dut.tx)
            await FallingEdge(dut.clk)
            await Timer(PERIOD_NS * (divisor + divisor // 2), unit="ns")   # mid bit 0
            byte = 0
            for k in range(8):
                byte |= int(dut.tx.value) << k
                await Timer(bit_ns, unit="ns")
            assert int(dut.tx.value) == 1, f"byte {host['sent']} from the shell has no stop bit"
            _send(host, bytes([byte]))

    async def transmit_bytes():
        """The shell's tx stream (always ready) -> the connection, a burst of bytes (a
        frame) at a time."""
        dut.tx__ready.value = 1
        burst = bytearray()
        while True:
            if not int(dut.tx__valid.value):
                _send(host, burst)
                burst = bytearray()
                await RisingEdge(dut.tx__valid)
                await FallingEdge(dut.clk)
                continue
            burst.append(int(dut.tx__payload.value))    # taken at the next rising edge
            await FallingEdge(dut.clk)

    cocotb.start_soon(transmit_bytes() if BYTES else transmit())
    sessions = PARAMS.get("sessions", 1)
    served = 0
    while not sessions or served < sessions:
        deadline = time.monotonic() + PARAMS.get("accept_within_s", 60) if sessions else None
        while not _readable(server, host, deadline):
            await Timer(LOOK_EVERY_BITS * bit_ns, unit="ns")
        host["conn"], _ = server.accept()
        # Replies go out at once: Nagle's algorithm would hold a reply back until the
        # host acknowledged the one before (up to 40 ms of its delayed ACK).
        host["conn"].setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if BYTES:
            received = await _receive(dut, host, LOOK_EVERY_BITS * PERIOD_NS, _onto_stream(dut))
        else:
            received = await _receive(dut, host, LOOK_EVERY_BITS * bit_ns, _onto_pin(dut, bit_ns))
        host["conn"].close()
        host["conn"] = None
        served += 1
        dut._log.info(f"session {served}: the host sent {received} bytes")
    server.close()


async def _receive(dut, host, look_ns, drive):
    """Bytes from the host's connection, each chunk through `drive`, until the host
    closes; returns how many."""
    conn, received = host["conn"], 0
    while True:
        if not _readable(conn, host):
            await Timer(look_ns, unit="ns")
            continue
        chunk = conn.recv(65536)
        if not chunk:
            return received
        await drive(chunk)
        received += len(chunk)
        host["active_ns"] = get_sim_time("ns")


def _onto_pin(dut, bit_ns):
    """Bytes onto the rx pin at the shell's baud (8N1, low bit first)."""
    async def drive(chunk):
        for byte in chunk:
            for level in [0, *((byte >> k) & 1 for k in range(8)), 1]:
                dut.rx.value = level
                await Timer(bit_ns, unit="ns")
    return drive


def _onto_stream(dut):
    """Bytes onto the shell's rx stream: a byte a cycle while it is ready."""
    async def drive(chunk):
        # A Timer may end in the time step of a falling edge but before it: wait for
        # that edge (or the next), so that one rising edge lies between two looks.
        await FallingEdge(dut.clk)
        for byte in chunk:
            dut.rx__payload.value = byte
            dut.rx__valid.value = 1
            while True:
                ready = int(dut.rx__ready.value)    # at a falling edge: the next rising
                await FallingEdge(dut.clk)          # edge takes the byte if ready
                if ready:
                    break
        dut.rx__valid.value = 0
    return drive


def _send(host, data):
    """Bytes from the shell to the host; with no host connected they are lost, as on a
    wire."""
    if not data:
        return
    try:
        host["conn"] and host["conn"].sendall(data)
    except OSError:
        pass
    host["sent"] += len(data)
    host["active_ns"] = get_sim_time("ns")

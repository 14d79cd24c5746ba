"""The simulated board's cocotb side: a `SerialShell` in the simulator behind a TCP port.

BITFAB_PARAMS gives the shell's clock divisor and a file to write the port
to. The bench listens on 127.0.0.1, takes one connection (the host, e.g.
pyserial's ``socket://`` URL), and bit-bangs every byte it receives onto the
shell's ``rx`` pin at the shell's baud (8N1, low bit first); every byte the
shell sends on ``tx`` goes back over the connection. It ends when the host
closes the connection, once ``tx`` has been idle for a few bytes.
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

PARAMS = json.loads(os.environ.get("BITFAB_PARAMS", "{}"))
PERIOD_NS = 10


def _readable(sock):
    return bool(select.select([sock], [], [], 0)[0])


@cocotb.test()
async def serve(dut):
    divisor = PARAMS["divisor"]
    bit_ns = divisor * PERIOD_NS
    cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns").start())
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
    deadline = time.monotonic() + PARAMS.get("accept_within_s", 60)
    while not _readable(server):
        assert time.monotonic() < deadline, "no host connected"
        await Timer(10 * bit_ns, unit="ns")
    conn, _ = server.accept()
    server.close()
    sent = {"bytes": 0, "last_ns": 0}

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
            assert int(dut.tx.value) == 1, f"byte {sent['bytes']} from the shell has no stop bit"
            conn.sendall(bytes([byte]))
            sent["bytes"] += 1

    cocotb.start_soon(transmit())
    received = 0
    while True:
        if not _readable(conn):
            await Timer(10 * bit_ns, unit="ns")
            continue
        chunk = conn.recv(65536)
        if not chunk:
            break
        for byte in chunk:
            for level in [0, *((byte >> k) & 1 for k in range(8)), 1]:
                dut.rx.value = level
                await Timer(bit_ns, unit="ns")
        received += len(chunk)
    conn.close()
    dut._log.info(f"host sent {received} bytes, the shell {sent['bytes']}")

"""A simulated board: the bitstream's top (`SerialShell` around the design) in a real
simulator, reached over TCP as a real board is over its serial port.

    with SimulatedBoard(verilog, build_root) as board:
        host = Host(open_link(board.url, timeout=30), wire)

The host driver cannot tell the two apart: the same bytes go down the same
protocol, through the shell's UART receiver and back through its transmitter.
"""

import hashlib
import os
import threading
import time
from pathlib import Path

from amaranth.back import verilog

from .runner import run_bench

__all__ = ["SimulatedBoard", "shell_verilog"]

# The shell's clock cycles per bit in simulation: the fastest line its receiver
# (which samples mid-bit) takes; the baud does not matter to the host.
DIVISOR = 4


def shell_verilog(core, network_v=None, divisor=DIVISOR, uart=True):
    """Verilog of a `SerialShell` around `core` (module ``board``), or with `uart` false
    of the bare `FrameShell` (its byte streams for pins), with the generated
    network's own Verilog (`network_v`) beside it when `core` is a `NetworkInstance`."""
    from bitfab.rtl.shell import FrameShell, SerialShell
    shell = SerialShell(core, divisor) if uart else FrameShell(core)
    text = verilog.convert(shell, name="board")
    return text if network_v is None else network_v + "\n" + text


class SimulatedBoard:
    """Runs `bitfab.sim.board_tb` on `design` (Verilog text with a top module ``board``:
    `shell_verilog`) in a thread; `url` is ``socket://127.0.0.1:PORT`` once it
    listens. It serves `sessions` host connections one after the other (0: until
    the process ends), the design running on between them; leaving the ``with``
    block waits for the last to close, and raises if the bench failed.
    `optimize` compiles the simulator at -O1: longer to build, about three times
    faster to run (a whole network's load words and test split). With `uart` false
    the design is a bare `FrameShell` (``shell_verilog(..., uart=False)``), whose
    byte streams the bench drives a byte a cycle: the same frames, ten times
    faster than over the UART at its fastest."""

    def __init__(self, design, build_root, sim="verilator", divisor=DIVISOR, sessions=1,
                 optimize=False, start_within_s=900, uart=True):
        self.design, self.sim, self.divisor, self.sessions = design, sim, divisor, sessions
        self.uart = uart
        self.optimize = optimize
        self.build_root = Path(build_root).resolve()
        self.start_within_s = start_within_s
        self.url = None
        self._error = None

    def __enter__(self):
        self.build_root.mkdir(parents=True, exist_ok=True)
        port_file = self.build_root / f"port.{os.getpid()}.{id(self)}"
        port_file.unlink(missing_ok=True)
        key = hashlib.sha1((self.design + str(self.optimize)).encode()).hexdigest()[:12]
        params = {"divisor": self.divisor, "port_file": str(port_file),
                  "sessions": self.sessions, "bytes": not self.uart}

        def serve():
            try:
                run_bench(self.design, "board", "bitfab.sim.board_tb", params, self.build_root,
                          seed=0, sim=self.sim, key=key, waves_on_failure=False,
                          optimize=self.optimize)
            except BaseException as error:      # reported in the caller's thread
                self._error = error

        self._thread = threading.Thread(target=serve, name="simulated-board", daemon=True)
        self._thread.start()
        # The simulator is built first (minutes for a whole network, once per design).
        deadline = time.monotonic() + self.start_within_s
        while not port_file.exists():
            if not self._thread.is_alive():
                raise RuntimeError(f"the simulated board stopped before it listened: "
                                   f"{self._error}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the simulated board did not listen within "
                                   f"{self.start_within_s} s (building in {self.build_root})")
            time.sleep(0.1)
        self.url = f"socket://127.0.0.1:{port_file.read_text()}"
        port_file.unlink()
        return self

    def wait(self):
        """Until the bench ends (with ``sessions=0``, until the process is interrupted)."""
        self._thread.join()

    def __exit__(self, *exc):
        if exc[0] is not None:
            return False        # the simulator, a child, ends with this process
        self._thread.join(timeout=120)
        if self._thread.is_alive():
            raise RuntimeError("the simulated board did not stop after the host closed")
        if self._error is not None:
            raise RuntimeError(f"the simulated board failed: {self._error}") from self._error
        return False

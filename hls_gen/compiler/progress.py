"""Progress while a long step runs: what the tools are doing, read from their logs, and
the time elapsed.

yosys and nextpnr write their logs as they go (``-l bitfab.rpt``, ``--log
bitfab.tim``); `watch_toolchain` reads them every second while they run and
`toolchain_phase` names the phase: yosys's pass (``2.43. Executing ABC9 pass``),
nextpnr's packing, its placers' iterations (HeAP, then simulated annealing), its
router's progress (router1: arcs left to route and rip-ups of overused wires; router2: its
iteration and the overused wires and their overuse), routing done. On a terminal the
phase is one line rewritten in place; elsewhere (a CI log, a pipe) a plain line when
the phase changes and at most one every `Progress.every` seconds within a phase, so a
log stays readable line by line.
"""

import json
import re
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

__all__ = ["Progress", "toolchain_phase", "watch_toolchain", "watch_simulation", "watching",
           "stdout_if_print"]

_YOSYS_PASS = re.compile(r"^(\d+(?:\.\d+)*)\. Executing (.+?)\.?$")
_HEAP = re.compile(r"at iteration #(\d+), type ALL")
_ANNEAL = re.compile(r"at iteration #(\d+): temp")
# router1's table: IterCnt | w/ripup wo/ripup | w/r wo/r | remaining arcs | times
_ROUTER1 = re.compile(r"Info:\s+(\d+) \|\s+(\d+)\s+(\d+) \|\s+\d+\s+\d+ \|\s+(\d+)\|")
_ROUTER2 = re.compile(r"iter=(\d+)\s+wires=(\d+)\s+overused=(\d+)\s+overuse=(\d+)")
_ARCS = re.compile(r"Info: Routing (\d+) arcs")


def toolchain_phase(yosys_log="", nextpnr_log=""):
    """The phase the logs so far show, as (phase, detail): ("yosys", "2.43 ABC9 pass"),
    ("placing", "HeAP iteration 12"), ("routing", "12000 arcs routed, ...") and so on;
    None before either tool has written a line."""
    if nextpnr_log.strip():
        return _nextpnr_phase(nextpnr_log)
    passes = [m for m in map(_YOSYS_PASS.match, yosys_log.splitlines()) if m]
    if passes:
        number, what = passes[-1].groups()
        return "yosys", f"{number} {what}"
    return None


def _nextpnr_phase(text):
    lines = text.splitlines()
    for line in reversed(lines):
        if "Routing complete" in line:
            return "routed", ""
        found = _ROUTER2.search(line)
        if found:
            k, wires, overused, overuse = found.groups()
            return "routing", (f"router2 iteration {k}: {overused} of {wires} wires "
                               f"overused, overuse {overuse}")
        found = _ROUTER1.search(line)
        if found:
            count, ripped, _, remaining = found.groups()
            total = next((m.group(1) for m in map(_ARCS.search, lines) if m), "?")
            return "routing", (f"{remaining} of {total} arcs left, {ripped} rip-ups of "
                               f"overused wires in {count} iterations")
        if "Info: Routing" in line or "Routing globals" in line:
            return "routing", "starting"
        found = _ANNEAL.search(line)
        if found:
            return "placing", f"simulated annealing iteration {found.group(1)}"
        found = _HEAP.search(line)
        if found:
            return "placing", f"HeAP iteration {found.group(1)}"
        if "Running main analytical placer" in line or "Info: Placed" in line:
            return "placing", "HeAP starting"
        if "Packing" in line:
            return "packing", ""
    return "nextpnr", "starting"


class Progress:
    """Progress lines of one step (`name`): on a terminal (`stream` a tty) one line
    rewritten in place; else `log` a line when the phase changes, and within a phase
    at most one every `every` seconds."""

    every = 30.0

    def __init__(self, name, log=print, stream=None, clock=time.monotonic):
        self.name, self.log, self.clock = name, log, clock
        self.tty = stream is not None and stream.isatty()
        self.stream = stream
        self.start = clock()
        self.phase, self.shown_at, self.shown = None, None, None

    def elapsed(self):
        seconds = int(self.clock() - self.start)
        return f"{seconds // 60}:{seconds % 60:02d}"

    def update(self, phase, detail="", last=False):
        """Show `phase` and `detail`; `last`: the step's final state, shown in a log
        even within the phase's quiet time (unless shown already)."""
        body = f"{phase}{': ' + detail if detail else ''}"
        text = f"{self.name}: {body} ({self.elapsed()})"
        now = self.clock()
        if self.tty:
            self.stream.write("\r\x1b[K" + text)
            self.stream.flush()
        elif (phase != self.phase or now - self.shown_at >= self.every
              or (last and body != self.shown)):
            self.log(text)
            self.shown_at, self.shown = now, body
        self.phase = phase

    def close(self):
        if self.tty and self.phase is not None:
            self.stream.write("\n")
            self.stream.flush()


@contextmanager
def watching(phase_of, progress, poll=1.0):
    """While the body runs, `progress` gets ``phase_of()`` (a (phase, detail) or None)
    every `poll` seconds, and once more at the end."""
    stop = threading.Event()

    def watch():
        while not stop.wait(poll):
            phase = phase_of()
            if phase is not None:
                progress.update(*phase)

    thread = threading.Thread(target=watch, name="progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        phase = phase_of()
        if phase is not None:
            progress.update(*phase, last=True)
        progress.close()


def _read(path):
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def watch_toolchain(build_dir, name, progress, poll=1.0):
    """While the body runs (the toolchain writing into `build_dir`), `progress` gets
    the phase its logs (``name.rpt``, ``name.tim``) show, every `poll` seconds."""
    logs = [Path(build_dir) / f"{name}.rpt", Path(build_dir) / f"{name}.tim"]
    # Logs of an earlier build in the same folder are not this one's progress.
    for log in logs:
        log.unlink(missing_ok=True)
    return watching(lambda: toolchain_phase(*map(_read, logs)), progress, poll)


def watch_simulation(path, progress, poll=1.0):
    """While the body runs (a bench writing ``{"items": k, "of": n}`` into `path` as
    its outputs come out), `progress` gets the images simulated so far."""
    path = Path(path)
    path.unlink(missing_ok=True)

    def phase():
        try:
            value = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return "simulating", f"image {value['items']} of {value['of']}"
    return watching(phase, progress, poll)


def stdout_if_print(log):
    """The terminal to rewrite progress in: stdout when `log` prints there."""
    return sys.stdout if log is print else None

"""Progress of the long steps: the toolchain's phase read from yosys's and nextpnr's
logs as they grow, on a terminal one line rewritten, in a log one line a phase."""

import io
import json
import threading
import time

from bitfab.hls_gen.compiler.progress import (Progress, toolchain_phase, watch_simulation,
                                              watch_toolchain)

YOSYS = """
2.42. Executing ABC9_OPS pass (helper functions for ABC9).
2.43. Executing ABC9 pass.
"""

NEXTPNR = {
    "packing": "Info: Packing IOs..\n",
    "heap": "Info: Running main analytical placer, max placement attempts per cell = 1.\n"
            "Info:     at iteration #7, type ALL: wirelen solved = 1, spread = 2, legal = 3; "
            "time = 0.45s\n",
    "anneal": "Info: Running simulated annealing placer for refinement.\n"
              "Info:   at iteration #15: temp = 0.000000, timing cost = 271, wirelen = 3\n",
    "router1": "Info: Routing..\nInfo: Routing 34210 arcs.\n"
               "Info:    IterCnt |  w/ripup   wo/ripup |  w/r  wo/r |      arcs| batch(sec) "
               "total(sec)|\n"
               "Info:      12000 |     1003      10971 |   91   896 |     23448|       0.29"
               "       3.87|\n",
    "router2": "Info: Running router2...\nInfo:     iter=3 wires=51200 overused=812 "
               "overuse=1033 archfail=NA\n",
    "done": "Info: Routing complete.\nInfo: Router1 time 24.38s\n",
}


def test_each_phase_is_read_from_the_logs():
    assert toolchain_phase("", "") is None
    assert toolchain_phase(YOSYS, "") == ("yosys", "2.43 ABC9 pass")
    assert toolchain_phase(YOSYS, NEXTPNR["packing"]) == ("packing", "")
    assert toolchain_phase(YOSYS, NEXTPNR["heap"]) == ("placing", "HeAP iteration 7")
    assert toolchain_phase(YOSYS, NEXTPNR["heap"] + NEXTPNR["anneal"]) == (
        "placing", "simulated annealing iteration 15")
    assert toolchain_phase(YOSYS, NEXTPNR["anneal"] + NEXTPNR["router1"]) == (
        "routing", "23448 of 34210 arcs left, 1003 rip-ups of overused wires in 12000 "
                   "iterations")
    assert toolchain_phase(YOSYS, NEXTPNR["router2"]) == (
        "routing", "router2 iteration 3: 812 of 51200 wires overused, overuse 1033")
    assert toolchain_phase(YOSYS, NEXTPNR["router1"] + NEXTPNR["done"]) == ("routed", "")


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_a_log_gets_a_line_a_phase_and_one_a_while_within_it():
    lines, clock = [], _Clock()
    progress = Progress("build", lines.append, clock=clock)
    for now, phase, detail in [(1, "yosys", "2.1 A"), (2, "yosys", "2.2 B"),
                               (40, "yosys", "2.3 C"), (41, "placing", "HeAP iteration 1"),
                               (125, "routing", "5 of 9 arcs left")]:
        clock.now = now
        progress.update(phase, detail)
    assert lines == ["build: yosys: 2.1 A (0:01)", "build: yosys: 2.3 C (0:40)",
                     "build: placing: HeAP iteration 1 (0:41)",
                     "build: routing: 5 of 9 arcs left (2:05)"]


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_terminal_gets_one_line_rewritten_in_place():
    terminal, clock, lines = _Terminal(), _Clock(), []
    progress = Progress("build", lines.append, stream=terminal, clock=clock)
    progress.update("placing", "HeAP iteration 1")
    clock.now = 61
    progress.update("routing", "5 of 9 arcs left")
    progress.close()
    assert lines == []
    assert terminal.getvalue() == ("\r\x1b[Kbuild: placing: HeAP iteration 1 (0:00)"
                                   "\r\x1b[Kbuild: routing: 5 of 9 arcs left (1:01)\n")


def test_the_watcher_follows_logs_as_the_tools_write_them(tmp_path):
    lines = []
    progress = Progress("build", lines.append)
    progress.every = 0.0

    def tools():
        time.sleep(0.15)
        (tmp_path / "bitfab.rpt").write_text(YOSYS)
        time.sleep(0.15)
        (tmp_path / "bitfab.tim").write_text(NEXTPNR["heap"])
        time.sleep(0.15)
        (tmp_path / "bitfab.tim").write_text(NEXTPNR["heap"] + NEXTPNR["router1"])
        time.sleep(0.15)

    (tmp_path / "bitfab.tim").write_text(NEXTPNR["done"])     # an earlier build's
    with watch_toolchain(tmp_path, "bitfab", progress, poll=0.05):
        worker = threading.Thread(target=tools)
        worker.start()
        worker.join()
    phases = [line.split(":")[1].strip() for line in lines]
    assert phases[0] == "yosys" and "placing" in phases and phases[-1] == "routing"
    assert "routed" not in phases          # the earlier build's log was not read


def test_the_simulation_watcher_reads_the_benchs_count_and_shows_the_last(tmp_path):
    lines = []
    progress = Progress("sim", lines.append)
    path = tmp_path / "progress.json"
    with watch_simulation(path, progress, poll=0.05):
        for k in (10, 200, 450):
            path.write_text(json.dumps({"items": k, "of": 450}))
            time.sleep(0.12)
    # A line for the phase, then the quiet time; the last state shown at the end.
    assert lines[0].startswith("sim: simulating: image 10 of 450 (")
    assert lines[-1].startswith("sim: simulating: image 450 of 450 (") and len(lines) == 2

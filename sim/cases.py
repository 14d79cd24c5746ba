"""Running a case in the stream bench (`bitfab.sim.stream_tb`).

A case is JSON: the load words, the input beats, and per output stream the
beats the golden model predicts, packed with the same layouts the hardware
uses, so a beat compares with ``==``. The compiler makes cases from what it
emitted (its ``cases`` module); this module only runs them.
"""

import json
import random
from pathlib import Path

from .runner import run_bench

__all__ = ["run_case"]


def run_case(component, toplevel, case, build_root, seed, sim="verilator", idle=0.0,
             backpressure=0.0, key=None, raise_on_mismatch=True, stall_limit=None,
             optimize=False, progress=None):
    """Run `case` through the stream bench; returns its result (mismatches, cycles, ...).
    `stall_limit`: cycles without a transfer after which the bench calls a deadlock
    (default `bitfab.sim.streams.STALL_LIMIT`); `optimize`: Verilator at -O1, for
    long runs; `progress`: a path the bench writes ``{"items": k, "of": n}`` into as
    the outputs come out.

    If any beat differs: raises, naming the seed, the first mismatch and the wave
    dump; or, without `raise_on_mismatch`, returns the result with ``failure`` (the
    bench's error) and ``waves`` (the wave dumps) once the bench has written it.
    """
    build_root = Path(build_root).resolve()   # the simulator runs elsewhere
    build_root.mkdir(parents=True, exist_ok=True)
    tag = f"{toplevel}_{seed}_{random.Random(json.dumps(case['words'][:64])).getrandbits(32):08x}"
    case_path = build_root / f"case_{tag}.json"
    result_path = build_root / f"result_{tag}.json"
    case_path.write_text(json.dumps(case))
    result_path.unlink(missing_ok=True)
    params = {"case": str(case_path), "result": str(result_path), "seed": seed, "idle": idle,
              "backpressure": backpressure}
    if stall_limit is not None:
        params["stall_limit"] = stall_limit
    if progress is not None:
        params["progress"] = str(Path(progress).resolve())
    try:
        run_bench(component, toplevel, "bitfab.sim.stream_tb", params, build_root, seed, sim,
                  key=key, optimize=optimize, waves_on_failure=stall_limit is None)
    except RuntimeError as error:
        detail = json.loads(result_path.read_text()) if result_path.exists() else {}
        if not raise_on_mismatch and detail.get("mismatches"):
            return {**detail, "failure": str(error), "waves": getattr(error, "waves", [])}
        raise RuntimeError(f"{error}; first mismatch: {detail.get('first_mismatch')}") from error
    return json.loads(result_path.read_text())

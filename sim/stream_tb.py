"""Generic cocotb bench for a unit with a weight-load port: a `MatrixVectorUnit` or a
whole generated `Network`.

BITFAB_PARAMS names a JSON case file (written by `bitfab.sim.cases`) holding
the load words, the input beats, and for each output stream (``o``, and
``tap<k>`` on a network) the beats the golden model expects. The bench loads
the words (with stalls), streams the inputs (with stalls) against random
backpressure, records every transfer, compares each beat exactly, and writes
a result JSON: mismatches, the first one (stream, beat, item, both values),
and the cycles per item measured between outputs.
"""

import json
import os
import random
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from bitfab.sim.streams import StreamSink, StreamSource, exchange, value_of

PARAMS = json.loads(os.environ.get("BITFAB_PARAMS", "{}"))
# Cycles after the last load word within which `loaded` must rise.
LOADED_WITHIN = 4


def compare(name, want, got, per_item):
    """(mismatching beats, items they belong to, the first one described) for one stream."""
    bad = [k for k, (w, g) in enumerate(zip(want, got)) if w != g]
    short = range(min(len(want), len(got)), max(len(want), len(got)))
    items = {k // per_item for k in [*bad, *short]}
    if bad:
        k = bad[0]
        return len(bad) + len(short), items, {"stream": name, "beat": k, "item": k // per_item,
                                              "rtl": hex(got[k]), "golden": hex(want[k])}
    if short:
        return len(short), items, {"stream": name, "beat": short[0], "rtl_beats": len(got),
                                   "golden_beats": len(want)}
    return 0, items, None


@cocotb.test()
async def outputs_match_golden(dut):
    case = json.loads(Path(PARAMS["case"]).read_text())
    seed = PARAMS["seed"]
    rng = random.Random(seed)
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    dut.load_restart.value = 0
    loader = StreamSource(dut, "load", rng, PARAMS.get("idle", 0.0))
    source = StreamSource(dut, "i", rng, PARAMS.get("idle", 0.0))
    sink = StreamSink(dut, "o", rng, PARAMS.get("backpressure", 0.0))
    for _ in range(2):
        await RisingEdge(dut.clk)
    dut.rst.value = 0

    await exchange(loader, case["words"], None, 0)
    # The last word may still pass a register or two (a network's load skid buffer).
    for _ in range(LOADED_WITHIN):
        await RisingEdge(dut.clk)
        await ReadOnly()
        if value_of(dut.loaded):
            break
    assert value_of(dut.loaded), (f"seed {seed}: {len(case['words'])} words "
                                  f"sent, but the unit is not loaded "
                                  f"{LOADED_WITHIN} cycles later")
    await RisingEdge(dut.clk)
    taps = [name for name in case["outputs"] if name != "o"]
    got = {name: [] for name in taps}
    ports = [(getattr(dut, f"{n}_valid"), getattr(dut, f"{n}_payload"), got[n]) for n in taps]
    cycles = []
    got["o"] = await exchange(source, case["inputs"], sink, len(case["outputs"]["o"]), ports,
                              cycles)

    per_item = case["beats_per_item"]
    mismatches, first, bad_items = 0, None, set()
    for name, want in case["outputs"].items():
        count, items, where = compare(name, want, got[name], per_item[name])
        mismatches += count
        bad_items |= items
        first = first or where
    items = len(case["outputs"]["o"]) // per_item["o"]
    # Steady-state cycles per item: between the last beats of the first and last items.
    ends = cycles[per_item["o"] - 1::per_item["o"]]
    per_image = (ends[-1] - ends[0]) / (len(ends) - 1) if len(ends) > 1 else None
    result = {"items": items, "mismatches": mismatches, "items_mismatched": len(bad_items),
              "first_mismatch": first,
              "cycles_per_item": per_image, "seed": seed,
              "beats_checked": sum(len(v) for v in case["outputs"].values())}
    Path(PARAMS["result"]).write_text(json.dumps(result, indent=2) + "\n")
    assert mismatches == 0, f"seed {seed}: {mismatches} mismatches; first {first}"
    dut._log.info("%d items, %d beats, 0 mismatches (seed %d)", items,
                  result["beats_checked"], seed)

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
from pathlib import Path

import cocotb
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from bitfab.sim.streams import STALL_LIMIT, StreamTB, exchange, value_of

PARAMS = json.loads(os.environ.get("BITFAB_PARAMS", "{}"))
# Cycles after the last load word within which `loaded` must rise, unless the case
# says (``loaded_within``: a network's `bitfab.rtl.network.load_latency`).
LOADED_WITHIN = 4
# Cycles between two looks at how many items have come out (`TB.report_progress`).
PROGRESS_CYCLES = 20_000


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


class TB(StreamTB):
    """A load driver, an input driver and an output monitor (random stalls and
    backpressure), taps on every layer's output, and a scoreboard against the golden
    model's beats."""

    def __init__(self, dut, case, params):
        super().__init__(dut, params)
        self.case = case
        dut.load_restart.value = 0
        self.loader = self.driver("load")
        self.source = self.driver("i")
        self.sink = self.monitor("o")
        self.got, self.cycles = {}, []
        # Cycles without a transfer after which the run is a deadlock, not a slow design.
        self.stall_limit = params.get("stall_limit", STALL_LIMIT)
        self.loaded_within = case.get("loaded_within", LOADED_WITHIN)

    async def load(self):
        """Send the load words; the unit must say it is loaded within the cycles the
        case's ``loaded_within`` (else `LOADED_WITHIN`) allows after the last."""
        dut, words = self.dut, self.case["words"]
        await exchange(self.loader, words, None, 0)
        for _ in range(self.loaded_within):
            await RisingEdge(dut.clk)
            await ReadOnly()
            if value_of(dut.loaded):
                break
        assert value_of(dut.loaded), (f"seed {self.seed}: {len(words)} words sent, but the "
                                      f"unit is not loaded {self.loaded_within} cycles "
                                      f"later")
        await RisingEdge(dut.clk)

    async def run(self):
        """Stream the inputs, recording ``o`` and every tap."""
        outputs = self.case["outputs"]
        taps = [name for name in outputs if name != "o"]
        self.got = {name: [] for name in taps}
        ports = [(getattr(self.dut, f"{n}_valid"), getattr(self.dut, f"{n}_payload"),
                  self.got[n]) for n in taps]
        reporter = None
        per_item = self.case["beats_per_item"]["o"]
        if PARAMS.get("progress"):
            reporter = cocotb.start_soon(self.report_progress(
                Path(PARAMS["progress"]), per_item, len(outputs["o"]) // per_item))
        self.got["o"] = await exchange(self.source, self.case["inputs"], self.sink,
                                       len(outputs["o"]), ports, self.cycles,
                                       self.stall_limit)
        if reporter is not None:
            reporter.cancel()
            Path(PARAMS["progress"]).write_text(json.dumps(
                {"items": len(self.got["o"]) // per_item, "of": len(outputs["o"]) // per_item}))

    async def report_progress(self, path, per_item, total):
        """Every `PROGRESS_CYCLES` cycles, the items whose last output beat has come out,
        into `path` (``{"items": k, "of": total}``), for the flow's progress line."""
        done = -1
        while True:
            await ClockCycles(self.dut.clk, PROGRESS_CYCLES)
            items = len(self.cycles) // per_item
            if items != done:
                done = items
                path.write_text(json.dumps({"items": items, "of": total}))

    def score(self):
        """The result: mismatches over every stream, the first, and cycles per item."""
        per_item = self.case["beats_per_item"]
        mismatches, first, bad_items = 0, None, set()
        for name, want in self.case["outputs"].items():
            count, items, where = compare(name, want, self.got[name], per_item[name])
            mismatches += count
            bad_items |= items
            first = first or where
        items = len(self.case["outputs"]["o"]) // per_item["o"]
        # Steady-state cycles per item: between the last beats of the first and last items.
        ends = self.cycles[per_item["o"] - 1::per_item["o"]]
        per_image = (ends[-1] - ends[0]) / (len(ends) - 1) if len(ends) > 1 else None
        result = {"items": items, "mismatches": mismatches, "items_mismatched": len(bad_items),
                  "first_mismatch": first, "cycles_per_item": per_image, "seed": self.seed,
                  "beats_checked": sum(len(v) for v in self.case["outputs"].values())}
        if len(self.got["o"]) < len(self.case["outputs"]["o"]):
            # `exchange` gives up only when nothing moved for `stall_limit` cycles.
            result["deadlock"] = {
                "stall_cycles": self.stall_limit,
                "streams": {name: [len(self.got[name]), len(want)]
                            for name, want in self.case["outputs"].items()
                            if len(self.got[name]) < len(want)}}
        return result


@cocotb.test()
async def outputs_match_golden(dut):
    tb = TB(dut, json.loads(Path(PARAMS["case"]).read_text()), PARAMS)
    await tb.reset()
    await tb.load()
    await tb.run()
    result = tb.score()
    Path(PARAMS["result"]).write_text(json.dumps(result, indent=2) + "\n")
    if "deadlock" in result:
        stopped = ", ".join(f"{name} {got} of {want} beats"
                            for name, (got, want) in result["deadlock"]["streams"].items())
        raise AssertionError(f"seed {tb.seed}: deadlock: no beat moved for {tb.stall_limit} "
                             f"cycles; stopped: {stopped}")
    assert result["mismatches"] == 0, (f"seed {tb.seed}: {result['mismatches']} mismatches; "
                                       f"first {result['first_mismatch']}")
    dut._log.info("%d items, %d beats, 0 mismatches (seed %d)", result["items"],
                  result["beats_checked"], tb.seed)

"""Generic cocotb bench for a block with one input and one output stream.

BITFAB_PARAMS names a JSON case file: ``inputs`` (payload integers for ``i``),
``outputs`` (the golden model's payloads expected on ``o``, in order), an
optional ``static`` map of other input ports to hold (e.g. a PE's ``coef``),
and ``signed_bits`` to show values signed in messages. Random input stalls and
output backpressure throughout; a failure names the seed, the first
mismatching index and both values. An output payload that packs many vectors
(`bitfab.sim.lanes`) can be described by ``fields``, [name, bits] pairs of one
vector's result, low first, repeated ``lanes`` times: a failure then names the
vector (output index * lanes + lane) and the field, with both values.
"""

import json
import os
from pathlib import Path

import cocotb

from bitfab.sim.streams import StreamTB, exchange

PARAMS = json.loads(os.environ.get("BITFAB_PARAMS", "{}"))


def _signed(value, bits):
    return value - (1 << bits) if bits and value >> (bits - 1) else value


class TB(StreamTB):
    """A stalling driver on ``i``, a backpressuring monitor on ``o``, the static ports
    held, and a scoreboard that names the first mismatch."""

    def __init__(self, dut, case, params):
        super().__init__(dut, params, idle=0.3, backpressure=0.3)
        self.case = case
        for port, value in case.get("static", {}).items():
            getattr(dut, port).value = value
        self.source, self.sink = self.driver(), self.monitor()

    async def run(self):
        return await exchange(self.source, self.case["inputs"], self.sink,
                              len(self.case["outputs"]))

    def check(self, got):
        case, seed = self.case, self.seed
        bits = case.get("signed_bits", 0)
        for index, (w, g) in enumerate(zip(case["outputs"], got, strict=True)):
            if g != w and "fields" in case:
                where, g, w = _first_field(g, w, case["fields"], case.get("lanes", 1))
                raise AssertionError(f"seed {seed}: first mismatch at output {index}, vector "
                                     f"{index * case.get('lanes', 1) + where[0]}, {where[1]}: "
                                     f"rtl {g}, golden {w}")
            assert g == w, (f"seed {seed}: first mismatch at output {index}: rtl "
                            f"{_signed(g, bits)}, golden {_signed(w, bits)}")


@cocotb.test()
async def outputs_match_golden(dut):
    tb = TB(dut, json.loads(Path(PARAMS["case"]).read_text()), PARAMS)
    await tb.reset()
    tb.check(await tb.run())
    dut._log.info("%d outputs, 0 mismatches (seed %d)", len(tb.case["outputs"]), tb.seed)


def _first_field(got, want, fields, lanes):
    """((lane, field name), rtl value, golden value) of the lowest field that differs."""
    at = 0
    for lane in range(lanes):
        for name, width in fields:
            g, w = (value >> at & ((1 << width) - 1) for value in (got, want))
            if g != w:
                return (lane, name), g, w
            at += width
    return (lanes, "padding"), got >> at, want >> at

"""Generic cocotb bench for a block with several input and output streams (a fork, a
join).

BITFAB_PARAMS names a JSON case file: ``inputs`` ({stream name: payload integers})
and ``outputs`` ({stream name: the golden model's payloads, in order}). Every
input stalls at random and every output is backpressured at random, each on its
own; a failure names the seed, the stream, the first mismatching index and both
values.
"""

import json
import os
from pathlib import Path

import cocotb

from bitfab.sim.streams import StreamTB, exchange_streams

PARAMS = json.loads(os.environ.get("BITFAB_PARAMS", "{}"))


class TB(StreamTB):
    """A stalling driver per input stream, a backpressuring monitor per output stream,
    and a scoreboard that names the first mismatch."""

    def __init__(self, dut, case, params):
        super().__init__(dut, params, idle=0.3, backpressure=0.3)
        self.case = case
        self.sources = [(self.driver(name), beats) for name, beats in case["inputs"].items()]
        self.sinks = [(self.monitor(name), len(beats))
                      for name, beats in case["outputs"].items()]

    async def run(self):
        return await exchange_streams(self.sources, self.sinks)

    def check(self, got):
        for (name, want), beats in zip(self.case["outputs"].items(), got):
            assert len(beats) == len(want), (f"seed {self.seed}: {name}: {len(beats)} beats "
                                             f"of {len(want)}")
            for index, (w, g) in enumerate(zip(want, beats)):
                assert g == w, (f"seed {self.seed}: {name}: first mismatch at output {index}: "
                                f"rtl {g}, golden {w}")


@cocotb.test()
async def outputs_match_golden(dut):
    tb = TB(dut, json.loads(Path(PARAMS["case"]).read_text()), PARAMS)
    await tb.reset()
    tb.check(await tb.run())
    dut._log.info("%s: 0 mismatches (seed %d)",
                  ", ".join(f"{n} {len(b)} beats" for n, b in tb.case["outputs"].items()),
                  tb.seed)

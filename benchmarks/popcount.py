"""Benchmark: bitfab's popcount against a plain adder tree, placed and routed on ECP5.

Both count the agreements of two 256-bit vectors (XNOR front). bitfab's is the
carry-chain tree of `count_ones` with a register after each of its 8 levels
(flip-flops are reported, not counted as LUTs); the plain tree has one register
at each end. Each sits
between registers fed by a 512-bit shift register from one pin (flip-flops
only, no LUTs) and drives LEDs, on the ULX3S 85F; yosys and nextpnr from the
yowasp wheels build both in this one run. The clock is constrained to
250 MHz so the router works for speed (these bitstreams are for measuring,
not for programming). Figures come from nextpnr's --report; LUT4s per input
bit count every LUT4 of the design, shift register and LED logic included.

Last line of output: one JSON object of the figures.
"""

import json
import math
import sys
import tempfile
from pathlib import Path

from amaranth.hdl import Cat, ClockDomain, Elaboratable, Module, Signal

from bitfab.hls_gen.compiler.boards import board
from bitfab.hls_gen.compiler.synth import (NEXTPNR_OPTS, parse_nextpnr_report, run_plan,
    use_yowasp)
from bitfab.rtl.popcount import Front, PopcountTree

WIDTH = 256
TARGET_MHZ = 250
STAGES = math.ceil(math.log2(WIDTH))   # a register after every level of the tree


class ObviousTree(Elaboratable):
    """Count ~(a ^ b) with a balanced tree of `+`, one register at each end."""

    def __init__(self, width):
        self.a, self.b = Signal(width), Signal(width)
        self.count = Signal(range(width + 1))

    def elaborate(self, platform):
        m = Module()
        bits = ~(self.a ^ self.b)
        terms = [bits[k] for k in range(len(bits))]
        while len(terms) > 1:
            terms = [terms[k] + terms[k + 1] if k + 1 < len(terms) else terms[k]
                     for k in range(0, len(terms), 2)]
        m.d.sync += self.count.eq(terms[0])
        return m


class Harness(Elaboratable):
    """Shift register -> registered a, b -> counter under test -> LEDs."""

    def __init__(self, kind):
        self.kind = kind

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = sync = ClockDomain("sync", reset_less=True)
        m.d.comb += sync.clk.eq(platform.request("clk25", 0).i)
        serial = platform.request("button_fire", 0).i
        shift = Signal(2 * WIDTH)
        m.d.sync += shift.eq(Cat(serial, shift[:-1]))
        a, b = Signal(WIDTH), Signal(WIDTH)
        m.d.sync += [a.eq(shift[:WIDTH]), b.eq(shift[WIDTH:])]
        count = Signal(range(WIDTH + 1))
        if self.kind == "bitfab":
            tree = m.submodules.tree = PopcountTree(WIDTH, Front.XNOR, stages=STAGES)
            m.d.comb += [tree.i.valid.eq(1), tree.i.payload.a.eq(a), tree.i.payload.b.eq(b),
                         tree.o.ready.eq(1)]
            m.d.sync += count.eq(tree.o.payload)
        else:
            tree = m.submodules.tree = ObviousTree(WIDTH)
            m.d.comb += [tree.a.eq(a), tree.b.eq(b)]
            m.d.comb += count.eq(tree.count)
        leds = [platform.request("led", k).o for k in range(8)]
        m.d.comb += [leds[k].eq(count[k]) for k in range(7)]
        m.d.comb += leds[7].eq(count[7] ^ count[8])
        return m


def build(kind, root, ulx3s):
    platform = ulx3s.platform_class()()
    plan = platform.build(Harness(kind), name=kind, build_dir=str(root / kind),
                          do_build=False, nextpnr_opts=NEXTPNR_OPTS)
    # Ask the router for TARGET_MHZ instead of the 25 MHz oscillator.
    lpf = f"{kind}.lpf"
    plan.files[lpf] = plan.files[lpf].replace("25000000.0 HZ", f"{TARGET_MHZ * 1e6:.1f} HZ")
    run_plan(plan, root / kind, kind, board("ulx3s-85f").family)
    figures = parse_nextpnr_report(root / kind / "report.json", ulx3s)
    report = json.loads((root / kind / "report.json").read_text())
    figures["lut4"] = report["utilization"]["TRELLIS_COMB"]["used"]
    figures["lut4_per_bit"] = round(figures["lut4"] / WIDTH, 3)
    return figures


def main():
    use_yowasp()
    ulx3s = board("ulx3s-85f")
    with tempfile.TemporaryDirectory(prefix="bitfab_popcount_") as tmp:
        results = {kind: build(kind, Path(tmp), ulx3s) for kind in ("bitfab", "obvious")}
    for kind, r in results.items():
        print(f"{kind:>8}: {r['lut4']} LUT4 ({r['lut4_per_bit']} per input bit), "
              f"{r['ffs']} FFs, fmax {r['fmax_mhz']} MHz", file=sys.stderr)
    ours, plain = results["bitfab"], results["obvious"]
    print(json.dumps({
        "width": WIDTH, "front": "xnor", "device": "LFE5U-85F", "clock_target_mhz": TARGET_MHZ,
        "bitfab_lut4_per_bit": ours["lut4_per_bit"], "bitfab_fmax_mhz": ours["fmax_mhz"],
        "obvious_lut4_per_bit": plain["lut4_per_bit"], "obvious_fmax_mhz": plain["fmax_mhz"],
        "bitfab_lut4": ours["lut4"], "obvious_lut4": plain["lut4"],
        "bitfab_ffs": ours["ffs"], "obvious_ffs": plain["ffs"], "bitfab_stages": STAGES,
        "target_lut4_per_bit": 2.0, "target_fmax_mhz": 200,
        "meets_target": ours["lut4_per_bit"] <= 2.0 and ours["fmax_mhz"] >= 200,
    }))


if __name__ == "__main__":
    main()

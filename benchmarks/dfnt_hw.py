"""Benchmark: the DFNT convolution engine against a direct integer convolution engine of
the same outputs per cycle, and the diminished-1 adder against a binary adder, all
placed and routed on ECP5 (ULX3S 85F) in this one run.

Engines (INT8 data and weights, 4 -> 4 channels, 32 x 32 images):

- DFNT, b = 32, L = 8: one spectrum column (8 modular products) per cycle, so
  T^2 / L outputs per cycle per channel pair, T = L - k + 1 (k = 5: 2; k = 7: 0.5);
- direct: `outputs` outputs per patch, each k x k dot product over `folds`
  cycles, chosen to give the same outputs per cycle (k = 5: 2 outputs, 1 fold,
  50 multipliers; k = 7: 1 output over 2 folds, 25 multipliers).

"Multipliers per output per cycle" is multipliers / (outputs per cycle per
channel pair): how many multipliers a design needs for each output it delivers
per cycle. Adders: the b = 32 diminished-1 adder in both styles (parallel prefix with
inverted end-around carry; carry select on the carry chains) and a plain
32-bit `+`, each between registers; post-route delay is the clock period at
nextpnr's fmax, the best of three placement seeds for each.

Every design sits between flip-flops fed from one pin (a shift register) and
XOR-folded onto the LEDs, so nothing is optimised away; all are mapped to
LUT4s by plain ABC (`PLAIN_ABC`: Yosys 0.70's ABC9 fails on the engine); the
clock is constrained high so the router works for speed (bitstreams for
measuring, not programming). Figures come from nextpnr's --report. Last line: one JSON object.

`--part adders` or `--part engines` runs one half, each with its own baseline (the
adders take minutes, the engines most of an hour).
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from amaranth.hdl import Cat, ClockDomain, Elaboratable, Module, Signal, Value
from amaranth.lib import wiring

from bitfab.hls_gen.compiler.boards import board
from bitfab.rtl.families.ecp5 import PLAIN_ABC
from bitfab.hls_gen.compiler.synth import (NEXTPNR_OPTS, parse_nextpnr_report,
    run_plan, use_yowasp)
from bitfab.rtl.dfnt_conv import DFNTConvEngine, DFNTEngineConfig
from bitfab.rtl.dim1 import Dim1Adder
from bitfab.rtl.direct_conv import DirectConvConfig, DirectConvEngine

CHANNELS, SIZE = 4, 32
SEEDS = (1, 2, 3)


class PlainAdder(wiring.Component):
    """x + y mod 2^b, the obvious way."""

    def __init__(self, b):
        self.b = b
        super().__init__({"x": wiring.In(b), "y": wiring.In(b), "z": wiring.Out(b)})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.z.eq(self.x + self.y)
        return m


class Harness(Elaboratable):
    """Shift register from a pin -> every input port of `make()`'s component; every
    output port, registered, XOR-folded onto 8 LEDs."""

    def __init__(self, make):
        self.make = make

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = sync = ClockDomain("sync", reset_less=True)
        m.d.comb += sync.clk.eq(platform.request("clk25", 0).i)
        dut = m.submodules.dut = self.make()
        ports = list(dut.signature.flatten(dut))
        inputs = [Value.cast(value) for _, member, value in ports if member.flow == wiring.In]
        outputs = [Value.cast(value) for _, member, value in ports if member.flow == wiring.Out]
        width = sum(len(v) for v in inputs)
        shift = Signal(width)
        m.d.sync += shift.eq(Cat(platform.request("button_fire", 0).i, shift[:-1]))
        offset = 0
        for value in inputs:
            m.d.comb += value.eq(shift[offset:offset + len(value)])
            offset += len(value)
        captured = Signal(sum(len(v) for v in outputs))
        m.d.sync += captured.eq(Cat(*outputs))
        leds = [platform.request("led", k).o for k in range(8)]
        for k, led in enumerate(leds):
            m.d.comb += led.eq(Cat(*captured[k::8]).xor())
        return m


def place_and_route(name, harness, root, ulx3s, target_mhz, seed=1):
    platform = ulx3s.platform_class()()
    start = time.perf_counter()
    plan = platform.build(harness, name=name, build_dir=str(root / name), do_build=False,
                          **PLAIN_ABC,
                          nextpnr_opts=f"{NEXTPNR_OPTS} --seed {seed}")
    lpf = f"{name}.lpf"
    plan.files[lpf] = plan.files[lpf].replace("25000000.0 HZ", f"{target_mhz * 1e6:.1f} HZ")
    run_plan(plan, root / name, name, board("ulx3s-85f").family)
    figures = parse_nextpnr_report(root / name / "report.json", ulx3s)
    figures["seconds"] = round(time.perf_counter() - start)
    print(f"{name}: {figures}", file=sys.stderr, flush=True)
    return figures


def engines(kernel):
    """(DFNT config, direct config) of equal outputs per cycle for a k x k kernel."""
    dfnt = DFNTEngineConfig(in_channels=CHANNELS, out_channels=CHANNELS, kernel=kernel,
                            height=SIZE, width=SIZE, padding=kernel // 2, b=32, length=8)
    per_cycle = dfnt.tile ** 2 / dfnt.length
    outputs, folds = (round(per_cycle), 1) if per_cycle >= 1 else (1, round(1 / per_cycle))
    direct = DirectConvConfig(in_channels=CHANNELS, out_channels=CHANNELS, kernel=kernel,
                              outputs=outputs, folds=folds)
    assert outputs / folds == per_cycle
    return dfnt, direct, per_cycle


def adders(root, ulx3s):
    """The b = 32 adders, the best of SEEDS placements each (nextpnr's placement varies
    by a few tens of MHz on a design this small)."""
    best_runs = {}
    for kind, make in (("dim1_prefix", lambda: Dim1Adder(32)),
                       ("dim1_carry", lambda: Dim1Adder(32, style="carry")),
                       ("binary", lambda: PlainAdder(32))):
        runs = [place_and_route(f"adder_{kind}_s{seed}", Harness(make), root, ulx3s, 400, seed)
                for seed in SEEDS]
        best_runs[kind] = max(runs, key=lambda r: r["fmax_mhz"])
    delay = {k: round(1000 / v["fmax_mhz"], 3) for k, v in best_runs.items()}
    best = min(("dim1_prefix", "dim1_carry"), key=delay.get)
    figures = {
        **{f"{k}_delay_ns": v for k, v in delay.items()},
        **{f"{k}_lut4": v["luts"] for k, v in best_runs.items()},
        "prefix_delay_ratio": round(delay["dim1_prefix"] / delay["binary"], 3),
        "carry_delay_ratio": round(delay["dim1_carry"] / delay["binary"], 3),
        "best_style": best.removeprefix("dim1_"),
        "delay_ratio": round(delay[best] / delay["binary"], 3), "target_ratio": 1.5,
        "meets_target": delay[best] / delay["binary"] <= 1.5, "seeds": len(SEEDS)}
    print(f"adders: {figures}", file=sys.stderr, flush=True)
    return figures


def engine_pair(kernel, root, ulx3s):
    """The DFNT engine and the direct engine of the same outputs per cycle, k x k."""
    dfnt, direct, per_cycle = engines(kernel)
    built = {
        "dfnt": place_and_route(f"dfnt_k{kernel}", Harness(lambda: DFNTConvEngine(dfnt)),
                                root, ulx3s, 150),
        "direct": place_and_route(f"direct_k{kernel}", Harness(lambda: DirectConvEngine(direct)),
                                  root, ulx3s, 150),
    }
    multipliers = {"dfnt": dfnt.length, "direct": direct.multipliers}
    entry = {"outputs_per_cycle": per_cycle, "dfnt_length": dfnt.length,
             "direct_outputs": direct.outputs, "direct_folds": direct.folds}
    for kind, result in built.items():
        entry[kind] = {key: result[key] for key in ("luts", "ffs", "brams", "dsps", "fmax_mhz")}
        entry[kind]["multipliers"] = multipliers[kind]
        entry[kind]["multipliers_per_output_per_cycle"] = round(multipliers[kind] / per_cycle, 3)
    ratio = entry["direct"]["multipliers_per_output_per_cycle"] / \
        entry["dfnt"]["multipliers_per_output_per_cycle"]
    entry["multiplier_ratio"] = round(ratio, 3)
    entry["meets_target"] = ratio >= 3
    return entry


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("all", "adders", "engines"), default="all")
    part = parser.parse_args().part
    use_yowasp()
    ulx3s = board("ulx3s-85f")
    figures = {"device": "LFE5U-85F", "channels": CHANNELS, "image": SIZE}
    with tempfile.TemporaryDirectory(prefix="bitfab_dfnt_hw_") as tmp:
        root = Path(tmp)
        if part in ("all", "adders"):
            figures["adder_b32"] = adders(root, ulx3s)
        if part in ("all", "engines"):
            for kernel in (5, 7):
                figures[f"k{kernel}"] = engine_pair(kernel, root, ulx3s)
            figures["target_multiplier_ratio"] = 3
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

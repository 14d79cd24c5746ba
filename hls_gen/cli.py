"""The ``bitfab`` command line."""

import argparse
import sys

from .errors import BitfabError

__all__ = ["main"]


def _demo(args):
    from dataclasses import replace

    from .demo import DemoConfig, run_demo
    from .freeze import FreezeConfig

    config = replace(DemoConfig(), archs=tuple(args.arch),
                     freeze=FreezeConfig(coef_bits=args.coef_bits, acc_bits=args.acc_bits))
    run_demo(args.out, config)


def parser():
    top = argparse.ArgumentParser(prog="bitfab", description=__doc__)
    commands = top.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="train float, PA and XNOR networks on the digits, freeze them to golden "
                     "models and report accuracies")
    demo.add_argument("--out", default="out/demo", help="output directory (default: out/demo)")
    demo.add_argument("--arch", nargs="+", choices=["mlp", "cnn"], default=["mlp", "cnn"],
                      help="architectures; the first one is the report's default model")
    demo.add_argument("--coef-bits", type=int, default=16,
                      help="signed width of the merged coefficients phi_k (default: 16)")
    demo.add_argument("--acc-bits", type=int, default=32,
                      help="largest accumulator width the hardware offers (default: 32)")
    demo.set_defaults(run=_demo)
    return top


def main(argv=None):
    args = parser().parse_args(argv)
    try:
        args.run(args)
    except (BitfabError, ValueError) as error:
        print(f"bitfab {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

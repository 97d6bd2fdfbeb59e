"""``alexnet``: dispatch to a subcommand; turn expected errors into a message and exit 2."""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from common.data import DataError
from footprint.estimate import FootprintError
from common.spec import SpecError
from impls.base import FrameworkUnavailable
from impls.foreign import ForeignModelError
from training.run_dir import RunDirError


def build_parser() -> argparse.ArgumentParser:
    from alexnet_cli import bench, convert, init, inspect_model, shapes, train
    from crosscheck import cli as crosscheck_cli

    parser = argparse.ArgumentParser(
        prog="alexnet", description="AlexNet in MXNet Gluon, PyTorch and TensorFlow from one spec, "
                                    "crosschecked layer by layer against a float64 reference.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    shapes.add_parser(sub)
    crosscheck_cli.add_parser(sub)
    train.add_parser(sub)
    bench.add_parser(sub)
    convert.add_parser(sub)
    inspect_model.add_parser(sub)
    init.add_parser(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (SpecError, DataError, RunDirError, FrameworkUnavailable, FootprintError, FileExistsError,
            ForeignModelError, OSError) as exc:
        if args.debug:
            raise
        print(f"alexnet {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"alexnet {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

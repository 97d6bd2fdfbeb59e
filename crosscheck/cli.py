"""``alexnet crosscheck``: arguments, run, print, write reports, exit code."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from footprint.estimate import crosscheck_estimate, refuse_if_too_big
from common.spec import SpecError
from common.variants import get_variant, variant_names
from common.weights import WeightsError, load_weights
from crosscheck.compare import Tolerances
from crosscheck.parity import PARITY_BATCH
from crosscheck.report import prepare_report_dir, terminal, write_reports
from crosscheck.run import (CHECKS, DEFAULT_CHECKS, SECOND_SIZE_CHECKS, all_frameworks,
                            known_frameworks, plan, run_crosscheck)
from alexnet_cli.args import add_tolerances, chw, choice_list, non_negative_int, positive_int


def framework_list(text: str) -> list[str]:
    """Frameworks and witnesses by name, or 'all': every framework and the installed witnesses."""
    return all_frameworks() if text == "all" else choice_list(known_frameworks(), allow_all=True)(text)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "crosscheck", help="compare every framework with the float64 reference, layer by layer",
        description="Load identical canonical weights into each framework, run the same inputs "
                    "(seeded normal images and one photograph), and compare every layer's output "
                    "with the float64 NumPy reference and between frameworks. Exit 0 when all "
                    "pass, 1 on a divergence, 2 on a usage or environment error.")
    p.add_argument("--variant", type=choice_list(variant_names(), allow_all=True), default="all",
                   help=f"a variant, a comma-separated list, or 'all' ({', '.join(variant_names())})")
    p.add_argument("--framework", type=framework_list, default="all",
                   help=f"comma-separated frameworks or 'all' ({', '.join(known_frameworks())}; "
                        "'all' includes an onnx-* witness only if it is installed; a witness "
                        "runs the forward check only)")
    p.add_argument("--check", type=choice_list(list(CHECKS), allow_all=True),
                   default=",".join(DEFAULT_CHECKS),
                   help="what to compare: forward (eval mode; always run, the other checks "
                        "build on it), backward (train-mode forward with shared dropout masks, "
                        "gradients end to end and layer-isolated), step (3 steps of each "
                        "framework's own SGD and Adam against the float64 update), fastpath (the "
                        "sessions 'alexnet bench' times, with each framework's fast path: output "
                        "and gradients against float64), train (20 "
                        "steps of SGD at lr 0.001 on real digits images, each framework's loss curve "
                        "against a float64 training run; minutes per large variant), distributed "
                        "(3 data-parallel steps of SGD and Adam on 2 worker processes of each "
                        "framework's own engine, every replica against the float64 steps on the "
                        "whole batch; ~10-20 s per framework and variant); "
                        "'all' is all six; default %(default)s")
    p.add_argument("--input", type=chw, metavar="CxHxW",
                   help="run every variant at this input shape only (e.g. 1x32x32 for weights "
                        "'alexnet train --dataset digits' wrote). Default: each variant at its own "
                        "input and at a second one chosen to exercise the size-dependent code "
                        "(adaptive bins that overlap and that do not, pools whose floor and ceil "
                        f"rounding differ, SAME padding with odd and even totals), where the "
                        f"{' and '.join(SECOND_SIZE_CHECKS)} checks run")
    p.add_argument("--num-classes", type=positive_int, metavar="N",
                   help="override every variant's number of classes")
    p.add_argument("--native-only", action="store_true",
                   help="skip the second input size (the default run has it)")
    p.add_argument("--device", choices=("cpu", "gpu", "auto"), default="auto",
                   help="auto = the GPU where a framework sees one, else the CPU (default)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of weights and inputs (default 0)")
    p.add_argument("--batch-size", type=positive_int, default=2,
                   help="seeded normal images per batch; the photograph is added (default 2)")
    p.add_argument("--weights", type=Path, metavar="FILE",
                   help="canonical weights (safetensors) to check instead of seeded ones; "
                        "needs a single --variant")
    p.add_argument("--require", choices=("all", "none"), default="none",
                   help="'all': a framework that is not installed is an error (exit 2)")
    p.add_argument("--report", type=Path, metavar="DIR",
                   help="also write crosscheck.json and crosscheck.md into DIR")
    p.add_argument("--force", action="store_true", help="overwrite existing report files")
    add_tolerances(p, Tolerances.rel_l2, Tolerances.norm_max)
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    weights = None
    if args.weights is not None:
        if len(args.variant) != 1:
            raise SpecError("--weights needs exactly one --variant (the one the file is for)")
        variant = get_variant(args.variant[0], num_classes=args.num_classes,
                              in_channels=args.input[0] if args.input else None,
                              input_size=args.input[1:] if args.input else None)
        try:
            weights = {args.variant[0]: load_weights(args.weights, variant)}
        except WeightsError as exc:
            if "another variant, input size" not in str(exc) or args.input:
                raise
            raise WeightsError(f"{exc}, or give the input and classes they were trained at "
                               f"(--input CxHxW, --num-classes N)") from None
    # the given weights fit one input size (fc6's width depends on it): no second size then;
    # an input too small for a variant is a SpecError here, before anything is written
    runs = plan(args.variant, tuple(args.check), input_shape=args.input, num_classes=args.num_classes,
                second_sizes=not (args.native_only or args.weights is not None))
    # a batch or input that cannot fit is refused before anything big is allocated
    refuse_if_too_big(crosscheck_estimate(runs, args.framework, parity_images=PARITY_BATCH),
                      args.batch_size, f"--batch-size {args.batch_size}"
                      + (f" at --input {'x'.join(map(str, args.input))}" if args.input else ""))
    if args.report is not None:  # fail before the run, not after it
        prepare_report_dir(args.report, args.force)
    progress = None if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    result = run_crosscheck(runs, args.framework, device=args.device, seed=args.seed,
                            batch_size=args.batch_size, require_all=args.require == "all",
                            checks=tuple(args.check),
                            tolerances=Tolerances(args.rel_l2_tol, args.norm_max_tol),
                            given_weights=weights, progress=progress)
    print(terminal(result), end="")
    if args.report is not None:
        for path in write_reports(result, args.report, overwrite=args.force):
            print(f"wrote {path}")
    return result.exit_code

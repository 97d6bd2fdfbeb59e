"""``alexnet inspect``: check an AlexNet someone else wrote against the spec (``inspection/``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from alexnet_cli.args import add_tolerances, chw, non_negative_int, positive_int
from alexnet_cli.convert import check_output
from common.spec import SpecError
from common.variants import get_variant, variant_names
from crosscheck.compare import Tolerances
from footprint.estimate import inspect_estimate, refuse_if_too_big


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "inspect", help="check someone else's AlexNet: which variant, where it differs, and why",
        description="Build the model TARGET names, find the variant it implements from its "
                    "layers with weights, put that variant's seeded canonical weights into it "
                    "(or read its own out), capture every layer's output in one forward pass, "
                    "and compare each layer with the float64 reference. Where a layer differs, "
                    "name the convention it computes instead. Exit 0 when the model computes "
                    "the variant exactly, 1 when it differs, 2 on a usage error.")
    p.add_argument("--model", required=True, metavar="TARGET",
                   help="path/to/file.py:factory or package.module:factory, a callable returning "
                        "a torch.nn.Module, a Gluon Block or a Keras model")
    p.add_argument("--variant", default="auto",
                   help=f"auto (default: found from the model) or one of {', '.join(variant_names())}")
    p.add_argument("--input", type=chw, metavar="CxHxW",
                   help="the input shape the model takes (default: found from its layers)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of weights and inputs")
    p.add_argument("--batch-size", type=positive_int, default=2,
                   help="seeded normal images per batch; the photograph is added (default 2)")
    p.add_argument("--own-weights", action="store_true",
                   help="check the model with its own weights (read out in canonical form) "
                        "instead of putting the variant's seeded weights in")
    p.add_argument("--map", type=Path, metavar="FILE",
                   help="JSON: spec layer -> the model's layer name, where layer order is "
                        "ambiguous, and optionally \"flatten\": \"chw\" or \"hwc\"")
    p.add_argument("--export", type=Path, metavar="FILE",
                   help="write the model's own weights as canonical safetensors (implies "
                        "--own-weights), verified as alexnet convert verifies its output")
    p.add_argument("--report", type=Path, metavar="DIR",
                   help="also write inspect.json, inspect.md and inspect.png into DIR")
    p.add_argument("--force", action="store_true", help="overwrite existing report or export files")
    add_tolerances(p, Tolerances.rel_l2, Tolerances.norm_max)
    p.add_argument("--quiet", action="store_true", help="print the verdict line only")
    p.set_defaults(func=run)


def read_map(path: Path) -> dict[str, str]:
    """``--map FILE``: a JSON object of strings; the keys are spec layers or "flatten"."""
    try:
        mapping = json.loads(path.read_text())
    except OSError as exc:
        raise SpecError(f"--map {path}: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SpecError(f"--map {path}: not JSON ({exc})") from None
    if not isinstance(mapping, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                for k, v in mapping.items()):
        raise SpecError(f"--map {path}: expected an object of strings, e.g. "
                        f'{{"conv1": "features.0", "flatten": "hwc"}}')
    if mapping.get("flatten", "chw") not in ("chw", "hwc"):
        raise SpecError(f"--map {path}: \"flatten\" is \"chw\" or \"hwc\", not {mapping['flatten']!r}")
    return mapping


def run(args: argparse.Namespace) -> int:
    from inspection import report
    from inspection.run import inspect
    from inspection.target import load

    if args.variant != "auto" and args.variant not in variant_names():
        raise SpecError(f"--variant {args.variant!r}: choose auto or one of {', '.join(variant_names())}")
    mapping = read_map(args.map) if args.map is not None else None
    if args.export is not None:
        check_output(args.export, None, args.force, option="--export")
    if args.report is not None:
        report.prepare(args.report, args.force)
    # the largest variant at the input asked for bounds what the inspection holds
    bound = get_variant("paper" if args.variant == "auto" else args.variant,
                        in_channels=args.input[0] if args.input else None,
                        input_size=args.input[1:] if args.input else None)
    target = load(args.model)
    refuse_if_too_big(inspect_estimate(bound, target.framework), args.batch_size,
                      f"--batch-size {args.batch_size}")
    progress = None if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    result = inspect(target, variant=None if args.variant == "auto" else args.variant,
                     input_shape=args.input, seed=args.seed, batch_size=args.batch_size,
                     own_weights=args.own_weights or args.export is not None, mapping=mapping,
                     tolerances=Tolerances(args.rel_l2_tol, args.norm_max_tol), progress=progress)
    print(report.terminal(result, quiet=args.quiet), end="")
    if args.report is not None:
        for path in report.write(result, args.report, overwrite=args.force):
            print(f"wrote {path}")
    if args.export is not None:
        from inspection.export import export
        check = export(result, args.export, overwrite=args.force)
        print(f"{'verified' if check.passed else 'FAILED verification'} ({check.seconds:.1f}s): "
              f"{check.summary()}")
        if not check.passed:
            print(f"nothing was written to {args.export}")
            return 1
        print(f"wrote {args.export}: {result.candidate.variant.name}, canonical safetensors")
    return result.exit_code

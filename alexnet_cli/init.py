"""``alexnet init``: write a variant's seeded canonical weights, the file every other command
can take (``crosscheck --weights``, ``convert --from``, ``train``'s examples)."""

from __future__ import annotations

import argparse
from pathlib import Path

from alexnet_cli.args import chw, non_negative_int, positive_int
from alexnet_cli.convert import check_output
from common.shapes import infer, totals
from common.variants import get_variant, variant_names
from common.weights import init_weights, save_weights


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "init", help="write a variant's seeded canonical weights (safetensors)",
        description="Write the seeded canonical weights of a variant (the ones the crosscheck, "
                    "convert and inspect examples start from) as safetensors: OIHW kernels, "
                    "(out, in) dense weights, C*H*W flatten order. Written atomically; an "
                    "existing file is never replaced without --force.")
    p.add_argument("--variant", required=True, help=f"one of {', '.join(variant_names())}")
    p.add_argument("--seed", type=non_negative_int, default=0, help="the seed (default 0)")
    p.add_argument("--num-classes", type=positive_int, help="override the variant's class count")
    p.add_argument("--input", type=chw, metavar="CxHxW",
                   help="override the input shape (the first dense layer's width follows it)")
    p.add_argument("--out", type=Path, required=True, metavar="FILE", help="the file to write")
    p.add_argument("--force", action="store_true", help="replace an existing file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    variant = get_variant(args.variant, num_classes=args.num_classes,
                          in_channels=args.input[0] if args.input else None,
                          input_size=args.input[1:] if args.input else None)
    parameters = totals(infer(variant))["params"]  # an input too small is refused here
    check_output(args.out, None, args.force, option="--out")
    weights = init_weights(variant, args.seed)
    save_weights(args.out, variant, weights, overwrite=args.force)
    shape = "x".join(map(str, variant.input_shape))
    print(f"wrote {args.out}: {variant.name} at {shape}, {variant.num_classes} classes, seed "
          f"{args.seed}, {len(weights)} arrays, {parameters:,} parameters")
    return 0

"""``alexnet convert``: one weight file to another format, verified by the crosscheck before
it is put in place."""

from __future__ import annotations

import argparse
import os
import secrets
import time
from pathlib import Path

from alexnet_cli.args import positive_int
from common.caffemodel import bgr_to_rgb, first_conv_weight
from common.shapes import infer, totals
from common.spec import Variant
from common.variants import get_variant, variant_names
from common.weights import WeightsError
from impls.base import load_backend
from impls.formats import FORMATS, parse_location, read, write


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "convert", help="convert a weight file between canonical, PyTorch, Gluon, Keras and Caffe formats",
        description="Read a weight file, write it in another format, read the result back with "
                    "its own framework and verify it: the arrays must be identical and both "
                    "frameworks must match the float64 reference layer by layer. A conversion "
                    "that fails verification leaves nothing behind. Formats: "
                    + "; ".join(f"{f.name} ({f.description}, {'/'.join(f.suffixes)})"
                                for f in FORMATS.values()) + ".")
    p.add_argument("--variant", required=True, help=f"one of {', '.join(variant_names())}")
    p.add_argument("--num-classes", type=positive_int, help="override the variant's class count")
    p.add_argument("--from", dest="source", required=True, metavar="[FORMAT:]FILE",
                   help="the file to read; FORMAT may be left out where the suffix tells it")
    p.add_argument("--to", dest="target", required=True, metavar="[FORMAT:]FILE",
                   help="the file to write (never over an existing one without --force)")
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    order = p.add_mutually_exclusive_group()
    order.add_argument("--bgr-to-rgb", action="store_true",
                       help="reading caffe: reverse conv1's input channels, so that the written "
                            "model computes on RGB input what the Caffe model computes on BGR")
    order.add_argument("--rgb-to-bgr", action="store_true",
                       help="writing caffe: reverse conv1's input channels, so that the .caffemodel "
                            "computes on BGR input what the source computes on RGB")
    p.add_argument("--no-verify", action="store_true", help="skip the verification")
    p.add_argument("--device", choices=("cpu", "gpu", "auto"), default="cpu",
                   help="where the verification runs (default cpu)")
    p.set_defaults(func=run)


def check_output(path: Path, source: Path | None, force: bool, option: str = "--to") -> None:
    """Refuse an output path that cannot or must not be written (exists without ``force``,
    is ``source``, a directory, in a missing or read-only folder), with a clear message."""
    if source is not None and path.resolve() == source.resolve():
        raise WeightsError(f"{option} {path} is the file being read; write to another file")
    if path.is_dir():
        raise WeightsError(f"{option} {path} is a directory; give a file name")
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists; pass --force to overwrite it")
    if path.parent.exists() and not path.parent.is_dir():
        raise WeightsError(f"{option} {path}: {path.parent} is a file, not a folder; write into a folder")
    if not path.parent.is_dir():
        raise WeightsError(f"the folder {path.parent} does not exist; create it first")
    if not os.access(path.parent, os.W_OK):
        raise WeightsError(f"the folder {path.parent} is not writable")


def channel_flip(args: argparse.Namespace, variant: Variant, source: str, target: str) -> str | None:
    """The colour-order option given (``--bgr-to-rgb`` or ``--rgb-to-bgr``), if any, after
    refusing it where it makes no sense: BGR is Caffe's order, so one side, and only one,
    must be caffe, and the variant must take 3 channels."""
    option = "--bgr-to-rgb" if args.bgr_to_rgb else "--rgb-to-bgr" if args.rgb_to_bgr else None
    if option is None:
        return None
    side, other = (source, target) if option == "--bgr-to-rgb" else (target, source)
    if side != "caffe":
        raise WeightsError(f"{option} is for Caffe's BGR models: it needs "
                           f"{'--from' if option == '--bgr-to-rgb' else '--to'} caffe:FILE, "
                           f"not {side}; this package cannot tell the colour order of "
                           f"other formats' weights")
    if other == "caffe":
        raise WeightsError(f"{option} with caffe on both sides would write a .caffemodel that "
                           f"takes RGB, which Caffe's tools do not feed it; convert to another "
                           f"format")
    first_conv_weight(variant)  # a variant without 3 input channels: refused here
    return option


def run(args: argparse.Namespace) -> int:
    variant = get_variant(args.variant, num_classes=args.num_classes)
    (source_fmt, source_path), (target_fmt, target_path) = (parse_location(args.source),
                                                            parse_location(args.target))
    check_output(target_path, source_path, args.force)
    flip = channel_flip(args, variant, source_fmt.name, target_fmt.name)
    for framework in {source_fmt.framework, target_fmt.framework} - {None}:
        load_backend(framework)  # not installed: a clear error before anything is read

    start = time.perf_counter()
    weights = read(source_fmt, source_path, variant)
    if flip:
        weights = bgr_to_rgb(variant, weights)
    # Written beside the target under a temporary name (ending as the target's does, for
    # Keras), read back and verified there; only a verified file is renamed into place.
    staging = target_path.parent / f".convert-{secrets.token_hex(4)}-{target_path.name}"
    try:
        write(target_fmt, staging, variant, weights)
        converted = read(target_fmt, staging, variant)
        seconds = time.perf_counter() - start
        parameters = totals(infer(variant))["params"]
        print(f"{source_fmt.name}:{source_path} -> {target_fmt.name}:{target_path}: {variant.name}, "
              f"{len(weights)} arrays, {parameters:,} parameters, {seconds:.1f}s")
        if flip:
            print(f"{flip}: {first_conv_weight(variant)}'s input channels reversed; "
                  + ("the written model takes RGB input where the .caffemodel took BGR"
                     if flip == "--bgr-to-rgb" else
                     "the .caffemodel takes BGR input where the source took RGB"))
        else:
            for note in dict.fromkeys(f.note for f in (source_fmt, target_fmt) if f.note):
                print(f"note: {note}")
        if not args.no_verify:
            from crosscheck.conversion import verify_conversion
            check = verify_conversion(variant, weights, converted, source_fmt.framework,
                                      target_fmt.framework, device=args.device)
            verdict = "verified" if check.passed else "FAILED verification"
            print(f"{verdict} ({check.seconds:.1f}s): {check.summary()}")
            if not check.passed:
                print(f"nothing was written to {target_path}")
                return 1
        if target_path.exists() and not args.force:  # appeared while converting
            raise FileExistsError(f"{target_path} exists; pass --force to overwrite it")
        os.replace(staging, target_path)
    finally:
        staging.unlink(missing_ok=True)
    return 0

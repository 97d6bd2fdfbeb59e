"""``alexnet train``: train a variant in one framework on a real data set."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from alexnet_cli.args import positive_int
from common.data import DATASETS
from common.optim import OPTIMIZERS
from common.variants import variant_names
from impls.base import FRAMEWORKS


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train a variant in one framework on a real data set",
        description="Train with the framework's own training step and optimizer; the data "
                    "pipeline, metrics and checkpoints are shared by all three frameworks. One "
                    "line per epoch: train loss, train accuracy, test accuracy, seconds, images/s.")
    p.add_argument("--framework", choices=list(FRAMEWORKS), required=True)
    p.add_argument("--variant", choices=variant_names(), required=True)
    p.add_argument("--dataset", choices=DATASETS, required=True,
                   help="digits needs no files; fashion-mnist and cifar10 read --data-dir")
    p.add_argument("--data-dir", type=Path, metavar="DIR",
                   help="the folder with the data set's files (IDX .gz, or cifar-10-batches-bin)")
    p.add_argument("--epochs", type=positive_int, default=10)
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--optimizer", choices=list(OPTIMIZERS), default="sgd",
                   help="sgd: momentum 0.9, weight decay 5e-4, lr 0.01 (the paper); adam: lr 1e-3")
    p.add_argument("--lr", type=positive_float, help="learning rate (default: the optimizer's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=("cpu", "gpu", "auto"), default="auto")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="write metrics.json, metrics.csv and weights-epochN.safetensors here")
    p.add_argument("--force", action="store_true", help="overwrite a run already in --out")
    p.add_argument("--quiet", action="store_true", help="no header line")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from training.loop import TrainConfig, train

    config = TrainConfig(args.framework, args.variant, args.dataset, args.data_dir, args.epochs,
                         args.batch_size, args.optimizer, args.lr, args.seed, args.device,
                         args.out, args.force)
    def say(line: str) -> None:
        if not (args.quiet and not line.startswith("epoch")):
            print(line, flush=True)

    history = train(config, say=say)
    if args.out is not None:
        print(f"wrote {args.out / 'metrics.json'}, metrics.csv and {len(history)} checkpoint(s)",
              file=sys.stderr)
    return 0

"""``alexnet train`` and ``alexnet evaluate``: train a variant in one framework on a real
data set, and measure saved weights on its test split."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from alexnet_cli.args import non_negative_int, positive_float, positive_int
from common.data import DATASETS
from footprint.estimate import activations_on_host, refuse_if_too_big, train_estimate
from common.optim import OPTIMIZERS
from common.variants import variant_names
from impls.base import FRAMEWORKS


def _add_data_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--framework", choices=list(FRAMEWORKS), required=True)
    p.add_argument("--variant", choices=variant_names(), required=True)
    p.add_argument("--dataset", choices=DATASETS, required=True,
                   help="digits needs no files; fashion-mnist and cifar10 read --data-dir")
    p.add_argument("--data-dir", type=Path, metavar="DIR",
                   help="the folder with the data set's files (IDX .gz, or cifar-10-batches-bin)")
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--device", choices=("cpu", "gpu", "auto"), default="auto")
    p.add_argument("--subset", type=positive_int, metavar="N",
                   help="use only the first N images of each split (a quick smoke run)")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train a variant in one framework on a real data set",
        description="Train with the framework's own training step and optimizer; the data "
                    "pipeline, metrics and checkpoints are shared by all three frameworks. One "
                    "line per epoch: train loss, train accuracy, test accuracy, seconds, images/s.")
    _add_data_arguments(p)
    p.add_argument("--epochs", type=positive_int, default=10)
    p.add_argument("--optimizer", choices=list(OPTIMIZERS), default="sgd",
                   help="sgd: momentum 0.9, weight decay 5e-4, lr 0.01 (the paper); adam: lr 1e-3")
    p.add_argument("--lr", type=positive_float, help="learning rate (default: the optimizer's)")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--augment", action="store_true",
                   help="the paper's augmentation: random crops of the image scaled by 256/224, "
                        "horizontal flips, PCA colour noise (std 0.1)")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="write checkpoints (canonical, native, optimizer state), metrics.json, "
                        "metrics.csv and curves.png here after every epoch")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true",
                       help="continue the run in --out after its last completed epoch")
    group.add_argument("--force", action="store_true", help="overwrite a run already in --out")
    p.add_argument("--quiet", action="store_true", help="no header line and no progress bar")
    p.add_argument("--workers", type=positive_int, default=1, metavar="N",
                   help="train data-parallel in N processes on this machine, with the framework's "
                        "own engine (PyTorch DDP over gloo, TensorFlow MultiWorkerMirroredStrategy, "
                        "MXNet KVStore dist_sync): each takes 1/N of every batch, so --batch-size "
                        "(the global batch) must be a multiple of N, and each epoch's last "
                        "incomplete batch is dropped (default 1: one process, nothing dropped)")
    p.set_defaults(func=run_train)

    e = subparsers.add_parser(
        "evaluate", help="test accuracy of saved weights in one framework",
        description="Load canonical weights (a .safetensors file from 'alexnet train' or "
                    "'alexnet convert') and measure top-1 accuracy on the test split.")
    _add_data_arguments(e)
    e.add_argument("--weights", type=Path, required=True, metavar="FILE")
    e.add_argument("--ten-crop", action="store_true",
                   help="average the paper's ten crops (corners, centre, mirrored) of each image "
                        "scaled by 256/224, instead of one resized view")
    e.set_defaults(func=run_evaluate)


def run_train(args: argparse.Namespace) -> int:
    from alexnet_cli.train_workers import run_workers, workers_estimate
    from training.loop import TrainConfig, printer, train

    if args.resume and args.out is None:
        print("alexnet train: error: --resume needs --out, the directory of the run to continue",
              file=sys.stderr)
        return 2
    estimate = train_estimate(args.variant, args.framework, args.dataset,
                              optimizer=args.optimizer, subset=args.subset,
                              checkpoints=args.out is not None,
                              activations_on_host=activations_on_host(args.device))
    if args.workers > 1:  # N processes on this machine's memory
        estimate = workers_estimate(estimate, args.framework, args.workers)
    refuse_if_too_big(estimate, args.batch_size, f"--batch-size {args.batch_size}"
                      + (f" over --workers {args.workers}" if args.workers > 1 else ""))
    config = TrainConfig(args.framework, args.variant, args.dataset, args.data_dir, args.epochs,
                         args.batch_size, args.optimizer, args.lr, args.seed, args.device,
                         args.out, args.force, args.resume, args.augment, args.subset,
                         progress=not args.quiet)
    if args.workers > 1:
        return run_workers(config, args.workers, args.quiet)

    history = train(config, say=printer(args.quiet))
    if args.out is not None:
        print(f"wrote {args.out}: checkpoints of epoch {history[-1].epoch if history else 0}, "
              f"metrics.json, metrics.csv, curves.png", file=sys.stderr)
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from training.evaluate import evaluate

    result = evaluate(args.framework, args.variant, args.weights, args.dataset, args.data_dir,
                      ten_crop=args.ten_crop, batch_size=args.batch_size, device=args.device,
                      subset=args.subset)
    print(result.line())
    return 0

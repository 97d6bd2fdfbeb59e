"""``alexnet train --workers N``: check the run here, then train it in N worker processes of
the framework's own data-parallel engine on this machine (``distributed/launch.py``).

Each worker runs ``training.loop.train`` with its engine (``distributed/worker.py``). What
can be refused is refused here, before any process starts, with exit 2 as in a single
process: a batch that does not split over the workers, data that does not load, an output
directory that cannot be used or resumed. A worker that fails anyway stops the run: its
message and exit 1.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, replace
from pathlib import Path

from footprint.estimate import TRAIN_BASE, Estimate
from training.loop import TrainConfig


class WorkersError(ValueError):
    """Settings a data-parallel run cannot take (the message says which and why)."""


def check_batch(batch_size: int, workers: int) -> None:
    """WorkersError unless ``batch_size`` (the global batch) splits evenly over ``workers``."""
    if batch_size % workers:
        raise WorkersError(f"--batch-size {batch_size} does not split evenly over --workers "
                           f"{workers}: use a multiple of {workers}")


def workers_estimate(estimate: Estimate, framework: str, workers: int) -> Estimate:
    """``estimate`` (one process training at the whole batch) for ``workers`` processes at the
    same global batch: each holds the framework, the parameters and the data set (the fixed
    part N times) and the activations of its shard only (the part per image once). MXNet adds
    its scheduler and server, each a framework import (the server's copy of the parameters is
    small beside the workers')."""
    extra = 2 * TRAIN_BASE["mxnet"] if framework == "mxnet" else 0
    servers = " (and MXNet's scheduler and server)" if extra else ""
    return replace(estimate, phases=tuple(
        replace(phase, fixed=phase.fixed * workers + extra,
                holds=f"{workers} workers, each with {phase.holds}{servers},")
        for phase in estimate.phases))


def job(config: TrainConfig, quiet: bool) -> dict:
    """``distributed.worker``'s JSON job of ``config``: its fields, the paths apart."""
    fields = asdict(config)
    paths = {key: str(value) for key, value in fields.items() if isinstance(value, Path)}
    return {"kind": "train", "framework": config.framework, "device": config.device,
            "config": {key: value for key, value in fields.items() if not isinstance(value, Path)},
            "paths": paths, "quiet": quiet}


def run_workers(config: TrainConfig, workers: int, quiet: bool) -> int:
    """Check ``config`` for ``workers`` workers, prepare its output directory, launch them and
    wait. 0 when all finished; 2 for settings refused here, 1 when a worker failed (each with
    its message). Data and run-directory errors are raised, for ``alexnet``'s exit 2."""
    from distributed.launch import LaunchError, launch

    try:
        _check(config, workers)
        launch(config.framework, workers, job(config, quiet))
    except WorkersError as exc:
        print(f"alexnet train: error: {exc}", file=sys.stderr)
        return 2
    except LaunchError as exc:
        print(f"alexnet train: error: {workers} workers of {config.framework}: {exc}",
              file=sys.stderr)
        return 1
    if config.out is not None:
        print(f"wrote {config.out}: checkpoints of epoch {config.epochs}, metrics.json, "
              f"metrics.csv, curves.png", file=sys.stderr)
    return 0


def _check(config: TrainConfig, workers: int) -> None:
    """Refuse here what the workers would refuse, and prepare ``config.out``."""
    from common import data
    from training import run_dir

    check_batch(config.batch_size, workers)
    # The data is loaded here once, only to refuse what does not load before anything else,
    # as one process does (no output directory is created for data that fails).
    train_images = len(data.load(config.dataset, "train", config.data_dir)[1])
    data.load(config.dataset, "test", config.data_dir)
    train_images = min(train_images, config.subset or train_images)
    if train_images < config.batch_size:
        raise WorkersError(f"--batch-size {config.batch_size} is more than the {train_images} "
                           f"training images, and data-parallel runs drop an incomplete batch: "
                           f"lower --batch-size")
    if config.out is not None:
        # Rank 0 prepares it again, but here the other workers cannot read a resumed run
        # before it was checked, and a refusal is a message, not a failed launch.
        run_dir.prepare(config.out, force=config.force, resume=config.resume)
        if config.resume:
            run_dir.committed(config.out, {**asdict(config), "workers": workers})

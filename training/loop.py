"""The training loop every framework shares: data, metrics, logging, checkpoints.

Each framework contributes only its own step (``backend.fit_step``: forward in train
mode with its own dropout, loss, backward, its own optimizer), inference
(``backend.predict``) and its checkpoint format, from ``impls/<framework>/``. The
rest is here, once: the data pipeline, the per-epoch line and progress bar, and the
run directory (``training.run_dir``).

Resuming repeats an uninterrupted run: the batches and augmentation of epoch N depend
only on (seed, N), the dropout generator is re-seeded from (seed, N) at the start of
each epoch, and the optimizer's state is restored with the weights.

Data-parallel (``alexnet train --workers N``): the same loop runs in each worker process
with the framework's engine (``impls/parallel.py``), which builds the replica, averages
the gradients and sums the metrics over the workers; each worker steps on its shard of
every global batch (``distributed/shard.py``); rank 0 alone prints and writes.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from common import data, pipeline
from common.optim import OPTIMIZERS, OptimizerSpec
from common.variants import get_variant
from common.weights import init_weights
from distributed.shard import shard, writes
from impls.base import load_backend, select_device
from training import run_dir
from training.metrics import EpochMetrics


@dataclass(frozen=True)
class TrainConfig:
    framework: str
    variant: str
    dataset: str
    data_dir: Optional[Path] = None
    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "sgd"
    lr: Optional[float] = None  # None: the setting's own (common.optim.OPTIMIZERS)
    seed: int = 0
    device: str = "cpu"
    out: Optional[Path] = None
    force: bool = False
    resume: bool = False
    augment: bool = False
    subset: Optional[int] = None  # only the first N images of each split (smoke runs)
    progress: bool = True


def optimizer_spec(name: str, lr: Optional[float]) -> OptimizerSpec:
    spec = OPTIMIZERS[name]
    return spec if lr is None else OptimizerSpec(**{**asdict(spec), "lr": lr})


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """The dropout seed of one epoch of worker ``rank``: a resumed run draws the same masks.
    Rank 0's is a single process's; every other worker draws masks of its own."""
    return int(np.random.default_rng([seed, epoch, 2] if rank == 0 else [seed, epoch, 2, rank])
               .integers(2**31))


def correct_predictions(backend: Any, model: Any, images: np.ndarray, labels: np.ndarray,
                        view: Callable[[np.ndarray], np.ndarray], batch_size: int) -> int:
    """How many of ``images``, as ``view`` shows them, ``model`` classifies right."""
    correct = 0
    for start in range(0, len(images), batch_size):
        logits = backend.predict(model, view(images[start:start + batch_size]))
        correct += int((logits.argmax(axis=1) == labels[start:start + batch_size]).sum())
    return correct


def accuracy(backend: Any, model: Any, images: np.ndarray, labels: np.ndarray,
             view: Callable[[np.ndarray], np.ndarray], batch_size: int) -> float:
    """Top-1 accuracy of ``model`` on ``images`` as ``view`` shows them."""
    return correct_predictions(backend, model, images, labels, view, batch_size) / max(len(images), 1)


def train(config: TrainConfig, say: Callable[[str], None] = print,
          engine: Optional[Any] = None) -> list[EpochMetrics]:
    """Train ``config.variant`` in ``config.framework`` on ``config.dataset``; returns
    every epoch's metrics (those of a resumed run's earlier epochs included).

    ``engine``: this process is one worker of a data-parallel run (``impls.parallel.Engine``,
    already joined to its group): the metrics returned are the global ones on every worker;
    only the worker that ``distributed.shard.writes`` calls ``say``, draws the progress bar
    and writes ``config.out`` (which it prepares again: ``alexnet train --workers`` has
    prepared it before the launch, another launcher may not have)."""
    train_x, train_y = data.load(config.dataset, "train", config.data_dir)
    test_x, test_y = data.load(config.dataset, "test", config.data_dir)
    if config.subset is not None:
        train_x, train_y = train_x[:config.subset], train_y[:config.subset]
        test_x, test_y = test_x[:config.subset], test_y[:config.subset]
    variant = get_variant(config.variant, num_classes=data.NUM_CLASSES[config.dataset],
                          in_channels=train_x.shape[1])
    transforms = pipeline.Transforms.fit(variant.input_shape, train_x, config.augment)
    if engine is None:
        backend = load_backend(config.framework)
        device = select_device(backend, config.device, exact=False)
        rank, size, builder = 0, 1, backend
    else:  # load_engine has put the backend on its device (one GPU per worker on its node)
        from impls.parallel import ENGINE_NAMES

        backend, rank, size, builder = engine.backend, engine.rank, engine.size, engine
        device = f"--device {config.device} in {size} workers, {ENGINE_NAMES[config.framework]}"
    writer = writes(rank)
    if not writer:
        say = _silent
    info = {**{k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
            "input_shape": list(variant.input_shape),
            "normalization": asdict(transforms.normalization)}
    if engine is not None:  # a resumed run must have as many workers (run_dir.RESUME_KEYS)
        info["workers"] = size

    history: list[EpochMetrics] = []
    weights, optimizer_state = None, None
    if config.out is not None:  # fail before the work, not after it
        if writer:
            run_dir.prepare(config.out, force=config.force, resume=config.resume)
        if engine is not None and config.resume:
            engine.sum_all([0.0])  # a barrier: no worker reads the run before rank 0 checked it
        if config.resume:  # every worker reads the last checkpoint; none writes to it
            resumed = run_dir.load_last(config.out, info, variant, backend.native_suffix)
            history, weights, optimizer_state = (resumed.history, resumed.weights,
                                                 resumed.optimizer_state)
    model = builder.build(variant, weights if weights is not None else init_weights(variant, config.seed))
    optimizer = builder.make_optimizer(model, optimizer_spec(config.optimizer, config.lr))
    if optimizer_state is not None:
        try:
            backend.load_optimizer_state(optimizer, optimizer_state)
        except Exception as exc:  # each framework raises its own types for state that does not fit
            raise run_dir.RunDirError(
                f"cannot resume: the optimizer state in {config.out} does not fit a {config.optimizer} "
                f"optimizer of {config.variant} ({type(exc).__name__}: {exc}); start the run again "
                f"without --resume") from None
    say(f"{config.framework} {backend.version()} on {device}: {config.variant} "
        f"{'x'.join(map(str, variant.input_shape))}, {config.dataset} "
        f"({len(train_x)} train, {len(test_x)} test), {config.optimizer}"
        f"{', augmented' if config.augment else ''}"
        f"{f', resuming after epoch {len(history)}' if history else ''}")

    # each worker evaluates its contiguous part of the test split; the counts are summed
    test_part = slice(rank * len(test_x) // size, (rank + 1) * len(test_x) // size)
    for epoch in range(len(history) + 1, config.epochs + 1):
        # rank 0 calls it as a single process does (a test replaces the two-argument form)
        backend.reseed(model, epoch_seed(config.seed, epoch) if rank == 0
                       else epoch_seed(config.seed, epoch, rank))
        start = time.perf_counter()
        loss_sum, correct, seen = 0.0, 0, 0
        # Every worker draws the same global batches and prepares each whole, then keeps its
        # shard: simple, and the augmentation draws are a single process's; the preparing is
        # repeated in each worker. Data-parallel, the last incomplete batch is dropped, so
        # that every global batch splits evenly over the workers.
        batches = pipeline.Batches(train_x, train_y, config.batch_size, prepare=transforms.train,
                                   seed=config.seed, epoch=epoch, drop_last=engine is not None)
        if engine is not None and not len(batches):
            raise ValueError(f"no complete batch of {config.batch_size} in {len(train_x)} training "
                             f"images: data-parallel runs drop an incomplete batch; lower --batch-size")
        for x, y in _progress(batches, f"epoch {epoch}", config.progress and writer):
            if engine is None:
                loss, right = backend.fit_step(model, optimizer, x, y)
            else:
                y = shard(y, rank, size)
                loss, right = engine.fit_step(model, optimizer, shard(x, rank, size), y)
            loss_sum, correct, seen = loss_sum + loss * len(y), correct + right, seen + len(y)
        seconds = time.perf_counter() - start
        test_correct = correct_predictions(backend, model, test_x[test_part], test_y[test_part],
                                           transforms.test, config.batch_size)
        if engine is not None:  # the global figures, on every worker
            loss_sum, correct, seen, test_correct = engine.sum_all(
                [loss_sum, correct, seen, test_correct])
        history.append(EpochMetrics(epoch, loss_sum / seen, correct / seen,
                                    test_correct / max(len(test_x), 1), seconds, seen / seconds))
        say(history[-1].line())
        if config.out is not None and writer:
            run_dir.write_epoch(config.out, epoch, backend, model, optimizer, variant, history, info)
    return history


def printer(quiet: bool) -> Callable[[str], None]:
    """``alexnet train``'s ``say`` (one process, or rank 0 of the workers): print each line at
    once; with ``quiet``, only the epoch lines."""
    def say(line: str) -> None:
        if not (quiet and not line.startswith("epoch")):
            print(line, flush=True)
    return say


def _silent(line: str) -> None:
    """``say`` of a worker that does not print (only rank 0 does)."""


def _progress(batches: pipeline.Batches, label: str, enabled: bool):
    """A tqdm bar on stderr within an epoch; none when stderr is not a terminal."""
    from tqdm import tqdm

    return tqdm(batches, desc=label, unit="batch", leave=False, file=sys.stderr,
                disable=not enabled or not sys.stderr.isatty())

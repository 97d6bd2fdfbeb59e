"""The training loop every framework shares: data, metrics, logging, checkpoints.

Each framework contributes only its own step (``backend.fit_step``: forward in train
mode with its own dropout, loss, backward, its own optimizer) and inference
(``backend.predict``), from ``impls/<framework>/training.py``. Everything else is
here, once: the data pipeline, the per-epoch line, metrics in CSV and JSON, and
canonical weights after every epoch (safetensors, written atomically).
"""

from __future__ import annotations

import csv
import io
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from common import data, pipeline
from common.optim import OPTIMIZERS, OptimizerSpec
from common.spec import Variant
from common.variants import get_variant
from common.weights import atomic_write_bytes, init_weights, save_weights
from impls.base import load_backend

OUTPUT_FILES = ("metrics.json", "metrics.csv")


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


@dataclass
class EpochMetrics:
    epoch: int
    train_loss: float
    train_accuracy: float
    test_accuracy: float
    seconds: float
    images_per_second: float

    def line(self) -> str:
        """One line per epoch, like the seeds'."""
        return (f"epoch {self.epoch}, loss {self.train_loss:.4f}, train acc {self.train_accuracy:.3f}, "
                f"test acc {self.test_accuracy:.3f}, {self.seconds:.1f} sec, "
                f"{self.images_per_second:.0f} images/sec")


def optimizer_spec(name: str, lr: Optional[float]) -> OptimizerSpec:
    spec = OPTIMIZERS[name]
    return spec if lr is None else OptimizerSpec(**{**asdict(spec), "lr": lr})


def prepare_out_dir(out: Path, force: bool) -> None:
    """Create ``out``; FileExistsError if it already holds a run and not ``force``."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(f"cannot create output directory {out}: {exc.strerror}") from None
    existing = [p.name for p in sorted(out.iterdir())
                if p.name in OUTPUT_FILES or p.name.startswith("weights-epoch")]
    if existing and not force:
        raise FileExistsError(f"{out} already holds a run ({', '.join(existing)}); "
                              f"pass --force to overwrite it")


def accuracy(backend, model, images: np.ndarray, labels: np.ndarray, prepare,
             batch_size: int) -> float:
    correct = 0
    for start in range(0, len(images), batch_size):
        logits = backend.predict(model, prepare(images[start:start + batch_size]))
        correct += int((logits.argmax(axis=1) == labels[start:start + batch_size]).sum())
    return correct / max(len(images), 1)


def write_metrics(out: Path, history: list[EpochMetrics], config: TrainConfig, variant: Variant) -> None:
    rows = [asdict(m) for m in history]
    info = {**{k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
            "input_shape": list(variant.input_shape)}
    atomic_write_bytes(out / "metrics.json", (json.dumps({"config": info, "epochs": rows}, indent=2)
                                             + "\n").encode(), overwrite=True)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(asdict(history[0])))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(out / "metrics.csv", text.getvalue().encode(), overwrite=True)


def train(config: TrainConfig, say: Callable[[str], None] = print) -> list[EpochMetrics]:
    """Train ``config.variant`` in ``config.framework`` on ``config.dataset``."""
    if config.out is not None:
        prepare_out_dir(config.out, config.force)  # fail before the work, not after it
    train_x, train_y = data.load(config.dataset, "train", config.data_dir)
    test_x, test_y = data.load(config.dataset, "test", config.data_dir)
    variant = get_variant(config.variant, num_classes=data.NUM_CLASSES[config.dataset],
                          in_channels=train_x.shape[1])
    normalization = pipeline.Normalization.of(train_x)
    prepare = pipeline.eval_prepare(variant.input_shape[1:], variant.input_shape[0], normalization)
    backend = load_backend(config.framework)
    device = backend.use_device(config.device) if config.device != "auto" else (
        _auto_device(backend))
    model = backend.build(variant, init_weights(variant, config.seed))
    optimizer = backend.make_optimizer(model, optimizer_spec(config.optimizer, config.lr))
    say(f"{config.framework} {backend.version()} on {device}: {config.variant} "
        f"{'x'.join(map(str, variant.input_shape))}, {config.dataset} "
        f"({len(train_x)} train, {len(test_x)} test), {config.optimizer}")
    history: list[EpochMetrics] = []
    for epoch in range(1, config.epochs + 1):
        start = time.perf_counter()
        losses, correct, seen = [], 0, 0
        batches = pipeline.Batches(train_x, train_y, config.batch_size,
                                   prepare=lambda x, rng: prepare(x), seed=config.seed, epoch=epoch)
        for x, y in _progress(batches, f"epoch {epoch}"):
            loss, right = backend.fit_step(model, optimizer, x, y)
            losses.append(loss * len(y))
            correct, seen = correct + right, seen + len(y)
        seconds = time.perf_counter() - start
        test_accuracy = accuracy(backend, model, test_x, test_y, prepare, config.batch_size)
        metrics = EpochMetrics(epoch, float(np.sum(losses) / seen), correct / seen, test_accuracy,
                               seconds, seen / seconds)
        history.append(metrics)
        say(metrics.line())
        if config.out is not None:
            save_weights(config.out / f"weights-epoch{epoch}.safetensors", variant,
                         backend.export_weights(model), overwrite=True)
            write_metrics(config.out, history, config, variant)
    return history


def _auto_device(backend) -> str:
    from impls.base import FrameworkUnavailable
    try:
        return backend.use_device("gpu")
    except FrameworkUnavailable:
        return backend.use_device("cpu")


def _progress(batches, label: str):
    """A progress count on stderr within an epoch, only when stderr is a terminal."""
    if not sys.stderr.isatty():
        yield from batches
        return
    total = len(batches)
    for index, item in enumerate(batches, 1):
        print(f"\r{label}: {index}/{total}", end="", file=sys.stderr, flush=True)
        yield item
    print("\r" + " " * (len(label) + 24) + "\r", end="", file=sys.stderr, flush=True)

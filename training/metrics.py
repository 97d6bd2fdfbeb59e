"""The record of a training run: one line per epoch, metrics.json and metrics.csv, and a
PNG of the loss and accuracy curves. All written atomically."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from common.weights import atomic_write_bytes


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

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> "EpochMetrics":
        return cls(**{f.name: row[f.name] for f in fields(cls)})


def write_metrics(out: Path, history: list[EpochMetrics], info: dict[str, Any]) -> None:
    """``metrics.json`` (``info`` and every epoch) and ``metrics.csv`` (the epochs)."""
    rows = [asdict(m) for m in history]
    atomic_write_bytes(out / "metrics.json", (json.dumps({"config": info, "epochs": rows}, indent=2)
                                             + "\n").encode(), overwrite=True)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=[f.name for f in fields(EpochMetrics)])
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(out / "metrics.csv", text.getvalue().encode(), overwrite=True)


def write_curves(path: Path, history: list[EpochMetrics], title: str) -> None:
    """A PNG: training loss on the left, train and test accuracy on the right, per epoch."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    epochs = [m.epoch for m in history]
    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(10, 4))
    loss_axes.plot(epochs, [m.train_loss for m in history], marker="o")
    loss_axes.set(xlabel="epoch", ylabel="training loss", title="loss")
    accuracy_axes.plot(epochs, [m.train_accuracy for m in history], marker="o", label="train")
    accuracy_axes.plot(epochs, [m.test_accuracy for m in history], marker="s", label="test")
    accuracy_axes.set(xlabel="epoch", ylabel="accuracy", title="accuracy", ylim=(0, 1))
    accuracy_axes.legend()
    for axes in (loss_axes, accuracy_axes):
        axes.grid(alpha=0.3)
        axes.xaxis.get_major_locator().set_params(integer=True)
    figure.suptitle(title)
    figure.tight_layout()
    png = io.BytesIO()
    figure.savefig(png, format="png", dpi=100)
    plt.close(figure)
    atomic_write_bytes(path, png.getvalue(), overwrite=True)

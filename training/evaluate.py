"""``alexnet evaluate``: test accuracy of saved canonical weights in one framework,
on the single test view or the paper's ten-crop average."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from common import data, pipeline
from common.spec import Softmax, Variant
from common.variants import get_variant
from common.weights import load_weights
from impls.base import load_backend, select_device


@dataclass(frozen=True)
class Evaluation:
    accuracy: float
    loss: float  # mean cross-entropy of the (averaged) class probabilities
    images: int
    views: int
    seconds: float

    def line(self) -> str:
        return (f"test accuracy {self.accuracy:.4f}, loss {self.loss:.4f} on {self.images} images"
                f" ({self.views} view{'s' if self.views > 1 else ''} each), {self.seconds:.1f} sec")


def probabilities(variant: Variant, outputs: np.ndarray) -> np.ndarray:
    """Class probabilities from the network's output (already a softmax in some variants)."""
    if isinstance(variant.layers[-1], Softmax):
        return outputs.astype(np.float64)
    shifted = outputs.astype(np.float64) - outputs.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def evaluate(framework: str, variant_name: str, weights_path: Path, dataset: str,
             data_dir: Optional[Path] = None, *, ten_crop: bool = False, batch_size: int = 64,
             device: str = "cpu", subset: Optional[int] = None) -> Evaluation:
    """Accuracy of the weights in ``weights_path`` on the test split of ``dataset``.

    Normalization comes from the training split, as in ``alexnet train``. The single
    view is the image resized to the input; ``ten_crop`` averages the class
    probabilities of the paper's ten crops of the image scaled by 256/224."""
    train_x, _ = data.load(dataset, "train", data_dir)
    test_x, test_y = data.load(dataset, "test", data_dir)
    if subset is not None:
        test_x, test_y = test_x[:subset], test_y[:subset]
    variant = get_variant(variant_name, num_classes=data.NUM_CLASSES[dataset],
                          in_channels=train_x.shape[1])
    weights = load_weights(weights_path, variant)
    transforms = pipeline.Transforms.fit(variant.input_shape, train_x)
    backend = load_backend(framework)
    select_device(backend, device, exact=False)
    model = backend.build(variant, weights)
    start = time.perf_counter()
    probs = []
    for first in range(0, len(test_x), batch_size):
        images = test_x[first:first + batch_size]
        views = transforms.ten_crops(images) if ten_crop else transforms.test(images)[None]
        probs.append(np.mean([probabilities(variant, backend.predict(model, v)) for v in views],
                             axis=0))
    p = np.concatenate(probs)
    picked = np.clip(p[np.arange(len(test_y)), test_y], 1e-12, None)
    return Evaluation(float((p.argmax(axis=1) == test_y).mean()), float(-np.log(picked).mean()),
                      len(test_y), 10 if ten_crop else 1, time.perf_counter() - start)

"""From loaded images to training batches, the same for every framework.

Resizing to the variant's input (bilinear, half-pixel centres, as PIL and
``torchvision.transforms.Resize`` upsample), per-channel normalization, the paper's
augmentation (random crops, horizontal flips, PCA colour noise) and its ten-crop
test, and a seeded, shuffled batch iterator that prepares the next batches in a
background thread so the framework never waits for NumPy.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Iterator, Optional

import numpy as np


def _linear_weights(size_in: int, size_out: int) -> np.ndarray:
    """``(size_out, size_in)`` bilinear interpolation matrix with half-pixel centres."""
    centres = (np.arange(size_out) + 0.5) * size_in / size_out - 0.5
    centres = np.clip(centres, 0, size_in - 1)
    low = np.floor(centres).astype(int)
    high = np.minimum(low + 1, size_in - 1)
    frac = centres - low
    weights = np.zeros((size_out, size_in))
    np.add.at(weights, (np.arange(size_out), low), 1 - frac)
    np.add.at(weights, (np.arange(size_out), high), frac)
    return weights


def resize(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of an ``(N, C, H, W)`` batch to ``size`` = (H', W'), as float32."""
    h, w = images.shape[2:]
    if (h, w) == tuple(size):
        return images.astype(np.float32)
    rows, cols = _linear_weights(h, size[0]), _linear_weights(w, size[1])
    return np.einsum("ih,nchw,jw->ncij", rows, images.astype(np.float64), cols,
                     optimize=True).astype(np.float32)


@dataclass(frozen=True)
class Normalization:
    """Per-channel mean and standard deviation, from the training images (0..255 scale)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def of(cls, images: np.ndarray) -> "Normalization":
        flat = images.transpose(1, 0, 2, 3).reshape(images.shape[1], -1).astype(np.float64)
        return cls(tuple(flat.mean(axis=1)), tuple(np.maximum(flat.std(axis=1), 1e-6)))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        mean = np.asarray(self.mean, np.float32)[None, :, None, None]
        std = np.asarray(self.std, np.float32)[None, :, None, None]
        return ((x - mean) / std).astype(np.float32)


def match_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """Grey images repeated to 3 channels (or the reverse by averaging) for the variant."""
    if images.shape[1] == channels:
        return images
    if images.shape[1] == 1:
        return np.repeat(images, channels, axis=1)
    if channels == 1:
        return images.mean(axis=1, keepdims=True).astype(images.dtype)
    raise ValueError(f"cannot turn {images.shape[1]} channels into {channels}")


# --- the paper's augmentation (Krizhevsky et al. 2012, section 4.1) ---

def _hw(size: "int | tuple[int, int]") -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def random_crop(x: np.ndarray, size: "int | tuple[int, int]", rng: np.random.Generator) -> np.ndarray:
    """One random crop of ``size`` (an int: square) per image."""
    (ch, cw), (n, _, h, w) = _hw(size), x.shape
    tops, lefts = rng.integers(0, h - ch + 1, n), rng.integers(0, w - cw + 1, n)
    return np.stack([x[i, :, t:t + ch, l:l + cw] for i, (t, l) in enumerate(zip(tops, lefts))])


def random_flip(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each image mirrored left-right with probability 1/2."""
    flip = rng.random(len(x)) < 0.5
    out = x.copy()
    out[flip] = out[flip][..., ::-1]
    return out


def pca_basis(images: np.ndarray, samples: int = 100_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues and eigenvectors (columns) of the RGB pixel covariance (0..1 scale)."""
    pixels = images.transpose(0, 2, 3, 1).reshape(-1, images.shape[1]).astype(np.float64) / 255
    if len(pixels) > samples:
        pixels = pixels[np.random.default_rng(seed).choice(len(pixels), samples, replace=False)]
    values, vectors = np.linalg.eigh(np.atleast_2d(np.cov(pixels, rowvar=False)))  # 1 channel: 1x1
    return values, vectors


def pca_lighting(x: np.ndarray, basis: tuple[np.ndarray, np.ndarray], rng: np.random.Generator,
                 std: float = 0.1, scale: float = 255.0) -> np.ndarray:
    """Add ``vectors @ (alpha * values)`` to every pixel of each image, alpha ~ N(0, std),
    drawn once per image (the paper's colour augmentation), on pixels of ``scale``."""
    values, vectors = basis
    alpha = rng.normal(0.0, std, (len(x), len(values)))
    shift = (alpha * values) @ vectors.T * scale  # (N, C)
    return (x + shift[:, :, None, None]).astype(np.float32)


def ten_crop(x: np.ndarray, size: "int | tuple[int, int]") -> np.ndarray:
    """``(10, N, C, H', W')``: four corners and the centre, then each mirrored."""
    (ch, cw), (h, w) = _hw(size), x.shape[2:]
    top, left = (h - ch) // 2, (w - cw) // 2
    corners = [(0, 0), (0, w - cw), (h - ch, 0), (h - ch, w - cw), (top, left)]
    crops = [x[:, :, t:t + ch, l:l + cw] for t, l in corners]
    return np.stack(crops + [c[..., ::-1] for c in crops])


# --- batches ---

class Batches:
    """Shuffled ``(x, y)`` batches of one epoch, prepared ``ahead`` batches in advance by a
    background thread. The order depends only on ``seed`` and ``epoch``, so a resumed run
    sees the same batches as an uninterrupted one."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, batch_size: int, *,
                 prepare, seed: int = 0, epoch: int = 0, shuffle: bool = True, ahead: int = 2,
                 drop_last: bool = False) -> None:
        self.images, self.labels, self.batch_size = images, labels, batch_size
        self.prepare, self.ahead, self.drop_last = prepare, ahead, drop_last
        rng = np.random.default_rng([seed, epoch])
        self.order = rng.permutation(len(images)) if shuffle else np.arange(len(images))
        self.rng = np.random.default_rng([seed, epoch, 1])  # augmentation draws

    def __len__(self) -> int:
        full, rest = divmod(len(self.order), self.batch_size)
        return full + (rest > 0 and not self.drop_last)

    def _batch(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        chosen = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        return self.prepare(self.images[chosen], self.rng), self.labels[chosen]

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        ready: queue.Queue = queue.Queue(maxsize=self.ahead)
        stop = threading.Event()

        def work() -> None:
            try:
                for index in range(len(self)):
                    if stop.is_set():
                        return
                    ready.put(self._batch(index))
                ready.put(None)
            except BaseException as exc:  # re-raised in the consumer, not lost in the thread
                ready.put(exc)

        worker = threading.Thread(target=work, daemon=True)
        worker.start()
        try:
            while (item := ready.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            while worker.is_alive():  # unblock a worker waiting on a full queue
                try:
                    ready.get_nowait()
                except queue.Empty:
                    worker.join(timeout=0.05)


#: The paper rescales images to 256 and crops 224 from them: random crops in training and
#: the test views work on images this much larger than the network's input.
CROP_SCALE = 256 / 224


@dataclass(frozen=True)
class Transforms:
    """What the network sees of a batch of raw images (``(N, C, H, W)``, 0..255): the
    variant's channels and size, normalized. With ``augment``, training takes the paper's
    random crops from images scaled by ``CROP_SCALE``, mirrors half of them and adds the
    PCA colour noise; the single test view is then the centre crop of the scaled image."""

    size: tuple[int, int]
    channels: int
    normalization: Normalization
    augment: bool = False
    pca: Optional[tuple[np.ndarray, np.ndarray]] = None

    @classmethod
    def fit(cls, input_shape: tuple[int, int, int], train_images: np.ndarray,
            augment: bool = False) -> "Transforms":
        """Normalization (and the PCA basis) from the training images, for a variant input."""
        channels, size = input_shape[0], tuple(input_shape[1:])
        images = match_channels(train_images, channels)
        return cls(size, channels, Normalization.of(images), augment,  # type: ignore[arg-type]
                   pca_basis(images) if augment else None)

    @property
    def scaled(self) -> tuple[int, int]:
        return (int(round(self.size[0] * CROP_SCALE)), int(round(self.size[1] * CROP_SCALE)))

    def train(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        x = match_channels(images, self.channels)
        if not self.augment:
            return self.normalization(resize(x, self.size))
        x = random_crop(resize(x, self.scaled), self.size, rng)
        return self.normalization(pca_lighting(random_flip(x, rng), self.pca, rng))

    def test(self, images: np.ndarray, rng: Optional[np.random.Generator] = None) -> np.ndarray:
        x = match_channels(images, self.channels)
        if not self.augment:
            return self.normalization(resize(x, self.size))
        return self.normalization(ten_crop(resize(x, self.scaled), self.size)[4])  # the centre

    def ten_crops(self, images: np.ndarray) -> np.ndarray:
        """``(10, N, C, H, W)``: the paper's test views of the scaled images."""
        crops = ten_crop(resize(match_channels(images, self.channels), self.scaled), self.size)
        return np.stack([self.normalization(c) for c in crops])

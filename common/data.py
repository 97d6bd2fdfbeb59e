"""Data sets, read from their standard files, shared by all three frameworks.

- Fashion-MNIST: the four IDX ``.gz`` files (``train-images-idx3-ubyte.gz``, ...).
- CIFAR-10: the *binary* version (``cifar-10-batches-bin/data_batch_1.bin``, ...).
  The Python version is a pickle and is never loaded.
- digits: scikit-learn's bundled 8x8 digits (1797 images), a small real data set that
  needs no network; split into train and test with a fixed seed.

Every loader returns ``(images, labels)``: uint8 ``(N, C, H, W)`` and int64 ``(N,)``.
Anything wrong with the files is a ``DataError`` whose message says what is wrong and,
for a missing data set, which files to put where and where they come from.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

DATASETS = ("fashion-mnist", "cifar10", "digits")
NUM_CLASSES = {"fashion-mnist": 10, "cifar10": 10, "digits": 10}

FASHION_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
FASHION_SOURCE = "https://github.com/zalandoresearch/fashion-mnist (data/fashion/)"
CIFAR_DIR = "cifar-10-batches-bin"
CIFAR_FILES = {"train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)), "test": ("test_batch.bin",)}
CIFAR_SOURCE = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz (the binary version)"
CIFAR_RECORD = 1 + 3 * 32 * 32

IDX_IMAGES, IDX_LABELS = 2051, 2049  # magic numbers: unsigned bytes, 3 and 1 dimensions


class DataError(ValueError):
    """A data set that is missing, corrupt or not what it claims to be."""


def _missing(dataset: str, directory: Path, files: tuple[str, ...], source: str) -> DataError:
    return DataError(f"{dataset}: {', '.join(files)} not found in {directory}; download them "
                     f"from {source} and put them there (or pass --data-dir)")


def _read_gzip(path: Path) -> bytes:
    try:
        with gzip.open(path, "rb") as handle:
            return handle.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: not a readable gzip file ({exc})") from None


def read_idx(path: Path, magic: int) -> np.ndarray:
    """An IDX file of unsigned bytes (``.gz``) with the expected magic number."""
    data = _read_gzip(path)
    if len(data) < 8:
        raise DataError(f"{path}: {len(data)} bytes, too short for an IDX header")
    found = struct.unpack(">I", data[:4])[0]
    if found != magic:
        raise DataError(f"{path}: magic number {found}, expected {magic} "
                        f"({'images' if magic == IDX_IMAGES else 'labels'}); wrong or corrupt file")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        raise DataError(f"{path}: {len(data)} bytes, the header {shape} needs {expected} (truncated?)")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _check_labels(labels: np.ndarray, classes: int, where: str) -> np.ndarray:
    if labels.size and int(labels.max()) >= classes:
        raise DataError(f"{where}: label {int(labels.max())} out of range 0..{classes - 1}")
    return labels.astype(np.int64)


def load_fashion_mnist(directory: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST ``split`` ("train" or "test") as ``(N, 1, 28, 28)`` uint8 and labels."""
    directory = Path(directory)
    names = FASHION_FILES[split]
    if not all((directory / name).is_file() for name in names):
        raise _missing("fashion-mnist", directory, names, FASHION_SOURCE)
    images = read_idx(directory / names[0], IDX_IMAGES)
    labels = read_idx(directory / names[1], IDX_LABELS)
    if len(images) != len(labels):
        raise DataError(f"{directory}: {len(images)} images but {len(labels)} labels")
    return images[:, None], _check_labels(labels, 10, str(directory / names[1]))


def load_cifar10(directory: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 ``split`` from the binary version as ``(N, 3, 32, 32)`` uint8 and labels.
    ``directory`` may be the ``cifar-10-batches-bin`` folder or the folder holding it."""
    directory = Path(directory)
    if (directory / CIFAR_DIR).is_dir():
        directory = directory / CIFAR_DIR
    names = CIFAR_FILES[split]
    if not all((directory / name).is_file() for name in names):
        raise _missing("cifar10", directory, names, CIFAR_SOURCE)
    images, labels = [], []
    for name in names:
        data = (directory / name).read_bytes()
        if not data or len(data) % CIFAR_RECORD:
            raise DataError(f"{directory / name}: {len(data)} bytes, not a whole number of "
                            f"{CIFAR_RECORD}-byte records (truncated, or not the binary version?)")
        records = np.frombuffer(data, dtype=np.uint8).reshape(-1, CIFAR_RECORD)
        labels.append(_check_labels(records[:, 0], 10, str(directory / name)))
        images.append(records[:, 1:].reshape(-1, 3, 32, 32))
    return np.concatenate(images), np.concatenate(labels)


def load_digits(split: str, test_fraction: float = 0.25, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits as ``(N, 1, 8, 8)`` uint8 (0..255) and labels, split by a
    seeded permutation (the same split every time)."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = np.round(bunch.images * (255 / 16)).astype(np.uint8)[:, None]
    order = np.random.default_rng(seed).permutation(len(images))
    n_test = int(round(len(images) * test_fraction))
    chosen = order[n_test:] if split == "train" else order[:n_test]
    return images[chosen], bunch.target[chosen].astype(np.int64)


def load(dataset: str, split: str, directory: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``split`` ("train" or "test") of ``dataset`` (one of ``DATASETS``)."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    if dataset == "digits":
        return load_digits(split)
    if directory is None:
        raise DataError(f"{dataset} needs --data-dir (the folder with its files)")
    if Path(directory).exists() and not Path(directory).is_dir():
        raise DataError(f"data directory {directory} is not a directory; pass the folder that "
                        f"holds the data set's files as --data-dir")
    if not Path(directory).is_dir():
        raise DataError(f"data directory {directory} does not exist")
    if dataset == "fashion-mnist":
        images, labels = load_fashion_mnist(directory, split)
    elif dataset == "cifar10":
        images, labels = load_cifar10(directory, split)
    else:
        raise DataError(f"unknown dataset {dataset!r}; choose from {', '.join(DATASETS)}")
    if not len(images):
        raise DataError(f"{dataset} in {directory}: the {split} split holds no images; "
                        f"replace its files with the data set's own")
    return images, labels

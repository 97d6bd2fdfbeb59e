"""Data loaders on small files written in the real formats, and every bad-input error."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from common import data
from common.data import DataError


def write_idx(path, array: np.ndarray, magic: int) -> None:
    header = struct.pack(f">I{array.ndim}I", magic, *array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def fashion_dir(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("test", 4)):
        images, labels = data.FASHION_FILES[split]
        write_idx(tmp_path / images, rng.integers(0, 256, (n, 28, 28)), data.IDX_IMAGES)
        write_idx(tmp_path / labels, rng.integers(0, 10, n), data.IDX_LABELS)
    return tmp_path


def write_cifar(directory, n_per_file: int = 3) -> None:
    folder = directory / data.CIFAR_DIR
    folder.mkdir()
    rng = np.random.default_rng(1)
    for name in data.CIFAR_FILES["train"] + data.CIFAR_FILES["test"]:
        records = rng.integers(0, 256, (n_per_file, data.CIFAR_RECORD)).astype(np.uint8)
        records[:, 0] = rng.integers(0, 10, n_per_file)
        (folder / name).write_bytes(records.tobytes())


def test_fashion_mnist_reads_idx_files(fashion_dir):
    images, labels = data.load("fashion-mnist", "train", fashion_dir)
    assert images.shape == (6, 1, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (6,) and labels.dtype == np.int64
    with gzip.open(fashion_dir / data.FASHION_FILES["train"][0]) as handle:
        raw = handle.read()
    assert np.array_equal(images[2, 0], np.frombuffer(raw[16:], np.uint8).reshape(6, 28, 28)[2])


def test_cifar10_reads_the_binary_version(tmp_path):
    write_cifar(tmp_path)
    images, labels = data.load("cifar10", "train", tmp_path)
    assert images.shape == (15, 3, 32, 32) and labels.shape == (15,)
    record = np.frombuffer((tmp_path / data.CIFAR_DIR / "data_batch_1.bin").read_bytes(), np.uint8)
    assert labels[0] == record[0] and np.array_equal(images[0].reshape(-1), record[1:data.CIFAR_RECORD])
    assert data.load("cifar10", "test", tmp_path / data.CIFAR_DIR)[0].shape == (3, 3, 32, 32)


def test_digits_split_is_seeded_and_disjoint():
    train, test = data.load("digits", "train"), data.load("digits", "test")
    assert len(train[0]) + len(test[0]) == 1797 and train[0].shape[1:] == (1, 8, 8)
    assert train[0].max() == 255 and np.array_equal(test[1], data.load("digits", "test")[1])


def test_missing_files_say_which_and_where_from(tmp_path):
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz.*zalandoresearch"):
        data.load("fashion-mnist", "test", tmp_path)
    with pytest.raises(DataError, match="test_batch.bin.*cifar-10-binary"):
        data.load("cifar10", "test", tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        data.load("cifar10", "test", tmp_path / "nowhere")


def test_truncated_idx_is_an_error(fashion_dir):
    path = fashion_dir / data.FASHION_FILES["train"][0]
    with gzip.open(path) as handle:
        raw = handle.read()
    with gzip.open(path, "wb") as handle:
        handle.write(raw[:-10])
    with pytest.raises(DataError, match="truncated"):
        data.load("fashion-mnist", "train", fashion_dir)


def test_wrong_magic_and_corrupt_gzip_are_errors(fashion_dir):
    images, labels = data.FASHION_FILES["test"]
    (fashion_dir / images).rename(fashion_dir / "tmp")
    (fashion_dir / labels).rename(fashion_dir / images)  # labels where images belong
    (fashion_dir / "tmp").rename(fashion_dir / labels)
    with pytest.raises(DataError, match="magic number 2049, expected 2051"):
        data.load("fashion-mnist", "test", fashion_dir)
    (fashion_dir / images).write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="not a readable gzip"):
        data.load("fashion-mnist", "test", fashion_dir)


def test_labels_out_of_range_are_errors(fashion_dir, tmp_path):
    write_idx(fashion_dir / data.FASHION_FILES["test"][1], np.array([0, 1, 10, 2]), data.IDX_LABELS)
    with pytest.raises(DataError, match="label 10 out of range"):
        data.load("fashion-mnist", "test", fashion_dir)
    cifar = tmp_path / "c"
    cifar.mkdir()
    write_cifar(cifar)
    path = cifar / data.CIFAR_DIR / "test_batch.bin"
    raw = bytearray(path.read_bytes())
    raw[0] = 11
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="label 11 out of range"):
        data.load("cifar10", "test", cifar)


def test_truncated_cifar_is_an_error(tmp_path):
    write_cifar(tmp_path)
    path = tmp_path / data.CIFAR_DIR / "data_batch_3.bin"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(DataError, match="not a whole number"):
        data.load("cifar10", "train", tmp_path)

"""Resizing, normalization, the paper's augmentation and the batch iterator."""

from __future__ import annotations

import numpy as np
import pytest

from common import pipeline


def test_resize_matches_torch_bilinear():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).integers(0, 256, (2, 1, 28, 28)).astype(np.uint8)
    ours = pipeline.resize(x, (224, 224))
    theirs = torch.nn.functional.interpolate(torch.tensor(x, dtype=torch.float64), size=(224, 224),
                                             mode="bilinear", align_corners=False).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-3)
    assert ours.dtype == np.float32 and pipeline.resize(x, (28, 28)).shape == x.shape


def test_normalization_gives_zero_mean_unit_std():
    x = np.random.default_rng(1).integers(0, 256, (50, 3, 8, 8)).astype(np.uint8)
    out = pipeline.Normalization.of(x)(x.astype(np.float32))
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(0, 2, 3)), 1, atol=1e-4)


def test_ten_crop_is_corners_centre_and_mirrors():
    x = np.arange(2 * 1 * 6 * 6, dtype=np.float32).reshape(2, 1, 6, 6)
    crops = pipeline.ten_crop(x, 4)
    assert crops.shape == (10, 2, 1, 4, 4)
    assert np.array_equal(crops[0], x[:, :, :4, :4]) and np.array_equal(crops[3], x[:, :, 2:, 2:])
    assert np.array_equal(crops[4], x[:, :, 1:5, 1:5])
    assert all(np.array_equal(crops[i + 5], crops[i][..., ::-1]) for i in range(5))


def test_random_crop_and_flip_keep_content():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(8, 3, 10, 10)).astype(np.float32)
    crops = pipeline.random_crop(x, 7, rng)
    assert crops.shape == (8, 3, 7, 7)
    for crop, image in zip(crops, x):  # every crop is a window of its own image
        assert any(np.array_equal(crop, image[:, t:t + 7, l:l + 7]) for t in range(4) for l in range(4))
    flipped = pipeline.random_flip(x, rng)
    assert all(np.array_equal(f, i) or np.array_equal(f, i[..., ::-1]) for f, i in zip(flipped, x))
    assert not np.array_equal(flipped, x)


def test_pca_lighting_adds_one_colour_shift_per_image():
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (20, 3, 8, 8)).astype(np.uint8)
    basis = pipeline.pca_basis(images)
    assert np.allclose(basis[1].T @ basis[1], np.eye(3))
    x = images.astype(np.float32)
    shifted = pipeline.pca_lighting(x, basis, np.random.default_rng(4))
    shift = shifted - x
    assert np.allclose(shift, shift[:, :, :1, :1], atol=1e-3)  # constant over each image
    alpha = np.random.default_rng(4).normal(0, 0.1, (20, 3))
    np.testing.assert_allclose(shift[:, :, 0, 0], (alpha * basis[0]) @ basis[1].T * 255, atol=1e-3)


def test_batches_are_seeded_complete_and_prepared_ahead():
    images, labels = np.arange(10)[:, None, None, None].astype(np.uint8), np.arange(10)
    prepare = lambda x, rng: x.astype(np.float32)  # noqa: E731
    first = [y for _, y in pipeline.Batches(images, labels, 3, prepare=prepare, seed=5, epoch=0)]
    again = [y for _, y in pipeline.Batches(images, labels, 3, prepare=prepare, seed=5, epoch=0)]
    other = [y for _, y in pipeline.Batches(images, labels, 3, prepare=prepare, seed=5, epoch=1)]
    assert [len(b) for b in first] == [3, 3, 3, 1]
    assert sorted(np.concatenate(first)) == list(range(10))
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))
    assert len(pipeline.Batches(images, labels, 3, prepare=prepare, drop_last=True)) == 3


def test_a_failing_prepare_raises_in_the_consumer():
    def broken(x, rng):
        raise RuntimeError("bad batch")
    with pytest.raises(RuntimeError, match="bad batch"):
        list(pipeline.Batches(np.zeros((4, 1, 1, 1)), np.zeros(4), 2, prepare=broken))


def test_leaving_an_epoch_early_stops_the_worker():
    images = np.zeros((100, 1, 2, 2), np.uint8)
    batches = pipeline.Batches(images, np.zeros(100), 1, prepare=lambda x, rng: x, ahead=1)
    for _ in batches:
        break  # the worker is blocked on a full queue; the generator's cleanup must free it
    import threading
    assert threading.active_count() < 5


def test_transforms_views_agree():
    """With augmentation the single test view is the ten-crop's centre crop; without it,
    both train and test views are the image resized to the input."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 1, 8, 8)).astype(np.uint8)
    plain = pipeline.Transforms.fit((3, 32, 32), images)
    assert plain.train(images, rng).shape == (5, 3, 32, 32)
    np.testing.assert_array_equal(plain.train(images, rng), plain.test(images))
    augmented = pipeline.Transforms.fit((3, 32, 32), images, augment=True)
    assert augmented.scaled == (37, 37)
    crops = augmented.ten_crops(images)
    assert crops.shape == (10, 5, 3, 32, 32)
    np.testing.assert_array_equal(crops[4], augmented.test(images))
    np.testing.assert_array_equal(crops[9], crops[4][..., ::-1])
    first = augmented.train(images, np.random.default_rng(1))
    again = augmented.train(images, np.random.default_rng(1))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, augmented.test(images))

"""The crosscheck's inputs: a seeded normal batch and one real photograph.

Both are at the scale of mean-subtracted 0-255 pixels (the scale Caffe's AlexNet
sees), not [0, 1): at unit scale ``alpha * sum(a^2) << k`` and every LRN is close
to the identity, so a wrong LRN convention would pass unnoticed (DESIGN.md).
"""

from __future__ import annotations

import numpy as np

from common.spec import Variant

#: Standard deviation of the normal batch: that of mean-subtracted pixel values.
PIXEL_SCALE = 64.0


def normal_batch(variant: Variant, batch_size: int, seed: int) -> np.ndarray:
    """A seeded ``(batch_size, C, H, W)`` float32 batch, N(0, PIXEL_SCALE^2)."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((batch_size,) + variant.input_shape) * PIXEL_SCALE).astype(np.float32)


def photograph(variant: Variant) -> np.ndarray:
    """scikit-image's bundled astronaut photograph, resized to the variant's input, as a
    ``(1, C, H, W)`` float32 batch of 0-255 pixels minus their mean, dithered. One channel
    is the luminance; more than three repeat R, G, B."""
    from skimage import data
    from skimage.transform import resize

    c, h, w = variant.input_shape
    rgb = resize(data.astronaut().astype(np.float64), (h, w), order=1, anti_aliasing=True,
                 preserve_range=True)
    if c == 1:
        channels = (rgb @ np.array([0.299, 0.587, 0.114]))[None]
    else:
        channels = np.stack([rgb[:, :, i % 3] for i in range(c)])
    channels -= channels.mean()
    # A seeded dither of one grey level: the photograph's flat regions would otherwise give
    # max-pool windows of equal values, whose gradient each framework routes its own way.
    channels += np.random.default_rng(2012).standard_normal(channels.shape)
    return channels[None].astype(np.float32)


def crosscheck_batch(variant: Variant, batch_size: int, seed: int) -> np.ndarray:
    """``batch_size`` seeded normal images followed by the photograph."""
    return np.concatenate([normal_batch(variant, batch_size, seed), photograph(variant)])

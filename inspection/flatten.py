"""The order in which a model flattens its last feature map, found from its own forward pass.

The candidates: C*H*W (PyTorch, MXNet, a TensorFlow model that transposes to NCHW before the
reshape) and H*W*C (Keras's ``Flatten`` on NHWC). The model's first dense layer's input is
compared with its own last (C, H, W) map flattened each way: the one it equals, exactly, is
the order. That needs no reference, so an upstream divergence cannot confuse it. Where the
map is not seen (a functional flatten after a functional pool), the caller compares with the
reference instead (``closest``).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

#: order -> how it is said
ORDERS = {"chw": "C*H*W (channels-first: PyTorch, MXNet, a reshape after a transpose to NCHW)",
          "hwc": "H*W*C (channels-last: Keras's Flatten on NHWC)"}


def hwc_positions(c: int, h: int, w: int) -> np.ndarray:
    """``perm[j]``: the C*H*W position of the j-th element of an H*W*C flatten."""
    return np.arange(c * h * w).reshape(c, h, w).transpose(1, 2, 0).reshape(-1)


def flatten_columns(weight: np.ndarray, order: str, chw: Optional[tuple[int, int, int]]) -> np.ndarray:
    """A canonical (out, C*H*W) dense weight with its input columns in ``order``."""
    if order == "chw" or chw is None:
        return weight
    return np.ascontiguousarray(weight[:, hwc_positions(*chw)])


def unflatten_columns(weight: np.ndarray, order: str, chw: Optional[tuple[int, int, int]]) -> np.ndarray:
    """Inverse of ``flatten_columns``."""
    if order == "chw" or chw is None:
        return weight
    out = np.empty_like(weight)
    out[:, hwc_positions(*chw)] = weight
    return out


def flattened(feature_map: np.ndarray, order: str) -> np.ndarray:
    """An NCHW batch flattened per image in ``order``."""
    n = len(feature_map)
    return (feature_map if order == "chw" else feature_map.transpose(0, 2, 3, 1)).reshape(n, -1)


def from_own_map(dense_input: np.ndarray, maps: Sequence[np.ndarray]) -> Optional[str]:
    """The order in which ``dense_input`` (N, F) flattens one of ``maps`` (NCHW arrays the model
    produced, latest first), or None where none is flattened either way. Where both orders
    give the same vector (a 1x1 map, one channel), "chw"."""
    for feature_map in maps:
        if feature_map.ndim != 4 or feature_map[0].size != dense_input[0].size:
            continue
        for order in ORDERS:
            if np.array_equal(flattened(feature_map, order), dense_input):
                return order
    return None


def closest(dense_input: np.ndarray, reference_map: np.ndarray) -> tuple[str, dict[str, float]]:
    """The order whose flatten of the float64 ``reference_map`` is nearest ``dense_input``, and
    each order's relative L2 error."""
    errors = {}
    for order in ORDERS:
        expected = flattened(reference_map, order)
        errors[order] = float(np.linalg.norm(dense_input - expected) / max(np.linalg.norm(expected), 1e-300))
    return min(errors, key=errors.get), errors

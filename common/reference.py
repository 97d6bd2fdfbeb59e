"""The float64 NumPy reference: the oracle every framework is compared with.

Plain NumPy, no framework, written for clarity over speed. Each layer kind is
one function of (input, layer info, weights); ``forward`` runs them in order in
eval mode (dropout is the identity) and returns every layer's output.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from common.shapes import LayerInfo, infer
from common.spec import (
    LRN, AdaptiveAvgPool2d, Conv2d, Dense, Dropout, Flatten, MaxPool2d, ReLU, Softmax, Variant,
)
from common.weights import Weights


def windows(x: np.ndarray, kernel: int, stride: int) -> np.ndarray:
    """(N, C, H, W) -> (N, C, OH, OW, k, k) views of every kernel window."""
    return sliding_window_view(x, (kernel, kernel), axis=(2, 3))[:, :, ::stride, ::stride]


def conv2d(x: np.ndarray, info: LayerInfo, w: Weights) -> np.ndarray:
    layer: Conv2d = info.layer  # type: ignore[assignment]
    top, bottom, left, right = info.padding
    x = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    weight = w[f"{layer.name}.weight"].astype(np.float64)
    cin, cout = x.shape[1] // layer.groups, layer.out_channels // layer.groups
    groups = []
    for g in range(layer.groups):
        win = windows(x[:, g * cin:(g + 1) * cin], layer.kernel, layer.stride)
        groups.append(np.einsum("ncijkl,ockl->noij", win, weight[g * cout:(g + 1) * cout],
                                optimize=True))
    bias = w[f"{layer.name}.bias"].astype(np.float64)
    return np.concatenate(groups, axis=1) + bias[None, :, None, None]


def relu(x: np.ndarray, info: LayerInfo, w: Weights) -> np.ndarray:
    return np.maximum(x, 0.0)


def lrn(x: np.ndarray, info: LayerInfo, w: Weights) -> np.ndarray:
    """The paper's convention: alpha is not divided by the window size."""
    layer: LRN = info.layer  # type: ignore[assignment]
    r = layer.size // 2
    sq = np.pad(x * x, ((0, 0), (r, r), (0, 0), (0, 0)))
    window_sum = sum(sq[:, i:i + x.shape[1]] for i in range(layer.size))
    return x / (layer.k + layer.alpha * window_sum) ** layer.beta


def pool_windows(x: np.ndarray, info: LayerInfo) -> tuple[np.ndarray, np.ndarray]:
    """A max pool's input padded with -inf by ``info.padding``, and its (N, C, OH, OW, k, k)
    windows (views of the padded input)."""
    layer: MaxPool2d = info.layer  # type: ignore[assignment]
    top, bottom, left, right = info.padding
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=-np.inf)
    _, oh, ow = info.out_shape
    return xp, windows(xp, layer.kernel, layer.stride)[:, :, :oh, :ow]


def max_pool2d(x: np.ndarray, info: LayerInfo, w: Weights) -> np.ndarray:
    return pool_windows(x, info)[1].max(axis=(4, 5))


def adaptive_avg_pool2d(x: np.ndarray, info: LayerInfo, w: Weights) -> np.ndarray:
    """PyTorch's bins: output i averages rows [floor(i*H/o), ceil((i+1)*H/o))."""
    (_, h, wd), (oh, ow) = info.in_shape, info.layer.output_size  # type: ignore[union-attr]
    out = np.empty(x.shape[:2] + (oh, ow))
    for i in range(oh):
        r0, r1 = (i * h) // oh, -(-((i + 1) * h) // oh)
        for j in range(ow):
            c0, c1 = (j * wd) // ow, -(-((j + 1) * wd) // ow)
            out[:, :, i, j] = x[:, :, r0:r1, c0:c1].mean(axis=(2, 3))
    return out


def flatten(x: np.ndarray, info: LayerInfo, w: Weights) -> np.ndarray:
    return x.reshape(x.shape[0], -1)  # C*H*W order: the canonical one


def dense(x: np.ndarray, info: LayerInfo, w: Weights) -> np.ndarray:
    name = info.layer.name
    return x @ w[f"{name}.weight"].astype(np.float64).T + w[f"{name}.bias"].astype(np.float64)


def dropout_eval(x: np.ndarray, info: LayerInfo, w: Weights) -> np.ndarray:
    return x


def softmax(x: np.ndarray, info: LayerInfo, w: Weights) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


FORWARD: dict[type, Callable[[np.ndarray, LayerInfo, Weights], np.ndarray]] = {
    Conv2d: conv2d, ReLU: relu, LRN: lrn, MaxPool2d: max_pool2d,
    AdaptiveAvgPool2d: adaptive_avg_pool2d, Flatten: flatten, Dense: dense,
    Dropout: dropout_eval, Softmax: softmax,
}


def forward(variant: Variant, weights: Weights, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every layer's float64 output, in layer order, for an NCHW batch ``x`` (eval mode)."""
    outputs: dict[str, np.ndarray] = {}
    h = np.asarray(x, dtype=np.float64)
    for info in infer(variant):
        h = FORWARD[type(info.layer)](h, info, weights)
        outputs[info.name] = h
    return outputs

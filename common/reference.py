"""The float64 NumPy reference: the oracle every framework is compared with.

Plain NumPy, no framework, written for clarity over speed. Each layer kind is one
function of ``(input, spec layer, weights)``; ``forward`` runs them in order in eval
mode (dropout is the identity) and returns every layer's output.

The oracle is independent: it imports the spec's dataclasses and nothing else of
this package. Padding, pooled sizes, adaptive bins and the flatten order are derived
here from the spec's numbers and the input's shape, with code of its own, never with
``common.shapes`` or ``common.conventions``, which the implementations use. A wrong
shared rule then shows up as a divergence instead of being built into both sides
(tests/test_reference.py::test_reference_imports_nothing_the_implementations_use).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from common.spec import (
    LRN, AdaptiveAvgPool2d, Conv2d, Dense, Dropout, Flatten, Layer, MaxPool2d, ReLU, Softmax,
    Variant,
)

Weights = dict[str, np.ndarray]


def windows(x: np.ndarray, kernel: int, stride: int) -> np.ndarray:
    """(N, C, H, W) -> (N, C, OH, OW, k, k) views of every kernel window."""
    return sliding_window_view(x, (kernel, kernel), axis=(2, 3))[:, :, ::stride, ::stride]


def same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's SAME along one axis, from its documentation: the output has
    ceil(size / stride) elements; the padding that needs is split with the smaller
    half before (top/left) and the larger after (bottom/right)."""
    out = math.ceil(size / stride)
    needed = max((out - 1) * stride + kernel - size, 0)
    before = needed // 2
    return before, needed - before


def conv_pads(layer: Conv2d, height: int, width: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) zero padding of a convolution on a height x width map."""
    if layer.padding == "valid":
        return (0, 0, 0, 0)
    if layer.padding == "same":
        return same_pads(height, layer.kernel, layer.stride) + same_pads(width, layer.kernel, layer.stride)
    top, bottom, left, right = layer.padding
    return (top, bottom, left, right)


def pooled_size(size: int, layer: MaxPool2d) -> int:
    """Output length of a max pool along one axis. Floor mode: windows that fit in the
    padded input. Ceil mode (Caffe's rounding, as PyTorch has it): one more window where
    a partial one is left over, unless that window would start in the right padding."""
    padded = size + 2 * layer.padding
    if padded < layer.kernel:
        return 0
    starts = range(0, padded - layer.kernel + 1, layer.stride)
    count = len(starts)
    if layer.ceil_mode and (padded - layer.kernel) % layer.stride:
        last_start = count * layer.stride
        count += last_start < size + layer.padding
    return count


def pool_pads(layer: MaxPool2d, height: int, width: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) -inf padding of a max pool: its own padding, and at the
    bottom/right the rows and columns ceil mode's last window reaches beyond it."""
    p, k, s = layer.padding, layer.kernel, layer.stride
    extra_h = max((pooled_size(height, layer) - 1) * s + k - height - 2 * p, 0)
    extra_w = max((pooled_size(width, layer) - 1) * s + k - width - 2 * p, 0)
    return (p, p + extra_h, p, p + extra_w)


def adaptive_bins(size: int, out: int) -> list[tuple[int, int]]:
    """PyTorch's adaptive pooling bins along one axis: output i averages the input range
    [floor(i * size / out), ceil((i + 1) * size / out))."""
    return [((i * size) // out, -(-((i + 1) * size) // out)) for i in range(out)]


def conv2d(x: np.ndarray, layer: Conv2d, w: Weights) -> np.ndarray:
    top, bottom, left, right = conv_pads(layer, x.shape[2], x.shape[3])
    x = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    weight = np.asarray(w[f"{layer.name}.weight"], np.float64)
    cin, cout = x.shape[1] // layer.groups, layer.out_channels // layer.groups
    groups = []
    for g in range(layer.groups):
        win = windows(x[:, g * cin:(g + 1) * cin], layer.kernel, layer.stride)
        groups.append(np.einsum("ncijkl,ockl->noij", win, weight[g * cout:(g + 1) * cout],
                                optimize=True))
    bias = np.asarray(w[f"{layer.name}.bias"], np.float64)
    return np.concatenate(groups, axis=1) + bias[None, :, None, None]


def relu(x: np.ndarray, layer: ReLU, w: Weights) -> np.ndarray:
    return np.maximum(x, 0.0)


def window_sum(v: np.ndarray, size: int) -> np.ndarray:
    """Each channel's sum of ``v`` over the ``size`` channels centred on it (zero outside)."""
    r = size // 2
    padded = np.pad(v, ((0, 0), (r, r), (0, 0), (0, 0)))
    return sum(padded[:, i:i + v.shape[1]] for i in range(size))


def lrn_alpha(layer: LRN) -> float:
    """The factor of the window's sum of squares: the spec's alpha as the paper writes it
    (undivided), or divided by the window size where the layer has Caffe's convention."""
    if layer.alpha_over_size:
        return layer.alpha / layer.size
    return layer.alpha


def lrn(x: np.ndarray, layer: LRN, w: Weights) -> np.ndarray:
    """``x / (k + alpha' * S) ** beta``, S each channel's window sum of squares and alpha'
    the spec's alpha in its own convention (``lrn_alpha``)."""
    return x / (layer.k + lrn_alpha(layer) * window_sum(x * x, layer.size)) ** layer.beta


def pool_windows(x: np.ndarray, layer: MaxPool2d) -> tuple[np.ndarray, np.ndarray]:
    """A max pool's input padded with -inf, and its (N, C, OH, OW, k, k) windows (views
    of the padded input)."""
    top, bottom, left, right = pool_pads(layer, x.shape[2], x.shape[3])
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=-np.inf)
    oh, ow = pooled_size(x.shape[2], layer), pooled_size(x.shape[3], layer)
    return xp, windows(xp, layer.kernel, layer.stride)[:, :, :oh, :ow]


def max_pool2d(x: np.ndarray, layer: MaxPool2d, w: Weights) -> np.ndarray:
    return pool_windows(x, layer)[1].max(axis=(4, 5))


def adaptive_avg_pool2d(x: np.ndarray, layer: AdaptiveAvgPool2d, w: Weights) -> np.ndarray:
    rows, cols = (adaptive_bins(x.shape[2], layer.output_size[0]),
                  adaptive_bins(x.shape[3], layer.output_size[1]))
    out = np.empty(x.shape[:2] + (len(rows), len(cols)))
    for i, (r0, r1) in enumerate(rows):
        for j, (c0, c1) in enumerate(cols):
            out[:, :, i, j] = x[:, :, r0:r1, c0:c1].mean(axis=(2, 3))
    return out


def flatten(x: np.ndarray, layer: Flatten, w: Weights) -> np.ndarray:
    """Channels-first: element (c, h, w) goes to c*H*W + h*W + w, the canonical order."""
    n, c, h, wd = x.shape
    out = np.empty((n, c * h * wd), dtype=x.dtype)
    for channel in range(c):
        out[:, channel * h * wd:(channel + 1) * h * wd] = x[:, channel].reshape(n, h * wd)
    return out


def dense(x: np.ndarray, layer: Dense, w: Weights) -> np.ndarray:
    name = layer.name
    # asarray: no copy where the caller holds float64 weights already (fc6 is 300 MB so)
    return x @ np.asarray(w[f"{name}.weight"], np.float64).T + np.asarray(w[f"{name}.bias"], np.float64)


def dropout_eval(x: np.ndarray, layer: Dropout, w: Weights) -> np.ndarray:
    return x


def softmax(x: np.ndarray, layer: Softmax, w: Weights) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


FORWARD: dict[type, Callable[[np.ndarray, Layer, Weights], np.ndarray]] = {
    Conv2d: conv2d, ReLU: relu, LRN: lrn, MaxPool2d: max_pool2d,
    AdaptiveAvgPool2d: adaptive_avg_pool2d, Flatten: flatten, Dense: dense,
    Dropout: dropout_eval, Softmax: softmax,
}


def apply(layer: Layer, x: np.ndarray, weights: Weights) -> np.ndarray:
    """One layer's float64 output for the batch ``x`` (eval mode)."""
    return FORWARD[type(layer)](np.asarray(x, dtype=np.float64), layer, weights)


def forward(variant: Variant, weights: Weights, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every layer's float64 output, in layer order, for an NCHW batch ``x`` (eval mode)."""
    outputs: dict[str, np.ndarray] = {}
    h = np.asarray(x, dtype=np.float64)
    for layer in variant.layers:
        h = FORWARD[type(layer)](h, layer, weights)
        outputs[layer.name] = h
    return outputs


def input_shapes(variant: Variant) -> dict[str, tuple[int, ...]]:
    """Each layer's per-image input shape, by the reference's own arithmetic (no data)."""
    shapes: dict[str, tuple[int, ...]] = {}
    shape: tuple[int, ...] = variant.input_shape
    for layer in variant.layers:
        shapes[layer.name] = shape
        if isinstance(layer, Conv2d):
            top, bottom, left, right = conv_pads(layer, shape[1], shape[2])
            shape = (layer.out_channels,
                     (shape[1] + top + bottom - layer.kernel) // layer.stride + 1,
                     (shape[2] + left + right - layer.kernel) // layer.stride + 1)
        elif isinstance(layer, MaxPool2d):
            shape = (shape[0], pooled_size(shape[1], layer), pooled_size(shape[2], layer))
        elif isinstance(layer, AdaptiveAvgPool2d):
            shape = (shape[0],) + tuple(layer.output_size)
        elif isinstance(layer, Flatten):
            shape = (math.prod(shape),)
        elif isinstance(layer, Dense):
            shape = (layer.out_features,)
    return shapes

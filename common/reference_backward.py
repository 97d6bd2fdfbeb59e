"""The float64 reference backward pass: the gradient oracle, plain NumPy.

The loss is fixed: softmax cross-entropy of the network's final output on given
labels, averaged over the batch. Dropout is kept in the comparison by giving
every framework the same masks: ``dropout_scale`` turns a keep-mask into the
factor ``mask / (1 - p)`` that multiplies the layer's input, in train mode.

Each layer kind has one function ``(x, y, grad_y, info, weights, scale) ->
(grad_x, {param key: grad})``, where ``x`` is the layer's input and ``y`` its output.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from common import reference
from common.reference import pool_windows, windows
from common.shapes import LayerInfo, infer
from common.spec import (
    LRN, AdaptiveAvgPool2d, Conv2d, Dense, Dropout, Flatten, MaxPool2d, ReLU, Softmax, Variant,
)
from common.weights import Weights

ParamGrads = dict[str, np.ndarray]
Masks = dict[str, np.ndarray]


def _unpad(a: np.ndarray, padding: tuple[int, int, int, int]) -> np.ndarray:
    """The inverse of padding an NCHW array by ``(top, bottom, left, right)``."""
    top, bottom, left, right = padding
    return a[:, :, top:a.shape[2] - bottom, left:a.shape[3] - right]


def dropout_scale(keep: np.ndarray, p: float) -> np.ndarray:
    """The factor a dropout layer multiplies its input by in train mode: kept units are
    scaled by ``1 / (1 - p)`` (inverted dropout, as in every framework here)."""
    return keep.astype(np.float64) / (1.0 - p)


def dropout_masks(variant: Variant, batch: int, seed: int) -> Masks:
    """Seeded keep-masks (booleans) for every Dropout layer, shaped like its input."""
    rng = np.random.default_rng(seed)
    return {i.name: rng.random((batch,) + i.in_shape) >= i.layer.p
            for i in infer(variant) if isinstance(i.layer, Dropout)}


def conv2d(x, y, g, info: LayerInfo, w: Weights, scale=None):
    layer: Conv2d = info.layer  # type: ignore[assignment]
    top, bottom, left, right = info.padding
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    weight = w[f"{layer.name}.weight"].astype(np.float64)
    cin, cout, k, s = xp.shape[1] // layer.groups, layer.out_channels // layer.groups, layer.kernel, layer.stride
    grad_xp, grad_w = np.zeros_like(xp), np.empty_like(weight)
    oh, ow = g.shape[2:]
    for group in range(layer.groups):
        gi, go = slice(group * cin, (group + 1) * cin), slice(group * cout, (group + 1) * cout)
        win = windows(xp[:, gi], k, s)[:, :, :oh, :ow]
        grad_w[go] = np.einsum("noij,ncijkl->ockl", g[:, go], win, optimize=True)
        for a in range(k):
            for b in range(k):
                grad_xp[:, gi, a:a + s * oh:s, b:b + s * ow:s] += np.einsum(
                    "noij,oc->ncij", g[:, go], weight[go, :, a, b], optimize=True)
    return _unpad(grad_xp, info.padding), {f"{layer.name}.weight": grad_w, f"{layer.name}.bias": g.sum(axis=(0, 2, 3))}


def relu(x, y, g, info, w, scale=None):
    return g * (x > 0), {}


def lrn(x, y, g, info: LayerInfo, w, scale=None):
    """d = k + alpha * S, S_c = sum of a^2 over c's window; y = a * d^-beta. The window
    is symmetric, so j is in c's window exactly when c is in j's."""
    layer: LRN = info.layer  # type: ignore[assignment]
    r = layer.size // 2

    def window_sum(v):
        padded = np.pad(v, ((0, 0), (r, r), (0, 0), (0, 0)))
        return sum(padded[:, i:i + v.shape[1]] for i in range(layer.size))

    d = layer.k + layer.alpha * window_sum(x * x)
    inner = window_sum(g * x * d ** (-layer.beta - 1))
    return g * d ** -layer.beta - 2 * layer.alpha * layer.beta * x * inner, {}


def max_pool2d(x, y, g, info: LayerInfo, w, scale=None):
    """Each window's gradient goes to its (first) largest element."""
    layer: MaxPool2d = info.layer  # type: ignore[assignment]
    xp, win = pool_windows(x, info)
    n, c, oh, ow = g.shape
    k, s = layer.kernel, layer.stride
    arg = win.reshape(n, c, oh, ow, k * k).argmax(axis=-1)
    rows = np.arange(oh)[None, None, :, None] * s + arg // k
    cols = np.arange(ow)[None, None, None, :] * s + arg % k
    grad_xp = np.zeros_like(xp)
    ni, ci = np.indices((n, c, oh, ow))[:2]
    np.add.at(grad_xp, (ni, ci, rows, cols), g)
    return _unpad(grad_xp, info.padding), {}


#: Two values closer than this (relative to the largest |value| of the tensor) may come
#: out in either order from a float32 forward pass (its error is ~1e-6 of that scale).
FLOAT32_TIE = 1e-5


def max_pool_ties(x: np.ndarray, info: LayerInfo) -> np.ndarray:
    """Where a max pool's input gradient is ambiguous: elements sharing their window's
    maximum with another element, to float32 accuracy (after a ReLU, windows of zeros;
    elsewhere, values closer than the float32 forward error). Each framework routes
    such a gradient its own way, and all are right; comparisons skip them."""
    layer: MaxPool2d = info.layer  # type: ignore[assignment]
    xp, win = pool_windows(x, info)
    n, c, oh, ow = (x.shape[0],) + info.out_shape
    k, s = layer.kernel, layer.stride
    win = win.reshape(n, c, oh, ow, k * k)
    top_value = win.max(axis=-1, keepdims=True)
    is_max = win >= top_value - FLOAT32_TIE * np.abs(x).max()
    tied = is_max & (is_max.sum(axis=-1, keepdims=True) > 1)
    arg = np.nonzero(tied)
    mask = np.zeros(xp.shape, dtype=bool)
    mask[arg[0], arg[1], arg[2] * s + arg[4] // k, arg[3] * s + arg[4] % k] = True
    return _unpad(mask, info.padding)


def adaptive_avg_pool2d(x, y, g, info: LayerInfo, w, scale=None):
    (_, h, wd), (oh, ow) = info.in_shape, info.layer.output_size  # type: ignore[union-attr]
    grad_x = np.zeros_like(x)
    for i in range(oh):
        r0, r1 = (i * h) // oh, -(-((i + 1) * h) // oh)
        for j in range(ow):
            c0, c1 = (j * wd) // ow, -(-((j + 1) * wd) // ow)
            grad_x[:, :, r0:r1, c0:c1] += g[:, :, i, j][:, :, None, None] / ((r1 - r0) * (c1 - c0))
    return grad_x, {}


def flatten(x, y, g, info, w, scale=None):
    return g.reshape(x.shape), {}


def dense(x, y, g, info: LayerInfo, w: Weights, scale=None):
    name = info.layer.name
    weight = w[f"{name}.weight"].astype(np.float64)
    return g @ weight, {f"{name}.weight": g.T @ x, f"{name}.bias": g.sum(axis=0)}


def dropout(x, y, g, info, w, scale: Optional[np.ndarray] = None):
    return (g if scale is None else g * scale), {}


def softmax(x, y, g, info, w, scale=None):
    return y * (g - (g * y).sum(axis=1, keepdims=True)), {}


BACKWARD: dict[type, Callable] = {
    Conv2d: conv2d, ReLU: relu, LRN: lrn, MaxPool2d: max_pool2d,
    AdaptiveAvgPool2d: adaptive_avg_pool2d, Flatten: flatten, Dense: dense,
    Dropout: dropout, Softmax: softmax,
}


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean softmax cross-entropy and its gradient with respect to ``logits``."""
    z = logits - logits.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    n = logits.shape[0]
    grad = np.exp(log_p)
    grad[np.arange(n), labels] -= 1.0
    return float(-log_p[np.arange(n), labels].mean()), grad / n


def forward_train(variant: Variant, weights: Weights, x: np.ndarray,
                  masks: Optional[Masks] = None) -> dict[str, np.ndarray]:
    """Every layer's float64 output with dropout applied by ``masks`` (eval mode if None)."""
    outputs: dict[str, np.ndarray] = {}
    h = np.asarray(x, dtype=np.float64)
    for info in infer(variant):
        if isinstance(info.layer, Dropout) and masks is not None:
            h = h * dropout_scale(masks[info.name], info.layer.p)
        else:
            h = reference.FORWARD[type(info.layer)](h, info, weights)
        outputs[info.name] = h
    return outputs


def backward(variant: Variant, weights: Weights, x: np.ndarray, labels: np.ndarray,
             masks: Optional[Masks] = None):
    """Loss, every layer's output, dL/d(every layer's output), dL/d(input) and
    dL/d(every parameter), all float64. The loss is taken at ``variant.logits_layer``;
    a final Softmax after it has no gradient."""
    infos = infer(variant)
    outputs = forward_train(variant, weights, x, masks)
    loss, g = cross_entropy(outputs[variant.logits_layer], labels)
    infos = infos[:[i.name for i in infos].index(variant.logits_layer) + 1]
    output_grads: dict[str, np.ndarray] = {}
    param_grads: ParamGrads = {}
    inputs = [np.asarray(x, dtype=np.float64)] + [outputs[i.name] for i in infos[:-1]]
    for info, layer_in in zip(reversed(infos), reversed(inputs)):
        output_grads[info.name] = g
        scale = None
        if isinstance(info.layer, Dropout) and masks is not None:
            scale = dropout_scale(masks[info.name], info.layer.p)
        g, grads = BACKWARD[type(info.layer)](layer_in, outputs[info.name], g, info, weights, scale)
        param_grads.update(grads)
    return loss, outputs, dict(reversed(list(output_grads.items()))), g, param_grads

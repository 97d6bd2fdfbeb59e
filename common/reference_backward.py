"""The float64 reference backward pass: the gradient oracle, plain NumPy.

The loss is fixed: softmax cross-entropy of the network's final output on given
labels, averaged over the batch. Dropout is kept in the comparison by giving
every framework the same masks: ``dropout_scale`` turns a keep-mask into the
factor ``mask / (1 - p)`` that multiplies the layer's input, in train mode.

Each layer kind has one function ``(x, y, grad_y, layer, weights, scale) ->
(grad_x, {param key: grad})``, where ``x`` is the layer's input and ``y`` its output.
Like the forward reference, it takes every size from the spec's numbers and the data
(``common.reference``'s own padding and pooling arithmetic), never from ``common.shapes``.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from common import reference
from common.reference import (Weights, adaptive_bins, conv_pads, pool_pads, pool_windows, window_sum,
                              windows)
from common.spec import (
    LRN, AdaptiveAvgPool2d, Conv2d, Dense, Dropout, Flatten, MaxPool2d, ReLU, Softmax, Variant,
)

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
    shapes = reference.input_shapes(variant)
    return {layer.name: rng.random((batch,) + shapes[layer.name]) >= layer.p
            for layer in variant.layers if isinstance(layer, Dropout)}


def conv2d(x, y, g, layer: Conv2d, w: Weights, scale=None):
    padding = conv_pads(layer, x.shape[2], x.shape[3])
    top, bottom, left, right = padding
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
    return _unpad(grad_xp, padding), {f"{layer.name}.weight": grad_w, f"{layer.name}.bias": g.sum(axis=(0, 2, 3))}


def relu(x, y, g, layer, w, scale=None):
    return g * (x > 0), {}


def lrn(x, y, g, layer: LRN, w, scale=None):
    """d = k + alpha' * S, S_c = sum of a^2 over c's window (alpha' in the layer's
    convention, ``reference.lrn_alpha``); y = a * d^-beta. The window is symmetric, so j is
    in c's window exactly when c is in j's."""
    alpha = reference.lrn_alpha(layer)
    d = layer.k + alpha * window_sum(x * x, layer.size)
    inner = window_sum(g * x * d ** (-layer.beta - 1), layer.size)
    return g * d ** -layer.beta - 2 * alpha * layer.beta * x * inner, {}


def max_pool2d(x, y, g, layer: MaxPool2d, w, scale=None):
    """Each window's gradient goes to its (first) largest element."""
    xp, win = pool_windows(x, layer)
    n, c, oh, ow = g.shape
    k, s = layer.kernel, layer.stride
    arg = win.reshape(n, c, oh, ow, k * k).argmax(axis=-1)
    rows = np.arange(oh)[None, None, :, None] * s + arg // k
    cols = np.arange(ow)[None, None, None, :] * s + arg % k
    grad_xp = np.zeros_like(xp)
    ni, ci = np.indices((n, c, oh, ow))[:2]
    np.add.at(grad_xp, (ni, ci, rows, cols), g)
    return _unpad(grad_xp, pool_pads(layer, x.shape[2], x.shape[3])), {}


#: Two values closer than this (relative to the largest |value| of the tensor) may come
#: out in either order from a float32 forward pass (its error is ~1e-6 of that scale).
FLOAT32_TIE = 1e-5


def max_pool_ties(x: np.ndarray, layer: MaxPool2d) -> np.ndarray:
    """Where a max pool's input gradient is ambiguous: elements sharing their window's
    maximum with another element, to float32 accuracy (after a ReLU, windows of zeros;
    elsewhere, values closer than the float32 forward error). Each framework routes
    such a gradient its own way, and all are right; comparisons skip them."""
    xp, win = pool_windows(x, layer)
    n, c, oh, ow = win.shape[:4]
    k, s = layer.kernel, layer.stride
    win = win.reshape(n, c, oh, ow, k * k)
    top_value = win.max(axis=-1, keepdims=True)
    is_max = win >= top_value - FLOAT32_TIE * np.abs(x).max()
    tied = is_max & (is_max.sum(axis=-1, keepdims=True) > 1)
    arg = np.nonzero(tied)
    mask = np.zeros(xp.shape, dtype=bool)
    mask[arg[0], arg[1], arg[2] * s + arg[4] // k, arg[3] * s + arg[4] % k] = True
    return _unpad(mask, pool_pads(layer, x.shape[2], x.shape[3]))


def adaptive_avg_pool2d(x, y, g, layer: AdaptiveAvgPool2d, w, scale=None):
    grad_x = np.zeros_like(x)
    for i, (r0, r1) in enumerate(adaptive_bins(x.shape[2], layer.output_size[0])):
        for j, (c0, c1) in enumerate(adaptive_bins(x.shape[3], layer.output_size[1])):
            grad_x[:, :, r0:r1, c0:c1] += g[:, :, i, j][:, :, None, None] / ((r1 - r0) * (c1 - c0))
    return grad_x, {}


def flatten(x, y, g, layer, w, scale=None):
    return g.reshape(x.shape), {}


def dense(x, y, g, layer: Dense, w: Weights, scale=None):
    name = layer.name
    weight = w[f"{name}.weight"].astype(np.float64)
    return g @ weight, {f"{name}.weight": g.T @ x, f"{name}.bias": g.sum(axis=0)}


def dropout(x, y, g, layer, w, scale: Optional[np.ndarray] = None):
    return (g if scale is None else g * scale), {}


def softmax(x, y, g, layer, w, scale=None):
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
                  masks: Optional[Masks] = None,
                  eval_outputs: Optional[dict[str, np.ndarray]] = None) -> dict[str, np.ndarray]:
    """Every layer's float64 output with dropout applied by ``masks`` (eval mode if None).
    ``eval_outputs``: ``reference.forward`` of the same weights and ``x``, taken as they are
    up to the first Dropout that a mask changes (the convolutions, most of the arithmetic)."""
    outputs: dict[str, np.ndarray] = {}
    h = np.asarray(x, dtype=np.float64)
    for layer in variant.layers:
        if isinstance(layer, Dropout) and masks is not None:
            eval_outputs = None  # from here on the outputs are train mode's own
            h = h * dropout_scale(masks[layer.name], layer.p)
        elif eval_outputs is not None:
            h = eval_outputs[layer.name]
        else:
            h = reference.FORWARD[type(layer)](h, layer, weights)
        outputs[layer.name] = h
    return outputs


def backward(variant: Variant, weights: Weights, x: np.ndarray, labels: np.ndarray,
             masks: Optional[Masks] = None,
             loss_fn: Callable[[np.ndarray, np.ndarray], tuple[float, np.ndarray]] = cross_entropy,
             eval_outputs: Optional[dict[str, np.ndarray]] = None):
    """Loss, every layer's output, dL/d(every layer's output), dL/d(input) and
    dL/d(every parameter), all float64. The loss is taken at ``variant.logits_layer``;
    a final Softmax after it has no gradient. ``loss_fn`` (logits, labels) -> (loss,
    dL/dlogits) is the fixed cross-entropy; the step check's cause hypotheses pass a port's
    wrong loss (``crosscheck/step_causes.py``). ``eval_outputs``: see ``forward_train``."""
    outputs = forward_train(variant, weights, x, masks, eval_outputs)
    loss, g = loss_fn(outputs[variant.logits_layer], labels)
    layers = variant.up_to_logits().layers
    output_grads: dict[str, np.ndarray] = {}
    param_grads: ParamGrads = {}
    inputs = [np.asarray(x, dtype=np.float64)] + [outputs[layer.name] for layer in layers[:-1]]
    for layer, layer_in in zip(reversed(layers), reversed(inputs)):
        output_grads[layer.name] = g
        scale = None
        if isinstance(layer, Dropout) and masks is not None:
            scale = dropout_scale(masks[layer.name], layer.p)
        g, grads = BACKWARD[type(layer)](layer_in, outputs[layer.name], g, layer, weights, scale)
        param_grads.update(grads)
    return loss, outputs, dict(reversed(list(output_grads.items()))), g, param_grads

"""MXNet 1.9.1 + oneDNN: LRN's input gradient is wrong when its output gradient is in a blocked layout.

Standalone (numpy + mxnet). Run: MXNET_MKLDNN_ENABLED=1 python docs/mxnet_onednn_repro.py
See docs/mxnet-onednn-bug.md. Prints the relative error of x.grad against float64 NumPy, and
against a prediction of the bug: the LRN backward reading the nChw8c output gradient, and
writing the input gradient, in the nchw order of its input.
"""

import numpy as np

np.bool = bool  # mxnet 1.9.1 reads np.bool, removed in numpy 1.24
import mxnet as mx  # noqa: E402

N, C, H, W = 2, 8, 3, 5  # C = 8: one nChw8c block (AVX2); 16 on AVX-512 CPUs
NSIZE, ALPHA, BETA, K = 5, 1.0, 0.75, 2.0  # MXNet's LRN: alpha is divided by nsize
rng = np.random.default_rng(0)
x, g = rng.standard_normal((2, N, C, H, W))

eye = mx.nd.array(np.eye(C).reshape(C, C, 1, 1))  # a 1x1 identity convolution: dL/dlrn = g


def lrn_input_grad(then_conv: bool) -> np.ndarray:
    """x.grad of sum(g * LRN(x)), with or without the identity convolution after the LRN."""
    xa = mx.nd.array(x)
    xa.attach_grad()
    with mx.autograd.record():
        y = mx.nd.LRN(xa, nsize=NSIZE, alpha=ALPHA, beta=BETA, knorm=K)
        if then_conv:  # its backward hands the LRN an nChw8c gradient
            y = mx.nd.Convolution(y, eye, kernel=(1, 1), num_filter=C, no_bias=True)
    y.backward(mx.nd.array(g))
    return xa.grad.asnumpy()


def window_sum(v: np.ndarray) -> np.ndarray:
    """Sum over the NSIZE channels centred on each channel (zero outside)."""
    r = NSIZE // 2
    p = np.pad(v, ((0, 0), (r, r), (0, 0), (0, 0)))
    return sum(p[:, i:i + C] for i in range(NSIZE))


def lrn_backward(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """d(sum g * x / d^beta)/dx with d = K + ALPHA / NSIZE * window_sum(x^2), in float64."""
    d = K + ALPHA / NSIZE * window_sum(x * x)
    return g * d ** -BETA - 2 * ALPHA / NSIZE * BETA * x * window_sum(g * x * d ** (-BETA - 1))


to_blocked = lambda a: a.reshape(N, C // 8, 8, H, W).transpose(0, 1, 3, 4, 2)  # noqa: E731
from_blocked = lambda a: a.reshape(N, C // 8, H, W, 8).transpose(0, 1, 4, 2, 3)  # noqa: E731
expected = lrn_backward(x, g)
mixed_up = from_blocked(lrn_backward(x, to_blocked(g).reshape(x.shape))).reshape(x.shape)
rel = lambda a, b: np.linalg.norm(a - b) / np.linalg.norm(b)  # noqa: E731
for then_conv in (False, True):
    got = lrn_input_grad(then_conv)
    print(f"LRN{' -> 1x1 identity conv' if then_conv else ''}: x.grad[0, :4, 0, 0]\n"
          f"  expected {np.round(expected[0, :4, 0, 0], 5)}\n  got      {np.round(got[0, :4, 0, 0], 5)}\n"
          f"  relative L2 error vs float64 {rel(got, expected):.3g}, "
          f"vs the layout mix-up {rel(got, mixed_up):.3g}")

"""Every convention that differs between frameworks, written once.

Each function here is a classic porting bug made explicit; the implementations
call these and never restate the arithmetic. See docs and DESIGN.md.

- LRN: a spec LRN writes alpha as its source does, in the paper's convention
  (alpha not divided by the window size n) or in Caffe's (divided by n: its
  ``alpha_over_size``). PyTorch ``LocalResponseNorm`` and MXNet ``LRN`` divide
  alpha by n, as Caffe does; TensorFlow ``local_response_normalization`` takes a
  radius r (n = 2r + 1) and does not divide, as the paper does
  (``LRN_DIVIDES_ALPHA``).
- Layout: canonical tensors are OIHW convolutions and ``(out, in)`` dense
  weights (PyTorch's and MXNet's own layout). TensorFlow/Keras uses HWIO kernels
  and ``(in, out)`` dense kernels, on NHWC activations.
- Flatten order: canonical is C*H*W (channels-first). Keras flattens NHWC maps in
  H*W*C order, so the dense layer right after a flatten has its input rows permuted.
"""

from __future__ import annotations

import numpy as np

from common.spec import LRN


#: whether each LRN divides the alpha it is given by the window size n: the spec's two
#: conventions (``LRN.alpha_over_size``) and each framework's LRN layer
LRN_DIVIDES_ALPHA = {"paper": False, "caffe": True, "pytorch": True, "mxnet": True,
                     "tensorflow": False}


def lrn_alpha_for(lrn: LRN, divides: bool) -> float:
    """The ``alpha`` that gives an LRN which divides alpha by the window size n
    (``divides``) or not the spec layer's function: the spec's alpha where the
    conventions agree, times n for one that divides a paper's alpha, over n for one
    that does not divide a Caffe alpha."""
    if lrn.alpha_over_size == divides:
        return lrn.alpha
    return lrn.alpha * lrn.size if divides else lrn.alpha / lrn.size


def lrn_alpha_divided_by_size(lrn: LRN) -> float:
    """The ``alpha`` to pass to PyTorch ``LocalResponseNorm`` / MXNet ``LRN``, which
    compute ``alpha / size * sum(a^2)``: a paper's alpha times the window size, a
    Caffe alpha as it is."""
    return lrn_alpha_for(lrn, divides=True)


def lrn_alpha_undivided(lrn: LRN) -> float:
    """The ``alpha`` to pass to TensorFlow ``local_response_normalization``, which
    computes ``alpha * sum(a^2)``: a paper's alpha as it is, a Caffe alpha over the
    window size."""
    return lrn_alpha_for(lrn, divides=False)


def lrn_depth_radius(lrn: LRN) -> int:
    """TensorFlow's ``depth_radius``: the window is ``2 * radius + 1`` channels."""
    return (lrn.size - 1) // 2


def oihw_to_hwio(kernel: np.ndarray) -> np.ndarray:
    """Canonical convolution kernel to Keras's layout (grouped kernels included:
    ``(O, I/g, H, W)`` becomes ``(H, W, I/g, O)``)."""
    return np.ascontiguousarray(kernel.transpose(2, 3, 1, 0))


def hwio_to_oihw(kernel: np.ndarray) -> np.ndarray:
    """Inverse of ``oihw_to_hwio``."""
    return np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))


def hwc_to_chw_index(c: int, h: int, w: int) -> np.ndarray:
    """``perm[j]`` is the channels-first (C*H*W) position of the j-th element of an
    H*W*C flatten: ``chw_vector[perm] == hwc_vector``."""
    return np.arange(c * h * w).reshape(c, h, w).transpose(1, 2, 0).reshape(-1)


#: rows (output units) per block in the dense conversions below: a block of 32 rows of a
#: 9216-wide weight is ~1 MB and stays in cache while it is transposed, where a whole
#: ``weight.T`` copy of fc6 strides across 150 MB (~4x slower)
BLOCK = 32


def dense_to_keras(weight: np.ndarray, flatten_chw: tuple[int, int, int] | None = None) -> np.ndarray:
    """Canonical ``(out, in)`` dense weight to a Keras ``(in, out)`` kernel. Give
    ``flatten_chw`` for the first dense layer after a flatten of a (C, H, W) map:
    its input rows are then reordered from C*H*W to Keras's H*W*C (the order
    ``hwc_to_chw_index`` gives, as a transpose of the (C, H, W) axes rather than a gather)."""
    weight = np.asarray(weight)
    out_units, width = weight.shape
    kernel = np.empty((width, out_units), dtype=weight.dtype)
    for i in range(0, out_units, BLOCK):
        rows = weight[i:i + BLOCK]
        if flatten_chw is None:
            kernel[:, i:i + BLOCK] = rows.T
        else:  # (b, C, H, W) -> (H, W, C, b)
            block = rows.reshape(len(rows), *flatten_chw).transpose(2, 3, 1, 0)
            kernel[:, i:i + BLOCK] = block.reshape(width, len(rows))
    return kernel


def dense_from_keras(kernel: np.ndarray, flatten_chw: tuple[int, int, int] | None = None) -> np.ndarray:
    """Inverse of ``dense_to_keras``."""
    kernel = np.asarray(kernel)
    width, out_units = kernel.shape
    if flatten_chw is not None:  # rows (H, W, C) -> (C, H, W): whole rows move, a fast copy
        c, h, w = flatten_chw
        kernel = kernel.reshape(h, w, c, out_units).transpose(2, 0, 1, 3).reshape(width, out_units)
    weight = np.empty((out_units, width), dtype=kernel.dtype)
    for j in range(0, width, BLOCK):  # blocks of contiguous input rows: ~4x a whole .T copy
        weight[:, j:j + BLOCK] = kernel[j:j + BLOCK].T
    return weight


def hwc_flat_to_chw(x: np.ndarray, chw: tuple[int, int, int]) -> np.ndarray:
    """A batch of H*W*C-flattened rows (Keras's Flatten on NHWC) in canonical C*H*W order."""
    out = np.empty_like(x)
    out[:, hwc_to_chw_index(*chw)] = x
    return out


def keras_shape(canonical: tuple[int, ...]) -> tuple[int, ...]:
    """The Keras layout's shape of a canonical parameter shape: OIHW -> HWIO, (out, in) ->
    (in, out), a bias unchanged."""
    if len(canonical) == 4:
        o, i, h, w = canonical
        return (h, w, i, o)
    return tuple(reversed(canonical))


def canonical_shape_from_keras(native: tuple[int, ...]) -> tuple[int, ...]:
    """Inverse of ``keras_shape``."""
    if len(native) == 4:
        h, w, i, o = native
        return (o, i, h, w)
    return tuple(reversed(native))

"""Porting bugs that change a number of an LRN or a pool: the number is fit from the data.

LRN: ``y = x / (k + alpha' * S) ** beta`` is solved element by element for alpha', k or
beta (S, the window's sum of squares, from the spec's window; alpha' the alpha that
multiplies it, ``reference.lrn_alpha``: the spec's, over the window size in Caffe's
convention), the median taken, and the refit LRN recomputed: a wrong constant is named
with its value, alpha in the spec layer's own convention. A wrong window size is
found by trying every window up to twice the spec's plus one. Pools: every kernel,
stride, padding and rounding near the spec's that gives the observed output size is
tried; adaptive pooling: the two bin rules ports get wrong.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Optional

import numpy as np

from common import reference
from common.spec import LRN, MaxPool2d
from crosscheck.causes.base import EVIDENCE, Blamed, Hypotheses, fmt


def rounded(value: float) -> float:
    """``value`` to 3 significant digits: a constant a port typed in, not float noise."""
    return float(f"{value:.3g}")


def alpha_in_convention(layer: LRN, factor: float) -> float:
    """The alpha that, written in ``layer``'s convention (``alpha_over_size``), multiplies
    the window's sum of squares by ``factor``."""
    return factor * layer.size if layer.alpha_over_size else factor


def lrn_fits(b: Blamed) -> dict[str, float]:
    """alpha, k and beta each solved from the observed output with the other two (and the
    window) the spec's, as medians over the elements that pin them down; alpha in the spec
    layer's convention."""
    layer, x, y = b.layer, b.x, b.observed
    if y.shape != x.shape:
        return {}
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = x / y
    usable = ((np.abs(x) > 1e-3 * float(np.max(np.abs(x), initial=0.0))) & np.isfinite(ratio)
              & (ratio > 0))
    if usable.sum() < EVIDENCE:
        return {}
    s, q = reference.window_sum(x * x, layer.size)[usable], ratio[usable]
    root = q ** (1.0 / layer.beta)  # = k + alpha * S
    big = s >= np.median(s)  # alpha is pinned down where alpha * S is largest
    factor = reference.lrn_alpha(layer)
    base = np.log(layer.k + factor * s)
    steep = np.abs(base) >= np.median(np.abs(base))
    fits = {"alpha": alpha_in_convention(layer, np.median((root[big] - layer.k) / s[big])),
            "k": np.median(root - factor * s),
            "beta": (np.median(np.log(q[steep]) / base[steep]) if np.all(base[steep] != 0)
                     else np.nan)}
    return {key: float(v) for key, v in fits.items() if np.isfinite(v)}


def alpha_text(layer: LRN, alpha: float) -> str:
    """The bug an LRN computing with ``alpha`` (in the spec layer's convention) has."""
    caffe = layer.alpha_over_size
    head = (f"LRN alpha is {fmt(alpha)} where the spec has {fmt(layer.alpha)}"
            + (" (Caffe's convention: divided by the window size)" if caffe else ""))
    n = layer.size
    if math.isclose(alpha * n, layer.alpha, rel_tol=1e-2):
        return (f"{head}: alpha divided by the window size {n} "
                + ("once more (Caffe's alpha divided by n before PyTorch/MXNet LRN, which "
                   "divide it themselves)" if caffe else
                   "(the paper's alpha passed to PyTorch/MXNet LRN unconverted)"))
    if math.isclose(alpha, layer.alpha * n, rel_tol=1e-2):
        return (f"{head}: alpha multiplied by the window size {n} "
                + ("(Caffe's alpha taken as the paper's, undivided: passed to TensorFlow's LRN "
                   "as it is, or multiplied by n for PyTorch/MXNet's)" if caffe else
                   "(PyTorch/MXNet's alpha*n passed to an LRN that does not divide by n, as "
                   "TensorFlow's)"))
    return head


def window_text(layer: LRN, size: int) -> str:
    head = f"LRN window is {size} channels where the spec has {layer.size}"
    if size == 2 * layer.size + 1:
        return (f"{head}: TensorFlow's depth_radius given the window size (2*{layer.size}+1 "
                f"channels)")
    if size == layer.size // 2:
        return f"{head}: the radius {size} given as the window size"
    return head


def lrn_hypotheses(b: Blamed) -> Hypotheses:
    layer, x = b.layer, b.x

    def lrn(**changes: float) -> np.ndarray:
        return reference.lrn(x, replace(layer, **changes), {})

    yield f"{b.name}: LRN missing (its output equals its input)", x
    fits = lrn_fits(b)
    for key, value in fits.items():
        spec = getattr(layer, key)
        if math.isclose(value, spec, rel_tol=1e-3):
            continue
        for candidate in dict.fromkeys((rounded(value), value)):
            text = (alpha_text(layer, candidate) if key == "alpha" else
                    f"LRN {key} is {fmt(candidate)} where the spec has {fmt(spec)}")
            yield f"{b.name}: {text}", lrn(**{key: candidate})
    # a wrong window with the spec's alpha, and with the alpha one framework was given still
    # converted for the spec's window: PyTorch/MXNet's alpha * n (paper) or TensorFlow's
    # alpha / n (Caffe), which the wrong window then divides differently or not at all
    for size in range(1, 2 * layer.size + 2):
        if size != layer.size:
            kept = size / layer.size if layer.alpha_over_size else layer.size / size
            yield f"{b.name}: {window_text(layer, size)}", lrn(size=size)
            yield (f"{b.name}: {window_text(layer, size)} (alpha still converted for "
                   f"{layer.size})", lrn(size=size, alpha=layer.alpha * kept))


#: how likely each number of a pool is to be ported wrong, 0 the likeliest (SAME padding: 1)
POOL_RANK = {"ceil_mode": 0, "padding": 2, "stride": 3, "kernel": 4}


def max_pool_padded(x: np.ndarray, kernel: int, stride: int, pads: tuple[int, ...]) -> np.ndarray:
    """Max pooling after explicit -inf padding (top, bottom, left, right), floor rounding."""
    top, bottom, left, right = pads
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=-np.inf)
    return reference.windows(xp, kernel, stride).max(axis=(4, 5))


def pool_changes(layer: MaxPool2d, alt: MaxPool2d) -> str:
    """What ``alt`` changes of ``layer``, in words."""
    said = [f"{what} {getattr(alt, field)} where the spec has {getattr(layer, field)}"
            for field, what in (("kernel", "window"), ("stride", "stride"), ("padding", "padding"))
            if getattr(alt, field) != getattr(layer, field)]
    if alt.ceil_mode != layer.ceil_mode:
        said.append("ceil mode where the spec rounds down (floor)" if alt.ceil_mode
                    else "floor rounding where the spec has ceil mode")
    return "; ".join(said)


def pool_alternatives(layer: MaxPool2d, height: int,
                      width: int) -> list[tuple[tuple, str, "MaxPool2d | tuple", tuple[int, int]]]:
    """(rank, the bug, the pool, its output height and width) for every pool near ``layer``,
    fewest changes first, then the likeliest (``POOL_RANK``); a tuple pool is (kernel,
    stride, TensorFlow's SAME pads)."""
    found: list[tuple[tuple, str, MaxPool2d | tuple, tuple[int, int]]] = []
    for kernel in range(1, layer.kernel + 3):
        for stride in range(1, layer.stride + 3):
            for padding in range(0, kernel // 2 + 1):
                for ceil in (False, True):
                    alt = MaxPool2d(layer.name, kernel, stride, padding, ceil)
                    changed = [f for f in POOL_RANK if getattr(alt, f) != getattr(layer, f)]
                    if changed:
                        rank = (len(changed), min(POOL_RANK[f] for f in changed))
                        hw = (reference.pooled_size(height, alt), reference.pooled_size(width, alt))
                        found.append((rank, pool_changes(layer, alt), alt, hw))
            pads = (reference.same_pads(height, kernel, stride)
                    + reference.same_pads(width, kernel, stride))
            hw = ((height + pads[0] + pads[1] - kernel) // stride + 1,
                  (width + pads[2] + pads[3] - kernel) // stride + 1)
            sizes = pool_changes(layer, replace(layer, kernel=kernel, stride=stride))
            text = (f"TensorFlow SAME padding {pads} where the spec pads {layer.padding} "
                    f"({'ceil' if layer.ceil_mode else 'floor'} mode)" + (f"; {sizes}" if sizes else ""))
            found.append(((1 + bool(sizes), 1), text, (kernel, stride, pads), hw))
    return sorted(found, key=lambda item: item[0])


def pool_hypotheses(b: Blamed) -> Hypotheses:
    layer, x = b.layer, b.x
    if x.shape == b.observed.shape:
        yield f"{b.name}: pool missing (its output equals its input)", x
    if layer.padding == 0 and not layer.ceil_mode:
        windows = reference.windows(x, layer.kernel, layer.stride)
        yield f"{b.name}: average pooling where the spec has max pooling", windows.mean(axis=(4, 5))
    for _, text, alt, hw in pool_alternatives(layer, *x.shape[2:]):
        if hw != b.observed.shape[2:]:
            continue
        output = (reference.max_pool2d(x, alt, {}) if isinstance(alt, MaxPool2d)
                  else max_pool_padded(x, *alt))
        yield f"{b.name}: {text}", output


def bin_mean(x: np.ndarray, rows: list[tuple[int, int]],
             cols: list[tuple[int, int]]) -> Optional[np.ndarray]:
    """Averages of x over every (row bin, column bin), or None where a bin is empty."""
    if any(r1 <= r0 for r0, r1 in rows + cols):
        return None
    return np.stack([np.stack([x[:, :, r0:r1, c0:c1].mean(axis=(2, 3)) for c0, c1 in cols], axis=-1)
                     for r0, r1 in rows], axis=-2)


def adaptive_hypotheses(b: Blamed) -> Hypotheses:
    x, (oh, ow) = b.x, b.layer.output_size
    height, width = x.shape[2:]
    if x.shape == b.observed.shape:
        yield f"{b.name}: adaptive pool missing (its output equals its input)", x
    naive = [[((i * n) // o, ((i + 1) * n) // o) for i in range(o)]
             for n, o in ((height, oh), (width, ow))]
    yield (f"{b.name}: adaptive bins [floor(i*H/o), floor((i+1)*H/o)) (a naive port) where "
           f"PyTorch's end at ceil((i+1)*H/o)", bin_mean(x, *naive))
    strides = (height // oh, width // ow)
    kernels = (height - (oh - 1) * strides[0], width - (ow - 1) * strides[1])
    if min(strides) >= 1:
        emulated = [[(i * s, i * s + k) for i in range(o)]
                    for s, k, o in zip(strides, kernels, (oh, ow))]
        yield (f"{b.name}: AvgPool2d(kernel={kernels}, stride={strides}) standing in for adaptive "
               f"pooling (stride = H//o, kernel = H - (o-1)*stride)", bin_mean(x, *emulated))

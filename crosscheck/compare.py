"""Error metrics between a layer's output and the float64 reference, and the tolerances.

Element-wise relative tolerances are useless here: after a ReLU many values are
near zero, so ``assert_close``-style checks fail every layer on float32 noise.
We use norm-based figures instead (DESIGN.md, "Numerics"):

- ``rel_l2``   ||out - ref|| / ||ref||         the main pass/fail figure;
- ``norm_max`` max|out - ref| / max|ref|      catches a few badly wrong elements;
- ``max_abs``  max|out - ref|                 reported, scale-dependent, not judged;
- ``growth``   rel_l2 of this layer / rel_l2 of the layer before: a layer whose
  error jumps is the one to blame, not the ones after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np


@dataclass(frozen=True)
class Tolerances:
    """Pass/fail thresholds. Defaults are for float32 on a CPU or with TF32 off.

    Measured float32 error against float64 on every variant stays near 1e-6 in
    both figures (largest seen ~4e-6, in the deep dense stacks of gluon-cifar),
    so 1e-5 leaves a margin over float32 noise, while every classic porting bug
    (flatten order, LRN alpha, SAME padding, kernel layout) lands above 1e-2.
    Between two frameworks both errors add up, hence twice the tolerance.
    """

    rel_l2: float = 1e-5
    norm_max: float = 1e-5
    pairwise_factor: float = 2.0


DEFAULT_TOLERANCES = Tolerances()


@dataclass(frozen=True)
class LayerError:
    """Error figures of one layer's output; ``problem`` explains a failure that is
    not a number (shape mismatch, NaN)."""

    rel_l2: float
    norm_max: float
    max_abs: float
    problem: Optional[str] = None

    def passes(self, tol: Tolerances, factor: float = 1.0) -> bool:
        return (self.problem is None and self.rel_l2 <= tol.rel_l2 * factor
                and self.norm_max <= tol.norm_max * factor)


#: elements per slice of ``layer_error``'s float64 difference (2 MB): the difference of a
#: large gradient never exists whole (fc6's 4096x9216 would be two 300 MB float64 copies,
#: which cost more in page faults than the arithmetic)
CHUNK = 1 << 18


def _abs_max(a: np.ndarray) -> float:
    """max|a| without an ``abs`` copy of ``a``."""
    return max(float(np.max(a)), -float(np.min(a))) if a.size else 0.0


def _diff_norms(out: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """(||out - ref||, max|out - ref|), the difference taken in float64 one slice at a
    time: every element is compared, and the figures match a whole float64 difference
    to rounding (the sum of squares is accumulated per slice)."""
    o, r = np.ravel(out), np.ravel(ref)
    buf = np.empty(min(CHUNK, o.size), np.float64)
    sumsq, peak = 0.0, 0.0
    for start in range(0, o.size, CHUNK):
        d = np.subtract(o[start:start + CHUNK], r[start:start + CHUNK],
                        out=buf[:min(CHUNK, o.size - start)], dtype=np.float64)
        sumsq += float(np.dot(d, d))
        peak = max(peak, _abs_max(d))  # a NaN here makes sumsq NaN: handled by the caller
    return float(np.sqrt(sumsq)), peak


def layer_error(out: np.ndarray, ref: np.ndarray, scale_ref: Optional[np.ndarray] = None) -> LayerError:
    """Errors of ``out`` against ``ref``, normalized by ``scale_ref`` (default ``ref``);
    the pairwise comparison of two frameworks normalizes by the float64 reference."""
    scale_ref = ref if scale_ref is None else scale_ref
    if out.shape != ref.shape:
        per_image = lambda shape: "x".join(map(str, shape[1:])) or "scalar"  # noqa: E731
        return LayerError(np.inf, np.inf, np.inf, f"output shape {per_image(out.shape)} where the "
                                                  f"spec has {per_image(ref.shape)}")
    diff_norm, max_abs = _diff_norms(out, ref)
    if not np.isfinite(diff_norm):
        # a non-finite difference: either the output holds NaN or Inf (its failure), or the
        # reference does, where the whole-array figures below say what they always said
        if not np.all(np.isfinite(out)):
            return LayerError(np.inf, np.inf, np.inf, "output holds NaN or Inf")
        diff = out.astype(np.float64) - ref.astype(np.float64)
        diff_norm = float(np.linalg.norm(diff))
        max_abs = float(np.max(np.abs(diff))) if diff.size else 0.0
    ref_norm = float(np.linalg.norm(scale_ref))
    ref_max = _abs_max(scale_ref)
    if ref_norm == 0.0:
        # An all-zero reference proves nothing; only an exact match passes.
        return LayerError(0.0 if max_abs == 0 else np.inf, 0.0 if max_abs == 0 else np.inf,
                          max_abs, None if max_abs == 0 else "reference is all zeros")
    return LayerError(diff_norm / ref_norm, max_abs / ref_max, max_abs)

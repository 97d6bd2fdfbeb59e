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


def layer_error(out: np.ndarray, ref: np.ndarray, scale_ref: Optional[np.ndarray] = None) -> LayerError:
    """Errors of ``out`` against ``ref``, normalized by ``scale_ref`` (default ``ref``);
    the pairwise comparison of two frameworks normalizes by the float64 reference."""
    scale_ref = ref if scale_ref is None else scale_ref
    if out.shape != ref.shape:
        per_image = lambda shape: "x".join(map(str, shape[1:])) or "scalar"  # noqa: E731
        return LayerError(np.inf, np.inf, np.inf, f"output shape {per_image(out.shape)} where the "
                                                  f"spec has {per_image(ref.shape)}")
    if not np.all(np.isfinite(out)):
        return LayerError(np.inf, np.inf, np.inf, "output holds NaN or Inf")
    diff = out.astype(np.float64) - ref.astype(np.float64)
    ref_norm = float(np.linalg.norm(scale_ref))
    ref_max = float(np.max(np.abs(scale_ref))) if scale_ref.size else 0.0
    max_abs = float(np.max(np.abs(diff))) if diff.size else 0.0
    if ref_norm == 0.0:
        # An all-zero reference proves nothing; only an exact match passes.
        return LayerError(0.0 if max_abs == 0 else np.inf, 0.0 if max_abs == 0 else np.inf,
                          max_abs, None if max_abs == 0 else "reference is all zeros")
    return LayerError(float(np.linalg.norm(diff)) / ref_norm, max_abs / ref_max, max_abs)

"""The fast-path check: ``alexnet bench``'s own passes, fast paths on, against float64.

The benchmark times each framework with its fast path (PyTorch channels-last and cuDNN
autotuning, TensorFlow XLA, Gluon static hybridization). A fast path that changed the
numbers would be a bug the timings hide, so the crosscheck runs the very session the
benchmark times (``backend.bench_session``, float32) and compares its eval output and its
parameter gradients (dropout off) with the float64 reference, with the tolerances of the
forward check and of end-to-end gradients.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from common.spec import Variant
from common.weights import Weights
from crosscheck.backward import DEFAULT_GRADIENT_TOLERANCES, GradientTolerances
from crosscheck.compare import DEFAULT_TOLERANCES, LayerError, Tolerances, layer_error
from impls.base import FastPaths
from crosscheck.verdicts import explain


@dataclass
class FastPathRun:
    framework: str
    status: str
    fast_paths: dict[str, bool] = field(default_factory=dict)
    output: Optional[LayerError] = None
    gradients: dict[str, LayerError] = field(default_factory=dict)
    error: Optional[str] = None
    seconds: float = 0.0
    #: whether the same framework's plain model passed its forward and backward checks
    #: (None: not run): a fast path is to blame only where the plain model is right
    plain_passed: Optional[bool] = None

    @property
    def worst_gradient(self) -> tuple[str, float]:
        """(parameter, relative L2 error) of the worst gradient."""
        if not self.gradients:
            return "", float("nan")
        key = max(self.gradients, key=lambda k: self.gradients[k].rel_l2)
        return key, self.gradients[key].rel_l2


def check_fast_paths(backend, variant: Variant, weights: Weights, x: np.ndarray,
                     labels: np.ndarray, ref_output: np.ndarray, ref_grads: Weights,
                     tol: Tolerances = DEFAULT_TOLERANCES,
                     grad_tol: GradientTolerances = DEFAULT_GRADIENT_TOLERANCES,
                     fast: FastPaths = FastPaths()) -> FastPathRun:
    """Build ``backend``'s benchmark session (``fast``: the benchmark's defaults; fp32) on
    ``x`` and compare its output with ``ref_output`` and its gradients with ``ref_grads``
    (float64, dropout off)."""
    start = time.perf_counter()
    run = FastPathRun(backend.name, "pass")
    try:
        session = backend.bench_session(variant, weights, x, labels, fast, "fp32")
        run.fast_paths = session.applied
        run.output = layer_error(session.logits(), ref_output)
        grads = session.gradients()
        run.gradients = {key: layer_error(grads[key], ref) for key, ref in ref_grads.items()}
    except Exception as exc:  # the framework's own message, kept for the report
        run.error = explain(backend, variant, "building or running the benchmark session", exc).text
    if (run.error or not run.output.passes(tol)
            or not all(e.passes(grad_tol.end_to_end_gradients) for e in run.gradients.values())):
        run.status = "FAIL"
    run.seconds = time.perf_counter() - start
    return run

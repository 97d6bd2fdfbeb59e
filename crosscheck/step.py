"""The optimizer-step check: each framework's own optimizer against the float64 update.

From the same canonical weights, batch, labels and dropout masks, every framework runs
``STEPS`` whole training steps (train-mode forward, loss, backward, step) with its own
optimizer (``torch.optim``, ``gluon.Trainer``, ``keras.optimizers``), once for each
setting in ``common.optim.OPTIMIZERS``, with arguments from the one mapping there.

The reference applies the float64 update (``common.optim.ReferenceOptimizer``) to the
gradients that framework computed at each step, so a weight difference is the
optimizer's own: momentum, weight decay form, Adam's bias correction and epsilon,
gradient rescaling. The gradients themselves are judged by the backward check, and
here once more at the first step (the training step runs the whole model in one
graph, not the backward check's layer chain). The two settings start from the same
weights, so their first-step gradients are also a run-to-run determinism check.

Weights are compared element-wise in units of float32 epsilon times the largest |w|
the element took along the reference trajectory: storing the weights in float32
alone costs up to 0.5 of that unit per step. The relative L2 error of the update
``w_t - w_0`` is reported beside it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from common.optim import OPTIMIZERS, OptimizerSpec, ReferenceOptimizer, chunks, framework_optimizer
from common.spec import Variant
from common.weights import Weights
from crosscheck.backward import Chain, float32_scales
from crosscheck.compare import LayerError, Tolerances, layer_error
from crosscheck.verdicts import explain

STEPS = 3
EPS32 = float(np.finfo(np.float32).eps)
TINY = float(np.finfo(np.float32).tiny)


@dataclass(frozen=True)
class StepTolerances:
    """Weights: measured at most 6.7 units after 3 steps over all variants and
    frameworks (the float32 rounding of each update and of the stored weights); 16
    leaves room for other seeds. The classic optimizer porting bugs land far above:
    decoupled weight decay ~110 units at step 3, momentum dampening 0.1 and a gradient
    rescaled by the batch size >10^3. Gradients and loss at the first step: the backward
    check's end-to-end limits."""

    weights: float = 16.0
    gradient_rel_l2: float = 2e-2
    loss_rel: float = 1e-5


DEFAULT_STEP_TOLERANCES = StepTolerances()


@dataclass
class StepRow:
    """One parameter after one step of one optimizer setting."""

    optimizer: str
    step: int
    param: str
    eps_units: float  # max |w - w_ref| / (float32 eps * largest |w_ref| along the way)
    update_rel_l2: float  # ||(w - w0) - (w_ref - w0)|| / ||w_ref - w0||
    passed: bool


@dataclass
class StepRun:
    framework: str
    status: str
    rows: list[StepRow] = field(default_factory=list)
    #: first-step gradient of each parameter against the reference's
    gradients: dict[str, LayerError] = field(default_factory=dict)
    gradients_passed: bool = True
    loss_error: float = float("nan")
    #: parameter -> largest difference between the two first-step gradients (same input),
    #: relative to the gradient's largest element
    run_to_run: dict[str, float] = field(default_factory=dict)
    error: Optional[str] = None  # what the framework raised
    seconds: float = 0.0

    @property
    def first_failure(self) -> Optional[StepRow]:
        return next((r for r in self.rows if not r.passed), None)

    def worst(self, optimizer: str, step: int) -> tuple[float, float]:
        """(eps units, update rel L2), the worst over parameters."""
        rows = [r for r in self.rows if r.optimizer == optimizer and r.step == step]
        return (max((r.eps_units for r in rows), default=float("nan")),
                max((r.update_rel_l2 for r in rows), default=float("nan")))


def weight_error(got: np.ndarray, ref: np.ndarray, start: np.ndarray,
                 peak: np.ndarray) -> tuple[float, float]:
    """(eps units, update rel L2) of a framework's weights ``got`` against the reference's
    ``ref``, both reached from ``start``; ``peak`` is the reference's largest ``|w|``."""
    got = np.asarray(got)
    if got.shape != ref.shape or not np.all(np.isfinite(got)):
        return float("inf"), float("inf")
    units, err2, update2 = 0.0, 0.0, 0.0
    got, ref, start, peak = (a.reshape(-1) for a in (got, ref, start, peak))
    for part in chunks(ref.size):
        diff = got[part] - ref[part]
        units = max(units, float(np.max(np.abs(diff) / (EPS32 * np.maximum(peak[part], TINY)))))
        update = ref[part] - start[part]
        err2 += float(diff @ diff)
        update2 += float(update @ update)
    return units, (np.sqrt(err2 / update2) if update2 else (0.0 if err2 == 0 else float("inf")))


def check_steps(backend, variant: Variant, weights: Weights, x: np.ndarray, labels: np.ndarray,
                masks: dict[str, np.ndarray], ref: Chain,
                optimizers: Optional[dict[str, OptimizerSpec]] = None, steps: int = STEPS,
                tol: StepTolerances = DEFAULT_STEP_TOLERANCES) -> StepRun:
    """``steps`` training steps per optimizer setting; weights compared after the first
    and the last."""
    start_time = time.perf_counter()
    scales = float32_scales(variant, masks)
    run = StepRun(backend.name, "pass")
    first: dict[str, Weights] = {}
    for name, spec in (optimizers or OPTIMIZERS).items():
        try:
            model = backend.build(variant, weights)
            optimizer = backend.make_optimizer(model, spec)
            # elementwise from here: the reference runs in the framework's own layout
            start = backend.native_weights(model)
            reference = ReferenceOptimizer(spec, start, framework_optimizer(spec, backend.name))
            if not first:
                expected_grads = backend.to_native(model, ref.param_grads)
            for step in range(1, steps + 1):
                loss, grads = backend.train_step(model, optimizer, x, labels, scales)
                if step == 1:
                    first[name] = grads
                    if len(first) == 1:
                        run.loss_error = abs(loss - ref.loss) / abs(ref.loss)
                reference.step(grads)
                if step in (1, steps):
                    got = backend.native_weights(model)
                    for key, expected in reference.weights.items():
                        units, update = weight_error(got.get(key, np.array(np.nan)), expected,
                                                     start[key], reference.peak[key])
                        run.rows.append(StepRow(name, step, key, units, update, units <= tol.weights))
        except Exception as exc:  # a framework's own error message, kept for the report
            run.error = explain(backend, variant, f"running {name} training steps", exc).text
            break
    if first:
        grads = next(iter(first.values()))
        run.gradients = {key: layer_error(np.asarray(grads.get(key, np.nan)), g)
                         for key, g in expected_grads.items()}
        limit = Tolerances(rel_l2=tol.gradient_rel_l2, norm_max=float("inf"))
        run.gradients_passed = all(e.passes(limit) for e in run.gradients.values())
        for other in list(first.values())[1:]:
            run.run_to_run.update({
                key: float(np.max(np.abs(g - other[key])) / max(np.max(np.abs(g)), np.finfo(np.float32).tiny))
                for key, g in grads.items() if not np.array_equal(g, other[key])})
    if (run.error or run.first_failure or not run.gradients_passed
            or not run.loss_error <= tol.loss_rel):
        run.status = "FAIL"
    run.seconds = time.perf_counter() - start_time
    return run

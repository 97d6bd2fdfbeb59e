"""The optimizer-step check: each framework's own optimizer against the float64 update.

From the same canonical weights, batch, labels and dropout masks, every framework runs
``STEPS`` whole training steps (train-mode forward, loss, backward, step) with its own
optimizer (``torch.optim``, ``gluon.Trainer``, ``keras.optimizers``), once for each
setting in ``common.optim.OPTIMIZERS``, with arguments from the one mapping there.

The settings keep their kind, momentum and betas, but the check runs them as a probe
(``probe_settings``) whose numbers make every term of the update dominate somewhere. At
the settings' own numbers (lr 0.01 on pixel-scale inputs) the loss of the small variants
reached 2e8 (``cifar-small``) or 1e32 (``torchvision-small``) by step 3, or saturated to 0
(``paper-small``, ``odd``), where steps 2 and 3 had no gradient to speak of and a momentum
dampening of 0.1 went unseen (13 units); and a missing weight decay (lr * wd = 5e-6 of
each weight, 42 units) failed step 1 by less than 3x the tolerance. The probe's learning rate moves no parameter
tensor by more than ``PROBE_MOVE`` of its norm per step, so the gradients stay alive; its
weight decay makes lr * wd = ``PROBE_DECAY`` (168 units per step, decay alone moves the
many weights with no gradient); Adam's epsilon sits at a quantile of the first step's
gradients, so it dominates the update of that share of the weights; and each step's
labels are the previous step's shifted by one class, so the gradient changes between
steps and the momentum and Adam's moments weigh different gradients.

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
``w_t - w_0`` is reported beside it. A failure is diagnosed: the known porting bugs are
tested on it numerically (``crosscheck/step_causes.py``) and a confirmed one is named.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Optional

import numpy as np

from common.optim import OPTIMIZERS, OptimizerSpec, ReferenceOptimizer, chunks, framework_optimizer
from common.spec import Variant
from common.weights import Weights
from crosscheck.backward import Chain, float32_scales
from crosscheck.compare import LayerError, Tolerances, layer_error
from crosscheck.step_causes import EPS32, TINY, Diagnosis, StepTrace, gradient_cause, optimizer_cause
from crosscheck.verdicts import explain

STEPS = 3
#: the probe's learning rate moves no parameter tensor by more than this of its norm per
#: step (measured: the gradients of every small variant stay alive through 3 steps; at 0.1
#: the loss of torchvision-small jumped from 9.6 to 33)
PROBE_MOVE = 1e-2
#: the probe's lr * weight decay: each weight shrinks by this of itself per step, 168 of
#: the tolerance's eps|w| units, so a missing or doubled decay fails step 1 by 10x and a
#: decoupled one (2.61 of it by step 3, where the momentum has carried the coupled decay)
#: fails step 3 by 27x
PROBE_DECAY = 2e-5
#: the probe's Adam epsilon: this quantile of the first step's nonzero |gradient|
PROBE_EPS_QUANTILE = 0.1
#: elements of a failed parameter kept for the cause hypotheses, per compared step
WORST_KEPT = 1024


@dataclass(frozen=True)
class StepTolerances:
    """Weights: measured at most 6.7 units after 3 steps over all variants and
    frameworks at the settings' own numbers, and at most 5.3 with the probe (the small
    variants of tests/test_step.py and full-size ``paper``, all three frameworks): the
    float32 rounding of each update and of the stored weights; 16 leaves room for other
    seeds. The optimizer porting bugs land at least 4x above, at the step they first show
    (tests/test_step_causes.py): a missing, doubled or also-decoupled weight decay ~165
    units at step 1, a decoupled one ~430 at step 3, everything else (momentum, Nesterov,
    dampening, learning rate, Adam's epsilon, a gradient rescaled by the batch size) >10^4.
    Gradients and loss at the first step: the backward check's end-to-end limits."""

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
    #: the settings the steps ran: the probe's numbers (``probe_settings``)
    settings: dict[str, OptimizerSpec] = field(default_factory=dict)
    #: the confirmed cause of the failure, in words, and its evidence (None: none confirmed)
    cause: Optional[str] = None
    evidence: Optional[str] = None
    #: the hypotheses tried on each failure (crosscheck/step_causes.py), with their errors
    diagnoses: list[Diagnosis] = field(default_factory=list)

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


def worst_elements(got: np.ndarray, ref: np.ndarray, peak: np.ndarray, count: int) -> np.ndarray:
    """Flat indices of the ``count`` elements of ``got`` farthest from ``ref`` in eps|w| units."""
    got, ref, peak = (np.asarray(a).reshape(-1) for a in (got, ref, peak))
    if got.shape != ref.shape:
        return np.arange(min(count, ref.size))
    best_units, best_index = np.empty(0), np.empty(0, dtype=np.int64)
    for part in chunks(ref.size):
        with np.errstate(invalid="ignore"):
            units = np.abs(got[part] - ref[part]) / (EPS32 * np.maximum(peak[part], TINY))
        units = np.nan_to_num(units, nan=np.inf)
        index = np.arange(part.start, part.stop)
        best_units, best_index = np.concatenate([best_units, units]), np.concatenate([best_index, index])
        if best_units.size > count:
            keep = np.argpartition(-best_units, count)[:count]
            best_units, best_index = best_units[keep], best_index[keep]
    return best_index


def _round(value: float) -> float:
    """Two significant digits: the probe's numbers read as typed in."""
    return float(f"{value:.2g}")


def probe_settings(settings: dict[str, OptimizerSpec], weights: Weights,
                   grads: Weights) -> dict[str, OptimizerSpec]:
    """The numbers the step check runs each setting with (module docstring), from the
    canonical ``weights`` and the reference's first-step ``grads``; kind, momentum and
    betas kept, a weight decay only where the setting has one.

    SGD: lr = ``PROBE_MOVE`` / the largest ||g|| / ||w|| of a tensor (with the crosscheck's
    weights, the output layer's, which start 100x small), wd = ``PROBE_DECAY`` / lr. Adam, whose step is ~lr
    per element whatever the gradient: lr = ``PROBE_MOVE`` x the smallest RMS of a tensor;
    eps at ``PROBE_EPS_QUANTILE`` of the nonzero |g|. A setting keeps its own number where
    the data give none (all weights or gradients zero)."""
    norms = [(float(np.linalg.norm(grads[k])), float(np.linalg.norm(w)), np.asarray(w).size)
             for k, w in weights.items() if k in grads]
    ratio = max((g / w for g, w, _ in norms if w > 0), default=0.0)
    rms = min((w / np.sqrt(n) for _, w, n in norms if w > 0), default=0.0)
    # a strided sample of every gradient is enough for a quantile, and cheap on 60M elements
    sampled = np.concatenate([np.abs(np.asarray(g).reshape(-1)[::max(1, np.asarray(g).size // 100_000)])
                              for g in grads.values()] or [np.zeros(0)])
    nonzero = sampled[sampled > 0]
    probes = {}
    for name, spec in settings.items():
        if spec.kind == "sgd":
            lr = _round(PROBE_MOVE / ratio) if ratio > 0 else spec.lr
        else:
            lr = _round(PROBE_MOVE * rms) if rms > 0 else spec.lr
        changes = dict(lr=lr, weight_decay=_round(PROBE_DECAY / lr) if spec.weight_decay else 0.0)
        if spec.kind == "adam" and nonzero.size:
            changes["eps"] = _round(float(np.quantile(nonzero, PROBE_EPS_QUANTILE)))
        probes[name] = replace(spec, **changes)
    return probes


def check_steps(backend, variant: Variant, weights: Weights, x: np.ndarray, labels: np.ndarray,
                masks: dict[str, np.ndarray], ref: Chain,
                optimizers: Optional[dict[str, OptimizerSpec]] = None, steps: int = STEPS,
                tol: StepTolerances = DEFAULT_STEP_TOLERANCES, probe: bool = True,
                diagnose_all: bool = False) -> StepRun:
    """``steps`` training steps per optimizer setting (``optimizers``, default
    ``OPTIMIZERS``, run as the probe unless not ``probe``); weights compared after the
    first and the last. A failed setting, and failed first-step gradients or loss, are
    diagnosed; ``diagnose_all`` tries the hypotheses on everything (a test that none of
    them fits a correct optimizer)."""
    start_time = time.perf_counter()
    scales = float32_scales(variant, masks)
    run = StepRun(backend.name, "pass")
    settings = optimizers or OPTIMIZERS
    run.settings = probe_settings(settings, weights, ref.param_grads) if probe else dict(settings)
    first: dict[str, tuple[float, Weights]] = {}
    for name, spec in run.settings.items():
        try:
            model = backend.build(variant, weights)
            optimizer = backend.make_optimizer(model, spec)
            # elementwise from here: the reference runs in the framework's own layout
            start = backend.native_weights(model)
            framework = framework_optimizer(spec, backend.name)
            reference = ReferenceOptimizer(spec, start, framework)
            if not first:
                expected_grads = backend.to_native(model, ref.param_grads)
                to_native = partial(backend.to_native, model)
            trace = StepTrace(spec, framework, start, len(x))
            for step in range(1, steps + 1):
                # the probe's labels move on by a class a step, so the gradient changes
                step_labels = (labels + step - 1) % variant.num_classes if probe else labels
                loss, grads = backend.train_step(model, optimizer, x, step_labels, scales)
                trace.grads.append(grads)
                if step == 1:
                    first[name] = (loss, grads)
                reference.step(grads)
                if step in (1, steps):
                    got = trace.observed[step] = backend.native_weights(model)
                    for key, expected in reference.weights.items():
                        units, update = weight_error(got.get(key, np.array(np.nan)), expected,
                                                     start[key], reference.peak[key])
                        run.rows.append(StepRow(name, step, key, units, update, units <= tol.weights))
                        trace.errors[key] = max(trace.errors.get(key, 0.0), units)
                        if not units <= tol.weights:
                            trace.worst.setdefault(key, []).append(worst_elements(
                                got.get(key, np.array(np.nan)), expected, reference.peak[key], WORST_KEPT))
        except Exception as exc:  # a framework's own error message, kept for the report
            run.error = explain(backend, variant, f"running {name} training steps", exc).text
            break
        del reference  # its float64 copies are not needed by the diagnosis
        worst = max(trace.errors.values(), default=0.0)
        if diagnose_all or not worst <= tol.weights:
            run.diagnoses.append(optimizer_cause(name, trace, tol.weights, worst, diagnose_all))
        del trace
    if first:
        loss, grads = next(iter(first.values()))
        run.loss_error = abs(loss - ref.loss) / abs(ref.loss)
        run.gradients = {key: layer_error(np.asarray(grads.get(key, np.nan)), g)
                         for key, g in expected_grads.items()}
        limit = Tolerances(rel_l2=tol.gradient_rel_l2, norm_max=float("inf"))
        run.gradients_passed = all(e.passes(limit) for e in run.gradients.values())
        for _, other in list(first.values())[1:]:
            run.run_to_run.update({
                key: float(np.max(np.abs(g - other[key])) / max(np.max(np.abs(g)), np.finfo(np.float32).tiny))
                for key, g in grads.items() if not np.array_equal(g, other[key])})
        if diagnose_all or not run.gradients_passed or not run.loss_error <= tol.loss_rel:
            run.diagnoses.insert(0, gradient_cause(
                variant, weights, x, labels, masks, (ref.loss, ref.param_grads), (loss, grads),
                to_native, tol.gradient_rel_l2, tol.loss_rel))
    found = [d for d in run.diagnoses if d.cause is not None]
    if found:
        run.cause = "; ".join(dict.fromkeys(d.cause for d in found))
        run.evidence = "; ".join(d.evidence for d in found)
    if (run.error or run.first_failure or not run.gradients_passed
            or not run.loss_error <= tol.loss_rel):
        run.status = "FAIL"
    run.seconds = time.perf_counter() - start_time
    return run

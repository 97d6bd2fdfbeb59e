"""Confirmed causes of a failed step check: the known porting bugs of an optimizer update
and of a training step's loss, each tested numerically against what the framework did.

A hypothesis is a port with one bug, recomputed in float64 from the framework's own
numbers: the optimizer side re-runs ``ReferenceOptimizer`` another way (a changed setting,
another Adam epsilon placement, or an ``UpdateForm``: decoupled decay, dampening, Nesterov,
rescaled gradients) on the gradients the framework computed at each step; the loss side
recomputes the reference's first-step gradients with a wrong loss (softmax applied twice,
sum or double mean over the batch). A number a port may have typed wrong (learning rate,
momentum, dampening, weight decay, Adam's epsilon) is fitted to the observed weights, and
the refit re-run. A hypothesis is confirmed when it reproduces the framework's weights
within the step check's own tolerance (eps|w| units, after the first and last step), or
its gradients within the gradient tolerance, and at least ``SEPARATION`` times closer than
the correct reference did. The first confirmed, in the order below, is the cause.

Only failures are diagnosed, and cheaply: the worst elements and a random sample of the
few worst failed parameters, with a passing parameter as a control, so a hypothesis that
happens to fit the failed elements but breaks the rest is rejected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Callable, Iterator, Optional

import numpy as np

from common.optim import (ADAM_EPS_CORRECTED, ADAM_EPS_RAW, FrameworkOptimizer, OptimizerSpec,
                          ReferenceOptimizer, UpdateForm)
from common.reference_backward import backward as reference_backward
from common.reference_backward import cross_entropy
from common.spec import Variant
from common.weights import Weights
from crosscheck.compare import layer_error

#: a confirmed hypothesis explains the observed weights (or gradients) at least this many
#: times better than the correct reference: a bug too small to tell apart is never named
SEPARATION = 4.0
#: the failed parameters a diagnosis looks at (the worst), and elements of each: the worst
#: ones after each compared step, and a seeded random sample
FAILED_PARAMS = 4
WORST = 1024
SAMPLE = 8192
#: golden-section steps of a fit: the bracket shrinks to 0.618**60 ~ 3e-13 of its width
FIT_STEPS = 60
EPS32 = float(np.finfo(np.float32).eps)
TINY = float(np.finfo(np.float32).tiny)


@dataclass
class StepTrace:
    """One optimizer setting's run, kept for the hypotheses (native layout): the start, the
    framework's gradients at every step, its weights after each compared step, each
    parameter's worst eps|w| error, and the flat indices of its worst elements."""

    spec: OptimizerSpec
    framework: FrameworkOptimizer
    start: Weights
    batch: int
    grads: list[Weights] = field(default_factory=list)
    observed: dict[int, Weights] = field(default_factory=dict)
    errors: dict[str, float] = field(default_factory=dict)
    worst: dict[str, list[np.ndarray]] = field(default_factory=dict)


@dataclass
class Diagnosis:
    """The hypotheses tried on one failure: an optimizer setting's weights ("sgd", "adam")
    or the first-step "gradients". ``tried``: each hypothesis and its error, in ``unit``."""

    failure: str
    unit: str
    observed: float
    tried: dict[str, float] = field(default_factory=dict)
    cause: Optional[str] = None

    @property
    def evidence(self) -> Optional[str]:
        """The confirmed port's error next to the correct one's, in the check's own unit."""
        if self.cause is None:
            return None
        if self.failure == "gradients":
            return (f"first-step gradients: rel L2 {self.tried[self.cause]:.2g} off this port's "
                    f"loss, {self.observed:.2g} off the correct loss")
        return (f"{self.failure} weights: {self.tried[self.cause]:.3g} eps|w| off this port's "
                f"update, {self.observed:.3g} off the configured one")


@dataclass(frozen=True)
class Alternative:
    """A port's update: its setting, epsilon placement and departures."""

    what: str
    spec: OptimizerSpec
    framework: FrameworkOptimizer
    form: UpdateForm = UpdateForm()


@dataclass(frozen=True)
class Fit:
    """A number a port may have typed wrong, fitted by golden section over [lo, hi] (of
    its log10 where ``log``); ``same``: the fitted value is the configured one."""

    make: Callable[[float], Alternative]
    lo: float
    hi: float
    log: bool
    same: Callable[[float], bool]


def confirmed(error: float, observed: float, tolerance: float) -> bool:
    """The correct reference failed (``observed``), and the hypothesis is within the check's
    tolerance and ``SEPARATION`` times closer."""
    return not observed <= tolerance and error <= tolerance and error * SEPARATION <= observed


# --- the optimizer side -----------------------------------------------------------------


def _sample(trace: StepTrace, tolerance: float, seed: int) -> dict[str, np.ndarray]:
    """Flat indices per parameter: the worst failed parameters' worst elements and a random
    sample of each, and a random sample of the largest passing parameter (the control).
    With nothing failed (a forced diagnosis), a random sample of every parameter."""
    rng = np.random.default_rng(seed)
    failed = sorted((k for k, e in trace.errors.items() if not e <= tolerance),
                    key=lambda k: -trace.errors[k])[:FAILED_PARAMS]
    passing = [k for k, e in trace.errors.items() if e <= tolerance]
    keys = (failed + sorted(passing, key=lambda k: -trace.start[k].size)[:1]) if failed else passing
    picked = {}
    for key in keys:
        size = trace.start[key].size
        random = rng.choice(size, SAMPLE, replace=False) if size > SAMPLE else np.arange(size)
        picked[key] = np.unique(np.concatenate([random] + trace.worst.get(key, [])))
    return picked


class Sample:
    """The trace at the sampled elements, and the error of any alternative update there."""

    def __init__(self, trace: StepTrace, indices: dict[str, np.ndarray]) -> None:
        def take(weights: Weights) -> Weights:
            """The sampled elements; NaN where the framework lacks the parameter or its shape."""
            taken = {}
            for key, index in indices.items():
                array = np.asarray(weights.get(key, np.nan)).reshape(-1)
                taken[key] = array[index] if array.size == trace.start[key].size else np.full(index.size, np.nan)
            return taken

        self.start = take(trace.start)
        self.grads = [take(g) for g in trace.grads]
        self.observed = {step: take(w) for step, w in trace.observed.items()}

    def errors(self, alt: Alternative) -> tuple[float, float]:
        """(largest, root-mean-square) eps|w| error of the observed weights against
        ``alt``'s after each compared step; ``alt``'s own trajectory sets the |w| scale."""
        ref = ReferenceOptimizer(alt.spec, self.start, alt.framework, alt.form)
        largest, squares, count = 0.0, 0.0, 0
        for step, grads in enumerate(self.grads, 1):
            ref.step(grads)
            for key, got in self.observed.get(step, {}).items():
                with np.errstate(invalid="ignore", over="ignore"):
                    units = np.abs(got - ref.weights[key]) / (EPS32 * np.maximum(ref.peak[key], TINY))
                units = np.where(np.isfinite(units), units, np.inf)
                largest = max(largest, float(units.max(initial=0.0)))
                squares += float(np.sum(np.minimum(units, 1e30) ** 2))
                count += units.size
        return largest, math.sqrt(squares / max(count, 1))


def _golden(objective: Callable[[float], float], lo: float, hi: float) -> float:
    """The minimum of a unimodal ``objective`` on [lo, hi]."""
    ratio = (math.sqrt(5) - 1) / 2
    a, b = lo, hi
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = objective(c), objective(d)
    for _ in range(FIT_STEPS):
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = objective(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = objective(d)
    return (a + b) / 2


def alternatives(trace: StepTrace) -> Iterator[Alternative]:
    """The fixed hypotheses for ``trace``'s setting, most common porting bug first."""
    s, f = trace.spec, trace.framework
    if s.weight_decay:
        wd = s.weight_decay
        yield Alternative("decoupled weight decay: w -= lr * wd * w beside the update, never "
                          "through the " + ("momentum" if s.kind == "sgd" else "moments")
                          + " (Keras's weight_decay=, AdamW)",
                          replace(s, weight_decay=0.0), f, UpdateForm(decoupled_decay=wd))
        yield Alternative("weight decay missing from the update", replace(s, weight_decay=0.0), f)
        yield Alternative("weight decay applied twice (in the gradients and in the optimizer)",
                          replace(s, weight_decay=2 * wd), f)
        yield Alternative("weight decay both added to the gradients and passed to an optimizer "
                          "that decouples it", s, f, UpdateForm(decoupled_decay=wd))
    if trace.batch > 1:
        yield Alternative(f"gradients divided by the batch size ({trace.batch}) inside the "
                          f"optimizer, after the loss already averaged them (MXNet's "
                          f"Trainer.step(batch_size) on a mean loss)",
                          s, f, UpdateForm(grad_scale=1 / trace.batch))
    if s.kind == "sgd" and s.momentum:
        yield Alternative("Nesterov momentum (w -= lr * (g + mu * v): torch's and Keras's "
                          "nesterov=True)", s, f, UpdateForm(nesterov="torch"))
        if s.weight_decay:  # without decay the two forms are one
            yield Alternative("Nesterov momentum as MXNet's nag optimizer has it (its momentum "
                              "takes the weight decay at the updated weights)", s, f,
                              UpdateForm(nesterov="mxnet"))
    if s.kind == "adam":
        other = ADAM_EPS_RAW if f.adam_eps == ADAM_EPS_CORRECTED else ADAM_EPS_CORRECTED
        owner = "PyTorch's" if other == ADAM_EPS_CORRECTED else "MXNet's and Keras's"
        yield Alternative(f"Adam's epsilon {other} ({owner} form), where the mapping in "
                          f"common/optim.py says {f.adam_eps}", s, replace(f, adam_eps=other))
        # the values a port types or inherits; the fit (``fits``) finds any other
        for eps, why in ((1e-7, "Keras's default"), (1e-8, "PyTorch's and MXNet's default"),
                         (s.eps * 10, "x10 the configured"), (s.eps / 10, "/10 the configured")):
            if not math.isclose(eps, s.eps, rel_tol=1e-3):
                yield Alternative(f"Adam epsilon {eps:.2g} ({why}) instead of {s.eps:.2g}",
                                  replace(s, eps=eps), f)


def fits(trace: StepTrace) -> Iterator[Fit]:
    """The numbers a port may have typed wrong, each to be fitted to the observed weights."""
    s, f = trace.spec, trace.framework

    def near(configured: float) -> Callable[[float], bool]:
        return lambda value: abs(value - configured) <= 1e-3 * max(abs(configured), 1e-12)

    yield Fit(lambda k: Alternative(f"learning rate x{k:.3g} ({s.lr * k:.3g} where {s.lr:.3g} "
                                    f"was configured)", replace(s, lr=s.lr * k), f),
              -3.0, 3.0, True, near(1.0))
    if s.kind == "sgd" and s.momentum:
        yield Fit(lambda mu: Alternative(f"momentum {mu:.3g} instead of {s.momentum:g}",
                                         replace(s, momentum=mu), f),
                  0.0, 0.9999, False, lambda mu: abs(mu - s.momentum) < 1e-4)
        yield Fit(lambda d: Alternative(f"momentum dampening {d:.3g} (torch's SGD dampening=, "
                                        f"which the update does not have)", s, f, UpdateForm(dampening=d)),
                  0.0, 1.0, False, lambda d: d < 1e-4)
    if s.weight_decay:
        wd = s.weight_decay
        yield Fit(lambda c: Alternative(f"weight decay {wd * c:.3g} instead of {wd:.3g} "
                                        f"(x{c:.3g})", replace(s, weight_decay=wd * c), f),
                  -3.0, 3.0, True, near(1.0))
    if s.kind == "adam":
        yield Fit(lambda eps: Alternative(f"Adam epsilon {eps:.2g} instead of {s.eps:.2g}",
                                          replace(s, eps=eps), f),
                  math.log10(s.eps) - 5, math.log10(s.eps) + 5, True,
                  lambda eps: abs(math.log10(eps / s.eps)) < 1e-3)


def optimizer_cause(name: str, trace: StepTrace, tolerance: float, observed: float,
                    everything: bool = False, seed: int = 0) -> Diagnosis:
    """Test each hypothesis on ``trace`` (a setting whose weights failed by ``observed``
    eps|w|); fits only while no fixed hypothesis is confirmed, unless ``everything``."""
    sample = Sample(trace, _sample(trace, tolerance, seed))
    diagnosis = Diagnosis(name, "eps|w|", observed)
    base = sample.errors(Alternative("as configured", trace.spec, trace.framework))[0]

    def judge(alt: Alternative) -> None:
        error = sample.errors(alt)[0]
        diagnosis.tried[alt.what] = error
        if diagnosis.cause is None and confirmed(error, base, tolerance):
            diagnosis.cause = alt.what

    for alt in alternatives(trace):
        judge(alt)
    for fit in fits(trace):
        if diagnosis.cause is not None and not everything:
            break
        value = _golden(lambda p: sample.errors(fit.make(10 ** p if fit.log else p))[1],
                        fit.lo, fit.hi)
        value = 10 ** value if fit.log else value
        if not fit.same(value):
            judge(fit.make(value))
    return diagnosis


# --- the loss side ----------------------------------------------------------------------


def softmax_twice(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Softmax cross-entropy of the probabilities instead of the logits (a from-logits loss
    after a Softmax layer), and its gradient through both softmaxes."""
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    loss, grad_p = cross_entropy(p, labels)
    return loss, p * (grad_p - (grad_p * p).sum(axis=1, keepdims=True))


def _loss_and_grads(variant: Variant, weights: Weights, x: np.ndarray, labels: np.ndarray,
                    masks: dict[str, np.ndarray], loss_fn) -> tuple[float, Weights]:
    """The float64 loss and parameter gradients with ``loss_fn`` in place of the loss."""
    loss, _, _, _, grads = reference_backward(variant, weights, x, labels, masks, loss_fn=loss_fn)
    return loss, grads


def gradient_cause(variant: Variant, weights: Weights, x: np.ndarray, labels: np.ndarray,
                   masks: dict[str, np.ndarray], reference: tuple[float, Weights],
                   got: tuple[float, Weights], to_native: Callable[[Weights], Weights],
                   rel_l2: float, loss_rel: float) -> Diagnosis:
    """Test each loss hypothesis on the framework's first-step ``got`` (loss, gradients in
    its layout) against the reference's (canonical): the worst gradient rel L2 of each,
    confirmed with the loss value it predicts."""
    (ref_loss, ref_grads), (loss, grads) = reference, got
    n = len(x)

    def error(expected_loss: float, expected: Weights) -> tuple[float, float]:
        native = to_native(expected)
        worst = max(layer_error(np.asarray(grads.get(k, np.nan)), g).rel_l2 for k, g in native.items())
        return worst, abs(loss - expected_loss) / max(abs(expected_loss), TINY)

    observed, observed_loss = error(ref_loss, ref_grads)
    diagnosis = Diagnosis("gradients", "gradient rel L2", observed)

    def ports() -> Iterator[tuple[str, Callable[[], tuple[float, Weights]]]]:
        yield ("the loss applied to softmax outputs (softmax twice: a from-logits loss after "
               "the network's own Softmax)",
               lambda: _loss_and_grads(variant, weights, x, labels, masks, softmax_twice))
        if n > 1:
            yield (f"the loss summed over the batch instead of averaged (gradients x{n})",
                   lambda: (ref_loss * n, {k: g * n for k, g in ref_grads.items()}))
            yield (f"the loss averaged twice (gradients /{n})",
                   lambda: (ref_loss / n, {k: g / n for k, g in ref_grads.items()}))

    for what, port in ports():
        worst, loss_error = error(*port())
        diagnosis.tried[what] = worst
        # the port must explain what failed: the gradients, the loss value, or both
        explains = (confirmed(worst, observed, rel_l2) or observed <= rel_l2 and worst <= rel_l2) and (
            confirmed(loss_error, observed_loss, loss_rel) or observed_loss <= loss_rel and loss_error <= loss_rel)
        if diagnosis.cause is None and explains and not (observed <= rel_l2 and observed_loss <= loss_rel):
            diagnosis.cause = what
    return diagnosis


"""The dropout check: each framework's own Dropout layers, by its own RNG, in train mode.

The backward and step checks feed every framework the same seeded masks (``scale``), and
the fast-path and training checks run with dropout off, so none of them runs a
framework's Dropout itself: a model built with Dropout(0.4) instead of the spec's 0.5
would pass them all. Here each Dropout layer of the built model gets a strictly positive
input (so an output of 0 is a dropped unit and nothing else), enough of it that the
kept fraction pins the rate down, and three things are judged:

- the kept fraction is within ``Z`` binomial standard deviations of ``1 - p``, with a
  sample large enough that a rate off by ``RATE_RESOLUTION`` cannot land in the band;
- every kept value is ``x / (1 - p)`` to float32 accuracy (inverted dropout);
- in eval mode the layer is the identity.

A failure says what rate the layer has, from the kept fraction and from the scale of the
kept values (the two estimates separate a wrong rate from a wrong rescaling).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from common.shapes import infer
from common.spec import Dropout, Variant
from common.weights import Weights
from crosscheck.verdicts import explain

#: the kept fraction may stray this many binomial standard deviations from 1 - p: a
#: correct layer fails about once in 5e8 layers
Z = 6.0
#: a rate off by this much must fail: the sample makes the accepted band and the band the
#: wrong rate lands in (Z of its own standard deviations) disjoint
RATE_RESOLUTION = 0.05
#: kept values against x / (1 - p), relative: a float32 multiply is within 1.2e-7 (and a
#: rate off by 1e-4 already moves the scale by 2e-4)
SCALE_TOLERANCE = 1e-6


@dataclass
class DropoutRow:
    """One Dropout layer: its own train-mode mask and scale, and its eval mode."""

    layer: str
    p: float               # the spec's rate
    kept: float            # fraction of the n units with a nonzero output in train mode
    n: int                 # units drawn
    bound: float           # accepted |kept - (1 - p)|
    scale_error: float     # largest relative error of a kept value against x / (1 - p)
    eval_error: float      # largest relative difference of the eval-mode output from x
    passed: bool
    cause: str = ""        # why it failed, one paragraph; empty when it passed


@dataclass
class DropoutRun:
    framework: str
    status: str
    rows: list[DropoutRow] = field(default_factory=list)
    error: Optional[str] = None  # what the framework raised
    seconds: float = 0.0

    @property
    def first_failure(self) -> Optional[DropoutRow]:
        return next((row for row in self.rows if not row.passed), None)


def _spread(p: float, n: int) -> float:
    """The standard deviation of the kept fraction of ``n`` units at rate ``p``."""
    return math.sqrt(p * (1.0 - p) / n)


def sample_size(p: float, z: float = Z, resolution: float = RATE_RESOLUTION) -> int:
    """Units needed so that a layer whose rate is off from ``p`` by ``resolution`` or more
    cannot pass: z standard deviations at ``p`` plus z at the wrong rate fit in
    ``resolution`` (p = 0.5: 14,328 units)."""
    wrong = [q for q in (p - resolution, p + resolution) if 0.0 <= q <= 1.0]
    widest = max(math.sqrt(q * (1.0 - q)) for q in wrong)
    return max(1, math.ceil((z * (math.sqrt(p * (1.0 - p)) + widest) / resolution) ** 2))


def dropout_input(shape: tuple[int, ...], p: float, rng: np.random.Generator) -> np.ndarray:
    """A strictly positive float32 batch of per-example ``shape``, with enough rows for
    ``sample_size(p)`` units (a small layer gets a big batch)."""
    per_row = math.prod(shape)
    rows = max(1, math.ceil(sample_size(p) / per_row))
    # in [0.5, 1.5): no kept value can round to 0, and a 0 output means a dropped unit
    return rng.uniform(0.5, 1.5, (rows,) + tuple(shape)).astype(np.float32)


def _rate(scale: float) -> float:
    """The rate an inverted dropout that multiplies kept units by ``scale`` was built for."""
    return 1.0 - 1.0 / scale if scale > 0 else float("nan")


def judge(layer: str, p: float, x: np.ndarray, train_out: np.ndarray,
          eval_out: np.ndarray) -> DropoutRow:
    """The row of one Dropout layer from its input and its train- and eval-mode outputs."""
    n = x.size
    bound = Z * _spread(p, n)
    if train_out.shape != x.shape or eval_out.shape != x.shape:
        cause = (f"{layer}: output shape {train_out.shape} in train mode, {eval_out.shape} in "
                 f"eval mode, for input {x.shape}: a dropout keeps the shape")
        inf = float("inf")
        return DropoutRow(layer, p, float("nan"), n, bound, inf, inf, False, cause)
    x64 = x.astype(np.float64)
    y = train_out.astype(np.float64)
    kept_mask = y != 0  # NaN counts as kept, and then fails the scale
    kept = float(kept_mask.mean())
    ratios = y[kept_mask] / x64[kept_mask]  # each kept unit's factor
    if p >= 1.0:  # every unit dropped: nothing to scale
        scale_error = 0.0 if ratios.size == 0 else float("inf")
    else:
        scale_error = float(np.max(np.abs(ratios * (1.0 - p) - 1.0), initial=0.0))
    eval_error = float(np.max(np.abs(eval_out.astype(np.float64) / x64 - 1.0)))
    fraction_ok = abs(kept - (1.0 - p)) <= bound
    scale_ok = scale_error <= SCALE_TOLERANCE  # NaN fails
    eval_ok = eval_error <= SCALE_TOLERANCE
    causes: list[str] = []
    if not fraction_ok or not scale_ok:
        causes.append(_train_cause(layer, p, kept, bound, ratios, fraction_ok, scale_ok))
    if not eval_ok:
        zeroed = float(np.mean(eval_out == 0))
        causes.append(f"{layer}: in eval mode the output is not the input (relative difference "
                      f"up to {eval_error:.3g}, {zeroed:.1%} of units zeroed): dropout left "
                      f"active at inference")
    return DropoutRow(layer, p, kept, n, bound, scale_error, eval_error, not causes,
                      "; ".join(causes))


def _train_cause(layer: str, p: float, kept: float, bound: float, ratios: np.ndarray,
                 fraction_ok: bool, scale_ok: bool) -> str:
    """One paragraph: what the train-mode output says the layer does instead of the spec."""
    finite = ratios[np.isfinite(ratios)]
    scale = float(np.median(finite)) if finite.size else float("nan")
    uniform = finite.size == ratios.size and (
        finite.size == 0 or float(np.ptp(finite)) <= SCALE_TOLERANCE * abs(scale))
    expected = f"1/(1-p) = {1.0 / (1.0 - p):.2f}" if p < 1.0 else "no unit kept at p = 1"
    band = f"{kept:.1%} of units (bound {1.0 - p:.1%} +- {bound:.1%})"
    if not finite.size:
        scaled = "no kept value to scale" if not ratios.size else "kept values are not finite"
    elif uniform:
        scaled = f"kept units scaled by {scale:.2f} where {expected}"
    else:
        scaled = (f"kept units scaled by {float(finite.min()):.3g} to {float(finite.max()):.3g} "
                  f"(not one factor) where {expected}")
    if not fraction_ok:
        by_fraction = f"{1.0 - kept:.2f} by the kept fraction"
        if scale_ok:
            return (f"{layer}: the framework's own Dropout keeps {band}: its rate is "
                    f"{by_fraction}, not the spec's {p:g}, though kept units are scaled by "
                    f"{expected} for the spec's rate: a mask drawn at another rate than "
                    f"the layer rescales for")
        by_scale = (f" and {_rate(scale):.2f} by the scale of kept values ({scale:.2f})"
                    if uniform and finite.size else f"; {scaled}")
        return (f"{layer}: the framework's own Dropout keeps {band}: its rate is "
                f"{by_fraction}{by_scale}, not the spec's {p:g}")
    if uniform and finite.size and abs(scale - 1.0) <= SCALE_TOLERANCE:
        what = "not rescaled at all (inverted dropout divides kept units by 1 - p)"
    elif uniform and finite.size:
        what = f"rescaled for a rate of {_rate(scale):.2f}"
    else:
        what = "not inverted dropout's rescaling"
    return (f"{layer}: {scaled}: {what}, while the kept fraction {kept:.1%} matches the "
            f"spec's rate {p:g}")


def check_dropout(backend, variant: Variant, weights: Weights, seed: int,
                  model: object = None) -> DropoutRun:
    """Every Dropout layer of ``backend``'s model of ``variant``, run by the framework in
    train mode (``dropout_train``) and in eval mode (``forward_layer``) on seeded
    positive inputs. A variant without dropout passes with no rows and builds nothing.
    ``model``: the framework's model holding ``weights``, if one is built already."""
    start = time.perf_counter()
    infos = [info for info in infer(variant) if isinstance(info.layer, Dropout)]
    run = DropoutRun(backend.name, "pass")
    if infos:
        rng = np.random.default_rng(seed + 3)  # + 3: not the streams of gradient_inputs
        try:
            model = backend.build(variant, weights) if model is None else model
            for info in infos:
                x = dropout_input(info.in_shape, info.layer.p, rng)
                run.rows.append(judge(info.name, info.layer.p, x,
                                      np.asarray(backend.dropout_train(model, info.name, x)),
                                      np.asarray(backend.forward_layer(model, info.name, x))))
        except Exception as exc:  # the framework's own message, kept for the report
            run.error = explain(backend, variant, "running its own Dropout in train mode", exc).text
    if run.error or run.first_failure is not None:
        run.status = "FAIL"
    run.seconds = time.perf_counter() - start
    return run

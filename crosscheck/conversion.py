"""Verify a weight conversion: the converted file, read back by its own framework, holds the
source's very arrays, and both frameworks compute the float64 reference's function with them."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from common import reference
from common.inputs import crosscheck_batch
from common.spec import Variant
from common.weights import Weights
from crosscheck.compare import DEFAULT_TOLERANCES
from crosscheck.run import PASS, FrameworkRun, check_framework
from impls.base import load_backend, select_device


@dataclass
class ConversionCheck:
    """The verdict on one conversion."""

    max_abs_change: float  # the largest difference between a source and a converted array
    missing: list[str]  # source keys the converted file lost
    runs: list[tuple[str, str, FrameworkRun]] = field(default_factory=list)  # (role, framework, run)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return (self.max_abs_change == 0.0 and not self.missing
                and all(run.status == PASS for _, _, run in self.runs))

    def summary(self) -> str:
        parts = ["arrays identical" if self.max_abs_change == 0.0 and not self.missing else
                 f"arrays changed (largest difference {self.max_abs_change:.3g}"
                 + (f", lost {', '.join(self.missing[:3])}" if self.missing else "") + ")"]
        for role, framework, run in self.runs:
            divergence = run.first_divergence
            parts.append(f"{role} in {framework}: {run.status.lower()}, worst rel L2 "
                         f"{run.worst_rel_l2:.1e}" + (f", first divergence at {divergence.name}"
                                                      if divergence else ""))
        return "; ".join(parts)


def verify_conversion(variant: Variant, source: Weights, converted: Weights,
                      source_framework: str | None, target_framework: str | None, *,
                      device: str = "cpu", seed: int = 0, batch_size: int = 2) -> ConversionCheck:
    """Compare ``converted`` with ``source`` array by array, then run the source weights in
    the source's framework and the converted ones in the target's, each layer against the
    float64 reference of the source weights (the crosscheck's forward check)."""
    start = time.perf_counter()
    missing = sorted(set(source) - set(converted))
    changes = [float(np.max(np.abs(np.asarray(converted[k], np.float64) - source[k]), initial=0.0))
               if converted[k].shape == source[k].shape else np.inf
               for k in source if k in converted]
    check = ConversionCheck(max(changes, default=0.0), missing)
    x = crosscheck_batch(variant, batch_size, seed)
    ref = reference.forward(variant, source, x)
    for role, framework, weights in (("source", source_framework, source),
                                     ("converted", target_framework, converted)):
        if framework is None:
            continue
        backend = load_backend(framework)
        select_device(backend, device)
        run, _ = check_framework(backend, variant, weights, x, ref, DEFAULT_TOLERANCES)
        check.runs.append((role, framework, run))
    check.seconds = time.perf_counter() - start
    return check


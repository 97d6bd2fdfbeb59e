"""The distributed check: data-parallel steps in each framework's own engine against the
float64 single-process steps on the whole batch.

For each framework, ``WORKERS`` worker processes (``distributed/launch.py``: loopback,
one process per worker on the CPU) start from the same canonical weights, each takes its
shard of the same batch, and run ``STEPS`` data-parallel steps of each optimizer setting
with dropout off, with the step check's probe settings and shifted labels
(``crosscheck/step.py``), on the variant narrowed as for the step check
(``crosscheck/narrow.py``: data parallelism does not depend on a layer's width).

It is judged as the step check judges one process, per worker:

- the gradient each worker applied at the first step, averaged over the workers by the
  engine, against the float64 gradient of the whole batch (the mean of the shards' mean
  gradients, the shards being equal): the step check's gradient tolerance;
- every worker's replica after the first and the last step, per element, in the step
  check's units (float32 eps times the largest |w| along the way) and tolerance,
  against the float64 update (``common.optim.ReferenceOptimizer``) of the gradients that
  worker applied at each step. So a weight difference is the update's own, and a
  gradient difference is the reduction's or the data's.

A failure is diagnosed numerically: each classic data-parallel bug is recomputed in
float64 at the first step (``gradient_hypotheses``, ``update_hypotheses``), and one that
reproduces what the worker did within the tolerance, ``SEPARATION`` times closer than
the correct step, is named. Checkpoint writes are recorded by rank
(``distributed/steps.py``): a rank other than 0 writing is a failure of its own.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from common import reference_backward
from common.optim import OPTIMIZERS, OptimizerSpec, ReferenceOptimizer, UpdateForm, framework_optimizer
from common.spec import Variant
from common.weights import Weights
from crosscheck.compare import layer_error
from crosscheck.step import (DEFAULT_STEP_TOLERANCES, STEPS, StepRow, StepTolerances,
                             probe_settings, weight_error)
from crosscheck.step_causes import SEPARATION
from distributed.launch import LaunchError, launch
from distributed.steps import load_replica, save_job_arrays

#: worker processes of the check (two processes on a CPU)
WORKERS = 2
#: seconds the check waits for one framework's workers (measured: 5-40 s on 2 cores)
TIMEOUT = 600.0


@dataclass
class DistributedRun:
    """One framework's data-parallel steps against the float64 whole-batch steps."""

    framework: str
    status: str
    workers: int = WORKERS
    #: every rank's replica after steps 1 and ``STEPS`` (StepRow.param: "rank R: key")
    rows: list[StepRow] = field(default_factory=list)
    #: "rank R: key" -> the first-step gradient's relative L2 error against float64
    gradients: dict[str, float] = field(default_factory=dict)
    gradients_passed: bool = True
    settings: dict[str, OptimizerSpec] = field(default_factory=dict)
    writers: list[int] = field(default_factory=list)  # the ranks that wrote checkpoints
    cause: Optional[str] = None  # the confirmed bugs, in words
    evidence: Optional[str] = None  # every hypothesis's error
    error: Optional[str] = None  # a worker's failure
    seconds: float = 0.0

    def worst(self, optimizer: str, step: int) -> tuple[float, float]:
        """(eps units, update rel L2), the worst over ranks and parameters."""
        rows = [r for r in self.rows if r.optimizer == optimizer and r.step == step]
        return (max((r.eps_units for r in rows), default=float("nan")),
                max((r.update_rel_l2 for r in rows), default=float("nan")))


def even_batch(x: np.ndarray, labels: np.ndarray, workers: int) -> tuple[np.ndarray, np.ndarray]:
    """The crosscheck batch cut to equal shards: seeded images wait, the photograph (the
    batch's last image, the one a real input looks like) stays."""
    extra = len(x) % workers
    if len(x) - extra < workers:
        raise ValueError(f"{len(x)} images do not give each of {workers} workers one")
    keep = np.r_[0:len(x) - extra - 1, len(x) - 1] if extra else np.arange(len(x))
    return x[keep], labels[keep]


def shard_gradients(variant: Variant, weights: Weights, x: np.ndarray, labels: np.ndarray,
                    workers: int) -> list[Weights]:
    """The float64 mean gradient of each worker's shard, dropout off."""
    part = len(x) // workers
    return [reference_backward.backward(variant, weights, x[r * part:(r + 1) * part],
                                        labels[r * part:(r + 1) * part])[4] for r in range(workers)]


def mean(grads: list[Weights]) -> Weights:
    """The whole batch's gradient from its equal shards'."""
    return {key: sum(g[key] for g in grads) / len(grads) for key in grads[0]}


def gradient_hypotheses(shards: list[Weights], rank: int) -> Iterator[tuple[str, Weights]]:
    """(a data-parallel bug, the first-step gradient rank ``rank`` would apply with it)."""
    n = len(shards)
    yield (f"the gradients are summed over the {n} workers, not averaged ({n}x the gradient)",
           {k: g * n for k, g in mean(shards).items()})
    yield ("every worker trains on the same shard (rank 0's): the other shards are never seen",
           shards[0])
    if rank:
        yield (f"the gradients are not averaged over the workers: rank {rank} steps on its own "
               f"shard alone, and the replicas drift apart", shards[rank])


def update_hypotheses(spec: OptimizerSpec, n: int) -> Iterator[tuple[str, OptimizerSpec, UpdateForm]]:
    """(a data-parallel bug of the update, the setting and form the update would take)."""
    yield (f"the update takes the sum of the {n} workers' gradients, not their average "
           f"({n}x the gradient; the reduction's rescaling left out)", spec, UpdateForm(grad_scale=n))
    if spec.weight_decay:
        yield (f"the weight decay is applied once per worker ({n}x)",
               replace(spec, weight_decay=spec.weight_decay * n), UpdateForm())
    yield (f"the learning rate is scaled by the {n} workers", replace(spec, lr=spec.lr * n), UpdateForm())


def _confirmed(tried: list[tuple[float, str]], correct: float, limit: float) -> Optional[str]:
    """The best hypothesis, if it is within ``limit`` and ``SEPARATION`` times closer."""
    best, words = min(tried)
    return words if best <= limit and best * SEPARATION <= correct else None


def check_distributed(backend, variant: Variant, weights: Weights, x: np.ndarray,
                      labels: np.ndarray, registry: dict, *, workers: int = WORKERS,
                      steps: int = STEPS, device: str = "cpu",
                      tol: StepTolerances = DEFAULT_STEP_TOLERANCES,
                      optimizers: Optional[dict[str, OptimizerSpec]] = None,
                      timeout: float = TIMEOUT) -> DistributedRun:
    """Run and judge ``backend``'s framework's data-parallel steps (module docstring).
    ``registry``: how the workers rebuild ``variant`` (``distributed.steps.job_variant``)."""
    start_time = time.perf_counter()
    framework = backend.name
    run = DistributedRun(framework, "pass", workers)
    x, labels = even_batch(x, labels, workers)
    shards = shard_gradients(variant, weights, x, labels, workers)
    run.settings = probe_settings(optimizers or OPTIMIZERS, weights, mean(shards))
    model = backend.build(variant, weights)
    start, native = backend.native_weights(model), (lambda arrays: backend.to_native(model, arrays))
    expected = native(mean(shards))
    with tempfile.TemporaryDirectory(prefix="alexnet-distributed-") as tmp:
        out = Path(tmp)
        save_job_arrays(out / "arrays.safetensors", weights, x=np.asarray(x, np.float32),
                        labels=np.asarray(labels, np.int64))
        try:
            # a launch per setting: MXNet's KVStore takes a Trainer's keys once per process
            for name, spec in run.settings.items():
                launch(framework, workers, {
                    "kind": "steps", "framework": framework, "device": device, "variant": registry,
                    "arrays": str(out / "arrays.safetensors"), "steps": steps, "out": str(out),
                    "settings": {name: asdict(spec)}}, timeout=timeout, echo_rank0=False)
        except LaunchError as exc:
            run.error, run.status = str(exc), "FAIL"
            run.seconds = time.perf_counter() - start_time
            return run
        writers = out / "writers"
        run.writers = sorted(int(p.name.removeprefix("rank")) for p in writers.iterdir()) \
            if writers.is_dir() else []
        replicas = {(rank, name, step): load_replica(out, name, step, rank)
                    for rank in range(workers) for name in run.settings for step in range(1, steps + 1)}
    missing = [f"rank {rank} after step {step} of {name}" for (rank, name, step), (w, g)
               in replicas.items() if not w or not g]
    if missing:  # a worker that exited 0 without its results
        run.error, run.status = f"no replica left by {', '.join(missing)}", "FAIL"
        run.seconds = time.perf_counter() - start_time
        return run
    causes, evidence = [], []
    limit = tol.gradient_rel_l2
    # the last rank first: rank 0 alone cannot tell "rank 0's shard everywhere" from "no average"
    for rank in reversed(range(workers)):
        first = replicas[rank, next(iter(run.settings)), 1][1]
        errors = {key: layer_error(np.asarray(first.get(key, np.nan)), g).rel_l2
                  for key, g in expected.items()}
        run.gradients.update({f"rank {rank}: {key}": e for key, e in errors.items()})
        correct = max(errors.values())
        if not correct <= limit and not causes:
            tried = [(max(layer_error(np.asarray(first.get(k, np.nan)), g).rel_l2
                          for k, g in native(hypothesis).items()), words)
                     for words, hypothesis in gradient_hypotheses(shards, rank)]
            evidence.append(_evidence(f"rank {rank}'s first-step gradient, relative L2 error", tried,
                                      correct))
            cause = _confirmed(tried, correct, limit)
            causes += [f"rank {rank}: {cause}"] if cause else []
        for name, spec in run.settings.items():
            reference = ReferenceOptimizer(spec, start, framework_optimizer(spec, framework))
            for step in range(1, steps + 1):
                got, grads = replicas[rank, name, step]
                reference.step(grads)
                if step not in (1, steps):
                    continue
                for key, w in reference.weights.items():
                    units, update = weight_error(got.get(key, np.array(np.nan)), w, start[key],
                                                 reference.peak[key])
                    run.rows.append(StepRow(name, step, f"rank {rank}: {key}", units, update,
                                            units <= tol.weights))
            worst = max(r.eps_units for r in run.rows if r.optimizer == name
                        and r.param.startswith(f"rank {rank}:") and r.step == 1)
            if not worst <= tol.weights and not causes:
                tried = [(_units_after_one(changed, form, framework, start,
                                           *replicas[rank, name, 1]), words)
                         for words, changed, form in update_hypotheses(spec, workers)]
                evidence.append(_evidence(f"rank {rank}'s weights after step 1 of {name}, eps|w| "
                                          f"units", tried, worst))
                cause = _confirmed(tried, worst, tol.weights)
                causes += [f"rank {rank}, {name}: {cause}"] if cause else []
    run.gradients_passed = all(e <= limit for e in run.gradients.values())
    others = [r for r in run.writers if r != 0]
    if 0 not in run.writers:
        causes.append("rank 0 wrote no checkpoint (distributed/shard.py: writes)")
    if others:
        causes.append(f"checkpoints written by rank{'s' if len(others) > 1 else ''} "
                      f"{', '.join(map(str, others))} as well as rank 0: {len(run.writers)} "
                      f"processes write the same files at once; write on rank 0 alone "
                      f"(distributed/shard.py: writes)")
    run.cause = "; ".join(causes) or None
    run.evidence = "; ".join(evidence) or None
    if run.writers != [0] or not run.gradients_passed or any(not r.passed for r in run.rows):
        run.status = "FAIL"
    run.seconds = time.perf_counter() - start_time
    return run


def _units_after_one(spec: OptimizerSpec, form: UpdateForm, framework: str, start: Weights,
                     got: Weights, grads: Weights) -> float:
    """eps|w| units of ``got`` from one float64 step of ``spec`` and ``form`` on ``grads``."""
    reference = ReferenceOptimizer(spec, start, framework_optimizer(spec, framework), form)
    reference.step(grads)
    return max(weight_error(got.get(k, np.array(np.nan)), w, start[k], reference.peak[k])[0]
               for k, w in reference.weights.items())


def _evidence(what: str, tried: list[tuple[float, str]], correct: float) -> str:
    listed = "; ".join(f"{words.split(' (')[0].split(':')[0]}: {error:.3g}" for error, words in sorted(tried))
    return f"{what} from each hypothesis's float64 step: {listed}; from the correct step: {correct:.3g}"


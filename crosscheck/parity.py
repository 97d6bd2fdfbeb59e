"""The training-parity check: whole training runs in every framework, loss curves compared.

From the same canonical weights and the same batches of real images (scikit-learn's
digits, resized to the variant's input, normalized), with dropout off and no
augmentation, each framework trains ``PARITY_STEPS`` steps with its own optimizer
(``PARITY_OPTIMIZER``, arguments from ``common.optim``). The float64 reference trains the
same steps (``common.reference_backward`` and ``common.optim.ReferenceOptimizer``),
and each framework's loss at every step is compared with the reference's.

Unlike the step check, each framework follows its own trajectory here, so float32
rounding compounds: the difference grows with the step. That is the point: a bug
too small to fail one step (a momentum or decay form, a learning-rate scale, dropout
left on) shows as a curve that drifts away.

How fast honest rounding grows depends on the variant: on the large ones training is
chaotic, and two *float64* runs whose weights differ by one float32 ulp drift 6.5e-4 apart
by step 20 (`torchvision`). So the tolerance is measured, not guessed: the float64 run is
repeated from weights nudged by ``PARITY_NUDGE`` (about the float32 error of one forward
pass), and at each step a framework may be ``envelope_factor`` times as far from float64 as
that nudged run has drifted so far, and never less than ``floor``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Optional

import numpy as np

from common import data, pipeline, reference_backward
from common.optim import OPTIMIZERS, OptimizerSpec, ReferenceOptimizer
from common.shapes import infer
from common.spec import Dropout, Variant
from common.weights import Weights
from crosscheck.verdicts import explain

PARITY_STEPS = 20
PARITY_BATCH = 8
#: The paper's SGD (momentum 0.9, weight decay 5e-4) at a tenth of its learning rate. At
#: lr 0.01 with 8 images per batch the loss of the large variants jumps by whole units
#: per step, training is chaotic, and float32 rounding alone moved the loss of `paper`
#: 1.6e-2 (PyTorch) and 3.8e-2 (MXNet) away from float64 by step 20: no tolerance could
#: tell that from a bug. At lr 0.001 the same run stays within 4.4e-5.
PARITY_OPTIMIZER = replace(OPTIMIZERS["sgd"], lr=1e-3)


#: relative size of the random-sign nudge to the weights of the second float64 run: about
#: the float32 error of one forward pass (the forward check measures <= 3e-6 rel L2)
PARITY_NUDGE = 1e-6


@dataclass(frozen=True)
class ParityTolerances:
    """How far each step's loss may be from the float64 run's, relative.

    ``floor``: on the well-behaved variants (`cifar-small`, `gluon-cifar`, and `paper` at
    this learning rate) float32 noise stayed below 4.4e-5 over 20 steps, while a learning rate
    5% high moves the loss of `cifar-small` by 4e-4 at step 2, a momentum dampening of 0.1 by
    8e-4 at step 3, and dropout left on by 1e-2 at step 1 (tests/test_parity.py).
    ``envelope_factor``: where training is chaotic (`torchvision`, `d2l`, `tf-benchmark`,
    `paper` late on) the nudged float64 run sets the bound. Over all six variants the
    frameworks' worst step used 41% of it (`torchvision`, TensorFlow, step 20: 1.4e-3 of
    1.6e-2). It rises above the floor only from step 8 on, so the first steps, where the
    bugs above show, are judged at 1e-4 on every variant."""

    floor: float = 1e-4
    envelope_factor: float = 10.0


DEFAULT_PARITY_TOLERANCES = ParityTolerances()


@dataclass
class ParityReference:
    """The float64 training run: its loss before each step, and how far a second float64
    run from nudged weights drifted from it (relative, per step)."""

    losses: list[float]
    envelope: list[float]

    def tolerances(self, tol: ParityTolerances = DEFAULT_PARITY_TOLERANCES) -> list[float]:
        """Per step: ``floor`` or ``envelope_factor`` times the largest drift so far."""
        drift = np.maximum.accumulate(np.nan_to_num(self.envelope, nan=np.inf))
        return [max(tol.floor, tol.envelope_factor * float(d)) for d in drift]


@dataclass
class ParityRun:
    framework: str
    status: str
    workers: int = 1  # data-parallel worker processes (check_training_distributed)
    losses: list[float] = field(default_factory=list)
    reference: list[float] = field(default_factory=list)
    tolerances: list[float] = field(default_factory=list)
    error: Optional[str] = None
    seconds: float = 0.0

    @property
    def rel_errors(self) -> list[float]:
        return [abs(a - b) / abs(b) for a, b in zip(self.losses, self.reference)]

    @property
    def worst(self) -> float:
        return max(self.rel_errors, default=float("nan"))

    @property
    def worst_ratio(self) -> float:
        """The largest error as a fraction of its step's tolerance (> 1: fails)."""
        return max((e / t for e, t in zip(self.rel_errors, self.tolerances)), default=float("nan"))

    @property
    def first_failure(self) -> Optional[int]:
        """The first step (1-based) whose loss breaks tolerance."""
        return next((step for step, (e, t) in enumerate(zip(self.rel_errors, self.tolerances), 1)
                     if not e <= t), None)


def parity_batches(variant: Variant, steps: int = PARITY_STEPS, batch_size: int = PARITY_BATCH,
                   seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``steps`` batches of the digits training split, shuffled by ``seed``, as the
    variant's input (channels, size, normalization); labels 0..9."""
    images, labels = data.load("digits", "train")
    transforms = pipeline.Transforms.fit(variant.input_shape, images)
    order = np.random.default_rng([seed, 3]).permutation(len(images))
    picked = [order[(i * batch_size + np.arange(batch_size)) % len(order)] for i in range(steps)]
    return [(transforms.test(images[p]), labels[p] % variant.num_classes) for p in picked]


def reference_losses(variant: Variant, weights: Weights, batches, spec: OptimizerSpec) -> list[float]:
    """The float64 loss before each of the steps of a float64 training run."""
    optimizer = ReferenceOptimizer(spec, weights)
    losses = []
    for x, labels in batches:
        loss, _, _, _, grads = reference_backward.backward(variant, optimizer.weights, x, labels)
        losses.append(loss)
        optimizer.step(grads)
    return losses


def nudged(weights: Weights, rel: float = PARITY_NUDGE, seed: int = 0) -> Weights:
    """``weights`` times (1 ± ``rel``), a seeded random sign per element, kept float64."""
    rng = np.random.default_rng([seed, 4])
    return {key: w.astype(np.float64) * (1 + rel * (2.0 * rng.integers(0, 2, w.shape) - 1))
            for key, w in weights.items()}


def reference_run(variant: Variant, weights: Weights, batches,
                  spec: OptimizerSpec = PARITY_OPTIMIZER) -> ParityReference:
    """Two float64 training runs, from ``weights`` and from nudged weights (the envelope)."""
    losses = reference_losses(variant, weights, batches, spec)
    drifted = reference_losses(variant, nudged(weights), batches, spec)
    return ParityReference(losses, [abs(a - b) / abs(b) for a, b in zip(drifted, losses)])


def dropout_off(variant: Variant, batch: int) -> dict[str, np.ndarray]:
    """Dropout factors of one: train mode, every unit kept, nothing rescaled."""
    return {info.name: np.ones((batch,) + info.out_shape, np.float32)
            for info in infer(variant) if isinstance(info.layer, Dropout)}


def check_training(backend, variant: Variant, weights: Weights, batches,
                   reference: ParityReference, spec: OptimizerSpec = PARITY_OPTIMIZER,
                   tol: ParityTolerances = DEFAULT_PARITY_TOLERANCES) -> ParityRun:
    """Train ``len(batches)`` steps in ``backend`` and compare its losses with ``reference``."""
    start = time.perf_counter()
    run = ParityRun(backend.name, "pass", reference=list(reference.losses),
                    tolerances=reference.tolerances(tol))
    try:
        model = backend.build(variant, weights)
        optimizer = backend.make_optimizer(model, spec)
        for x, labels in batches:
            loss, _ = backend.train_step(model, optimizer, x, labels, dropout_off(variant, len(x)))
            run.losses.append(loss)
    except Exception as exc:  # a framework's own error message, kept for the report
        run.error = explain(backend, variant, "training", exc).text
    if run.error or run.first_failure or len(run.losses) != len(reference.losses):
        run.status = "FAIL"
    run.seconds = time.perf_counter() - start
    return run


def check_training_distributed(backend, variant: Variant, weights: Weights, batches,
                               reference: ParityReference, registry: dict, *, workers: int = 2,
                               device: str = "cpu", spec: OptimizerSpec = PARITY_OPTIMIZER,
                               tol: ParityTolerances = DEFAULT_PARITY_TOLERANCES,
                               timeout: float = 1200.0) -> ParityRun:
    """``check_training`` with ``workers`` data-parallel processes of the framework's own
    engine (``impls/parallel.py``), each batch split over them: the loss of the whole batch
    at each step against the same float64 run and tolerances as one process.
    ``registry``: how the workers rebuild ``variant`` (``distributed.steps.job_variant``)."""
    import json
    import tempfile
    from dataclasses import asdict
    from pathlib import Path

    from distributed.launch import LaunchError, launch
    from distributed.steps import save_job_arrays

    start = time.perf_counter()
    run = ParityRun(backend.name, "pass", workers, reference=list(reference.losses),
                    tolerances=reference.tolerances(tol))
    with tempfile.TemporaryDirectory(prefix="alexnet-parity-") as tmp:
        out = Path(tmp)
        save_job_arrays(out / "arrays.safetensors", weights,
                        x=np.stack([np.asarray(x, np.float32) for x, _ in batches]),
                        labels=np.stack([np.asarray(y, np.int64) for _, y in batches]))
        try:
            launch(backend.name, workers, {
                "kind": "parity", "framework": backend.name, "device": device, "variant": registry,
                "arrays": str(out / "arrays.safetensors"), "out": str(out), "spec": asdict(spec)},
                timeout=timeout, echo_rank0=False)
            run.losses = json.loads((out / "losses.json").read_text())
        except (LaunchError, OSError, ValueError) as exc:
            run.error = f"the {workers} workers failed: {exc}"
    if run.error or run.first_failure or len(run.losses) != len(reference.losses):
        run.status = "FAIL"
    run.seconds = time.perf_counter() - start
    return run

"""Run the forward crosscheck: same weights, same inputs, every framework vs float64.

For each variant: seeded canonical weights, a batch of seeded normal images plus
one real photograph, the float64 reference's output of every layer, then each
framework's outputs compared layer by layer with the reference (pass/fail) and
pairwise with each other (reported, judged at twice the tolerance).
"""

from __future__ import annotations

import itertools
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from common import reference, reference_backward
from common.release import freeze, release, thaw
from common.inputs import crosscheck_batch
from common.shape_table import fmt_shape
from common.shapes import infer
from common.spec import Variant
from common.variants import get_variant
from common.weights import Weights, init_weights
from crosscheck.backward import GradientRun, check_gradients, gradient_inputs, reference_chain
from crosscheck.compare import DEFAULT_TOLERANCES, LayerError, Tolerances, layer_error
from crosscheck.dropout import DropoutRun, check_dropout
from crosscheck.fastpath import FastPathRun, check_fast_paths
from crosscheck.hypotheses import Cause, divergence_cause
from crosscheck.narrow import narrow, narrowing
from crosscheck.sizes import second_size
from crosscheck.parity import (ParityRun, check_training, check_training_distributed, parity_batches,
                              reference_run)
from crosscheck.step import StepRun, check_steps
from crosscheck.distributed import DistributedRun, check_distributed
from distributed.steps import variant_spec
from crosscheck.verdicts import Verdict, explain, guarded
from impls.base import (FRAMEWORKS, WITNESSES, Backend, FrameworkUnavailable, is_forward_only,
                        is_installed, load_backend, select_device)

PASS, FAIL, SKIPPED, ERROR = "pass", "FAIL", "skipped", "error"


@dataclass
class LayerResult:
    name: str
    kind: str
    shape: tuple[int, ...]
    error: LayerError
    #: this layer's rel_l2 over the previous layer's: >> 1 where the error is born
    growth: Optional[float]
    passed: bool


@dataclass
class FrameworkRun:
    framework: str
    status: str
    detail: str = ""
    layers: list[LayerResult] = field(default_factory=list)
    seconds: float = 0.0
    #: layer -> largest difference between two runs on the same input (reported, not judged:
    #: some GPU kernels are nondeterministic by design); empty when bit-identical
    run_to_run: dict[str, float] = field(default_factory=dict)
    #: the first layer a verdict names when the framework raised (``detail`` says why)
    verdict_layer: Optional[str] = None
    #: the porting bug that reproduces the first divergent layer's output, if one does
    #: (``crosscheck.hypotheses``); None also where no known one does
    cause: Optional[Cause] = None

    @property
    def first_divergence(self) -> Optional[LayerResult]:
        return next((layer for layer in self.layers if not layer.passed), None)

    @property
    def failed_layer(self) -> Optional[str]:
        """The first divergent layer, or the one the verdict on what it raised names."""
        first = self.first_divergence
        return first.name if first is not None else self.verdict_layer

    @property
    def worst_rel_l2(self) -> float:
        return max((layer.error.rel_l2 for layer in self.layers), default=float("nan"))


@dataclass
class PairRun:
    a: str
    b: str
    layers: list[LayerResult]

    @property
    def first_divergence(self) -> Optional[LayerResult]:
        return next((layer for layer in self.layers if not layer.passed), None)


@dataclass
class VariantRun:
    variant: str
    input_shape: tuple[int, int, int]
    batch: str
    frameworks: list[FrameworkRun]
    pairs: list[PairRun]
    reference_seconds: float
    gradients: list[GradientRun] = field(default_factory=list)
    steps: list[StepRun] = field(default_factory=list)
    training: list[ParityRun] = field(default_factory=list)
    fast_paths: list[FastPathRun] = field(default_factory=list)
    #: framework -> the checks asked for that it cannot run (a forward-only witness)
    skipped_checks: dict[str, list[str]] = field(default_factory=dict)
    #: each framework's own Dropout layers in train mode (part of the backward check)
    dropout: list[DropoutRun] = field(default_factory=list)
    #: the widths the step check ran at, where they are not the variant's (crosscheck/narrow.py)
    steps_narrowed: str = ""
    #: the widths every check of this run had, where they are not the variant's (the second size)
    narrowed: str = ""
    #: each framework's data-parallel steps on 2 workers (crosscheck/distributed.py)
    distributed: list[DistributedRun] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(f.status == FAIL for f in self.frameworks + self.gradients + self.steps
                   + self.training + self.fast_paths + self.dropout + self.distributed)


@dataclass
class CrosscheckRun:
    variants: list[VariantRun]
    settings: dict
    tolerances: Tolerances
    environment_errors: list[str]

    @property
    def exit_code(self) -> int:
        """0 all pass, 1 a divergence, 2 an environment problem (missing or broken framework)."""
        if self.environment_errors:
            return 2
        return 1 if any(v.failed for v in self.variants) else 0


def layer_results(variant: Variant, outputs: dict[str, np.ndarray], expected: dict[str, np.ndarray],
                   tol: Tolerances, factor: float = 1.0,
                   scale: Optional[dict[str, np.ndarray]] = None) -> list[LayerResult]:
    results: list[LayerResult] = []
    previous = None
    for info in infer(variant):
        if info.name not in outputs:
            error = LayerError(np.inf, np.inf, np.inf, "the implementation gave no output for it")
        else:
            error = layer_error(outputs[info.name], expected[info.name],
                                None if scale is None else scale[info.name])
        growth = error.rel_l2 / previous if previous else None
        previous = error.rel_l2
        results.append(LayerResult(info.name, info.kind, info.out_shape, error, growth,
                                   error.passes(tol, factor)))
    return results


def check_framework(backend: Backend, variant: Variant, weights: Weights, x: np.ndarray,
                    ref: dict[str, np.ndarray], tol: Tolerances) -> tuple[FrameworkRun, dict]:
    """Build, run and compare one framework on one variant. What the framework raises is
    its failure, with a verdict (``crosscheck.verdicts``), never a traceback."""
    return forward_check(backend, variant, weights, x, ref, tol)[:2]


def forward_check(backend: Backend, variant: Variant, weights: Weights, x: np.ndarray,
                  ref: dict[str, np.ndarray], tol: Tolerances) -> tuple[FrameworkRun, dict, object]:
    """``check_framework``, and the model it built (None where building or running it raised)."""
    start = time.perf_counter()

    def failed(verdict: Verdict) -> tuple[FrameworkRun, dict, object]:
        return FrameworkRun(backend.name, FAIL, verdict.text, seconds=time.perf_counter() - start,
                            verdict_layer=verdict.layer), {}, None

    stage = "building the model and loading the weights"
    try:
        model = backend.build(variant, weights)
        stage = "running the forward pass"
        outputs = backend.layer_outputs(model, x)
        again = backend.layer_outputs(model, x)  # determinism: the same input, a second time
    except Exception as exc:  # any framework error is that framework's failure
        return failed(explain(backend, variant, stage, exc))
    run_to_run = {name: float(np.max(np.abs(out - again[name]))) for name, out in outputs.items()
                  if out.shape != again[name].shape or not np.array_equal(out, again[name], equal_nan=True)}
    layers = layer_results(variant, outputs, ref, tol)
    status = PASS if all(layer.passed for layer in layers) else FAIL
    first = next((layer for layer in layers if not layer.passed), None)
    # which known bug reproduces the first divergent layer, from the input it got
    cause = None if first is None else divergence_cause(variant, weights, x, outputs, first.name)
    return FrameworkRun(backend.name, status, layers=layers, seconds=time.perf_counter() - start,
                        run_to_run=run_to_run, cause=cause), outputs, model


CHECKS = ("forward", "backward", "step", "fastpath", "train", "distributed")
#: what ``alexnet crosscheck`` runs unless told: the training-parity check trains 20 steps
#: in float64 too, minutes per large variant on a small CPU
DEFAULT_CHECKS = ("forward", "backward", "step", "fastpath")
#: what runs at each variant's second input size (``crosscheck.sizes``): the layers' code is
#: what depends on the size; the optimizer, the benchmark session and a Dropout layer's rate
#: do not. The forward-only ONNX witnesses run at the native size only (their export costs
#: ~4 s a variant). The second size runs on the variant narrowed (``crosscheck.narrow``):
#: the size-dependent code (pool rounding, SAME padding, adaptive bins) does not depend on
#: the width, which the native size checks in full.
SECOND_SIZE_CHECKS = ("forward", "backward")


def plan(names: list[str], checks: tuple[str, ...], *, input_shape: Optional[tuple[int, int, int]] = None,
         num_classes: Optional[int] = None,
         second_sizes: bool = False) -> list[tuple[Variant, tuple[str, ...], bool]]:
    """(variant, checks, is the second size) for each run: each named variant at
    ``input_shape`` (default: its own) with ``num_classes``; with ``second_sizes`` (and no
    ``input_shape``) also at its second input size, narrowed, with the checks of
    ``SECOND_SIZE_CHECKS`` that were asked for."""
    runs = []
    for name in names:
        variant = get_variant(name, num_classes=num_classes,
                              in_channels=input_shape[0] if input_shape else None,
                              input_size=input_shape[1:] if input_shape else None)
        infer(variant)  # a SpecError naming the layer, before anything runs
        runs.append((variant, checks, False))
        if second_sizes and input_shape is None:
            runs.append((narrow(second_size(variant)),
                         tuple(c for c in checks if c in SECOND_SIZE_CHECKS), True))
    return runs


def run_crosscheck(variants: "list[str] | list[tuple[Variant, tuple[str, ...]]]",
                   frameworks: list[str], *, device: str = "cpu",
                   seed: int = 0, batch_size: int = 2, require_all: bool = False,
                   checks: tuple[str, ...] = ("forward",),
                   tolerances: Tolerances = DEFAULT_TOLERANCES,
                   given_weights: Optional[dict[str, Weights]] = None,
                   progress: Optional[Callable[[str], None]] = None) -> CrosscheckRun:
    """Crosscheck every (variant, framework); see the module docstring. ``variants``: names
    (each at its own input size, with ``checks``) or ``plan``'s (variant, checks) pairs.
    ``given_weights`` maps a variant name to canonical weights to use instead of the seeded
    initializer."""
    say = progress or (lambda message: None)
    backends: dict[str, Backend] = {}
    unavailable: dict[str, tuple[str, str]] = {}
    environment_errors: list[str] = []
    details: dict[str, str] = {}
    for name in frameworks:
        try:
            backend = load_backend(name, witnesses=True)
            detail = f"{name} {backend.version()} on {select_device(backend, device)}"
            backends[name], details[name] = backend, detail
            say(f"  {detail}")
        except FrameworkUnavailable as exc:
            not_installed = "not installed" in str(exc)
            unavailable[name] = (SKIPPED if not_installed else ERROR, str(exc))
            if require_all or not not_installed:
                environment_errors.append(str(exc))
        except ImportError as exc:  # installed but broken
            unavailable[name] = (ERROR, f"{name}: import failed: {exc}")
            environment_errors.append(unavailable[name][1])

    # forward-only witnesses (impls.base.WITNESSES) take part in the forward check alone
    witnesses = [name for name, backend in backends.items() if is_forward_only(backend)]
    for name in witnesses:
        try:
            backends[name].warm_up()  # their exporters' setup, frozen next with the frameworks
        except Exception:  # noqa: BLE001 (each variant's own export reports it, with a verdict)
            pass
    freeze()  # the frameworks' own objects: not scanned by each release() (common/release.py)
    trainable = {name: backend for name, backend in backends.items() if name not in witnesses}
    runs: list[VariantRun] = []
    all_checks = checks
    for entry in variants:
        variant, checks, second = ((get_variant(entry), all_checks, False) if isinstance(entry, str)
                                   else (tuple(entry) + (False,))[:3])
        variant_name = variant.name
        weights = (given_weights or {}).get(variant_name) or init_weights(variant, seed)
        x = crosscheck_batch(variant, batch_size, seed)
        start = time.perf_counter()
        ref = reference.forward(variant, weights, x)
        ref_seconds = time.perf_counter() - start
        results: dict[str, FrameworkRun] = {name: FrameworkRun(name, *unavailable[name])
                                             for name in frameworks if name in unavailable}
        outputs: dict[str, dict[str, np.ndarray]] = {}

        def forward(name: str) -> object:
            """The forward check of ``name``; returns its model (None where it failed)."""
            results[name], outputs[name], model = forward_check(backends[name], variant, weights,
                                                                x, ref, tolerances)
            divergence = results[name].first_divergence
            say(f"  {variant_name:<13} {name:<10} {results[name].status:<4} "
                f"{results[name].seconds:5.1f}s"
                + (f"  first divergence at {divergence.name}" if divergence else ""))
            return model

        gradients: list[GradientRun] = []
        dropouts: list[DropoutRun] = []
        steps: list[StepRun] = []
        skipped_checks = {name: [c for c in checks if c != "forward"]
                          for name in witnesses if not second}
        skipped_checks = {name: skipped for name, skipped in skipped_checks.items() if skipped}
        if "backward" in checks and trainable:
            labels, masks = gradient_inputs(variant, len(x), seed)
            ref_chain = reference_chain(variant, weights, x, labels, masks, ref)
        stepping = {"step", "distributed"} & set(checks)
        if stepping and trainable:  # on the variant narrowed (crosscheck/narrow.py)
            stepped = narrow(variant)
            step_weights = weights if stepped is variant else init_weights(stepped, seed)
            step_labels, step_masks = gradient_inputs(stepped, len(x), seed)
        if "step" in checks and trainable:
            step_chain = reference_chain(stepped, step_weights, x, step_labels, step_masks,
                                         ref if stepped is variant else None)
        for name in trainable:
            # the forward check's model runs the backward and dropout checks too: the same
            # weights, and a full-size build less each (0.2-0.6 s)
            model = forward(name)
            if "backward" in checks:
                gradients.append(guarded(
                    trainable[name], variant, "running the backward check",
                    lambda: check_gradients(trainable[name], variant, weights, x, labels, masks,
                                            ref_chain, model=model),
                    lambda verdict: GradientRun(name, FAIL, diagnosis=verdict.text)))
                say(f"  {variant_name:<13} {name:<10} backward {gradients[-1].status:<4} "
                    f"{gradients[-1].seconds:5.1f}s")
                if not second:  # the shared masks never run the framework's own Dropout
                    dropouts.append(check_dropout(trainable[name], variant, weights, seed,
                                                  model=model))
                    say(f"  {variant_name:<13} {name:<10} dropout  {dropouts[-1].status:<4} "
                        f"{dropouts[-1].seconds:5.1f}s")
            model = None
            release()  # the model just dropped (common/release.py)
            if "step" in checks:
                steps.append(check_steps(trainable[name], stepped, step_weights, x, step_labels,
                                         step_masks, step_chain))
                release()  # the model just dropped (common/release.py)
                say(f"  {variant_name:<13} {name:<10} step     {steps[-1].status:<4} "
                    f"{steps[-1].seconds:5.1f}s")
        distributed: list[DistributedRun] = []
        if "distributed" in checks and trainable:  # worker processes: this one only waits
            rebuild = variant_spec(variant, narrowed=stepped is not variant)
            for name in trainable:
                distributed.append(guarded(
                    trainable[name], stepped, "running the distributed check",
                    lambda: check_distributed(trainable[name], stepped, step_weights, x,
                                              step_labels, rebuild, device=device),
                    lambda verdict: DistributedRun(name, FAIL, error=verdict.text)))
                release()
                say(f"  {variant_name:<13} {name:<10} distrib. {distributed[-1].status:<4} "
                    f"{distributed[-1].seconds:5.1f}s")
        # the chains' float64 gradients (490 MB on a full-size variant) are done with
        ref_chain = step_chain = None
        release()
        fast_paths: list[FastPathRun] = []
        if "fastpath" in checks and trainable:
            labels, _ = gradient_inputs(variant, len(x), seed)
            ref_grads = reference_backward.backward(variant, weights, x, labels,  # dropout off
                                                   eval_outputs=ref)[4]
            for name in (n for n in frameworks if n in trainable):
                fast_paths.append(check_fast_paths(trainable[name], variant, weights, x, labels,
                                                   ref[variant.layers[-1].name], ref_grads,
                                                   tolerances))
                plain = [r.status for r in [results[name], *gradients] if r.framework == name]
                fast_paths[-1].plain_passed = all(status == PASS for status in plain)
                release()  # the model just dropped (common/release.py)
                say(f"  {variant_name:<13} {name:<10} fastpath {fast_paths[-1].status:<4} "
                    f"{fast_paths[-1].seconds:5.1f}s")
            ref_grads = None
        if not second:  # the forward-only witnesses (SECOND_SIZE_CHECKS)
            for name in witnesses:
                forward(name)
                release()  # the exported graph just dropped (common/release.py)
            for name, skipped in skipped_checks.items():
                say(f"  {variant_name:<13} {name:<10} {', '.join(skipped)} skipped: forward only")
        training: list[ParityRun] = []
        if "train" in checks and trainable:
            batches = parity_batches(variant, seed=seed)
            start = time.perf_counter()
            float64_run = reference_run(variant, weights, batches)
            say(f"  {variant_name:<13} float64    train    {time.perf_counter() - start:5.1f}s"
                "  (twice: the second from nudged weights sets the noise envelope)")
            rebuild = variant_spec(variant, narrowed=False)
            for name in (n for n in frameworks if n in trainable):
                training.append(check_training(trainable[name], variant, weights, batches,
                                               float64_run))
                say(f"  {variant_name:<13} {name:<10} train    {training[-1].status:<4} "
                    f"{training[-1].seconds:5.1f}s")
                release()
                # the same run on 2 data-parallel workers (crosscheck/distributed.py's engines)
                training.append(guarded(
                    trainable[name], variant, "running the 2-worker training",
                    lambda: check_training_distributed(trainable[name], variant, weights, batches,
                                                       float64_run, rebuild, device=device),
                    lambda verdict: ParityRun(name, FAIL, 2, error=verdict.text)))
                say(f"  {variant_name:<13} {name:<10} train x2 {training[-1].status:<4} "
                    f"{training[-1].seconds:5.1f}s")
        ran = sorted((name for name in outputs if outputs[name]), key=frameworks.index)
        pairs = [PairRun(a, b, layer_results(variant, outputs[a], outputs[b], tolerances,
                                              tolerances.pairwise_factor, scale=ref))
                 for a, b in itertools.combinations(ran, 2)]
        runs.append(VariantRun(variant_name, variant.input_shape,
                               f"{batch_size} seeded normal images + 1 photograph",
                               [results[name] for name in frameworks if name in results], pairs, ref_seconds, gradients, steps, training,
                               fast_paths, skipped_checks, dropouts,
                               narrowing(variant, stepped) if stepping and trainable else "",
                               narrowing(_registered(variant), variant) if second else "",
                               distributed))
    thaw()
    settings = {"variants": [f"{v.variant} {fmt_shape(v.input_shape)}" for v in runs],
                "frameworks": frameworks, "checks": list(all_checks),
                "device": device, "seed": seed,
                "batch_size": batch_size, "require_all": require_all,
                "framework_details": details,
                "python": sys.version.split()[0]}
    return CrosscheckRun(runs, settings, tolerances, environment_errors)


def _registered(variant: Variant) -> Variant:
    """The registry's ``variant`` at the same input and classes: its full widths."""
    return get_variant(variant.name, num_classes=variant.num_classes, in_channels=variant.input_shape[0],
                       input_size=variant.input_shape[1:])


def all_frameworks() -> list[str]:
    """What ``--framework all`` runs: every framework, and each witness that is installed."""
    return list(FRAMEWORKS) + [name for name in WITNESSES if is_installed(name)]


def known_frameworks() -> list[str]:
    """Every name ``--framework`` accepts: the frameworks and the forward-only witnesses."""
    return list(FRAMEWORKS) + list(WITNESSES)

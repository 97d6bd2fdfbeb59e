"""Render a crosscheck run: a terminal table, markdown and JSON reports."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict
from pathlib import Path
from typing import Optional

from common.shape_table import fmt_shape
from common.table import render
from common.weights import atomic_write_bytes
from crosscheck.backward import GradientRun
from crosscheck.hypotheses import Cause
from crosscheck.dropout import RATE_RESOLUTION, SCALE_TOLERANCE, Z, DropoutRun
from crosscheck.run import FAIL, PASS, CrosscheckRun, FrameworkRun, VariantRun
from crosscheck.parity import DEFAULT_PARITY_TOLERANCES, PARITY_BATCH, ParityRun
from crosscheck.distributed import DistributedRun
from crosscheck.step import DEFAULT_STEP_TOLERANCES, STEPS, StepRun

REPORT_FILES = ("crosscheck.json", "crosscheck.md")


def _sci(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.1e}"


def _cell(run: FrameworkRun, index: int) -> str:
    layer = run.layers[index]
    return f"{_sci(layer.error.rel_l2)} {'ok' if layer.passed else 'FAIL'}"


def variant_table(v: VariantRun, fmt: str = "table") -> str:
    """Per layer: relative L2 error against float64 of each framework that ran."""
    ran = [f for f in v.frameworks if f.layers]
    headers = ["layer", "type", "output"] + [f"{f.framework} rel L2" for f in ran]
    rows = [[layer.name, layer.kind, fmt_shape(layer.shape)] + [_cell(f, i) for f in ran]
            for i, layer in enumerate(ran[0].layers)] if ran else []
    return render(headers, rows, fmt, right_align_from=2)


def determinism(run: FrameworkRun) -> str:
    if not run.run_to_run:
        return "two runs bit-identical"
    first = next(iter(run.run_to_run))
    return f"two runs DIFFER from {first} on (largest difference {_sci(max(run.run_to_run.values()))})"


def framework_line(run: FrameworkRun) -> str:
    if not run.layers:
        return f"{run.framework}: {run.status} ({run.detail})"
    worst = max(run.layers, key=lambda layer: layer.error.rel_l2)
    first = run.first_divergence
    if first is None:
        return (f"{run.framework}: {PASS}, worst rel L2 {_sci(worst.error.rel_l2)} at {worst.name}, "
                f"worst normalized max {_sci(max(l.error.norm_max for l in run.layers))}, "
                f"{determinism(run)} ({run.seconds:.1f}s)")
    why = first.error.problem or (f"rel L2 {_sci(first.error.rel_l2)}, normalized max "
                                  f"{_sci(first.error.norm_max)}")
    growth = f", error grew x{first.growth:.0e} there" if first.growth and first.growth > 10 else ""
    return (f"{run.framework}: {FAIL}, first divergence at {first.name} ({first.kind}): {why}{growth}; "
            f"{cause_text(run.cause)}; {determinism(run)}")


def cause_text(cause: Optional[Cause]) -> str:
    """A confirmed cause with its evidence, or that no known porting bug reproduces it."""
    if cause is None:
        return "no known cause reproduces it"
    return f"cause confirmed: {cause.text} ({cause.evidence()})"


def gradient_table(v: VariantRun, fmt: str = "table") -> str:
    """Per layer and framework: worst end-to-end gradient error and worst own (isolated) error."""
    runs = v.gradients
    if not runs:
        return ""
    layers = list(dict.fromkeys(r.layer for r in runs[0].isolated))

    def worst(rows, layer, grads_only):
        errors = [r for r in rows if r.layer == layer and (not grads_only or r.what != "out")]
        bad = any(not r.passed for r in errors)
        return f"{_sci(max(r.error.rel_l2 for r in errors)) if errors else '-'} {'FAIL' if bad else 'ok'}"

    headers = ["layer"] + [h for r in runs for h in (f"{r.framework} grad", f"{r.framework} own")]
    rows = [[layer] + [c for r in runs for c in (worst(r.end_to_end, layer, True),
                                                  worst(r.isolated, layer, False))]
            for layer in layers]
    return render(headers, rows, fmt)


def gradient_line(run: GradientRun) -> str:
    if not run.end_to_end and not run.isolated and run.status == FAIL:  # it raised
        return f"{run.framework} backward: {run.status}; {run.diagnosis}"
    head = (f"{run.framework} backward: {run.status}, worst gradient rel L2 "
            f"{_sci(run.worst('end_to_end', 'dL'))} end to end, {_sci(run.worst('isolated'))} "
            f"layer-isolated, loss {_sci(run.loss_error)} ({run.seconds:.1f}s)")
    blamed, first = run.blamed, run.first_divergence
    if blamed is not None:
        head += (f"; first own error at {blamed.layer} ({blamed.kind}, {blamed.what}): rel L2 "
                 f"{_sci(blamed.error.rel_l2)}; "
                 + (cause_text(run.cause) if run.cause else f"likely {run.diagnosis}"))
    elif first is not None:
        head += f"; end to end first off at {first.layer} ({first.what}), no layer's own error is"
    return head


def dropout_line(run: DropoutRun) -> str:
    """The framework's own Dropout layers: kept fraction and bound, scale error, eval mode."""
    head = f"{run.framework} dropout: {run.status} ({run.seconds:.1f}s)"
    if run.error:
        return head + f"; raised {run.error}"
    if not run.rows:
        return head + "; no Dropout layer"
    head += "".join(f"; {r.layer} keeps {r.kept:.1%} of {r.n} (bound {1 - r.p:.1%} +- "
                    f"{r.bound:.1%}), kept values within {_sci(r.scale_error)} of x/(1-p), eval "
                    f"{'identity' if r.eval_error <= SCALE_TOLERANCE else 'NOT identity'}"
                    for r in run.rows)
    failed = [r.cause for r in run.rows if not r.passed]
    return head + (f". {'. '.join(failed)}" if failed else "")


def step_table(v: VariantRun, fmt: str = "table") -> str:
    """Per framework and optimizer: the worst weight error after the first and last step."""
    headers = ["framework", "optimizer", "step 1 (eps|w|)", f"step {STEPS} (eps|w|)",
               f"step {STEPS} update rel L2", "verdict"]
    rows = []
    for run in v.steps:
        for optimizer in dict.fromkeys(r.optimizer for r in run.rows):
            (first, _), (last, update) = run.worst(optimizer, 1), run.worst(optimizer, STEPS)
            bad = any(not r.passed for r in run.rows if r.optimizer == optimizer)
            rows.append([run.framework, optimizer, f"{first:.2f}", f"{last:.2f}", _sci(update),
                         "FAIL" if bad else "ok"])
    return render(headers, rows, fmt)


def probe_text(run: StepRun) -> str:
    """The numbers the step check ran each setting with (crosscheck.step.probe_settings)."""
    return ", ".join(f"{name} lr {s.lr:.2g}" + (f" wd {s.weight_decay:.2g}" if s.weight_decay else "")
                     + (f" momentum {s.momentum:g}" if s.kind == "sgd" and s.momentum else "")
                     + (f" eps {s.eps:.2g}" if s.kind == "adam" else "")
                     for name, s in run.settings.items())


def step_diagnosis(run: StepRun, backward: Optional[GradientRun] = None) -> str:
    """What a failed step check blames: the confirmed cause with its evidence, or else
    whether the training step's gradients (its loss or graph) or the optimizer update is
    off. ``backward``: the same framework's backward check, where it ran."""
    if run.cause is not None:
        return f"cause confirmed: {run.cause} ({run.evidence})"
    loss_off = not run.loss_error <= DEFAULT_STEP_TOLERANCES.loss_rel
    parts = []
    if not run.gradients_passed or loss_off:
        what = ("the training step's first-step gradients" + (" and loss" if loss_off else "")
                if not run.gradients_passed else "the training step's loss value")
        if backward is not None and backward.status != PASS:
            parts.append(f"{what} are off, as in the backward check")
        else:
            chain = (" while the backward check's layer chain passes" if backward is not None else "")
            parts.append(f"{what} are off{chain}: the training step's own loss or graph "
                         f"(impls/{run.framework}/training.py), and no known loss bug reproduces it")
    if run.first_failure is not None:
        parts.append("the optimizer update is off (the reference replays the framework's own "
                     "gradients): its arguments (common/optim.py) or the framework's update rule, "
                     "and no known optimizer bug reproduces it")
    return "; ".join(parts)


def step_line(run: StepRun, backward: Optional[GradientRun] = None) -> str:
    worst_grad = max((e.rel_l2 for e in run.gradients.values()), default=float("nan"))
    head = (f"{run.framework} step: {run.status}, first-step gradients rel L2 {_sci(worst_grad)}, "
            f"loss {_sci(run.loss_error)}, "
            + ("run-to-run identical" if not run.run_to_run else
               f"run-to-run gradients differ by up to {_sci(max(run.run_to_run.values()))} "
               f"of their largest element ({len(run.run_to_run)} parameters)")
            + f" ({run.seconds:.1f}s)")
    if run.error:
        return head + f"; raised {run.error}"
    first = run.first_failure
    if first is not None:
        head += (f"; first off: {first.optimizer} step {first.step} {first.param} by "
                 f"{first.eps_units:.3g} eps|w| (update rel L2 {_sci(first.update_rel_l2)})")
    if run.status == FAIL:
        head += "; " + step_diagnosis(run, backward)
    return head


def distributed_table(v: VariantRun, fmt: str = "table") -> str:
    """Per framework and optimizer: the worst replica's weight error after the first and
    last data-parallel step, and the worst first-step gradient."""
    headers = ["framework", "workers", "optimizer", "gradient rel L2", "step 1 (eps|w|)",
               f"step {STEPS} (eps|w|)", "verdict"]
    rows = []
    for run in v.distributed:
        grad = max(run.gradients.values(), default=float("nan"))
        for optimizer in run.settings:
            (first, _), (last, _) = run.worst(optimizer, 1), run.worst(optimizer, STEPS)
            bad = any(not r.passed for r in run.rows if r.optimizer == optimizer)
            rows.append([run.framework, str(run.workers), optimizer, _sci(grad), f"{first:.2f}",
                         f"{last:.2f}", "FAIL" if bad or run.status == FAIL else "ok"])
    return render(headers, rows, fmt)


def distributed_line(run: DistributedRun) -> str:
    head = (f"{run.framework} distributed: {run.status}, {run.workers} workers, "
            f"checkpoints written by rank {', '.join(map(str, run.writers)) or 'none'} "
            f"({run.seconds:.1f}s)")
    if run.error:
        return head + f"; a worker failed: {run.error}"
    if run.status != FAIL:
        return head
    bad = [r for r in run.rows if not r.passed]
    if bad:
        worst = max(bad, key=lambda r: r.eps_units)
        head += (f"; worst: {worst.optimizer} step {worst.step} {worst.param} by "
                 f"{worst.eps_units:.3g} eps|w|")
    if not run.gradients_passed:
        key, error = max(run.gradients.items(), key=lambda item: item[1])
        head += f"; first-step gradient of {key} off by rel L2 {_sci(error)}"
    if run.cause:
        return head + f"; cause confirmed: {run.cause}" + (f" ({run.evidence})" if run.evidence else "")
    return head + ("; no known data-parallel bug reproduces it" +
                   (f" ({run.evidence})" if run.evidence else ""))


def backward_of(v: VariantRun, framework: str) -> Optional[GradientRun]:
    """The backward check of ``framework`` on variant ``v``, where it ran."""
    return next((g for g in v.gradients if g.framework == framework), None)


def training_table(v: VariantRun, fmt: str = "table") -> str:
    """Per framework: the loss at the first and last step against the float64 run's."""
    headers = ["framework", "loss step 1", "float64", "loss last step", "float64",
               "worst rel diff", "of tolerance", "verdict"]
    rows = []
    for run in v.training:
        first = (run.losses[:1] or [float("nan")])[0]
        last = (run.losses[-1:] or [float("nan")])[0]
        rows.append([run.framework + (f" x{run.workers}" if run.workers > 1 else ""), f"{first:.5f}", f"{run.reference[0]:.5f}", f"{last:.5f}",
                     f"{run.reference[-1]:.5f}", _sci(run.worst), f"{run.worst_ratio:.0%}",
                     run.status])
    return render(headers, rows, fmt)


def training_line(run: ParityRun) -> str:
    workers = f" on {run.workers} workers" if run.workers > 1 else ""
    head = (f"{run.framework} train{workers}: {run.status}, {len(run.losses)}/{len(run.reference)} steps, "
            f"worst loss difference {_sci(run.worst)} ({run.seconds:.1f}s)")
    if run.error:
        return head + f"; raised {run.error}"
    if run.first_failure is not None:
        step = run.first_failure
        head += (f"; the loss curve leaves the float64 run at step {step} "
                 f"({run.losses[step - 1]:.6g} vs {run.reference[step - 1]:.6g}, tolerance "
                 f"{_sci(run.tolerances[step - 1])}): an optimizer, "
                 f"learning-rate or dropout difference that one step is too small to show")
    return head


def fast_path_table(v: VariantRun, fmt: str = "table") -> str:
    """Per framework: the benchmark session's fast paths, its output and worst gradient error."""
    headers = ["framework", "fast paths", "output rel L2", "output norm max", "worst grad rel L2",
               "at", "verdict"]
    rows = []
    for run in v.fast_paths:
        paths = ", ".join(k for k, on in run.fast_paths.items() if on) or "-"
        key, worst = run.worst_gradient
        out = run.output
        rows.append([run.framework, paths, _sci(out.rel_l2) if out else "-",
                     _sci(out.norm_max) if out else "-", _sci(worst), key or "-", run.status])
    return render(headers, rows, fmt)


def fast_path_line(run) -> str:
    head = f"{run.framework} fastpath: {run.status} ({run.seconds:.1f}s)"
    if run.error:
        return head + f"; raised {run.error}"
    if run.status == FAIL and run.plain_passed is False:
        head += (f"; the plain {run.framework} model fails its own checks too (see the forward and "
                 f"backward lines): fix that first, the fast path may be right")
    elif run.status == FAIL:
        plain = ("the plain model of the same framework passes" if run.plain_passed
                 else "the plain model was not checked in this run")
        head += (f"; {plain}, so the benchmarked fast path computes another function: a compiled "
                 "graph traced in the wrong mode, a layout the fast path changed")
    return head


def skipped_lines(v: VariantRun) -> list[str]:
    """The checks a forward-only witness (an ONNX export) was asked for and cannot run."""
    return [f"{name} {', '.join(checks)}: skipped: forward only"
            for name, checks in v.skipped_checks.items()]


def pair_lines(v: VariantRun) -> list[str]:
    lines = []
    for pair in v.pairs:
        worst = max(pair.layers, key=lambda layer: layer.error.rel_l2)
        first = pair.first_divergence
        tail = f"; first differ at {first.name}" if first else ""
        lines.append(f"{pair.a} vs {pair.b}: worst rel L2 {_sci(worst.error.rel_l2)} at {worst.name}{tail}")
    return lines


def summary(run: CrosscheckRun) -> str:
    failed = [f"{v.variant}/{f.framework}" for v in run.variants for f in v.frameworks if f.status == FAIL]
    failed += [f"{v.variant}/{g.framework} backward" for v in run.variants for g in v.gradients
               if g.status == FAIL]
    failed += [f"{v.variant}/{d.framework} dropout" for v in run.variants for d in v.dropout
               if d.status == FAIL]
    failed += [f"{v.variant}/{s.framework} step" for v in run.variants for s in v.steps
               if s.status == FAIL]
    failed += [f"{v.variant}/{t.framework} train" for v in run.variants for t in v.training
               if t.status == FAIL]
    failed += [f"{v.variant}/{d.framework} distributed" for v in run.variants for d in v.distributed
               if d.status == FAIL]
    failed += [f"{v.variant}/{t.framework} fastpath" for v in run.variants for t in v.fast_paths
               if t.status == FAIL]
    if run.environment_errors:
        return "ERROR: " + "; ".join(run.environment_errors)
    if failed:
        return f"FAIL: {len(failed)} divergence(s): {', '.join(failed)}"
    skipped = sorted({f.framework for v in run.variants for f in v.frameworks if f.status != PASS})
    tail = f" (skipped: {', '.join(skipped)})" if skipped else ""
    names = len({v.variant for v in run.variants})
    # a variant's second input size is a run of its own, not another variant
    sizes = (f" ({len(run.variants)} runs: each at its input size and a second)"
             if len(run.variants) > names else "")
    return f"PASS: {names} variant(s) agree with the float64 reference{sizes}{tail}"


def terminal(run: CrosscheckRun) -> str:
    """The readable report printed by ``alexnet crosscheck``."""
    tol = run.tolerances
    parts = [f"tolerances: rel L2 <= {tol.rel_l2:.0e} and normalized max <= {tol.norm_max:.0e} "
             f"against float64 (x{tol.pairwise_factor:g} between frameworks)"]
    if any(v.gradients for v in run.variants):
        parts.append("backward tables: 'grad' = worst error of dL/d(output, weights) end to end "
                     "(tolerance 2e-2), 'own' = worst error of the layer fed the reference's input "
                     "and output gradient (1e-5)")
    if any(v.dropout for v in run.variants):
        parts.append(f"dropout lines: each framework's own Dropout layers in train mode on "
                     f"positive inputs: kept fraction within {Z:g} sigma of 1-p (a rate off by "
                     f"{RATE_RESOLUTION:g} cannot pass), kept values x/(1-p) to "
                     f"{SCALE_TOLERANCE:.0e}, eval mode the identity")
    if any(v.steps for v in run.variants):
        parts.append(f"step tables: weights after each framework's own optimizer step against the "
                     f"float64 update of the same gradients, worst element in float32 eps times "
                     f"its largest |w| (tolerance {DEFAULT_STEP_TOLERANCES.weights:g})")
    if any(v.distributed for v in run.variants):
        parts.append(f"distributed tables: each worker's replica after data-parallel steps on its "
                     f"shard against the float64 update of the gradient it applied (eps|w| units, "
                     f"tolerance {DEFAULT_STEP_TOLERANCES.weights:g}), and that gradient against "
                     f"the float64 gradient of the whole batch (rel L2, tolerance "
                     f"{DEFAULT_STEP_TOLERANCES.gradient_rel_l2:g})")
    if any(v.fast_paths for v in run.variants):
        parts.append("fastpath tables: the benchmark's sessions with each framework's fast path "
                     "(channels-last, XLA, static hybridize): output against float64 (forward "
                     "tolerances), parameter gradients with dropout off (end-to-end tolerance 2e-2)")
    if any(v.training for v in run.variants):
        parts.append(f"train tables: loss of each step of SGD from the same weights on the same "
                     f"digits batches ({PARITY_BATCH} images, dropout off) against a float64 "
                     f"training run (tolerance per step: {DEFAULT_PARITY_TOLERANCES.floor:g} "
                     f"relative, or {DEFAULT_PARITY_TOLERANCES.envelope_factor:g}x the drift of "
                     f"a float64 run from nudged weights where training is chaotic)")
    parts.append("")
    for v in run.variants:
        parts.append(f"== {v.variant}  input {fmt_shape(v.input_shape)}, {v.batch}")
        if v.narrowed:
            parts.append(f"  the second input size, on the variant {v.narrowed} (crosscheck/narrow.py)")
        parts.append(variant_table(v))
        parts += [framework_line(f) for f in v.frameworks] + skipped_lines(v) + pair_lines(v) + [""]
        if v.gradients:
            parts += ["backward (train mode, shared dropout masks, mean softmax cross-entropy):",
                      gradient_table(v)]
            parts += [gradient_line(g) for g in v.gradients] + [dropout_line(d) for d in v.dropout]
            parts += [""]
        if v.steps:
            parts += [f"optimizer steps ({STEPS}, same batch and masks, labels shifted by a class "
                      f"per step; {probe_text(v.steps[0])}):", step_table(v)]
            if v.steps_narrowed:
                parts.insert(-1, f"  on the variant {v.steps_narrowed} (crosscheck/narrow.py)")
            parts += [step_line(s, backward_of(v, s.framework)) for s in v.steps] + [""]
        if v.distributed:
            parts += [f"data-parallel steps ({STEPS}, dropout off, the batch split over the "
                      f"workers; the step check's probe settings):", distributed_table(v)]
            if v.steps_narrowed:
                parts.insert(-1, f"  on the variant {v.steps_narrowed} (crosscheck/narrow.py)")
            parts += [distributed_line(d) for d in v.distributed] + [""]
        if v.fast_paths:
            parts += ["fast paths (the sessions 'alexnet bench' times, float32, dropout off):",
                      fast_path_table(v)]
            parts += [fast_path_line(f) for f in v.fast_paths] + [""]
        if v.training:
            parts += [f"training parity ({len(v.training[0].reference)} steps):", training_table(v)]
            parts += [training_line(t) for t in v.training] + [""]
    parts.append(summary(run))
    return "\n".join(parts) + "\n"


def markdown(run: CrosscheckRun) -> str:
    tol = run.tolerances
    parts = ["# Crosscheck report", "",
             f"Settings: `{json.dumps(run.settings)}`", "",
             f"Tolerances: relative L2 <= {tol.rel_l2:.0e}, normalized max <= {tol.norm_max:.0e} "
             f"against the float64 reference; x{tol.pairwise_factor:g} between frameworks.", ""]
    for v in run.variants:
        parts += [f"## {v.variant}", "", f"Input {fmt_shape(v.input_shape)}, {v.batch}.", ""]
        if v.narrowed:
            parts += [f"The second input size, on the variant {v.narrowed} (`crosscheck/narrow.py`).", ""]
        parts += [variant_table(v, "markdown")]
        parts += [f"- {line}" for line in (framework_line(f) for f in v.frameworks)]
        parts += [f"- {line}" for line in skipped_lines(v) + pair_lines(v)] + [""]
        if v.gradients:
            parts += ["### backward", "", gradient_table(v, "markdown")]
            parts += [f"- {gradient_line(g)}" for g in v.gradients]
            parts += [f"- {dropout_line(d)}" for d in v.dropout] + [""]
        if v.steps:
            parts += ["### optimizer steps", "", f"Probe settings: {probe_text(v.steps[0])}.", ""]
            if v.steps_narrowed:
                parts += [f"On the variant {v.steps_narrowed} (`crosscheck/narrow.py`).", ""]
            parts += [step_table(v, "markdown")]
            parts += [f"- {step_line(s, backward_of(v, s.framework))}" for s in v.steps] + [""]
        if v.distributed:
            parts += ["### data-parallel steps", "", distributed_table(v, "markdown")]
            parts += [f"- {distributed_line(d)}" for d in v.distributed] + [""]
        if v.fast_paths:
            parts += ["### fast paths", "", fast_path_table(v, "markdown")]
            parts += [f"- {fast_path_line(f)}" for f in v.fast_paths] + [""]
        if v.training:
            parts += ["### training parity", "", training_table(v, "markdown")]
            parts += [f"- {training_line(t)}" for t in v.training] + [""]
    parts += [f"**{summary(run)}**", ""]
    return "\n".join(parts)


def to_json(run: CrosscheckRun) -> str:
    def clean(obj):
        if isinstance(obj, float) and not math.isfinite(obj):
            return str(obj)
        if isinstance(obj, dict):
            return {k: clean(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [clean(v) for v in obj]
        return obj

    data = {"summary": summary(run), "exit_code": run.exit_code, "settings": run.settings,
            "tolerances": asdict(run.tolerances), "environment_errors": run.environment_errors,
            "variants": [asdict(v) for v in run.variants]}
    for v, vd in zip(run.variants, data["variants"]):
        for f, fd in zip(v.frameworks, vd["frameworks"]):
            fd["first_divergence"] = f.failed_layer
        for g, gd in zip(v.gradients, vd["gradients"]):
            gd["blamed_layer"] = g.blamed.layer if g.blamed else None
        for s, sd in zip(v.steps, vd["steps"]):
            first = s.first_failure
            sd["first_failure"] = asdict(first) if first else None
        for t, td in zip(v.training, vd["training"]):
            td["first_failure_step"], td["worst_rel_diff"] = t.first_failure, t.worst
    return json.dumps(clean(data), indent=2) + "\n"


def prepare_report_dir(directory: Path, overwrite: bool) -> None:
    """Create ``directory``; FileExistsError if a report (JSON, markdown, PNG) is already
    there and not ``overwrite``, OSError with a plain message if it cannot be written."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(f"cannot create report directory {directory}: {exc.strerror}") from None
    if not os.access(directory, os.W_OK):
        raise OSError(f"report directory {directory} is not writable")
    existing = [str(directory / name) for name in REPORT_FILES if (directory / name).exists()]
    existing += [str(p) for p in sorted(directory.glob("errors-*.png"))]
    if existing and not overwrite:
        raise FileExistsError(f"{', '.join(existing)} already exist(s); pass --force to overwrite")


def write_reports(run: CrosscheckRun, directory: Path, *, overwrite: bool) -> list[Path]:
    """Write crosscheck.json and crosscheck.md into ``directory``, atomically."""
    prepare_report_dir(directory, overwrite)
    paths = [directory / name for name in REPORT_FILES]
    for path, text in zip(paths, (to_json(run), markdown(run))):
        atomic_write_bytes(path, text.encode(), overwrite=overwrite)
    from crosscheck.plot import write_plots  # matplotlib only when pictures are asked for

    return paths + write_plots(run, directory, overwrite=overwrite)

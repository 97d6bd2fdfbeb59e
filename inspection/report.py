"""What ``alexnet inspect`` prints and writes: the verdict, the layer table, inspect.json,
inspect.md and a picture of each layer's error with the fingerprints marked on it."""

from __future__ import annotations

import io
import json
import math
import textwrap
from pathlib import Path

from common.weights import atomic_write_bytes
from crosscheck.causes.base import MATCH
from inspection.fingerprint import LayerCheck
from inspection.flatten import ORDERS
from inspection.run import Inspection

REPORT_FILES = ("inspect.json", "inspect.md", "inspect.png")


def _sci(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.1e}"


def verdict(r: Inspection) -> str:
    """One sentence: the variant the model computes, and each difference with its evidence."""
    name = r.candidate.variant.name
    if r.exact:
        return f"computes `{name}` exactly (every layer within float32 precision of float64)"
    parts = []
    same: dict[str, list] = {}  # one convention at several layers is said once
    for c in r.failing():
        f = c.finding
        if f is not None and f.matched:
            same.setdefault(_unnamed(f.text, f.layer), []).append(f)
    parts += [text for text, cost in zip(_differences(r), (d.cost for d in r.candidate.differences))
              if cost >= 1.0]
    for text, found in same.items():
        layers = " and ".join(f.layer for f in found)
        evidence = found[0].evidence() if len(found) == 1 else _evidence_of_several(found)
        said = text.replace("<layer>", layers) if "<layer>" in text else f"{layers}: {text}"
        parts.append(f"{said} ({evidence})")
    for c in r.failing():
        f = c.finding
        if f is None:
            parts.append(f"{c.layer} differs (rel L2 {_sci(c.error.rel_l2)}; no known convention "
                         f"matches)")
        elif f.matched:
            continue
        else:
            parts.append(f"{c.layer} differs (rel L2 {_sci(c.error.rel_l2)}); no known convention "
                         f"matches to float32 precision ({f.evidence()}: {f.text})")
    head = f"computes `{name}`" if r.candidate.same_function else f"is closest to `{name}`"
    return f"{head}, except: " + "; ".join(parts)


def _differences(r: Inspection) -> list[str]:
    """The identification's differences, in words; a first dense layer's width that follows
    from a layer whose output shape the checks found changed says so."""
    reshaped = [c.finding.layer for c in r.failing()
                if c.finding is not None and c.finding.matched and math.isinf(c.finding.spec_error)]
    said = []
    for d in r.candidate.differences:
        if reshaped and " takes " in d.text:
            said.append(d.text.split(":")[0] + f" (it follows from {reshaped[0]}'s output shape)")
        else:
            said.append(d.text)
    return said


def _evidence_of_several(found: list) -> str:
    """The evidence of one convention at several layers, each figure once per layer."""
    said = (f"matched to {' and '.join(f'{f.error:.1e}' for f in found)}; the spec gives "
            f"{' and '.join(f'{f.spec_error:.2g}' for f in found)}")
    runner = found[0].next_best
    if runner is not None:
        said += (f"; equally matched at {found[0].layer}: {runner[0]}" if runner[1] <= MATCH else
                 f"; next best at {found[0].layer}, {runner[1]:.2g}: {runner[0]}")
    return said


def _unnamed(text: str, layer: str) -> str:
    """A finding's text without its layer's name: "norm1: LRN alpha ..." -> "LRN alpha ..."."""
    return text.removeprefix(f"{layer}: ").replace(layer, "<layer>")


def terminal(r: Inspection, quiet: bool = False) -> str:
    lines = [f"{r.target}: {r.description} ({r.framework})"]
    if quiet:
        return f"{lines[0]}: {verdict(r)}\n"
    c, v = r.candidate, r.variant
    shape = "x".join(map(str, v.input_shape))
    lines.append(f"variant: {c.variant.name} at {shape}, {v.num_classes} classes"
                 + ("" if not c.differences else ": " + "; ".join(_differences(r))))
    if r.others:
        lines.append("also tried: " + ", ".join(f"{n} ({k} layer(s) differ)" for n, k in r.others))
    lines.append(("weights: the model's own, read out in canonical form" if r.own_weights else
                  f"weights: {c.variant.name}'s seeded canonical weights, put in by layer order ("
                  + ", ".join(f"{s}->{m.name}" for s, m in c.pairs.items()) + ")"))
    lines.append(f"flatten: {ORDERS[r.flatten_order]}; {r.flatten_how}")
    lines += [f"note: {n}" for n in r.notes]
    width = max([len(k.observed_as) for k in r.checks] + [11])
    spec_width = max([len("+".join(k.segment)) for k in r.checks] + [10])
    lines.append(f"  {'spec layer':<{spec_width}} {'model layer':<{width}} {'shape':<14} "
                 f"{'rel L2':>8} {'norm max':>8}  status")
    for k in r.checks:
        spec = "+".join(k.segment)
        lines.append(f"  {spec:<{spec_width}} {k.observed_as:<{width}} {'x'.join(map(str, k.shape)):<14} "
                     f"{_sci(k.error.rel_l2):>8} {_sci(k.error.norm_max):>8}  "
                     f"{'ok' if k.passed else 'DIFFERS' if k.checked else 'not checked'}")
    for k in r.unchecked():
        lines.append(f"not checked: {k.layer}: {k.error.problem}")
    if r.unmatched:
        lines.append("not in the spec (not checked): " + ", ".join(r.unmatched))
    unseen = [l.name for l in v.layers if all(l.name not in k.segment for k in r.checks)]
    if unseen:
        lines.append("spec layers after the last one observed (not checked): " + ", ".join(unseen))
    lines.append(f"verdict: {verdict(r)}")
    lines.append(f"({r.seconds:.1f}s)")
    return "\n".join(lines) + "\n"


def _check_json(k: LayerCheck) -> dict:
    f = k.finding
    return {"layer": k.layer, "segment": list(k.segment), "model_layer": k.observed_as,
            "shape": list(k.shape), "rel_l2": _num(k.error.rel_l2),
            "norm_max": _num(k.error.norm_max), "problem": k.error.problem, "passed": k.passed,
            "finding": None if f is None else {
                "layer": f.layer, "convention": f.text, "error": _num(f.error),
                "spec_error": _num(f.spec_error), "matched": f.matched, "from_shapes": f.from_shapes,
                "next_best": None if f.next_best is None else {"convention": f.next_best[0],
                                                                "error": _num(f.next_best[1])}}}


def _num(value: float):
    return None if not math.isfinite(value) else value


def to_json(r: Inspection) -> str:
    c = r.candidate
    return json.dumps({
        "target": r.target, "framework": r.framework, "model": r.description,
        "variant": c.variant.name, "input_shape": list(r.variant.input_shape),
        "num_classes": r.variant.num_classes, "exact": r.exact, "verdict": verdict(r),
        "differences": [{"layer": d.layer, "text": d.text, "cost": d.cost} for d in c.differences],
        "pairs": {s: m.name for s, m in c.pairs.items()}, "own_weights": r.own_weights,
        "flatten": {"order": r.flatten_order, "how": r.flatten_how}, "notes": r.notes,
        "layers": [_check_json(k) for k in r.checks], "not_in_spec": r.unmatched,
        "also_tried": [{"variant": n, "failing_layers": k} for n, k in r.others],
        "seconds": r.seconds}, indent=2) + "\n"


def markdown(r: Inspection) -> str:
    lines = [f"# alexnet inspect: `{r.target}`", "", f"**Verdict:** {verdict(r)}", "",
             f"- model: {r.description} ({r.framework})",
             f"- variant: `{r.candidate.variant.name}` at {'x'.join(map(str, r.variant.input_shape))}",
             f"- flatten: {ORDERS[r.flatten_order]} ({r.flatten_how})", "",
             "| spec layer | model layer | shape | rel L2 | norm max | status | fingerprint |",
             "|---|---|---|---|---|---|---|"]
    for k in r.checks:
        f = k.finding
        said = "" if f is None else f"{f.text} ({f.evidence()})"
        lines.append(f"| {'+'.join(k.segment)} | `{k.observed_as}` | {'x'.join(map(str, k.shape))} | "
                     f"{_sci(k.error.rel_l2)} | {_sci(k.error.norm_max)} | "
                     f"{'ok' if k.passed else 'differs'} | {said} |")
    return "\n".join(lines) + "\n"


def figure(r: Inspection) -> bytes:
    """Each observed layer's error against float64 on a log scale, with the tolerance and the
    fingerprinted layers named."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [k.layer for k in r.checks]
    errors = [min(max(k.error.rel_l2, 1e-12), 10.0) if math.isfinite(k.error.rel_l2) else 10.0
              for k in r.checks]
    fig, ax = plt.subplots(figsize=(11, 4))
    colours = ["tab:green" if k.passed else "tab:red" if k.checked else "tab:gray" for k in r.checks]
    ax.bar(names, errors, color=colours)
    ax.set_yscale("log")
    ax.axhline(1e-5, color="black", linestyle="--", label="tolerance")
    found = [(i, k.finding) for i, k in enumerate(r.checks) if k.finding is not None]
    for n, (i, finding) in enumerate(found, 1):
        ax.annotate(f"[{n}]", (i, errors[i]), ha="center", fontsize=8, xytext=(0, 3),
                    textcoords="offset points")
    ax.set_ylabel("rel L2 vs float64\n(each layer in isolation)")
    ax.set_title(f"{Path(r.target.split(':')[0]).name}:{r.target.split(':')[-1]} as "
                 f"{r.candidate.variant.name}", fontsize=10)
    ax.tick_params(axis="x", rotation=45)
    ax.legend()
    legend = [textwrap.shorten(f"[{n}] {f.text}", 150) for n, (_, f) in enumerate(found, 1)]
    fig.text(0.01, 0.01, "\n".join(legend[:8]), fontsize=7, va="bottom")
    fig.tight_layout(rect=(0, 0.04 * min(len(legend), 8), 1, 1))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def prepare(directory: Path, overwrite: bool) -> None:
    """Create ``directory``; FileExistsError where a report is there and not ``overwrite``."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(f"cannot create report directory {directory}: {exc.strerror}") from None
    existing = [str(directory / n) for n in REPORT_FILES if (directory / n).exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{', '.join(existing)} already exist(s); pass --force to overwrite")


def write(r: Inspection, directory: Path, *, overwrite: bool) -> list[Path]:
    """inspect.json, inspect.md and inspect.png into ``directory``, atomically."""
    prepare(directory, overwrite)
    paths = [directory / n for n in REPORT_FILES]
    for path, data in zip(paths, (to_json(r).encode(), markdown(r).encode(), figure(r))):
        atomic_write_bytes(path, data, overwrite=overwrite)
    return paths

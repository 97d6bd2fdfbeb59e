"""A verdict for every failure: what a framework raised, turned into a reason and a layer.

A check that raises (a weight the model refuses, a layer whose input no longer fits) is
that framework's failure, never a traceback. The verdict names the first layer involved:
the first layer whose real output shape, as the framework's own model computes it
(``backend.trace_shapes``), differs from the spec's, with both shapes; else the layer
that raised while tracing; else, for a refused weight, its key and both shapes; else the
framework's own message alone. Every verdict ends with the framework's own words.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Callable, Optional

from common.shape_table import fmt_shape
from common.conventions import canonical_shape_from_keras, keras_shape
from common.shapes import infer, param_shapes
from common.spec import Variant
from impls.loading import WeightMismatch

#: the framework's message is quoted up to this many characters, cut at a word
QUOTE = 400


@dataclass(frozen=True)
class Verdict:
    """Why a framework failed a check it could not finish: ``layer`` is the first layer
    involved (None when nothing points at one), ``text`` one paragraph."""

    layer: Optional[str]
    text: str
    cause: Optional[str] = None


def quote(exc: BaseException) -> str:
    """The framework's own message, on one line, shortened at a word boundary."""
    message = " ".join(f"{type(exc).__name__}: {exc}".split())
    return textwrap.shorten(message, QUOTE, placeholder=" [...]")


def _cause(name: str, *args) -> Optional[str]:
    """The text of the cause ``crosscheck.hypotheses.<name>(*args)`` confirms, if any. A
    hypothesis that fails to run confirms nothing: it must never cost the verdict."""
    from crosscheck import hypotheses

    try:
        cause = getattr(hypotheses, name)(*args)
    except Exception:
        return None
    return None if cause is None else cause.text


def shape_verdict(backend, variant: Variant) -> Optional[Verdict]:
    """The first layer whose real output shape differs from the spec's, or that raised."""
    trace = getattr(backend, "trace_shapes", None)
    if trace is None:  # a forward-only witness: no model of its own to trace
        return None
    try:
        traced = trace(variant)
    except Exception:  # the trace itself failed: fall back to the message
        return None
    spec = {info.name: info for info in infer(variant)}
    for name, got in traced:
        info = spec.get(name)
        if isinstance(got, str):
            where = f"at {name} ({info.kind})" if info else "while building the model"
            return Verdict(name if info else None, f"the model raised {where}: {got}")
        if info is None:
            return Verdict(name, f"the model has a layer {name!r} the spec does not")
        if got != info.out_shape:
            text = (f"{name} ({info.kind}) outputs {fmt_shape(got)} where the spec has "
                    f"{fmt_shape(info.out_shape)} (input {fmt_shape(info.in_shape)})")
            return Verdict(name, text, _cause("shape_cause", variant, name, info.in_shape, got))
    missing = [name for name in spec if name not in dict(traced)]
    if missing and len(traced) == len([n for n, _ in traced if n in spec]):
        return Verdict(missing[0], f"the model has no layer {missing[0]!r} ({spec[missing[0]].kind})")
    return None


def weight_verdict(backend, variant: Variant, exc: WeightMismatch) -> Verdict:
    """A refused weight: its key and both shapes, and which side is off. Shapes are in the
    framework's own layout; the spec's is put in that layout to tell whether the model's
    parameter or the array given to it differs from the spec."""
    layer = exc.key.rsplit(".", 1)[0]
    spec = param_shapes(variant).get(exc.key)
    native, canonical = ((keras_shape, canonical_shape_from_keras) if backend.name == "tensorflow"
                         else (tuple, tuple))
    if spec is None:
        return Verdict(layer, f"{exc}; the spec has no parameter {exc.key!r}")
    if exc.model_shape is None or exc.model_shape != native(spec):
        side = (f"the model's own parameter differs from the spec's {fmt_shape(spec)}"
                if exc.model_shape is not None else "the model lacks a parameter the spec has")
        got = None if exc.model_shape is None else canonical(exc.model_shape)
        cause = _cause("weight_shape_cause", variant, exc.key, spec, got)
    else:
        side = "the model is right; the array loaded into it is not"
        cause = _cause("weight_shape_cause", variant, exc.key, native(spec), exc.given_shape)
    return Verdict(layer, f"{exc} ({side})", cause)


def explain(backend, variant: Variant, stage: str, exc: BaseException) -> Verdict:
    """The verdict on ``exc``, raised by ``backend`` while ``stage`` ('building and loading
    the model', 'running the forward pass', ...)."""
    verdict = shape_verdict(backend, variant)
    if verdict is None and isinstance(exc, WeightMismatch):
        verdict = weight_verdict(backend, variant, exc)
    head = f"{backend.name} raised while {stage}"
    if verdict is None:
        return Verdict(None, f"{head}; no layer's shape differs from the spec's. {quote(exc)}")
    cause = f"; cause confirmed: {verdict.cause}" if verdict.cause else ""
    return Verdict(verdict.layer, f"{head}: {verdict.text}{cause}. The framework said: {quote(exc)}",
                   verdict.cause)


def guarded(backend, variant: Variant, stage: str, work: Callable[[], object],
            on_failure: Callable[[Verdict], object]):
    """``work()``, or, if it raises, ``on_failure`` of the verdict on what it raised."""
    try:
        return work()
    except Exception as exc:  # any framework error becomes that framework's failure
        return on_failure(explain(backend, variant, stage, exc))

"""Each observed layer checked on its own, and where it diverges, the convention it computes.

A spec layer the model was seen to output is checked against the float64 reference applied
to the model's own output of the previous observed layer, so a divergence upstream never
blames the layers after it (the forward check's layer isolation). Spec layers nobody saw
(a functional ReLU) are applied on the way, as one segment. Where a segment diverges, every
known porting convention of its layers (the crosscheck's cause hypotheses,
``crosscheck.causes``) is recomputed in float64 from the same input and ranked by how near
the observed output it comes: the best is the fingerprint when it matches to float32
precision, and the next best is kept as the evidence that it stood out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from common import reference
from common.spec import Layer, Variant
from common.weights import Weights
from crosscheck.causes.base import EVIDENCE, MATCH, SEPARATION, Blamed, differing, rel_l2
from crosscheck.causes.shapes import SHAPE_KEEPING, shape_cause
from crosscheck.compare import DEFAULT_TOLERANCES, LayerError, Tolerances, layer_error
from crosscheck.hypotheses import ELEMENTS, HYPOTHESES, placement_hypotheses
from inspection.align import Observation


@dataclass(frozen=True)
class Finding:
    """The convention a divergent segment computes: ``text`` and ``error`` (rel L2 of the
    observed output against it), ``spec_error`` (against the spec's output), ``matched``
    (to float32 precision, and far nearer than the spec), the runner-up."""

    layer: str
    text: str
    error: float
    spec_error: float
    matched: bool
    next_best: Optional[tuple[str, float]] = None
    from_shapes: bool = False

    def evidence(self) -> str:
        if self.from_shapes:
            return "by the reference's shape arithmetic; no recomputed output matched the values"
        said = f"matched to {self.error:.1e}" if self.matched else f"closest, at {self.error:.2g}"
        said += (f"; the spec's {self.layer} has another shape" if math.isinf(self.spec_error)
                 else f"; the spec's {self.layer} gives {self.spec_error:.2g}")
        if self.next_best is not None:
            text, error = self.next_best
            said += (f"; equally matched: {text}" if error <= MATCH
                     else f"; next best {error:.2g}: {text}")
        return said


@dataclass(frozen=True)
class LayerCheck:
    """One observed spec layer: ``segment`` the spec layers checked together (the unobserved
    ones before it, then it), ``observed_as`` the model's own name for the output."""

    layer: str
    segment: tuple[str, ...]
    observed_as: str
    shape: tuple[int, ...]
    error: LayerError
    passed: bool
    finding: Optional[Finding] = None
    #: False where the spec's layer cannot take the model's input at all (a width changed
    #: upstream, so the model kept its own weights there): not judged
    checked: bool = True


def _apply(layers: Sequence[Layer], x: np.ndarray, weights: Weights) -> list[np.ndarray]:
    """Each layer's float64 output in turn from ``x`` (its input first)."""
    outs = [np.asarray(x, np.float64)]
    for layer in layers:
        outs.append(reference.apply(layer, outs[-1], weights))
    return outs


def check_layers(variant: Variant, weights: Weights, x: np.ndarray, matched: dict[str, Observation],
                 tolerances: Tolerances = DEFAULT_TOLERANCES) -> list[LayerCheck]:
    """Every observed spec layer, checked in isolation (see the module docstring)."""
    checks: list[LayerCheck] = []
    start, previous = 0, np.asarray(x, np.float64)
    for index, layer in enumerate(variant.layers):
        obs = matched.get(layer.name)
        if obs is None:
            continue
        segment = variant.layers[start:index + 1]
        try:
            outs = _apply(segment, previous, weights)
        except ValueError:  # the observed input does not fit the spec's layer at all
            got = obs.canonical()
            checks.append(LayerCheck(layer.name, tuple(l.name for l in segment), obs.label,
                                     tuple(got.shape[1:]), LayerError(np.inf, np.inf, np.inf,
                                     f"the spec's {segment[0].name} cannot take the model's "
                                     f"{'x'.join(map(str, previous.shape[1:]))} input (the model "
                                     f"keeps its own weights there)"), False,
                                     checked=False))
            start, previous = index + 1, got.astype(np.float64)
            continue
        got = obs.canonical(outs[-1].shape[1:])
        if got is None:
            got = obs.canonical()
        error = layer_error(got, outs[-1])
        passed = error.passes(tolerances)
        finding = None if passed else fingerprint(variant, weights, segment, outs, got,
                                                   error.rel_l2)
        checks.append(LayerCheck(layer.name, tuple(l.name for l in segment), obs.label,
                                 tuple(got.shape[1:]), error, passed, finding))
        start, previous = index + 1, got.astype(np.float64)
    return checks


def _images(output: np.ndarray) -> int:
    return max(1, -(-ELEMENTS // max(output[0].size, 1)))


def ranked(variant: Variant, weights: Weights, segment: Sequence[Layer], outs: Sequence[np.ndarray],
           observed: np.ndarray) -> list[tuple[float, str, str, np.ndarray]]:
    """Every hypothesis of every layer of the segment, pushed through the layers after it in
    the segment: (rel L2 against ``observed``, text, the layer, its output), nearest first."""
    found = []
    # the observed (last) layer's own conventions first, then those of the unobserved layers
    # before it, then dropout placed at a neighbour: among equal matches the first stays
    order = [(k, HYPOTHESES[type(layer)]) for k, layer in reversed(list(enumerate(segment)))]
    order += [(k, placement_hypotheses) for k, _ in reversed(list(enumerate(segment)))]
    for k, family in order:
        layer, x, tail = segment[k], outs[k], segment[k + 1:]
        blamed = Blamed(variant, layer, weights, x, observed, outs[k + 1])
        hypotheses = family(blamed)
        with np.errstate(all="ignore"):
            for text, output in hypotheses:
                if output is None:
                    continue
                try:
                    for later in tail:
                        output = reference.apply(later, output, weights)
                except ValueError:
                    continue
                if output.shape == observed.shape:
                    found.append((rel_l2(observed, output), text, layer.name, output))
    found.sort(key=lambda item: item[0])  # stable: equals stay in the order proposed
    return found


def fingerprint(variant: Variant, weights: Weights, segment: Sequence[Layer],
                outs: Sequence[np.ndarray], got: np.ndarray,
                batch_error: float = math.nan) -> Optional[Finding]:
    """The convention the observed ``got`` computes over ``segment`` (``outs``: the reference's
    input and outputs of the segment), on the first image (a few where outputs are small).
    ``batch_error``: the spec's error on the whole batch, said as the spec's figure (the
    layer table's), where it is known."""
    images = _images(got)
    observed = np.asarray(got[:images], np.float64)
    if not np.all(np.isfinite(observed)):
        return None
    outs = [o[:images] for o in outs]
    expected = outs[-1]
    spec_error = rel_l2(observed, expected)
    found = ranked(variant, weights, segment, outs, observed)
    # one text per convention (a fit and its rounding may propose the same), the likelier
    # (proposed first) where two match equally
    seen: set[str] = set()
    unique = [item for item in found if not (item[1] in seen or seen.add(item[1]))]
    if unique:
        error, text, layer, output = unique[0]
        matched = (error <= MATCH and error * SEPARATION <= spec_error
                   and differing(output, expected) >= EVIDENCE)
        runner = (unique[1][1], unique[1][0]) if len(unique) > 1 else None
        if matched or observed.shape == expected.shape:
            said = spec_error if math.isnan(batch_error) else batch_error
            return Finding(layer, text, error, said, matched, runner)
    # another shape and no recomputed output of it: the shape arithmetic explains it
    last = [l for l in segment if not isinstance(l, SHAPE_KEEPING)] or list(segment)
    blamed = last[-1]
    in_shape = outs[list(segment).index(blamed)].shape[1:]
    cause = shape_cause(variant, blamed.name, in_shape, got.shape[1:])
    if cause is not None:
        return Finding(blamed.name, cause.text, 0.0, np.inf, True, from_shapes=True)
    return None

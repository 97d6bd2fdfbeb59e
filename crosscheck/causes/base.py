"""What a confirmed cause is, and how a hypothesis is judged against the observed output.

A hypothesis is a port with one known bug: the float64 output it computes from the
same input the framework's layer got. It is confirmed when the framework's output
matches it to float32 accuracy and the match is far closer than the correct reference.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Iterable, Optional

import numpy as np

from common import reference
from common.spec import Layer, ReLU, Variant

#: a port with the bug matches its recomputed float64 output to float32 accuracy: the
#: forward check's own tolerance (float32 layers stay near 1e-6 against float64)
MATCH = 1e-5
#: and the hypothesis must explain the output this many times better than the correct
#: reference does, so that a bug too small to tell apart is never "confirmed"
SEPARATION = 10.0
#: and its output must differ from the correct one in at least this many elements: one
#: logit that is 0 where it should be negative is no evidence of a fused ReLU
EVIDENCE = 4


@dataclass(frozen=True)
class Cause:
    """A confirmed porting bug and its evidence. ``hypothesis_error``: rel L2 of the
    observed output against the output of a port with this bug; ``observed_error``: rel
    L2 of the observed output against the correct reference (both on the same images;
    inf where the shapes differ). ``from_shapes``: confirmed by shape arithmetic alone
    (no output to compare: both errors are then 0 and inf)."""

    text: str
    hypothesis_error: float
    observed_error: float
    layer: str = ""
    from_shapes: bool = False

    def evidence(self) -> str:
        if self.from_shapes:
            return "the reference's shape arithmetic with this change gives exactly the observed shape"
        against = ("the correct output has another shape" if math.isinf(self.observed_error)
                   else f"against the observed {self.observed_error:.1e}")
        return f"hypothesis rel L2 {self.hypothesis_error:.1e} {against}"


def shape_cause_of(text: str, layer: str) -> Cause:
    """A cause confirmed by shapes alone."""
    return Cause(text, 0.0, math.inf, layer, from_shapes=True)


def rel_l2(got: np.ndarray, expected: np.ndarray) -> float:
    """||got - expected|| / ||expected|| (inf where the shapes differ)."""
    if got.shape != expected.shape:
        return math.inf
    norm = float(np.linalg.norm(expected))
    diff = float(np.linalg.norm(got - expected))
    return diff / norm if norm else (0.0 if diff == 0 else math.inf)


@dataclass(frozen=True)
class Blamed:
    """A blamed layer and what the check saw there, float64, on the images hypotheses use.
    ``x``: the input the framework's layer got; ``observed``: its output; ``expected``:
    the correct reference output; ``train``: the backward check's train mode (dropout
    applies the shared masks), else eval mode."""

    variant: Variant
    layer: Layer
    weights: dict[str, np.ndarray]
    x: np.ndarray
    observed: np.ndarray
    expected: np.ndarray
    train: bool = False

    @property
    def name(self) -> str:
        return self.layer.name

    @property
    def index(self) -> int:
        return [layer.name for layer in self.variant.layers].index(self.layer.name)

    @functools.cached_property
    def weight(self) -> np.ndarray:
        """This layer's weight, float64 (cast once: fc6's is 300 MB so)."""
        return np.asarray(self.weights[f"{self.name}.weight"], dtype=np.float64)

    @functools.cached_property
    def bias(self) -> np.ndarray:
        return np.asarray(self.weights[f"{self.name}.bias"], dtype=np.float64)


#: (the bug, the output a port with it computes), lazily: a generator computes each only
#: when asked, so the search stops paying at the first confirmation
Hypotheses = Iterable[tuple[str, Optional[np.ndarray]]]


def judge(blamed: Blamed, hypotheses: Hypotheses) -> Optional[Cause]:
    """The first hypothesis whose output the observed one matches (see MATCH, SEPARATION,
    EVIDENCE); None at once where the observed output is the correct one."""
    observed_error = rel_l2(blamed.observed, blamed.expected)
    if observed_error <= MATCH:
        return None
    # a refit constant far off (an LRN beta of 40 on garbage) may overflow: its output is
    # inf or NaN, which matches nothing, and says nothing worth a warning
    with np.errstate(all="ignore"):
        for text, output in hypotheses:
            if output is None or output.shape != blamed.observed.shape:
                continue
            error = rel_l2(blamed.observed, output)
            if (error <= MATCH and error * SEPARATION <= observed_error
                    and differing(output, blamed.expected) >= EVIDENCE):
                return Cause(text, error, observed_error, blamed.name)
    return None


def differing(output: np.ndarray, expected: np.ndarray) -> int:
    """How many elements of ``output`` differ from ``expected`` beyond float32 round-off
    (all of them where the shapes differ)."""
    if output.shape != expected.shape:
        return output.size
    scale = float(np.max(np.abs(expected), initial=0.0))
    return int(np.count_nonzero(np.abs(output - expected) > 1e-6 * scale))


def keep_mask_fit(base: np.ndarray, observed: np.ndarray) -> Optional[tuple[np.ndarray, float, float]]:
    """Fit ``observed = base * keep / (1 - p)`` with an unknown random keep-mask (what
    dropout does): (the fitted output, the scale 1/(1-p), the kept fraction), or None when
    the observed output is not of that form (nothing dropped, everything dropped, or a
    scale of 1: a mask that follows the sign, as a ReLU does, is no dropout)."""
    if base.shape != observed.shape:
        return None
    live = np.abs(base) > 1e-6 * float(np.max(np.abs(base), initial=0.0))
    # kept values are scaled up, dropped ones are 0 (or, solved for, round-off from 0)
    kept = live & (np.abs(observed) > 0.5 * np.abs(base))
    if not kept.any() or kept.sum() == live.sum():
        return None
    scale = float(np.median(observed[kept] / base[kept]))
    if not 1.001 < scale < 100.0:
        return None
    return np.where(kept, base * scale, 0.0), scale, float(kept.sum() / live.sum())


def fmt(value: float) -> str:
    """A spec number as people write it: 1, 0.75, 0.0001."""
    return f"{value:.4g}"


def out_shape(layer: Layer, in_shape: tuple[int, ...]) -> tuple[int, ...]:
    """``layer``'s per-image output shape on ``in_shape``, by the reference's own shape
    arithmetic: the input shape of a layer after it in a two-layer network."""
    network = Variant("one-layer", (layer, ReLU("_next")), tuple(in_shape), 1, "hypothesis")
    return reference.input_shapes(network)["_next"]

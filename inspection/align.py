"""Line a model's captured layer outputs up with the spec's layers.

Every captured call gives up to two observed arrays, its input and its output, in the order
they ran; equal neighbours are one observation. The observations are matched to spec layers
in order (a monotone alignment, by dynamic programming) on: the layer kind (a weighted layer
only to the spec layer it is paired with, or to the ReLU or softmax right after it, which
frameworks fuse in), the shape (in the framework's layout or the other one, for a model that
transposes), and, among equals, the values nearest the reference's. Observations of nothing
in the spec (a padding layer, a transpose) stay unmatched; spec layers nobody observed (a
functional ReLU) are checked together with the next observed one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from common.spec import (
    LRN, AdaptiveAvgPool2d, Conv2d, Dense, Dropout, Flatten, Layer, MaxPool2d, ReLU, Softmax, Variant,
)
from impls.foreign import Captured

#: spec layer type -> the observed kind that is that layer
KIND_OF = {Conv2d: "conv", Dense: "dense", ReLU: "relu", LRN: "lrn", MaxPool2d: "maxpool",
           AdaptiveAvgPool2d: "avgpool", Flatten: "flatten", Dropout: "dropout", Softmax: "softmax"}
#: (observed kind, spec type) pairs that are a convention rather than another layer: a pool of
#: the other kind
SWAPPED = {("avgpool", MaxPool2d), ("maxpool", AdaptiveAvgPool2d)}
#: scores: the kind itself, a fused activation, a swapped pool, a layer of unknown kind
EXACT, FUSED, SWAP, UNKNOWN = 3.0, 2.0, 1.0, 0.5
#: how an observation that is a layer's input is labelled
INPUT_LABEL = " (its input)"
#: the same shape, and values near the reference's (relative L2 under CLOSE)
SAME_SHAPE, NEAR, CLOSE = 1.0, 2.0, 1e-3


@dataclass
class Observation:
    """An array the forward pass produced: ``label`` says where (a layer's output, or its
    input), ``layer`` names the weighted model layer whose output it is."""

    label: str
    kind: str
    array: np.ndarray
    channels_last: bool = False
    layer: Optional[str] = None

    def canonical(self, shape: Optional[tuple[int, ...]] = None) -> Optional[np.ndarray]:
        """The array NCHW (or (N, F)): in the framework's layout, or, where ``shape`` (per
        image) asks for it, the other one; None where neither has that shape."""
        a = self.array
        options = [a]
        if a.ndim == 4:
            options = [a.transpose(0, 3, 1, 2), a] if self.channels_last else [a, a.transpose(0, 3, 1, 2)]
        if shape is None:
            return options[0]
        return next((o for o in options if o.shape[1:] == tuple(shape)), None)


def observations(x: np.ndarray, captured: Sequence[Captured], weighted: set[str]) -> list[Observation]:
    """The input ``x`` (NCHW), then each captured call's input and output, equal neighbours
    merged (the more specific kind kept)."""
    found = [Observation("the input", "input", x)]
    for c in captured:
        items = []
        if c.inputs is not None:
            items.append(Observation(f"{c.name}{INPUT_LABEL}", "other", c.inputs, c.channels_last))
        items.append(Observation(c.name, c.kind, c.output, c.channels_last,
                                 c.name if c.name in weighted else None))
        for item in items:
            last = found[-1]
            if (last.canonical().shape == item.canonical().shape
                    and np.array_equal(last.canonical(), item.canonical())):
                if last.kind == "other" and item.kind != "other":
                    found[-1] = item
                continue
            found.append(item)
    return found


def _compat(obs: Observation, index: int, layers: Sequence[Layer], owner: dict[str, str],
            last: bool) -> Optional[float]:
    layer = layers[index]
    if obs.layer is not None:  # a weighted layer: its paired spec layer, or a fused activation
        paired = owner.get(obs.layer)
        if layer.name == paired:
            return EXACT
        if (isinstance(layer, (ReLU, Softmax)) and index > 0 and layers[index - 1].name == paired):
            return FUSED
        return UNKNOWN if last else None
    if obs.kind == KIND_OF[type(layer)]:
        return EXACT
    if (obs.kind, type(layer)) in SWAPPED:
        return SWAP
    if obs.kind in ("other", "input") or last:
        return UNKNOWN
    return None


def align(variant: Variant, obs: Sequence[Observation], expected: dict[str, np.ndarray],
          owner: dict[str, str]) -> dict[str, Observation]:
    """Spec layer name -> the observation that is its output. ``expected``: the reference's
    outputs (NCHW / (N, F)); ``owner``: weighted model layer -> its spec layer; ``obs[0]`` is
    the input and is not matched."""
    layers = variant.layers
    items = obs[1:]
    m, n = len(items), len(layers)
    score = np.full((m + 1, n + 1), 0.0)
    move = np.zeros((m + 1, n + 1), np.int8)  # 0: skip observation, 1: skip layer, 2: match

    def gain(i: int, j: int) -> Optional[float]:
        o, layer = items[i], layers[j]
        base = _compat(o, j, layers, owner, last=(i == m - 1 and j == n - 1))
        if base is None:
            return None
        want = expected[layer.name]
        got = o.canonical(want.shape[1:])
        if got is None:  # another shape: only where the kind says it is this layer
            return base - 2.0 if base >= FUSED else None
        diff = np.linalg.norm(got - want)
        near = NEAR if diff <= CLOSE * max(np.linalg.norm(want), 1e-300) else 0.0
        return base + SAME_SHAPE + near + 1e-3 * j  # ties: the later layer (a fused one's last)

    for i in range(1, m + 1):
        for j in range(1, n + 1):
            best, how = score[i - 1, j], 0
            if score[i, j - 1] > best:
                best, how = score[i, j - 1], 1
            g = gain(i - 1, j - 1)
            if g is not None and g > 0 and score[i - 1, j - 1] + g > best:
                best, how = score[i - 1, j - 1] + g, 2
            score[i, j], move[i, j] = best, how
    matched: dict[str, Observation] = {}
    i, j = m, n
    while i > 0 and j > 0:
        if move[i, j] == 2:
            matched[layers[j - 1].name] = items[i - 1]
            i, j = i - 1, j - 1
        elif move[i, j] == 1:
            j -= 1
        else:
            i -= 1
    _move_fused(layers, matched)
    return dict(sorted(matched.items(), key=lambda kv: [l.name for l in layers].index(kv[0])))


def _move_fused(layers: Sequence[Layer], matched: dict[str, Observation]) -> None:
    """A weighted layer's output matched to its spec layer where a ReLU follows unseen, but
    holding no negative value, is that ReLU's (a framework's activation='relu' fused in):
    with seeded weights and normal inputs a convolution or dense output always has negatives.
    Values cannot tell this where the model diverged upstream."""
    for index, layer in enumerate(layers[:-1]):
        after = layers[index + 1]
        obs = matched.get(layer.name)
        if (isinstance(layer, (Conv2d, Dense)) and isinstance(after, ReLU) and obs is not None
                and obs.layer is not None and after.name not in matched and obs.array.size
                and float(obs.array.min()) >= 0.0):
            matched[after.name] = matched.pop(layer.name)


def unmatched(obs: Sequence[Observation], matched: dict[str, Observation]) -> list[str]:
    """Labels of the observed layer outputs that are no spec layer (inputs left out)."""
    used = {id(o) for o in matched.values()}
    return [o.label for o in obs[1:] if id(o) not in used and not o.label.endswith(INPUT_LABEL)]

"""The second input size each variant is crosschecked at, chosen to exercise the code
that depends on the input size.

At its native size a variant can hide size-dependent bugs: torchvision's adaptive pool
is an identity at 224x224, and a pool whose floor and ceil rounding agree cannot show a
rounding bug. So by default the crosscheck also runs each variant at one other size
(height and width may differ), the smallest that makes every such piece of code it has
work:

- adaptive pooling: bins that partly overlap along one axis, and bins that do not
  overlap and are not the identity along the other (input a multiple of the output:
  wide disjoint bins; or the output a multiple of the input: each pixel repeated);
- max pooling: floor and ceil rounding give different output sizes, for every pool;
- SAME padding: an odd total padding (the odd pixel after) and an even one, somewhere.

Shapes are separable: what happens along the height depends on the height alone. So
each axis length is inferred once (on a square input) and the pairs are combined.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Optional

from common.reference import adaptive_bins
from common.shapes import infer, smallest_square_input
from common.spec import AdaptiveAvgPool2d, Conv2d, MaxPool2d, SpecError, Variant


def _axis(variant: Variant, size: int) -> Optional[dict[str, str]]:
    """For an input ``size`` pixels long along one axis: per size-dependent layer, what
    happens along that axis ('overlap'/'disjoint'/'identity' bins, 'differ'/'same'
    rounding, 'odd'/'even'/'none' SAME padding); None where the input is too small."""
    c = variant.input_shape[0]
    try:
        infos = infer(replace(variant, input_shape=(c, size, size)))
    except SpecError:
        return None
    found: dict[str, str] = {}
    for info in infos:
        layer = info.layer
        if isinstance(layer, AdaptiveAvgPool2d):
            bins = adaptive_bins(info.in_shape[1], layer.output_size[0])
            overlap = any(b[0] < a[1] and b != a for a, b in zip(bins, bins[1:]))
            identity = bins == [(i, i + 1) for i in range(len(bins))]
            found[layer.name] = "overlap" if overlap else "identity" if identity else "disjoint"
        elif isinstance(layer, MaxPool2d):
            span = info.in_shape[1] + 2 * layer.padding - layer.kernel
            found[layer.name] = "differ" if span % layer.stride else "same"
        elif isinstance(layer, Conv2d) and layer.padding == "same":
            total = info.padding[0] + info.padding[1]
            found[layer.name] = "none" if total == 0 else "odd" if total % 2 else "even"
    return found


def _score(h: dict[str, str], w: dict[str, str]) -> int:
    """How many of the module docstring's behaviours an input with these axes exercises."""
    score = 0
    for name, along_h in h.items():
        along = {along_h, w[name]}
        if along_h in ("overlap", "disjoint", "identity"):
            score += along == {"overlap", "disjoint"}
        elif along_h in ("differ", "same"):
            score += "differ" in along
    same_pads = {value for axis in (h, w) for value in axis.values() if value in ("odd", "even")}
    return score + (same_pads == {"odd", "even"})


def wanted(variant: Variant) -> int:
    """The most ``_score`` can give: one per adaptive pool and max pool, one for SAME."""
    axis = _axis(variant, variant.input_shape[1]) or {}
    same = any(isinstance(layer, Conv2d) and layer.padding == "same" for layer in variant.layers)
    return sum(value not in ("odd", "even", "none") for value in axis.values()) + same


def second_size(variant: Variant) -> Variant:
    """``variant`` at the smallest input (by area) other than its own, no larger than it
    along either axis, that exercises the most of its size-dependent behaviours."""
    c, native_h, native_w = variant.input_shape
    low = smallest_square_input(variant) or 1
    axes = {s: a for s in range(low, max(native_h, native_w) + 1)
            if (a := _axis(variant, s)) is not None}
    best: Optional[tuple[int, int, int, int]] = None  # (-score, area, h, w)
    for h, along_h in axes.items():
        for w, along_w in axes.items():
            if (h, w) != (native_h, native_w) and h <= native_h and w <= native_w:
                key = (-_score(along_h, along_w), h * w, h, w)
                best = key if best is None or key < best else best
    return variant if best is None else replace(variant, input_shape=(c, best[2], best[3]))

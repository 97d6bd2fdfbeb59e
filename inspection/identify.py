"""Which registered variant a model implements, from its layers with weights.

Convolutions and dense layers are paired with the variant's in order (or by ``--map``), and
each pair is compared: output channels, kernel, groups, widths, and the first dense layer's
input width, which fixes the input size. A difference that leaves the function unchanged
costs nothing: the class count (a variant takes any), and an ungrouped convolution where the
variant has groups (the variant's grouped kernels load into it block-diagonally). The
candidate with the lowest cost is the variant the model implements, or the closest one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Optional, Sequence

from common import reference
from common.spec import Conv2d, Dense, Flatten, SpecError, Variant
from common.variants import get_variant, variant_names
from crosscheck.causes.shapes import weight_shape_cause
from impls.foreign import ParamLayer

#: the cost of a difference that changes the function (channels, kernel, width, groups)
CHANGES = 1.0
#: an ungrouped convolution where the variant has groups: the same function with the
#: variant's kernels expanded, but a variant with those groups ungrouped is a closer match
UNGROUPED = 0.05
#: each LRN or adaptive pool the forward pass shows that the variant lacks, or the other way
KIND_EVIDENCE = 0.5
#: input sizes tried when the first dense layer's width fixes the input
SIZES = range(8, 1025)


@dataclass(frozen=True)
class Difference:
    """How a model layer differs from the variant's; ``cost`` 0 when the function is the same."""

    layer: str
    text: str
    cost: float


@dataclass
class Candidate:
    """A variant (with the model's classes, input channels and input size) and how the model
    differs from it. ``pairs``: spec layer -> the model's layer with weights."""

    variant: Variant
    pairs: dict[str, ParamLayer]
    differences: list[Difference] = field(default_factory=list)
    #: the variant as the model has it (channels, kernels, groups and widths the model's)
    adjusted: Optional[Variant] = None

    @property
    def cost(self) -> float:
        return sum(d.cost for d in self.differences)

    @property
    def same_function(self) -> bool:
        """The variant's canonical weights load into the model (every difference costs 0, or is
        an ungrouped convolution)."""
        return all(d.cost in (0.0, UNGROUPED) for d in self.differences
                   if not d.text.startswith("the forward pass"))

    def changes(self) -> list[Difference]:
        return [d for d in self.differences if d.cost > 0]


def _weighted(variant: Variant) -> list:
    return [layer for layer in variant.layers if isinstance(layer, (Conv2d, Dense))]


def first_dense_after_flatten(variant: Variant) -> Optional[Dense]:
    seen_flatten = False
    for layer in variant.layers:
        seen_flatten = seen_flatten or isinstance(layer, Flatten)
        if seen_flatten and isinstance(layer, Dense):
            return layer
    return None


def _dense_width(name: str, channels: int, size: tuple[int, int], classes: int) -> Optional[int]:
    try:
        v = get_variant(name, num_classes=classes, in_channels=channels, input_size=size)
        fc = first_dense_after_flatten(v)
        shapes = reference.input_shapes(v)
    except SpecError:
        return None
    if fc is None or min(min(s) for s in shapes.values()) < 1:
        return None
    return math.prod(shapes[fc.name])


def input_size(name: str, channels: int, classes: int, width: int,
               default: tuple[int, int]) -> Optional[tuple[int, int]]:
    """The square input size closest to ``default`` at which variant ``name``'s first dense
    layer takes ``width`` inputs (``default`` itself where it does), or None."""
    if _dense_width(name, channels, default, classes) == width:
        return default
    for size in sorted(SIZES, key=lambda s: abs(s - default[0])):
        if _dense_width(name, channels, (size, size), classes) == width:
            return (size, size)
    return None


def _in_channels(layers: Sequence[ParamLayer]) -> int:
    first = layers[0]
    return first.weight_shape[1] * first.groups


def compare(name: str, layers: Sequence[ParamLayer], kinds: Sequence[str],
            input_shape: Optional[tuple[int, int, int]] = None,
            mapping: Optional[dict[str, str]] = None) -> Optional[Candidate]:
    """The model (its layers with weights, and the kinds of every layer its forward pass
    showed) against variant ``name``; None where the layer counts differ."""
    convs = [l for l in layers if l.kind == "conv"]
    denses = [l for l in layers if l.kind == "dense"]
    base = get_variant(name)
    spec = _weighted(base)
    spec_convs = [l for l in spec if isinstance(l, Conv2d)]
    if len(convs) != len(spec_convs) or len(denses) != len(spec) - len(spec_convs):
        return None
    classes = denses[-1].weight_shape[0]
    channels = _in_channels(layers)
    fc = first_dense_after_flatten(base)
    differences: list[Difference] = []
    if input_shape is not None:
        size = input_shape[1:]
        channels = input_shape[0]
    else:
        size = input_size(name, channels, classes, denses[0].weight_shape[1], base.input_shape[1:])
        if size is None:
            size = base.input_shape[1:]
    variant = get_variant(name, num_classes=classes, in_channels=channels, input_size=size)
    by_name = {l.name: l for l in layers}
    pairs = dict(zip([l.name for l in spec_convs], convs))
    pairs.update(zip([l.name for l in spec if isinstance(l, Dense)], denses))
    for spec_name, model_name in (mapping or {}).items():
        if model_name in by_name:
            pairs[spec_name] = by_name[model_name]
    shapes = reference.input_shapes(variant)
    adjusted_layers = {}
    for layer in _weighted(variant):
        model = pairs[layer.name]
        found, changed = _differences(variant, layer, model, shapes[layer.name])
        differences += found
        if changed is not None:
            adjusted_layers[layer.name] = changed
    if fc is not None and denses[0] is pairs.get(fc.name):
        expected = math.prod(shapes[fc.name])
        got = pairs[fc.name].weight_shape[1]
        if got != expected:
            # the shape arithmetic names the upstream change that would give this width
            cause = weight_shape_cause(variant, f"{fc.name}.weight", (fc.out_features, expected),
                                       (fc.out_features, got))
            text = (cause.text if cause is not None else
                    f"{fc.name} takes {got:,} inputs where {name} gives {expected:,}")
            differences.append(Difference(fc.name, f"{text} (at {size[0]}x{size[1]})", CHANGES))
    differences += _kind_evidence(variant, kinds)
    adjusted = replace(variant, layers=tuple(adjusted_layers.get(l.name, l) for l in variant.layers))
    return Candidate(variant, pairs, differences, adjusted)


def _differences(variant: Variant, layer, model: ParamLayer,
                 in_shape: tuple[int, ...]) -> tuple[list[Difference], object]:
    """How ``model`` differs from the spec ``layer`` (on ``in_shape``), and the spec layer
    changed to the model's numbers (None where nothing changes the function)."""
    name, found, changes = layer.name, [], {}
    want = "conv" if isinstance(layer, Conv2d) else "dense"
    if model.kind != want:
        return [Difference(name, f"{name} is a {model.kind} layer ({model.name}) where "
                                 f"{variant.name} has a {want} layer", 10 * CHANGES)], None
    if isinstance(layer, Dense):
        out = model.weight_shape[0]
        if out != layer.out_features and layer.name != variant.logits_layer:
            found.append(Difference(name, f"{name}: {out} outputs where {variant.name} has "
                                          f"{layer.out_features}", CHANGES))
            changes["out_features"] = out
        elif layer.name == variant.logits_layer and out != get_variant(variant.name).num_classes:
            found.append(Difference(name, f"{name}: {out} classes", 0.0))
        return found, (replace(layer, **changes) if changes else None)
    out, per_group, kh, kw = model.weight_shape
    if out != layer.out_channels:
        found.append(Difference(name, f"{name}: {out} output channels where {variant.name} has "
                                      f"{layer.out_channels}", CHANGES))
        changes["out_channels"] = out
    if (kh, kw) != (layer.kernel, layer.kernel):
        found.append(Difference(name, f"{name}: kernel {kh}x{kw} where {variant.name} has "
                                      f"{layer.kernel}x{layer.kernel}", CHANGES))
        changes["kernel"] = kh
    groups = model.groups
    if groups != layer.groups:
        if groups == 1:
            found.append(Difference(name, f"{name}: 1 group where {variant.name} has {layer.groups} "
                                          f"(its grouped kernels load block-diagonally)", UNGROUPED))
        else:
            found.append(Difference(name, f"{name}: {groups} groups where {variant.name} has "
                                          f"{layer.groups}", CHANGES))
        changes["groups"] = groups
    return found, (replace(layer, **changes) if changes else None)


#: the forward pass's kinds that say a spec layer type is there
_EVIDENCE = {"lrn": "LRN", "avgpool": "AdaptiveAvgPool2d"}


def _kind_evidence(variant: Variant, kinds: Sequence[str]) -> list[Difference]:
    """LRN and adaptive pools the forward pass showed, against the variant's count. A count
    of 0 says something only of a model built of layers (one that shows its pools or
    ReLUs): a functional ``F.local_response_norm`` shows no layer."""
    found = []
    layered = any(k in ("maxpool", "relu") for k in kinds)
    for kind, type_name in _EVIDENCE.items():
        shown = sum(1 for k in kinds if k == kind)
        spec = sum(1 for l in variant.layers if type(l).__name__ == type_name)
        if (shown or layered) and shown != spec:
            found.append(Difference("", f"the forward pass shows {shown} {kind} layer(s) where "
                                        f"{variant.name} has {spec}", KIND_EVIDENCE * abs(shown - spec)))
    return found


def candidates(layers: Sequence[ParamLayer], kinds: Sequence[str],
               input_shape: Optional[tuple[int, int, int]] = None,
               names: Optional[Sequence[str]] = None,
               mapping: Optional[dict[str, str]] = None) -> list[Candidate]:
    """Every variant with the model's numbers of convolutions and dense layers, closest first."""
    found = [c for c in (compare(n, layers, kinds, input_shape, mapping)
                         for n in (names or variant_names())) if c is not None]
    order = variant_names()
    return sorted(found, key=lambda c: (c.cost, order.index(c.variant.name)))


def structure(layers: Sequence[ParamLayer]) -> str:
    """The model's layers with weights, as counts."""
    convs = sum(1 for l in layers if l.kind == "conv")
    return f"{convs} convolution(s) and {len(layers) - convs} dense layer(s)"


def no_match_message(layers: Sequence[ParamLayer], names: Optional[Sequence[str]] = None) -> str:
    """Why no variant (of ``names``, default all) fits: the model's structure against each's."""
    said = []
    for name in names or variant_names():
        spec = _weighted(get_variant(name))
        convs = sum(1 for l in spec if isinstance(l, Conv2d))
        said.append(f"{name} {convs}+{len(spec) - convs}")
    return (f"the model has {structure(layers)}; no variant{'' if names is None else ' asked for'} "
            f"has that structure "
            f"(convolutions+dense: {', '.join(said)})")

"""Canonical weights into a model someone else wrote, and its own weights out, by layer order.

The spec's layers with weights are paired with the model's (``inspection.identify``); on the
way in a grouped kernel is expanded block-diagonally where the model's convolution is
ungrouped, and the first dense layer after the flatten gets its input columns in the order
the model flattens (``inspection.flatten``). On the way out the same steps run backwards; an
ungrouped kernel that is not block-diagonal cannot be a grouped variant's, and the variant
is then the model's own, ungrouped (``adjusted``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Optional

import numpy as np

from common import reference
from common.spec import Conv2d, Dense, Flatten, Variant
from common.weights import Weights
from impls.foreign import LayerWeights, ParamLayer
from inspection.flatten import flatten_columns, unflatten_columns
from inspection.identify import Candidate, first_dense_after_flatten


def block_diagonal(weight: np.ndarray, groups: int) -> np.ndarray:
    """A grouped kernel ``(O, I/g, kh, kw)`` as the ungrouped ``(O, I, kh, kw)`` that computes
    the same: group ``g``'s outputs see only group ``g``'s input channels."""
    out, per_group = weight.shape[:2]
    full = np.zeros((out, per_group * groups) + weight.shape[2:], weight.dtype)
    rows = out // groups
    for g in range(groups):
        full[g * rows:(g + 1) * rows, g * per_group:(g + 1) * per_group] = weight[g * rows:(g + 1) * rows]
    return full


def grouped_blocks(weight: np.ndarray, groups: int) -> Optional[np.ndarray]:
    """The grouped kernel a block-diagonal ungrouped one holds, or None where any weight lies
    off the diagonal blocks."""
    out, channels = weight.shape[:2]
    if out % groups or channels % groups:
        return None
    rows, per_group = out // groups, channels // groups
    blocks = [weight[g * rows:(g + 1) * rows, g * per_group:(g + 1) * per_group] for g in range(groups)]
    grouped = np.concatenate(blocks, axis=0)
    return grouped if np.array_equal(block_diagonal(grouped, groups), weight) else None


def to_model(candidate: Candidate, variant: Variant, weights: Weights, order: str) -> LayerWeights:
    """``weights`` (canonical, of ``variant``) as the model's layers take them."""
    fc = first_dense_after_flatten(variant)
    chw = flattened_map(variant)
    out: LayerWeights = {}
    for layer in variant.layers:
        if not isinstance(layer, (Conv2d, Dense)):
            continue
        model: ParamLayer = candidate.pairs[layer.name]
        weight = weights[f"{layer.name}.weight"]
        if isinstance(layer, Conv2d) and model.groups == 1 and layer.groups > 1:
            weight = block_diagonal(weight, layer.groups)
        if fc is not None and layer.name == fc.name:
            weight = flatten_columns(weight, order, chw)
        if weight.shape != model.weight_shape:
            continue  # it takes another width (a change upstream): the model keeps its own
        out[model.name] = (weight, weights[f"{layer.name}.bias"] if model.has_bias else None)
    return out


def from_model(candidate: Candidate, variant: Variant, own: LayerWeights,
               order: str) -> tuple[Variant, Weights, list[str]]:
    """The model's own weights in canonical form: (the variant they fit, the weights, notes).
    A missing bias is zeros; an ungrouped kernel that is block-diagonal is the variant's
    grouped one, any other makes that layer ungrouped in the returned variant."""
    fc = first_dense_after_flatten(variant)
    chw = flattened_map(variant)
    weights: Weights = {}
    notes: list[str] = []
    layers = list(variant.layers)
    for i, layer in enumerate(layers):
        if not isinstance(layer, (Conv2d, Dense)):
            continue
        model = candidate.pairs[layer.name]
        weight, bias = own[model.name]
        if isinstance(layer, Conv2d) and model.groups == 1 and layer.groups > 1:
            grouped = grouped_blocks(weight, layer.groups)
            if grouped is None:
                layers[i] = replace(layer, groups=1)
                notes.append(f"{layer.name}: the model's ungrouped kernel is not block-diagonal, so "
                             f"it is checked as an ungrouped convolution")
            else:
                weight = grouped
        if fc is not None and layer.name == fc.name:
            weight = unflatten_columns(weight, order, chw)
        if bias is None:
            bias = np.zeros(weight.shape[0], np.float32)
            notes.append(f"{layer.name}: the model has no bias; exported as zeros")
        weights[f"{layer.name}.weight"] = np.ascontiguousarray(weight, np.float32)
        weights[f"{layer.name}.bias"] = np.ascontiguousarray(bias, np.float32)
    return replace(variant, layers=tuple(layers)), weights, notes


def flattened_map(variant: Variant) -> Optional[tuple[int, int, int]]:
    """(C, H, W) of the map the variant's Flatten takes, or None without one."""
    shapes = reference.input_shapes(variant)
    return next((shapes[l.name] for l in variant.layers if isinstance(l, Flatten)), None)

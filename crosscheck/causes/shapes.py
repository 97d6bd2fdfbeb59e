"""Causes found from shapes alone: a layer's output shape, or a refused weight's shape.

``shape_cause``: the single change of the layer (padding, stride, kernel, pool rounding
and size, adaptive output size, out features, the layer missing) whose shape, by the
reference's own arithmetic (``reference.input_shapes``, ``pooled_size``, ``conv_pads``,
never ``common.shapes``, which the ports use), is the one the framework produced; where
the layer's input already differs, the single change upstream that explains it.
``weight_shape_cause``: a missing bias, groups ignored, a kernel in another layout
(named: HWIO, OHWI, ...), out or in features wrong.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import replace
from typing import Iterator, Optional

from common import reference
from common.spec import (
    LRN, AdaptiveAvgPool2d, Conv2d, Dense, Dropout, Flatten, Layer, MaxPool2d, ReLU, Softmax,
    SpecError, Variant,
)
from common.variants import get_variant
from crosscheck.causes.base import Cause, out_shape, shape_cause_of
from crosscheck.causes.fits import pool_alternatives
from crosscheck.causes.linear import LAYOUT_OWNERS, describe_pads, padding_alternatives

Shape = tuple[int, ...]
#: layouts named first when several permutations fit (square kernels: HWIO is also WHIO)
PREFERRED = ("OIHW", "HWIO", "OHWI", "IOHW", "IHWO", "HWOI", "OI", "IO")
#: layers whose output shape is their input's: no change of theirs explains another shape
SHAPE_KEEPING = (ReLU, LRN, Dropout, Softmax)
#: how a dense layout is said
LAYOUT_TEXT = {"OI": "(out, in)", "IO": "(in, out)"}


def _fmt(shape: Shape) -> str:
    return "x".join(map(str, shape))


def mxnet_full_pool(size: int, layer: MaxPool2d) -> int:
    """MXNet's pooled length with pooling_convention='full' (its ceil mode): a last window
    that starts in the padding is kept, which PyTorch's rule (and the spec's) drops."""
    span = size + 2 * layer.padding - layer.kernel
    return 1 + -(-span // layer.stride)


def num_classes_note(variant: Variant, layer: Dense, got: int) -> str:
    """Why an output layer may have ``got`` outputs: num_classes left at a default."""
    if layer.name != variant.logits_layer:
        return ""
    try:
        default = get_variant(variant.name).num_classes
    except SpecError:
        default = None
    if got == default:
        return f" (num_classes left at {variant.name}'s default {default})"
    return " (num_classes)"


def alternatives(layer: Layer, in_shape: Shape) -> Iterator[tuple[str, Shape]]:
    """(a change of ``layer``, its output shape on ``in_shape``), most likely first."""
    if isinstance(layer, SHAPE_KEEPING):
        return
    if not isinstance(layer, Dense) and len(in_shape) == 3:
        yield f"{layer.name} missing (its output is its input)", in_shape
    if isinstance(layer, Conv2d) and len(in_shape) == 3:
        h, w = in_shape[1:]
        pads = reference.conv_pads(layer, h, w)
        tried = {pads}
        for text, alt_pads in padding_alternatives(layer, h, w):
            tried.add(alt_pads)
            yield f"{layer.name}: {text}", out_shape(replace(layer, padding=alt_pads), in_shape)
        for p in range(layer.kernel + 1):
            if (p,) * 4 not in tried:
                yield (f"{layer.name}: padding {p} on every side where the spec has "
                       f"{describe_pads(pads)}",
                       out_shape(replace(layer, padding=(p,) * 4), in_shape))
        for stride in range(1, layer.stride + 3):
            if stride != layer.stride:
                yield (f"{layer.name}: stride {stride} where the spec has {layer.stride}",
                       out_shape(replace(layer, stride=stride), in_shape))
        for kernel in range(1, 2 * layer.kernel + 2):
            if kernel != layer.kernel:
                yield (f"{layer.name}: kernel {kernel}x{kernel} where the spec has "
                       f"{layer.kernel}x{layer.kernel}",
                       out_shape(replace(layer, kernel=kernel), in_shape))
    elif isinstance(layer, MaxPool2d) and len(in_shape) == 3:
        h, w = in_shape[1:]
        full = (in_shape[0], mxnet_full_pool(h, layer), mxnet_full_pool(w, layer))
        if full != out_shape(replace(layer, ceil_mode=True), in_shape):
            yield (f"{layer.name}: MXNet's ceil mode (pooling_convention='full') keeps a last window "
                   f"that starts in the padding, which the spec's rounding drops", full)
        for _, text, _, hw in pool_alternatives(layer, h, w):
            yield f"{layer.name}: {text}", (in_shape[0],) + hw


def shape_cause(variant: Variant, layer_name: str, in_shape: Shape,
                got_out_shape: Shape) -> Optional[Cause]:
    """The change of ``layer_name`` (or, where ``in_shape`` is not the spec's, of a layer
    before it) whose shape arithmetic gives ``got_out_shape`` from ``in_shape``. Shapes
    per image, channels-first ((C, H, W) or (F,)); a leading batch axis is dropped."""
    layer = variant.layer(layer_name)
    expected_in = reference.input_shapes(variant)[layer_name]
    in_shape = _per_image(in_shape, len(expected_in))
    expected_out = out_shape(layer, in_shape)
    got = _per_image(got_out_shape, len(expected_out))
    if in_shape != expected_in:
        upstream = _upstream(variant, layer_name, in_shape)
        if upstream:
            return shape_cause_of(f"{layer_name} gets {_fmt(in_shape)} where the spec gives "
                                  f"{_fmt(expected_in)}: {with_others(upstream)}", layer_name)
    if got == expected_out:
        return None
    said = f"{_fmt(got)} where the spec gives {_fmt(expected_out)}"
    if isinstance(layer, Dense) and len(got) == 1:
        return _out_count(variant, layer, got[0])
    if isinstance(layer, AdaptiveAvgPool2d) and len(got) == 3 and got[0] == in_shape[0]:
        text = (f"{layer_name} missing (its output is its input)" if got == in_shape else
                f"{layer_name}: adaptive output size {got[1:]} where the spec has {layer.output_size}")
        return shape_cause_of(f"{text}: {said}", layer_name)
    if isinstance(layer, Conv2d) and len(got) == 3 and got[1:] == expected_out[1:]:
        return _out_count(variant, layer, got[0])
    if isinstance(layer, Flatten) and got == in_shape:
        return shape_cause_of(f"{layer_name} missing (the map is not flattened)", layer_name)
    fits = [text for text, shape in alternatives(layer, in_shape) if shape == got]
    if not fits:
        return None
    return shape_cause_of(f"{with_others(fits)}: {said}", layer_name)


def _per_image(shape: Shape, rank: int) -> Shape:
    shape = tuple(int(n) for n in shape)
    return shape[1:] if len(shape) == rank + 1 else shape


def _upstream(variant: Variant, layer_name: str, in_shape: Shape) -> list[str]:
    """Each single change of a layer before ``layer_name`` after which ``layer_name`` gets
    ``in_shape``, nearest layer first (one per layer: its likeliest change)."""
    shapes = reference.input_shapes(variant)
    index = [layer.name for layer in variant.layers].index(layer_name)
    found: list[str] = []
    for j in range(index - 1, -1, -1):
        layer = variant.layers[j]
        for text, out in alternatives(layer, shapes[layer.name]):
            if min(out) < 1:
                continue
            tail = replace(variant, layers=variant.layers[j + 1:], input_shape=out)
            if reference.input_shapes(tail)[layer_name] == in_shape:
                found.append(text)
                break
    return found


def with_others(found: list[str]) -> str:
    """The first (likeliest) explanation, and up to two others that fit as well."""
    also = f" (also consistent: {'; '.join(found[1:3])})" if len(found) > 1 else ""
    return found[0] + also


def param_shapes(variant: Variant) -> dict[str, Shape]:
    """Canonical parameter shapes, from the reference's shape arithmetic."""
    shapes = reference.input_shapes(variant)
    params: dict[str, Shape] = {}
    for layer in variant.layers:
        if isinstance(layer, Conv2d):
            channels = shapes[layer.name][0] // layer.groups
            params[f"{layer.name}.weight"] = (layer.out_channels, channels, layer.kernel,
                                              layer.kernel)
            params[f"{layer.name}.bias"] = (layer.out_channels,)
        elif isinstance(layer, Dense):
            params[f"{layer.name}.weight"] = (layer.out_features, math.prod(shapes[layer.name]))
            params[f"{layer.name}.bias"] = (layer.out_features,)
    return params


def layout_name(canonical: Shape, shape: Shape) -> Optional[str]:
    """The axis order (letters of the canonical OIHW or OI) that turns ``canonical`` into
    ``shape``, preferring the common names; None if it is no permutation."""
    letters = "OIHW" if len(canonical) == 4 else "OI"
    names = ["".join(letters[i] for i in perm)
             for perm in itertools.permutations(range(len(canonical)))
             if tuple(canonical[i] for i in perm) == tuple(shape)]
    names.sort(key=lambda n: PREFERRED.index(n) if n in PREFERRED else len(PREFERRED))
    return names[0] if names else None


def _in_canonical_order(shape: Shape, layout: str) -> Shape:
    """``shape``, whose axes are in ``layout``, in the canonical axis order."""
    letters = "OIHW" if len(layout) == 4 else "OI"
    return tuple(shape[layout.index(letter)] for letter in letters)


def weight_shape_cause(variant: Variant, key: str, expected: Shape,
                       got: Optional[Shape]) -> Optional[Cause]:
    """Why a parameter has shape ``got`` (None: the model has no such parameter) where
    ``expected`` (the canonical shape, or the framework's own layout of it) was wanted."""
    name, kind = key.rsplit(".", 1)
    canonical = param_shapes(variant).get(key)
    if canonical is None:
        return None
    layer = variant.layer(name)
    if got is None:
        return (shape_cause_of(f"{name} built without its bias (bias=False / use_bias=False)", name)
                if kind == "bias" else None)
    expected, got = tuple(expected), tuple(got)
    if got == expected or len(got) != len(canonical):
        return None
    if kind == "bias":
        return _out_count(variant, layer, got[0])
    expected_layout, got_layout = layout_name(canonical, expected), layout_name(canonical, got)
    if expected_layout is None:
        return None
    if got_layout is not None and got_layout != expected_layout:
        owner = LAYOUT_OWNERS.get(got_layout) or LAYOUT_OWNERS.get(expected_layout)
        said = f" ({owner})" if owner else ""
        return shape_cause_of(f"{key} is {LAYOUT_TEXT.get(got_layout, got_layout)} {got} where "
                              f"{LAYOUT_TEXT.get(expected_layout, expected_layout)} {expected} is "
                              f"expected: a layout not transposed{said}", name)
    got = _in_canonical_order(got, expected_layout)
    if isinstance(layer, Conv2d):
        o, i, kh, kw = canonical
        if layer.groups > 1 and got == (o, i * layer.groups, kh, kw):
            return shape_cause_of(f"{name}'s groups ignored: built with 1 group, its kernel takes all "
                                  f"{i * layer.groups} input channels where the spec's {layer.groups} "
                                  f"groups take {i} each", name)
        if got[1:] == (i, kh, kw):
            return _out_count(variant, layer, got[0])
        if got[0] == o and got[2:] == (kh, kw):
            return shape_cause_of(f"{name} takes {got[1]} input channels where the spec has {i}",
                                  name)
        if got[:2] == (o, i):
            return shape_cause_of(f"{name} kernel {_fmt(got[2:])} where the spec has "
                                  f"{_fmt((kh, kw))}", name)
        return None
    out, inputs = canonical
    if got[1] == inputs:
        return _out_count(variant, layer, got[0])
    if got[0] == out:
        upstream = _upstream(variant, name, (got[1],))
        why = f": {with_others(upstream)}" if upstream else ""
        return shape_cause_of(f"{name} takes {got[1]} inputs where the spec gives {inputs}{why}",
                              name)
    return None


def _out_count(variant: Variant, layer: Layer, got: int) -> Cause:
    """A layer with ``got`` outputs (features or channels) where the spec has others."""
    if isinstance(layer, Dense):
        return shape_cause_of(f"{layer.name} has {got} outputs where the spec has {layer.out_features}"
                              f"{num_classes_note(variant, layer, got)}", layer.name)
    return shape_cause_of(f"{layer.name} has {got} output channels where the spec has "
                          f"{layer.out_channels}", layer.name)

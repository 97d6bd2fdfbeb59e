"""Known porting bugs of a convolution or dense layer, each recomputed in float64.

Weight layouts (a kernel reshaped instead of transposed, height and width swapped, a
dense weight transposed), a missing bias, a fused ReLU, grouped-convolution blocks in
the wrong order, reversed input channels (RGB/BGR) and padding. Cheap hypotheses (those
derived from the correct output alone) come first, then one convolution each.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Optional

import numpy as np

from common import reference
from common.spec import Conv2d, Dense, Flatten, Variant
from crosscheck.causes.base import Blamed, Hypotheses, out_shape

#: other layouts a kernel is stored in, as axes of the canonical OIHW array
LAYOUTS = {"HWIO": (2, 3, 1, 0), "OHWI": (0, 2, 3, 1), "IOHW": (1, 0, 2, 3), "IHWO": (1, 2, 3, 0)}
#: who stores a weight that way
LAYOUT_OWNERS = {"HWIO": "Keras/TensorFlow", "OHWI": "channels-last: TFLite, MXNet NHWC",
                 "IOHW": "PyTorch's ConvTranspose2d", "IO": "a Keras dense kernel"}


def reverse_groups(a: np.ndarray, groups: int) -> np.ndarray:
    """``a`` with its channel axis (1) cut into ``groups`` blocks, in reverse block order."""
    n, c = a.shape[:2]
    return a.reshape(n, groups, c // groups, *a.shape[2:])[:, ::-1].reshape(a.shape)


def describe_pads(pads: tuple[int, ...]) -> str:
    """(top, bottom, left, right) as people say it."""
    return f"{pads[0]} on every side" if len(set(pads)) == 1 else f"(top, bottom, left, right) {pads}"


def padding_alternatives(layer: Conv2d, height: int, width: int) -> list[tuple[str, tuple[int, ...]]]:
    """(the bug, the padding a port with it applies) for a convolution on height x width.
    Paddings that differ only in rows or columns no window reaches compute the same: they
    are one hypothesis, and its text names each bug it could be."""
    pads = reference.conv_pads(layer, height, width)
    top, bottom, left, right = pads
    spec = describe_pads(pads)
    found = []
    if (top, left) != (bottom, right):
        for p in sorted({max(pads), min(pads)}, reverse=True):
            found.append((f"SAME padding made symmetric: {p} on every side where the spec "
                          f"(TensorFlow's SAME) has {pads}", (p,) * 4))
        swapped = (bottom, top, right, left)
        found.append((f"the odd pixel of padding top/left instead of bottom/right: {swapped} "
                      f"where the spec (TensorFlow's SAME) has {pads}", swapped))
    for step in (1, -1):
        moved = tuple(p + step for p in pads)
        if min(moved) >= 0:
            found.append((f"padding off by one: {describe_pads(moved)} where the spec has {spec}",
                          moved))
    same = (reference.same_pads(height, layer.kernel, layer.stride)
            + reference.same_pads(width, layer.kernel, layer.stride))
    if same != pads:
        found.append((f"TensorFlow SAME padding {same} where the spec has {spec}", same))
    if any(pads):
        found.append((f"padding dropped (valid) where the spec has {spec}", (0, 0, 0, 0)))
    reached = lambda p: effective_pads(layer, height, width, p)  # noqa: E731
    groups: dict[tuple[int, ...], list[str]] = {}
    for text, alt in found:
        if reached(alt) != reached(pads):
            groups.setdefault(reached(alt), []).append(text)
    return [("; or, the same in effect, ".join(texts), alt) for alt, texts in groups.items()]


def effective_pads(layer: Conv2d, height: int, width: int, pads: tuple[int, ...]) -> tuple[int, ...]:
    """``pads`` without the bottom rows and right columns that no window reaches."""
    top, bottom, left, right = pads

    def reached(size: int, before: int, after: int) -> int:
        windows = (size + before + after - layer.kernel) // layer.stride + 1
        return min(after, max((windows - 1) * layer.stride + layer.kernel - size - before, 0))

    return (top, reached(height, top, bottom), left, reached(width, left, right))


def conv_hypotheses(b: Blamed) -> Hypotheses:
    layer, name, e = b.layer, b.name, b.expected
    w, bias = b.weight, b.bias
    groups = layer.groups

    def conv(weight: np.ndarray, x: np.ndarray = b.x, spec: Conv2d = layer) -> np.ndarray:
        return reference.conv2d(x, spec, {f"{name}.weight": weight, f"{name}.bias": bias})

    yield (f"{name} bias missing or zero (built with bias=False / use_bias=False, or the bias "
           f"never loaded)", e - bias[None, :, None, None])
    yield (f"a ReLU fused into {name} (its output clipped at 0, as Keras's activation='relu' "
           f"does)", np.maximum(e, 0.0))
    if groups > 1:
        yield (f"{name}'s {groups} group outputs concatenated in reverse order (output blocks "
               f"swapped)", reverse_groups(e, groups))
    yield f"{name} kernel height and width swapped (OIHW read as OIWH)", conv(w.swapaxes(2, 3))
    if b.x.shape[1] > 1 and not any(isinstance(l, Conv2d) for l in b.variant.layers[:b.index]):
        yield (f"input channels reversed at {name} (RGB fed as BGR, or Caffe's BGR weights on "
               f"RGB input)", conv(w, x=b.x[:, ::-1]))
    if groups > 1:
        swapped_inputs = conv(w, x=reverse_groups(b.x, groups))
        yield (f"{name}'s group input blocks swapped: each group convolves another group's input "
               f"channels", swapped_inputs)
        by_weights = reverse_groups(swapped_inputs, groups)
        yield (f"{name}'s {groups} kernel and bias blocks in reverse order (the GPU halves stacked "
               f"the wrong way)", by_weights)
        yield (f"{name}'s {groups} kernel blocks in reverse order, its bias in order",
               by_weights - (reverse_groups(bias[None], groups)[0] - bias)[None, :, None, None])
    changes = [(text, replace(layer, padding=pads))
               for text, pads in padding_alternatives(layer, *b.x.shape[2:])]
    changes += [(f"stride {stride} where the spec has {layer.stride}", replace(layer, stride=stride))
                for stride in range(1, layer.stride + 3) if stride != layer.stride]
    for text, changed in changes:
        if out_shape(changed, b.x.shape[1:])[1:] == b.observed.shape[2:]:
            yield f"{name}: {text}", conv(w, spec=changed)
    for layout, axes in LAYOUTS.items():
        shape = tuple(w.shape[a] for a in axes)
        owner = f" ({LAYOUT_OWNERS[layout]})" if layout in LAYOUT_OWNERS else ""
        # the port holds the canonical array reshaped, and reads it as that layout
        yield (f"{name} kernel reshaped instead of transposed: the OIHW array reshaped to "
               f"{layout} {shape}{owner}", conv(w.reshape(shape).transpose(np.argsort(axes))))
        # the port got the kernel in that layout and reshaped it to OIHW
        yield (f"{name} kernel reshaped instead of transposed: a {layout} array{owner} reshaped "
               f"to OIHW", conv(w.transpose(axes).reshape(w.shape)))


def flattened_map(variant: Variant, name: str) -> Optional[tuple[int, int, int]]:
    """(C, H, W) of the map a Flatten turns into ``name``'s input, if ``name`` is the first
    Dense after it (dropout and elementwise layers between keep the order), else None."""
    shapes = reference.input_shapes(variant)
    chw = None
    for layer in variant.layers:
        if isinstance(layer, Flatten):
            chw = shapes[layer.name]
        elif isinstance(layer, Dense):
            if layer.name == name:
                return chw
            chw = None
    return None


def hwc_order(c: int, h: int, w: int) -> np.ndarray:
    """``perm[j]``: the C*H*W position of the j-th element of an H*W*C flatten. The
    reference's own, not ``common.conventions``' (which the TensorFlow port uses)."""
    return np.arange(c * h * w).reshape(c, h, w).transpose(1, 2, 0).reshape(-1)


def dense_hypotheses(b: Blamed) -> Hypotheses:
    name, e, x = b.name, b.expected, b.x
    w, bias = b.weight, b.bias
    out, in_features = w.shape

    def dense(weight: np.ndarray, inputs: np.ndarray = x) -> np.ndarray:
        return inputs @ weight.T + bias

    yield (f"{name} bias missing or zero (built with bias=False / use_bias=False, or the bias "
           f"never loaded)", e - bias)
    yield f"a ReLU fused into {name} (its output clipped at 0)", np.maximum(e, 0.0)
    chw = flattened_map(b.variant, name)
    if chw is not None:
        # an H*W*C port's weight has w's columns at the C*H*W positions hwc_order gives:
        # the same product as w with the input's elements taken in that order
        yield (f"flatten order at {name}: its input rows not permuted between C*H*W and H*W*C",
               dense(w, x[:, hwc_order(*chw)]))
    if out == in_features:
        yield (f"{name} weight transposed: an (in, out) kernel read as (out, in) (the square "
               f"shape hides it)", dense(w.T))
        return
    yield (f"{name} weight reshaped instead of transposed: the (out, in) array reshaped to "
           f"Keras's (in, out) {(in_features, out)}", x @ w.reshape(in_features, out) + bias)
    yield (f"{name} weight reshaped instead of transposed: a Keras (in, out) kernel reshaped to "
           f"(out, in) {(out, in_features)}", dense(w.T.reshape(out, in_features)))


def dense_input_solved(b: Blamed) -> Optional[np.ndarray]:
    """For a dense layer: the input that reproduces the observed output (least squares;
    only where the weight has full column rank, out >= in, and it is cheap)."""
    out, in_features = b.weight.shape
    if (b.observed.shape[1:] != (out,) or out < in_features
            or in_features * in_features * out > 2e10):
        return None
    return np.linalg.lstsq(b.weight, (b.observed - b.bias).T, rcond=None)[0].T

"""Pure-Python shape inference, parameter counts and multiply-adds, per layer.

``infer(variant)`` walks the layers once and returns a ``LayerInfo`` for each:
the input and output shape (per image, channels-first), the parameter count,
the multiply-adds (convolutions and dense layers only, biases not counted, as
torchvision's 714,188,480 for AlexNet counts them) and, for convolutions and
pools, the explicit per-side padding every implementation must apply.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Optional

from common.spec import (
    LRN, AdaptiveAvgPool2d, Conv2d, Dense, Dropout, Flatten, Layer, MaxPool2d, ReLU,
    Softmax, SpecError, Variant,
)

Shape = tuple[int, ...]


@dataclass(frozen=True)
class LayerInfo:
    """One layer with everything inferred about it for a given input size."""

    layer: Layer
    in_shape: Shape
    out_shape: Shape
    params: int
    macs: int
    #: Resolved ``(top, bottom, left, right)`` zero padding of a convolution, or the
    #: -inf padding of a max pool (bottom/right include the extra rows of ceil mode).
    padding: Optional[tuple[int, int, int, int]] = None

    @property
    def name(self) -> str:
        return self.layer.name

    @property
    def kind(self) -> str:
        return type(self.layer).__name__


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's SAME padding along one axis: ``(before, after)``, the odd pixel after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def conv_padding(layer: Conv2d, h: int, w: int) -> tuple[int, int, int, int]:
    """The explicit ``(top, bottom, left, right)`` padding of ``layer`` on an h x w input."""
    if layer.padding == "valid":
        return (0, 0, 0, 0)
    if layer.padding == "same":
        return same_padding(h, layer.kernel, layer.stride) + same_padding(w, layer.kernel, layer.stride)
    return tuple(layer.padding)  # type: ignore[return-value]


def pool_output(size: int, kernel: int, stride: int, padding: int, ceil_mode: bool) -> int:
    """Output length of a pool along one axis, with PyTorch's ceil-mode rule: a last
    window that would start in the right padding is dropped."""
    span = size + 2 * padding - kernel
    if span < 0:
        return 0
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    if (out - 1) * stride >= size + padding:
        out -= 1
    return out


def _layer_info(layer: Layer, shape: Shape) -> LayerInfo:
    """Infer one layer; raises SpecError (naming the layer) when it cannot apply."""
    name = layer.name
    if isinstance(layer, (Conv2d, MaxPool2d, AdaptiveAvgPool2d, LRN)) and len(shape) != 3:
        raise SpecError(f"layer {name!r} ({type(layer).__name__}) needs a CxHxW input, got {shape}")
    if isinstance(layer, Conv2d):
        c, h, w = shape
        if c % layer.groups or layer.out_channels % layer.groups:
            raise SpecError(f"layer {name!r}: {c} input and {layer.out_channels} output channels "
                            f"are not both divisible by groups={layer.groups}")
        pad = conv_padding(layer, h, w)
        oh = (h + pad[0] + pad[1] - layer.kernel) // layer.stride + 1
        ow = (w + pad[2] + pad[3] - layer.kernel) // layer.stride + 1
        out = (layer.out_channels, oh, ow)
        fan_in = c // layer.groups * layer.kernel ** 2
        return LayerInfo(layer, shape, out, layer.out_channels * (fan_in + 1),
                         layer.out_channels * oh * ow * fan_in, pad)
    if isinstance(layer, MaxPool2d):
        c, h, w = shape
        if layer.padding * 2 > layer.kernel:
            raise SpecError(f"layer {name!r}: padding {layer.padding} is more than half the "
                            f"kernel {layer.kernel}")
        oh = pool_output(h, layer.kernel, layer.stride, layer.padding, layer.ceil_mode)
        ow = pool_output(w, layer.kernel, layer.stride, layer.padding, layer.ceil_mode)
        p = layer.padding
        # Extra -inf rows/cols needed at the bottom/right so that every window fits.
        extra_h = max((oh - 1) * layer.stride + layer.kernel - h - 2 * p, 0)
        extra_w = max((ow - 1) * layer.stride + layer.kernel - w - 2 * p, 0)
        return LayerInfo(layer, shape, (c, oh, ow), 0, 0, (p, p + extra_h, p, p + extra_w))
    if isinstance(layer, AdaptiveAvgPool2d):
        return LayerInfo(layer, shape, (shape[0],) + tuple(layer.output_size), 0, 0)
    if isinstance(layer, LRN):
        if layer.size < 1 or layer.size % 2 == 0:
            raise SpecError(f"layer {name!r}: LRN size must be odd and positive, got {layer.size}")
        return LayerInfo(layer, shape, shape, 0, 0)
    if isinstance(layer, Flatten):
        return LayerInfo(layer, shape, (math.prod(shape),), 0, 0)
    if isinstance(layer, Dense):
        if len(shape) != 1:
            raise SpecError(f"layer {name!r} (Dense) needs a flat input, got {shape}: "
                            f"add a Flatten before it")
        return LayerInfo(layer, shape, (layer.out_features,),
                         layer.out_features * (shape[0] + 1), layer.out_features * shape[0])
    if isinstance(layer, (ReLU, Dropout, Softmax)):
        return LayerInfo(layer, shape, shape, 0, 0)
    raise SpecError(f"layer {name!r}: unknown layer kind {type(layer).__name__}")


def _infer(variant: Variant) -> tuple[list[LayerInfo], Optional[str]]:
    """All layer infos up to the first layer whose output is empty, and that layer's name."""
    infos: list[LayerInfo] = []
    shape: Shape = variant.input_shape
    for layer in variant.layers:
        info = _layer_info(layer, shape)
        infos.append(info)
        if min(info.out_shape) < 1:
            return infos, layer.name
        shape = info.out_shape
    return infos, None


def smallest_square_input(variant: Variant, limit: int = 4096) -> Optional[int]:
    """The smallest side S for which a CxSxS input runs through every layer, or None."""
    c = variant.input_shape[0]
    for side in range(1, limit + 1):
        try:
            if _infer(replace(variant, input_shape=(c, side, side)))[1] is None:
                return side
        except SpecError:
            continue
    return None


def infer(variant: Variant) -> list[LayerInfo]:
    """Per-layer shapes, params and MACs; SpecError if the input is too small."""
    infos, failed = _infer(variant)
    if failed is not None:
        bad = infos[-1]
        smallest = smallest_square_input(variant)
        c = variant.input_shape[0]
        hint = (f"the smallest input that works is {c}x{smallest}x{smallest}"
                if smallest else "no square input up to 4096 works")
        raise SpecError(
            f"input {'x'.join(map(str, variant.input_shape))} is too small for variant "
            f"{variant.name!r}: at layer {bad.name!r} ({bad.kind}) the size drops below 1 "
            f"({'x'.join(map(str, bad.in_shape))} -> {'x'.join(map(str, bad.out_shape))}); {hint}")
    return infos


def totals(infos: list[LayerInfo]) -> dict[str, int]:
    """Total parameters, multiply-adds and FLOPs (= 2 x MACs)."""
    macs = sum(i.macs for i in infos)
    return {"params": sum(i.params for i in infos), "macs": macs, "flops": 2 * macs}


def param_shapes(variant: Variant) -> dict[str, tuple[int, ...]]:
    """Canonical parameter names and shapes: ``<layer>.weight`` (OIHW or (out, in)) and
    ``<layer>.bias``, in layer order."""
    shapes: dict[str, tuple[int, ...]] = {}
    for info in infer(variant):
        layer = info.layer
        if isinstance(layer, Conv2d):
            shapes[f"{layer.name}.weight"] = (layer.out_channels, info.in_shape[0] // layer.groups,
                                              layer.kernel, layer.kernel)
            shapes[f"{layer.name}.bias"] = (layer.out_channels,)
        elif isinstance(layer, Dense):
            shapes[f"{layer.name}.weight"] = (layer.out_features, info.in_shape[0])
            shapes[f"{layer.name}.bias"] = (layer.out_features,)
    return shapes

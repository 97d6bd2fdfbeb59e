"""Hypothesis strategies: random but valid small networks, built through the spec.

``variants()`` draws a ``Variant`` layer by layer, inferring the shape so far with
``common.shapes.infer`` so that every layer it adds fits the map it gets (no example is
thrown away for being too small). Tensors stay tiny (a few channels, maps up to 31x31,
dense layers up to 16 wide) so one example runs through a framework in well under a second.

Ranges:

- input ``(C, H, W)``: C in 1..3, H and W in 7..31 (odd and even);
- 1 to 3 conv blocks: Conv2d (kernel 1..5, stride 1..3, groups a divisor of the input
  channels, 1..4 output channels per group, at most 12; padding ``"valid"``, ``"same"``,
  symmetric 0..2 or asymmetric 0..3 per side) + ReLU, then an optional LRN (size 1, 3, 5
  or 7; alpha 1e-5..1e-3 log-uniform, beta 0.5..1, k 0.5..3: with pixel-scale inputs and
  He weights ``alpha * sum(a^2)`` is 0.01..100, so the term matters), then an optional
  MaxPool2d (kernel 1..4, stride 1..3, padding 0..kernel // 2, floor or ceil mode);
- an optional AdaptiveAvgPool2d to 1..7 rows and columns (smaller or larger than its
  input: the spec's bins allow both);
- Flatten, 0 to 2 hidden Dense (1..16 wide) + ReLU each with an optional Dropout
  (p 0.1..0.7), the output Dense (2..6 classes), an optional final Softmax.
"""

from __future__ import annotations

from hypothesis import strategies as st

from common.shapes import infer
from common.spec import (
    LRN, AdaptiveAvgPool2d, Conv2d, Dense, Dropout, Flatten, Layer, MaxPool2d, ReLU, Softmax,
    SpecError, Variant,
)

MAX_CHANNELS = 12


def _out_shape(layers: list[Layer], input_shape: tuple[int, int, int]):
    """The output shape of ``layers`` on ``input_shape``, or None if they do not fit."""
    try:
        return infer(Variant("partial", tuple(layers), input_shape, 1, "fuzz"))[-1].out_shape
    except SpecError:
        return None


@st.composite
def conv_padding(draw):
    kind = draw(st.sampled_from(["valid", "same", "symmetric", "asymmetric"]))
    if kind in ("valid", "same"):
        return kind
    if kind == "symmetric":
        p = draw(st.integers(0, 2))
        return (p, p, p, p)
    return tuple(draw(st.integers(0, 3)) for _ in range(4))


@st.composite
def conv_block(draw, i: int, layers: list[Layer], input_shape):
    """Conv + ReLU [+ LRN] [+ MaxPool] appended to ``layers`` if they fit the map."""
    c = _out_shape(layers, input_shape)[0] if layers else input_shape[0]
    groups = draw(st.sampled_from([g for g in range(1, c + 1) if c % g == 0]))
    per_group = draw(st.integers(1, max(1, MAX_CHANNELS // groups)))
    conv = Conv2d(f"conv{i}", groups * per_group, draw(st.integers(1, 5)),
                  stride=draw(st.integers(1, 3)), padding=draw(conv_padding()), groups=groups)
    if _out_shape(layers + [conv], input_shape) is None:
        # too big a kernel for this map: the smallest one fits any map of 1x1 and more
        conv = Conv2d(conv.name, conv.out_channels, 1, stride=conv.stride, padding=conv.padding,
                      groups=conv.groups)
    block = [conv, ReLU(f"relu{i}")]
    if draw(st.booleans()):
        block.append(LRN(f"norm{i}", size=draw(st.sampled_from([1, 3, 5, 7])),
                         alpha=10 ** draw(st.floats(-5, -3)), beta=draw(st.floats(0.5, 1.0)),
                         k=draw(st.floats(0.5, 3.0)), alpha_over_size=draw(st.booleans())))
    if draw(st.booleans()):
        kernel = draw(st.integers(1, 4))
        pool = MaxPool2d(f"pool{i}", kernel, draw(st.integers(1, 3)),
                         padding=draw(st.integers(0, kernel // 2)), ceil_mode=draw(st.booleans()))
        if _out_shape(layers + block + [pool], input_shape) is not None:
            block.append(pool)
    return block


@st.composite
def variants(draw) -> Variant:
    input_shape = (draw(st.integers(1, 3)), draw(st.integers(7, 31)), draw(st.integers(7, 31)))
    layers: list[Layer] = []
    for i in range(1, draw(st.integers(1, 3)) + 1):
        block = draw(conv_block(i, layers, input_shape))
        if _out_shape(layers + block, input_shape) is None:
            break  # the map is already 1x1 with a stride that cannot keep it: stop here
        layers += block
    if draw(st.booleans()):
        layers.append(AdaptiveAvgPool2d("avgpool", (draw(st.integers(1, 7)), draw(st.integers(1, 7)))))
    layers.append(Flatten("flatten"))
    for j in range(draw(st.integers(0, 2))):
        layers += [Dense(f"fc{j}", draw(st.integers(1, 16))), ReLU(f"fc_relu{j}")]
        if draw(st.booleans()):
            layers.append(Dropout(f"drop{j}", p=draw(st.floats(0.1, 0.7))))
    classes = draw(st.integers(2, 6))
    layers.append(Dense("logits", classes))
    if draw(st.booleans()):
        layers.append(Softmax("softmax"))
    variant = Variant("fuzz", tuple(layers), input_shape, classes, "hypothesis")
    infer(variant)  # valid by construction; a SpecError here is a bug in this strategy
    return variant

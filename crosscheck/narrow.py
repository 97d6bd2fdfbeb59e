"""The step check's stand-in for a variant: the same network, narrowed.

What the optimizer-step check (``crosscheck.step``) learns from a variant is the set of
parameters a training step updates (which layers carry a weight and a bias, in which
layout each framework stores them, the flatten order into the first dense layer) and
the training step's own graph (train-mode forward, loss, backward). None of that depends
on how wide a layer is: the optimizers are elementwise and the same code for every
variant. The width is what costs: full-size AlexNet's 58M dense weights made the step
check 280 of the default crosscheck's 500 seconds, and most of its memory (float64
weights, moments, peaks and three steps of gradients, per framework).

``narrow`` keeps every layer, kernel, stride, padding, group count, LRN window, pooling
mode, dropout, the input size and the classes, and caps only the widths: a convolution
at ``CONV_CHANNELS`` output channels (a multiple of every group count, so each group
keeps several channels), a hidden dense layer at ``HIDDEN_UNITS``. What a width can
break (a layer's arithmetic at full size) the forward, backward and fast-path checks
still see at full size; ``tests/test_step.py`` shows the optimizer porting bugs caught
on the narrowed variants as on the small ones.
"""

from __future__ import annotations

import math
from dataclasses import replace

from common.spec import Conv2d, Dense, Variant

#: output channels of a narrowed convolution (rounded up to a multiple of the groups)
CONV_CHANNELS = 16
#: units of a narrowed hidden dense layer; the logits layer keeps ``num_classes``
HIDDEN_UNITS = 64


def narrow(variant: Variant) -> Variant:
    """``variant`` with no convolution wider than ``CONV_CHANNELS`` and no hidden dense
    layer wider than ``HIDDEN_UNITS``; unchanged where nothing is wider."""
    groups = math.lcm(*(layer.groups for layer in variant.layers if isinstance(layer, Conv2d)))
    # groups must divide every conv's input and output channels: round the cap up to them
    channels = -(-max(CONV_CHANNELS, 2 * groups) // groups) * groups
    logits = variant.logits_layer
    layers = []
    for layer in variant.layers:
        if isinstance(layer, Conv2d) and layer.out_channels > channels:
            layer = replace(layer, out_channels=channels)
        elif isinstance(layer, Dense) and layer.name != logits and layer.out_features > HIDDEN_UNITS:
            layer = replace(layer, out_features=HIDDEN_UNITS)
        layers.append(layer)
    if tuple(layers) == variant.layers:
        return variant
    return replace(variant, layers=tuple(layers))


def narrowing(variant: Variant, narrowed: Variant) -> str:
    """What ``narrow`` changed, in words for the report; "" where nothing."""
    changed = [f"{a.name} {_width(a)}->{_width(b)}" for a, b in zip(variant.layers, narrowed.layers)
               if a != b]
    return f"narrowed: {', '.join(changed)}" if changed else ""


def _width(layer: Conv2d | Dense) -> int:
    return layer.out_channels if isinstance(layer, Conv2d) else layer.out_features

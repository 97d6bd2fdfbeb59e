"""AlexNet in PyTorch, built from the framework-neutral spec.

Read it beside ``impls/mxnet_gluon/model.py`` and ``impls/tensorflow/model.py``:
the same walk over the spec's layers, each mapped to the framework's own module.
Children are named as in the spec (``conv1``, ``relu1``, ``fc6``...), so the
``state_dict`` keys are the canonical weight names and layout (OIHW, (out, in)).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from common.conventions import lrn_alpha_divided_by_size
from common.shapes import LayerInfo, infer
from common.spec import (
    LRN, AdaptiveAvgPool2d, Conv2d, Dense, Dropout, Flatten, MaxPool2d, ReLU, Softmax, Variant,
)


class AsymmetricPadConv2d(nn.Conv2d):
    """A convolution after explicit zero padding ``(top, bottom, left, right)``:
    ``nn.Conv2d`` pads symmetrically only, TensorFlow's SAME may not."""

    def __init__(self, *args, pad: tuple[int, int, int, int], **kwargs) -> None:
        super().__init__(*args, padding=0, **kwargs)
        top, bottom, left, right = pad
        self.pad = (left, right, top, bottom)  # F.pad takes the last axis first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, self.pad))


def make_layer(info: LayerInfo) -> nn.Module:
    """The PyTorch module for one spec layer, with shapes resolved by ``infer``."""
    layer = info.layer
    if isinstance(layer, Conv2d):
        top, bottom, left, right = info.padding
        args = (info.in_shape[0], layer.out_channels, layer.kernel)
        if (top, left) == (bottom, right):
            return nn.Conv2d(*args, stride=layer.stride, padding=(top, left), groups=layer.groups)
        return AsymmetricPadConv2d(*args, stride=layer.stride, groups=layer.groups, pad=info.padding)
    if isinstance(layer, ReLU):
        return nn.ReLU()  # not inplace: every layer's output is kept for the crosscheck
    if isinstance(layer, LRN):
        return nn.LocalResponseNorm(layer.size, alpha=lrn_alpha_divided_by_size(layer),
                                    beta=layer.beta, k=layer.k)
    if isinstance(layer, MaxPool2d):
        return nn.MaxPool2d(layer.kernel, layer.stride, padding=layer.padding,
                            ceil_mode=layer.ceil_mode)
    if isinstance(layer, AdaptiveAvgPool2d):
        return nn.AdaptiveAvgPool2d(layer.output_size)
    if isinstance(layer, Flatten):
        return nn.Flatten(1)
    if isinstance(layer, Dense):
        return nn.Linear(info.in_shape[0], layer.out_features)
    if isinstance(layer, Dropout):
        return nn.Dropout(layer.p)
    if isinstance(layer, Softmax):
        return nn.Softmax(dim=1)
    raise TypeError(f"no PyTorch module for {type(layer).__name__}")


class AlexNet(nn.Sequential):
    """An AlexNet variant: one child module per spec layer, named as in the spec.

    Args:
        variant: the spec (``common.variants.get_variant``).
    Input shape: ``(N, C, H, W)`` with ``(C, H, W) == variant.input_shape``.
    Output shape: ``(N, variant.num_classes)``.
    """

    def __init__(self, variant: Variant) -> None:
        super().__init__(OrderedDict((info.name, make_layer(info)) for info in infer(variant)))
        self.variant = variant

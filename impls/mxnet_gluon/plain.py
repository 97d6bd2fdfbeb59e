"""The Gluon model zoo's AlexNet (``mxnet.gluon.model_zoo.vision.alexnet``, torchvision's
layers), the yardstick of ``alexnet bench --plain``: the spec-built model must be as fast."""

from __future__ import annotations

import mxnet as mx
from mxnet.gluon.model_zoo import vision


def plain_alexnet(ctx: mx.Context, num_classes: int = 1000) -> mx.gluon.HybridBlock:
    """The model zoo's AlexNet, randomly initialized on ``ctx`` (no download)."""
    model = vision.alexnet(classes=num_classes)
    model.initialize(mx.init.Xavier(), ctx=ctx)
    return model

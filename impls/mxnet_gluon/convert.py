"""Canonical weights in and out of the Gluon model: the layouts are the same
(OIHW, (out, in), C*H*W flatten), so each spec layer's ``weight``/``bias``
parameters are copied as they are."""

from __future__ import annotations

import mxnet as mx
import numpy as np
from mxnet.gluon import nn

from common.weights import Weights
from impls.mxnet_gluon.model import AlexNet


def parameters(model: AlexNet) -> dict[str, mx.gluon.Parameter]:
    """Canonical key -> Gluon parameter, for every convolution and dense layer."""
    params = {}
    for name, block in model.named_layers():
        if isinstance(block, (nn.Conv2D, nn.Dense)):
            params[f"{name}.weight"], params[f"{name}.bias"] = block.weight, block.bias
    return params


def load_canonical(model: AlexNet, weights: Weights) -> None:
    """Copy canonical weights into an initialized ``model`` (every key must match)."""
    params = parameters(model)
    if set(params) != set(weights):
        raise KeyError(f"weights do not fit the model: missing {sorted(set(params) - set(weights))}, "
                       f"unexpected {sorted(set(weights) - set(params))}")
    for key, param in params.items():
        param.set_data(mx.nd.array(weights[key], ctx=param.list_ctx()[0], dtype=np.float32))


def export_canonical(model: AlexNet) -> Weights:
    """The model's parameters as canonical float32 NumPy arrays."""
    return {key: param.data().asnumpy().astype(np.float32) for key, param in parameters(model).items()}

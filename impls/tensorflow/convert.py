"""Canonical weights in and out of the Keras model, through ``common.conventions``:
OIHW <-> HWIO convolution kernels, ``(out, in)`` <-> ``(in, out)`` dense kernels,
and for the first Dense after a Flatten, C*H*W <-> Keras's H*W*C input order."""

from __future__ import annotations

from typing import Optional

import keras
import numpy as np
from keras import layers

from common.conventions import dense_from_keras, dense_to_keras, hwio_to_oihw, oihw_to_hwio
from common.weights import Weights
from impls.tensorflow.model import flatten_inputs


def _parametric(model: keras.Sequential) -> list[layers.Layer]:
    return [layer for layer in model.layers if isinstance(layer, (layers.Conv2D, layers.Dense))]


def load_canonical(model: keras.Sequential, weights: Weights) -> None:
    """Copy canonical weights into ``model`` (strict: every key must match)."""
    expected = {f"{layer.name}.{p}" for layer in _parametric(model) for p in ("weight", "bias")}
    missing, unexpected = sorted(expected - set(weights)), sorted(set(weights) - expected)
    if missing or unexpected:
        raise KeyError(f"weights do not fit the model: missing {missing}, unexpected {unexpected}")
    flattened = flatten_inputs(model)
    for layer in _parametric(model):
        weight = np.asarray(weights[f"{layer.name}.weight"], dtype=np.float32)
        kernel = (oihw_to_hwio(weight) if isinstance(layer, layers.Conv2D)
                  else dense_to_keras(weight, flattened.get(layer.name)))
        layer.set_weights([kernel, np.asarray(weights[f"{layer.name}.bias"], dtype=np.float32)])


def export_canonical(model: keras.Sequential, values: Optional[list] = None) -> Weights:
    """The model's parameters as canonical float32 NumPy arrays; or, given ``values``
    in ``model.trainable_variables`` order (e.g. gradients), those, mapped the same way."""
    flattened = flatten_inputs(model)
    by_variable = None if values is None else {id(v): g for v, g in zip(model.trainable_variables, values)}
    weights: Weights = {}
    for layer in _parametric(model):
        pair = (layer.get_weights() if by_variable is None
                else [by_variable[id(v)] for v in (layer.kernel, layer.bias)])
        kernel, bias = (np.asarray(v, dtype=np.float32) for v in pair)
        weights[f"{layer.name}.weight"] = (hwio_to_oihw(kernel) if isinstance(layer, layers.Conv2D)
                                           else dense_from_keras(kernel, flattened.get(layer.name)))
        weights[f"{layer.name}.bias"] = bias
    return weights

"""Canonical weights in and out of the Keras model, through ``common.conventions``:
OIHW <-> HWIO convolution kernels, ``(out, in)`` <-> ``(in, out)`` dense kernels,
and for the first Dense after a Flatten, C*H*W <-> Keras's H*W*C input order; and the
``.weights.h5`` files Keras writes for the model.

"Native" arrays are the Keras layout under canonical keys: what elementwise work
(the step check's reference optimizer) can run on without converting every step.
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Optional

import keras
import numpy as np
from keras import layers

from common.conventions import dense_from_keras, dense_to_keras, hwio_to_oihw, oihw_to_hwio
from common.spec import Variant
from common.weights import Weights
from impls.loading import WeightMismatch, check_weight_shapes
from impls.tensorflow.model import build_alexnet, flatten_inputs


def keyed_variables(model: keras.Sequential) -> dict[str, keras.Variable]:
    """Canonical key -> the Keras variable holding it (kernel as ``weight``), in order."""
    return {f"{layer.name}.{key}": variable for layer in model.layers
            if isinstance(layer, (layers.Conv2D, layers.Dense))
            for key, variable in (("weight", layer.kernel), ("bias", layer.bias))}


def _check_keys(model: keras.Sequential, weights: Weights) -> None:
    expected = set(keyed_variables(model))
    missing, unexpected = sorted(expected - set(weights)), sorted(set(weights) - expected)
    if missing or unexpected:
        raise KeyError(f"weights do not fit the model: missing {missing}, unexpected {unexpected}")


def to_native(model: keras.Sequential, arrays: Weights) -> Weights:
    """Canonical arrays (weights or gradients, any float dtype) in the Keras layout."""
    flattened = flatten_inputs(model)
    native = {}
    for key, array in arrays.items():
        name, kind = key.rsplit(".", 1)
        layer = model.get_layer(name)
        chw = flattened.get(name)
        if kind == "weight" and chw is not None and np.shape(array)[1] != np.prod(chw):
            # the permutation would silently pick C*H*W of the columns (a pool that rounds
            # differently makes the flatten shorter): refuse, as the other frameworks do
            raise WeightMismatch(key, tuple(layer.kernel.shape), tuple(np.shape(array))[::-1])
        if kind == "weight":
            array = (oihw_to_hwio(array) if isinstance(layer, layers.Conv2D)
                     else dense_to_keras(array, chw))
        native[key] = np.asarray(array)
    return native


def from_native(model: keras.Sequential, arrays: Weights) -> Weights:
    """Inverse of ``to_native``, as float32."""
    flattened = flatten_inputs(model)
    canonical = {}
    for key, array in arrays.items():
        name, kind = key.rsplit(".", 1)
        layer = model.get_layer(name)
        array = np.asarray(array, dtype=np.float32)
        if kind == "weight":
            array = (hwio_to_oihw(array) if isinstance(layer, layers.Conv2D)
                     else dense_from_keras(array, flattened.get(name)))
        canonical[key] = array
    return canonical


#: the last conversions ``load_canonical`` made, newest first: (what the conversion depended
#: on, weak references to the canonical arrays, their Keras-layout copies). A crosscheck
#: builds one variant's weights into a Keras model five times (forward, backward, dropout,
#: fast path, ONNX export) and the dense transposes were most of each build. At most two
#: entries and one of them over ``SMALL`` bytes: one full-size variant's Keras copies, which
#: the step check's narrowed weights (built between the backward and fast-path checks) do
#: not push out. The canonical arrays are not kept alive by it.
_LOADED: list[tuple[tuple, list[weakref.ref], Weights]] = []
SMALL = 16 << 20


def _native_to_load(model: keras.Sequential, canonical: Weights) -> Weights:
    """``to_native(model, canonical)``, reusing an earlier result for the very same arrays
    into a model of the same layers, converted by the same functions (a test that plants
    a conversion bug by replacing one gets its own conversion)."""
    context = (to_native, dense_to_keras, oihw_to_hwio, tuple(flatten_inputs(model).items()),
               tuple((key, type(model.get_layer(key.rsplit(".", 1)[0])), np.shape(v), v.dtype)
                     for key, v in canonical.items()))
    for i, (last_context, refs, native) in enumerate(_LOADED):
        if last_context == context and len(refs) == len(canonical) and all(
                ref() is value for ref, value in zip(refs, canonical.values())):
            _LOADED.insert(0, _LOADED.pop(i))
            return native
    big = lambda arrays: sum(np.asarray(v).nbytes for v in arrays.values()) > SMALL  # noqa: E731
    if big(canonical):  # the old full-size copies go before the new ones are made
        _LOADED[:] = [entry for entry in _LOADED if not big(entry[2])]
    native = to_native(model, canonical)
    _LOADED.insert(0, (context, [weakref.ref(v) for v in canonical.values()], native))
    del _LOADED[2:]
    return native


def load_canonical(model: keras.Sequential, weights: Weights) -> None:
    """Copy canonical weights into ``model`` (strict: every key must match)."""
    _check_keys(model, weights)
    native = _native_to_load(model, {k: np.asarray(v, dtype=np.float32) for k, v in weights.items()})
    check_weight_shapes({key: None if v is None else tuple(v.shape)
                         for key, v in keyed_variables(model).items()},
                        {key: v.shape for key, v in native.items()})
    for key, variable in keyed_variables(model).items():
        variable.assign(native[key])


def native_weights(model: keras.Sequential) -> Weights:
    """The model's parameters in the Keras layout, under canonical keys."""
    return {key: np.asarray(variable.numpy(), dtype=np.float32)
            for key, variable in keyed_variables(model).items()}


def export_canonical(model: keras.Sequential) -> Weights:
    """The model's parameters as canonical float32 NumPy arrays."""
    return from_native(model, native_weights(model))


def read_weights_h5(path: Path, variant: Variant) -> Weights:
    """A Keras ``.weights.h5`` file of this package's model for ``variant``, loaded by
    Keras itself (``load_weights``) and returned as canonical arrays."""
    model = build_alexnet(variant, kernel_initializer="zeros")
    model.load_weights(str(path))
    return export_canonical(model)


def write_weights_h5(path: Path, variant: Variant, weights: Weights) -> None:
    """Canonical ``weights`` as Keras's ``save_weights`` file (the path must end in
    ``.weights.h5``, as Keras requires)."""
    model = build_alexnet(variant, kernel_initializer="zeros")
    load_canonical(model, weights)
    model.save_weights(str(path))

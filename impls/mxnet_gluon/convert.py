"""Canonical weights in and out of the Gluon model and ``.params`` files: the layouts are
the same (OIHW, (out, in), C*H*W flatten), so each spec layer's ``weight``/``bias``
parameters are copied as they are; only the names in a file differ."""

from __future__ import annotations

from pathlib import Path

import mxnet as mx
import numpy as np
from mxnet.gluon import nn

from common.spec import Variant
from common.weights import Weights
from impls.loading import check_weight_shapes
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
    check_weight_shapes({key: None if p is None else tuple(p.shape) for key, p in params.items()},
                        {key: np.shape(v) for key, v in weights.items()})
    if set(params) != set(weights):
        raise KeyError(f"weights do not fit the model: missing {sorted(set(params) - set(weights))}, "
                       f"unexpected {sorted(set(weights) - set(params))}")
    for key, param in params.items():
        # straight into the parameter's own array: an NDArray made first and then
        # ``set_data`` would copy all 60M values twice (measured: 0.8 s a paper build, not 0.55 s)
        value = np.ascontiguousarray(weights[key], dtype=np.float32)
        for array in param.list_data():
            array[:] = value


def export_canonical(model: AlexNet) -> Weights:
    """The model's parameters as canonical float32 NumPy arrays."""
    return {key: param.data().asnumpy().astype(np.float32) for key, param in parameters(model).items()}


def structural_names(variant: Variant) -> dict[str, str]:
    """Canonical key -> the name ``save_parameters`` gives it (``layers.<i>.weight``): the
    path of the parameter's block in the model, read off an uninitialized model."""
    model = AlexNet(variant)
    by_param = {id(param): key for key, param in parameters(model).items()}
    return {by_param[id(param)]: name for name, param in model._collect_params_with_prefix().items()}


def read_params(path: Path) -> Weights:
    """A ``.params`` file as float32 NumPy arrays, whatever its names: MXNet's own binary
    NDArray format (``mx.nd.load``), which holds no code."""
    loaded = mx.nd.load(str(path))
    if not isinstance(loaded, dict):
        raise ValueError("its arrays have no names (saved from a list, not by save_parameters)")
    for key, value in loaded.items():
        if not np.issubdtype(value.dtype, np.floating):
            raise ValueError(f"array {key!r} has dtype {np.dtype(value.dtype).name}, not a float type")
    return {key: value.asnumpy().astype(np.float32) for key, value in loaded.items()}


def write_params(path: Path, arrays: Weights) -> None:
    """``arrays`` in MXNet's ``.params`` format, as ``save_parameters`` writes it."""
    mx.nd.save(str(path), {key: mx.nd.array(value, dtype=np.float32) for key, value in arrays.items()})

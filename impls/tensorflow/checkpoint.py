"""Keras checkpoints: the native ``.weights.h5`` file, the optimizer's variables as
arrays, and the seed of the dropout masks, so a resumed run repeats an uninterrupted one.

Parallel to ``impls/pytorch/checkpoint.py`` and ``impls/mxnet_gluon/checkpoint.py``.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

#: Keras 3's own weights file (``model.save_weights``)
NATIVE_SUFFIX = ".weights.h5"


def save_native(model: keras.Sequential, path: Path) -> None:
    """The weights as ``model.save_weights`` writes them."""
    model.save_weights(str(path))


def optimizer_state(optimizer: keras.optimizers.Optimizer) -> dict[str, np.ndarray]:
    """Every optimizer variable (iteration count, learning rate, momenta or moments),
    keyed by its position in ``optimizer.variables``."""
    return {f"{i:04d}": np.asarray(v.numpy()) for i, v in enumerate(optimizer.variables)}


def load_optimizer_state(optimizer: keras.optimizers.Optimizer, arrays: dict[str, np.ndarray]) -> None:
    """Restore what ``optimizer_state`` saved into an optimizer built over the same model."""
    variables = optimizer.variables
    if len(arrays) != len(variables):
        raise ValueError(f"optimizer state has {len(arrays)} arrays, the optimizer {len(variables)}")
    for i, variable in enumerate(variables):
        value = arrays[f"{i:04d}"]
        if tuple(value.shape) != tuple(variable.shape):
            raise ValueError(f"optimizer variable {variable.path}: saved shape {value.shape}, "
                             f"expected {tuple(variable.shape)}")
        variable.assign(value)


def reseed(model: keras.Sequential, seed: int) -> None:
    """Re-seed each Dropout layer's own ``SeedGenerator`` (re-seeding TensorFlow's global
    generator would not reach it): a different stream per layer, derived from ``seed``."""
    for index, layer in enumerate(model.layers):
        generator = getattr(layer, "seed_generator", None)
        if generator is not None:
            layer_seed = int(np.random.default_rng([seed, index]).integers(1, 2**31))
            generator.state.assign(np.array([layer_seed, 0], dtype=generator.state.dtype))

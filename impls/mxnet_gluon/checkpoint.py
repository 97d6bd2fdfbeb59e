"""MXNet Gluon checkpoints: the native ``.params`` file, the Trainer's optimizer state as
arrays, and the seed of the dropout masks, so a resumed run repeats an uninterrupted one.

Parallel to ``impls/pytorch/checkpoint.py`` and ``impls/tensorflow/checkpoint.py``.
``Trainer.save_states`` would pickle the updater, so the states are read and written
as plain arrays here instead.
"""

from __future__ import annotations

from pathlib import Path

import mxnet as mx
import numpy as np
from mxnet import gluon

from impls.mxnet_gluon.model import AlexNet

#: Gluon's own parameter file (``net.save_parameters``)
NATIVE_SUFFIX = ".params"


def save_native(model: AlexNet, path: Path) -> None:
    """The parameters as ``HybridBlock.save_parameters`` writes them."""
    model.save_parameters(str(path))


def _updater(trainer: gluon.Trainer):
    if not trainer._kv_initialized:
        trainer._init_kvstore()
    if trainer._update_on_kvstore:
        raise NotImplementedError("optimizer state on a kvstore is not checkpointed")
    return trainer._updaters[0]


def optimizer_state(trainer: gluon.Trainer) -> dict[str, np.ndarray]:
    """Each parameter's optimizer state (SGD: momentum; Adam: mean and variance) keyed
    ``"<index>.<j>"``, the per-parameter update counts (Adam's bias correction uses
    them) keyed ``"count.<index>"``, and ``"num_update"``."""
    updater = _updater(trainer)
    arrays: dict[str, np.ndarray] = {}
    for index, state in updater.states.items():
        parts = state if isinstance(state, (tuple, list)) else (state,)
        for j, part in enumerate(parts):
            if part is not None:
                arrays[f"{index}.{j}"] = part.asnumpy()
    for index, count in updater.optimizer._index_update_count.items():
        arrays[f"count.{index}"] = np.asarray(count, dtype=np.int64)
    arrays["num_update"] = np.asarray(updater.optimizer.num_update, dtype=np.int64)
    return arrays


def load_optimizer_state(trainer: gluon.Trainer, arrays: dict[str, np.ndarray]) -> None:
    """Restore what ``optimizer_state`` saved into a fresh Trainer over the same parameters."""
    updater = _updater(trainer)
    optimizer = updater.optimizer
    parts: dict[int, dict[int, np.ndarray]] = {}
    for key, value in arrays.items():
        head, _, tail = key.partition(".")
        if head == "count":
            optimizer._index_update_count[int(tail)] = int(value)
        elif head == "num_update":
            optimizer.num_update = int(value)
        else:
            parts.setdefault(int(head), {})[int(tail)] = value
    for index, by_position in parts.items():
        context = trainer._params[index].list_ctx()[0]
        values = [mx.nd.array(by_position[j], ctx=context, dtype=by_position[j].dtype)
                  for j in sorted(by_position)]
        updater.states[index] = values[0] if len(values) == 1 else tuple(values)
        updater.states_synced[index] = True


def reseed(model: AlexNet, seed: int) -> None:
    """Seed the generator ``nn.Dropout`` draws its masks from, on every device."""
    mx.random.seed(seed, ctx="all")

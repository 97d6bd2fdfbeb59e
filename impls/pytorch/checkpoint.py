"""PyTorch checkpoints: the native ``state_dict`` file, the optimizer's state as arrays,
and the seed of the dropout masks, so a resumed run repeats an uninterrupted one.

Parallel to ``impls/mxnet_gluon/checkpoint.py`` and ``impls/tensorflow/checkpoint.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from impls.pytorch.model import AlexNet

#: torch's own file format; read it back with ``torch.load(path, weights_only=True)``
NATIVE_SUFFIX = ".pt"


def save_native(model: AlexNet, path: Path) -> None:
    """``model.state_dict()`` as torch writes it (tensors only, loadable without unpickling code)."""
    torch.save(model.state_dict(), path)


def optimizer_state(optimizer: torch.optim.Optimizer) -> dict[str, np.ndarray]:
    """Every state tensor of ``optimizer`` (momentum buffers; Adam's step and moments),
    keyed ``"<parameter index>.<name>"``."""
    return {f"{index}.{name}": (value.detach().cpu().numpy() if torch.is_tensor(value)
                                else np.asarray(value))
            for index, entries in optimizer.state_dict()["state"].items()
            for name, value in entries.items()}


def load_optimizer_state(optimizer: torch.optim.Optimizer, arrays: dict[str, np.ndarray]) -> None:
    """Restore what ``optimizer_state`` saved; the hyperparameters stay the optimizer's own."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in arrays.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = torch.from_numpy(np.array(value))
    optimizer.load_state_dict({"state": state,
                               "param_groups": optimizer.state_dict()["param_groups"]})


def reseed(model: AlexNet, seed: int) -> None:
    """Seed the generator ``nn.Dropout`` draws its masks from."""
    torch.manual_seed(seed)

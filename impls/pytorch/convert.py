"""Canonical weights in and out of the PyTorch model and ``state_dict`` files: the layouts
are the same (OIHW, (out, in), C*H*W flatten), so this is a ``state_dict`` with NumPy values
and the model's parameter names are the canonical keys."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from common.weights import Weights
from impls.loading import check_weight_shapes
from impls.pytorch.model import AlexNet


def load_canonical(model: AlexNet, weights: Weights) -> None:
    """Copy canonical weights into ``model`` (strict: every key must match)."""
    device = next(model.parameters()).device
    check_weight_shapes({key: tuple(p.shape) for key, p in model.state_dict().items()},
                        {key: np.shape(v) for key, v in weights.items()})
    model.load_state_dict({k: torch.from_numpy(np.asarray(v, dtype=np.float32)).to(device)
                           for k, v in weights.items()}, strict=True)


def export_canonical(model: AlexNet) -> Weights:
    """The model's parameters as canonical float32 NumPy arrays."""
    return {k: v.detach().cpu().numpy().astype(np.float32) for k, v in model.state_dict().items()}


def read_state_dict(path: Path) -> Weights:
    """A ``state_dict`` file (``torch.save``) as float32 NumPy arrays, whatever its names.
    ``weights_only=True``: a file that needs code to unpickle is refused and never runs.
    A checkpoint that wraps the state_dict (``{"state_dict": ...}``, ``{"model": ...}``) is
    unwrapped."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ValueError("it holds objects other than tensors, which only running pickled code "
                         "could rebuild: refused, and nothing in it was run") from None
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise ValueError("it holds no state_dict (a dict of tensors)")
    not_float = [f"{key!r} has dtype {value.dtype}" for key, value in state.items()
                 if not value.is_floating_point()]
    if not_float:
        raise ValueError(f"{'; '.join(not_float[:3])}: weights must be floating point")
    return {key: value.detach().float().numpy() for key, value in state.items()}


def write_state_dict(path: Path, arrays: Weights) -> None:
    """``arrays`` as a ``state_dict`` file that ``torch.load(weights_only=True)`` reads."""
    torch.save({key: torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
                for key, value in arrays.items()}, path)

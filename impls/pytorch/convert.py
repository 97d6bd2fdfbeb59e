"""Canonical weights in and out of the PyTorch model: the layouts are the same
(OIHW, (out, in), C*H*W flatten), so this is a ``state_dict`` with NumPy values."""

from __future__ import annotations

import numpy as np
import torch

from common.weights import Weights
from impls.pytorch.model import AlexNet


def load_canonical(model: AlexNet, weights: Weights) -> None:
    """Copy canonical weights into ``model`` (strict: every key must match)."""
    device = next(model.parameters()).device
    model.load_state_dict({k: torch.from_numpy(np.asarray(v, dtype=np.float32)).to(device)
                           for k, v in weights.items()}, strict=True)


def export_canonical(model: AlexNet) -> Weights:
    """The model's parameters as canonical float32 NumPy arrays."""
    return {k: v.detach().cpu().numpy().astype(np.float32) for k, v in model.state_dict().items()}

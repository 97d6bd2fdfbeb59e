"""One PyTorch training step with ``torch.optim``, built from the neutral optimizer spec.

Parallel to ``impls/mxnet_gluon/training.py`` and ``impls/tensorflow/training.py``.
The arguments come from ``common.optim.framework_optimizer``, never written here.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from common.optim import OptimizerSpec, framework_optimizer
from impls.pytorch.model import AlexNet


def make_optimizer(model: AlexNet, spec: OptimizerSpec) -> torch.optim.Optimizer:
    """``torch.optim.SGD`` or ``Adam`` over every parameter of ``model``."""
    args = framework_optimizer(spec, "pytorch")
    return getattr(torch.optim, args.cls)(model.parameters(), **args.kwargs)


def train_logits(model: AlexNet, x: torch.Tensor,
                 dropout_scales: Optional[dict[str, torch.Tensor]] = None) -> torch.Tensor:
    """The train-mode forward pass up to ``variant.logits_layer`` (the loss folds a final
    Softmax in); ``dropout_scales`` as in ``train_step``."""
    scales = dropout_scales or {}
    logits = x
    for name, module in model.named_children():
        logits = logits * scales[name] if name in scales else module(logits)
        if name == model.variant.logits_layer:
            break
    return logits


def train_step(model: AlexNet, optimizer: torch.optim.Optimizer, x: torch.Tensor,
               labels: torch.Tensor, dropout_scales: Optional[dict[str, torch.Tensor]] = None,
               keep_grads: bool = True,
               ) -> tuple[float, dict[str, torch.Tensor], torch.Tensor]:
    """Forward in train mode, mean softmax cross-entropy, backward, ``optimizer.step()``.

    ``dropout_scales`` (layer name -> ``mask / (1 - p)``) replaces each Dropout's own
    random mask; None lets the model draw its own. The loss takes the output of
    ``variant.logits_layer``. Returns the loss and the gradients the step used, keyed
    like the ``state_dict`` (empty unless ``keep_grads``), and the logits.
    """
    model.train()
    optimizer.zero_grad(set_to_none=True)
    logits = train_logits(model, x, dropout_scales)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    grads = {key: p.grad.detach().clone() for key, p in model.named_parameters()} if keep_grads else {}
    optimizer.step()
    return loss.item(), grads, logits.detach()


@torch.no_grad()
def predict(model: AlexNet, x: torch.Tensor) -> torch.Tensor:
    """The network's output in eval mode."""
    return model.eval()(x)

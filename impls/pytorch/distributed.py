"""Data-parallel PyTorch: ``torch.distributed`` with DistributedDataParallel.

Parallel to ``impls/mxnet_gluon/distributed.py`` and ``impls/tensorflow/distributed.py``.
The process group is read from the variables ``torchrun`` sets (MASTER_ADDR, MASTER_PORT,
RANK, WORLD_SIZE), so a worker runs the same under ``distributed/launch.py`` and under
``torchrun --nnodes``. gloo on the CPU, NCCL on GPUs. DDP averages the gradients over
the workers during the backward pass; every worker's ``torch.optim`` then takes the same
step, weight decay included, from the same averaged gradient.
"""

from __future__ import annotations

import os
from typing import Optional

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from common.optim import OptimizerSpec
from common.spec import Variant
from common.weights import Weights
from impls.pytorch.model import AlexNet
from impls.pytorch.training import make_optimizer, train_logits


class _Logits(torch.nn.Module):
    """The model up to its logits, as one module DDP can wrap (DDP syncs in its forward)."""

    def __init__(self, model: AlexNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, scales: dict[str, torch.Tensor]) -> torch.Tensor:
        return train_logits(self.model, x, scales)


class Engine:
    name = "pytorch"
    report = False  # the gradients stay in the parameters' .grad anyway

    def __init__(self, backend) -> None:
        self.backend = backend
        self.cuda = backend.device.type == "cuda"
        if self.cuda:  # one GPU per worker on its node
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
            backend.device = torch.device("cuda", torch.cuda.current_device())
        dist.init_process_group("nccl" if self.cuda else "gloo")
        self.rank, self.size = dist.get_rank(), dist.get_world_size()
        self._wrapped: dict[int, DistributedDataParallel] = {}

    def build(self, variant: Variant, weights: Weights) -> AlexNet:
        return self.backend.build(variant, weights)

    def make_optimizer(self, model: AlexNet, spec: OptimizerSpec) -> torch.optim.Optimizer:
        # DDP broadcasts rank 0's parameters when it wraps them: the replicas start equal
        self._wrapped[id(model)] = DistributedDataParallel(_Logits(model))
        return make_optimizer(model, spec)

    def fit_step(self, model: AlexNet, optimizer: torch.optim.Optimizer, x: np.ndarray,
                 labels: np.ndarray, dropout_scales: Optional[dict[str, float]] = None,
                 ) -> tuple[float, int]:
        model.train()
        optimizer.zero_grad(set_to_none=True)
        y = torch.as_tensor(labels, device=self.backend.device)
        logits = self._wrapped[id(model)](self.backend._tensor(x), dropout_scales or {})
        loss = F.cross_entropy(logits, y)
        loss.backward()  # DDP's hooks average each gradient bucket over the workers here
        optimizer.step()
        return loss.item(), int((logits.argmax(1) == y).sum().item())

    def gradients(self, model: AlexNet, optimizer: torch.optim.Optimizer) -> Weights:
        return {key: p.grad.cpu().numpy() for key, p in model.named_parameters()}

    def sum_all(self, values: list[float]) -> list[float]:
        total = torch.tensor(values, dtype=torch.float64,
                             device=self.backend.device if self.cuda else "cpu")
        dist.all_reduce(total)
        return total.tolist()

    def close(self) -> None:
        self._wrapped.clear()
        dist.barrier()  # no collective of another rank still in flight when the group goes
        dist.destroy_process_group()

"""Data-parallel MXNet Gluon: the ``dist_sync`` KVStore.

Parallel to ``impls/pytorch/distributed.py`` and ``impls/tensorflow/distributed.py``.
MXNet's parameter server (ps-lite) has three roles, each a process: a scheduler, the
servers and the workers, which find the scheduler through the DMLC_* variables that
``distributed/launch.py`` sets (and MXNet's ``tools/launch.py`` across machines). Each
worker's ``gluon.Trainer`` pushes its gradients to the KVStore, which sums them over the
workers; the Trainer's ``step(workers)`` rescales the sum of the workers' batch means to
their average, and every worker then applies the same update locally
(``update_on_kvstore=False``: the optimizer and its state live on the workers, where
the checkpoints read them, not on the servers).
"""

from __future__ import annotations

from typing import Optional

import mxnet as mx
import numpy as np
from mxnet import gluon

from common.optim import OptimizerSpec, framework_optimizer
from common.spec import Variant
from common.weights import Weights
from impls.mxnet_gluon.convert import parameters
from impls.mxnet_gluon.model import AlexNet
from impls.mxnet_gluon.training import loss_and_backward


#: the KVStore key of the first ``sum_all``, past any parameter index
SUM_KEYS = 1 << 20


class Engine:
    name = "mxnet"
    report = False  # the gradients stay in the parameters' grad() anyway

    def __init__(self, backend) -> None:
        self.backend = backend
        self.kvstore = mx.kv.create("dist_sync")
        self.rank, self.size = self.kvstore.rank, self.kvstore.num_workers
        self._sums = 0  # KVStore keys of sum_all, one per call

    def build(self, variant: Variant, weights: Weights) -> AlexNet:
        return self.backend.build(variant, weights)  # the same weights on every worker

    def make_optimizer(self, model: AlexNet, spec: OptimizerSpec) -> gluon.Trainer:
        args = framework_optimizer(spec, "mxnet")
        trainer = gluon.Trainer(model.collect_params(), args.cls, dict(args.kwargs),
                                kvstore=self.kvstore, update_on_kvstore=False)
        # The Trainer broadcasts rank 0's weights through the KVStore lazily, in its first
        # step; there the broadcast's pull of the last parameter (the lowest priority) came
        # back after the server had replaced the value by the first gradient sum, and rank
        # 0's fc weights became that sum (the distributed check: 7.8e13 units). Broadcast
        # now, wait for it, and let no worker push a gradient before every worker has it.
        trainer._init_kvstore()
        trainer._init_params()
        mx.nd.waitall()
        self.kvstore._barrier()
        return trainer

    def fit_step(self, model: AlexNet, trainer: gluon.Trainer, x: np.ndarray, labels: np.ndarray,
                 dropout_scales: Optional[dict[str, float]] = None) -> tuple[float, int]:
        y = self.backend._array(labels)
        loss, logits = loss_and_backward(model, self.backend._array(x), y, dropout_scales)
        # each worker's gradient is its shard's mean: the KVStore sums them, step(size) averages
        trainer.step(self.size)
        return float(loss.asscalar()), int((logits.argmax(axis=1).asnumpy().astype(np.int64)
                                            == labels).sum())

    def gradients(self, model: AlexNet, trainer: gluon.Trainer) -> Weights:
        # the KVStore left the workers' sum in each gradient; the update rescaled it by 1/size
        return {key: param.grad().asnumpy() / self.size for key, param in parameters(model).items()}

    def sum_all(self, values: list[float]) -> list[float]:
        key = SUM_KEYS + self._sums  # integer keys, as the Trainer's (0, 1, ...)
        self._sums += 1
        total = mx.nd.zeros(len(values), dtype="float64")
        self.kvstore.init(key, total)
        self.kvstore.pushpull(key, mx.nd.array(values, dtype="float64"), out=total)
        return [float(v) for v in total.asnumpy()]

    def close(self) -> None:
        self.kvstore._barrier()

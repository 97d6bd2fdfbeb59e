"""Timed MXNet Gluon passes for ``alexnet bench``, hybridized (``impls.base.BenchSession``).

Parallel to ``impls/pytorch/bench.py`` and ``impls/tensorflow/bench.py``. Fast path:
``hybridize(static_alloc=True, static_shape=True)``, one cached graph per pass. MXNet's
engine is asynchronous: a call returns when its work is queued, so ``sync`` is
``mx.nd.waitall()`` (timing without it once let a famous benchmark report impossible numbers).
"""

from __future__ import annotations

import os
from typing import Callable, Optional

import mxnet as mx
import numpy as np
from mxnet import autograd
from mxnet.gluon import nn

from common.spec import Variant
from common.weights import Weights
from impls.base import FastPaths, FrameworkUnavailable, Precision
from impls.mxnet_gluon.convert import parameters
from impls.mxnet_gluon.model import AlexNet
from impls.mxnet_gluon.training import cross_entropy


class MXNetBench:
    """``model`` and its layers up to the logits (a slice sharing every parameter) on one batch."""

    def __init__(self, build: Callable[[Variant], AlexNet], variant: Variant, x: np.ndarray,
                 labels: np.ndarray, ctx: mx.Context, fast: FastPaths, precision: Precision) -> None:
        if precision == "bf16":
            raise FrameworkUnavailable(
                "mxnet: 1.9.1 computes bfloat16 only through oneDNN (CPUs with AVX-512), and this "
                "package does not cast its Gluon models to it; no bf16 on GPUs")
        if precision == "tf32":
            if ctx.device_type != "gpu":
                raise FrameworkUnavailable("mxnet: tf32 is a GPU tensor-core mode; use fp32 on the CPU")
            os.environ.pop("NVIDIA_TF32_OVERRIDE", None)  # cuDNN's default: TF32 allowed
        self.ctx = ctx
        self.model = build(variant)
        n_logits = len(variant.up_to_logits().layers)
        self.logits_net = self.model if n_logits == len(variant.layers) else self.model.layers[:n_logits]
        self.applied = {"hybridize": fast.hybridize}
        self._hybridize()
        self.x = mx.nd.array(x, ctx=ctx, dtype=np.float32)
        self.labels = mx.nd.array(labels, ctx=ctx)

    def _hybridize(self) -> None:
        """The fast path; it also makes the next call trace the graphs afresh."""
        if self.applied["hybridize"]:
            for net in (self.model, self.logits_net):
                net.hybridize(static_alloc=True, static_shape=True)

    def forward(self) -> None:
        self.model(self.x)  # outside autograd.record: predict mode

    def train(self) -> None:
        with autograd.record(train_mode=True):
            loss = cross_entropy(self.logits_net(self.x), self.labels)
        loss.backward()

    def sync(self) -> None:
        mx.nd.waitall()

    def logits(self) -> np.ndarray:
        return self.model(self.x).asnumpy()

    def gradients(self) -> Weights:
        # Dropout off, to compare with the float64 reference, but in train mode: after a
        # predict-mode forward oneDNN's max pooling has no argmax workspace, and its backward
        # sends each window's gradient to the window's first element (apache/mxnet#10994).
        # Gluon's Dropout at rate 0 is the identity; _hybridize retraces the graphs.
        dropouts: list[nn.Dropout] = []
        self.model.apply(lambda block: dropouts.append(block) if isinstance(block, nn.Dropout) else None)
        rates = [block._rate for block in dropouts]
        try:
            for block in dropouts:
                block._rate = 0.0
            self._hybridize()
            self.train()
        finally:
            for block, rate in zip(dropouts, rates):
                block._rate = rate
            self._hybridize()
        return {key: param.grad(self.ctx).asnumpy() for key, param in parameters(self.model).items()}

    def matmul(self, n: int) -> Callable[[], None]:
        a = mx.nd.random.normal(shape=(n, n), ctx=self.ctx)
        b = a.T.copy()
        return lambda: mx.nd.dot(a, b)

    def peak_memory(self) -> tuple[Optional[int], str]:
        if self.ctx.device_type == "gpu":
            free, total = mx.context.gpu_memory_info(self.ctx.device_id)
            return total - free, "in use at the end (MXNet keeps no peak; its pool included)"
        return None, "CPU: see the process's peak RSS"

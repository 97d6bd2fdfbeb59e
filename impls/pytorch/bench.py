"""Timed PyTorch passes for ``alexnet bench``, with PyTorch's fast paths (``impls.base.BenchSession``).

Parallel to ``impls/mxnet_gluon/bench.py`` and ``impls/tensorflow/bench.py``. Fast paths:
channels-last memory format, cuDNN benchmark mode, optionally ``torch.compile``.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F

from common.spec import Variant
from common.weights import Weights
from impls.base import FastPaths, FrameworkUnavailable, Precision
from impls.pytorch.model import AlexNet


class PyTorchBench:
    """``model`` (eval output) and its logits network (the training loss's input) on one
    batch, with the fast paths in ``fast`` applied."""

    def __init__(self, build: Callable[[Variant], AlexNet], variant: Variant, x: np.ndarray,
                 labels: np.ndarray, device: torch.device, fast: FastPaths,
                 precision: Precision) -> None:
        self.device, self.precision = device, precision
        if precision == "tf32" and device.type != "cuda":
            raise FrameworkUnavailable("pytorch: tf32 is a GPU tensor-core mode; use fp32 on the CPU")
        fmt = torch.channels_last if fast.channels_last else torch.contiguous_format
        self.model = build(variant).to(memory_format=fmt).eval()
        # after build, which sets the crosscheck's exact settings (backend.cuda_numerics)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = precision == "tf32"
        torch.backends.cudnn.enabled = True
        torch.backends.cudnn.benchmark = fast.cudnn_benchmark
        torch.backends.cudnn.deterministic = not fast.cudnn_benchmark
        # the logits network shares every parameter with the model (a final Softmax dropped)
        n_logits = len(variant.up_to_logits().layers)
        self.logits_net = self.model if n_logits == len(variant.layers) else torch.nn.Sequential(
            OrderedDict(list(self.model.named_children())[:n_logits]))
        self.x = torch.from_numpy(np.ascontiguousarray(x, np.float32)).to(device)
        self.x = self.x.contiguous(memory_format=fmt)
        self.labels = torch.as_tensor(labels, device=device)
        self._forward = torch.compile(self.model) if fast.compile else self.model
        self._logits = torch.compile(self.logits_net) if fast.compile else self.logits_net
        self.applied = {"channels_last": fast.channels_last, "compile": fast.compile,
                        "cudnn_benchmark": fast.cudnn_benchmark and device.type == "cuda"}

    def _autocast(self):
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @torch.no_grad()
    def _run_forward(self) -> torch.Tensor:
        # the mode is switched only when it changes: torch.compile guards on it, and a
        # switch back and forth every call would recompile every call
        if self.model.training:
            self.model.eval()
        with self._autocast():
            return self._forward(self.x)

    def forward(self) -> None:
        self._run_forward()

    def _backward(self, training: bool) -> None:
        if self.model.training != training:
            self.model.train(training)
        self.model.zero_grad(set_to_none=True)
        with self._autocast():
            loss = F.cross_entropy(self._logits(self.x), self.labels)
        loss.backward()

    def train(self) -> None:
        self._backward(training=True)

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def logits(self) -> np.ndarray:
        return self._run_forward().float().cpu().numpy()

    def gradients(self) -> Weights:
        self._backward(training=False)  # dropout off: comparable with the float64 reference
        return _canonical_grads(self.model)

    def matmul(self, n: int) -> Callable[[], None]:
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float32
        a = torch.randn(n, n, device=self.device, dtype=dtype)
        b = torch.randn(n, n, device=self.device, dtype=dtype)
        return lambda: torch.mm(a, b)

    def peak_memory(self) -> tuple[Optional[int], str]:
        if self.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return peak, "torch.cuda.max_memory_allocated"
        return None, "CPU: see the process's peak RSS"


def _canonical_grads(model: AlexNet) -> Weights:
    """Each parameter's ``.grad`` under its canonical key (PyTorch's layout is canonical;
    ``contiguous`` undoes channels-last)."""
    return {key: p.grad.float().contiguous().cpu().numpy() for key, p in model.named_parameters()}

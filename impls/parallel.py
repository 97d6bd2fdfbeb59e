"""The interface of data-parallel training, and the registry of each framework's engine.

Each framework trains data-parallel with its own distributed engine, in
``impls/<framework>/distributed.py``: PyTorch's DistributedDataParallel (gloo on CPUs,
NCCL on GPUs), TensorFlow's ``MultiWorkerMirroredStrategy``, MXNet's ``dist_sync``
KVStore. One process per worker; each process builds an engine from the environment its
launcher set (``distributed/launch.py``, or the engine's own launcher across machines).

An engine wraps the framework's single-process backend (``impls.base.Backend``): the
model, its conversion and checkpoints are the backend's; the engine adds what crosses
processes: the model's replicas, the gradients' average, the metrics' sum.
"""

from __future__ import annotations

import importlib
from typing import Any, Optional, Protocol

import numpy as np

from common.optim import OptimizerSpec
from common.spec import Variant
from common.weights import Weights

#: framework -> the module whose ``Engine`` trains it data-parallel
ENGINES: dict[str, str] = {
    "pytorch": "impls.pytorch.distributed",
    "mxnet": "impls.mxnet_gluon.distributed",
    "tensorflow": "impls.tensorflow.distributed",
}

#: what each engine is called, for messages and the README
ENGINE_NAMES: dict[str, str] = {
    "pytorch": "torch.distributed DistributedDataParallel (gloo on CPUs, NCCL on GPUs)",
    "mxnet": "MXNet KVStore dist_sync (ps-lite: a scheduler, a server, the workers)",
    "tensorflow": "tf.distribute.MultiWorkerMirroredStrategy (TF_CONFIG)",
}


class Engine(Protocol):
    """One worker of a data-parallel run (NumPy in and out, canonical NCHW layout)."""

    name: str
    rank: int   # this worker, 0 .. size - 1; rank 0 alone prints and writes
    size: int   # the number of workers
    backend: Any  # the framework's single-process ``Backend``
    #: ``fit_step`` keeps the gradient it applied, for ``gradients`` (the distributed check
    #: sets it; TensorFlow then runs one more all-reduce per step)
    report: bool

    def build(self, variant: Variant, weights: Weights) -> Any:
        """This worker's replica of the model, holding ``weights`` (the same on every worker)."""

    def make_optimizer(self, model: Any, spec: OptimizerSpec) -> Any:
        """The framework's own optimizer for ``spec``, as the engine needs it."""

    def fit_step(self, model: Any, optimizer: Any, x: np.ndarray, labels: np.ndarray,
                 dropout_scales: Optional[dict[str, float]] = None) -> tuple[float, int]:
        """One data-parallel step on this worker's shard ``x``: train-mode forward, mean
        loss, backward, the gradients averaged over the workers by the engine, the
        optimizer's update. Returns this shard's loss and correct predictions.
        ``dropout_scales``: layer name -> a factor replacing that Dropout (1.0: off)."""

    def gradients(self, model: Any, optimizer: Any) -> Weights:
        """The gradient the last ``fit_step`` applied, averaged over the workers, before any
        weight decay (canonical keys, the framework's native layout, as
        ``GradientBackend.train_step``'s): the distributed check's float64 update takes it."""

    def sum_all(self, values: list[float]) -> list[float]:
        """Each value summed over the workers (every worker gets the sums)."""

    def close(self) -> None:
        """Leave the group (the last call of a worker)."""


def load_engine(framework: str, device: str = "cpu", exact: bool = False) -> Engine:
    """This process's worker of ``framework``'s engine, from the launcher's environment;
    ``exact``: float32-exact kernels (the crosscheck), see ``Backend.use_device``."""
    from impls.base import load_backend, select_device

    backend = load_backend(framework)
    select_device(backend, device, exact)
    return importlib.import_module(ENGINES[framework]).Engine(backend)

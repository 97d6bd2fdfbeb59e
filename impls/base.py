"""The interface the crosscheck drives, and the registry of framework backends.

A backend is imported only when used, so a missing framework is reported as
skipped instead of failing the whole run.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass
from typing import Any, Callable, Literal, Optional, Protocol

import numpy as np

from common.optim import OptimizerSpec
from common.spec import Variant
from common.weights import Weights

#: framework name -> (backend module, the package that must be importable)
FRAMEWORKS: dict[str, tuple[str, str]] = {
    "pytorch": ("impls.pytorch.backend", "torch"),
    "mxnet": ("impls.mxnet_gluon.backend", "mxnet"),
    "tensorflow": ("impls.tensorflow.backend", "tensorflow"),
}

#: forward-only witnesses (the crosscheck's forward check only; not bench or train):
#: name -> (backend module, the packages that must all be importable). A framework's model
#: exported to ONNX by its own exporter and run in onnxruntime (``impls/onnx``).
WITNESSES: dict[str, tuple[str, tuple[str, ...]]] = {
    "onnx-pytorch": ("impls.onnx.from_pytorch", ("onnxruntime", "onnx", "onnxscript", "torch")),
    "onnx-tensorflow": ("impls.onnx.from_tensorflow", ("onnxruntime", "onnx", "tf2onnx", "tensorflow")),
}


class FrameworkUnavailable(RuntimeError):
    """The framework, or the requested device for it, is not available here."""


class Backend(Protocol):
    """What each ``impls/<framework>/backend.py`` provides."""

    name: str

    def version(self) -> str:
        """The framework's version string."""

    def use_device(self, device: str, exact: bool = True) -> str:
        """Select ``"cpu"`` or ``"gpu"`` (TF32 off on GPUs); return a description of it.
        ``exact``: float32 kernels only, for the crosscheck (PyTorch: cuDNN off, whose
        algorithms are not float32-exact); False for training and evaluation.
        Raises FrameworkUnavailable if the device is not there."""

    def build(self, variant: Variant, weights: Weights) -> Any:
        """The framework's model for ``variant`` on the selected device, in eval mode,
        holding ``weights`` (canonical layout)."""

    def export_weights(self, model: Any) -> Weights:
        """The model's parameters back in the canonical layout, as float32 NumPy arrays."""

    def layer_outputs(self, model: Any, x: np.ndarray) -> dict[str, np.ndarray]:
        """Every spec layer's eval-mode output for the NCHW float32 batch ``x``, keyed
        by layer name, as NumPy arrays in canonical layout (NCHW, C*H*W flatten)."""


class GradientBackend(Backend, Protocol):
    """Training interface of the backward and step checks: layer-level and whole steps.

    Tensors in and out are NumPy, canonical layout (NCHW, C*H*W flatten), float32 in,
    float32 out. ``scale`` is the dropout factor ``mask / (1 - p)`` for a Dropout layer
    in train mode (None: eval mode); every other layer ignores it.
    """

    def forward_layer(self, model: Any, name: str, x: np.ndarray,
                      scale: "np.ndarray | None" = None) -> np.ndarray:
        """The output of layer ``name`` for input ``x``."""

    def vjp_layer(self, model: Any, name: str, x: np.ndarray, grad_out: np.ndarray,
                  scale: "np.ndarray | None" = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """dL/d(input) and dL/d(parameters) (canonical keys and layout) of layer ``name``
        at input ``x``, given dL/d(output), by the framework's own autograd."""

    def dropout_train(self, model: Any, name: str, x: np.ndarray) -> np.ndarray:
        """The model's own layer ``name`` (a Dropout) run in train mode on ``x``: its own
        mask, drawn by the framework's own RNG, not a shared one. The model's mode is left
        as it was. The dropout check (``crosscheck/dropout.py``) judges the output."""

    def loss_and_grad(self, logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
        """The framework's own mean softmax cross-entropy and its gradient w.r.t. logits."""

    def make_optimizer(self, model: Any, spec: OptimizerSpec) -> Any:
        """The framework's own optimizer for ``spec`` (arguments from
        ``common.optim.framework_optimizer``) over every parameter of ``model``."""

    def train_step(self, model: Any, optimizer: Any, x: np.ndarray, labels: np.ndarray,
                   scales: dict[str, np.ndarray]) -> tuple[float, Weights]:
        """One whole training step with the given dropout factors: train-mode forward,
        loss, backward, optimizer step. Returns the loss and the gradients it used
        (canonical keys, native layout, before any weight decay)."""

    def native_weights(self, model: Any) -> Weights:
        """The parameters under canonical keys in the framework's own layout (Keras:
        HWIO and (in, out) kernels): elementwise comparisons need no conversion."""

    def to_native(self, model: Any, arrays: Weights) -> Weights:
        """Canonical arrays (weights or gradients, dtype kept) in the native layout."""


#: the arithmetic a benchmark runs in: float32, float32 with TF32 tensor cores (GPU), or
#: bfloat16 autocast (each framework's mixed precision: float32 weights, bf16 compute)
Precision = Literal["fp32", "tf32", "bf16"]
PRECISIONS: tuple[str, ...] = ("fp32", "tf32", "bf16")


@dataclass(frozen=True)
class FastPaths:
    """Each framework's own fast path, on by default in ``alexnet bench``. None of them
    may change the numbers: ``alexnet crosscheck --check fastpath`` runs them."""

    channels_last: bool = True    # PyTorch: NHWC memory format for model and input
    cudnn_benchmark: bool = True  # PyTorch: cuDNN picks the fastest algorithm per shape (GPU)
    compile: bool = False         # PyTorch: torch.compile (needs a C++ compiler on the CPU)
    xla: bool = True              # TensorFlow: tf.function(jit_compile=True)
    hybridize: bool = True        # MXNet: hybridize(static_alloc=True, static_shape=True)


class BenchSession(Protocol):
    """One model and one batch, ready to be timed (``impls/<framework>/bench.py``).

    ``forward`` and ``train`` only queue work on the device; ``sync`` waits for it, and
    the benchmark calls it before every clock read.
    """

    applied: dict[str, bool]  # the fast paths this framework has, as applied

    def forward(self) -> None:
        """An eval-mode forward pass of the whole network."""

    def train(self) -> None:
        """A train-mode forward pass to the logits, the mean softmax cross-entropy, and
        the backward pass: every parameter's gradient. No optimizer step."""

    def sync(self) -> None:
        """Block until the device has finished everything queued so far."""

    def logits(self) -> np.ndarray:
        """The output of ``forward`` as float32 NumPy (for the fast-path crosscheck)."""

    def gradients(self) -> Weights:
        """The gradients ``train`` computes, with dropout off, canonical keys and layout."""

    def matmul(self, n: int) -> Callable[[], None]:
        """A function that queues one ``n``x``n`` by ``n``x``n`` product in the session's
        precision on its device: the framework's own measure of the device's peak."""

    def peak_memory(self) -> tuple[Optional[int], str]:
        """(bytes, what was measured) of device memory at its peak since the last call;
        (None, why) on the CPU, where the process's peak RSS is the measure."""


def _packages(name: str) -> tuple[str, ...]:
    if name in WITNESSES:
        return WITNESSES[name][1]
    return (FRAMEWORKS[name][1],)


def is_installed(framework: str) -> bool:
    """Whether the framework's (or witness's) packages can be imported (without importing them)."""
    return all(importlib.util.find_spec(package) is not None for package in _packages(framework))


def is_forward_only(backend: Backend) -> bool:
    """A witness: no gradients, optimizer steps, benchmark sessions or training."""
    return getattr(backend, "forward_only", False)


def select_device(backend: Backend, device: str, exact: bool = True) -> str:
    """Put ``backend`` on ``device``: cpu, gpu, or auto (the GPU where the framework sees
    one, else the CPU). Returns the description of the device. ``exact``: see
    ``Backend.use_device``."""
    if device == "auto":
        try:
            return backend.use_device("gpu", exact)
        except FrameworkUnavailable:
            return backend.use_device("cpu", exact)
    return backend.use_device(device, exact)


def load_backend(framework: str, witnesses: bool = False) -> Backend:
    """Import and return the backend for ``framework`` (or, with ``witnesses``, a name in
    ``WITNESSES`` too); FrameworkUnavailable if absent."""
    known = {**FRAMEWORKS, **WITNESSES} if witnesses else FRAMEWORKS
    if framework not in known:
        raise ValueError(f"unknown framework {framework!r}; choose from {', '.join(known)}")
    module_name = known[framework][0]
    if not is_installed(framework):
        missing = [p for p in _packages(framework) if importlib.util.find_spec(p) is None]
        extra = f"onnx,{framework.removeprefix('onnx-')}" if framework in WITNESSES else framework
        raise FrameworkUnavailable(f"{framework}: package {', '.join(map(repr, missing))} is not "
                                   f"installed (pip install 'alexnet-crosscheck[{extra}]')")
    torch = sys.modules.get("torch")
    torch_threads = torch.get_num_threads() if torch is not None else None
    backend = importlib.import_module(module_name).BACKEND
    if torch_threads is not None and torch.get_num_threads() != torch_threads:
        # Loading MXNet's OpenMP runtime drops PyTorch to one intra-op thread, which slows
        # it down and changes its float rounding (a resumed run would not repeat).
        torch.set_num_threads(torch_threads)
    return backend

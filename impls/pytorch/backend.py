"""The PyTorch backend the crosscheck drives (see ``impls.base.Backend``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from common.optim import OptimizerSpec
from common.spec import Variant
from common.weights import Weights
from impls.base import FastPaths, FrameworkUnavailable, Precision
from impls.pytorch.bench import PyTorchBench
from impls.pytorch.plain import plain_alexnet
from impls.pytorch import checkpoint
from impls.pytorch.convert import export_canonical, load_canonical
from impls.pytorch.model import AlexNet
from impls.pytorch.training import make_optimizer, predict, train_step


def cuda_numerics(exact: bool) -> None:
    """The CUDA settings of a crosscheck (``exact``) or of training. Both: TF32 off (it makes
    float32 convolutions and matmuls ~1e-3 accurate on Ampere+) and deterministic cuDNN, so a
    run repeats bit for bit. The crosscheck also turns cuDNN off: its algorithms are not
    float32-exact (on an H200, the grouped conv2 of ``paper`` got a weight gradient 1.6e-4
    from float64, against ~1e-6 for PyTorch's own CUDA kernels), and which one it picks
    depends on the shapes. The benchmark session (impls/pytorch/bench.py) sets its own."""
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.enabled = not exact
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


class PyTorchBackend:
    name = "pytorch"

    def __init__(self) -> None:
        self.device = torch.device("cpu")
        self.exact = True

    def version(self) -> str:
        return torch.__version__

    def use_device(self, device: str, exact: bool = True) -> str:
        self.exact = exact
        if device == "gpu":
            if not torch.cuda.is_available():
                raise FrameworkUnavailable("pytorch: no CUDA GPU is visible to torch")
            self.device = torch.device("cuda")
            cuda_numerics(exact)
            kernels = "PyTorch's CUDA kernels (cuDNN off)" if exact else "cuDNN deterministic"
            return f"cuda ({torch.cuda.get_device_name()}), TF32 off, {kernels}"
        self.device = torch.device("cpu")
        return "cpu"

    def build(self, variant: Variant, weights: Weights) -> AlexNet:
        cuda_numerics(self.exact)  # a benchmark session built before may have set its own
        with torch.device("meta"):  # no random initialization: every value is loaded next
            model = AlexNet(variant)
        model = model.to_empty(device=self.device).eval()
        load_canonical(model, weights)
        return model

    def trace_shapes(self, variant: Variant) -> list[tuple[str, "tuple[int, ...] | str"]]:
        """Each layer's per-image output shape as the framework's own model computes it,
        on the meta device (shapes only, no arithmetic), or the error of the layer that
        raised, where the trace stops. The verdict of a failed check starts here."""
        with torch.device("meta"):
            model = AlexNet(variant)
            h = torch.empty((1,) + tuple(variant.input_shape))
        trace: list[tuple[str, "tuple[int, ...] | str"]] = []
        for name, module in model.named_children():
            try:
                h = module(h)
            except Exception as exc:  # the framework's own words, for the verdict
                return trace + [(name, f"{type(exc).__name__}: {exc}")]
            trace.append((name, tuple(h.shape[1:])))
        return trace

    def export_weights(self, model: AlexNet) -> Weights:
        return export_canonical(model)

    @torch.no_grad()
    def layer_outputs(self, model: AlexNet, x: np.ndarray) -> dict[str, np.ndarray]:
        outputs: dict[str, np.ndarray] = {}
        h = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device)
        for name, module in model.named_children():
            h = module(h)
            outputs[name] = h.cpu().numpy()
        return outputs

    def _tensor(self, x: np.ndarray, grad: bool = False) -> torch.Tensor:
        return torch.tensor(np.asarray(x, dtype=np.float32), device=self.device, requires_grad=grad)

    def _run_layer(self, model: AlexNet, name: str, x: torch.Tensor, scale) -> torch.Tensor:
        if scale is not None and isinstance(model.get_submodule(name), torch.nn.Dropout):
            return x * self._tensor(scale)  # the shared dropout mask, applied where the spec puts it
        return model.get_submodule(name)(x)

    def forward_layer(self, model: AlexNet, name: str, x: np.ndarray, scale=None) -> np.ndarray:
        with torch.no_grad():
            return self._run_layer(model, name, self._tensor(x), scale).cpu().numpy()

    def vjp_layer(self, model: AlexNet, name: str, x: np.ndarray, grad_out: np.ndarray,
                  scale=None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        module = model.get_submodule(name)
        module.zero_grad(set_to_none=True)
        leaf = self._tensor(x, grad=True)
        self._run_layer(model, name, leaf, scale).backward(self._tensor(grad_out))
        params = {f"{name}.{key}": p.grad.cpu().numpy() for key, p in module.named_parameters()}
        return leaf.grad.cpu().numpy(), params

    def dropout_train(self, model: AlexNet, name: str, x: np.ndarray) -> np.ndarray:
        module = model.get_submodule(name)
        was_training = module.training
        module.train()  # this module alone: its own mask from torch's RNG
        try:
            with torch.no_grad():
                return module(self._tensor(x)).cpu().numpy()
        finally:
            module.train(was_training)

    def loss_and_grad(self, logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
        z = self._tensor(logits, grad=True)
        loss = torch.nn.functional.cross_entropy(z, torch.as_tensor(labels, device=self.device))
        loss.backward()
        return loss.item(), z.grad.cpu().numpy()

    # --- optimizer steps (the step check) ---

    def make_optimizer(self, model: AlexNet, spec: OptimizerSpec) -> torch.optim.Optimizer:
        return make_optimizer(model, spec)

    def train_step(self, model: AlexNet, optimizer: torch.optim.Optimizer, x: np.ndarray,
                   labels: np.ndarray, scales: dict[str, np.ndarray]) -> tuple[float, Weights]:
        loss, grads, _ = train_step(model, optimizer, self._tensor(x),
                                    torch.as_tensor(labels, device=self.device),
                                    {name: self._tensor(s) for name, s in scales.items()})
        return loss, {key: g.cpu().numpy() for key, g in grads.items()}

    # --- training (alexnet train) ---

    def fit_step(self, model: AlexNet, optimizer: torch.optim.Optimizer, x: np.ndarray,
                 labels: np.ndarray) -> tuple[float, int]:
        loss, _, logits = train_step(model, optimizer, self._tensor(x),
                                     torch.as_tensor(labels, device=self.device), keep_grads=False)
        return loss, int((logits.argmax(1).cpu().numpy() == labels).sum())

    def predict(self, model: AlexNet, x: np.ndarray) -> np.ndarray:
        return predict(model, self._tensor(x)).cpu().numpy()

    def native_weights(self, model: AlexNet) -> Weights:
        return export_canonical(model)  # the native layout is the canonical one

    def to_native(self, model: AlexNet, arrays: Weights) -> Weights:
        return dict(arrays)

    # --- checkpoints (alexnet train --resume) ---

    native_suffix = checkpoint.NATIVE_SUFFIX

    def save_native(self, model: AlexNet, path: Path) -> None:
        checkpoint.save_native(model, path)

    def optimizer_state(self, optimizer: torch.optim.Optimizer) -> dict[str, np.ndarray]:
        return checkpoint.optimizer_state(optimizer)

    def load_optimizer_state(self, optimizer: torch.optim.Optimizer, arrays: dict[str, np.ndarray]) -> None:
        checkpoint.load_optimizer_state(optimizer, arrays)

    def reseed(self, model: AlexNet, seed: int) -> None:
        checkpoint.reseed(model, seed)

    # --- benchmark (alexnet bench) ---

    def bench_session(self, variant: Variant, weights: Weights, x: np.ndarray,
                      labels: np.ndarray, fast: FastPaths, precision: Precision) -> PyTorchBench:
        """A ``BenchSession`` on the selected device: ``weights`` in the framework's model."""
        return PyTorchBench(lambda v: self.build(v, weights), variant, x, labels, self.device,
                            fast, precision)

    def plain_bench_session(self, variant: Variant, x: np.ndarray, labels: np.ndarray,
                            fast: FastPaths, precision: Precision) -> PyTorchBench:
        """The same session around the plain hand-written torchvision AlexNet (``plain.py``)."""
        return PyTorchBench(lambda v: plain_alexnet(variant.num_classes).to(self.device), variant, x, labels,
                            self.device, fast, precision)


BACKEND = PyTorchBackend()

"""The MXNet Gluon backend the crosscheck drives (see ``impls.base.Backend``)."""

from __future__ import annotations

import os
from pathlib import Path

import mxnet as mx
import numpy as np
from mxnet.gluon import nn

from common.optim import OptimizerSpec
from common.spec import Variant
from common.weights import Weights
from impls.base import FastPaths, FrameworkUnavailable, Precision
from impls.mxnet_gluon.bench import MXNetBench
from impls.mxnet_gluon.plain import plain_alexnet
from impls.mxnet_gluon import checkpoint
from impls.mxnet_gluon.convert import export_canonical, load_canonical
from impls.mxnet_gluon.model import AlexNet
from impls.mxnet_gluon.training import cross_entropy, make_optimizer, predict, train_step


class MXNetBackend:
    name = "mxnet"

    def __init__(self) -> None:
        self.ctx = mx.cpu()

    def version(self) -> str:
        return mx.__version__

    def use_device(self, device: str, exact: bool = True) -> str:
        if device == "gpu":
            if mx.context.num_gpus() == 0:
                raise FrameworkUnavailable("mxnet: no GPU is visible to MXNet (a CUDA build, "
                                           "e.g. mxnet-cu112, is needed)")
            # TF32 off: MXNet's cuDNN/cuBLAS calls honour NVIDIA_TF32_OVERRIDE, read when CUDA
            # initializes, so it takes effect only if set before MXNet's first GPU call.
            os.environ["NVIDIA_TF32_OVERRIDE"] = "0"
            self.ctx = mx.gpu(0)
            return "gpu(0), NVIDIA_TF32_OVERRIDE=0"
        self.ctx = mx.cpu()
        return "cpu"

    def build(self, variant: Variant, weights: Weights) -> AlexNet:
        model = AlexNet(variant)
        model.initialize(mx.init.Zero(), ctx=self.ctx)  # every value is overwritten next
        load_canonical(model, weights)
        return model

    def trace_shapes(self, variant: Variant) -> list[tuple[str, "tuple[int, ...] | str"]]:
        """Each layer's per-image output shape as the framework's own model computes it
        (zero weights, one zero image), or the error of the layer that raised, where the
        trace stops. The verdict of a failed check starts here."""
        model = AlexNet(variant)
        model.initialize(mx.init.Zero(), ctx=self.ctx)
        h = mx.nd.zeros((1,) + tuple(variant.input_shape), ctx=self.ctx)
        trace: list[tuple[str, "tuple[int, ...] | str"]] = []
        for name, block in model.named_layers():
            try:
                h = block(h)
                h.wait_to_read()  # MXNet raises shape errors only when the result is read
            except Exception as exc:  # the framework's own words, for the verdict
                return trace + [(name, f"{type(exc).__name__}: {str(exc).splitlines()[0]}")]
            trace.append((name, tuple(h.shape[1:])))
        return trace

    def export_weights(self, model: AlexNet) -> Weights:
        return export_canonical(model)

    def layer_outputs(self, model: AlexNet, x: np.ndarray) -> dict[str, np.ndarray]:
        # Outside autograd.record() Gluon is in predict mode: dropout is the identity.
        outputs: dict[str, np.ndarray] = {}
        h = mx.nd.array(x, ctx=self.ctx, dtype=np.float32)
        for name, block in model.named_layers():
            h = block(h)
            outputs[name] = h.asnumpy()
        return outputs

    def _array(self, x: np.ndarray) -> mx.nd.NDArray:
        return mx.nd.array(x, ctx=self.ctx, dtype=np.float32)

    @staticmethod
    def _block(model: AlexNet, name: str) -> nn.HybridBlock:
        return dict(model.named_layers())[name]

    def _run_layer(self, model: AlexNet, name: str, x: mx.nd.NDArray, scale) -> mx.nd.NDArray:
        block = self._block(model, name)
        if scale is not None and isinstance(block, nn.Dropout):
            return x * self._array(scale)  # the shared dropout mask, applied where the spec puts it
        return block(x)

    def forward_layer(self, model: AlexNet, name: str, x: np.ndarray, scale=None) -> np.ndarray:
        # Outside autograd.record() nothing is taped and the Dropout block is the identity.
        return self._run_layer(model, name, self._array(x), scale).asnumpy()

    def vjp_layer(self, model: AlexNet, name: str, x: np.ndarray, grad_out: np.ndarray,
                  scale=None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        block = self._block(model, name)
        for param in block.collect_params().values():  # Conv2D/Dense: weight and bias; else none
            param.grad_req = "write"  # overwrite, never accumulate across calls
            param.zero_grad()  # and no stale gradient from an earlier call survives
        leaf = self._array(x)
        leaf.attach_grad()
        # Train mode: MXNet's oneDNN max pooling keeps the argmax workspace only in a training
        # forward; after an inference forward its backward sends every window's gradient to the
        # window's first element (apache/mxnet#10994). Not for Dropout, where train mode would
        # make Gluon draw its own mask: there eval mode is the identity and the mask is `scale`.
        with mx.autograd.record(train_mode=not isinstance(block, nn.Dropout)):
            out = self._run_layer(model, name, leaf, scale)
        out.backward(self._array(grad_out))
        grads = {f"{name}.{key}": getattr(block, key).grad().asnumpy() for key in ("weight", "bias")
                 if isinstance(block, (nn.Conv2D, nn.Dense))}
        return leaf.grad.asnumpy(), grads

    def dropout_train(self, model: AlexNet, name: str, x: np.ndarray) -> np.ndarray:
        # train_mode without record: Gluon's Dropout draws its own mask, nothing is taped
        with mx.autograd.train_mode():
            return self._block(model, name)(self._array(x)).asnumpy()

    def loss_and_grad(self, logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
        z = self._array(logits)
        z.attach_grad()
        with mx.autograd.record(train_mode=False):
            loss = cross_entropy(z, self._array(labels))
        loss.backward()
        return float(loss.asscalar()), z.grad.asnumpy()

    # --- optimizer steps (the step check) ---

    def make_optimizer(self, model: AlexNet, spec: OptimizerSpec) -> mx.gluon.Trainer:
        return make_optimizer(model, spec)

    def train_step(self, model: AlexNet, trainer: mx.gluon.Trainer, x: np.ndarray,
                   labels: np.ndarray, scales: dict[str, np.ndarray]) -> tuple[float, Weights]:
        loss, grads, _ = train_step(model, trainer, self._array(x), self._array(labels),
                                    {name: self._array(s) for name, s in scales.items()})
        return loss, {key: g.asnumpy() for key, g in grads.items()}

    # --- training (alexnet train) ---

    def fit_step(self, model: AlexNet, trainer: mx.gluon.Trainer, x: np.ndarray,
                 labels: np.ndarray) -> tuple[float, int]:
        loss, _, logits = train_step(model, trainer, self._array(x), self._array(labels),
                                     keep_grads=False)
        return loss, int((logits.argmax(axis=1).asnumpy().astype(np.int64) == labels).sum())

    def predict(self, model: AlexNet, x: np.ndarray) -> np.ndarray:
        return predict(model, self._array(x)).asnumpy()

    def native_weights(self, model: AlexNet) -> Weights:
        return export_canonical(model)  # the native layout is the canonical one

    def to_native(self, model: AlexNet, arrays: Weights) -> Weights:
        return dict(arrays)

    # --- checkpoints (alexnet train --resume) ---

    native_suffix = checkpoint.NATIVE_SUFFIX

    def save_native(self, model: AlexNet, path: Path) -> None:
        checkpoint.save_native(model, path)

    def optimizer_state(self, optimizer: mx.gluon.Trainer) -> dict[str, np.ndarray]:
        return checkpoint.optimizer_state(optimizer)

    def load_optimizer_state(self, optimizer: mx.gluon.Trainer, arrays: dict[str, np.ndarray]) -> None:
        checkpoint.load_optimizer_state(optimizer, arrays)

    def reseed(self, model: AlexNet, seed: int) -> None:
        checkpoint.reseed(model, seed)

    # --- benchmark (alexnet bench) ---

    def bench_session(self, variant: Variant, weights: Weights, x: np.ndarray,
                      labels: np.ndarray, fast: FastPaths, precision: Precision) -> MXNetBench:
        """A ``BenchSession`` on the selected device: ``weights`` in the framework's model."""
        return MXNetBench(lambda v: self.build(v, weights), variant, x, labels, self.ctx,
                          fast, precision)

    def plain_bench_session(self, variant: Variant, x: np.ndarray, labels: np.ndarray,
                            fast: FastPaths, precision: Precision) -> MXNetBench:
        """The same session around the plain hand-written torchvision AlexNet (``plain.py``)."""
        return MXNetBench(lambda v: plain_alexnet(self.ctx, variant.num_classes), variant, x, labels,
                          self.ctx, fast, precision)


BACKEND = MXNetBackend()

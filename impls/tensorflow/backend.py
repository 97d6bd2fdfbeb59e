"""The TensorFlow/Keras backend the crosscheck drives (see ``impls.base.Backend``)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from common.conventions import dense_from_keras, hwc_flat_to_chw, hwc_to_chw_index, hwio_to_oihw
from common.optim import OptimizerSpec
from common.shapes import infer
from common.spec import Dense, Flatten, Variant
from common.weights import Weights
from impls.base import FastPaths, FrameworkUnavailable, Precision
from impls.tensorflow.bench import TensorFlowBench
from impls.tensorflow.plain import plain_alexnet
from impls.tensorflow import checkpoint
from impls.tensorflow.convert import (export_canonical, keyed_variables, load_canonical,
                                      native_weights, to_native)
from impls.tensorflow.model import build_alexnet
from impls.tensorflow.training import cross_entropy, make_optimizer, predict, train_step

#: (C, H, W) of a flattened map while vectors are in Keras's H*W*C order, else None
Chw = Optional[tuple[int, int, int]]


class TensorFlowBackend:
    name = "tensorflow"

    def __init__(self) -> None:
        self.device = "/CPU:0"

    def version(self) -> str:
        return f"{tf.__version__} (keras {keras.__version__})"

    def use_device(self, device: str, exact: bool = True) -> str:
        if device == "gpu":
            gpus = tf.config.list_physical_devices("GPU")
            if not gpus:
                raise FrameworkUnavailable("tensorflow: no GPU is visible to TensorFlow")
            # TF32 off: it would make float32 convolutions and matmuls ~1e-3 accurate on Ampere+.
            tf.config.experimental.enable_tensor_float_32_execution(False)
            self.device = "/GPU:0"
            name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
            return f"/GPU:0 ({name}), TF32 off"
        self.device = "/CPU:0"
        return "cpu"

    def build(self, variant: Variant, weights: Weights) -> keras.Sequential:
        with tf.device(self.device):
            model = build_alexnet(variant, kernel_initializer="zeros")  # overwritten next
            load_canonical(model, weights)
        return model

    def trace_shapes(self, variant: Variant) -> list[tuple[str, "tuple[int, ...] | str"]]:
        """Each layer's per-image output shape as Keras declares it when it builds the
        model, in canonical (C, H, W) order, or the error of the build. The verdict of a
        failed check starts here."""
        try:
            model = build_alexnet(variant, kernel_initializer="zeros")
        except Exception as exc:  # Keras builds eagerly: the layer that cannot apply raises
            return [("(build)", f"{type(exc).__name__}: {exc}")]
        trace: list[tuple[str, "tuple[int, ...] | str"]] = []
        for layer in model.layers:
            shape = tuple(layer.output.shape[1:])
            trace.append((layer.name, (shape[2], shape[0], shape[1]) if len(shape) == 3 else shape))
        return trace

    def export_weights(self, model: keras.Sequential) -> Weights:
        return export_canonical(model)

    def layer_outputs(self, model: keras.Sequential, x: np.ndarray) -> dict[str, np.ndarray]:
        outputs: dict[str, np.ndarray] = {}
        with tf.device(self.device):
            # Canonical NCHW in, Keras's NHWC through every layer, called eagerly in eval mode.
            h = tf.convert_to_tensor(np.ascontiguousarray(x.transpose(0, 2, 3, 1),
                                                          dtype=np.float32))
            chw = None  # (C, H, W) while h is a Keras (H*W*C) flatten, until a Dense mixes it
            for layer in model.layers:
                if isinstance(layer, layers.Flatten):
                    rows, cols, channels = h.shape[1:]
                    chw = (channels, rows, cols)
                elif isinstance(layer, layers.Dense):
                    chw = None
                h = layer(h, training=False)
                out = h.numpy()
                if out.ndim == 4:
                    out = out.transpose(0, 3, 1, 2)
                elif chw is not None:  # the flatten and e.g. a dropout after it
                    out = hwc_flat_to_chw(out, chw)
                outputs[layer.name] = np.ascontiguousarray(out, dtype=np.float32)
        return outputs

    # --- layer-level gradient API (impls.base.GradientBackend) ---

    @staticmethod
    def _flat_chw(model: keras.Sequential, name: str) -> tuple[Chw, Chw]:
        """(C, H, W) of the map flattened into layer ``name``'s input and output while
        they are Keras H*W*C vectors (Flatten up to the first Dense after it), else None."""
        chw: Chw = None
        for info in infer(model._alexnet_variant):
            before = chw
            if isinstance(info.layer, Flatten):
                chw = info.in_shape
            elif isinstance(info.layer, Dense):
                chw = None  # its kernel mixes the order away: canonical and Keras agree after
            if info.name == name:
                return before, chw
        raise KeyError(f"no layer {name!r} in {model.name}")

    @staticmethod
    def _to_keras(x: np.ndarray, chw: Chw) -> tf.Tensor:
        """Canonical array -> Keras layout: NCHW -> NHWC, C*H*W -> H*W*C vectors."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim == 4:
            x = x.transpose(0, 2, 3, 1)
        elif chw is not None:
            x = x[:, hwc_to_chw_index(*chw)]  # chw_vector[perm] == hwc_vector
        return tf.convert_to_tensor(np.ascontiguousarray(x))

    @staticmethod
    def _from_keras(t: tf.Tensor, chw: Chw) -> np.ndarray:
        """Inverse of ``_to_keras``, to a float32 NumPy array."""
        x = t.numpy()
        if x.ndim == 4:
            x = x.transpose(0, 3, 1, 2)
        elif chw is not None:
            x = hwc_flat_to_chw(x, chw)
        return np.ascontiguousarray(x, dtype=np.float32)

    def _run_layer(self, model: keras.Sequential, name: str, x: tf.Tensor,
                   scale: Optional[tf.Tensor]) -> tf.Tensor:
        layer = model.get_layer(name)
        if scale is not None and isinstance(layer, layers.Dropout):
            return x * scale  # the shared dropout mask, applied where the spec puts it
        return layer(x, training=False)

    def forward_layer(self, model: keras.Sequential, name: str, x: np.ndarray,
                      scale: Optional[np.ndarray] = None) -> np.ndarray:
        chw_in, chw_out = self._flat_chw(model, name)
        with tf.device(self.device):
            keras_scale = None if scale is None else self._to_keras(scale, chw_in)
            out = self._run_layer(model, name, self._to_keras(x, chw_in), keras_scale)
            return self._from_keras(out, chw_out)

    def vjp_layer(self, model: keras.Sequential, name: str, x: np.ndarray, grad_out: np.ndarray,
                  scale: Optional[np.ndarray] = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        layer = model.get_layer(name)
        chw_in, chw_out = self._flat_chw(model, name)
        with tf.device(self.device):
            leaf = self._to_keras(x, chw_in)
            keras_scale = None if scale is None else self._to_keras(scale, chw_in)
            params = list(layer.trainable_variables)
            with tf.GradientTape() as tape:
                tape.watch(leaf)  # a constant, not a variable: the tape ignores it otherwise
                out = self._run_layer(model, name, leaf, keras_scale)
            grads = tape.gradient(out, [leaf] + params,
                                  output_gradients=self._to_keras(grad_out, chw_out))
        grad_in = self._from_keras(grads[0], chw_in)
        canonical: dict[str, np.ndarray] = {}
        for var, grad in zip(params, grads[1:]):
            g = np.asarray(grad.numpy(), dtype=np.float32)
            if var.name == "kernel":  # mapped as convert.from_native maps the weight
                g = hwio_to_oihw(g) if isinstance(layer, layers.Conv2D) else dense_from_keras(g, chw_in)
                canonical[f"{name}.weight"] = g
            else:
                canonical[f"{name}.{var.name}"] = np.ascontiguousarray(g)
        return grad_in, canonical

    def dropout_train(self, model: keras.Sequential, name: str, x: np.ndarray) -> np.ndarray:
        chw_in, chw_out = self._flat_chw(model, name)  # after a Flatten: H*W*C vectors
        with tf.device(self.device):
            out = model.get_layer(name)(self._to_keras(x, chw_in), training=True)
            return self._from_keras(out, chw_out)

    def loss_and_grad(self, logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
        with tf.device(self.device):
            z = tf.convert_to_tensor(np.asarray(logits, dtype=np.float32))
            with tf.GradientTape() as tape:
                tape.watch(z)
                loss = cross_entropy(z, tf.convert_to_tensor(np.asarray(labels)))
            grad = tape.gradient(loss, z)
        return float(loss.numpy()), np.ascontiguousarray(grad.numpy(), dtype=np.float32)

    # --- optimizer steps (the step check) ---

    def make_optimizer(self, model: keras.Sequential, spec: OptimizerSpec) -> keras.optimizers.Optimizer:
        with tf.device(self.device):
            return make_optimizer(model, spec)

    def train_step(self, model: keras.Sequential, optimizer: keras.optimizers.Optimizer,
                   x: np.ndarray, labels: np.ndarray,
                   scales: dict[str, np.ndarray]) -> tuple[float, Weights]:
        with tf.device(self.device):
            keras_scales = {name: self._to_keras(s, self._flat_chw(model, name)[0])
                            for name, s in scales.items()}
            loss, grads, _ = train_step(model, optimizer, self._to_keras(x, None),
                                        tf.convert_to_tensor(np.asarray(labels)), keras_scales)
        by_variable = {id(v): g for v, g in zip(model.trainable_variables, grads)}
        return loss, {key: by_variable[id(v)].numpy() for key, v in keyed_variables(model).items()}

    def native_weights(self, model: keras.Sequential) -> Weights:
        return native_weights(model)

    # --- training (alexnet train) ---

    def fit_step(self, model: keras.Sequential, optimizer: keras.optimizers.Optimizer,
                 x: np.ndarray, labels: np.ndarray) -> tuple[float, int]:
        with tf.device(self.device):
            loss, _, logits = train_step(model, optimizer, self._to_keras(x, None),
                                         tf.convert_to_tensor(np.asarray(labels)))
        return loss, int((np.argmax(logits.numpy(), axis=1) == labels).sum())

    def predict(self, model: keras.Sequential, x: np.ndarray) -> np.ndarray:
        with tf.device(self.device):
            return predict(model, self._to_keras(x, None)).numpy()

    def to_native(self, model: keras.Sequential, arrays: Weights) -> Weights:
        return to_native(model, arrays)

    # --- checkpoints (alexnet train --resume) ---

    native_suffix = checkpoint.NATIVE_SUFFIX

    def save_native(self, model: keras.Sequential, path: Path) -> None:
        checkpoint.save_native(model, path)

    def optimizer_state(self, optimizer: keras.optimizers.Optimizer) -> dict[str, np.ndarray]:
        return checkpoint.optimizer_state(optimizer)

    def load_optimizer_state(self, optimizer: keras.optimizers.Optimizer, arrays: dict[str, np.ndarray]) -> None:
        checkpoint.load_optimizer_state(optimizer, arrays)

    def reseed(self, model: keras.Sequential, seed: int) -> None:
        checkpoint.reseed(model, seed)

    # --- benchmark (alexnet bench) ---

    def bench_session(self, variant: Variant, weights: Weights, x: np.ndarray,
                      labels: np.ndarray, fast: FastPaths, precision: Precision) -> TensorFlowBench:
        """A ``BenchSession`` on the selected device: ``weights`` in the framework's model."""
        return TensorFlowBench(lambda v: self.build(v, weights), variant, x, labels, self.device,
                               fast, precision)

    def plain_bench_session(self, variant: Variant, x: np.ndarray, labels: np.ndarray,
                            fast: FastPaths, precision: Precision) -> TensorFlowBench:
        """The same session around the plain hand-written torchvision AlexNet (``plain.py``)."""
        return TensorFlowBench(lambda v: plain_alexnet(variant.num_classes), variant, x, labels,
                               self.device, fast, precision)


# Keras 3 wraps each grouped convolution on the CPU in a new tf.function (XLA), so every call
# "retraces" and TensorFlow warns about it; the results are right, the warning is noise.
tf.get_logger().setLevel("ERROR")


BACKEND = TensorFlowBackend()

"""Timed TensorFlow/Keras passes for ``alexnet bench``, with XLA (``impls.base.BenchSession``).

Parallel to ``impls/pytorch/bench.py`` and ``impls/mxnet_gluon/bench.py``. Fast path:
each pass is one ``tf.function(jit_compile=True)``; bf16 is Keras's ``mixed_bfloat16``
policy (float32 variables, bfloat16 compute), set before the model is built.
"""

from __future__ import annotations

from typing import Callable, Optional

import keras
import numpy as np
import tensorflow as tf

from common.spec import Variant
from common.weights import Weights
from impls.base import FastPaths, FrameworkUnavailable, Precision
from impls.tensorflow.convert import from_native, keyed_variables
from impls.tensorflow.training import cross_entropy


class TensorFlowBench:
    """``model`` and its layers up to the logits on one NHWC batch, each pass compiled."""

    def __init__(self, build: Callable[[Variant], keras.Sequential], variant: Variant,
                 x: np.ndarray, labels: np.ndarray, device: str, fast: FastPaths,
                 precision: Precision) -> None:
        self.device, self.precision = device, precision
        on_gpu = device.startswith("/GPU")
        if precision == "tf32" and not on_gpu:
            raise FrameworkUnavailable("tensorflow: tf32 is a GPU tensor-core mode; use fp32 on the CPU")
        tf.config.experimental.enable_tensor_float_32_execution(precision == "tf32")
        keras.mixed_precision.set_global_policy("mixed_bfloat16" if precision == "bf16" else "float32")
        self.model = build(variant)
        dropped = len(variant.layers) - len(variant.up_to_logits().layers)  # a final Softmax
        self.n_logits = len(self.model.layers) - dropped
        self.variables = list(keyed_variables(self.model).values())
        with tf.device(device):
            self.x = tf.constant(np.ascontiguousarray(x.transpose(0, 2, 3, 1), np.float32))
            self.labels = tf.constant(np.asarray(labels))
        compile_ = (lambda f: tf.function(f, jit_compile=True)) if fast.xla else tf.function
        self._forward = compile_(lambda: self.model(self.x, training=False))
        self._grads = {training: compile_(lambda training=training: self._loss_grads(training))
                       for training in (True, False)}
        self._last: Optional[object] = None
        self.applied = {"xla": fast.xla}

    def _loss_grads(self, training: bool) -> list[tf.Tensor]:
        with tf.GradientTape() as tape:
            if self.n_logits == len(self.model.layers):
                h = self.model(self.x, training=training)
            else:  # the loss folds the final Softmax in
                h = self.x
                for layer in self.model.layers[:self.n_logits]:
                    h = layer(h, training=training)
            loss = cross_entropy(tf.cast(h, tf.float32), self.labels)
        # every gradient is returned: one left unused could be pruned by XLA, untimed
        return tape.gradient(loss, self.variables)

    def forward(self) -> None:
        with tf.device(self.device):
            self._last = self._forward()

    def train(self) -> None:
        with tf.device(self.device):
            self._last = self._grads[True]()

    def sync(self) -> None:
        """A host copy of a value that depends on the last pass's every output."""
        if self._last is None:
            return
        outputs = self._last if isinstance(self._last, list) else [self._last]
        with tf.device(self.device):
            tf.add_n([tf.cast(tf.reshape(t, [-1])[0], tf.float32) for t in outputs]).numpy()

    def logits(self) -> np.ndarray:
        with tf.device(self.device):
            return tf.cast(self._forward(), tf.float32).numpy()

    def gradients(self) -> Weights:
        with tf.device(self.device):
            grads = self._grads[False]()  # dropout off: comparable with the float64 reference
        keys = keyed_variables(self.model)
        return from_native(self.model, {key: g.numpy() for key, g in zip(keys, grads)})

    def matmul(self, n: int) -> Callable[[], None]:
        dtype = tf.bfloat16 if self.precision == "bf16" else tf.float32
        with tf.device(self.device):
            a = tf.random.normal((n, n), dtype=tf.float32)
            a, b = tf.cast(a, dtype), tf.cast(tf.transpose(a), dtype)

        def product() -> None:
            with tf.device(self.device):
                self._last = tf.matmul(a, b)
        return product

    def peak_memory(self) -> tuple[Optional[int], str]:
        if self.device.startswith("/GPU"):
            peak = tf.config.experimental.get_memory_info(self.device.strip("/"))["peak"]
            tf.config.experimental.reset_memory_stats(self.device.strip("/"))
            return int(peak), "tf.config.experimental.get_memory_info peak"
        return None, "CPU: see the process's peak RSS"

"""Data-parallel TensorFlow: ``tf.distribute.MultiWorkerMirroredStrategy``.

Parallel to ``impls/pytorch/distributed.py`` and ``impls/mxnet_gluon/distributed.py``.
The cluster is read from ``TF_CONFIG`` (every worker's host:port and this one's index),
which ``distributed/launch.py`` writes on one machine and a user writes per machine.
The model and optimizer are built in the strategy's scope, so Keras's variables are
mirrored: created equal on every worker (worker 0's values). Each step runs in
``strategy.run``. Keras 3 divides each replica's loss by the number of replicas, and its
optimizer sums the replicas' gradients by a collective all-reduce (ring): the average.
The coupled weight decay, added to the gradient, is divided likewise
(``impls/tensorflow/training.py``: apply_gradients), else each worker would add it once.
"""

from __future__ import annotations

from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from common.optim import OptimizerSpec
from common.spec import Variant
from common.weights import Weights
from impls.tensorflow.convert import keyed_variables, load_canonical
from impls.tensorflow.model import build_alexnet
from impls.tensorflow.training import apply_gradients, loss_and_gradients, make_optimizer


class Engine:
    name = "tensorflow"

    def __init__(self, backend) -> None:
        self.backend = backend
        ring = tf.distribute.experimental.CommunicationImplementation.RING
        self.strategy = tf.distribute.MultiWorkerMirroredStrategy(
            communication_options=tf.distribute.experimental.CommunicationOptions(implementation=ring))
        self.rank = int(self.strategy.cluster_resolver.task_id or 0)
        self.size = int(self.strategy.num_replicas_in_sync)
        self._steps: dict[tuple[int, bool], object] = {}
        #: fit_step also keeps the gradient it applied, for ``gradients`` (the check sets it)
        self.report = False
        self._grads: dict[int, list] = {}  # model -> the averaged gradients of its last step

    def build(self, variant: Variant, weights: Weights) -> keras.Sequential:
        with self.strategy.scope():  # mirrored variables
            model = build_alexnet(variant, kernel_initializer="zeros")  # overwritten next
            load_canonical(model, weights)
        return model

    def make_optimizer(self, model: keras.Sequential, spec: OptimizerSpec) -> keras.optimizers.Optimizer:
        with self.strategy.scope():
            return make_optimizer(model, spec)

    def _step(self, model: keras.Sequential, optimizer: keras.optimizers.Optimizer, report: bool):
        """The compiled data-parallel step of this model and optimizer; ``report``: it also
        returns the gradient it applied (one more all-reduce)."""
        key = (id(optimizer), report)
        if key not in self._steps:
            variables = model.trainable_variables

            def replica(x, labels, scales):
                # Keras 3 divides this replica's loss by the replicas (its gradient too) ...
                loss, grads, logits = loss_and_gradients(model, x, labels, scales)
                context = tf.distribute.get_replica_context()
                applied = context.all_reduce(tf.distribute.ReduceOp.SUM, grads) if report else []
                apply_gradients(optimizer, grads, variables)  # ... and sums the replicas' here
                right = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, axis=1, output_type=labels.dtype),
                                                       labels), tf.int64))
                return loss * self.size, right, applied

            @tf.function
            def step(x, labels, scales):
                return self.strategy.run(replica, args=(x, labels, scales))

            self._steps[key] = step
        return self._steps[key]

    def fit_step(self, model: keras.Sequential, optimizer: keras.optimizers.Optimizer,
                 x: np.ndarray, labels: np.ndarray,
                 dropout_scales: Optional[dict[str, float]] = None) -> tuple[float, int]:
        loss, right, applied = self._step(model, optimizer, self.report)(
            self.backend._to_keras(x, None), tf.convert_to_tensor(np.asarray(labels, dtype=np.int64)),
            {name: tf.constant(s, tf.float32) for name, s in (dropout_scales or {}).items()})
        self._grads[id(model)] = applied
        return float(loss.numpy()), int(right.numpy())

    def gradients(self, model: keras.Sequential, optimizer: keras.optimizers.Optimizer) -> Weights:
        if not self._grads.get(id(model)):
            raise RuntimeError("the step kept no gradients: set report = True before it")
        by_variable = {id(v): g for v, g in zip(model.trainable_variables, self._grads[id(model)])}
        return {key: by_variable[id(v)].numpy() for key, v in keyed_variables(model).items()}

    def sum_all(self, values: list[float]) -> list[float]:
        total = self.strategy.reduce(
            tf.distribute.ReduceOp.SUM,
            self.strategy.run(lambda: tf.constant(values, tf.float64)), axis=None)
        return [float(v) for v in total.numpy()]

    def close(self) -> None:
        self._steps.clear()
        self._grads.clear()

"""One Keras training step with ``keras.optimizers``, built from the neutral optimizer spec.

Parallel to ``impls/pytorch/training.py`` and ``impls/mxnet_gluon/training.py``.
The arguments come from ``common.optim.framework_optimizer``, never written here.
"""

from __future__ import annotations

from typing import Optional

import keras
import tensorflow as tf

from common.optim import OptimizerSpec, framework_optimizer


def make_optimizer(model: keras.Sequential, spec: OptimizerSpec) -> keras.optimizers.Optimizer:
    """``keras.optimizers.SGD`` or ``Adam``; coupled weight decay is added in ``train_step``."""
    args = framework_optimizer(spec, "tensorflow")
    optimizer = getattr(keras.optimizers, args.cls)(**args.kwargs)
    optimizer.decay_in_gradient = args.decay_in_gradient
    optimizer.build(model.trainable_variables)
    return optimizer


def cross_entropy(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Mean softmax cross-entropy (the Keras loss's default reduction is the batch mean)."""
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)(labels, logits)


def train_step(model: keras.Sequential, optimizer: keras.optimizers.Optimizer, x: tf.Tensor,
               labels: tf.Tensor, dropout_scales: Optional[dict[str, tf.Tensor]] = None,
               ) -> tuple[float, list[tf.Tensor], tf.Tensor]:
    """Forward in train mode, mean softmax cross-entropy, gradients, ``apply_gradients``.

    ``x`` is NHWC. ``dropout_scales`` (layer name -> ``mask / (1 - p)``, Keras layout)
    replaces each Dropout's own random mask; None lets the model draw its own. The loss
    takes the output of ``variant.logits_layer``. Returns the loss and the autograd gradients, in ``model.trainable_variables`` order, before
    the coupled weight decay is added, and the logits.
    """
    loss, grads, logits = loss_and_gradients(model, x, labels, dropout_scales)
    apply_gradients(optimizer, grads, model.trainable_variables)
    return float(loss.numpy()), grads, logits


def loss_and_gradients(model: keras.Sequential, x: tf.Tensor, labels: tf.Tensor,
                       dropout_scales: Optional[dict[str, tf.Tensor]] = None,
                       ) -> tuple[tf.Tensor, list[tf.Tensor], tf.Tensor]:
    """The train-mode forward pass up to ``variant.logits_layer`` (the loss folds a final
    Softmax in), the mean loss and its gradients in ``model.trainable_variables`` order."""
    scales = dropout_scales or {}
    with tf.GradientTape() as tape:
        logits = x
        for layer in model.layers:
            logits = (logits * scales[layer.name] if layer.name in scales
                      else layer(logits, training=True))
            if layer.name == model._alexnet_variant.logits_layer:
                break
        loss = cross_entropy(logits, labels)
    return loss, tape.gradient(loss, model.trainable_variables), logits


def apply_gradients(optimizer: keras.optimizers.Optimizer, grads: list[tf.Tensor],
                    variables: list) -> None:
    """``optimizer.apply_gradients`` with the coupled weight decay added to each gradient.

    Under a ``tf.distribute`` strategy, Keras 3 divides each replica's loss by the number of
    replicas and its optimizer sums the replicas' gradients: the decay term is divided
    likewise, or it would be applied once per replica (``impls/tensorflow/distributed.py``)."""
    decay = getattr(optimizer, "decay_in_gradient", 0.0) / tf.distribute.get_strategy().num_replicas_in_sync
    optimizer.apply_gradients([(g + decay * v if decay else g, v) for g, v in zip(grads, variables)])


def predict(model: keras.Sequential, x: tf.Tensor) -> tf.Tensor:
    """The network's output in inference mode (``x`` NHWC)."""
    return model(x, training=False)

"""One MXNet Gluon training step with ``gluon.Trainer``, built from the neutral optimizer spec.

Parallel to ``impls/pytorch/training.py`` and ``impls/tensorflow/training.py``.
The arguments come from ``common.optim.framework_optimizer``, never written here.
"""

from __future__ import annotations

from typing import Optional

import mxnet as mx
from mxnet import autograd, gluon

from common.optim import OptimizerSpec, framework_optimizer
from impls.mxnet_gluon.convert import parameters
from impls.mxnet_gluon.model import AlexNet


def make_optimizer(model: AlexNet, spec: OptimizerSpec) -> gluon.Trainer:
    """A ``gluon.Trainer`` with MXNet's ``sgd`` or ``adam`` over every parameter."""
    args = framework_optimizer(spec, "mxnet")
    return gluon.Trainer(model.collect_params(), args.cls, dict(args.kwargs))


def cross_entropy(logits: mx.nd.NDArray, labels: mx.nd.NDArray) -> mx.nd.NDArray:
    """Mean softmax cross-entropy (Gluon's loss is per sample, over the last axis)."""
    return gluon.loss.SoftmaxCrossEntropyLoss()(logits, labels).mean()


def train_step(model: AlexNet, trainer: gluon.Trainer, x: mx.nd.NDArray, labels: mx.nd.NDArray,
               dropout_scales: Optional[dict[str, mx.nd.NDArray]] = None,
               keep_grads: bool = True,
               ) -> tuple[float, dict[str, mx.nd.NDArray], mx.nd.NDArray]:
    """Forward in train mode, mean softmax cross-entropy, backward, ``trainer.step(1)``.

    ``dropout_scales`` (layer name -> ``mask / (1 - p)``) replaces each Dropout's own
    random mask; None lets the model draw its own. The loss takes the output of
    ``variant.logits_layer``. Returns the loss and the gradients the step used, under
    canonical keys (empty unless ``keep_grads``), and the logits.
    """
    loss, logits = loss_and_backward(model, x, labels, dropout_scales)
    grads = {key: param.grad().copy() for key, param in parameters(model).items()} if keep_grads else {}
    trainer.step(1)  # the loss is already the batch mean: no further rescaling
    return float(loss.asscalar()), grads, logits


def loss_and_backward(model: AlexNet, x: mx.nd.NDArray, labels: mx.nd.NDArray,
                      dropout_scales: Optional[dict[str, mx.nd.NDArray]] = None,
                      ) -> tuple[mx.nd.NDArray, mx.nd.NDArray]:
    """The train-mode forward pass up to ``variant.logits_layer`` (the loss folds a final
    Softmax in), the mean loss, and its backward pass into the parameters' gradients."""
    scales = dropout_scales or {}
    with autograd.record(train_mode=True):
        logits = x
        for name, block in model.named_layers():
            logits = logits * scales[name] if name in scales else block(logits)
            if name == model.variant.logits_layer:
                break
        loss = cross_entropy(logits, labels)
    loss.backward()
    return loss, logits


def predict(model: AlexNet, x: mx.nd.NDArray) -> mx.nd.NDArray:
    """The network's output in predict mode (outside ``autograd.record``)."""
    return model(x)

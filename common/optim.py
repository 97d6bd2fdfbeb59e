"""Optimizer settings, framework-neutral; the one place they map to each framework's
own optimizer arguments; and the float64 reference update.

This package's meaning of the hyperparameters is ``torch.optim``'s (and the paper's):

- **weight decay** is coupled L2: ``g += wd * w`` before momentum or Adam's moments.
  ``torch.optim.SGD/Adam(weight_decay=)`` and MXNet's ``wd`` are coupled. Keras 3's
  ``weight_decay`` is *decoupled* (``w -= lr * wd * w`` beside the update, never through
  the momentum), so for Keras it stays off and the training step adds ``wd * w`` to the
  gradients itself (``FrameworkOptimizer.decay_in_gradient``).
- **momentum**: ``v = mu * v + g; w -= lr * v`` (no dampening, no Nesterov). MXNet and
  Keras keep ``v' = mu * v' - lr * g; w += v'``: the same update while lr is constant.
- **MXNet's Trainer** divides gradients by the ``batch_size`` given to ``step``; our
  loss is already the batch mean, so it is ``trainer.step(1)``.
- **Adam's epsilon**: PyTorch adds eps to the bias-corrected ``sqrt(v_hat)``; MXNet and
  Keras add it to the raw ``sqrt(v)`` and fold both bias corrections into the step size,
  which in PyTorch's terms is ``eps * sqrt(1 - beta2**t)``, a different value at every
  step. No constant maps one onto the other, so the reference implements both forms
  (``ADAM_EPS_CORRECTED``, ``ADAM_EPS_RAW``) and each framework is checked against its
  own; the two differ only where ``|g|`` is within a few orders of magnitude of eps.
- **Adam's betas in float32**: MXNet's update kernel takes beta1 and beta2 as float32
  and Keras raises float32 betas to the power t, so ``1 - 0.999`` becomes
  ``1 - float32(0.999)``, 1.3e-5 off, and every update moves by ~6e-6 relative. The
  reference rounds the betas where each framework does (``float32_betas``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

ADAM_EPS_CORRECTED = "eps added to sqrt(v_hat)"  # PyTorch
ADAM_EPS_RAW = "eps added to sqrt(v), bias corrections in the step size"  # MXNet, Keras


@dataclass(frozen=True)
class OptimizerSpec:
    """One optimizer setting, in this package's (PyTorch's) meaning of each number."""

    name: str
    kind: Literal["sgd", "adam"]
    lr: float
    momentum: float = 0.0
    weight_decay: float = 0.0  # coupled L2
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8


#: the settings the crosscheck's step check runs: the paper's SGD and seed 002's Adam
OPTIMIZERS: dict[str, OptimizerSpec] = {
    "sgd": OptimizerSpec("sgd", "sgd", lr=0.01, momentum=0.9, weight_decay=5e-4),
    "adam": OptimizerSpec("adam", "adam", lr=1e-3),
}


@dataclass(frozen=True)
class FrameworkOptimizer:
    """How one framework builds an ``OptimizerSpec`` with its own optimizer class."""

    cls: str  # torch.optim.<cls>, an mxnet optimizer name, keras.optimizers.<cls>
    kwargs: dict = field(default_factory=dict)
    #: coupled weight decay the training step adds to the gradients itself (Keras)
    decay_in_gradient: float = 0.0
    #: where Adam's epsilon sits in this framework's update
    adam_eps: str = ADAM_EPS_CORRECTED
    #: where the framework's arithmetic holds Adam's betas as float32: "moments" (MXNet's
    #: kernel parameters) or "corrections" (Keras's ``beta ** t``); "" for neither.
    #: ``1 - float32(0.999)`` is 1.3e-5 off 0.001, which moves each update by ~6e-6.
    float32_betas: str = ""


def framework_optimizer(spec: OptimizerSpec, framework: str) -> FrameworkOptimizer:
    """The mapping from ``spec`` to ``framework``'s optimizer arguments (module docstring)."""
    if framework == "pytorch":
        if spec.kind == "sgd":
            return FrameworkOptimizer("SGD", dict(lr=spec.lr, momentum=spec.momentum, dampening=0.0,
                                                  weight_decay=spec.weight_decay, nesterov=False))
        return FrameworkOptimizer("Adam", dict(lr=spec.lr, betas=(spec.beta1, spec.beta2),
                                               eps=spec.eps, weight_decay=spec.weight_decay))
    if framework == "mxnet":  # gluon.Trainer(params, cls, kwargs); trainer.step(1)
        if spec.kind == "sgd":
            return FrameworkOptimizer("sgd", dict(learning_rate=spec.lr, momentum=spec.momentum,
                                                  wd=spec.weight_decay))
        return FrameworkOptimizer("adam", dict(learning_rate=spec.lr, beta1=spec.beta1,
                                               beta2=spec.beta2, epsilon=spec.eps,
                                               wd=spec.weight_decay), adam_eps=ADAM_EPS_RAW,
                                  float32_betas="moments")
    if framework == "tensorflow":  # Keras's weight_decay is decoupled: off, added by hand
        if spec.kind == "sgd":
            return FrameworkOptimizer("SGD", dict(learning_rate=spec.lr, momentum=spec.momentum,
                                                  nesterov=False, weight_decay=None),
                                      decay_in_gradient=spec.weight_decay)
        return FrameworkOptimizer("Adam", dict(learning_rate=spec.lr, beta_1=spec.beta1,
                                               beta_2=spec.beta2, epsilon=spec.eps,
                                               weight_decay=None),
                                  decay_in_gradient=spec.weight_decay, adam_eps=ADAM_EPS_RAW,
                                  float32_betas="corrections")
    raise ValueError(f"no optimizer mapping for framework {framework!r}")


@dataclass(frozen=True)
class UpdateForm:
    """Departures from the update ``OptimizerSpec`` means, as a port with a known bug computes
    it: the step check's cause hypotheses (``crosscheck/step_causes.py``) run the reference
    with one of them. The default is no departure."""

    dampening: float = 0.0  # torch's: v = mu * v + (1 - dampening) * g after the first step
    #: "torch" (and Keras's): w -= lr * (g + mu * v); "mxnet": MXNet 1.9's nag, the same
    #: update, but its momentum takes the weight decay at the weights after the step
    nesterov: str = ""
    decoupled_decay: float = 0.0  # w -= lr * decoupled_decay * w beside the update (Keras, AdamW)
    grad_scale: float = 1.0  # gradients multiplied by this before the decay (MXNet's rescale_grad)


#: elements per slice of the reference's in-place arithmetic: temporaries stay in cache,
#: which on AlexNet's 60M parameters is several times faster than whole-array NumPy
CHUNK = 1 << 16


def chunks(size: int):
    """Consecutive slices of ``range(size)`` of at most ``CHUNK`` elements."""
    return (slice(i, min(i + CHUNK, size)) for i in range(0, size, CHUNK))


class ReferenceOptimizer:
    """The float64 update of ``spec`` on its own copy of the weights (PyTorch's formulas;
    Adam's epsilon and float32 betas as ``framework`` has them, default PyTorch's; ``form``:
    a buggy port's departure, default none).

    ``weights`` holds the current float64 weights; ``peak`` the largest ``|w|`` each
    element has taken, the scale of the float32 rounding a framework's copy went through.
    """

    def __init__(self, spec: OptimizerSpec, weights: dict[str, np.ndarray],
                 framework: FrameworkOptimizer = FrameworkOptimizer(""),
                 form: UpdateForm = UpdateForm()) -> None:
        self.spec, self.framework, self.form, self.t = spec, framework, form, 0
        self.weights = {key: np.array(w, dtype=np.float64) for key, w in weights.items()}
        self.peak = {key: np.abs(w) for key, w in self.weights.items()}
        self.state: dict[str, tuple[np.ndarray, ...]] = {}

    def _betas(self, where: str) -> tuple[float, float]:
        betas = (self.spec.beta1, self.spec.beta2)
        if self.framework.float32_betas == where:
            return tuple(float(np.float32(b)) for b in betas)  # type: ignore[return-value]
        return betas

    def _corrections(self) -> tuple[float, float]:
        """Adam's bias corrections ``1 - beta**t``, in the framework's precision."""
        b1, b2 = self._betas("corrections")
        if self.framework.float32_betas == "corrections":
            t = np.float32(self.t)
            return (float(np.float32(1) - np.power(np.float32(b1), t)),
                    float(np.float32(1) - np.power(np.float32(b2), t)))
        return 1 - b1 ** self.t, 1 - b2 ** self.t

    def step(self, grads: dict[str, np.ndarray]) -> None:
        """One update of every weight with ``grads`` (any float dtype, canonical layout)."""
        s, form, self.t = self.spec, self.form, self.t + 1
        b1, b2 = self._betas("moments")
        c1, c2 = self._corrections() if s.kind == "adam" else (1.0, 1.0)
        for key, weight in self.weights.items():
            w, peak, g = weight.reshape(-1), self.peak[key].reshape(-1), np.asarray(grads[key]).reshape(-1)
            if key not in self.state:
                self.state[key] = tuple(np.zeros_like(w) for _ in range(1 if s.kind == "sgd" else 2))
            for part in chunks(w.size):
                d = g[part].astype(np.float64)
                if form.grad_scale != 1.0:
                    d *= form.grad_scale
                if s.weight_decay:
                    d += s.weight_decay * w[part]
                if form.decoupled_decay:  # from the weights before this step, as Keras and AdamW
                    w[part] -= s.lr * form.decoupled_decay * w[part]
                if s.kind == "sgd":
                    (v,) = (buf[part] for buf in self.state[key])
                    if self.t == 1:
                        v[:] = d  # torch: the buffer starts as the first gradient itself
                    else:
                        v *= s.momentum
                        v += (1 - form.dampening) * d if form.dampening else d
                    delta = s.lr * (d + s.momentum * v if form.nesterov else v)
                    w[part] -= delta
                    if form.nesterov == "mxnet":  # v held wd * w before the step; now after it
                        v -= s.weight_decay * delta
                else:
                    m, v = (buf[part] for buf in self.state[key])
                    m *= b1
                    m += (1 - b1) * d
                    v *= b2
                    v += (1 - b2) * d * d
                    if self.framework.adam_eps == ADAM_EPS_CORRECTED:
                        w[part] -= s.lr / c1 * m / (np.sqrt(v) / np.sqrt(c2) + s.eps)
                    else:
                        w[part] -= s.lr * np.sqrt(c2) / c1 * m / (np.sqrt(v) + s.eps)
                np.maximum(peak[part], np.abs(w[part]), out=peak[part])

"""The step check's confirmed causes: one planted porting bug per cause, in each framework
where a port can make it, must fail the step check by at least 4x the tolerance and be
named as exactly that cause; the correct optimizers must confirm none, and every
hypothesis must stay far from a correct optimizer's weights. The reference's bug forms
are checked against the frameworks' own optimizers in float64 first."""

from __future__ import annotations

import dataclasses
import types

import numpy as np
import pytest

from common.optim import (ADAM_EPS_CORRECTED, ADAM_EPS_RAW, OPTIMIZERS, OptimizerSpec,
                          ReferenceOptimizer, UpdateForm, framework_optimizer)
from crosscheck.backward import GradientRun
from crosscheck.report import step_line
from crosscheck.step import DEFAULT_STEP_TOLERANCES, STEPS
from tests.conftest import backend_or_skip
from tests.test_step import SMALL, assert_caught_at, patched_mapping, step_run

TOL = DEFAULT_STEP_TOLERANCES
FRAMEWORKS = ["pytorch", "mxnet", "tensorflow"]
#: each framework's training module, and the name of its learning rate, momentum, epsilon
#: and coupled weight decay arguments (Keras's decay is added to the gradients by hand)
TRAINING = {"pytorch": "impls.pytorch.training", "mxnet": "impls.mxnet_gluon.training",
            "tensorflow": "impls.tensorflow.training"}
LR = {"pytorch": "lr", "mxnet": "learning_rate", "tensorflow": "learning_rate"}
EPS = {"pytorch": "eps", "mxnet": "epsilon", "tensorflow": "epsilon"}
DECAY = {"pytorch": "weight_decay", "mxnet": "wd", "tensorflow": "decay_in_gradient"}


def training_module(framework: str):
    backend_or_skip(framework)
    return pytest.importorskip(TRAINING[framework])


def cifar_run(framework: str, **kwargs):
    return step_run(backend_or_skip(framework), SMALL["cifar-small"](), **kwargs)


def assert_cause(run, starts: str, optimizer: str = "", step: int = 0):
    """Caught (at ``optimizer``'s ``step`` by 4x the tolerance, for a weights failure), and
    exactly one cause confirmed, the one that starts with ``starts``."""
    if optimizer:
        assert_caught_at(run, optimizer, step)
    else:
        assert run.status == "FAIL" and not run.gradients_passed and run.first_failure is None
    assert run.cause is not None and run.cause.startswith(starts), (run.cause, run.diagnoses)
    assert len({d.cause for d in run.diagnoses if d.cause}) == 1, f"more than one cause: {run.cause}"
    assert "off this port's" in run.evidence


# --- the bug forms against the frameworks' own optimizers -------------------------------


@pytest.mark.parametrize("torch_args, spec, form", [
    (dict(cls="SGD", momentum=0.9, dampening=0.3, weight_decay=0.1),
     OptimizerSpec("sgd", "sgd", lr=0.1, momentum=0.9, weight_decay=0.1), UpdateForm(dampening=0.3)),
    (dict(cls="SGD", momentum=0.9, nesterov=True, weight_decay=0.1),
     OptimizerSpec("sgd", "sgd", lr=0.1, momentum=0.9, weight_decay=0.1), UpdateForm(nesterov="torch")),
    (dict(cls="AdamW", weight_decay=0.1),
     OptimizerSpec("adam", "adam", lr=0.1), UpdateForm(decoupled_decay=0.1)),
], ids=["dampening", "nesterov", "adamw"])
def test_bug_forms_match_torch_in_float64(torch_args, spec, form):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    w = rng.standard_normal(20)
    param = torch.tensor(w, requires_grad=True)
    args = dict(torch_args)
    optimizer = getattr(torch.optim, args.pop("cls"))([param], lr=spec.lr, **args)
    reference = ReferenceOptimizer(spec, {"w": w}, form=form)
    for _ in range(STEPS):
        g = rng.standard_normal(20)
        param.grad = torch.tensor(g)
        optimizer.step()
        reference.step({"w": g})
        np.testing.assert_allclose(reference.weights["w"], param.detach().numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name, kwargs, form", [
    ("nag", dict(momentum=0.9, wd=0.1), UpdateForm(nesterov="mxnet")),
    ("sgd", dict(momentum=0.9, wd=0.1, rescale_grad=1 / 3), UpdateForm(grad_scale=1 / 3)),
], ids=["nag", "rescale_grad"])
def test_bug_forms_match_mxnet_in_float64(name, kwargs, form):
    backend_or_skip("mxnet")
    import mxnet as mx
    rng = np.random.default_rng(0)
    w = rng.standard_normal(20)
    spec = OptimizerSpec("sgd", "sgd", lr=0.1, momentum=0.9, weight_decay=0.1)
    optimizer = mx.optimizer.create(name, learning_rate=spec.lr, **kwargs)
    weight = mx.nd.array(w, dtype="float64")
    state = optimizer.create_state(0, weight)
    reference = ReferenceOptimizer(spec, {"w": w}, form=form)
    for _ in range(STEPS):
        g = rng.standard_normal(20)
        optimizer.update(0, weight, mx.nd.array(g, dtype="float64"), state)
        reference.step({"w": g})
        # MXNet passes lr, momentum and wd to its kernel as float32
        np.testing.assert_allclose(reference.weights["w"], weight.asnumpy(), rtol=1e-6)


# --- the correct optimizers --------------------------------------------------------------


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_correct_optimizers_confirm_no_cause_and_every_hypothesis_is_far(framework):
    """Every hypothesis forced onto a correct run: none is confirmed, and each is at least
    4x the tolerance from the correct weights (or gradients): a port with that bug cannot
    pass for a correct one."""
    run = cifar_run(framework, diagnose_all=True)
    assert run.status == "pass" and run.cause is None
    assert {d.failure for d in run.diagnoses} == {"gradients"} | set(OPTIMIZERS)
    for d in run.diagnoses:
        assert d.cause is None
        limit = 4 * (TOL.gradient_rel_l2 if d.failure == "gradients" else TOL.weights)
        near = {what: error for what, error in d.tried.items() if not error >= limit}
        assert not near, f"{d.failure}: hypotheses within 4x the tolerance of a correct run: {near}"


# --- weight decay -------------------------------------------------------------------------


def test_without_the_probe_a_missing_decay_fails_by_less_than_4x(monkeypatch):
    """Why the step check runs a probe: at the paper's own numbers (lr * wd = 5e-6) a
    missing weight decay fails step 1 by only 42 units, under 4x the tolerance."""
    patched_mapping(monkeypatch, training_module("pytorch"), "pytorch", "sgd", weight_decay=0.0)
    run = cifar_run("pytorch", probe=False)
    assert (run.first_failure.optimizer, run.first_failure.step) == ("sgd", 1)
    assert TOL.weights < run.worst("sgd", 1)[0] < 4 * TOL.weights


def test_keras_decoupled_weight_decay(monkeypatch):
    patched_mapping(monkeypatch, training_module("tensorflow"), "tensorflow", "sgd",
                    weight_decay=lambda spec: spec.weight_decay, decay_in_gradient=0.0)
    assert_cause(cifar_run("tensorflow"), "decoupled weight decay", "sgd", STEPS)


def test_keras_decay_both_added_and_decoupled(monkeypatch):
    patched_mapping(monkeypatch, training_module("tensorflow"), "tensorflow", "sgd",
                    weight_decay=lambda spec: spec.weight_decay)
    assert_cause(cifar_run("tensorflow"), "weight decay both added", "sgd", 1)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_weight_decay_missing(monkeypatch, framework):
    patched_mapping(monkeypatch, training_module(framework), framework, "sgd", **{DECAY[framework]: 0.0})
    assert_cause(cifar_run(framework), "weight decay missing", "sgd", 1)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_weight_decay_twice(monkeypatch, framework):
    patched_mapping(monkeypatch, training_module(framework), framework, "sgd",
                    **{DECAY[framework]: lambda spec: 2 * spec.weight_decay})
    assert_cause(cifar_run(framework), "weight decay applied twice", "sgd", 1)


# --- momentum -----------------------------------------------------------------------------


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_momentum_value_is_fitted(monkeypatch, framework):
    patched_mapping(monkeypatch, training_module(framework), framework, "sgd", momentum=0.95)
    assert_cause(cifar_run(framework), "momentum 0.95 instead of 0.9", "sgd", STEPS)


@pytest.mark.parametrize("framework, cls, changes, starts", [
    ("pytorch", "", dict(nesterov=True), "Nesterov momentum (w -= lr"),
    ("tensorflow", "", dict(nesterov=True), "Nesterov momentum (w -= lr"),
    ("mxnet", "nag", {}, "Nesterov momentum as MXNet's nag"),
])
def test_nesterov(monkeypatch, framework, cls, changes, starts):
    patched_mapping(monkeypatch, training_module(framework), framework, "sgd", cls=cls, **changes)
    assert_cause(cifar_run(framework), starts, "sgd", 1)


def test_torch_dampening_is_fitted(monkeypatch):
    patched_mapping(monkeypatch, training_module("pytorch"), "pytorch", "sgd", dampening=0.1)
    assert_cause(cifar_run("pytorch"), "momentum dampening 0.1 ", "sgd", STEPS)


# --- learning rate, gradient scale ------------------------------------------------------------


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_learning_rate_is_fitted(monkeypatch, framework):
    patched_mapping(monkeypatch, training_module(framework), framework, "sgd",
                    **{LR[framework]: lambda spec: spec.lr * 1.1})
    assert_cause(cifar_run(framework), "learning rate x1.1 ", "sgd", 1)


def test_adam_learning_rate_is_fitted(monkeypatch):
    patched_mapping(monkeypatch, training_module("pytorch"), "pytorch", "adam", lr=lambda spec: spec.lr / 2)
    assert_cause(cifar_run("pytorch"), "learning rate x0.5 ", "adam", 1)


def test_gluon_trainer_step_by_batch_size(monkeypatch):
    """trainer.step(batch_size) divides an already-averaged gradient again: in Adam too,
    where it only scales epsilon, the same cause is named."""
    backend_or_skip("mxnet")
    from mxnet import gluon
    original = gluon.Trainer.step
    monkeypatch.setattr(gluon.Trainer, "step", lambda self, batch_size, **kw: original(self, 3, **kw))
    run = cifar_run("mxnet")
    assert_cause(run, "gradients divided by the batch size (3)", "sgd", 1)
    assert [d.cause for d in run.diagnoses] == [run.cause, run.cause]


# --- Adam's epsilon -------------------------------------------------------------------------


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_adam_epsilon_keras_default_is_fitted(monkeypatch, framework):
    patched_mapping(monkeypatch, training_module(framework), framework, "adam", **{EPS[framework]: 1e-7})
    assert_cause(cifar_run(framework), "Adam epsilon 1e-07 (Keras's default)", "adam", 1)


def test_adam_epsilon_tenfold_is_fitted(monkeypatch):
    patched_mapping(monkeypatch, training_module("mxnet"), "mxnet", "adam", epsilon=lambda spec: spec.eps * 10)
    run = cifar_run("mxnet")
    assert_cause(run, "Adam epsilon", "adam", 1)
    assert "(x10 the configured)" in run.cause


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_adam_epsilon_placement(monkeypatch, framework):
    """The mapping's placement swapped: the reference checks the framework against the
    other form, and the other form is what the framework does."""
    backend_or_skip(framework)
    import crosscheck.step as step

    def swapped(spec, name):
        args = framework_optimizer(spec, name)
        other = ADAM_EPS_RAW if args.adam_eps == ADAM_EPS_CORRECTED else ADAM_EPS_CORRECTED
        return dataclasses.replace(args, adam_eps=other)

    monkeypatch.setattr(step, "framework_optimizer", swapped)
    assert_cause(cifar_run(framework), "Adam's epsilon eps added to sqrt(v", "adam", 1)


# --- the training step's loss -----------------------------------------------------------------


def patch_loss(monkeypatch, framework: str, how: str) -> None:
    """Give ``framework``'s training step a wrong loss: on softmax outputs, or summed."""
    module = training_module(framework)
    if framework == "pytorch":
        import torch
        import torch.nn.functional as F
        loss = ((lambda z, y: F.cross_entropy(torch.softmax(z, 1), y)) if how == "softmax" else
                (lambda z, y: F.cross_entropy(z, y, reduction="sum")))
        monkeypatch.setattr(module, "F", types.SimpleNamespace(cross_entropy=loss))
    elif framework == "mxnet":
        import mxnet as mx
        original = module.cross_entropy
        loss = ((lambda z, y: original(mx.nd.softmax(z, axis=1), y)) if how == "softmax" else
                (lambda z, y: mx.gluon.loss.SoftmaxCrossEntropyLoss()(z, y).sum()))
        monkeypatch.setattr(module, "cross_entropy", loss)
    else:
        import keras
        import tensorflow as tf
        original = module.cross_entropy
        loss = ((lambda z, y: original(tf.nn.softmax(z, axis=1), y)) if how == "softmax" else
                (lambda z, y: keras.losses.SparseCategoricalCrossentropy(
                    from_logits=True, reduction="sum")(y, z)))
        monkeypatch.setattr(module, "cross_entropy", loss)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_softmax_twice_names_the_training_steps_loss(monkeypatch, framework):
    """Only the training step applies softmax twice: the backward check's chain passes, so
    the message must name the training step's loss, not point at the backward check."""
    patch_loss(monkeypatch, framework, "softmax")
    run = cifar_run(framework)
    assert_cause(run, "the loss applied to softmax outputs")
    line = step_line(run, GradientRun(framework, "pass"))
    assert "cause confirmed: the loss applied to softmax outputs" in line and "backward check" not in line


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_summed_loss(monkeypatch, framework):
    patch_loss(monkeypatch, framework, "sum")
    assert_cause(cifar_run(framework), "the loss summed over the batch instead of averaged (gradients x3)")


# --- what is said where no cause is confirmed ----------------------------------------------------


def test_unknown_loss_bug_names_the_training_step(monkeypatch):
    """A loss bug outside the list (label smoothing) confirms nothing; the message says the
    training step's loss or graph is off, beside a passing backward check."""
    import torch.nn.functional as F
    module = training_module("pytorch")
    monkeypatch.setattr(module, "F", types.SimpleNamespace(
        cross_entropy=lambda z, y: F.cross_entropy(z, y, label_smoothing=0.1)))
    run = cifar_run("pytorch")
    assert run.status == "FAIL" and run.cause is None and not run.gradients_passed
    line = step_line(run, GradientRun("pytorch", "pass"))
    assert ("gradients and loss are off while the backward check's layer chain passes: the "
            "training step's own loss or graph (impls/pytorch/training.py)") in line


def test_unknown_optimizer_bug_names_the_update(monkeypatch):
    """An optimizer bug outside the list (Adam's beta1) confirms nothing, and no hypothesis
    is wrongly confirmed; the message says the optimizer update is off."""
    patched_mapping(monkeypatch, training_module("pytorch"), "pytorch", "adam", betas=(0.8, 0.999))
    run = cifar_run("pytorch")
    assert run.status == "FAIL" and run.cause is None and run.gradients_passed
    assert "the optimizer update is off" in step_line(run)

"""The optimizer-step check: the float64 reference optimizer against torch.optim in
float64, each framework's own optimizer against it, and planted optimizer bugs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from common.inputs import crosscheck_batch
from common.optim import (ADAM_EPS_RAW, OPTIMIZERS, FrameworkOptimizer, ReferenceOptimizer,
                          framework_optimizer)
from common.variants import get_variant, variant_names
from common.shapes import infer, param_shapes
from common.spec import Conv2d, Dense
from common.weights import init_weights
from crosscheck.backward import gradient_inputs, reference_chain
from crosscheck.narrow import CONV_CHANNELS, HIDDEN_UNITS, narrow
from crosscheck.run import run_crosscheck
from crosscheck.step import DEFAULT_STEP_TOLERANCES, STEPS, check_steps
from tests.conftest import backend_or_skip, device_for
from tests.test_frameworks import odd_variant

#: small stand-ins with every layer kind of the registry, at inputs where the spatial sizes
#: run down to one pixel; the full-size variants run
#: in `tox -e crosscheck` (the step check costs ~10 s per framework there)
SMALL = {
    "cifar-small": lambda: get_variant("cifar-small"),
    "paper-small": lambda: get_variant("paper", num_classes=5, input_size=(67, 67)),
    # narrowed: the adaptive pool's 6x6 output keeps its 9216x4096 dense layer full size at any
    # input, which cost CI a minute over the three frameworks; its width is tested in
    # test_a_bug_only_wider_than_the_narrowed_step_is_caught_at_full_width
    "torchvision-small": lambda: narrow(get_variant("torchvision", num_classes=4, input_size=(63, 63))),
    "tf-benchmark-small": lambda: get_variant("tf-benchmark", num_classes=5, input_size=(67, 67)),
    "odd": odd_variant,
}
#: what the default crosscheck's step check runs: every registered variant narrowed
NARROWED = {f"{name}-narrowed": (lambda name=name: narrow(get_variant(name))) for name in variant_names()}


def step_inputs(variant):
    """(variant, weights, x, labels, masks, float64 reference chain): the crosscheck's seeded
    inputs of the step check."""
    weights = init_weights(variant, seed=0)
    x = crosscheck_batch(variant, batch_size=2, seed=0)
    labels, masks = gradient_inputs(variant, len(x), seed=0)
    return variant, weights, x, labels, masks, reference_chain(variant, weights, x, labels, masks)


def step_run(backend, variant, **kwargs):
    """The step check of ``variant`` on the crosscheck's seeded inputs (``kwargs``: check_steps')."""
    return check_steps(backend, *step_inputs(variant), **kwargs)


@pytest.fixture(scope="module", params=list(SMALL) + list(NARROWED))
def step_case(request):
    """step_inputs of one variant, made once for all three frameworks, as the crosscheck does
    (the tests are grouped by variant, so one reference is held at a time)."""
    return step_inputs({**SMALL, **NARROWED}[request.param]())


@pytest.mark.parametrize("spec", OPTIMIZERS.values(), ids=list(OPTIMIZERS))
def test_reference_optimizer_matches_torch_in_float64(spec):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    weights = {"a": rng.standard_normal((5, 7)), "b": rng.standard_normal(3) * 1e-3}
    params = {k: torch.tensor(v, requires_grad=True) for k, v in weights.items()}
    args = framework_optimizer(spec, "pytorch")
    torch_optimizer = getattr(torch.optim, args.cls)(params.values(), **args.kwargs)
    reference = ReferenceOptimizer(spec, weights)
    for _ in range(STEPS):
        grads = {k: rng.standard_normal(v.shape) for k, v in weights.items()}
        for key, p in params.items():
            p.grad = torch.tensor(grads[key])
        torch_optimizer.step()
        reference.step(grads)
        for key, p in params.items():
            np.testing.assert_allclose(reference.weights[key], p.detach().numpy(), rtol=1e-12, atol=1e-15)


def test_adam_epsilon_forms_differ_by_the_bias_correction():
    """At step 1, eps on the raw sqrt(v) is eps / sqrt(1 - beta2) on the corrected one."""
    spec = dataclasses.replace(OPTIMIZERS["adam"], eps=1e-3)
    rng = np.random.default_rng(1)
    weights, grads = {"w": rng.standard_normal(50)}, {"w": rng.standard_normal(50) * 1e-3}
    raw = ReferenceOptimizer(spec, weights, FrameworkOptimizer("Adam", adam_eps=ADAM_EPS_RAW))
    corrected = ReferenceOptimizer(dataclasses.replace(spec, eps=spec.eps / np.sqrt(1 - spec.beta2)),
                                   weights)
    raw.step(grads)
    corrected.step(grads)
    np.testing.assert_allclose(raw.weights["w"], corrected.weights["w"], rtol=1e-14)
    plain = ReferenceOptimizer(spec, weights)
    plain.step(grads)
    assert not np.allclose(plain.weights["w"] - weights["w"], raw.weights["w"] - weights["w"], rtol=1e-2)


def test_optimizer_steps_match_reference(backend, step_case):
    run = check_steps(backend, *step_case)
    assert run.error is None, run.error
    assert run.status == "pass", (run.first_failure, run.loss_error, run.gradients_passed)
    assert {r.step for r in run.rows} == {1, STEPS} and {r.optimizer for r in run.rows} == set(OPTIMIZERS)
    assert max(r.eps_units for r in run.rows) < DEFAULT_STEP_TOLERANCES.weights
    if device_for(backend.name) == "cpu":
        assert run.run_to_run == {}, "the first-step gradients of the two settings must be identical"
    else:  # CUDA's pooling backward (adaptive average, overlapping max) adds with atomics, in an
        # order that changes from run to run (seen on an H200: torchvision-small, 3.4e-7 absolute)
        assert max(run.run_to_run.values(), default=0.0) < 1e-5, run.run_to_run


def assert_caught_at(run, optimizer: str, step: int):
    assert run.status == "FAIL", "the planted bug went unnoticed"
    first = run.first_failure
    assert (first.optimizer, first.step) == (optimizer, step), first
    assert run.worst(optimizer, step)[0] >= 4 * DEFAULT_STEP_TOLERANCES.weights


def patched_mapping(monkeypatch, module, framework: str, kind: str, cls: str = "", **changes):
    """Give ``framework``'s training module a wrong argument mapping for ``kind``: another
    optimizer class, or changed arguments. A change may be a function of the setting (the
    step check's probe numbers are known only when it runs)."""
    def wrong(spec, name):
        args = framework_optimizer(spec, name)
        if spec.kind != kind:
            return args
        values = {k: v(spec) if callable(v) else v for k, v in changes.items()}
        fields = {k: v for k, v in values.items() if k in ("decay_in_gradient", "adam_eps")}
        kwargs = {**args.kwargs, **{k: v for k, v in values.items() if k not in fields}}
        return dataclasses.replace(args, cls=cls or args.cls, kwargs=kwargs, **fields)
    monkeypatch.setattr(module, "framework_optimizer", wrong)


def plant_keras_decoupled_decay(monkeypatch) -> None:
    """Keras's own (decoupled) weight_decay in place of the coupled decay added to the gradient."""
    import impls.tensorflow.training as training
    patched_mapping(monkeypatch, training, "tensorflow", "sgd",
                    weight_decay=lambda spec: spec.weight_decay, decay_in_gradient=0.0)


def plant_torch_dampening(monkeypatch) -> None:
    """torch.optim.SGD given a momentum dampening of 0.1."""
    import impls.pytorch.training as training
    patched_mapping(monkeypatch, training, "pytorch", "sgd", dampening=0.1)


def plant_gluon_step_by_batch_size(monkeypatch) -> None:
    """trainer.step(batch_size) on a loss that is already the batch mean."""
    from mxnet import gluon
    original = gluon.Trainer.step
    monkeypatch.setattr(gluon.Trainer, "step", lambda self, batch_size, **kw: original(self, 3, **kw))


def test_keras_decoupled_weight_decay_is_caught_at_step_3(monkeypatch):
    """Keras's own weight_decay is decoupled: identical to coupled L2 at the first SGD
    step, different once momentum carries the decay term."""
    backend = backend_or_skip("tensorflow")
    plant_keras_decoupled_decay(monkeypatch)
    assert_caught_at(step_run(backend, SMALL["cifar-small"]()), "sgd", STEPS)


def test_torch_momentum_dampening_is_caught_at_step_3(monkeypatch):
    """torch's dampening is skipped at the first step, so only later steps show it."""
    backend = backend_or_skip("pytorch")
    plant_torch_dampening(monkeypatch)
    assert_caught_at(step_run(backend, SMALL["cifar-small"]()), "sgd", STEPS)


def test_gluon_trainer_step_by_batch_size_is_caught_at_step_1(monkeypatch):
    """trainer.step(batch_size) divides an already-averaged gradient again."""
    backend = backend_or_skip("mxnet")
    plant_gluon_step_by_batch_size(monkeypatch)
    assert_caught_at(step_run(backend, SMALL["cifar-small"]()), "sgd", 1)


def test_adam_epsilon_form_mismatch_is_caught(monkeypatch):
    """Checking MXNet's Adam against PyTorch's epsilon placement: eps 1e-3 makes it show."""
    backend = backend_or_skip("mxnet")
    import crosscheck.step as step
    original = step.framework_optimizer
    monkeypatch.setattr(step, "framework_optimizer", lambda spec, name: dataclasses.replace(
        original(spec, name), adam_eps=FrameworkOptimizer("").adam_eps))
    adam = dataclasses.replace(OPTIMIZERS["adam"], eps=1e-3)
    run = step_run(backend, SMALL["cifar-small"](), optimizers={"adam": adam})
    assert_caught_at(run, "adam", 1)


def test_a_framework_error_is_reported_not_raised(monkeypatch):
    backend = backend_or_skip("pytorch")
    import impls.pytorch.backend as b

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(b.PyTorchBackend, "train_step", broken)
    run = step_run(backend, SMALL["cifar-small"]())
    assert run.status == "FAIL" and "boom" in run.error


# --- the narrowed variants the default crosscheck's step check runs (crosscheck/narrow.py) ---

@pytest.mark.parametrize("name", variant_names())
def test_narrowing_keeps_every_layer_but_its_width(name):
    variant = get_variant(name)
    narrowed = narrow(variant)
    assert narrowed.input_shape == variant.input_shape and narrowed.num_classes == variant.num_classes
    assert set(param_shapes(narrowed)) == set(param_shapes(variant))  # every weight and bias
    for wide, thin in zip(variant.layers, narrowed.layers, strict=True):
        width = {"out_channels", "out_features"}
        assert type(wide) is type(thin) and all(
            getattr(wide, f) == getattr(thin, f) for f in wide.__dataclass_fields__ if f not in width)
        if isinstance(wide, Conv2d):
            assert thin.out_channels <= max(CONV_CHANNELS, 2 * wide.groups) and thin.out_channels % wide.groups == 0
        if isinstance(wide, Dense) and wide.name != variant.logits_layer:
            assert thin.out_features <= HIDDEN_UNITS
    # the same shapes downstream of the convolutions: pooling, padding and flatten as wide
    spatial = [info.out_shape[1:] for info in infer(variant) if len(info.out_shape) == 3]
    assert spatial == [info.out_shape[1:] for info in infer(narrowed) if len(info.out_shape) == 3]
    assert sum(np.prod(s) for s in param_shapes(narrowed).values()) < 2e6


#: one planted optimizer bug per framework (the tests above, on cifar-small): each must fail
#: the default crosscheck's step check on a narrowed full-size variant too
PLANTED = {"pytorch": plant_torch_dampening, "tensorflow": plant_keras_decoupled_decay,
           "mxnet": plant_gluon_step_by_batch_size}


@pytest.mark.parametrize("framework", list(PLANTED))
def test_the_crosscheck_step_check_on_a_narrowed_variant_catches_optimizer_bugs(monkeypatch, framework):
    backend_or_skip(framework)
    PLANTED[framework](monkeypatch)
    variant = run_crosscheck(["paper"], [framework], checks=("step",)).variants[0]
    assert variant.steps_narrowed.startswith("narrowed: conv1 96->16")
    assert [f.status for f in variant.frameworks] == ["pass"]
    assert variant.steps[0].status == "FAIL", "the planted bug went unnoticed"


def test_a_bug_only_wider_than_the_narrowed_step_is_caught_at_full_width(monkeypatch):
    """What the narrowed step check cannot see, the full-width checks do: a PyTorch loader
    that loses conv2's output channels past the narrowed width passes the step check and
    fails the forward and backward checks."""
    backend = backend_or_skip("pytorch")
    import torch
    import impls.pytorch.backend as b
    original = b.PyTorchBackend.build

    def lossy(self, variant, weights):
        model = original(self, variant, weights)
        with torch.no_grad():
            model.conv2.weight[CONV_CHANNELS:] = 0
        return model

    monkeypatch.setattr(b.PyTorchBackend, "build", lossy)
    variant = run_crosscheck(["paper"], [backend.name], checks=("forward", "backward", "step"),
                             ).variants[0]
    assert variant.steps[0].status == "pass"
    assert variant.frameworks[0].first_divergence.name == "conv2"
    assert variant.gradients[0].status == "FAIL"

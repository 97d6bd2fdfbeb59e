"""The dropout check runs each framework's own Dropout layers: it passes on the real
models, and fails at the planted layer with the cause in its text for a Dropout built
with another rate, kept units not rescaled or rescaled for another rate, and dropout
left active in eval mode (which the forward check catches too)."""

from __future__ import annotations

import functools
import importlib
import json
import re
from dataclasses import replace
from typing import Any, Callable

import numpy as np
import pytest

from common import reference
from common.inputs import normal_batch
from common.shapes import LayerInfo
from common.spec import Variant
from common.variants import get_variant
from common.weights import Weights, init_weights
from crosscheck.backward import GradientRun
from crosscheck.compare import DEFAULT_TOLERANCES
from crosscheck.dropout import (RATE_RESOLUTION, DropoutRun, check_dropout, judge,
                                sample_size)
from crosscheck.report import markdown, summary, terminal, to_json
from crosscheck.run import FAIL, PASS, CrosscheckRun, VariantRun, check_framework
from tests.conftest import backend_or_skip

#: small stand-ins of the variants with dropout: the Dropout layers keep their full width
#: (torchvision's drop6 sees avgpool's 9216 features, every other 4096), the convolutions
#: are cheap; the planted bug goes into a layer that is not the first, where it has one
STAND_INS: dict[str, tuple[tuple[int, int], str]] = {
    "torchvision": ((63, 63), "drop7"),
    "paper": ((67, 67), "drop6"),
}
MODEL_MODULES = {"pytorch": "impls.pytorch.model", "mxnet": "impls.mxnet_gluon.model",
                 "tensorflow": "impls.tensorflow.model"}


@functools.lru_cache(maxsize=None)
def stand_in(name: str) -> tuple[Variant, Weights]:
    variant = get_variant(name, num_classes=4, input_size=STAND_INS[name][0])
    return variant, init_weights(variant, seed=0)


@pytest.fixture(params=list(STAND_INS))
def variant_name(request) -> str:
    return request.param


def plant(monkeypatch, framework: str, layer: str,
          replacement: Callable[[LayerInfo, Callable[[LayerInfo], Any]], Any]) -> None:
    """Make the framework's ``make_layer`` build ``replacement(info, build)`` for ``layer``,
    where ``build`` is the real ``make_layer`` (MXNet's prefix, Keras's initializer kept)."""
    module = importlib.import_module(MODEL_MODULES[framework])
    original = module.make_layer

    def make_layer(info: LayerInfo, *args, **kwargs):
        if info.name != layer:
            return original(info, *args, **kwargs)
        return replacement(info, lambda i: original(i, *args, **kwargs))

    monkeypatch.setattr(module, "make_layer", make_layer)


def odd_dropout(framework: str, real: Any, factor: float = 1.0, always_on: bool = False) -> Any:
    """The framework's Dropout with ``real``'s rate and name, whose train-mode output is
    multiplied by ``factor`` (1 - p: kept units not rescaled), and which with ``always_on``
    also drops in eval mode."""
    if framework == "pytorch":
        import torch.nn.functional as F
        from torch import nn

        class OddDropout(nn.Dropout):
            def forward(self, x):
                if always_on or self.training:
                    return F.dropout(x, self.p, training=True) * factor
                return x

        return OddDropout(real.p)
    if framework == "mxnet":
        import mxnet as mx
        from mxnet.gluon import nn

        class OddGluonDropout(nn.Dropout):
            def hybrid_forward(self, F, x):
                if always_on or mx.autograd.is_training():
                    return F.Dropout(x, p=self._rate, mode="always") * factor
                return F.identity(x)

        return OddGluonDropout(real._rate, prefix=real.prefix)
    from keras import layers

    class OddKerasDropout(layers.Dropout):
        def call(self, inputs, training=False):
            return super().call(inputs, training=True) * factor if always_on or training else inputs

    return OddKerasDropout(real.rate, name=real.name)


def run_check(framework: str, variant_name: str) -> DropoutRun:
    variant, weights = stand_in(variant_name)
    return check_dropout(backend_or_skip(framework), variant, weights, seed=0)


def failing_row(run: DropoutRun, layer: str):
    """The one failing row, asserted to be ``layer``'s, every other layer passing."""
    assert run.status == FAIL, "the planted bug went unnoticed"
    assert [r.layer for r in run.rows if not r.passed] == [layer], [r.cause for r in run.rows]
    return run.first_failure


FRAMEWORKS = list(MODEL_MODULES)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_own_dropout_passes(framework, variant_name):
    run = run_check(framework, variant_name)
    assert run.status == PASS and run.error is None, [r.cause for r in run.rows]
    assert [r.layer for r in run.rows] == ["drop6", "drop7"]
    for row in run.rows:
        assert row.n >= sample_size(0.5) and abs(row.kept - 0.5) <= row.bound
        assert row.scale_error <= 1e-6 and row.eval_error == 0.0


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_dropout_built_with_another_rate_fails(framework, variant_name, monkeypatch):
    layer = STAND_INS[variant_name][1]
    plant(monkeypatch, framework, layer,
          lambda info, build: build(replace(info, layer=replace(info.layer, p=0.4))))
    row = failing_row(run_check(framework, variant_name), layer)
    assert row.kept > 0.5 + row.bound and row.scale_error > 0.1
    # both estimates of the rate the layer has: 0.40 by what it keeps and by its scale
    assert row.cause.startswith(f"{layer}: the framework's own Dropout keeps ")
    # the kept fraction's estimate carries its sampling error (sigma 0.004), the scale's none
    assert re.search(r"its rate is 0\.(3[89]|4[01]) by the kept fraction and 0\.40 by the "
                     r"scale of kept values \(1\.67\), not the spec's 0\.5$", row.cause), row.cause


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_kept_units_not_rescaled_fail(framework, variant_name, monkeypatch):
    layer = STAND_INS[variant_name][1]
    plant(monkeypatch, framework, layer,
          lambda info, build: odd_dropout(framework, build(info), factor=1 - info.layer.p))
    row = failing_row(run_check(framework, variant_name), layer)
    assert abs(row.kept - 0.5) <= row.bound and row.scale_error == pytest.approx(0.5, rel=1e-6)
    assert row.cause.startswith(f"{layer}: kept units scaled by 1.00 where 1/(1-p) = 2.00: "
                                f"not rescaled at all")


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_kept_units_rescaled_for_another_rate_fail(framework, variant_name, monkeypatch):
    layer = STAND_INS[variant_name][1]
    # drops half, as the spec says, but divides by 1 - 0.4
    plant(monkeypatch, framework, layer,
          lambda info, build: odd_dropout(framework, build(info), factor=0.5 / 0.6))
    row = failing_row(run_check(framework, variant_name), layer)
    assert row.cause.startswith(f"{layer}: kept units scaled by 1.67 where 1/(1-p) = 2.00: "
                                f"rescaled for a rate of 0.40, while the kept fraction")


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_dropout_active_in_eval_mode_fails_here_and_in_the_forward_check(
        framework, variant_name, monkeypatch):
    layer = STAND_INS[variant_name][1]
    plant(monkeypatch, framework, layer,
          lambda info, build: odd_dropout(framework, build(info), always_on=True))
    row = failing_row(run_check(framework, variant_name), layer)
    assert row.eval_error > 0.1 and "dropout left active at inference" in row.cause
    variant, weights = stand_in(variant_name)
    x = normal_batch(variant, 2, seed=0)
    forward, _ = check_framework(backend_or_skip(framework), variant, weights, x,
                                 reference.forward(variant, weights, x), DEFAULT_TOLERANCES)
    assert forward.status == FAIL and forward.first_divergence.name == layer


def test_variant_without_dropout_has_no_rows():
    variant = get_variant("cifar-small")
    run = check_dropout(backend_or_skip("pytorch"), variant, init_weights(variant), seed=0)
    assert run.status == PASS and run.rows == [] and run.error is None


def test_a_raising_framework_fails_with_its_message(monkeypatch):
    import impls.pytorch.backend as b

    def broken(self, model, name, x):
        raise RuntimeError("no train mode here")

    monkeypatch.setattr(b.PyTorchBackend, "dropout_train", broken)
    run = run_check("pytorch", "paper")
    assert run.status == FAIL and run.error.endswith("RuntimeError: no train mode here")
    assert run.error.startswith("pytorch raised while running its own Dropout in train mode")


@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 0.8])
def test_the_sample_separates_a_rate_off_by_the_resolution(p):
    """Simulated layers (no framework): the right rate passes every time, a rate off by
    RATE_RESOLUTION never, and a scale for a rate off by 1e-3 fails."""
    rng = np.random.default_rng(0)
    n = sample_size(p)
    x = rng.uniform(0.5, 1.5, n).astype(np.float32)

    def layer(rate: float, scale_rate: float) -> np.ndarray:
        keep = rng.random(n) >= rate
        return np.where(keep, x * np.float32(1 / (1 - scale_rate)), 0).astype(np.float32)

    assert all(judge("d", p, x, layer(p, p), x).passed for _ in range(50))
    for wrong in (p - RATE_RESOLUTION, p + RATE_RESOLUTION):
        if 0 <= wrong < 1:
            assert not any(judge("d", p, x, layer(wrong, wrong), x).passed for _ in range(50))
    assert not judge("d", p, x, layer(p, p + 1e-3), x).passed


def test_causes_of_simulated_layers():
    """The texts a port's layer cannot easily be made to produce: a mask drawn at one rate
    with the spec's rescaling, factors that are not one number, a changed shape."""
    rng = np.random.default_rng(1)
    x = rng.uniform(0.5, 1.5, sample_size(0.5)).astype(np.float32)
    keep = rng.random(x.size) >= 0.4
    row = judge("d", 0.5, x, np.where(keep, x * np.float32(2), 0), x)
    assert not row.passed and row.cause.endswith(
        "not the spec's 0.5, though kept units are scaled by 1/(1-p) = 2.00 for the spec's "
        "rate: a mask drawn at another rate than the layer rescales for")
    keep = rng.random(x.size) >= 0.5
    noisy = np.where(keep, x * rng.uniform(1.5, 2.5, x.size).astype(np.float32), 0)
    assert "(not one factor) where 1/(1-p) = 2.00" in judge("d", 0.5, x, noisy, x).cause
    assert "a dropout keeps the shape" in judge("d", 0.5, x, x[:-1], x).cause


def test_report_says_which_layer_and_why(monkeypatch):
    plant(monkeypatch, "pytorch", "drop6",
          lambda info, build: build(replace(info, layer=replace(info.layer, p=0.4))))
    dropout = run_check("pytorch", "paper")
    variant, _ = stand_in("paper")
    v = VariantRun("paper", variant.input_shape, "stand-in", [], [], 0.0,
                   gradients=[GradientRun("pytorch", PASS)], dropout=[dropout])
    run = CrosscheckRun([v], {}, DEFAULT_TOLERANCES, [])
    assert v.failed and run.exit_code == 1
    assert summary(run) == "FAIL: 1 divergence(s): paper/pytorch dropout"
    cause = dropout.first_failure.cause
    assert cause in terminal(run) and cause in markdown(run)
    assert "pytorch dropout: FAIL" in terminal(run)
    assert json.loads(to_json(run))["variants"][0]["dropout"][0]["rows"][0]["cause"] == cause

"""The float64 reference backward, checked against central finite differences."""

from __future__ import annotations

import numpy as np
import pytest

from common.reference_backward import backward, cross_entropy, dropout_masks, forward_train
from common.variants import get_variant
from common.weights import init_weights
from tests.test_frameworks import odd_variant


def loss_of(variant, weights, x, labels, masks):
    outputs = forward_train(variant, weights, x, masks)
    return cross_entropy(outputs[variant.logits_layer], labels)[0]


def small_cases():
    yield "odd", odd_variant()
    # paper's layer kinds (groups, LRN at its constants) on a small input
    yield "paper-small", get_variant("paper", num_classes=5, input_size=(67, 67))
    # Caffe's LRN (alpha divided by the window), after ceil-mode pools, and a final Softmax
    yield "caffenet-small", get_variant("caffenet", num_classes=5, input_size=(67, 67))
    yield "torchvision-small", get_variant("torchvision", num_classes=4, input_size=(63, 63))
    # SAME padding, and a final Softmax folded into the loss
    yield "tf-benchmark-small", get_variant("tf-benchmark", num_classes=5, input_size=(67, 67))


def finite_difference_mismatches(variant) -> list[str]:
    """Names ('input' or a parameter key) whose analytic directional derivative differs
    from the central finite difference."""
    rng = np.random.default_rng(0)
    weights = {k: v.astype(np.float64) for k, v in init_weights(variant, seed=1).items()}
    x = rng.standard_normal((2,) + variant.input_shape) * 64
    labels = rng.integers(0, variant.num_classes, 2)
    masks = dropout_masks(variant, 2, seed=2)
    _, _, _, grad_x, grad_params = backward(variant, weights, x, labels, masks)
    mismatches = []

    def check(name, analytic_grad, perturbed, eps):
        direction = rng.standard_normal(analytic_grad.shape)
        numeric = (perturbed(eps * direction) - perturbed(-eps * direction)) / (2 * eps)
        if float((analytic_grad * direction).sum()) != pytest.approx(numeric, rel=1e-4, abs=1e-8):
            mismatches.append(name)

    check("input", grad_x, lambda d: loss_of(variant, weights, x + d, labels, masks), 1e-4)
    for key in grad_params:
        # a small step: with activations at pixel scale a larger one crosses ReLU kinks
        check(key, grad_params[key],
              lambda d, key=key: loss_of(variant, {**weights, key: weights[key] + d}, x, labels, masks),
              1e-7)
    return mismatches


@pytest.mark.parametrize("name,variant", list(small_cases()))
def test_gradients_match_finite_differences(name, variant):
    assert finite_difference_mismatches(variant) == []


def test_finite_differences_catch_a_wrong_lrn_gradient(monkeypatch):
    from common import reference_backward as rb
    from common.spec import LRN
    original = rb.BACKWARD[LRN]

    def no_cross_term(x, y, g, info, w, scale=None):  # forgets the neighbours' term
        return g * y / np.where(x == 0, 1.0, x), {}

    monkeypatch.setitem(rb.BACKWARD, LRN, no_cross_term)
    assert "input" in finite_difference_mismatches(get_variant("paper", num_classes=5, input_size=(67, 67)))
    monkeypatch.setitem(rb.BACKWARD, LRN, original)


def test_dropout_masks_are_seeded_and_shaped():
    variant = get_variant("torchvision")
    a, b = dropout_masks(variant, 3, seed=4), dropout_masks(variant, 3, seed=4)
    assert set(a) == {"drop6", "drop7"} and a["drop6"].shape == (3, 9216)
    assert all(np.array_equal(a[k], b[k]) for k in a) and 0.4 < a["drop7"].mean() < 0.6

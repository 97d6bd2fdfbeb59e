"""The training-parity check: 20 steps of SGD on real digits in every framework follow the
float64 training run; an optimizer or dropout bug too small for one step is caught."""

from __future__ import annotations

import dataclasses
import functools

import pytest

from common.variants import get_variant
from common.weights import init_weights
from crosscheck import parity
from crosscheck.parity import (PARITY_OPTIMIZER, PARITY_STEPS, ParityReference, check_training,
                               parity_batches, reference_run)
from tests.conftest import backend_or_skip

SGD = PARITY_OPTIMIZER


@functools.lru_cache(maxsize=None)
def parity_case(name: str, steps: int = PARITY_STEPS, **size):
    """(variant, weights, batches, float64 run); ``size``: an input_size override."""
    variant = get_variant(name, **size)
    weights = init_weights(variant, seed=0)
    batches = parity_batches(variant, steps)
    return variant, weights, batches, reference_run(variant, weights, batches, SGD)


def test_loss_curves_follow_the_float64_run(backend):
    variant, weights, batches, reference = parity_case("cifar-small")
    run = check_training(backend, variant, weights, batches, reference)
    assert run.status == "pass", (run.error, run.rel_errors)
    assert len(run.losses) == PARITY_STEPS
    assert reference.losses[-1] < reference.losses[0] * 0.9, "the curve moves: training"
    # cifar-small is not chaotic: the nudged float64 run stays close, the floor is the bound
    assert 0 < max(reference.envelope) < 1e-5
    assert run.tolerances == [parity.DEFAULT_PARITY_TOLERANCES.floor] * PARITY_STEPS


def test_tolerance_follows_the_largest_drift_so_far():
    """Chaotic growth widens the tolerance step by step; a dip in the drift does not
    narrow it again, and a NaN drift (a float64 run that blew up) judges nothing finite."""
    reference = ParityReference([1.0] * 5, [1e-8, 1e-4, 1e-6, 2e-3, float("nan")])
    assert reference.tolerances() == [1e-4, 1e-3, 1e-3, 2e-2, float("inf")]


def test_dropout_is_off_in_every_framework(backend):
    """d2l (dropout after fc6 and fc7), at a small input so the float64 run is quick."""
    variant, weights, batches, reference = parity_case("d2l", 5, input_size=(67, 67))
    run = check_training(backend, variant, weights, batches, reference)
    assert run.status == "pass", (run.error, run.rel_errors)


@pytest.mark.parametrize("planted", ["learning rate 5% high", "momentum dampening 0.1",
                                     "dropout left on"])
def test_planted_training_bugs_are_caught(planted, monkeypatch):
    backend = backend_or_skip("pytorch")
    if planted == "dropout left on":
        variant, weights, batches, reference = parity_case("d2l", 5, input_size=(67, 67))
        monkeypatch.setattr(parity, "dropout_off", lambda variant, batch: {})  # own random masks
        run = check_training(backend, variant, weights, batches, reference)
    else:
        variant, weights, batches, reference = parity_case("cifar-small")
        if planted == "learning rate 5% high":
            spec = dataclasses.replace(SGD, lr=SGD.lr * 1.05)
        else:
            import torch

            real = torch.optim.SGD
            monkeypatch.setattr(torch.optim, "SGD",
                                lambda params, **kw: real(params, **{**kw, "dampening": 0.1}))
            spec = SGD
        run = check_training(backend, variant, weights, batches, reference, spec)
    assert run.status == "FAIL"
    # dropout changes the very first loss; an optimizer bug only the losses after an update
    # (dampening only from the second update on: torch's buffer starts as the gradient)
    expected = {"learning rate 5% high": 2, "momentum dampening 0.1": 3, "dropout left on": 1}
    assert run.first_failure == expected[planted], run.rel_errors


def test_crosscheck_check_train_reports_every_framework(tmp_path):
    """`alexnet crosscheck --check forward,train`: a table, a JSON entry and a plot panel."""
    import json

    from alexnet_cli.main import main
    for name in ("pytorch", "mxnet", "tensorflow"):
        backend_or_skip(name)
    assert main(["crosscheck", "--variant", "cifar-small", "--check", "forward,train",
                 "--device", "cpu", "--quiet", "--report", str(tmp_path)]) == 0
    saved = json.loads((tmp_path / "crosscheck.json").read_text())
    training = saved["variants"][0]["training"]
    # each framework in one process, then on 2 data-parallel workers (crosscheck/parity.py)
    assert [(t["framework"], t["workers"]) for t in training] == [
        (name, workers) for name in ("pytorch", "mxnet", "tensorflow") for workers in (1, 2)]
    assert all(t["status"] == "pass" and len(t["losses"]) == PARITY_STEPS for t in training)
    for t in training:  # a float32 run is never the float64 one exactly, and stays in tolerance
        ratios = [abs(a - b) / abs(b) / tol for a, b, tol in zip(t["losses"], t["reference"], t["tolerances"])]
        assert 0 < max(ratios) <= 1, (t["framework"], t["workers"], ratios)
    assert "training parity" in (tmp_path / "crosscheck.md").read_text()

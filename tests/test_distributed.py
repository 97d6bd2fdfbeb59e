"""The distributed check (crosscheck/distributed.py): each framework's data-parallel
steps on 2 worker processes pass against the float64 whole-batch steps, and each classic
data-parallel bug, planted in the workers, fails with its own explanation. The training
parity on 2 workers (crosscheck/parity.py) leaves the float64 run when the learning rate
is scaled by the workers (that it follows it otherwise is tests/test_parity.py's
``--check train`` report test, which runs it in each framework).

A bug is planted in every worker process through a ``sitecustomize`` module on the
workers' PYTHONPATH (the launcher passes this process's environment on): the workers run
the shipped code with one function replaced, as a port with that bug would.
"""

from __future__ import annotations

import functools
import re
import textwrap

import numpy as np
import pytest

from common.optim import OPTIMIZERS
from common.variants import get_variant
from common.weights import init_weights
from common.inputs import crosscheck_batch
from crosscheck.backward import gradient_inputs
from crosscheck.distributed import check_distributed, even_batch
from crosscheck.parity import check_training_distributed, parity_batches, reference_run
from crosscheck.step import STEPS
from distributed.steps import variant_spec
from tests.conftest import FRAMEWORK_NAMES, backend_or_skip

VARIANT = "cifar-small"

#: the planted bugs: (name, sitecustomize body, the explanation the check must give)
ENGINE = {"pytorch": "impls.pytorch.distributed", "mxnet": "impls.mxnet_gluon.distributed",
          "tensorflow": "impls.tensorflow.distributed"}
SUMMED = {  # each framework's own way of summing the workers' gradients
    "pytorch": """
        import torch.distributed as dist
        make = E.make_optimizer
        def make_optimizer(self, model, spec):  # a comm hook that all-reduces without dividing
            optimizer = make(self, model, spec)
            self._wrapped[id(model)].register_comm_hook(None, lambda state, bucket: dist.all_reduce(
                bucket.buffer(), async_op=True).get_future().then(lambda f: f.value()[0]))
            return optimizer
        E.make_optimizer = make_optimizer
    """,
    "mxnet": """
        def fit_step(self, model, trainer, x, labels, dropout_scales=None):
            loss, logits = m.loss_and_backward(model, self.backend._array(x),
                                               self.backend._array(labels), dropout_scales)
            trainer.step(1)  # the KVStore's sum, not rescaled by the workers
            return float(loss.asscalar()), 0
        E.fit_step = fit_step
    """,
    "tensorflow": """
        import tensorflow as tf
        keras_grads = m.loss_and_gradients
        def loss_and_gradients(*args):  # Keras's division of each replica's loss undone
            loss, grads, logits = keras_grads(*args)
            n = tf.distribute.get_strategy().num_replicas_in_sync
            return loss, [g * n for g in grads], logits
        m.loss_and_gradients = loss_and_gradients
    """,
}
GENERIC = {
    "decay": ("""
        from dataclasses import replace
        make = E.make_optimizer
        E.make_optimizer = lambda self, model, spec: make(
            self, model, replace(spec, weight_decay=spec.weight_decay * self.size))
    """, r"weight decay is applied once per worker \(2x\)"),
    "lr": ("""
        from dataclasses import replace
        make = E.make_optimizer
        E.make_optimizer = lambda self, model, spec: make(self, model, replace(spec, lr=spec.lr * self.size))
    """, r"learning rate is scaled by the 2 workers"),
    "shard": ("""
        import distributed.shard as s
        part = s.shard
        s.shard = lambda batch, rank, size: part(batch, 0, size)
    """, r"every worker trains on the same shard \(rank 0's\)"),
    "writes": ("""
        import distributed.shard as s
        s.writes = lambda rank: True
    """, r"checkpoints written by rank 1 as well as rank 0"),
}
SUM_WORDS = r"sum(med)? (over|of) the 2 workers.*not (averaged|their average)"
ALONE_WORDS = r"not averaged over the workers: rank 1 steps on its own shard alone"
ALL_WORDS = [SUM_WORDS, ALONE_WORDS] + [words for _, words in GENERIC.values()]


def _inputs():
    variant = get_variant(VARIANT)
    x = crosscheck_batch(variant, batch_size=3, seed=0)  # 3 seeded images and the photograph
    labels, _ = gradient_inputs(variant, len(x), 0)
    return variant, init_weights(variant, 0), x, labels


def _check(framework: str, **kwargs):
    variant, weights, x, labels = _inputs()
    rebuild = variant_spec(variant, narrowed=False)
    return check_distributed(backend_or_skip(framework), variant, weights, x, labels, rebuild,
                             timeout=240, **kwargs)


def _plant(tmp_path, monkeypatch, framework: str, body: str) -> None:
    module = ENGINE[framework]
    # workers only: MXNet's scheduler and server serve, then exit, inside ``import mxnet``
    (tmp_path / "sitecustomize.py").write_text(
        "import os\nif os.environ.get('DMLC_ROLE', 'worker') == 'worker':\n" + textwrap.indent(
            f"import impls.{module.split('.')[1]}\n"  # the package's settings first
            f"import {module} as m\nE = m.Engine\n" + textwrap.dedent(body), "    "))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))


@pytest.mark.parametrize("framework", FRAMEWORK_NAMES)
def test_data_parallel_steps_match_the_float64_whole_batch_steps(framework):
    run = _check(framework)
    assert run.status == "pass", (run.error, run.cause, run.evidence)
    assert run.writers == [0]
    for optimizer in OPTIMIZERS:  # both settings, every rank, first and last step
        for step in (1, STEPS):
            units, _ = run.worst(optimizer, step)
            assert 0 < units <= 16, (optimizer, step, units)
    assert {r.param.split(":")[0] for r in run.rows} == {"rank 0", "rank 1"}
    assert 0 < max(run.gradients.values()) < 1e-4


#: the bugs of the update and the reduction, in every framework's engine; the shard and the
#: writer are chosen by the same code for every framework (distributed/steps.py), so those
#: two run in one framework's workers (each framework's run costs CI 8-17 s)
PLANTS = ([(framework, bug) for framework in FRAMEWORK_NAMES for bug in ("summed", "decay", "lr")]
          + [("pytorch", "shard"), ("pytorch", "writes")])


@pytest.mark.parametrize("framework,bug", PLANTS)
def test_a_planted_data_parallel_bug_fails_with_its_explanation(framework, bug, tmp_path, monkeypatch):
    body, words = (SUMMED[framework], SUM_WORDS) if bug == "summed" else GENERIC[bug]
    _plant(tmp_path, monkeypatch, framework, body)
    run = _check(framework, optimizers={"sgd": OPTIMIZERS["sgd"]})  # it has a weight decay
    assert run.status == "FAIL", run
    assert run.error is None, run.error
    assert run.cause and re.search(words, run.cause), (run.cause, run.evidence)
    for other in ALL_WORDS:  # and no other bug is named
        if other != words:
            assert not re.search(other, run.cause), (other, run.cause)


def test_replicas_that_never_average_are_named(tmp_path, monkeypatch):
    """PyTorch's model left unwrapped by DDP: each worker steps on its own shard alone."""
    _plant(tmp_path, monkeypatch, "pytorch", """
        make = E.make_optimizer
        def make_optimizer(self, model, spec):
            optimizer = make(self, model, spec)
            self._wrapped[id(model)] = self._wrapped[id(model)].module  # DDP's wrapper dropped
            return optimizer
        E.make_optimizer = make_optimizer
    """)
    run = _check("pytorch", optimizers={"sgd": OPTIMIZERS["sgd"]})
    assert run.status == "FAIL" and run.error is None, run
    assert run.cause and re.search(ALONE_WORDS, run.cause), (run.cause, run.evidence)
    for other in ALL_WORDS:
        if other != ALONE_WORDS:
            assert not re.search(other, run.cause), (other, run.cause)


@functools.lru_cache(maxsize=None)
def _parity_inputs():
    variant = get_variant(VARIANT)
    weights = init_weights(variant, 0)
    batches = parity_batches(variant)
    return variant, weights, batches, reference_run(variant, weights, batches)


def _parity(framework: str):
    variant, weights, batches, reference = _parity_inputs()
    rebuild = variant_spec(variant, narrowed=False)
    return check_training_distributed(backend_or_skip(framework), variant, weights, batches,
                                      reference, rebuild, timeout=240)


# the 2-worker parity passing in each framework: tests/test_parity.py's --check train report
@pytest.mark.parametrize("framework", FRAMEWORK_NAMES)
def test_a_learning_rate_scaled_by_the_workers_leaves_the_float64_run(framework, tmp_path, monkeypatch):
    _plant(tmp_path, monkeypatch, framework, GENERIC["lr"][0])
    run = _parity(framework)
    assert run.status == "FAIL" and run.error is None, (run.error, run.rel_errors)
    assert run.first_failure is not None and run.first_failure <= 3, run.rel_errors


def test_an_odd_batch_keeps_the_photograph():
    """Equal shards drop seeded images, never the batch's last image (the photograph)."""
    variant = get_variant(VARIANT)
    x = crosscheck_batch(variant, batch_size=4, seed=0)  # 5 images: one must wait
    labels = np.arange(len(x))
    kept, kept_labels = even_batch(x, labels, 2)
    assert len(kept) == 4 and np.array_equal(kept[-1], x[-1]) and kept_labels.tolist() == [0, 1, 2, 4]
    assert even_batch(x[:4], labels[:4], 2)[1].tolist() == [0, 1, 2, 3]  # even: all of it
    with pytest.raises(ValueError, match="do not give each of 2 workers one"):
        even_batch(x[:1], labels[:1], 2)

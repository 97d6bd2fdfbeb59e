"""`alexnet train --workers N`: data-parallel training in each framework's own engine.

Two worker processes on loopback (``distributed/launch.py``) train as one process does
(the same global batches, the gradients averaged, the metrics summed), rank 0 alone
prints and writes, ``--resume`` repeats an uninterrupted run, and bad input is refused
before any process starts (exit 2) or, when a worker fails, reported (exit 1).

Each launch starts two processes that import the framework (MXNet four: its scheduler
and server), which is most of each test's time: measured on 2 shared cores, 6-10 s per
launch when they were idle, up to 20 s when not; the file took 2 min 20 s to 4 min.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file

from alexnet_cli.main import main
from distributed.shard import writes
from tests.conftest import FRAMEWORK_NAMES, backend_or_skip
from training.loop import TrainConfig, epoch_seed, train

#: cifar-small has no dropout: two workers must then train as one process (the same
#: batches, the gradient of each averaged over the workers), up to float32 rounding
SMALL = ["--variant", "cifar-small", "--dataset", "digits", "--subset", "64", "--batch-size", "16",
         "--device", "cpu"]
#: d2l, narrowed as tests/test_train.py narrows it, has dropout (each worker's masks must
#: repeat on resume) and momentum (its state must be restored)
DROPOUT = ["--variant", "d2l", "--dataset", "digits", "--subset", "8", "--batch-size", "4",
           "--device", "cpu"]

#: imported first by every Python process of a launch (PYTHONPATH): narrows d2l in the
#: workers, as tests/test_train.py's fixture does in its own process
NARROWING = '''import os
if os.environ.get("ALEXNET_TEST_NARROW_D2L"):
    from common.variants import get_variant
    from crosscheck.narrow import narrow
    from training import loop
    loop.get_variant = lambda name, **kw: (narrow(get_variant(name, **kw)) if name == "d2l"
                                           else get_variant(name, **kw))
'''


def _quiet(line: str) -> None:
    pass


def _max_difference(a_path, b_path, relative: bool = False) -> float:
    a, b = load_file(a_path), load_file(b_path)
    scale = {k: float(np.abs(b[k]).max()) or 1.0 for k in b} if relative else dict.fromkeys(b, 1.0)
    return max(float(np.abs(a[k] - b[k]).max()) / scale[k] for k in a)


def _epochs(out) -> list[dict]:
    return json.loads((out / "metrics.json").read_text())["epochs"]


@pytest.fixture(params=FRAMEWORK_NAMES)
def framework(request) -> str:
    backend_or_skip(request.param)
    return request.param


@pytest.fixture
def narrowed_workers(tmp_path_factory, monkeypatch):
    """The workers launched from here train d2l narrowed (``NARROWING``)."""
    import os

    site = tmp_path_factory.mktemp("narrowing")
    (site / "sitecustomize.py").write_text(NARROWING)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(site), os.getcwd(),
                                                                   os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("ALEXNET_TEST_NARROW_D2L", "1")


# --- the loop's side: which worker speaks, writes, steps on what, draws which masks ---

def test_epoch_seed_of_rank_0_is_one_process_seed():
    """Rank 0 keeps a single process's dropout seed; each other rank draws its own."""
    legacy = int(np.random.default_rng([7, 3, 2]).integers(2**31))
    assert epoch_seed(7, 3) == epoch_seed(7, 3, 0) == legacy
    seeds = {epoch_seed(7, 3, rank) for rank in range(4)}
    assert len(seeds) == 4
    assert epoch_seed(7, 3, 1) == int(np.random.default_rng([7, 3, 2, 1]).integers(2**31))


class _MirrorEngine:
    """Worker ``rank`` of ``size`` whose partners are copies of it: the engine protocol in
    one process (``sum_all`` multiplies by ``size``), recording what the loop asks of it."""

    name = "pytorch"

    def __init__(self, backend, rank: int, size: int) -> None:
        self.backend, self.rank, self.size = backend, rank, size
        self.shards: list[int] = []

    def build(self, variant, weights):
        return self.backend.build(variant, weights)

    def make_optimizer(self, model, spec):
        return self.backend.make_optimizer(model, spec)

    def fit_step(self, model, optimizer, x, labels, dropout_scales=None):
        self.shards.append(len(x))
        return self.backend.fit_step(model, optimizer, x, labels)

    def sum_all(self, values):
        return [v * self.size for v in values]

    def close(self) -> None:
        pass


@pytest.mark.parametrize("rank", [0, 1])
def test_only_rank_0_speaks_and_writes(tmp_path, rank):
    """In process, one worker of two: each steps on half of every global batch and draws
    its own dropout seed; rank 0 alone prints and writes the run directory."""
    backend = backend_or_skip("pytorch")
    engine = _MirrorEngine(backend, rank, 2)
    seeds: list[int] = []
    reseed = backend.reseed
    backend.reseed = lambda model, seed: (seeds.append(seed), reseed(model, seed))
    lines: list[str] = []
    out = tmp_path / "run"
    history = train(TrainConfig("pytorch", "cifar-small", "digits", epochs=2, batch_size=8,
                                subset=20, device="cpu", out=out, progress=False),
                    say=lines.append, engine=engine)
    assert engine.shards == [4] * 4, "two complete batches of 8 an epoch (4 dropped), 4 each"
    assert seeds == [epoch_seed(0, epoch, rank) for epoch in (1, 2)]
    assert [m.epoch for m in history] == [1, 2]
    assert writes(rank) == (rank == 0)
    if rank == 0:
        assert lines[0].startswith("pytorch") and "2 workers" in lines[0]
        assert [line.split(",")[0] for line in lines[1:]] == ["epoch 1", "epoch 2"]
        assert json.loads((out / "metrics.json").read_text())["config"]["workers"] == 2
    else:
        assert lines == [], "only rank 0 prints"
        assert not out.exists(), "only rank 0 prepares and writes the run directory"


# --- two processes ---

def test_two_workers_train_as_one_process(framework, tmp_path, capfd):
    """A 2-worker run of cifar-small: rank 0 printed the header and each epoch once, the
    run directory holds every epoch's checkpoints and the last optimizer state, and the
    metrics and weights are one process's: train losses within 1e-5 relative, accuracies
    equal, each weight tensor within 1e-3 of its largest value after the 8 steps.

    Measured: PyTorch 2e-7, MXNet 3e-7, TensorFlow 3e-7 after epoch 1 and 2e-4 after epoch
    2 (conv2's weight), where the 2-worker run stays within 7e-7 of PyTorch's one process:
    TensorFlow's one process steps eagerly, its engine in a tf.function graph. A bug that
    matters is larger: every worker stepping on the same half of each batch, 5e-1."""
    out = tmp_path / "two"
    assert main(["train", "--framework", framework, *SMALL, "--epochs", "2", "--workers", "2",
                 "--out", str(out)]) == 0
    printed = capfd.readouterr()
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["config"]["workers"] == 2
    assert [e["epoch"] for e in saved["epochs"]] == [1, 2]
    suffix = backend_or_skip(framework).native_suffix
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["curves.png", "metrics.csv", "metrics.json", "state-epoch2.safetensors",
         *(f"{kind}-epoch{e}{ext}" for e in (1, 2)
           for kind, ext in (("weights", ".safetensors"), ("native", suffix)))])

    one = train(TrainConfig(framework, "cifar-small", "digits", epochs=2, batch_size=16, subset=64,
                            device="cpu", out=tmp_path / "one", progress=False), say=_quiet)
    for two_epoch, one_epoch in zip(saved["epochs"], one):
        assert two_epoch["train_loss"] == pytest.approx(one_epoch.train_loss, rel=1e-5)
        assert two_epoch["train_accuracy"] == one_epoch.train_accuracy
        assert two_epoch["test_accuracy"] == one_epoch.test_accuracy
    assert _max_difference(out / "weights-epoch2.safetensors",
                           tmp_path / "one" / "weights-epoch2.safetensors", relative=True) < 1e-3

    epoch_lines = [line.split(",")[0] for line in printed.out.splitlines() if line.startswith("epoch")]
    assert epoch_lines == ["epoch 1", "epoch 2"], printed.out
    assert sum(line.startswith(framework) for line in printed.out.splitlines()) == 1, printed.out


@pytest.fixture(scope="module")
def resume_start(tmp_path_factory):
    """framework -> (an uninterrupted 2-epoch 2-worker run of DROPOUT, a 1-epoch one to
    resume), launched once per framework for the resume tests, which resume a copy."""
    made = {}

    def start(framework: str, into):
        if framework not in made:
            root = tmp_path_factory.mktemp(f"resume-{framework}")
            for name, epochs in (("whole", "2"), ("split", "1")):
                assert main(["train", "--framework", framework, *DROPOUT, "--workers", "2",
                             "--quiet", "--epochs", epochs, "--out", str(root / name)]) == 0
            made[framework] = root
        shutil.copytree(made[framework] / "split", into)
        return made[framework] / "whole", into
    return start


def test_resume_repeats_an_uninterrupted_run(framework, tmp_path, narrowed_workers, resume_start):
    """Resuming a 2-worker run after epoch 1 gives the uninterrupted run's weights after
    epoch 2 exactly (canonical weights-epoch2, every tensor) and its train losses (the
    per-rank dropout masks and the momentum repeat). The losses agree to float32 rounding,
    not bit for bit: a clean-clone CI of 033d49d saw MXNet's resumed epoch-2 loss one float32
    ulp off one rank's loss (3.8726573288 against 3.8726572990) with the weights exactly
    equal, which 12 runs here did not repeat; a wrong mask or a lost momentum moves the
    loss by far more than 1e-6."""
    whole, split = resume_start(framework, tmp_path / "split")
    assert main(["train", "--framework", framework, *DROPOUT, "--workers", "2", "--quiet",
                 "--epochs", "2", "--out", str(split), "--resume"]) == 0
    assert [e["epoch"] for e in _epochs(split)] == [1, 2]
    assert _max_difference(whole / "weights-epoch2.safetensors",
                           split / "weights-epoch2.safetensors") == 0.0
    assert [e["train_loss"] for e in _epochs(split)] == pytest.approx(
        [e["train_loss"] for e in _epochs(whole)], rel=1e-6, abs=0)


# --- bad input ---

BASE = ["train", "--framework", "pytorch", "--variant", "cifar-small", "--dataset", "digits",
        "--device", "cpu", "--quiet"]


def test_zero_workers_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(BASE + ["--workers", "0"])
    assert exit_info.value.code == 2
    assert "--workers: expected a positive integer, got 0" in capsys.readouterr().err


@pytest.mark.parametrize("bad, message", [
    (["--batch-size", "15", "--workers", "2"], "--batch-size 15 does not split evenly over --workers 2"),
    (["--batch-size", "32", "--subset", "16", "--workers", "2"], "drop an incomplete batch"),
    (["--workers", "2", "--dataset", "fashion-mnist", "--data-dir", "/nonexistent"], "does not exist"),
])
def test_settings_the_workers_cannot_take_exit_2(tmp_path, capsys, bad, message):
    """Refused before any process starts: one line, no output directory."""
    backend_or_skip("pytorch")
    out = tmp_path / "run"
    assert main(BASE + bad + ["--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_resuming_with_other_workers_exits_2(tmp_path, capsys):
    """A 1-process run is not resumed by 2 workers (nor the reverse: run_dir.RESUME_KEYS)."""
    backend_or_skip("pytorch")
    args = BASE + ["--subset", "16", "--batch-size", "8", "--out", str(tmp_path)]
    assert main(args + ["--epochs", "1"]) == 0
    before = (tmp_path / "metrics.json").read_bytes()
    assert main(args + ["--epochs", "2", "--resume", "--workers", "2"]) == 2
    assert "workers 1 (now 2)" in capsys.readouterr().err
    assert (tmp_path / "metrics.json").read_bytes() == before


def test_memory_refusal_counts_the_workers(monkeypatch, capsys):
    """N processes hold the framework, the parameters and the data N times, the global
    batch's activations once: refused at a memory one process would fit in."""
    from alexnet_cli.train_workers import workers_estimate
    from footprint.estimate import train_estimate

    one = train_estimate("cifar-small", "pytorch", "digits", optimizer="sgd")
    two = workers_estimate(one, "pytorch", 2)
    assert two.bytes_at(64) == 2 * one.phases[0].fixed + one.phases[0].per_image * 64
    monkeypatch.setenv("ALEXNET_MEMORY_LIMIT", str((one.bytes_at(64) + two.bytes_at(64)) // 2))
    assert main(BASE + ["--workers", "2"]) == 2
    assert "--batch-size 64 over --workers 2 needs about" in capsys.readouterr().err


def test_a_failed_worker_exits_1(framework, tmp_path, capfd, narrowed_workers, resume_start):
    """Every worker fails to read a damaged optimizer state (the launch's check only sees
    that it is there): the run stops, exit 1, with the worker's message."""
    _, split = resume_start(framework, tmp_path / "split")
    (split / "state-epoch1.safetensors").write_bytes(b"damaged")
    before = (split / "metrics.json").read_bytes()
    assert main(["train", "--framework", framework, *DROPOUT, "--workers", "2", "--quiet",
                 "--epochs", "2", "--out", str(split), "--resume"]) == 1
    err = capfd.readouterr().err
    assert f"alexnet train: error: 2 workers of {framework}:" in err
    assert "state-epoch1.safetensors is damaged" in err
    assert (split / "metrics.json").read_bytes() == before

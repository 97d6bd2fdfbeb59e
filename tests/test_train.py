"""`alexnet train` and `alexnet evaluate`: learning on real data in every framework,
resuming exactly, checkpoints, and bad input (exit 2, nothing half-written)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file

from alexnet_cli.main import main
from common.variants import get_variant
from common.weights import load_weights
from crosscheck.narrow import narrow
from tests.conftest import backend_or_skip
from training import loop
from training.evaluate import evaluate
from training.loop import TrainConfig, train


def _quiet(line: str) -> None:
    pass


def _max_difference(a_path, b_path) -> float:
    a, b = load_file(a_path), load_file(b_path)
    return max(float(np.abs(a[k] - b[k]).max()) for k in a)


def test_cifar_small_learns_digits(backend, tmp_path):
    """The issue's bar: cifar-small on sklearn's digits (upsampled to 32x32, one channel)
    reaches 95% test accuracy in each framework; evaluate agrees with the last epoch."""
    history = train(TrainConfig(backend.name, "cifar-small", "digits", epochs=8, batch_size=32,
                                device="cpu", out=tmp_path), say=_quiet)
    assert history[-1].test_accuracy >= 0.95, [m.test_accuracy for m in history]
    assert history[-1].train_loss < history[0].train_loss / 4
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert [e["epoch"] for e in saved["epochs"]] == list(range(1, 9))
    variant = get_variant("cifar-small", num_classes=10, in_channels=1)
    load_weights(tmp_path / "weights-epoch8.safetensors", variant)  # valid canonical weights
    assert (tmp_path / f"native-epoch8{backend.native_suffix}").is_file()
    assert [p.name for p in tmp_path.glob("state-epoch*")] == ["state-epoch8.safetensors"]
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    result = evaluate(backend.name, "cifar-small", tmp_path / "weights-epoch8.safetensors", "digits")
    assert result.accuracy == pytest.approx(history[-1].test_accuracy, abs=1e-9)
    ten = evaluate(backend.name, "cifar-small", tmp_path / "weights-epoch8.safetensors", "digits",
                   ten_crop=True)
    assert ten.views == 10 and ten.accuracy > 0.5  # other views than it was trained on


#: d2l has dropout (its masks must repeat too) and momentum (its state must be restored).
RESUME = dict(variant="d2l", dataset="digits", batch_size=4, subset=8, device="cpu", progress=False)


@pytest.fixture
def narrowed_d2l(monkeypatch):
    """RESUME's d2l narrowed (crosscheck/narrow.py: every layer, dropout included, and the
    input size, at 16 channels and 64 hidden units): resuming is bookkeeping that no width
    changes, and at full width writing 46M parameters' checkpoints was most of the time."""
    monkeypatch.setattr(loop, "get_variant", lambda name, **kwargs: (
        narrow(get_variant(name, **kwargs)) if name == RESUME["variant"] else get_variant(name, **kwargs)))


@pytest.fixture(scope="module")
def resume_start(tmp_path_factory):
    """framework -> (an uninterrupted 2-epoch run, a 1-epoch run to resume) of RESUME, each
    trained once per framework for every resume test (under ``narrowed_d2l``): they only read
    the first and resume a copy of the second."""
    made = {}

    def start(framework: str, into):
        if framework not in made:
            root = tmp_path_factory.mktemp(f"resume-{framework}")
            train(TrainConfig(framework, epochs=2, out=root / "whole", **RESUME), say=_quiet)
            train(TrainConfig(framework, epochs=1, out=root / "split", **RESUME), say=_quiet)
            made[framework] = root
        shutil.copytree(made[framework] / "split", into)
        return made[framework] / "whole", into
    return start


def test_resume_repeats_an_uninterrupted_run(backend, tmp_path, narrowed_d2l, resume_start):
    whole, split = resume_start(backend.name, tmp_path / "split")
    history = train(TrainConfig(backend.name, epochs=2, out=split, resume=True, **RESUME),
                    say=_quiet)
    assert [m.epoch for m in history] == [1, 2]
    assert _max_difference(whole / "weights-epoch2.safetensors",
                           split / "weights-epoch2.safetensors") == 0.0
    saved = [json.loads((d / "metrics.json").read_text())["epochs"] for d in (whole, split)]
    assert [e["train_loss"] for e in saved[0]] == [e["train_loss"] for e in saved[1]]


@pytest.mark.parametrize("planted", ["optimizer state not restored", "dropout not re-seeded"])
def test_resume_check_catches_a_lost_state(tmp_path, monkeypatch, planted, narrowed_d2l,
                                           resume_start):
    """The resume test above can fail: losing either piece of state changes the weights."""
    torch_backend = backend_or_skip("pytorch")
    whole, split = resume_start("pytorch", tmp_path / "split")  # trained before the bug is planted
    if planted == "optimizer state not restored":
        monkeypatch.setattr(type(torch_backend), "load_optimizer_state", lambda *a: None)
    else:
        monkeypatch.setattr(loop, "epoch_seed", lambda seed, epoch: 12345)
    train(TrainConfig("pytorch", epochs=2, out=split, resume=True, **RESUME), say=_quiet)
    assert _max_difference(whole / "weights-epoch2.safetensors",
                           split / "weights-epoch2.safetensors") > 1e-6


def test_augmented_training_runs_and_is_seeded(tmp_path):
    backend_or_skip("pytorch")
    config = dict(batch_size=16, subset=64, augment=True, progress=False)
    first = train(TrainConfig("pytorch", "cifar-small", "digits", epochs=1, **config), say=_quiet)
    again = train(TrainConfig("pytorch", "cifar-small", "digits", epochs=1, **config), say=_quiet)
    plain = train(TrainConfig("pytorch", "cifar-small", "digits", epochs=1,
                              **{**config, "augment": False}), say=_quiet)
    assert first[0].train_loss == again[0].train_loss
    assert first[0].train_loss != plain[0].train_loss


# --- bad input: a clear message, exit 2, nothing written ---

BASE = ["train", "--framework", "pytorch", "--variant", "cifar-small", "--device", "cpu"]


def test_missing_data_and_existing_runs_exit_2(tmp_path, capsys):
    backend_or_skip("pytorch")
    out = tmp_path / "run"
    assert main(BASE + ["--dataset", "fashion-mnist", "--data-dir", str(tmp_path / "none"),
                        "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not out.exists(), "a data error leaves no output directory behind"
    assert main(BASE + ["--dataset", "cifar10", "--data-dir", str(tmp_path)]) == 2
    assert "cifar-10-binary.tar.gz" in capsys.readouterr().err
    out.mkdir()
    (out / "metrics.json").write_text("{}")
    assert main(BASE + ["--dataset", "digits", "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert (out / "metrics.json").read_text() == "{}", "nothing was overwritten"


def test_corrupt_data_leaves_no_checkpoint(tmp_path, capsys):
    backend_or_skip("pytorch")
    data_dir = tmp_path / "fashion"
    data_dir.mkdir()
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (data_dir / name).write_bytes(b"\x1f\x8b not really gzip")
    out = tmp_path / "run"
    assert main(BASE + ["--dataset", "fashion-mnist", "--data-dir", str(data_dir),
                        "--out", str(out)]) == 2
    assert "error" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("case", ["not writable", "resume nothing", "resume other settings",
                                  "resume without out"])
def test_unusable_output_directory_exits_2(tmp_path, capsys, case):
    backend_or_skip("pytorch")
    args = BASE + ["--dataset", "digits", "--subset", "16", "--epochs", "1", "--quiet"]
    if case == "not writable":
        blocker = tmp_path / "a-file"
        blocker.write_text("x")
        assert main(args + ["--out", str(blocker / "run")]) == 2
        assert "cannot write to output directory" in capsys.readouterr().err
    elif case == "resume nothing":
        assert main(args + ["--out", str(tmp_path), "--resume"]) == 2
        assert "nothing to resume" in capsys.readouterr().err
    elif case == "resume other settings":
        assert main(args + ["--out", str(tmp_path)]) == 0
        before = (tmp_path / "metrics.json").read_bytes()
        assert main(args + ["--out", str(tmp_path), "--resume", "--epochs", "2",
                            "--batch-size", "8"]) == 2
        assert "batch_size 64 (now 8)" in capsys.readouterr().err
        assert (tmp_path / "metrics.json").read_bytes() == before
    else:
        assert main(args + ["--resume"]) == 2
        assert "--resume needs --out" in capsys.readouterr().err


def test_evaluate_bad_weights_exit_2(tmp_path, capsys):
    backend_or_skip("pytorch")
    bad = tmp_path / "w.safetensors"
    bad.write_bytes(b"not a safetensors file")
    assert main(["evaluate", "--framework", "pytorch", "--variant", "cifar-small", "--dataset",
                 "digits", "--weights", str(bad), "--device", "cpu"]) == 2
    assert "not a valid safetensors file" in capsys.readouterr().err


@pytest.mark.parametrize("bad", [["--epochs", "0"], ["--lr", "-1"], ["--lr", "inf"],
                                 ["--dataset", "imagenet"], ["--subset", "0"],
                                 ["--resume", "--force"]])
def test_bad_arguments_exit_2(bad):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--framework", "pytorch", "--variant", "cifar-small", "--dataset", "digits"]
             + bad)
    assert exit_info.value.code == 2

"""`alexnet train`: it learns on real data in every framework; bad input exits 2."""

from __future__ import annotations

import json

import pytest

from alexnet_cli.main import main
from common.variants import get_variant
from common.weights import load_weights
from tests.conftest import backend_or_skip
from training.loop import TrainConfig, train


def test_cifar_small_learns_digits(backend, tmp_path):
    """The issue's bar: cifar-small on sklearn's digits (upsampled to 32x32, one channel)
    reaches 95% test accuracy in each framework."""
    history = train(TrainConfig(backend.name, "cifar-small", "digits", epochs=8, batch_size=32,
                                device="cpu", out=tmp_path), say=lambda line: None)
    assert history[-1].test_accuracy >= 0.95, [m.test_accuracy for m in history]
    assert history[-1].train_loss < history[0].train_loss / 4
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert [e["epoch"] for e in saved["epochs"]] == list(range(1, 9))
    variant = get_variant("cifar-small", num_classes=10, in_channels=1)
    load_weights(tmp_path / "weights-epoch8.safetensors", variant)  # valid canonical weights


def test_missing_data_and_existing_runs_exit_2(tmp_path, capsys):
    backend_or_skip("pytorch")
    base = ["train", "--framework", "pytorch", "--variant", "cifar-small", "--device", "cpu"]
    assert main(base + ["--dataset", "fashion-mnist", "--data-dir", str(tmp_path / "none")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(base + ["--dataset", "cifar10", "--data-dir", str(tmp_path)]) == 2
    assert "cifar-10-binary.tar.gz" in capsys.readouterr().err
    (tmp_path / "metrics.json").write_text("{}")
    assert main(base + ["--dataset", "digits", "--out", str(tmp_path)]) == 2
    assert "--force" in capsys.readouterr().err
    assert (tmp_path / "metrics.json").read_text() == "{}", "nothing was overwritten"


@pytest.mark.parametrize("bad", [["--epochs", "0"], ["--lr", "-1"], ["--dataset", "imagenet"]])
def test_bad_arguments_exit_2(bad):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--framework", "pytorch", "--variant", "cifar-small", "--dataset", "digits"] + bad)
    assert exit_info.value.code == 2

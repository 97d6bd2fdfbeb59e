"""``alexnet init``: the seeded canonical weights, as every other command takes them."""

from __future__ import annotations

import numpy as np
import pytest

from alexnet_cli.main import main
from common.variants import get_variant, variant_names
from common.weights import init_weights, load_weights


@pytest.mark.parametrize("name", [n for n in variant_names() if n in ("cifar-small", "d2l")])
def test_init_writes_the_seeded_canonical_weights(tmp_path, capsys, name):
    path = tmp_path / "w.safetensors"
    assert main(["init", "--variant", name, "--seed", "3", "--out", str(path)]) == 0
    assert "parameters" in capsys.readouterr().out
    variant = get_variant(name)
    written, seeded = load_weights(path, variant), init_weights(variant, 3)
    assert written.keys() == seeded.keys()
    assert all(np.array_equal(written[k], seeded[k]) for k in seeded)
    other = init_weights(variant, 4)
    assert not np.array_equal(written["conv1.weight"], other["conv1.weight"])


def test_init_overrides_classes_and_input_and_replaces_only_when_forced(tmp_path, capsys):
    path = tmp_path / "w.safetensors"
    argv = ["init", "--variant", "cifar-small", "--num-classes", "7", "--input", "1x28x28",
            "--out", str(path)]
    assert main(argv) == 0
    variant = get_variant("cifar-small", num_classes=7, in_channels=1, input_size=(28, 28))
    first = load_weights(path, variant)
    assert main(argv[:-2] + ["--seed", "1", "--out", str(path)]) == 2  # exists: kept
    assert np.array_equal(load_weights(path, variant)["fc5.weight"], first["fc5.weight"])
    assert main(argv + ["--seed", "1", "--force"]) == 0
    assert not np.array_equal(load_weights(path, variant)["fc5.weight"], first["fc5.weight"])

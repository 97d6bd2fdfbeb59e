"""Canonical weights: seeded, validated, safely stored; bad files give clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from safetensors.numpy import save_file

from common.shapes import param_shapes
from common.variants import get_variant
from common.weights import WeightsError, init_weights, load_weights, save_weights


def test_init_is_seeded_and_canonical():
    v = get_variant("cifar-small")
    a, b, c = init_weights(v, 1), init_weights(v, 1), init_weights(v, 2)
    assert {k: x.shape for k, x in a.items()} == param_shapes(v)
    assert all(np.array_equal(a[k], b[k]) for k in a) and not np.array_equal(a["fc5.weight"], c["fc5.weight"])
    assert all(x.dtype == np.float32 for x in a.values())


def test_save_load_round_trip_is_exact(tmp_path):
    v = get_variant("cifar-small")
    w = init_weights(v)
    save_weights(tmp_path / "w.safetensors", v, w)
    back = load_weights(tmp_path / "w.safetensors", v)
    assert all(np.array_equal(w[k], back[k]) for k in w)


def test_save_never_overwrites_unasked(tmp_path):
    v = get_variant("cifar-small")
    path = tmp_path / "w.safetensors"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError):
        save_weights(path, v, init_weights(v))
    assert path.read_bytes() == b"precious"
    save_weights(path, v, init_weights(v), overwrite=True)
    assert path.read_bytes() != b"precious"


def _broken(kind: str) -> dict:
    w = init_weights(get_variant("cifar-small"))
    if kind == "missing":
        del w["conv2.weight"]
    elif kind == "shape":
        w["fc3.weight"] = w["fc3.weight"].T.copy()
    elif kind == "nan":
        w["fc4.bias"][3] = np.nan
    elif kind == "extra":
        w["conv9.weight"] = np.zeros(3, np.float32)
    return w


@pytest.mark.parametrize("kind,expected", [("missing", "missing key 'conv2.weight'"),
                                           ("shape", "key 'fc3.weight' has shape (1024, 384)"),
                                           ("nan", "key 'fc4.bias' holds NaN"),
                                           ("extra", "unexpected key 'conv9.weight'")])
def test_bad_weights_name_the_key(tmp_path, kind, expected):
    path = tmp_path / "bad.safetensors"
    save_file(_broken(kind), str(path))
    with pytest.raises(WeightsError) as err:
        load_weights(path, get_variant("cifar-small"))
    assert expected in str(err.value)


@pytest.mark.parametrize("content", [b"", b"\x80\x04K\x01.", b"not a weights file at all"])
def test_not_a_safetensors_file(tmp_path, content):
    path = tmp_path / "w.safetensors"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match="not a valid safetensors file"):
        load_weights(path, get_variant("cifar-small"))


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(WeightsError, match="does not exist or is not a file"):
        load_weights(tmp_path, get_variant("cifar-small"))

"""``alexnet inspect`` on models nobody here wrote the way they are written: each third-party
style model (tests/inspect_models/<framework>_models.py) is identified as its variant, exact
where it is, and each convention carrier is fingerprinted at the right layers with the right
convention. The CASES tables say what each model is; a model whose fingerprint goes missing,
lands on another layer or names another convention fails here."""

from __future__ import annotations

import functools
import importlib
import json
from pathlib import Path

import pytest

from common.weights import init_weights
from tests.conftest import backend_or_skip

MODELS = Path(__file__).parent / "inspect_models"
#: framework -> (its models file, the framework name the backends use)
FILES = {"pytorch": "torch_models.py", "mxnet": "gluon_models.py", "tensorflow": "keras_models.py"}


#: the seeded canonical weights of a variant, made once per variant for all its models (a
#: full-size variant's 61M normal draws take seconds; the inspection's result is the same)
_seeded = functools.lru_cache(maxsize=4)(init_weights)


@pytest.fixture(autouse=True)
def seeded_weights_once(monkeypatch):
    import inspection.run

    monkeypatch.setattr(inspection.run, "init_weights", _seeded)


def cases():
    """(framework, factory name, expectation) for every model of every framework's table."""
    found = []
    for framework, filename in FILES.items():
        module = f"tests.inspect_models.{filename[:-3]}"
        try:
            table = importlib.import_module(module).CASES
        except ImportError:  # the framework is absent: one case that skips (or fails under tox)
            found.append(pytest.param(framework, None, None, id=f"{framework}-absent"))
            continue
        found += [pytest.param(framework, name, expected, id=f"{framework}-{name}")
                  for name, expected in table.items()]
    return found


def inspect_case(framework: str, name: str, **options):
    from inspection.run import inspect
    from inspection.target import load

    options.setdefault("batch_size", 1)  # one normal image and the photograph: enough here
    return inspect(load(f"{MODELS / FILES[framework]}:{name}"), **options)


@pytest.mark.parametrize("framework,name,expected", cases())
def test_a_third_party_model_is_identified_and_fingerprinted(framework, name, expected):
    backend_or_skip(framework)
    if name is None:
        pytest.fail(f"tests/inspect_models/{FILES[framework]} did not import")
    shape = expected.get("input_shape")  # where the input size is ambiguous from the weights
    result = inspect_case(framework, name, input_shape=tuple(shape) if shape else None)
    assert result.candidate.variant.name == expected["variant"], result.candidate.differences
    from inspection.report import verdict
    said = verdict(result)
    assert result.exact == expected["exact"], said
    assert result.exit_code == (0 if expected["exact"] else 1)
    differs = expected.get("differs", {})
    found = {c.finding.layer if c.finding else c.layer: c.finding for c in result.failing()}
    assert set(found) == set(differs), said
    for layer, word in differs.items():
        finding = found[layer]
        assert finding is not None and finding.matched, said
        assert word in finding.text.lower(), said


TORCH = MODELS / "torch_models.py"
KERAS = MODELS / "keras_models.py"


def test_own_weights_are_read_out_and_checked(capsys):
    """--own-weights: the model's own (random) weights, read out in canonical form, computed by
    the reference: exact, and the canonical arrays are the model's very parameters."""
    backend_or_skip("pytorch")
    from inspection.run import inspect
    from inspection.target import load

    result = inspect(load(f"{TORCH}:cifar_small_seed003"), own_weights=True)
    assert result.exact, result.checks
    # a model with its own weights is not the seeded canonical weights
    from common.weights import init_weights
    seeded = init_weights(result.variant, 0)
    assert not (result.weights["conv1.weight"] == seeded["conv1.weight"]).all()


def test_a_forced_flatten_order_is_fingerprinted():
    """--map's "flatten" overrides the order found: forcing C*H*W on a model that flattens
    NHWC makes its flatten diverge, and the fingerprint names the channels-last order."""
    backend_or_skip("pytorch")
    result = inspect_case("pytorch", "cifar_small_channels_last_flatten", mapping={"flatten": "chw"})
    assert result.flatten_how == "given in --map"
    [failing] = result.failing()
    assert failing.layer == "flatten" and failing.finding.matched
    assert "h*w*c" in failing.finding.text.lower()


def test_export_undoes_the_keras_layouts_and_flatten_order(tmp_path, capsys):
    """A Keras model's own weights exported as canonical safetensors: this package's PyTorch
    model with them computes what the Keras model computes (HWIO kernels, (in, out) dense
    kernels and the H*W*C flatten all undone), and the export refuses to overwrite."""
    backend_or_skip("tensorflow")
    backend_or_skip("pytorch")
    import numpy as np

    from alexnet_cli.main import main
    from common.variants import get_variant
    from common.weights import load_weights
    from impls.base import load_backend
    from inspection.target import load

    path = tmp_path / "w.safetensors"
    code = main(["inspect", "--model", f"{KERAS}:cifar_small_functional", "--export", str(path),
                 "--quiet"])
    out = capsys.readouterr().out
    assert code == 0 and "verified" in out and path.exists(), out
    variant = get_variant("cifar-small")
    weights = load_weights(path, variant)
    # the same factory gives new random weights: compare against a model holding the file's
    keras_model = load(f"{KERAS}:cifar_small_functional").build()
    keras_model.build(variant.input_shape)
    torch_backend = load_backend("pytorch")
    x = np.random.default_rng(0).standard_normal((2, *variant.input_shape)).astype(np.float32)
    from inspection.transfer import to_model
    from inspection.identify import candidates
    [candidate, *_] = candidates(keras_model.param_layers(), [], variant.input_shape)
    keras_model.write_weights(to_model(candidate, variant, weights, "hwc"))
    keras_out = keras_model.run(x)[-1].output
    torch_out = torch_backend.layer_outputs(torch_backend.build(variant, weights), x)["fc5"]
    assert np.abs(keras_out - torch_out).max() <= 1e-5 * np.abs(torch_out).max()
    assert main(["inspect", "--model", f"{KERAS}:cifar_small_functional", "--export", str(path),
                 "--quiet"]) == 2  # exists: never overwritten unasked


def test_the_report_holds_the_verdict_a_table_and_a_picture(tmp_path, capsys):
    backend_or_skip("pytorch")
    from alexnet_cli.main import main

    code = main(["inspect", "--model", f"{TORCH}:cifar_small_conv1_without_bias", "--report",
                 str(tmp_path / "r"), "--quiet"])
    assert code == 1
    data = json.loads((tmp_path / "r" / "inspect.json").read_text())
    assert data["variant"] == "cifar-small" and not data["exact"]
    [conv1] = [layer for layer in data["layers"] if not layer["passed"]]
    assert conv1["layer"] == "conv1" and "bias" in conv1["finding"]["convention"]
    assert "| conv1 |" in (tmp_path / "r" / "inspect.md").read_text()
    assert (tmp_path / "r" / "inspect.png").read_bytes()[:4] == b"\x89PNG"

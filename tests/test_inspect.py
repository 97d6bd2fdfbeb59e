"""``alexnet inspect`` on models nobody here wrote the way they are written: each third-party
style model (tests/inspect_models/<framework>_models.py) is identified as its variant, exact
where it is, and each convention carrier is fingerprinted at the right layers with the right
convention. The CASES tables say what each model is; a model whose fingerprint goes missing,
lands on another layer or names another convention fails here."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

from tests.conftest import backend_or_skip

MODELS = Path(__file__).parent / "inspect_models"
#: framework -> (its models file, the framework name the backends use)
FILES = {"pytorch": "torch_models.py", "mxnet": "gluon_models.py", "tensorflow": "keras_models.py"}


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

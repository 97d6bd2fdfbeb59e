"""docs/PORTING.md: generated from the code, fresh, and every function and test it cites exists."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from crosscheck import porting_guide
from crosscheck.porting_guide import RULES, guide

ROOT = Path(__file__).resolve().parents[1]
REGENERATE = "regenerate it with `python -m crosscheck.porting_guide > docs/PORTING.md`"


def test_porting_guide_is_fresh():
    assert (ROOT / "docs" / "PORTING.md").read_text() == guide(), f"docs/PORTING.md is stale: {REGENERATE}"


def test_a_changed_convention_makes_the_guide_stale(monkeypatch):
    monkeypatch.setattr(porting_guide, "lrn_alpha_divided_by_size", lambda lrn: lrn.alpha)
    assert (ROOT / "docs" / "PORTING.md").read_text() != guide()


def _resolve(dotted: str) -> object:
    parts = dotted.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ModuleNotFoundError:
            continue
        for attr in parts[split:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


@pytest.mark.parametrize("name", sorted({n for rule in RULES for n in rule.implemented_by}))
def test_every_cited_implementation_exists(name):
    if name.startswith(("impls.mxnet_gluon", "impls.tensorflow", "impls.pytorch")):
        from tests.conftest import backend_or_skip
        backend_or_skip({"impls.mxnet_gluon": "mxnet", "impls.tensorflow": "tensorflow",
                         "impls.pytorch": "pytorch"}[".".join(name.split(".")[:2])])
    assert _resolve(name) is not None


@pytest.mark.parametrize("node", sorted({t for rule in RULES for t in rule.proven_by}))
def test_every_cited_test_exists(node):
    path, name = node.split("::")
    tree = ast.parse((ROOT / path).read_text())
    assert name in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}, \
        f"{node} is cited in docs/PORTING.md but does not exist"

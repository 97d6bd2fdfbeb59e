"""The float64 reference, checked layer kind by layer kind against an independent
implementation (PyTorch's functional ops in float64), and the inputs checked to
exercise every layer (LRN not the identity, ReLUs neither all on nor all off)."""

from __future__ import annotations

import numpy as np
import pytest

from common import reference
from common.shapes import _layer_info
from common.spec import LRN, AdaptiveAvgPool2d, Conv2d, Flatten, MaxPool2d, Softmax
from tests.conftest import VARIANTS, backend_or_skip, case


def run_layer(layer, x):
    info = _layer_info(layer, x.shape[1:])
    return info, reference.FORWARD[type(layer)](x, layer, WEIGHTS)


WEIGHTS: dict = {}
RNG = np.random.default_rng(7)


@pytest.fixture(scope="module")
def torch():
    backend_or_skip("pytorch")
    import torch
    return torch


@pytest.mark.parametrize("padding,groups,stride", [((1, 2, 0, 3), 3, 2), ("same", 1, 3), ("valid", 3, 1)])
def test_conv2d(torch, padding, groups, stride):
    x = RNG.standard_normal((2, 6, 11, 9))
    layer = Conv2d("c", 9, 3, stride=stride, padding=padding, groups=groups)
    WEIGHTS.update({"c.weight": RNG.standard_normal((9, 6 // groups, 3, 3)), "c.bias": RNG.standard_normal(9)})
    _, out = run_layer(layer, x)
    t, b, l, r = {"same": (0, 1, 0, 0), "valid": (0, 0, 0, 0)}.get(padding, padding)  # by hand
    expected = torch.nn.functional.conv2d(
        torch.nn.functional.pad(torch.from_numpy(x), (l, r, t, b)), torch.from_numpy(WEIGHTS["c.weight"]),
        torch.from_numpy(WEIGHTS["c.bias"]), stride=stride, groups=groups).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("size", [1, 3, 5, 9])
def test_lrn_at_large_magnitude(torch, size):
    x = RNG.standard_normal((2, 12, 4, 4)) * 300  # the LRN term dominates k here
    layer = LRN("n", size=size, alpha=1e-4, beta=0.75, k=2.0)
    _, out = run_layer(layer, x)
    expected = torch.nn.functional.local_response_norm(torch.from_numpy(x), size, alpha=1e-4 * size,
                                                       beta=0.75, k=2.0).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    assert np.median(np.abs(out / x)) < 0.5  # far from the identity: the check means something


def test_caffe_lrn_by_hand(torch):
    """Caffe's LRN (lrn_layer.cpp: ``scale = k + alpha / local_size * sum of squares``, the
    window centred and cut at the edge channels), computed here loop by loop."""
    x = RNG.standard_normal((2, 7, 3, 2)) * 300
    layer = LRN("n", size=5, alpha=1e-4, beta=0.75, k=1.0, alpha_over_size=True)
    _, out = run_layer(layer, x)
    expected = np.empty_like(x)
    for n in range(2):
        for c in range(7):
            for i in range(3):
                for j in range(2):
                    squares = sum(x[n, c2, i, j] ** 2 for c2 in range(max(0, c - 2), min(7, c + 3)))
                    expected[n, c, i, j] = x[n, c, i, j] / (1.0 + 1e-4 / 5 * squares) ** 0.75
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    # PyTorch's LocalResponseNorm takes Caffe's numbers as they are
    np.testing.assert_allclose(out, torch.nn.functional.local_response_norm(
        torch.from_numpy(x), 5, alpha=1e-4, beta=0.75, k=1.0).numpy(), rtol=1e-12)
    # the same numbers read in the paper's convention are another function, far from this one
    paper = run_layer(LRN("n", size=5, alpha=1e-4, beta=0.75, k=1.0), x)[1]
    assert np.linalg.norm(paper - out) / np.linalg.norm(out) > 0.1
    assert np.median(np.abs(out / x)) < 0.5  # far from the identity: the check means something


@pytest.mark.parametrize("kernel,stride,padding,ceil", [(3, 2, 0, False), (3, 2, 0, True),
                                                         (2, 2, 1, True), (3, 3, 1, False)])
def test_max_pool(torch, kernel, stride, padding, ceil):
    x = RNG.standard_normal((2, 3, 10, 7))
    _, out = run_layer(MaxPool2d("p", kernel, stride, padding, ceil), x)
    expected = torch.nn.functional.max_pool2d(torch.from_numpy(x), kernel, stride, padding,
                                              ceil_mode=ceil).numpy()
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("size,output", [((13, 13), (6, 6)), ((2, 3), (6, 6)), ((7, 11), (3, 5))])
def test_adaptive_avg_pool(torch, size, output):
    x = RNG.standard_normal((2, 3) + size)
    _, out = run_layer(AdaptiveAvgPool2d("a", output), x)
    expected = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(x), output).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-12)


def test_softmax(torch):
    x = RNG.standard_normal((3, 10)) * 50
    _, out = run_layer(Softmax("s"), x)
    np.testing.assert_allclose(out, torch.softmax(torch.from_numpy(x), 1).numpy(), rtol=1e-12)


@pytest.mark.parametrize("name", VARIANTS)
def test_inputs_exercise_every_layer(name):
    variant, weights, x, ref = case(name)
    previous = x.astype(np.float64)
    for layer_name, out in ref.items():
        kind = type(variant.layer(layer_name)).__name__
        if kind == "ReLU":
            on = float((out > 0).mean())
            assert 0.05 < on < 0.95, f"{layer_name}: {on:.0%} of units on"
        if kind == "LRN":
            change = np.linalg.norm(out - previous) / np.linalg.norm(previous)
            assert change > 0.1, f"{layer_name}: LRN changes its input by only {change:.1e}"
        assert np.abs(out).max() > 0, f"{layer_name}: all zeros"
        previous = out


# --- the oracle is independent of the implementations' shape and convention code ---------

#: what the reference may import: NumPy, the spec's dataclasses and itself. Shape
#: inference (common.shapes) and the conventions (common.conventions) are what the
#: implementations use; an oracle that shared them could not see a bug in them.
ORACLE_IMPORTS = {"__future__", "math", "typing", "numpy", "numpy.lib.stride_tricks",
                  "common.spec", "common.reference"}


@pytest.mark.parametrize("module", ["common/reference.py", "common/reference_backward.py"])
def test_reference_imports_nothing_the_implementations_use(module):
    import ast
    from pathlib import Path
    tree = ast.parse((Path(__file__).parents[1] / module).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):  # `from common import x` imports common.x
            imported |= ({f"common.{alias.name}" for alias in node.names}
                         if node.module == "common" else {node.module})
    assert imported <= ORACLE_IMPORTS, f"the reference imports {sorted(imported - ORACLE_IMPORTS)}"


@pytest.mark.parametrize("size", [9, 10, 11, 12, 13, 14])
@pytest.mark.parametrize("kernel,stride", [(3, 1), (4, 1), (3, 2), (5, 2), (11, 4), (2, 3)])
def test_same_padding_is_tensorflows(size, kernel, stride):
    """SAME against TensorFlow's own conv (the one framework that pads by itself), odd and
    even remainders, not against common.shapes, which PyTorch and MXNet take theirs from."""
    backend_or_skip("tensorflow")
    import tensorflow as tf
    x = RNG.standard_normal((1, 2, size, size + 1))
    layer = Conv2d("c", 3, kernel, stride=stride, padding="same")
    WEIGHTS.update({"c.weight": RNG.standard_normal((3, 2, kernel, kernel)), "c.bias": np.zeros(3)})
    _, out = run_layer(layer, x)
    expected = tf.nn.conv2d(x.transpose(0, 2, 3, 1), WEIGHTS["c.weight"].transpose(2, 3, 1, 0),
                            stride, "SAME").numpy().transpose(0, 3, 1, 2)
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("size", range(5, 16))
@pytest.mark.parametrize("kernel,stride,padding", [(3, 2, 0), (3, 2, 1), (2, 2, 1), (3, 3, 1), (5, 3, 2)])
def test_pooled_sizes_are_pytorchs(torch, size, kernel, stride, padding):
    x = RNG.standard_normal((1, 1, size, size + 2))
    for ceil in (False, True):
        out = reference.apply(MaxPool2d("p", kernel, stride, padding, ceil), x, {})
        expected = torch.nn.functional.max_pool2d(torch.from_numpy(x), kernel, stride, padding,
                                                  ceil_mode=ceil).numpy()
        np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("size", [1, 2, 5, 6, 7, 12, 13, 14, 27])
@pytest.mark.parametrize("output", [1, 3, 5, 6])
def test_adaptive_bins_are_pytorchs(torch, size, output):
    x = RNG.standard_normal((1, 2, size, size + 3))
    out = reference.apply(AdaptiveAvgPool2d("a", (output, output)), x, {})
    expected = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(x), output).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-12)


def test_flatten_is_channels_first():
    x = RNG.standard_normal((2, 3, 4, 5))
    out = reference.apply(Flatten("f"), x, {})
    assert out[1, 2 * 20 + 3 * 5 + 4] == x[1, 2, 3, 4]


@pytest.mark.parametrize("name", VARIANTS)
def test_reference_shapes_agree_with_shape_inference(name):
    """Two independent derivations of every layer's shape, the reference's and the one
    the implementations build from: a wrong rule in either shows here."""
    from common.shapes import infer
    variant, _, _, ref = case(name)
    assert {i.name: i.in_shape for i in infer(variant)} == reference.input_shapes(variant)
    assert {i.name: i.out_shape for i in infer(variant)} == {k: v.shape[1:] for k, v in ref.items()}

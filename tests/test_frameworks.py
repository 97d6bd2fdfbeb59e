"""Every framework against the float64 reference, for every registered variant."""

from __future__ import annotations

import numpy as np
import pytest

from common.spec import Variant
from common.weights import init_weights
from crosscheck.compare import DEFAULT_TOLERANCES, layer_error
from tests.conftest import VARIANTS, case


@pytest.mark.parametrize("variant_name", VARIANTS)
def test_every_layer_matches_reference(backend, variant_name):
    variant, weights, x, ref = case(variant_name)
    outputs = backend.layer_outputs(backend.build(variant, weights), x)
    assert list(outputs) == list(ref), "one output per spec layer, in order"
    for name, expected in ref.items():
        error = layer_error(outputs[name], expected)
        assert error.passes(DEFAULT_TOLERANCES), f"{backend.name} {variant_name} {name}: {error}"


@pytest.mark.parametrize("variant_name", VARIANTS)
def test_canonical_round_trip_is_exact(backend, variant_name):
    variant = case(variant_name)[0]
    weights = init_weights(variant, seed=3)
    exported = backend.export_weights(backend.build(variant, weights))
    assert sorted(exported) == sorted(weights)
    for key, value in weights.items():
        assert exported[key].dtype == np.float32 and np.array_equal(exported[key], value), key


def odd_variant():
    """Every layer option AlexNet's variants leave unused: asymmetric SAME padding (even
    kernel), explicit asymmetric padding, groups 4, LRN size 3, a padded ceil-mode pool
    whose last window would start in the padding (dropped), adaptive pooling with
    overlapping bins, odd input sizes."""
    from common.spec import (LRN, AdaptiveAvgPool2d, Conv2d, Dense, Dropout, Flatten, MaxPool2d,
                             ReLU, Softmax, Variant)
    layers = (Conv2d("conv1", 8, 4, padding="same"), ReLU("relu1"),
              LRN("norm1", size=3, alpha=1e-3, beta=0.75, k=1.0),
              MaxPool2d("pool1", 2, 2, padding=1, ceil_mode=True),
              Conv2d("conv2", 12, 3, padding=(0, 2, 1, 0), groups=4), ReLU("relu2"),
              MaxPool2d("pool2", 2, 2, ceil_mode=True),
              AdaptiveAvgPool2d("avgpool", (4, 3)), Flatten("flatten"), Dropout("drop"),
              Dense("fc", 7), Softmax("softmax"))
    return Variant("odd", layers, (4, 23, 19), 7, "test")


def test_odd_layer_options_match_reference(backend):
    from common import reference
    from common.inputs import normal_batch
    variant = odd_variant()
    weights = init_weights(variant, seed=1)
    x = normal_batch(variant, 3, seed=1)
    ref = reference.forward(variant, weights, x)
    outputs = backend.layer_outputs(backend.build(variant, weights), x)
    for name, expected in ref.items():
        error = layer_error(outputs[name], expected)
        assert error.passes(DEFAULT_TOLERANCES), f"{backend.name} {name}: {error}"


@pytest.mark.parametrize("pool_to", [(6, 6), (3, 2), (4, 5)], ids=["identity", "disjoint", "overlapping"])
def test_padding_and_adaptive_pooling_shortcuts_match_reference(backend, pool_to):
    """The cases a framework may shortcut (Keras's own SAME where explicit padding equals
    it, at stride 1 and 2; adaptive pooling to the input size, or with equal disjoint bins)
    compute what the general case does."""
    from common import reference
    from common.inputs import normal_batch
    from common.spec import AdaptiveAvgPool2d, Conv2d, Dense, Flatten, ReLU, Variant
    layers = (Conv2d("conv1", 5, 3, padding=(1, 1, 1, 1)), ReLU("relu1"),
              Conv2d("conv2", 6, 3, stride=2, padding=(0, 1, 0, 1)), ReLU("relu2"),
              AdaptiveAvgPool2d("avgpool", pool_to), Flatten("flatten"), Dense("fc", 4))
    variant = Variant("shortcuts", layers, (3, 12, 12), 4, "test")
    weights = init_weights(variant, seed=2)
    x = normal_batch(variant, 2, seed=2)
    outputs = backend.layer_outputs(backend.build(variant, weights), x)
    for name, expected in reference.forward(variant, weights, x).items():
        error = layer_error(outputs[name], expected)
        assert error.passes(DEFAULT_TOLERANCES), f"{backend.name} {name}: {error}"


def test_gluon_model_hybridizes_to_the_same_output():
    from tests.conftest import backend_or_skip
    backend = backend_or_skip("mxnet")
    import mxnet as mx
    variant, weights, x, _ = case("paper")
    model = backend.build(variant, weights)
    eager = model(mx.nd.array(x)).asnumpy()
    model.hybridize(static_alloc=True, static_shape=True)
    np.testing.assert_array_equal(model(mx.nd.array(x)).asnumpy(), eager)


@pytest.mark.parametrize("onednn", ["0", "1"])
def test_mxnet_onednn_lrn_backward_bug(onednn):
    """MXNet 1.9.1's oneDNN LRN backward reads an output gradient in oneDNN's blocked layout
    as NCHW (docs/mxnet-onednn-bug.md): the standalone reproduction, run as written. LRN
    alone is right; after it a convolution, whose backward hands it a blocked gradient, gives
    exactly what the layout mix-up predicts. When the oneDNN case turns exact, MXNet has
    fixed it and ``model.LocalResponseNorm`` can go back to ``F.LRN``."""
    import os
    import re
    import subprocess
    import sys
    from pathlib import Path
    from tests.conftest import backend_or_skip
    backend_or_skip("mxnet")
    script = Path(__file__).parents[1] / "docs" / "mxnet_onednn_repro.py"
    env = {**os.environ, "MXNET_MKLDNN_ENABLED": onednn, "MXNET_STORAGE_FALLBACK_LOG_VERBOSE": "0"}
    out = subprocess.run([sys.executable, str(script)], env=env, check=True, capture_output=True,
                         text=True).stdout
    errors = re.findall(r"float64 (\S+), vs the layout mix-up (\S+)", out)
    (alone, _), (then_conv, mixed_up) = [(float(a), float(b)) for a, b in errors]
    assert alone < 1e-5, out
    if onednn == "1":
        assert then_conv > 0.1 and mixed_up < 1e-5, out
    else:
        assert then_conv < 1e-5, out


def lrn_variant(order: str) -> Variant:
    """``paper`` at 67x67: each LRN before its max pool ("lrn-pool", the paper's and
    ``tf-benchmark``'s order) or after it ("pool-lrn", CaffeNet's), where the LRN's output
    gradient comes from a max pool's backward or from a convolution's."""
    from dataclasses import replace
    from common.spec import LRN
    from common.variants import get_variant
    variant = get_variant("paper", num_classes=5, input_size=(67, 67))
    layers = list(variant.layers)
    if order == "pool-lrn":
        for i in [i for i, layer in enumerate(layers) if isinstance(layer, LRN)]:
            layers[i], layers[i + 1] = layers[i + 1], layers[i]
    return replace(variant, name=f"paper-{order}", layers=tuple(layers))


def mxnet_gradient_error(order: str, hybridize: bool) -> float:
    """The worst relative L2 error of MXNet's parameter gradients against float64, one
    autograd graph from the input to the loss as the fast-path check runs it (dropout off)."""
    from common import reference_backward
    from common.inputs import crosscheck_batch
    from crosscheck.backward import gradient_inputs
    from impls.base import FastPaths
    from tests.conftest import backend_or_skip, rel_l2
    backend = backend_or_skip("mxnet")
    variant = lrn_variant(order)
    weights = init_weights(variant, seed=0)
    x = crosscheck_batch(variant, batch_size=2, seed=0)
    labels, _ = gradient_inputs(variant, len(x), seed=0)
    expected = reference_backward.backward(variant, weights, x, labels)[4]
    got = backend.bench_session(variant, weights, x, labels, FastPaths(hybridize=hybridize),
                                "fp32").gradients()
    return max(rel_l2(got[key], ref) for key, ref in expected.items())


def onednn_on() -> bool:
    """oneDNN runs: compiled into this MXNet build and not switched off (MXNet's default is on)."""
    import os
    import mxnet as mx
    return (mx.runtime.Features().is_enabled("MKLDNN")
            and os.environ.get("MXNET_MKLDNN_ENABLED", "1") != "0")


@pytest.mark.parametrize("hybridize", [True, False], ids=["hybridized", "eager"])
@pytest.mark.parametrize("order", ["lrn-pool", "pool-lrn"])
def test_mxnet_lrn_gradient_is_exact_as_shipped(order, hybridize):
    """The configuration impls/mxnet_gluon ships (oneDNN on, LRN written out) is exact."""
    assert mxnet_gradient_error(order, hybridize) < 1e-5


@pytest.mark.parametrize("order", ["lrn-pool", "pool-lrn"])
def test_mxnet_f_lrn_with_onednn_is_caught(monkeypatch, order):
    """The test above fails on the configuration before this one: ``F.LRN`` with oneDNN."""
    from tests.conftest import backend_or_skip
    backend_or_skip("mxnet")
    if not onednn_on():
        pytest.skip("MXNET_MKLDNN_ENABLED=0: the bug is oneDNN's")
    import impls.mxnet_gluon.model as m
    monkeypatch.setattr(m.LocalResponseNorm, "hybrid_forward", lambda self, F, x: F.LRN(
        x, nsize=self._size, alpha=self._alpha, beta=self._beta, knorm=self._k))
    assert mxnet_gradient_error(order, hybridize=True) > 0.1

"""Every framework against the float64 reference, for every registered variant."""

from __future__ import annotations

import numpy as np
import pytest

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


ONEDNN_REPRODUCTION = """
import numpy as np, impls.mxnet_gluon, mxnet as mx
from common.optim import OPTIMIZERS
from common.variants import get_variant
from common.weights import init_weights
from common.inputs import crosscheck_batch
from crosscheck.backward import float32_scales, gradient_inputs, reference_chain
from impls.base import load_backend
variant = get_variant("paper", num_classes=5, input_size=(67, 67))
weights = init_weights(variant, 0)
x = crosscheck_batch(variant, 2, 0)
labels, masks = gradient_inputs(variant, len(x), 0)
ref = reference_chain(variant, weights, x, labels, masks)
backend = load_backend("mxnet")
model = backend.build(variant, weights)
_, grads = backend.train_step(model, backend.make_optimizer(model, OPTIMIZERS["sgd"]), x, labels,
                              float32_scales(variant, masks))
g, r = grads["conv1.weight"], ref.param_grads["conv1.weight"]
print(np.linalg.norm(g - r) / np.linalg.norm(r))
"""


@pytest.mark.parametrize("onednn,broken", [("0", False), ("1", True)])
def test_mxnet_onednn_conv_relu_lrn_pool_gradient(onednn, broken):
    """Why impls/mxnet_gluon/__init__.py turns oneDNN off: with it, conv1's gradient
    through ReLU, LRN and max pooling in one graph is wrong. When the oneDNN case starts
    passing, MXNet has fixed it and the default can go."""
    import os
    import subprocess
    import sys
    from tests.conftest import backend_or_skip
    backend_or_skip("mxnet")
    env = {**os.environ, "MXNET_MKLDNN_ENABLED": onednn, "PYTHONPATH": os.getcwd()}
    out = subprocess.run([sys.executable, "-c", ONEDNN_REPRODUCTION], env=env, check=True,
                         capture_output=True, text=True).stdout
    error = float(out.strip().splitlines()[-1])
    assert (error > 0.1) if broken else (error < 1e-5), error

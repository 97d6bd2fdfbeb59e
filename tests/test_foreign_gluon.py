"""The Gluon adapter of ``alexnet inspect`` alone (``impls/mxnet_gluon/foreign.py``): layers,
canonical weights, captures, and the errors a user sees."""

from __future__ import annotations

import numpy as np
import pytest

from impls.foreign import ForeignModelError
from tests.conftest import backend_or_skip

ZOO_SHAPES = [(64, 3, 11, 11), (192, 64, 5, 5), (384, 192, 3, 3), (256, 384, 3, 3),
              (256, 256, 3, 3), (4096, 9216), (4096, 4096), (1000, 4096)]


@pytest.fixture(scope="module")
def gluon():
    """(mxnet, gluon.nn, the adapter module), or a skip without MXNet."""
    backend_or_skip("mxnet")
    import mxnet as mx
    from mxnet.gluon import nn

    from impls.mxnet_gluon import foreign
    return mx, nn, foreign


@pytest.fixture(scope="module")
def zoo(gluon):
    """The model zoo AlexNet, hybridized as users ship it, wrapped and built at 224x224."""
    mx, _, foreign = gluon
    net = mx.gluon.model_zoo.vision.alexnet(classes=1000)
    net.initialize()
    net.hybridize()
    net(mx.nd.zeros((1, 3, 224, 224)))  # the cached graph exists: its children's hooks are dead
    model = foreign.adapt(net)
    model.build((3, 224, 224))
    return model


def small(nn, *layers):
    net = nn.HybridSequential()
    net.add(*layers)
    return net


def test_zoo_param_layers_are_canonical(zoo):
    layers = zoo.param_layers()
    assert [l.kind for l in layers] == ["conv"] * 5 + ["dense"] * 3
    assert [l.weight_shape for l in layers] == ZOO_SHAPES
    assert [l.name for l in layers][::4] == ["features.0", "features.6"]
    assert layers[-1].name == "output"
    assert all(l.has_bias and l.groups == 1 for l in layers)


def test_write_then_read_round_trips_exactly(zoo):
    rng = np.random.default_rng(0)
    weights = {l.name: (rng.standard_normal(l.weight_shape, dtype=np.float32),
                        rng.standard_normal(l.weight_shape[0], dtype=np.float32))
               for l in zoo.param_layers()}
    zoo.write_weights(weights)
    read = zoo.read_weights()
    assert list(read) == list(weights)
    for name, (weight, bias) in weights.items():
        np.testing.assert_array_equal(read[name][0], weight)
        np.testing.assert_array_equal(read[name][1], bias)


def test_run_captures_in_order_even_when_hybridized(zoo):
    captured = zoo.run(np.zeros((2, 3, 224, 224), np.float32))
    assert [c.kind for c in captured] == (
        ["conv", "maxpool", "conv", "maxpool", "conv", "conv", "conv", "maxpool", "flatten",
         "dense", "dropout", "dense", "dropout", "dense"])
    assert [c.name for c in captured][:2] == ["features.0", "features.1"]
    assert captured[0].inputs.shape == (2, 3, 224, 224)
    assert captured[0].output.shape == (2, 64, 55, 55)
    assert not any(c.channels_last for c in captured)
    assert all(c.output.dtype == np.float32 for c in captured)


def test_fused_relu_activations_groups_and_eval_mode(gluon):
    mx, nn, foreign = gluon
    net = small(nn, nn.Conv2D(4, 3, groups=2, activation="relu"), nn.Activation("relu"),
                nn.Activation("tanh"), nn.Dropout(0.5), nn.Dense(3))
    model = foreign.adapt(net)
    model.build((2, 6, 6))
    assert [(l.kind, l.weight_shape, l.groups) for l in model.param_layers()] == [
        ("conv", (4, 1, 3, 3), 2), ("dense", (3, 64), 1)]
    x = np.random.default_rng(0).standard_normal((1, 2, 6, 6)).astype(np.float32)
    with mx.autograd.record():  # run() is eval mode regardless
        captured = model.run(x)
    assert [c.kind for c in captured] == ["conv", "relu", "other", "dropout", "dense"]
    assert captured[0].output.min() >= 0  # the conv's own ReLU is in its output
    np.testing.assert_array_equal(captured[3].output, captured[3].inputs)


def test_build_keeps_the_users_initialized_weights(gluon):
    mx, nn, foreign = gluon
    net = small(nn, nn.Conv2D(4, 3), nn.Dense(3))
    net.initialize(mx.init.Constant(0.5))  # deferred: shapes come with the first forward
    model = foreign.adapt(net)
    model.build((1, 5, 5))
    weight, _ = model.read_weights()["0"]  # (a bias has its own initializer, zeros)
    assert weight.shape == (4, 1, 3, 3) and (weight == 0.5).all()


def test_a_model_without_weights_is_refused(gluon):
    _, nn, foreign = gluon
    with pytest.raises(ForeignModelError, match="no layer with a 2-D or 4-D weight"):
        foreign.adapt(small(nn, nn.MaxPool2D(), nn.Activation("relu")))
    assert foreign.adapt(object()) is None


def test_a_failing_forward_names_the_input_shape(gluon):
    _, nn, foreign = gluon
    model = foreign.adapt(small(nn, nn.Conv2D(4, 3, in_channels=3), nn.Dense(3, in_units=100)))
    with pytest.raises(ForeignModelError, match=r"HybridSequential failed on an input of shape "
                                                r"\(1, 3, 8, 8\)"):
        model.build((3, 8, 8))

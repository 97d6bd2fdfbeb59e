"""The Keras adapter of ``alexnet inspect`` alone (``impls/tensorflow/foreign.py``), on tiny
AlexNet-shaped models (5 convolutions, 3 dense layers, 3x32x32 input) of the four kinds
people write: Sequential, functional, subclassed, and custom layers over raw ``tf.nn`` ops.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import backend_or_skip

INPUT = (3, 32, 32)  # (C, H, W); the models take NHWC
#: canonical weight shapes of the tiny nets (conv2 of the functional one has groups=2)
SHAPES = [(8, 3, 5, 5), (12, 8, 3, 3), (16, 12, 3, 3), (16, 16, 3, 3), (8, 16, 3, 3),
          (20, 32), (20, 20), (10, 20)]


@pytest.fixture(autouse=True)
def tensorflow_backend():
    backend_or_skip("tensorflow")


def sequential():
    """Unbuilt (no Input): the adapter's build makes its weights."""
    import keras
    from keras import layers
    return keras.Sequential([
        layers.Conv2D(8, 5, strides=2, activation="relu"), layers.MaxPooling2D(3, 2),
        layers.Conv2D(12, 3, padding="same", activation="relu"), layers.MaxPooling2D(3, 2),
        layers.Conv2D(16, 3, padding="same", activation="relu"),
        layers.Conv2D(16, 3, padding="same", activation="relu"),
        layers.Conv2D(8, 3, padding="same", activation="relu"),
        layers.Flatten(),
        layers.Dense(20, activation="relu"), layers.Dropout(0.5),
        layers.Dense(20, activation="relu"), layers.Dropout(0.5),
        layers.Dense(10),
    ])


def functional():
    import keras
    import tensorflow as tf
    from keras import layers
    x = images = keras.Input((32, 32, 3))
    x = layers.ReLU()(layers.Conv2D(8, 5, strides=2)(x))
    x = layers.Lambda(lambda t: tf.nn.lrn(t, depth_radius=2, bias=2.0, alpha=1e-4, beta=0.75))(x)
    x = layers.MaxPooling2D(3, 2)(x)
    x = layers.ReLU()(layers.Conv2D(12, 3, padding="same", groups=2)(x))
    x = layers.MaxPooling2D(3, 2)(x)
    for filters in (16, 16, 8):
        x = layers.Activation("relu")(layers.Conv2D(filters, 3, padding="same")(x))
    x = layers.Flatten()(x)
    for units in (20, 20):
        x = layers.Dropout(0.5)(layers.ReLU()(layers.Dense(units)(x)))
    return keras.Model(images, layers.Softmax()(layers.Dense(10)(x)))


def subclassed():
    """Layers as attributes, ReLUs as raw ops in ``call``, which runs under tf.function."""
    import keras
    import tensorflow as tf
    from keras import layers

    class Tiny(keras.Model):
        def __init__(self):
            super().__init__()
            self.features = [layers.Conv2D(8, 5, strides=2), layers.MaxPooling2D(3, 2),
                             layers.Conv2D(12, 3, padding="same"), layers.MaxPooling2D(3, 2),
                             layers.Conv2D(16, 3, padding="same"),
                             layers.Conv2D(16, 3, padding="same"),
                             layers.Conv2D(8, 3, padding="same")]
            self.flatten = layers.Flatten()
            self.fc = [layers.Dense(20), layers.Dense(20), layers.Dense(10)]

        @tf.function
        def call(self, x, training=False):
            for layer in self.features:
                x = layer(x)
                x = tf.nn.relu(x) if isinstance(layer, layers.Conv2D) else x
            x = self.flatten(x)
            for layer in self.fc[:-1]:
                x = tf.nn.relu(layer(x))
            return self.fc[-1](x)

    model = Tiny()
    model(tf.zeros((1, 32, 32, 3)))
    return model


def raw_tf():
    """Seed 004's way: custom layers holding ``add_weight`` variables, calling tf.nn ops."""
    import keras
    import tensorflow as tf
    from keras import layers

    class ConvReLU(layers.Layer):
        def __init__(self, filters, kernel, stride=1, padding="SAME"):
            super().__init__()
            self.filters, self.kernel, self.stride, self.padding = filters, kernel, stride, padding

        def build(self, input_shape):
            self.kernel_ = self.add_weight(name="weights", initializer="glorot_uniform",
                                           shape=(self.kernel, self.kernel, input_shape[-1],
                                                  self.filters))
            self.biases = self.add_weight(name="biases", shape=(self.filters,),
                                          initializer="zeros")

        def call(self, x):
            conv = tf.nn.conv2d(x, self.kernel_, strides=self.stride, padding=self.padding)
            return tf.nn.relu(tf.nn.bias_add(conv, self.biases))

    class MaxPool(layers.Layer):
        def call(self, x):
            return tf.nn.max_pool2d(x, ksize=3, strides=2, padding="VALID")

    class LRN(layers.Layer):
        def call(self, x):
            return tf.nn.lrn(x, 4, bias=1.0, alpha=0.001 / 9, beta=0.75)

    class FullyConnected(layers.Layer):
        def __init__(self, units, relu=True):
            super().__init__()
            self.units, self.relu = units, relu

        def build(self, input_shape):
            self.w = self.add_weight(name="weights", shape=(input_shape[-1], self.units))
            self.b = self.add_weight(name="biases", shape=(self.units,), initializer="zeros")

        def call(self, x):
            y = tf.matmul(x, self.w) + self.b
            return tf.nn.relu(y) if self.relu else y

    class Benchmark(keras.Model):
        def __init__(self):
            super().__init__()
            self.convs = [ConvReLU(8, 5, stride=2, padding="VALID"), LRN(), MaxPool(),
                          ConvReLU(12, 3), LRN(), MaxPool(),
                          ConvReLU(16, 3), ConvReLU(16, 3), ConvReLU(8, 3)]
            self.fcs = [FullyConnected(20), FullyConnected(20), FullyConnected(10, relu=False)]

        def call(self, x):
            for layer in self.convs:
                x = layer(x)
            x = tf.reshape(x, [tf.shape(x)[0], -1])
            for layer in self.fcs:
                x = layer(x)
            return x

    return Benchmark()


#: factory -> (canonical shapes, conv groups, kinds of the layer calls in order)
MODELS = {
    sequential: (SHAPES, [1] * 5, ["conv", "maxpool", "conv", "maxpool", "conv", "conv", "conv",
                                   "flatten", "dense", "dropout", "dense", "dropout", "dense"]),
    functional: ([SHAPES[0], (12, 4, 3, 3)] + SHAPES[2:], [1, 2, 1, 1, 1],
                 ["conv", "relu", "lrn", "maxpool", "conv", "relu", "maxpool"]
                 + ["conv", "relu"] * 3 + ["flatten"] + ["dense", "relu", "dropout"] * 2
                 + ["dense", "softmax"]),
    subclassed: (SHAPES, [1] * 5, ["conv", "maxpool", "conv", "maxpool", "conv", "conv", "conv",
                                   "flatten", "dense", "dense", "dense"]),
    raw_tf: (SHAPES, [1] * 5, ["conv", "lrn", "maxpool", "conv", "lrn", "maxpool", "conv",
                               "conv", "conv", "dense", "dense", "dense"]),
}
FACTORIES = pytest.mark.parametrize("factory", list(MODELS), ids=lambda f: f.__name__)


def built(factory):
    from impls.tensorflow.foreign import adapt
    model = adapt(factory())
    model.build(INPUT)
    return model


def batch(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(2, *INPUT)).astype(np.float32)


@FACTORIES
def test_param_layers_in_order_with_canonical_shapes(factory):
    shapes, groups, _ = MODELS[factory]
    layers = built(factory).param_layers()
    assert [layer.kind for layer in layers] == ["conv"] * 5 + ["dense"] * 3
    assert [layer.weight_shape for layer in layers] == shapes
    assert [layer.groups for layer in layers] == groups + [1] * 3
    assert all(layer.has_bias for layer in layers)
    assert len({layer.name for layer in layers}) == 8


@FACTORIES
def test_weights_round_trip_and_land_in_keras_layout(factory):
    from common.conventions import oihw_to_hwio
    model = built(factory)
    rng = np.random.default_rng(1)
    weights = {layer.name: (rng.normal(size=layer.weight_shape).astype(np.float32),
                            rng.normal(size=layer.weight_shape[:1]).astype(np.float32))
               for layer in model.param_layers()}
    model.write_weights(weights)
    back = model.read_weights()
    assert back.keys() == weights.keys()
    for name, (weight, bias) in weights.items():
        np.testing.assert_array_equal(back[name][0], weight)
        np.testing.assert_array_equal(back[name][1], bias)
    layers = model.param_layers()
    (conv_kernel, _), (dense_kernel, _) = (_variables(model, layers[0].name),
                                           _variables(model, layers[5].name))
    np.testing.assert_array_equal(np.asarray(conv_kernel), oihw_to_hwio(weights[layers[0].name][0]))
    np.testing.assert_array_equal(np.asarray(dense_kernel), weights[layers[5].name][0].T)


def _variables(model, name):
    from impls.tensorflow.foreign import _own_weight
    return _own_weight(model.watched[name])


@FACTORIES
def test_run_captures_every_layer_in_order(factory):
    import tensorflow as tf
    _, _, kinds = MODELS[factory]
    model = built(factory)
    x = batch()
    seen = model.run(x)
    assert [c.kind for c in seen] == kinds
    assert all(c.output.dtype == np.float32 and len(c.output) == 2 for c in seen)
    assert all(c.channels_last for c in seen)
    nhwc = x.transpose(0, 2, 3, 1)
    first = seen[0]
    np.testing.assert_array_equal(first.inputs, nhwc)
    own = model.watched[first.name](tf.constant(nhwc))  # the layer run by TF alone
    np.testing.assert_array_equal(first.output, own.numpy())
    for before, after in zip(seen, seen[1:]):  # each layer took what the one before gave
        given = before.output  # (the subclassed model's ReLUs are raw ops between layers)
        if factory is subclassed and before.kind in ("conv", "dense"):
            given = np.maximum(given, 0)
        if after.inputs is not None and after.inputs.shape == given.shape:
            np.testing.assert_array_equal(after.inputs, given)
    assert [p.name for p in model.param_layers()] == [c.name for c in seen
                                                      if c.kind in ("conv", "dense")]
    assert all("call" not in vars(layer) for layer in model.watched.values())
    assert not tf.config.functions_run_eagerly()  # switched on for the pass only


@FACTORIES
def test_a_failing_call_raises_foreign_model_error(factory):
    from impls.foreign import ForeignModelError
    model = built(factory)  # its dense layers now expect a 32x32 input's features
    with pytest.raises(ForeignModelError, match=r"failed on an input of shape \(1, 40, 40, 3\)"):
        model.build((3, 40, 40))
    assert all("call" not in vars(layer) for layer in model.watched.values())


def test_adapt_takes_keras_layers_only():
    import keras
    from impls.tensorflow.foreign import KerasModel, adapt
    assert adapt(object()) is None
    assert adapt(np.zeros((2, 2))) is None
    assert isinstance(adapt(keras.layers.Dense(3)), KerasModel)
    assert adapt(sequential()).framework == "tensorflow"


def test_a_channels_first_model_is_fed_nchw():
    import keras
    from keras import layers
    from impls.tensorflow.foreign import adapt
    model = adapt(keras.Sequential([layers.Conv2D(4, 3, data_format="channels_first"),
                                    layers.Flatten(), layers.Dense(2)]))
    assert model.channels_last is False
    assert adapt(sequential()).channels_last is True


def test_a_layer_with_two_kernels_is_refused():
    import keras
    from impls.foreign import ForeignModelError
    from impls.tensorflow.foreign import adapt

    class TwoKernels(keras.layers.Layer):
        def build(self, input_shape):
            self.a = self.add_weight(shape=(input_shape[-1], 4))
            self.b = self.add_weight(shape=(4, 4))

        def call(self, x):
            return x @ self.a @ self.b

    with pytest.raises(ForeignModelError, match="holds 2 kernels"):
        adapt(keras.Sequential([keras.layers.Flatten(), TwoKernels()])).build((1, 4, 4))

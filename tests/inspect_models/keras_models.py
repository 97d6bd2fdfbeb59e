"""AlexNets in Keras 3 written the way third-party ports are, for ``alexnet inspect`` tests.

Nothing here uses this package's ``impls`` code: each factory returns a model as someone
porting a paper, a book or a benchmark would write it (Sequential, functional, subclassed,
custom layers calling raw ``tf.nn`` ops), NHWC. ``CASES`` at the bottom says which variant
each one is, whether it computes exactly that variant, and else which spec layer's
fingerprint should name what differs (a lowercase keyword).
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers


# --- d2l (Dive into Deep Learning's TensorFlow AlexNet, Fashion-MNIST at 224x224) ---------

def d2l_sequential():
    """d2l's ``net()`` as the book writes it: Sequential, ReLU inside Conv2D and Dense."""
    return keras.Sequential([
        keras.Input((224, 224, 1)),
        layers.Conv2D(96, kernel_size=11, strides=4, activation="relu"),
        layers.MaxPool2D(pool_size=3, strides=2),
        layers.Conv2D(256, kernel_size=5, padding="same", activation="relu"),
        layers.MaxPool2D(pool_size=3, strides=2),
        layers.Conv2D(384, kernel_size=3, padding="same", activation="relu"),
        layers.Conv2D(384, kernel_size=3, padding="same", activation="relu"),
        layers.Conv2D(256, kernel_size=3, padding="same", activation="relu"),
        layers.MaxPool2D(pool_size=3, strides=2),
        layers.Flatten(),
        layers.Dense(4096, activation="relu"),
        layers.Dropout(0.5),
        layers.Dense(4096, activation="relu"),
        layers.Dropout(0.5),
        layers.Dense(10),
    ])


class D2LNet(keras.Model):
    """d2l as a subclassed model, ported from PyTorch weights: it moves the maps to NCHW
    before flattening (``tf.transpose`` + ``tf.reshape`` in ``call``, no layer), so fc6's
    rows are in C*H*W order, as PyTorch's. ``always_drop``: drop6 is called with
    ``training=True``, so it drops units even in inference (a classic port bug)."""

    def __init__(self, conv1_padding: str = "valid", always_drop: bool = False) -> None:
        super().__init__(name="d2l_net")
        self.always_drop = always_drop
        self.conv1 = layers.Conv2D(96, 11, strides=4, padding=conv1_padding, name="conv1")
        self.relu1 = layers.ReLU(name="relu1")
        self.pool1 = layers.MaxPooling2D(3, 2, name="pool1")
        self.conv2 = layers.Conv2D(256, 5, padding="same", name="conv2")
        self.relu2 = layers.ReLU(name="relu2")
        self.pool2 = layers.MaxPooling2D(3, 2, name="pool2")
        self.conv3 = layers.Conv2D(384, 3, padding="same", activation="relu", name="conv3")
        self.conv4 = layers.Conv2D(384, 3, padding="same", activation="relu", name="conv4")
        self.conv5 = layers.Conv2D(256, 3, padding="same", activation="relu", name="conv5")
        self.pool5 = layers.MaxPooling2D(3, 2, name="pool5")
        self.fc6 = layers.Dense(4096, activation="relu", name="fc6")
        self.drop6 = layers.Dropout(0.5, name="drop6")
        self.fc7 = layers.Dense(4096, activation="relu", name="fc7")
        self.drop7 = layers.Dropout(0.5, name="drop7")
        self.fc8 = layers.Dense(10, name="fc8")

    def call(self, x, training=False):
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        x = self.pool5(self.conv5(self.conv4(self.conv3(x))))
        x = tf.transpose(x, perm=[0, 3, 1, 2])  # NHWC -> NCHW, as the PyTorch original
        x = tf.reshape(x, [tf.shape(x)[0], -1])
        x = self.drop6(self.fc6(x), training=True if self.always_drop else training)
        x = self.drop7(self.fc7(x), training=training)
        return self.fc8(x)


def d2l_nchw_flatten():
    model = D2LNet()
    model(tf.zeros((1, 224, 224, 1)))
    return model


def d2l_conv1_same():
    """conv1 with padding='same' (56x56 maps) where d2l has none (54x54)."""
    model = D2LNet(conv1_padding="same")
    model(tf.zeros((1, 224, 224, 1)))
    return model


def d2l_dropout_always_on():
    """drop6 called with training=True: active in inference too."""
    model = D2LNet(always_drop=True)
    model(tf.zeros((1, 224, 224, 1)))
    return model


# --- paper (Krizhevsky et al. 2012, Caffe layer order), functional API ------------------

class LocalResponseNorm(layers.Layer):
    """LRN as ports write it: a thin layer over ``tf.nn.lrn``."""

    def __init__(self, depth_radius=2, bias=2.0, alpha=1e-4, beta=0.75, **kwargs):
        super().__init__(**kwargs)
        self.depth_radius, self.bias, self.alpha, self.beta = depth_radius, bias, alpha, beta

    def call(self, x):
        return tf.nn.lrn(x, depth_radius=self.depth_radius, bias=self.bias, alpha=self.alpha,
                         beta=self.beta)


def _paper(name: str, *, groups: int = 2, lrn: dict | None = None,
           pool1_zero_pad: bool = False) -> keras.Model:
    """The paper's net, functional, 227x227x3. norm1 is a ``Lambda`` over ``tf.nn.lrn``,
    norm2 a custom layer, both with ``lrn`` (default: the paper's n=5 as depth_radius=2,
    k=2, alpha=1e-4, beta=0.75). ``groups``: of conv2, conv4, conv5 (the two-GPU split).
    ``pool1_zero_pad``: ZeroPadding2D(1) before pool1, an attempt at Caffe's ceil mode."""
    lrn = lrn or dict(depth_radius=2, bias=2.0, alpha=1e-4, beta=0.75)
    images = keras.Input((227, 227, 3), name="image")
    x = layers.Conv2D(96, 11, strides=4, activation="relu", name="conv_1")(images)
    x = layers.Lambda(lambda t: tf.nn.lrn(t, **lrn), name="lrn_1")(x)
    if pool1_zero_pad:
        x = layers.ZeroPadding2D(1, name="pad_1")(x)
    x = layers.MaxPooling2D(3, 2, name="max_pool_1")(x)
    x = layers.Conv2D(256, 5, padding="same", groups=groups, activation="relu",
                      name="conv_2")(x)
    x = LocalResponseNorm(**lrn, name="lrn_2")(x)
    x = layers.MaxPooling2D(3, 2, name="max_pool_2")(x)
    x = layers.Conv2D(384, 3, padding="same", activation="relu", name="conv_3")(x)
    x = layers.Conv2D(384, 3, padding="same", groups=groups, activation="relu",
                      name="conv_4")(x)
    x = layers.Conv2D(256, 3, padding="same", groups=groups, activation="relu",
                      name="conv_5")(x)
    x = layers.MaxPooling2D(3, 2, name="max_pool_5")(x)
    x = layers.Flatten(name="flat")(x)
    x = layers.Dense(4096, name="dense_1")(x)
    x = layers.Activation("relu", name="relu_6")(x)
    x = layers.Dropout(0.5, name="dropout_1")(x)
    x = layers.Dense(4096, name="dense_2")(x)
    x = layers.Activation("relu", name="relu_7")(x)
    x = layers.Dropout(0.5, name="dropout_2")(x)
    logits = layers.Dense(1000, name="logits")(x)
    return keras.Model(images, logits, name=name)


def paper_functional():
    return _paper("alexnet_paper")


def paper_ungrouped():
    """conv2/conv4/conv5 as plain convolutions over all channels: the paper's net once
    their kernels are the grouped ones laid out block-diagonally."""
    return _paper("alexnet_ungrouped", groups=1)


def paper_lrn_default_radius():
    """tf.nn.lrn's default depth_radius=5: an 11-channel window where the paper has 5."""
    return _paper("alexnet_radius5", lrn=dict(depth_radius=5, bias=2.0, alpha=1e-4, beta=0.75))


def paper_lrn_alpha_divided():
    """alpha divided by the window (PyTorch's convention) before giving it to tf.nn.lrn,
    which does not divide: alpha 2e-5 where the paper has 1e-4."""
    return _paper("alexnet_alpha_over_n",
                  lrn=dict(depth_radius=2, bias=2.0, alpha=1e-4 / 5, beta=0.75))


def paper_pool1_zero_padded():
    """Caffe's ceil-mode pool1 'emulated' by zero-padding 1 pixel on every side before a
    floor-mode pool: 28x28 maps where the paper's pool1 gives 27x27 (55 is odd, so ceil
    mode changes nothing there)."""
    return _paper("alexnet_pool1_pad", pool1_zero_pad=True)


# --- torchvision, ported to Keras --------------------------------------------------------

def torchvision_sequential():
    """torchvision's alexnet as Keras ports write it: ZeroPadding2D(2) + valid Conv2D for
    PyTorch's padding=2 on conv1, and no adaptive average pool (at 224x224 it is the
    identity on pool5's 6x6 maps); fc6 then takes the H*W*C flatten."""
    return keras.Sequential([
        keras.Input((224, 224, 3)),
        layers.ZeroPadding2D(2),
        layers.Conv2D(64, 11, strides=4, activation="relu"),
        layers.MaxPooling2D(3, 2),
        layers.Conv2D(192, 5, padding="same", activation="relu"),
        layers.MaxPooling2D(3, 2),
        layers.Conv2D(384, 3, padding="same", activation="relu"),
        layers.Conv2D(256, 3, padding="same", activation="relu"),
        layers.Conv2D(256, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(3, 2),
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(4096, activation="relu"),
        layers.Dropout(0.5),
        layers.Dense(4096, activation="relu"),
        layers.Dense(1000),
    ], name="torchvision_alexnet")


# --- tf-benchmark (seed 004), custom layers over raw tf.nn ops ----------------------------

class ConvReLU(layers.Layer):
    """Seed 004's conv scope: tf.nn.conv2d (SAME) + tf.nn.bias_add + tf.nn.relu."""

    def __init__(self, filters, kernel, stride=1, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel, self.stride = filters, kernel, stride

    def build(self, input_shape):
        self.weights_ = self.add_weight(
            name="weights", shape=(self.kernel, self.kernel, input_shape[-1], self.filters),
            initializer=keras.initializers.TruncatedNormal(stddev=1e-1))
        self.biases = self.add_weight(name="biases", shape=(self.filters,), initializer="zeros")

    def call(self, x):
        conv = tf.nn.conv2d(x, self.weights_, strides=[1, self.stride, self.stride, 1],
                            padding="SAME")
        return tf.nn.relu(tf.nn.bias_add(conv, self.biases))


class LRN(layers.Layer):
    def call(self, x):
        return tf.nn.lrn(x, 4, bias=1.0, alpha=0.001 / 9, beta=0.75)


class MaxPool(layers.Layer):
    def call(self, x):
        return tf.nn.max_pool2d(x, ksize=[1, 3, 3, 1], strides=[1, 2, 2, 1], padding="VALID")


class FullyConnected(layers.Layer):
    """Seed 004's fc scope: tf.matmul + biases, then ``activation`` (relu, or softmax for
    the last one, fused in the same scope as the seed does)."""

    def __init__(self, units, activation=tf.nn.relu, stddev=0.04, **kwargs):
        super().__init__(**kwargs)
        self.units, self.activation, self.stddev = units, activation, stddev

    def build(self, input_shape):
        self.weights_ = self.add_weight(
            name="weights", shape=(input_shape[-1], self.units),
            initializer=keras.initializers.TruncatedNormal(stddev=self.stddev))
        self.biases = self.add_weight(name="biases", shape=(self.units,), initializer="zeros")

    def call(self, x):
        return self.activation(tf.matmul(x, self.weights_) + self.biases)


class BenchmarkAlexNet(keras.Model):
    """Seed 004's ``inference(images)``, one custom layer per scope; the flatten is the
    seed's ``tf.reshape(pool5, [batch, -1])`` in ``call`` (H*W*C order)."""

    def __init__(self, num_classes=1000):
        super().__init__(name="tf_benchmark")
        self.conv1 = ConvReLU(64, 11, stride=4, name="conv1")
        self.lrn1 = LRN(name="lrn1")
        self.pool1 = MaxPool(name="pool1")
        self.conv2 = ConvReLU(192, 5, name="conv2")
        self.lrn2 = LRN(name="lrn2")
        self.pool2 = MaxPool(name="pool2")
        self.conv3 = ConvReLU(384, 3, name="conv3")
        self.conv4 = ConvReLU(256, 3, name="conv4")
        self.conv5 = ConvReLU(256, 3, name="conv5")
        self.pool5 = MaxPool(name="pool5")
        self.fat1 = FullyConnected(4096, name="fat1")
        self.fat2 = FullyConnected(4096, stddev=0.001, name="fat2")
        self.fat3 = FullyConnected(num_classes, activation=tf.nn.softmax, stddev=0.01,
                                   name="fat3")

    def call(self, images):
        x = self.pool1(self.lrn1(self.conv1(images)))
        x = self.pool2(self.lrn2(self.conv2(x)))
        x = self.pool5(self.conv5(self.conv4(self.conv3(x))))
        x = tf.reshape(x, [tf.shape(x)[0], -1])
        return self.fat3(self.fat2(self.fat1(x)))


def tf_benchmark_raw():
    model = BenchmarkAlexNet()
    model(tf.zeros((1, 224, 224, 3)))
    return model


_BOTH_NORMS = ("norm1", "norm2")

#: factory name -> the variant it is, whether it computes exactly that variant, and for
#: each spec layer that differs a lowercase keyword its fingerprint should contain
def cifar_small_functional():
    """Seed 003's network as a Keras port writes it: functional, NHWC, Keras's own Flatten
    (H*W*C order), its own random weights."""
    inputs = keras.Input((32, 32, 3))
    x = layers.Conv2D(64, 5, activation="relu", name="c1")(inputs)
    x = layers.MaxPooling2D(3, 2, name="p1")(x)
    x = layers.Conv2D(64, 5, activation="relu", name="c2")(x)
    x = layers.MaxPooling2D(3, 2, name="p2")(x)
    x = layers.Flatten(name="flat")(x)
    x = layers.Dense(384, activation="relu", name="d1")(x)
    x = layers.Dense(192, activation="relu", name="d2")(x)
    return keras.Model(inputs, layers.Dense(10, name="logits")(x))


CASES = {
    "cifar_small_functional": dict(variant="cifar-small", exact=True, differs={}),
    "d2l_sequential": dict(variant="d2l", exact=True, differs={}),
    "d2l_nchw_flatten": dict(variant="d2l", exact=True, differs={}),
    "paper_functional": dict(variant="paper", exact=True, differs={}),
    "paper_ungrouped": dict(variant="paper", exact=True, differs={}),
    "torchvision_sequential": dict(variant="torchvision", exact=True, differs={}),
    "tf_benchmark_raw": dict(variant="tf-benchmark", exact=True, differs={}),
    "paper_lrn_default_radius": dict(variant="paper", exact=False,
                                     differs={name: "window" for name in _BOTH_NORMS}),
    "paper_lrn_alpha_divided": dict(variant="paper", exact=False,
                                    differs={name: "alpha" for name in _BOTH_NORMS}),
    "d2l_conv1_same": dict(variant="d2l", exact=False, differs={"conv1": "pad"}),
    "paper_pool1_zero_padded": dict(variant="paper", exact=False, differs={"pool1": "pad"}),
    "d2l_dropout_always_on": dict(variant="d2l", exact=False, differs={"drop6": "dropout"}),
}

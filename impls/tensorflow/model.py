"""AlexNet in TensorFlow/Keras 3, built from the framework-neutral spec.

Read it beside ``impls/pytorch/model.py`` and ``impls/mxnet_gluon/model.py``:
the same walk over the spec's layers, each mapped to a ``keras.layers`` layer
named as in the spec (``conv1``, ``relu1``, ``fc6``...). Activations are NHWC
(channels_last), kernels HWIO and dense kernels ``(in, out)``; ``convert.py``
maps them to and from the canonical layout. The custom layers below cover what
Keras lacks: explicit asymmetric padding, LRN and PyTorch's adaptive pooling.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf
from keras import layers, ops

from common.conventions import lrn_alpha_undivided, lrn_depth_radius
from common.shapes import LayerInfo, infer, same_padding
from common.spec import (
    LRN, AdaptiveAvgPool2d, Conv2d, Dense, Dropout, Flatten, MaxPool2d, ReLU, Softmax, Variant,
)


class _ExplicitPadding:
    """Mixin: pad rows and columns by ``pad = (top, bottom, left, right)`` with
    ``pad_value``, then run the parent layer with ``padding="valid"``. Keras's
    ``"same"`` and ``"valid"`` cannot express PyTorch's or Caffe's paddings."""

    pad_value: float = 0.0

    def __init__(self, *args: Any, pad: tuple[int, int, int, int], **kwargs: Any) -> None:
        super().__init__(*args, padding="valid", **kwargs)
        self.pad = tuple(pad)

    def call(self, inputs):
        top, bottom, left, right = self.pad
        padded = ops.pad(inputs, [[0, 0], [top, bottom], [left, right], [0, 0]],
                         constant_values=self.pad_value)
        return super().call(padded)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        top, bottom, left, right = self.pad
        batch, rows, cols, channels = input_shape
        return super().compute_output_shape((batch, rows + top + bottom, cols + left + right,
                                             channels))

    def get_config(self) -> dict:
        config = super().get_config()
        config.pop("padding")
        return {**config, "pad": self.pad}


@keras.saving.register_keras_serializable(package="alexnet")
class PaddedConv2D(_ExplicitPadding, layers.Conv2D):
    """2-D convolution after explicit, possibly asymmetric, zero padding.

    Args:
        filters, kernel_size, strides, groups, ...: as ``keras.layers.Conv2D``
            (``padding`` is fixed to ``"valid"``, applied after the explicit pad).
        pad: zero padding ``(top, bottom, left, right)`` in pixels.
    Input shape: 4D tensor ``(batch, rows, cols, channels)``.
    Output shape: 4D tensor ``(batch, new_rows, new_cols, filters)``, the valid
        convolution of the padded input.
    """


@keras.saving.register_keras_serializable(package="alexnet")
class PaddedMaxPooling2D(_ExplicitPadding, layers.MaxPooling2D):
    """Max pooling after explicit ``-inf`` padding, so padded pixels never win; the
    bottom/right padding includes ceil mode's extra rows (``LayerInfo.padding``).

    Args:
        pool_size, strides: as ``keras.layers.MaxPooling2D``.
        pad: ``-inf`` padding ``(top, bottom, left, right)`` in pixels.
    Input shape: 4D tensor ``(batch, rows, cols, channels)``.
    Output shape: 4D tensor ``(batch, pooled_rows, pooled_cols, channels)``.
    """

    pad_value = float("-inf")


@keras.saving.register_keras_serializable(package="alexnet")
class LocalResponseNormalization(layers.Layer):
    """Local response normalization across channels, which Keras has no layer for:
    ``tf.nn.local_response_normalization``, ``b = a / (bias + alpha * sum a^2) ** beta``
    with the sum over the ``2r + 1`` channels centred on each one.

    Args:
        depth_radius: ``r``, half the window (``common.conventions.lrn_depth_radius``).
        bias, alpha, beta: as ``tf.nn.local_response_normalization`` (alpha is not
            divided by the window size: ``common.conventions.lrn_alpha_undivided``).
    Input shape: 4D tensor ``(batch, rows, cols, channels)``.
    Output shape: same as the input.
    """

    def __init__(self, depth_radius: int, bias: float, alpha: float, beta: float,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.depth_radius, self.bias, self.alpha, self.beta = depth_radius, bias, alpha, beta

    def call(self, inputs):
        return tf.nn.local_response_normalization(inputs, depth_radius=self.depth_radius,
                                                  bias=self.bias, alpha=self.alpha, beta=self.beta)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "depth_radius": self.depth_radius, "bias": self.bias,
                "alpha": self.alpha, "beta": self.beta}


def adaptive_bins(size: int, out: int) -> list[tuple[int, int]]:
    """PyTorch's adaptive pooling bins along one axis, as the reference computes them:
    ``[floor(i*size/out), ceil((i+1)*size/out))`` for ``i < out``."""
    return [((i * size) // out, -(-((i + 1) * size) // out)) for i in range(out)]


@keras.saving.register_keras_serializable(package="alexnet")
class AdaptiveAveragePooling2D(layers.Layer):
    """Average pooling to a fixed output size with PyTorch's (possibly overlapping)
    bins; they are computed from the static input shape when the layer is called.

    Args:
        output_size: ``(rows, cols)`` of the output.
    Input shape: 4D tensor ``(batch, rows, cols, channels)``, rows and cols static.
    Output shape: 4D tensor ``(batch, output_size[0], output_size[1], channels)``.
    """

    def __init__(self, output_size: tuple[int, int], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.output_size = tuple(output_size)

    def call(self, inputs):
        sizes = tuple(inputs.shape[1:3])
        if sizes == self.output_size:  # one pixel per bin, as torchvision's at 224x224
            return inputs
        if all(size % out == 0 for size, out in zip(sizes, self.output_size)):
            # equal, disjoint bins: one pooling op instead of rows x cols slices, which cost
            # the benchmark time (above all in the backward pass)
            window = tuple(size // out for size, out in zip(sizes, self.output_size))
            return ops.average_pool(inputs, window, strides=window, padding="valid")
        rows, cols = (adaptive_bins(size, out) for size, out in zip(sizes, self.output_size))
        return ops.stack([ops.stack([ops.mean(inputs[:, r0:r1, c0:c1], axis=(1, 2))
                                     for c0, c1 in cols], axis=1)
                          for r0, r1 in rows], axis=1)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], *self.output_size, input_shape[3])

    def get_config(self) -> dict:
        return {**super().get_config(), "output_size": self.output_size}


def make_layer(info: LayerInfo, kernel_initializer: str = "glorot_uniform") -> layers.Layer:
    """The Keras layer for one spec layer, named as it, with padding resolved by ``infer``."""
    layer, name = info.layer, info.name
    if isinstance(layer, Conv2d):
        args = dict(filters=layer.out_channels, kernel_size=layer.kernel, strides=layer.stride,
                    groups=layer.groups, kernel_initializer=kernel_initializer, name=name)
        _, h, w = info.in_shape
        if layer.padding == "same" or info.padding == (same_padding(h, layer.kernel, layer.stride)
                                                       + same_padding(w, layer.kernel, layer.stride)):
            # Keras's own SAME where it is the same padding: no separate pad op to run
            return layers.Conv2D(padding="same", **args)
        if info.padding == (0, 0, 0, 0):
            return layers.Conv2D(padding="valid", **args)
        return PaddedConv2D(pad=info.padding, **args)
    if isinstance(layer, ReLU):
        return layers.ReLU(name=name)
    if isinstance(layer, LRN):
        return LocalResponseNormalization(depth_radius=lrn_depth_radius(layer), bias=layer.k,
                                          alpha=lrn_alpha_undivided(layer), beta=layer.beta,
                                          name=name)
    if isinstance(layer, MaxPool2d):
        if info.padding == (0, 0, 0, 0):
            return layers.MaxPooling2D(layer.kernel, layer.stride, padding="valid", name=name)
        return PaddedMaxPooling2D(layer.kernel, layer.stride, pad=info.padding, name=name)
    if isinstance(layer, AdaptiveAvgPool2d):
        return AdaptiveAveragePooling2D(layer.output_size, name=name)
    if isinstance(layer, Flatten):
        return layers.Flatten(name=name)  # H*W*C order on NHWC: see convert.py
    if isinstance(layer, Dense):
        return layers.Dense(layer.out_features, kernel_initializer=kernel_initializer, name=name)
    if isinstance(layer, Dropout):
        return layers.Dropout(layer.p, name=name)
    if isinstance(layer, Softmax):
        return layers.Softmax(axis=-1, name=name)
    raise TypeError(f"no Keras layer for {type(layer).__name__}")


def build_alexnet(variant: Variant, kernel_initializer: str = "glorot_uniform") -> keras.Sequential:
    """An AlexNet variant as a built ``keras.Sequential``: one layer per spec layer,
    named as in the spec, on NHWC input.

    Args:
        variant: the spec (``common.variants.get_variant``).
        kernel_initializer: of every Conv2D and Dense; ``"zeros"`` when weights are
            loaded right after (Glorot's random fc6 alone costs ~0.5 s on 2 cores).
    Input shape: ``(batch, H, W, C)`` with ``(C, H, W) == variant.input_shape``.
    Output shape: ``(batch, variant.num_classes)``.
    """
    c, h, w = variant.input_shape
    model = keras.Sequential([keras.Input(shape=(h, w, c))]
                             + [make_layer(info, kernel_initializer) for info in infer(variant)],
                             name=variant.name)
    model._alexnet_variant = variant  # Sequential keeps no spec; the layer-level code needs it
    return model


def flatten_inputs(model: keras.Sequential) -> dict[str, tuple[int, int, int]]:
    """``{dense_name: (C, H, W)}`` for each Dense fed by a Flatten (dropout and
    elementwise layers between them keep the order): the map it flattens."""
    found: dict[str, tuple[int, int, int]] = {}
    chw = None
    for layer in model.layers:
        if isinstance(layer, layers.Flatten):
            _, h, w, c = layer.input.shape
            chw = (c, h, w)
        elif isinstance(layer, layers.Dense) and chw is not None:
            found[layer.name], chw = chw, None
    return found

"""A plain hand-written Keras AlexNet with torchvision's layers, the yardstick of
``alexnet bench --plain``: the spec-built model must be as fast."""

from __future__ import annotations

import keras
from keras import layers


def plain_alexnet(num_classes: int = 1000) -> keras.Sequential:
    """torchvision's AlexNet in stock Keras layers, NHWC: 224x224x3 in, logits out. At 224
    the last map is already 6x6, so torchvision's adaptive pooling is left out."""
    return keras.Sequential([
        keras.Input(shape=(224, 224, 3)),
        layers.ZeroPadding2D(2), layers.Conv2D(64, 11, strides=4, activation="relu"),
        layers.MaxPooling2D(3, strides=2),
        layers.Conv2D(192, 5, padding="same", activation="relu"),
        layers.MaxPooling2D(3, strides=2),
        layers.Conv2D(384, 3, padding="same", activation="relu"),
        layers.Conv2D(256, 3, padding="same", activation="relu"),
        layers.Conv2D(256, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(3, strides=2),
        layers.Flatten(),
        layers.Dropout(0.5), layers.Dense(4096, activation="relu"),
        layers.Dropout(0.5), layers.Dense(4096, activation="relu"),
        layers.Dense(num_classes),
    ], name="plain_alexnet")

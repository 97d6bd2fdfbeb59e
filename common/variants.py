"""The registry of AlexNet variants (DESIGN.md's table), each a typed factory.

``get_variant("paper", num_classes=10, in_channels=1, input_size=(99, 99))``
overrides what a user may change; the layers themselves are fixed by the source.
"""

from __future__ import annotations

from typing import Callable, Optional

from common.spec import (
    LRN, AdaptiveAvgPool2d, Conv2d, Dense, Dropout, Flatten, Layer, MaxPool2d, ReLU,
    Softmax, SpecError, Variant, symmetric,
)

# name -> (factory(num_classes) -> (layers, source, notes), default (C, H, W), default classes)
_REGISTRY: dict[str, tuple[Callable[[int], tuple[tuple[Layer, ...], str, str]],
                           tuple[int, int, int], int]] = {}


def register(name: str, input_shape: tuple[int, int, int], num_classes: int):
    """Decorator adding a layer factory to the registry under ``name``."""
    def wrap(factory):
        _REGISTRY[name] = (factory, input_shape, num_classes)
        return factory
    return wrap


def variant_names() -> list[str]:
    """Registered variant names, in registration order."""
    return list(_REGISTRY)


def get_variant(name: str, *, num_classes: Optional[int] = None,
                in_channels: Optional[int] = None,
                input_size: Optional[tuple[int, int]] = None) -> Variant:
    """Build a registered variant, optionally overriding classes, channels and input size."""
    if name not in _REGISTRY:
        raise SpecError(f"unknown variant {name!r}; choose one of: {', '.join(_REGISTRY)}")
    factory, (c, h, w), default_classes = _REGISTRY[name]
    classes = default_classes if num_classes is None else num_classes
    if in_channels is not None:
        c = in_channels
    if input_size is not None:
        h, w = input_size
    for what, value in (("num_classes", classes), ("in_channels", c), ("height", h), ("width", w)):
        if value < 1:
            raise SpecError(f"{what} must be a positive integer, got {value}")
    layers, source, notes = factory(classes)
    return Variant(name=name, layers=layers, input_shape=(c, h, w), num_classes=classes,
                   source=source, notes=notes)


def _classifier(hidden: int, num_classes: int, *, dropout_first: bool) -> tuple[Layer, ...]:
    """fc6-fc8 with dropout before (torchvision) or after (Caffe, d2l) each hidden dense."""
    layers: list[Layer] = []
    for i in (6, 7):
        fc = [Dense(f"fc{i}", hidden), ReLU(f"relu{i}")]
        drop = [Dropout(f"drop{i}", 0.5)]
        layers += drop + fc if dropout_first else fc + drop
    return tuple(layers) + (Dense("fc8", num_classes),)


@register("paper", (3, 227, 227), 1000)
def paper(num_classes: int):
    lrn = dict(size=5, alpha=1e-4, beta=0.75, k=2.0)  # the paper's section 3.3
    layers = (
        Conv2d("conv1", 96, 11, stride=4), ReLU("relu1"), LRN("norm1", **lrn),
        MaxPool2d("pool1", 3, 2),
        Conv2d("conv2", 256, 5, padding=symmetric(2), groups=2), ReLU("relu2"),
        LRN("norm2", **lrn), MaxPool2d("pool2", 3, 2),
        Conv2d("conv3", 384, 3, padding=symmetric(1)), ReLU("relu3"),
        Conv2d("conv4", 384, 3, padding=symmetric(1), groups=2), ReLU("relu4"),
        Conv2d("conv5", 256, 3, padding=symmetric(1), groups=2), ReLU("relu5"),
        MaxPool2d("pool5", 3, 2),
        Flatten("flatten"),
    ) + _classifier(4096, num_classes, dropout_first=False)
    return (layers, "Krizhevsky et al. 2012; layer order of Caffe bvlc_alexnet",
            "LRN is the paper's equation (k=2, n=5, alpha=1e-4 not divided by n, beta=0.75); "
            "Caffe's LRN divides alpha by n and has k=1, and Caffe rounds pools up: Caffe "
            "weights go with caffe-alexnet, not this variant.")


#: Caffe's LRN as both BVLC deploy definitions write it (lrn_param local_size 5, alpha 1e-4,
#: beta 0.75; k left at its default 1); Caffe divides alpha by local_size (lrn_layer.cpp)
CAFFE_LRN = dict(size=5, alpha=1e-4, beta=0.75, k=1.0, alpha_over_size=True)


def _caffe(num_classes: int, *, pool_first: bool) -> tuple[Layer, ...]:
    """BVLC's AlexNet: conv1-conv5 with groups 2 on conv2, conv4 and conv5, Caffe's LRN after
    relu1 and relu2 (after pool1 and pool2 where ``pool_first``), Caffe's pooling (ceil
    rounding), then fc6-fc8 and Caffe's deploy-time Softmax ``prob``."""
    def block(i: int, conv: Conv2d) -> tuple[Layer, ...]:
        norm, pool = LRN(f"norm{i}", **CAFFE_LRN), MaxPool2d(f"pool{i}", 3, 2, ceil_mode=True)
        return (conv, ReLU(f"relu{i}")) + ((pool, norm) if pool_first else (norm, pool))
    return (
        block(1, Conv2d("conv1", 96, 11, stride=4))
        + block(2, Conv2d("conv2", 256, 5, padding=symmetric(2), groups=2))
        + (Conv2d("conv3", 384, 3, padding=symmetric(1)), ReLU("relu3"),
           Conv2d("conv4", 384, 3, padding=symmetric(1), groups=2), ReLU("relu4"),
           Conv2d("conv5", 256, 3, padding=symmetric(1), groups=2), ReLU("relu5"),
           MaxPool2d("pool5", 3, 2, ceil_mode=True),
           Flatten("flatten"))
        + _classifier(4096, num_classes, dropout_first=False) + (Softmax("prob"),)
    )


@register("caffe-alexnet", (3, 227, 227), 1000)
def caffe_alexnet(num_classes: int):
    return (_caffe(num_classes, pool_first=False),
            "BVLC model zoo bvlc_alexnet (Caffe models/bvlc_alexnet/deploy.prototxt)",
            "Caffe's LRN: alpha=1e-4 divided by local_size 5 (alpha_over_size), k=1, beta=0.75; "
            "pools round up (ceil mode); the same layers as paper otherwise. Caffe's ImageNet "
            "models take BGR input.")


@register("caffenet", (3, 227, 227), 1000)
def caffenet(num_classes: int):
    return (_caffe(num_classes, pool_first=True),
            "BVLC model zoo bvlc_reference_caffenet (Caffe models/bvlc_reference_caffenet/"
            "deploy.prototxt)",
            "As caffe-alexnet, but each of pool1 and pool2 comes before its LRN (norm1, norm2). "
            "Caffe's ImageNet models take BGR input.")


@register("torchvision", (3, 224, 224), 1000)
def torchvision(num_classes: int):
    layers = (
        Conv2d("conv1", 64, 11, stride=4, padding=symmetric(2)), ReLU("relu1"),
        MaxPool2d("pool1", 3, 2),
        Conv2d("conv2", 192, 5, padding=symmetric(2)), ReLU("relu2"), MaxPool2d("pool2", 3, 2),
        Conv2d("conv3", 384, 3, padding=symmetric(1)), ReLU("relu3"),
        Conv2d("conv4", 256, 3, padding=symmetric(1)), ReLU("relu4"),
        Conv2d("conv5", 256, 3, padding=symmetric(1)), ReLU("relu5"),
        MaxPool2d("pool5", 3, 2),
        AdaptiveAvgPool2d("avgpool", (6, 6)),
        Flatten("flatten"),
    ) + _classifier(4096, num_classes, dropout_first=True)
    return (layers, "torchvision.models.alexnet ('One weird trick', Krizhevsky 2014)", "")


@register("d2l", (1, 224, 224), 10)
def d2l(num_classes: int):
    layers = (
        Conv2d("conv1", 96, 11, stride=4), ReLU("relu1"), MaxPool2d("pool1", 3, 2),
        Conv2d("conv2", 256, 5, padding=symmetric(2)), ReLU("relu2"), MaxPool2d("pool2", 3, 2),
        Conv2d("conv3", 384, 3, padding=symmetric(1)), ReLU("relu3"),
        Conv2d("conv4", 384, 3, padding=symmetric(1)), ReLU("relu4"),
        Conv2d("conv5", 256, 3, padding=symmetric(1)), ReLU("relu5"),
        MaxPool2d("pool5", 3, 2),
        Flatten("flatten"),
    ) + _classifier(4096, num_classes, dropout_first=False)
    return (layers, "gluonbook / Dive into Deep Learning (seeds 001 MXNet, 002 PyTorch)",
            "Fashion-MNIST resized to 224x224; pool5 gives 256x5x5 = 6400 features.")


@register("gluon-cifar", (3, 224, 224), 10)
def gluon_cifar(num_classes: int):
    layers = (
        Conv2d("conv1", 96, 11, stride=4), ReLU("relu1"), MaxPool2d("pool1", 3, 2),
        Conv2d("conv2", 256, 5), ReLU("relu2"), MaxPool2d("pool2", 3, 2),
        Conv2d("conv3", 384, 3), ReLU("relu3"),
        Conv2d("conv4", 384, 3), ReLU("relu4"),
        Conv2d("conv5", 256, 3), ReLU("relu5"),
        Flatten("flatten"),
        Dense("fc6", 4096), ReLU("relu6"),
        Dense("fc7", 4096), ReLU("relu7"),
        Dense("fc8", num_classes), ReLU("relu8"),
    )
    return (layers, "seed 000 (MXNet Gluon on CIFAR-10), as written",
            "QUIRK kept from the seed: a ReLU on the output layer clips negative logits to 0, "
            "which stalls learning for those classes. No padding, no pool after conv5, no dropout.")


@register("tf-benchmark", (3, 224, 224), 1000)
def tf_benchmark(num_classes: int):
    # seed 004: tf.nn.lrn(depth_radius=4, bias=1, alpha=0.001/9, beta=0.75): TF does not
    # divide alpha by the window, so it is already the paper's convention with n = 2*4+1.
    lrn = dict(size=9, alpha=0.001 / 9, beta=0.75, k=1.0)
    layers = (
        Conv2d("conv1", 64, 11, stride=4, padding="same"), ReLU("relu1"), LRN("norm1", **lrn),
        MaxPool2d("pool1", 3, 2),
        Conv2d("conv2", 192, 5, padding="same"), ReLU("relu2"), LRN("norm2", **lrn),
        MaxPool2d("pool2", 3, 2),
        Conv2d("conv3", 384, 3, padding="same"), ReLU("relu3"),
        Conv2d("conv4", 256, 3, padding="same"), ReLU("relu4"),
        Conv2d("conv5", 256, 3, padding="same"), ReLU("relu5"),
        MaxPool2d("pool5", 3, 2),
        Flatten("flatten"),
        Dense("fc6", 4096), ReLU("relu6"),
        Dense("fc7", 4096), ReLU("relu7"),
        Dense("fc8", num_classes), Softmax("softmax"),
    )
    return (layers, "seed 004 (TensorFlow forward/backward timing benchmark)",
            "SAME padding everywhere (conv1 pads 3 top/left, 4 bottom/right); softmax output.")


@register("cifar-small", (3, 32, 32), 10)
def cifar_small(num_classes: int):
    layers = (
        Conv2d("conv1", 64, 5), ReLU("relu1"), MaxPool2d("pool1", 3, 2),
        Conv2d("conv2", 64, 5), ReLU("relu2"), MaxPool2d("pool2", 3, 2),
        Flatten("flatten"),
        Dense("fc3", 384), ReLU("relu3"),
        Dense("fc4", 192), ReLU("relu4"),
        Dense("fc5", num_classes),
    )
    return (layers, "seed 003 (a small AlexNet-style PyTorch net for CIFAR-10)", "")

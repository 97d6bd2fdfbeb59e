"""The framework-neutral AlexNet spec: one frozen dataclass per layer kind.

A network is a tuple of these layers. Nothing here imports a framework; every
implementation in ``impls/`` builds its model by walking the same tuple, and
``common.shapes`` infers shapes, parameters and multiply-adds from it.

Shapes are per image and channels-first: ``(C, H, W)`` for feature maps,
``(F,)`` after a flatten. TensorFlow's NHWC is a detail of its implementation.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal, Union

#: Explicit per-side padding ``(top, bottom, left, right)``, or TensorFlow's
#: names: ``"same"`` (output = ceil(input / stride), the odd pixel goes
#: bottom/right) and ``"valid"`` (no padding).
Padding = Union[tuple[int, int, int, int], Literal["same", "valid"]]


class SpecError(ValueError):
    """A network or input that cannot work: the message names the layer and the fix."""


def symmetric(p: int) -> tuple[int, int, int, int]:
    """Padding of ``p`` pixels on every side, as PyTorch's ``padding=p`` means."""
    return (p, p, p, p)


@dataclass(frozen=True)
class Conv2d:
    """2-D convolution, square kernel, optional groups (the paper's two-GPU split)."""

    name: str
    out_channels: int
    kernel: int
    stride: int = 1
    padding: Padding = (0, 0, 0, 0)
    groups: int = 1


@dataclass(frozen=True)
class ReLU:
    name: str


@dataclass(frozen=True)
class LRN:
    """Local response normalization across channels.

    ``b_c = a_c / (k + alpha' * sum_{c' in window(c)} a_c'^2) ** beta`` where the
    window holds ``size`` channels centred on ``c`` (zero outside). ``alpha_over_size``
    says which convention ``alpha`` is written in, as the variant's source writes it:

    - False (the paper's): ``alpha' = alpha``, not divided by the window size;
    - True (Caffe's, as PyTorch ``LocalResponseNorm`` and MXNet ``LRN`` take it):
      ``alpha' = alpha / size``.

    The two are the same function only when the alphas differ by the factor ``size``;
    ``common.conventions`` gives each framework the alpha its LRN takes.
    """

    name: str
    size: int = 5
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 2.0
    alpha_over_size: bool = False


@dataclass(frozen=True)
class MaxPool2d:
    """Max pooling; ``ceil_mode`` rounds the output size up (Caffe), else down."""

    name: str
    kernel: int
    stride: int
    padding: int = 0
    ceil_mode: bool = False


@dataclass(frozen=True)
class AdaptiveAvgPool2d:
    """Average pooling to a fixed output size, with PyTorch's bins
    ``[floor(i*H/o), ceil((i+1)*H/o))``."""

    name: str
    output_size: tuple[int, int]


@dataclass(frozen=True)
class Flatten:
    """Flattens ``(C, H, W)`` to ``(C*H*W,)`` in C-major (channels-first) order."""

    name: str


@dataclass(frozen=True)
class Dense:
    """Fully connected layer; canonical weight shape ``(out_features, in_features)``."""

    name: str
    out_features: int


@dataclass(frozen=True)
class Dropout:
    """Dropout with drop probability ``p``; the identity in eval mode."""

    name: str
    p: float = 0.5


@dataclass(frozen=True)
class Softmax:
    """Softmax over the feature axis."""

    name: str


Layer = Union[Conv2d, ReLU, LRN, MaxPool2d, AdaptiveAvgPool2d, Flatten, Dense, Dropout, Softmax]

#: Layers that own parameters (``<name>.weight`` and ``<name>.bias``).
PARAMETRIC = (Conv2d, Dense)


@dataclass(frozen=True)
class Variant:
    """A named network: its layers and the per-image input shape ``(C, H, W)``."""

    name: str
    layers: tuple[Layer, ...]
    input_shape: tuple[int, int, int]
    num_classes: int
    source: str
    notes: str = ""

    @property
    def logits_layer(self) -> str:
        """The layer whose output the training loss (softmax cross-entropy) takes as
        logits: the last one, or the one before a final Softmax. The loss folds that
        Softmax in, as Keras does: the log of a float32 softmax output is -inf once a
        probability underflows, log-softmax of the logits never is."""
        last = self.layers[-1]
        return self.layers[-2].name if isinstance(last, Softmax) else last.name

    def up_to_logits(self) -> "Variant":
        """This variant without a final Softmax: the network a training loss runs through.
        It has the same parameters, so the same weights load into it."""
        cut = [layer.name for layer in self.layers].index(self.logits_layer) + 1
        return replace(self, layers=self.layers[:cut])

    def layer(self, name: str) -> Layer:
        """The layer called ``name``; KeyError names the layers there are."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"variant {self.name!r} has no layer {name!r}; "
                       f"layers: {', '.join(l.name for l in self.layers)}")

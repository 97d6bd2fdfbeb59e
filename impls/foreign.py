"""Other people's AlexNets: what ``alexnet inspect`` needs from a model this package did not build.

Each framework has one adapter, ``impls/<framework>/foreign.py``, that wraps a model someone
else wrote (a ``torch.nn.Module``, a Gluon ``Block``, a Keras model) as a ``ForeignModel``:
its layers with parameters in the order they run, their weights read and written in the
canonical layout (OIHW kernels, ``(out, in)`` dense weights), and every layer's input and
output captured by the framework's own means in one eval-mode forward pass. Everything
framework-neutral (which variant, the flatten order, lining layers up, the fingerprint) is
in ``inspection/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Protocol

import numpy as np

#: the kinds of layer the inspection tells apart ("other": anything else, lined up by shape)
KINDS = ("conv", "dense", "relu", "lrn", "maxpool", "avgpool", "flatten", "dropout", "softmax",
         "other")
#: words in a layer's class name that say its kind, first match wins (checked lower-case)
_KIND_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("lrn", ("localresponse", "lrn")),
    ("maxpool", ("maxpool", "max_pool")),
    ("avgpool", ("avgpool", "averagepool", "avg_pool", "adaptiveavg", "globalavg")),
    ("flatten", ("flatten",)),
    ("dropout", ("dropout",)),
    ("softmax", ("softmax",)),
    ("relu", ("relu",)),
    ("conv", ("conv",)),
    ("dense", ("linear", "dense")),
)


def kind_of_class(class_name: str) -> str:
    """The kind a layer's class name says (``MaxPool2d`` -> "maxpool"), "other" if none."""
    lowered = class_name.lower()
    for kind, words in _KIND_WORDS:
        if any(word in lowered for word in words):
            return kind
    return "other"


class ForeignModelError(ValueError):
    """The model cannot be inspected (no parameters, a forward pass that fails, ...): exit 2."""


def forward_failed(description: str, shape: tuple[int, ...], layout: str,
                   exc: Exception) -> ForeignModelError:
    """The error for a model whose own code refused an input: what it said, and the input."""
    return ForeignModelError(f"{description} failed on an input of shape {tuple(shape)} "
                             f"({layout}): {type(exc).__name__}: {exc}")


@dataclass(frozen=True)
class ParamLayer:
    """A layer of the model with a weight. ``name``: the model's own name for it (module
    path, Keras layer name); ``kind``: "conv" or "dense"; ``weight_shape``: canonical
    (``(O, I/groups, kh, kw)`` or ``(out, in)``); ``groups``: the layer's own groups (1 where
    the framework has none)."""

    name: str
    kind: str
    weight_shape: tuple[int, ...]
    has_bias: bool
    groups: int = 1


@dataclass
class Captured:
    """One layer call seen in the forward pass, in the order they ran. ``inputs``: its first
    input; ``output``: its output; both float32 NumPy in the framework's own layout, with a
    batch axis. ``channels_last``: whether a 4-D array of this framework is NHWC."""

    name: str
    kind: str
    inputs: Optional[np.ndarray]
    output: np.ndarray
    channels_last: bool = False


#: canonical weights per layer of the model: name -> (weight, bias or None)
LayerWeights = dict[str, tuple[np.ndarray, Optional[np.ndarray]]]


class ForeignModel(Protocol):
    """A wrapped model (see the module docstring). Methods raise ForeignModelError with a
    message a user can act on."""

    framework: str
    #: the model's class, for messages
    description: str

    def build(self, input_shape: tuple[int, int, int]) -> None:
        """Materialize parameters a framework creates on the first call (Gluon's deferred
        shapes, an unbuilt Keras model) with one forward pass of zeros of this shape (C, H, W);
        a model whose parameters exist already just runs it. Raises ForeignModelError when
        the model refuses that shape."""

    def param_layers(self) -> list[ParamLayer]:
        """The layers with weights, in the order the last forward pass ran them."""

    def read_weights(self) -> LayerWeights:
        """The model's own weights, canonical layout."""

    def write_weights(self, weights: LayerWeights) -> None:
        """Put canonical weights into the named layers, in the framework's layout; a layer with
        no bias gets only the weight."""

    def run(self, x: np.ndarray) -> list[Captured]:
        """One eval-mode forward pass of the NCHW float32 batch ``x`` (converted to the
        model's input layout here), every layer's call captured."""


#: a framework's adapter: returns the wrapped model, or None when ``obj`` is not its kind
Adapter = Callable[[object], Optional[ForeignModel]]

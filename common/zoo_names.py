"""The parameter names of the ecosystems' own AlexNets, mapped onto the spec's layers.

torchvision's ``alexnet()`` and the MXNet Gluon model zoo's ``vision.alexnet()`` are both
the spec's ``torchvision`` variant (the Gluon zoo leaves out the adaptive pooling, which is
the identity at 224x224). Their files name parameters by position in ``nn.Sequential``
containers; the tables below say which spec layer each position is. The layouts are the
canonical ones (OIHW, ``(out, in)``, C*H*W flatten order): only the names change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from common.weights import Weights, WeightsError


@dataclass(frozen=True)
class ZooNames:
    """One model zoo's names for the spec layers of ``variant``."""

    zoo: str
    variant: str
    #: spec layer -> the zoo's prefix for its parameters (``<prefix>.weight``, ``<prefix>.bias``)
    prefixes: dict[str, str]
    #: where the zoo's own constructor lives, for messages and docs
    constructor: str

    def to_zoo(self, weights: Weights) -> Weights:
        """Canonical keys -> the zoo's keys (same arrays)."""
        renamed = {}
        for key, value in weights.items():
            layer, kind = key.rsplit(".", 1)
            renamed[f"{self.prefixes[layer]}.{kind}"] = value
        return renamed

    def from_zoo(self, arrays: Weights) -> Weights:
        """The zoo's keys -> canonical keys; a key the table does not know is kept as it is,
        so ``validate`` reports it as unexpected."""
        layers = {prefix: layer for layer, prefix in self.prefixes.items()}
        renamed = {}
        for key, value in arrays.items():
            prefix, _, kind = key.rpartition(".")
            renamed[f"{layers[prefix]}.{kind}" if prefix in layers else key] = value
        return renamed

    def matches(self, keys: set[str]) -> bool:
        """Whether ``keys`` are this zoo's names (every one, none else)."""
        return keys == {f"{p}.{kind}" for p in self.prefixes.values() for kind in ("weight", "bias")}


#: ``torchvision.models.alexnet().state_dict()``: features.{0,3,6,8,10} are the convolutions
#: (ReLUs and max pools between them), classifier.{1,4,6} the Linear layers after each Dropout
TORCHVISION = ZooNames(
    zoo="torchvision", variant="torchvision", constructor="torchvision.models.alexnet",
    prefixes={"conv1": "features.0", "conv2": "features.3", "conv3": "features.6",
              "conv4": "features.8", "conv5": "features.10",
              "fc6": "classifier.1", "fc7": "classifier.4", "fc8": "classifier.6"})

#: ``mxnet.gluon.model_zoo.vision.alexnet().save_parameters()``: ReLU is fused into each
#: Conv2D and Dense, so the positions differ from torchvision's; the last layer is ``output``
GLUON_ZOO = ZooNames(
    zoo="gluon-zoo", variant="torchvision", constructor="mxnet.gluon.model_zoo.vision.alexnet",
    prefixes={"conv1": "features.0", "conv2": "features.2", "conv3": "features.4",
              "conv4": "features.5", "conv5": "features.6",
              "fc6": "features.9", "fc7": "features.11", "fc8": "output"})

#: The Gluon zoo's older files (``collect_params().save()``, the pretrained downloads) name
#: parameters by block counters under the model's prefix: ``alexnet0_conv0_weight``, ...
GLUON_ZOO_LEGACY_LAYERS = {"conv0": "conv1", "conv1": "conv2", "conv2": "conv3", "conv3": "conv4",
                           "conv4": "conv5", "dense0": "fc6", "dense1": "fc7", "dense2": "fc8"}
_LEGACY_KEY = re.compile(r"^(?:.*_)?(conv\d+|dense\d+)_(weight|bias)$")


def from_gluon_legacy(arrays: Weights) -> Optional[Weights]:
    """Canonical names for a legacy Gluon zoo file, or None if its keys are not legacy ones."""
    renamed = {}
    for key, value in arrays.items():
        found = _LEGACY_KEY.match(key)
        if not found or found.group(1) not in GLUON_ZOO_LEGACY_LAYERS:
            return None
        renamed[f"{GLUON_ZOO_LEGACY_LAYERS[found.group(1)]}.{found.group(2)}"] = value
    return renamed if len(renamed) == len(arrays) else None


ZOOS = {names.zoo: names for names in (TORCHVISION, GLUON_ZOO)}


def zoo_for(zoo: str, variant_name: str) -> ZooNames:
    """The zoo's names, if it has the variant; a WeightsError saying which variant it has."""
    names = ZOOS[zoo]
    if variant_name != names.variant:
        raise WeightsError(f"the {zoo} format holds the {names.variant!r} variant "
                           f"({names.constructor}), not {variant_name!r}; use --variant {names.variant}")
    return names

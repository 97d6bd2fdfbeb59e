"""Known porting bugs, tested numerically on the layer the backward check blames.

For the blamed layer, each hypothesis recomputes the float64 reference output the
way a port with that bug would, from the same (reference) input. If the framework's
own output matches it, the bug is confirmed, not just guessed from the layer kind.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterator

import numpy as np

from common import reference
from common.conventions import hwc_to_chw_index
from common.shapes import LayerInfo, infer
from common.spec import LRN, Conv2d, Dense, Dropout, Flatten, Variant
from common.weights import Weights

#: a port with the bug matches its recomputed output to float32 accuracy
MATCH = 1e-4


def flattened_map(variant: Variant, name: str):
    """(C, H, W) of the map a Flatten turns into ``name``'s input, if ``name`` is the first
    Dense after it (dropout and elementwise layers between keep the order), else None."""
    chw = None
    for info in infer(variant):
        if isinstance(info.layer, Flatten):
            chw = info.in_shape
        elif isinstance(info.layer, Dense):
            if info.name == name:
                return chw
            chw = None
    return None


def hypotheses(variant: Variant, info: LayerInfo,
               weights: Weights) -> Iterator[tuple[str, Callable[[np.ndarray], np.ndarray]]]:
    """(the bug, the output a port with it computes from an input) for layer ``info``."""
    layer = info.layer
    forward = reference.FORWARD[type(layer)]
    if isinstance(layer, LRN):
        for what, factor in (("alpha divided by the window size (the paper's alpha passed to "
                              "PyTorch/MXNet LRN unconverted)", 1 / layer.size),
                             ("alpha multiplied by the window size twice", layer.size)):
            changed = dataclasses.replace(info, layer=dataclasses.replace(layer, alpha=layer.alpha * factor))
            yield f"LRN convention: {what}", lambda x, changed=changed: forward(x, changed.layer, weights)
    if isinstance(layer, Conv2d):
        key = f"{layer.name}.weight"
        swapped = {**weights, key: np.swapaxes(weights[key], 2, 3)}
        yield ("kernel layout: height and width swapped (HWIO read as WHIO)",
               lambda x: forward(x, layer, swapped))
    if isinstance(layer, Dense) and (chw := flattened_map(variant, info.name)) is not None:
        key = f"{layer.name}.weight"
        unpermuted = np.empty_like(weights[key])
        unpermuted[:, hwc_to_chw_index(*chw)] = weights[key]  # what an H*W*C port computes
        yield ("flatten order: input rows not permuted between C*H*W and H*W*C",
               lambda x: forward(x, layer, {**weights, key: unpermuted}))
    if isinstance(layer, Dropout):
        yield "dropout placement: no mask applied at this layer (eval mode, or dropout elsewhere)", lambda x: x


def confirmed(variant: Variant, layer_name: str, weights: Weights, layer_input: np.ndarray,
              output: np.ndarray) -> str | None:
    """The known bug that reproduces the framework's ``output`` of ``layer_name`` from
    ``layer_input`` (the reference's), or None."""
    info = next(i for i in infer(variant) if i.name == layer_name)
    x = np.asarray(layer_input, dtype=np.float64)
    for bug, port in hypotheses(variant, info, weights):
        expected = port(x)
        if expected.shape == output.shape:
            error = np.linalg.norm(output - expected) / max(np.linalg.norm(expected), 1e-300)
            if error < MATCH:
                return bug
    return None

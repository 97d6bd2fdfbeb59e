"""Confirmed causes of a blamed layer: the entry points the checks call.

For the layer a check blames, each known porting bug (``crosscheck/causes/``) recomputes
the float64 output a port with that bug would produce from the same input the framework's
layer got; the bug whose output the framework's matches to float32 accuracy is confirmed
(``Cause``, with the evidence: that error next to the error against the correct
reference). A wrong shape is explained by the reference's shape arithmetic instead
(``shape_cause``, ``weight_shape_cause``). Hypotheses run on the first image (a few where
a layer's output is small): one float64 layer each, cheap ones first, stopping at the
first confirmation.
"""

from __future__ import annotations

import itertools
from typing import Callable, Optional

import numpy as np

from common import reference
from common.spec import (
    LRN, AdaptiveAvgPool2d, Conv2d, Dense, Dropout, Flatten, MaxPool2d, ReLU, Softmax, Variant,
)
from common.weights import Weights
from crosscheck.causes.base import MATCH, Blamed, Cause, Hypotheses, judge, out_shape
from crosscheck.causes.elementwise import (
    dropout_hypotheses, flatten_hypotheses, placement_hypotheses, relu_hypotheses, softmax_hypotheses,
)
from crosscheck.causes.fits import adaptive_hypotheses, lrn_hypotheses, pool_hypotheses
from crosscheck.causes.linear import conv_hypotheses, dense_hypotheses
from crosscheck.causes.shapes import shape_cause, weight_shape_cause

__all__ = ["MATCH", "Cause", "confirmed", "divergence_cause", "layer_cause", "shape_cause",
           "weight_shape_cause"]

#: the hypotheses recompute the first image, or the first few where a layer's output is
#: smaller than this many elements (a dense layer's few logits)
ELEMENTS = 4096

HYPOTHESES: dict[type, Callable[[Blamed], Hypotheses]] = {
    Conv2d: conv_hypotheses, Dense: dense_hypotheses, LRN: lrn_hypotheses,
    MaxPool2d: pool_hypotheses, AdaptiveAvgPool2d: adaptive_hypotheses, ReLU: relu_hypotheses,
    Dropout: dropout_hypotheses, Flatten: flatten_hypotheses, Softmax: softmax_hypotheses,
}


def layer_cause(variant: Variant, layer_name: str, weights: Weights, layer_input: np.ndarray,
                output: np.ndarray, expected: Optional[np.ndarray] = None, *,
                train: bool = False) -> Optional[Cause]:
    """The known bug that reproduces the framework's ``output`` of ``layer_name`` from
    ``layer_input`` (what the framework's layer got), or None. ``expected``: the correct
    output (default: the reference's, from ``layer_input``); ``train``: the backward
    check's train mode, where dropout applies the shared masks."""
    layer = variant.layer(layer_name)
    images = max(1, -(-ELEMENTS // max(output[0].size, 1)))
    # the framework computed from float32: so does every hypothesis (then in float64)
    x = np.asarray(layer_input[:images], dtype=np.float32).astype(np.float64)
    observed = np.asarray(output[:images], dtype=np.float64)
    if not np.all(np.isfinite(observed)):
        return None
    correct = (reference.apply(layer, x, weights) if expected is None
               else np.asarray(expected[:images], dtype=np.float64))
    blamed = Blamed(variant, layer, weights, x, observed, correct, train)
    return judge(blamed, itertools.chain(HYPOTHESES[type(layer)](blamed), placement_hypotheses(blamed)))


#: the backward check's name for it
confirmed = layer_cause


def divergence_cause(variant: Variant, weights: Weights, x: np.ndarray, outputs: dict[str, np.ndarray],
                     layer_name: str) -> Optional[Cause]:
    """For the forward check: why ``layer_name``, the first divergent layer, diverged. Its
    input is the framework's own output of the layer before (which passed), or ``x``. An
    output of another shape is explained by the values of the hypotheses that have its
    shape, else by shape arithmetic."""
    names = [layer.name for layer in variant.layers]
    index = names.index(layer_name)
    layer_input = x if index == 0 else outputs.get(names[index - 1])
    got = outputs.get(layer_name)
    if layer_input is None or got is None:
        return None
    cause = layer_cause(variant, layer_name, weights, layer_input, got)
    in_shape, got_shape = tuple(layer_input.shape[1:]), tuple(got.shape[1:])
    if cause is None and got_shape != out_shape(variant.layers[index], in_shape):
        # no hypothesis of that shape reproduces the values: the shapes alone, then
        return shape_cause(variant, layer_name, in_shape, got_shape)
    return cause

"""Porting bugs of the layers without weights, and of dropout's placement.

A missing ReLU or softmax (the output is the input), a channels-last flatten, dropout
left active in eval mode (a random keep-mask and the scale 1/(1-p) are fit from the
output), dropout scaled at test time, and a keep-mask applied at a layer next to the
spec's dropout instead of there (its output, or a dense layer's input solved for).
"""

from __future__ import annotations

import math

import numpy as np

from common.spec import Dense, Dropout, Flatten
from crosscheck.causes.base import Blamed, Hypotheses, keep_mask_fit
from crosscheck.causes.linear import dense_input_solved

#: a layer this many places from a Dropout of the spec may have taken its mask
NEIGHBOURHOOD = 2


def relu_hypotheses(b: Blamed) -> Hypotheses:
    yield f"ReLU missing at {b.name} (its output equals its input)", b.x


def softmax_hypotheses(b: Blamed) -> Hypotheses:
    yield f"softmax missing at {b.name} (it outputs the logits)", b.x


def flatten_hypotheses(b: Blamed) -> Hypotheses:
    if b.x.ndim == 4:
        yield (f"{b.name} flattens in H*W*C order (channels-last) where the spec flattens C*H*W",
               b.x.transpose(0, 2, 3, 1).reshape(len(b.x), -1))


def dropout_hypotheses(b: Blamed) -> Hypotheses:
    x, p = b.x, b.layer.p
    if b.train:  # the shared mask belongs here: the framework applied none
        yield (f"dropout placement: no mask applied at {b.name} (eval mode, or dropout "
               f"elsewhere)", x)
        return
    fit = keep_mask_fit(x, b.observed)
    if fit is not None:
        output, scale, kept = fit
        rate = 1.0 - 1.0 / scale
        if math.isclose(rate, p, abs_tol=1e-3):
            text = (f"dropout left active in eval mode at {b.name}: a random keep-mask (kept "
                    f"{kept:.0%}), kept values x/(1-p) = {scale:.3g}x")
        else:
            text = (f"dropout active in eval mode at {b.name} with p = {rate:.3g} where the spec "
                    f"has {p} (kept {kept:.0%}, kept values {scale:.3g}x)")
        yield text, output
    norm = float(np.sum(x * x))
    factor = float(np.sum(b.observed * x)) / norm if norm and b.observed.shape == x.shape else 1.0
    if not math.isclose(factor, 1.0, rel_tol=1e-6):
        text = f"{b.name} multiplies by {factor:.4g} in eval mode"
        if math.isclose(factor, 1.0 - p, rel_tol=1e-4):
            text = (f"{b.name} scales by 1-p = {factor:.4g} in eval mode: non-inverted dropout's "
                    f"test-time scaling, where the spec's dropout scales by 1/(1-p) in training")
        yield text, factor * x


def placement_hypotheses(b: Blamed) -> Hypotheses:
    """A keep-mask applied at this layer (output, or a dense layer's input) instead of at a
    Dropout of the spec near it."""
    layers = b.variant.layers
    near = [l.name for l in layers[max(b.index - NEIGHBOURHOOD, 0):b.index + NEIGHBOURHOOD + 1]
            if isinstance(l, Dropout)]
    if not near or isinstance(b.layer, (Dropout, Flatten)):
        return
    where = f"where the spec has dropout at {' and '.join(near)}"
    fit = keep_mask_fit(b.expected, b.observed)
    if fit is not None:
        output, scale, kept = fit
        yield (f"dropout placement: a keep-mask applied to {b.name}'s output (kept {kept:.0%}, "
               f"x/(1-p) = {scale:.3g}x), {where}", output)
    if isinstance(b.layer, Dense):
        solved = dense_input_solved(b)
        fit = None if solved is None else keep_mask_fit(b.x, solved)
        if fit is not None:
            masked, scale, kept = fit
            yield (f"dropout placement: a keep-mask applied to {b.name}'s input (kept {kept:.0%}, "
                   f"x/(1-p) = {scale:.3g}x), {where}",
                   masked @ b.weight.T + b.bias)

"""Strict weight loading, shared by the three frameworks' ``load_canonical``.

A porting bug that changes a parameter's shape (a kernel in a layout the model does not
have, a layer built without its bias or its groups, a first dense layer after a pool
that rounds differently) must end in a verdict that names the parameter and both shapes,
not in whatever the framework raises. Each loader states its model's parameter shapes
and the arrays it is about to assign, both in the framework's own layout, and
``check_weight_shapes`` raises ``WeightMismatch`` for the first that does not fit.
"""

from __future__ import annotations

from typing import Mapping, Optional


class WeightMismatch(ValueError):
    """A weight the model refuses: ``key``, the model's shape (None: it has no such
    parameter) and the given array's shape (None: no array for a parameter it has)."""

    def __init__(self, key: str, model_shape: Optional[tuple[int, ...]],
                 given_shape: Optional[tuple[int, ...]]) -> None:
        self.key, self.model_shape, self.given_shape = key, model_shape, given_shape
        if model_shape is None:
            what = f"the model has no parameter {key!r} (given {given_shape})"
        elif given_shape is None:
            what = f"no weight given for the model's {key!r} {model_shape}"
        else:
            what = f"{key!r}: the model's parameter is {model_shape}, the weight given is {given_shape}"
        super().__init__(f"weight refused: {what}")


def check_weight_shapes(model: Mapping[str, Optional[tuple[int, ...]]],
                        given: Mapping[str, tuple[int, ...]]) -> None:
    """Raise ``WeightMismatch`` for the first parameter, in the model's order, whose given
    array is missing or has another shape, or that the model lacks (shape None)."""
    for key, shape in model.items():
        if shape is None or key not in given or tuple(given[key]) != tuple(shape):
            raise WeightMismatch(key, None if shape is None else tuple(shape),
                                 tuple(given[key]) if key in given else None)
    for key in given:
        if key not in model:
            raise WeightMismatch(key, None, tuple(given[key]))

"""Every framework against the float64 reference, for every registered variant."""

from __future__ import annotations

import numpy as np
import pytest

from common.weights import init_weights
from crosscheck.compare import DEFAULT_TOLERANCES, layer_error
from tests.conftest import VARIANTS, case


@pytest.mark.parametrize("variant_name", VARIANTS)
def test_every_layer_matches_reference(backend, variant_name):
    variant, weights, x, ref = case(variant_name)
    outputs = backend.layer_outputs(backend.build(variant, weights), x)
    assert list(outputs) == list(ref), "one output per spec layer, in order"
    for name, expected in ref.items():
        error = layer_error(outputs[name], expected)
        assert error.passes(DEFAULT_TOLERANCES), f"{backend.name} {variant_name} {name}: {error}"


@pytest.mark.parametrize("variant_name", VARIANTS)
def test_canonical_round_trip_is_exact(backend, variant_name):
    variant = case(variant_name)[0]
    weights = init_weights(variant, seed=3)
    exported = backend.export_weights(backend.build(variant, weights))
    assert sorted(exported) == sorted(weights)
    for key, value in weights.items():
        assert exported[key].dtype == np.float32 and np.array_equal(exported[key], value), key

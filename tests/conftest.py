"""Shared fixtures: variants, seeded weights and inputs, cached float64 references.

Tests are parametrized over the variant registry and the frameworks. A framework
that is not installed is skipped, except under ALEXNET_REQUIRE_ALL=1 (set by tox),
where that is a failure: CI must never pass by skipping a framework. Frameworks run on
the CPU unless ALEXNET_TEST_GPU names them (``device_for``).
"""

from __future__ import annotations

import functools
import os

import numpy as np
import pytest

from common import reference
from common.inputs import crosscheck_batch
from common.variants import get_variant, variant_names
from common.weights import init_weights
from impls.base import FRAMEWORKS, is_installed, load_backend

VARIANTS = variant_names()
FRAMEWORK_NAMES = list(FRAMEWORKS)


@functools.lru_cache(maxsize=None)
def case(variant_name: str):
    """(variant, weights, inputs, float64 reference outputs) for a registered variant."""
    variant = get_variant(variant_name)
    weights = init_weights(variant, seed=0)
    x = crosscheck_batch(variant, batch_size=2, seed=0)
    return variant, weights, x, reference.forward(variant, weights, x)


def backend_or_skip(name: str):
    if not is_installed(name):
        if os.environ.get("ALEXNET_REQUIRE_ALL") == "1":
            pytest.fail(f"{name} is not installed but ALEXNET_REQUIRE_ALL=1")
        pytest.skip(f"{name} is not installed")
    backend = load_backend(name, witnesses=True)  # a framework, or an ONNX witness (test_onnx)
    backend.use_device(device_for(name))
    return backend


def device_for(framework: str) -> str:
    """The device tests run a framework on: the CPU, or the GPU for the frameworks listed
    in ALEXNET_TEST_GPU (e.g. ``ALEXNET_TEST_GPU=pytorch pytest tests/test_fuzz.py`` on a
    CUDA machine: the same checks, tolerances and float64 reference, on the GPU)."""
    on_gpu = os.environ.get("ALEXNET_TEST_GPU", "").split(",")
    return "gpu" if framework in on_gpu or "all" in on_gpu else "cpu"


@pytest.fixture(params=FRAMEWORK_NAMES)
def backend(request):
    return backend_or_skip(request.param)


def rel_l2(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a.astype(np.float64) - b) / np.linalg.norm(b))


# Hypothesis profiles for tests/test_fuzz.py: a few derandomized examples in the default
# run, many more under `tox -e fuzz` (HYPOTHESIS_PROFILE=fuzz); FUZZ_EXAMPLES=N sets how
# many fresh networks per framework the fuzz profile draws (a long hunt: 5000).
try:
    from hypothesis import HealthCheck, settings
except ImportError:  # hypothesis is a dev extra
    pass
else:
    settings.register_profile("default", max_examples=6, derandomize=True, deadline=None,
                              suppress_health_check=[HealthCheck.too_slow])
    # derandomize=False explicitly: a profile inherits the "default" registered just above
    settings.register_profile("fuzz", max_examples=int(os.environ.get("FUZZ_EXAMPLES", 300)),
                              derandomize=False, deadline=None, print_blob=True,
                              suppress_health_check=[HealthCheck.too_slow])
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

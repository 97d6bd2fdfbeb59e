"""The ONNX witnesses (``impls/onnx``): each framework's model exported by its own exporter
and run in onnxruntime, against the float64 reference, per exposed layer.

Small inputs (the exports and the float64 reference scale with the image), every
variant's own layers. A witness that is not installed is skipped, except under
ALEXNET_REQUIRE_ALL=1 (``backend_or_skip``), where CI installs the ``onnx`` extra.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from common import reference
from common.inputs import crosscheck_batch
from common.shapes import infer
from common.variants import get_variant
from common.weights import init_weights
from crosscheck.compare import DEFAULT_TOLERANCES, layer_error
from crosscheck.run import all_frameworks, run_crosscheck
from impls.base import WITNESSES
from tests.conftest import VARIANTS, backend_or_skip

#: (H, W) per variant: small sizes that work (gluon-cifar's smallest is 163); cifar-small keeps 32x32
SMALL = {"paper": (67, 67), "torchvision": (63, 63), "d2l": (67, 67), "gluon-cifar": (163, 163),
         "tf-benchmark": (67, 67)}


@functools.lru_cache(maxsize=None)
def small_case(variant_name: str):
    """(variant, weights, inputs, float64 outputs), small input, 5 classes."""
    variant = get_variant(variant_name, num_classes=5, input_size=SMALL.get(variant_name))
    weights = init_weights(variant, seed=0)
    x = crosscheck_batch(variant, batch_size=2, seed=0)
    return variant, weights, x, reference.forward(variant, weights, x)


@functools.lru_cache(maxsize=None)
def exported(witness: str, variant_name: str):
    """(backend, model) of ``witness`` for ``small_case(variant_name)``, exported once."""
    backend = backend_or_skip(witness)
    return backend, backend.build(*small_case(variant_name)[:2])


@pytest.fixture(params=list(WITNESSES))
def witness(request):
    backend_or_skip(request.param)
    return request.param


@pytest.mark.parametrize("variant_name", VARIANTS)
def test_every_exposed_layer_matches_reference(witness, variant_name):
    variant, _, x, ref = small_case(variant_name)
    backend, model = exported(witness, variant_name)
    outputs = backend.layer_outputs(model, x)
    assert list(outputs) == [info.name for info in infer(variant)], "every layer exposed, in order"
    for name, out in outputs.items():
        error = layer_error(out, ref[name])
        assert error.passes(DEFAULT_TOLERANCES), f"{witness} {variant_name} {name}: {error}"


@pytest.mark.parametrize("variant_name", ["paper", "cifar-small"])
def test_a_perturbed_weight_in_the_graph_is_caught(witness, variant_name):
    """The graph runs the weights it was given: conv2's weight scaled by 1.001 in the
    exported graph (nothing else changed) fails the check from conv2 on, not before."""
    variant, _, x, ref = small_case(variant_name)
    backend, model = exported(witness, variant_name)
    key = next(k for k in model.weights if k.startswith("conv2") and "bias" not in k)
    bad = dict(model.weights)
    bad[key] = bad[key] * np.float32(1.001)
    outputs = backend.layer_outputs(model.with_weights(bad), x)
    names = [info.name for info in infer(variant)]
    passed = {name: layer_error(outputs[name], ref[name]).passes(DEFAULT_TOLERANCES)
              for name in names}
    assert all(passed[name] for name in names[:names.index("conv2")]), passed
    assert not passed["conv2"] and not passed[names[-1]], passed


def test_crosscheck_runs_a_witness_forward_only(witness):
    """Asked for every check, a witness runs the forward one and reports the rest as
    skipped; 'all' lists it because it is installed."""
    assert witness in all_frameworks()
    run = run_crosscheck(["cifar-small"], [witness], device="cpu",
                         checks=("forward", "backward", "step", "fastpath"))
    (variant,) = run.variants
    assert run.exit_code == 0 and variant.frameworks[0].status == "pass"
    assert variant.skipped_checks == {witness: ["backward", "step", "fastpath"]}
    assert not (variant.gradients or variant.steps or variant.fast_paths)
    from crosscheck.report import terminal
    assert f"{witness} backward, step, fastpath: skipped: forward only" in terminal(run)


def test_baked_graph_is_what_numpy_helper_makes(witness):
    """``graph.bake`` fills each initializer in place (one copy of the weights fewer): the
    serialized model is byte for byte the one ``numpy_helper.from_array`` tensors give."""
    import onnx
    from onnx import numpy_helper
    from impls.onnx.graph import bake
    _, model = exported(witness, "cifar-small")
    expected = onnx.ModelProto()
    expected.CopyFrom(model.graph)
    kept = [i for i in expected.graph.input if i.name not in model.weights]
    del expected.graph.input[:]
    expected.graph.input.extend(kept)
    expected.graph.initializer.extend(numpy_helper.from_array(value, name)
                                      for name, value in model.weights.items())
    assert bake(model.graph, model.weights).SerializeToString() == expected.SerializeToString()


def test_torch_export_with_the_registry_kept_is_byte_identical(monkeypatch):
    """Keeping torch's ATen -> ONNX registry between exports changes nothing in the graph."""
    import contextlib
    backend_or_skip("onnx-pytorch")
    import impls.onnx.from_pytorch as from_pytorch
    variant, weights = small_case("cifar-small")[:2]
    cached = [from_pytorch.export(variant, weights).graph.SerializeToString() for _ in range(2)]
    monkeypatch.setattr(from_pytorch, "torchlib_registry_once", contextlib.nullcontext)
    assert cached[0] == cached[1] == from_pytorch.export(variant, weights).graph.SerializeToString()

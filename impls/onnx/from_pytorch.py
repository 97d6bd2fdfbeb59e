"""``onnx-pytorch``: the PyTorch model (``impls.pytorch``) exported by ``torch.onnx.export``.

The exporter is torch's default one since 2.9, built on ``torch.export`` (``dynamo=True``,
which needs ``onnxscript``). A wrapper returns every child module's output, so every spec
layer is a graph output, and ``torch.func.functional_call`` makes every parameter a
named graph input (``conv1.weight``...: canonical keys and layout).

One thing is kept between exports: the exporter's table of ATen -> ONNX translations
(``ONNXRegistry.from_torchlib``), which ``torch.onnx.export`` rebuilds from torchlib on
every call (~2.5 s of a ~7 s export) and only reads. The export itself, its decompositions
and translations are torch's exporter's own, every time: the graph is byte for byte the
one an uncached export gives (tests/test_onnx.py).
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from typing import Iterator

import numpy as np
import onnx
import torch

from common.spec import Variant
from common.weights import Weights
from impls.onnx.backend import OnnxBackend
from impls.onnx.graph import OnnxModel
from impls.pytorch.backend import BACKEND as PYTORCH
from impls.pytorch.model import AlexNet


#: opset version -> the registry torch built for it (a table of functions: small)
_REGISTRIES: dict = {}


@contextlib.contextmanager
def torchlib_registry_once() -> Iterator[None]:
    """Within the block, ``ONNXRegistry.from_torchlib`` builds each opset's registry once
    and then returns that one. A private API: where it is not as expected, nothing is
    cached and the export runs as it always did."""
    try:
        from torch.onnx._internal.exporter import _registration
        registry_class = _registration.ONNXRegistry
        original = registry_class.__dict__["from_torchlib"]
    except (ImportError, AttributeError, KeyError):
        yield
        return
    if not isinstance(original, classmethod):
        yield
        return

    def from_torchlib(cls, *args, **kwargs):
        key = (cls, args, tuple(sorted(kwargs.items())))
        if key not in _REGISTRIES:
            _REGISTRIES[key] = original.__func__(cls, *args, **kwargs)
        return _REGISTRIES[key]

    registry_class.from_torchlib = classmethod(from_torchlib)
    try:
        yield
    finally:
        registry_class.from_torchlib = original


class EveryLayer(torch.nn.Module):
    """``model`` called with its parameters ``state`` (canonical keys) as an argument,
    returning the output of each of its children in order."""

    def __init__(self, model: AlexNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, state: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        outputs = []
        for name, module in self.model.named_children():
            prefix = f"{name}."
            own = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            x = torch.func.functional_call(module, own, (x,)) if own else module(x)
            outputs.append(x)
        return tuple(outputs)


def export(variant: Variant, weights: Weights) -> OnnxModel:
    """The exported graph of ``impls.pytorch``'s model of ``variant``, holding ``weights``."""
    PYTORCH.use_device("cpu")
    model = PYTORCH.build(variant, weights)
    keys = list(dict(model.named_parameters()))
    layers = [name for name, _ in model.named_children()]
    state = {key: p.detach() for key, p in model.named_parameters()}
    batch = torch.export.Dim("batch", min=1)
    x = torch.zeros((2, *variant.input_shape))
    buffer = io.BytesIO()
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # not "torchvision is not installed. Skipping torchvision::nms"
    try:
        with warnings.catch_warnings(), torchlib_registry_once():
            warnings.simplefilter("ignore")
            torch.onnx.export(EveryLayer(model).eval(), (x,), buffer, kwargs={"state": state},
                              dynamo=True, input_names=["x", *keys], output_names=layers,
                              dynamic_shapes={"x": {0: batch}, "state": {k: None for k in keys}},
                              external_data=False, verbose=False)
    finally:
        quiet.setLevel(level)
    graph = onnx.load_from_string(buffer.getvalue())
    weights = {key: np.ascontiguousarray(p.numpy(), dtype=np.float32) for key, p in state.items()}
    return OnnxModel(variant, graph, weights, {name: name for name in layers}, layout="NCHW",
                     exporter=f"torch.onnx.export(dynamo=True), torch {torch.__version__}")


BACKEND = OnnxBackend("onnx-pytorch", export, lambda: f"torch {torch.__version__}")

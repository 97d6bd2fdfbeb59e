"""``onnx-pytorch``: the PyTorch model (``impls.pytorch``) exported by ``torch.onnx.export``.

The exporter is torch's default one since 2.9, built on ``torch.export`` (``dynamo=True``,
which needs ``onnxscript``). A wrapper returns every child module's output, so every spec
layer is a graph output, and ``torch.func.functional_call`` makes every parameter a
named graph input (``conv1.weight``...: canonical keys and layout).
"""

from __future__ import annotations

import io
import logging
import warnings

import numpy as np
import onnx
import torch

from common.spec import Variant
from common.weights import Weights
from impls.onnx.backend import OnnxBackend
from impls.onnx.graph import OnnxModel
from impls.pytorch.backend import BACKEND as PYTORCH
from impls.pytorch.model import AlexNet


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
        with warnings.catch_warnings():
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

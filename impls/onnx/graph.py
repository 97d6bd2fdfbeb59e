"""An exported ONNX graph with its weights, and the onnxruntime session that runs it.

Both exporters are asked for the network's structure with every parameter as a named
graph input (fast: a tf2onnx conversion of AlexNet's 60M frozen constants takes about a
minute, of named inputs a few seconds). ``session`` then bakes the parameters into the
graph as initializers, so onnxruntime runs the graph as a deployed ``.onnx`` file with
its weights inside: constant folding and weight pre-packing included.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional

import numpy as np
import onnx
import onnxruntime as ort

from common.spec import Variant


@dataclass
class OnnxModel:
    """What ``build`` returns: the exported graph, its parameters, and how its outputs map
    back to the spec's layers in canonical layout."""

    variant: Variant
    #: the exported graph: input 0 is the image batch, every other input a parameter
    graph: onnx.ModelProto
    #: graph input name -> the parameter as the framework holds it (its own layout)
    weights: dict[str, np.ndarray]
    #: spec layer name -> graph output name; a layer left out is one the graph does not expose
    outputs: dict[str, str]
    #: the graph's image layout: "NCHW" (PyTorch) or "NHWC" (Keras)
    layout: str = "NCHW"
    #: layer name -> (C, H, W) of the map whose H*W*C flatten the layer outputs (Keras's
    #: flatten, up to the first dense after it); converted to C*H*W order
    hwc_flat: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    #: the exporter, for the report
    exporter: str = ""
    _session: Optional[ort.InferenceSession] = field(default=None, repr=False)

    def with_weights(self, weights: dict[str, np.ndarray]) -> "OnnxModel":
        """The same graph holding other parameters (same keys, shapes and layout)."""
        assert weights.keys() == self.weights.keys(), "the graph's parameters, renamed"
        return replace(self, weights=dict(weights), _session=None)

    def session(self) -> ort.InferenceSession:
        """An onnxruntime CPU session of the graph with ``weights`` baked in (made once)."""
        if self._session is None:
            self._session = make_session(self.graph, self.weights)
        return self._session


def bake(graph: onnx.ModelProto, weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    """A copy of ``graph`` whose parameter inputs are initializers holding ``weights``."""
    baked = onnx.ModelProto()
    baked.CopyFrom(graph)
    missing = [name for name in weights if name not in {i.name for i in baked.graph.input}]
    if missing:
        raise KeyError(f"the exported graph has no inputs {missing}")
    kept = [i for i in baked.graph.input if i.name not in weights]
    del baked.graph.input[:]
    baked.graph.input.extend(kept)
    for name, value in weights.items():
        # filled in place: what numpy_helper.from_array makes, byte for byte, without the
        # second copy of every tensor that extending by finished TensorProtos costs (~1 s)
        value = np.ascontiguousarray(value, dtype="<f4")  # ONNX raw data is little-endian
        tensor = baked.graph.initializer.add()
        tensor.name, tensor.data_type = name, onnx.TensorProto.FLOAT
        tensor.dims.extend(value.shape)
        tensor.raw_data = value.tobytes()
    return baked


def make_session(graph: onnx.ModelProto, weights: dict[str, np.ndarray]) -> ort.InferenceSession:
    """onnxruntime on the CPU, default (all) graph optimizations, for ``graph`` + ``weights``."""
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: no warnings about unused initializers
    return ort.InferenceSession(bake(graph, weights).SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def run(model: OnnxModel, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every exposed layer's output for the NCHW float32 batch ``x``, in the graph's own
    layout (NHWC maps and H*W*C flattens for a Keras graph)."""
    session = model.session()
    image = np.ascontiguousarray(x if model.layout == "NCHW" else x.transpose(0, 2, 3, 1),
                                 dtype=np.float32)
    names = list(model.outputs.values())
    values = session.run(names, {session.get_inputs()[0].name: image})
    return dict(zip(model.outputs, values))

"""``onnx-tensorflow``: the Keras model (``impls.tensorflow``) converted by tf2onnx.

tf2onnx's ``from_keras`` fails on Keras 3 models (``KeyError: 'keras_tensor_23'``: it
looks up Keras 2's output tensor names), and Keras 3's own ``model.export(format="onnx")``
is tf2onnx's ``from_function`` underneath. So the graph is a ``tf.function`` that calls
each Keras layer in turn (``stateless_call``, every variable a named argument) and
returns every layer's output, converted by ``tf2onnx.convert.from_graph_def``.

One step in between: Keras runs a grouped convolution on the CPU inside a nested
``tf.function(jit_compile=True)`` (TensorFlow's CPU kernel has no groups). tf2onnx leaves
an XLA-compiled call uninlined and emits ``StatefulPartitionedCall``, which onnxruntime
rejects ("No Op registered for StatefulPartitionedCall"); with the ``_XlaMustCompile``
marks removed, the call is inlined and its grouped ``Conv2D`` becomes an ONNX ``Conv``
with ``group``.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
import tf2onnx

from common.shapes import infer
from common.spec import Dense, Flatten, Variant
from common.weights import Weights
from impls.onnx.backend import OnnxBackend
from impls.onnx.graph import OnnxModel
from impls.tensorflow.backend import BACKEND as TENSORFLOW

OPSET = 17
XLA_MARKS = ("_XlaMustCompile", "_noinline")


def hwc_flat_layers(variant: Variant) -> dict[str, tuple[int, int, int]]:
    """Layer name -> (C, H, W) for the layers whose Keras output is an H*W*C flatten: the
    flatten, up to the first dense after it (as the TensorFlow backend converts them)."""
    flat, chw = {}, None
    for info in infer(variant):
        if isinstance(info.layer, Flatten):
            chw = info.in_shape
        elif isinstance(info.layer, Dense):
            chw = None
        if chw is not None:
            flat[info.name] = chw
    return flat


def _strip_xla(graph_def: tf.compat.v1.GraphDef) -> None:
    nodes = list(graph_def.node)
    for function in graph_def.library.function:
        for mark in XLA_MARKS:
            if mark in function.attr:
                del function.attr[mark]
        nodes += function.node_def
    for node in nodes:
        for mark in XLA_MARKS:
            if mark in node.attr:
                del node.attr[mark]


def export(variant: Variant, weights: Weights) -> OnnxModel:
    """The converted graph of ``impls.tensorflow``'s model of ``variant``, holding ``weights``."""
    TENSORFLOW.use_device("cpu")
    model = TENSORFLOW.build(variant, weights)
    layers = model.layers
    # every weight of every layer, as a graph input named <layer>_<variable> (e.g. conv1_kernel);
    # a Dropout's seed state is not read in eval mode
    params = [(f"{layer.name}_{v.name}", v) for layer in layers for v in layer.trainable_variables]
    c, h, w = variant.input_shape
    signature = [tf.TensorSpec((None, h, w, c), tf.float32, name="x")]
    signature += [tf.TensorSpec(v.shape, tf.float32, name=name) for name, v in params]

    @tf.function(input_signature=signature)
    def every_layer(x, *values):
        outputs = []
        # each variable read as the matching argument: the graph holds no weights
        with keras.StatelessScope(state_mapping=[(v, t) for (_, v), t in zip(params, values)]):
            for layer in layers:
                x = layer(x, training=False)
                outputs.append(x)
        return outputs

    function = every_layer.get_concrete_function()
    if len(function.inputs) != len(signature):  # a variable captured, not passed: frozen in
        raise RuntimeError(f"{variant.name}: the traced Keras model reads variables it was not "
                           f"given ({len(function.inputs) - len(signature)} captured inputs)")
    graph_def = function.graph.as_graph_def()
    _strip_xla(graph_def)
    graph, _ = tf2onnx.convert.from_graph_def(
        graph_def, input_names=[t.name for t in function.inputs],
        output_names=[t.name for t in function.outputs], opset=OPSET)
    state = {f"{name}:0": np.asarray(v.numpy(), dtype=np.float32) for name, v in params}
    outputs = {layer.name: out.name for layer, out in zip(layers, function.outputs)}
    exposed = {out.name for out in graph.graph.output}
    outputs = {layer: out for layer, out in outputs.items() if out in exposed}
    return OnnxModel(variant, graph, state, outputs, layout="NHWC",
                     hwc_flat=hwc_flat_layers(variant),
                     exporter=f"tf2onnx {tf2onnx.__version__} from_graph_def, opset {OPSET}")


BACKEND = OnnxBackend("onnx-tensorflow", export, lambda: f"tensorflow {tf.__version__}")

"""A Keras model someone else wrote, wrapped for ``alexnet inspect`` (``impls.foreign``).

Works the same for ``keras.Sequential``, functional ``keras.Model(inputs, outputs)``,
subclassed models and custom ``keras.layers.Layer`` classes that hold ``add_weight``
variables and call raw ``tf.nn`` ops (seed 004's way of writing AlexNet): Keras 3 has no
forward hooks, but every ``Layer.__call__`` ends in ``self.call(...)``, looked up on the
instance, in all three model kinds. So for one forward pass each watched layer gets an
instance attribute ``call`` that records its first input and its output, removed again
afterwards. Watched: every leaf layer (no sublayers) and every layer that holds a 2-D or
4-D weight itself.

Only eager calls are recorded: building a subclassed model first traces its layers
symbolically (``compute_output_spec``), and a ``call`` under ``@tf.function`` is made to
run eagerly for the pass (``tf.config.run_functions_eagerly``).

Keras's layouts are not the canonical ones: convolution kernels are HWIO, ``(kh, kw,
I/groups, O)``, dense kernels ``(in, out)``; activations are NHWC unless the model's layers
say ``data_format="channels_first"``. Weights are converted with ``common.conventions``; the
first dense layer's row order after a flatten is left as Keras has it (the inspection core
decides it in canonical terms).
"""

from __future__ import annotations

from typing import Any, Optional

import keras
import numpy as np
import tensorflow as tf

from common.conventions import (
    canonical_shape_from_keras, dense_from_keras, dense_to_keras, hwio_to_oihw, oihw_to_hwio,
)
from impls.foreign import Captured, ForeignModelError, forward_failed, LayerWeights, ParamLayer, kind_of_class

#: a layer's weight and bias variables (Keras variables or raw ``tf.Variable``)
_Owned = tuple[Any, Optional[Any]]


def _sublayers(layer: keras.layers.Layer) -> list[keras.layers.Layer]:
    """The layers ``layer`` holds directly (Keras 3 has no public list on a plain Layer)."""
    return [sub for sub in getattr(layer, "_layers", []) if isinstance(sub, keras.layers.Layer)]


def _own_variables(layer: keras.layers.Layer) -> list[Any]:
    """The variables ``layer`` holds itself, not through a sublayer: those ``add_weight``
    made, and raw ``tf.Variable`` attributes (Keras 3 does not track those)."""
    inner = {id(v) for sub in _sublayers(layer) for v in sub.weights}
    own = [v for v in layer.weights if id(v) not in inner]
    known = {id(v) for v in own} | inner
    own += [v for v in vars(layer).values() if isinstance(v, tf.Variable) and id(v) not in known]
    return own


def _var_name(variable: Any) -> str:
    return str(getattr(variable, "path", None) or variable.name).lower()


def _own_weight(layer: keras.layers.Layer) -> Optional[_Owned]:
    """(weight, bias or None) that ``layer`` holds itself: its one 4-D (convolution, HWIO) or
    2-D (dense, ``(in, out)``) variable, and a 1-D variable of its output size (preferably
    called bias). None if it has no such weight; ForeignModelError if it has several."""
    own = _own_variables(layer)
    weights = [v for v in own if len(v.shape) in (2, 4)]
    if not weights:
        return None
    if len(weights) > 1:
        raise ForeignModelError(
            f"layer {layer.name!r} ({type(layer).__name__}) holds {len(weights)} kernels "
            f"({', '.join(_var_name(v) for v in weights)}): the inspection needs one "
            f"convolution or dense weight per layer")
    weight = weights[0]
    out = int(weight.shape[-1])
    biases = [v for v in own if len(v.shape) == 1 and int(v.shape[0]) == out]
    named = [v for v in biases if "bias" in _var_name(v)]
    bias = (named or biases or [None])[0]
    return weight, bias


def _numpy(value: Any) -> np.ndarray:
    return np.array(value, dtype=np.float32)  # a copy, float32 whatever the model's dtype


def _is_eager_tensor(value: Any) -> bool:
    return isinstance(value, (tf.Tensor, keras.Variable)) and hasattr(value, "numpy")


def _function_kind(function: Any) -> str:
    """The kind a ``Lambda``'s function says by its name or the names it uses
    (``lambda t: tf.nn.lrn(t, 2)`` -> "lrn"), "other" unless exactly one kind is named."""
    code = getattr(function, "__code__", None)
    names = [getattr(function, "__name__", "")] + list(getattr(code, "co_names", ()))
    kinds = {kind_of_class(name) for name in names} - {"other"}
    return kinds.pop() if len(kinds) == 1 else "other"


def _layer_kind(layer: keras.layers.Layer, owned: Optional[_Owned]) -> str:
    if owned is not None:
        return "conv" if len(owned[0].shape) == 4 else "dense"
    if isinstance(layer, keras.layers.Activation):  # Activation("relu"), ("softmax")
        return kind_of_class(getattr(layer.activation, "__name__", ""))
    if isinstance(layer, keras.layers.Lambda):
        return _function_kind(layer.function)
    if isinstance(layer, keras.layers.Reshape) and len(layer.target_shape) == 1:
        return "flatten"
    return kind_of_class(type(layer).__name__)


def _first_input(args: tuple, kwargs: dict) -> Any:
    if args:
        return args[0]
    return kwargs.get("inputs", next(iter(kwargs.values()), None))


class KerasModel:
    framework = "tensorflow"

    def __init__(self, model: keras.layers.Layer) -> None:
        self.model = model
        self.description = type(model).__name__
        #: the layers whose calls are recorded, by path name (``block/conv``; the model's
        #: own layers by their own names)
        self.watched = self._discover()
        self.order: list[str] = []  # names of the weighted layers, as the last pass ran them

    def _discover(self) -> dict[str, keras.layers.Layer]:
        watched: dict[str, keras.layers.Layer] = {}
        seen: set[int] = set()

        def visit(layer: keras.layers.Layer, path: str, prefix: str) -> None:
            if id(layer) in seen or isinstance(layer, keras.layers.InputLayer):
                return
            seen.add(id(layer))
            subs = _sublayers(layer)
            if not subs or _own_weight(layer) is not None:
                name, n = path, 1
                while name in watched:
                    n += 1
                    name = f"{path}#{n}"
                watched[name] = layer
            for sub in subs:
                visit(sub, prefix + sub.name, f"{prefix}{sub.name}/")

        visit(self.model, self.model.name, "")
        return watched

    @property
    def channels_last(self) -> bool:
        """Whether the model takes NHWC: its first convolution or pooling layer with a
        ``data_format`` says so (any layer with one, if none of those does); raw ``tf.nn``
        ops are NHWC by default."""
        formats = [(kind_of_class(type(layer).__name__) in ("conv", "maxpool", "avgpool"),
                    layer.data_format) for layer in self.watched.values()
                   if getattr(layer, "data_format", None) in ("channels_first", "channels_last")]
        formats.sort(key=lambda f: not f[0])  # stable: convolutions and pools first
        return not formats or formats[0][1] == "channels_last"

    def _forward(self, x: np.ndarray, capture: bool) -> list[Captured]:
        before = set(self.watched)
        seen = self._pass(x, capture)
        self.watched = self._discover()
        if set(self.watched) != before:  # sublayers a subclassed model made on its first call
            seen = self._pass(x, capture)
        if not self.order:
            raise ForeignModelError(f"{self.description} ran no layer with a 2-D or 4-D weight: "
                                    f"nothing AlexNet-like to inspect")
        return seen

    def _pass(self, x: np.ndarray, capture: bool) -> list[Captured]:
        seen: list[Captured] = []
        order: list[str] = []
        channels_last = self.channels_last

        def recorder(name: str, layer: keras.layers.Layer, call):
            def record(*args, **kwargs):
                output = call(*args, **kwargs)
                if not tf.executing_eagerly():  # a symbolic trace while Keras builds
                    return output
                owned = _own_weight(layer)
                if owned is not None and name not in order:
                    order.append(name)
                if capture and _is_eager_tensor(output):
                    first = _first_input(args, kwargs)
                    seen.append(Captured(name, _layer_kind(layer, owned),
                                         _numpy(first) if _is_eager_tensor(first) else None,
                                         _numpy(output), channels_last))
                return output
            return record

        replaced = []  # (layer, the instance's own `call` before, if it had one)
        native = np.ascontiguousarray(x.transpose(0, 2, 3, 1) if channels_last else x)
        functions_eagerly = tf.config.functions_run_eagerly()
        try:
            for name, layer in self.watched.items():
                replaced.append((layer, vars(layer).get("call")))
                layer.call = recorder(name, layer, layer.call)
            tf.config.run_functions_eagerly(True)  # a @tf.function call would hide the layers
            self.model(tf.constant(native, tf.float32), training=False)
        except ForeignModelError:
            raise
        except Exception as exc:  # the model's own code refused the input: say what it said
            raise forward_failed(self.description, native.shape,
                                 "NHWC" if channels_last else "NCHW", exc) from exc
        finally:
            tf.config.run_functions_eagerly(functions_eagerly)
            for layer, own_call in replaced:
                if own_call is None:
                    del layer.call
                else:
                    layer.call = own_call
        self.order = order
        return seen

    def _owned(self, name: str) -> _Owned:
        owned = _own_weight(self.watched[name]) if name in self.watched else None
        if owned is None:
            raise ForeignModelError(f"{self.description} has no layer {name!r} with a weight; "
                                    f"layers with weights: {', '.join(self.order)}")
        return owned

    def build(self, input_shape: tuple[int, int, int]) -> None:
        self._forward(np.zeros((1, *input_shape), np.float32), capture=False)

    def param_layers(self) -> list[ParamLayer]:
        return [self._param_layer(name) for name in self.order]

    def _param_layer(self, name: str) -> ParamLayer:
        weight, bias = self._owned(name)
        shape = canonical_shape_from_keras(tuple(int(d) for d in weight.shape))
        groups = int(getattr(self.watched[name], "groups", 1) or 1)  # 1 for a custom layer
        return ParamLayer(name, "conv" if len(shape) == 4 else "dense", shape, bias is not None,
                          groups)

    def read_weights(self) -> LayerWeights:
        out: LayerWeights = {}
        for name in self.order:
            weight, bias = self._owned(name)
            kernel = _numpy(weight)
            out[name] = (hwio_to_oihw(kernel) if kernel.ndim == 4 else dense_from_keras(kernel),
                         None if bias is None else _numpy(bias))
        return out

    def write_weights(self, weights: LayerWeights) -> None:
        for name, (weight, bias) in weights.items():
            variable, bias_variable = self._owned(name)
            weight = np.asarray(weight, np.float32)
            own_shape = canonical_shape_from_keras(tuple(int(d) for d in variable.shape))
            if weight.shape != own_shape:
                raise ForeignModelError(f"layer {name!r} has a weight of shape {own_shape} "
                                        f"(canonical layout), not {weight.shape}")
            kernel = oihw_to_hwio(weight) if weight.ndim == 4 else dense_to_keras(weight)
            if bias is not None and bias_variable is not None and np.shape(bias) != own_shape[:1]:
                raise ForeignModelError(f"layer {name!r} has a bias of shape {own_shape[:1]}, "
                                        f"not {np.shape(bias)}")
            for target, value in ((variable, kernel), (bias_variable, bias)):
                if target is not None and value is not None:
                    target.assign(tf.cast(tf.constant(value, tf.float32), target.dtype))

    def run(self, x: np.ndarray) -> list[Captured]:
        return self._forward(np.asarray(x, np.float32), capture=True)


def adapt(obj: object) -> Optional[KerasModel]:
    """``obj`` wrapped, if it is a ``keras.Model`` or another ``keras.layers.Layer``."""
    return KerasModel(obj) if isinstance(obj, keras.layers.Layer) else None

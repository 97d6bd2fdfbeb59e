"""A Gluon ``Block`` someone else wrote, wrapped for ``alexnet inspect`` (``impls.foreign``).

Layers are seen with Gluon's forward hooks on every block that owns a weight itself (with
what it holds: a fused activation) and on every leaf block elsewhere. Hooks on the children
of a hybridized block never fire (the cached graph runs instead of their ``__call__``), so
the model is un-hybridized for good. Gluon's layouts are the canonical ones (OIHW kernels,
``(out, in)`` dense weights), so weights move as they are.
"""

from __future__ import annotations

import warnings
from typing import Iterator, Optional

import mxnet as mx
import numpy as np
from mxnet import autograd
from mxnet.gluon import Block, Parameter, SymbolBlock, nn

from impls.foreign import Captured, ForeignModelError, forward_failed, LayerWeights, ParamLayer, kind_of_class


def _own_weight(block: Block) -> Optional[tuple[Parameter, Optional[Parameter]]]:
    """(weight, bias or None) among the parameters ``block`` holds itself: a 4-D
    (convolution) or 2-D (dense) weight, preferably called ``weight``, and a 1-D bias of
    its output size. Shapes may hold 0s (deferred) but their length is known."""
    own = {name: p for name, p in block._reg_params.items() if p.shape is not None}
    weights = [n for n, p in own.items() if len(p.shape) in (2, 4)]
    if not weights:
        return None
    weight = "weight" if "weight" in weights else weights[0]
    out = own[weight].shape[0]
    biases = [n for n, p in own.items() if len(p.shape) == 1 and p.shape[0] == out]
    bias = "bias" if "bias" in biases else (biases[0] if biases else None)
    return own[weight], None if bias is None else own[bias]


def _layers(block: Block, path: str = "") -> Iterator[tuple[str, Block]]:
    """(dotted path, block) of the blocks seen as layers: those that own a weight and the
    leaves, depth first ("" for the top block, as torch's ``named_modules``). A block with a
    weight is one layer with what it holds: ``Conv2D(activation='relu')`` keeps its ReLU in a
    child ``act``, and its output is after that ReLU (fused, as a Keras layer's)."""
    if _own_weight(block) or not block._children:
        yield path, block
        return
    for name, child in block._children.items():
        yield from _layers(child, f"{path}.{name}" if path else name)


def _kind(block: Block, owns: Optional[tuple[Parameter, Optional[Parameter]]]) -> str:
    if owns:
        return "conv" if len(owns[0].shape) == 4 else "dense"
    if isinstance(block, nn.Activation):  # one class for every activation: its type says which
        return "relu" if block._act_type == "relu" else "other"
    return kind_of_class(type(block).__name__)


class GluonModel:
    framework = "mxnet"

    def __init__(self, model: Block) -> None:
        self.model = model
        self.description = type(model).__name__
        if isinstance(model, SymbolBlock):
            raise ForeignModelError(f"{self.description} is an imported graph with no layers to "
                                    f"hook: inspect the Python model it was exported from")
        self.order: list[str] = []  # names of the weighted blocks, as the last pass ran them
        self.watched: dict[str, Block] = {}
        seen: set[int] = set()  # a block shared by two paths is watched under its first name
        for name, block in _layers(model):
            if id(block) not in seen:
                seen.add(id(block))
                self.watched[name] = block
        if not any(_own_weight(b) for b in self.watched.values()):
            raise ForeignModelError(f"{self.description} has no layer with a 2-D or 4-D weight: "
                                    f"nothing AlexNet-like to inspect")
        with warnings.catch_warnings():  # Sequential's advice to use HybridSequential
            warnings.simplefilter("ignore", UserWarning)
            model.hybridize(active=False)

    def _parameter(self) -> Parameter:
        return next(iter(self.model.collect_params().values()))

    def _forward(self, x: np.ndarray, capture: bool) -> list[Captured]:
        seen: list[Captured] = []
        order: list[str] = []

        def hook(name: str, block: Block):
            owns = _own_weight(block)

            def record(_block, inputs, output) -> None:
                if owns and name not in order:
                    order.append(name)
                if not capture or not isinstance(output, mx.nd.NDArray):
                    return
                first = inputs[0] if inputs and isinstance(inputs[0], mx.nd.NDArray) else None
                seen.append(Captured(name, _kind(block, owns),
                                     None if first is None else _numpy(first), _numpy(output)))
            return record

        handles = [b.register_forward_hook(hook(n, b)) for n, b in self.watched.items()]
        parameter = self._parameter()
        try:
            # pause(train_mode=False): not recording and predict mode (dropout is the identity),
            # even if the caller is inside autograd.record()
            with autograd.pause(train_mode=False):
                self.model(mx.nd.array(x, ctx=parameter.list_ctx()[0], dtype=parameter.dtype))
                mx.nd.waitall()  # MXNet runs asynchronously: a failing op raises here, not above
        except Exception as exc:  # the model's own code refused the input: say what it said
            raise forward_failed(self.description, x.shape, "NCHW", exc) from exc
        finally:
            for handle in handles:
                handle.detach()
        self.order = order
        return seen

    def build(self, input_shape: tuple[int, int, int]) -> None:
        # the default initializer for parameters nobody initialized: the inspection writes its
        # own weights, or reads the user's, who initialized them; initialized or deferred
        # (initialize() called before the shapes were known) parameters keep theirs
        for param in self.model.collect_params().values():
            if param._data is None and not param._deferred_init:
                param.initialize()
        self._forward(np.zeros((1, *input_shape), np.float32), capture=False)

    def param_layers(self) -> list[ParamLayer]:
        layers = []
        for name in self.order:
            block = self.watched[name]
            owns = _own_weight(block)
            groups = getattr(block, "_kwargs", {}).get("num_group", 1)  # Conv2D keeps it there
            layers.append(ParamLayer(name, _kind(block, owns), tuple(owns[0].shape),
                                     owns[1] is not None, int(groups)))
        return layers

    def read_weights(self) -> LayerWeights:
        out: LayerWeights = {}
        for name in self.order:
            weight, bias = _own_weight(self.watched[name])
            out[name] = (_numpy(weight.list_data()[0]),
                         None if bias is None else _numpy(bias.list_data()[0]))
        return out

    def write_weights(self, weights: LayerWeights) -> None:
        for name, values in weights.items():
            for param, value in zip(_own_weight(self.watched[name]), values):
                if param is not None and value is not None:
                    param.set_data(mx.nd.array(value, dtype=param.dtype))

    def run(self, x: np.ndarray) -> list[Captured]:
        return self._forward(x, capture=True)


def _numpy(a: mx.nd.NDArray) -> np.ndarray:
    return a.asnumpy().astype(np.float32)


def adapt(obj: object) -> Optional[GluonModel]:
    """``obj`` wrapped, if it is a ``mxnet.gluon.Block``."""
    return GluonModel(obj) if isinstance(obj, Block) else None

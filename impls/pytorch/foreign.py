"""A ``torch.nn.Module`` someone else wrote, wrapped for ``alexnet inspect`` (``impls.foreign``).

Layers are seen with forward hooks on every leaf module and on every module that owns a
weight itself (a custom layer calling ``F.conv2d``). PyTorch's layouts are the canonical
ones, so weights move as they are.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from impls.foreign import Captured, ForeignModelError, forward_failed, LayerWeights, ParamLayer, kind_of_class


def _own_weight(module: torch.nn.Module) -> Optional[tuple[str, Optional[str]]]:
    """(weight name, bias name or None) of the parameters ``module`` holds itself: a 4-D
    (convolution) or 2-D (dense) weight, preferably called ``weight``, and a 1-D bias of
    its output size."""
    # a Lazy layer's parameters have no shape before the first call
    own = {n: p for n, p in module.named_parameters(recurse=False)
           if not isinstance(p, torch.nn.parameter.UninitializedParameter)}
    weights = [n for n, p in own.items() if p.dim() in (2, 4)]
    if not weights:
        return None
    weight = "weight" if "weight" in weights else weights[0]
    out = own[weight].shape[0]
    biases = [n for n, p in own.items() if p.dim() == 1 and p.shape[0] == out]
    bias = "bias" if "bias" in biases else (biases[0] if biases else None)
    return weight, bias


class TorchModel:
    framework = "pytorch"

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.description = type(model).__name__
        self.order: list[str] = []  # names of the weighted modules, as the last pass ran them
        self.watched = {name: m for name, m in model.named_modules()
                        if not any(True for _ in m.children())
                        or any(True for _ in m.parameters(recurse=False))}
        if not any(True for _ in model.parameters()):
            raise ForeignModelError(f"{self.description} has no parameters: nothing AlexNet-like "
                                    f"to inspect")

    def _parameter(self) -> torch.Tensor:
        return next(self.model.parameters())

    def _forward(self, x: np.ndarray, capture: bool) -> list[Captured]:
        seen: list[Captured] = []
        order: list[str] = []

        def hook(name: str, module: torch.nn.Module):
            def record(_module, inputs, output) -> None:
                owns = _own_weight(module)
                if owns and name not in order:
                    order.append(name)
                if not capture or not isinstance(output, torch.Tensor):
                    return
                first = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None
                kind = (("conv" if getattr(module, owns[0]).dim() == 4 else "dense") if owns
                        else kind_of_class(type(module).__name__))
                seen.append(Captured(name, kind, None if first is None else _numpy(first),
                                     _numpy(output)))
            return record

        handles = [m.register_forward_hook(hook(n, m)) for n, m in self.watched.items()]
        parameter = self._parameter()
        was_training = self.model.training
        try:
            self.model.eval()
            with torch.no_grad():
                self.model(torch.from_numpy(np.ascontiguousarray(x)).to(parameter.device,
                                                                          parameter.dtype))
        except Exception as exc:  # the model's own code refused the input: say what it said
            raise forward_failed(self.description, x.shape, "NCHW", exc) from exc
        finally:
            for handle in handles:
                handle.remove()
            self.model.train(was_training)
        self.order = order
        return seen

    def build(self, input_shape: tuple[int, int, int]) -> None:
        self._forward(np.zeros((1, *input_shape), np.float32), capture=False)
        if not self.order:
            raise ForeignModelError(f"{self.description} has no layer with a 2-D or 4-D weight: "
                                    f"nothing AlexNet-like to inspect")

    def param_layers(self) -> list[ParamLayer]:
        layers = []
        for name in self.order:
            module = self.watched[name]
            weight, bias = _own_weight(module)
            shape = tuple(getattr(module, weight).shape)
            layers.append(ParamLayer(name, "conv" if len(shape) == 4 else "dense", shape,
                                     bias is not None, int(getattr(module, "groups", 1))))
        return layers

    def read_weights(self) -> LayerWeights:
        out: LayerWeights = {}
        for name in self.order:
            module = self.watched[name]
            weight, bias = _own_weight(module)
            out[name] = (_numpy(getattr(module, weight)),
                         None if bias is None else _numpy(getattr(module, bias)))
        return out

    def write_weights(self, weights: LayerWeights) -> None:
        with torch.no_grad():
            for name, (weight, bias) in weights.items():
                module = self.watched[name]
                weight_name, bias_name = _own_weight(module)
                for param_name, value in ((weight_name, weight), (bias_name, bias)):
                    if param_name is None or value is None:
                        continue
                    param = getattr(module, param_name)
                    param.copy_(torch.from_numpy(np.ascontiguousarray(value)).to(param.dtype))

    def run(self, x: np.ndarray) -> list[Captured]:
        return self._forward(x, capture=True)


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float32).numpy().copy()


def adapt(obj: object) -> Optional[TorchModel]:
    """``obj`` wrapped, if it is a ``torch.nn.Module``."""
    return TorchModel(obj) if isinstance(obj, torch.nn.Module) else None

"""The forward-only ``Backend`` of an ONNX witness: a framework's model exported to ONNX
by that framework's own exporter and run in onnxruntime (CPU), compared with the float64
reference like every framework, but with no gradients, optimizer or benchmark.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import onnx
import onnxruntime as ort

from common.conventions import hwc_flat_to_chw
from common.spec import Variant
from common.weights import Weights
from impls.onnx.graph import OnnxModel, run


class OnnxBackend:
    """One witness: ``export(variant, weights)`` is the exporter, ``source()`` names the
    framework and version it exports from."""

    #: the crosscheck runs the forward check only (backward, step, fastpath, train: skipped)
    forward_only = True

    def __init__(self, name: str, export: Callable[[Variant, Weights], OnnxModel],
                 source: Callable[[], str]) -> None:
        self.name, self._export, self._source = name, export, source

    def version(self) -> str:
        return f"onnxruntime {ort.__version__} (onnx {onnx.__version__}, from {self._source()})"

    def use_device(self, device: str, exact: bool = True) -> str:
        # Only the CPU execution provider is installed. A witness checks what the exported
        # graph computes, not the device, so under --device gpu it still runs, on the CPU.
        if device == "gpu":
            return "cpu (onnxruntime CPUExecutionProvider; a witness has no GPU path here)"
        return "cpu (onnxruntime CPUExecutionProvider)"

    def build(self, variant: Variant, weights: Weights) -> OnnxModel:
        return self._export(variant, weights)

    def warm_up(self) -> None:
        """Export the smallest variant once and drop it. The first export imports and sets up
        the exporter (torch.onnx's brings sympy, onnxscript and its op registry: ~200K Python
        objects, ~4 s); done before the crosscheck hides what lives from the garbage collector
        (``common.release.freeze``), every later collection skips them (0.15 s a collection
        otherwise). Costs ~0.7 s (torch.onnx) and ~0.35 s (tf2onnx) beyond that setup."""
        from common.weights import init_weights  # noqa: PLC0415 (a witness-only need)
        from common.variants import get_variant  # noqa: PLC0415
        variant = get_variant("cifar-small")
        self._export(variant, init_weights(variant, 0))

    def export_weights(self, model: OnnxModel) -> Weights:
        raise NotImplementedError(f"{self.name} is forward only: its weights stay in the graph")

    def layer_outputs(self, model: OnnxModel, x: np.ndarray) -> dict[str, np.ndarray]:
        outputs = {}
        for name, out in run(model, x).items():
            if out.ndim == 4 and model.layout == "NHWC":
                out = out.transpose(0, 3, 1, 2)
            elif name in model.hwc_flat:
                out = hwc_flat_to_chw(out, model.hwc_flat[name])
            outputs[name] = np.ascontiguousarray(out, dtype=np.float32)
        return outputs

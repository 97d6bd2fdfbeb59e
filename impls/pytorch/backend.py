"""The PyTorch backend the crosscheck drives (see ``impls.base.Backend``)."""

from __future__ import annotations

import numpy as np
import torch

from common.spec import Variant
from common.weights import Weights
from impls.base import FrameworkUnavailable
from impls.pytorch.convert import export_canonical, load_canonical
from impls.pytorch.model import AlexNet


class PyTorchBackend:
    name = "pytorch"

    def __init__(self) -> None:
        self.device = torch.device("cpu")

    def version(self) -> str:
        return torch.__version__

    def use_device(self, device: str) -> str:
        if device == "gpu":
            if not torch.cuda.is_available():
                raise FrameworkUnavailable("pytorch: no CUDA GPU is visible to torch")
            # TF32 would make float32 convolutions and matmuls ~1e-3 accurate on Ampere+.
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
            self.device = torch.device("cuda")
            return f"cuda ({torch.cuda.get_device_name()}), TF32 off"
        self.device = torch.device("cpu")
        return "cpu"

    def build(self, variant: Variant, weights: Weights) -> AlexNet:
        model = AlexNet(variant).to(self.device).eval()
        load_canonical(model, weights)
        return model

    def export_weights(self, model: AlexNet) -> Weights:
        return export_canonical(model)

    @torch.no_grad()
    def layer_outputs(self, model: AlexNet, x: np.ndarray) -> dict[str, np.ndarray]:
        outputs: dict[str, np.ndarray] = {}
        h = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device)
        for name, module in model.named_children():
            h = module(h)
            outputs[name] = h.cpu().numpy()
        return outputs


BACKEND = PyTorchBackend()

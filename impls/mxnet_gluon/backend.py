"""The MXNet Gluon backend the crosscheck drives (see ``impls.base.Backend``)."""

from __future__ import annotations

import os

import mxnet as mx
import numpy as np

from common.spec import Variant
from common.weights import Weights
from impls.base import FrameworkUnavailable
from impls.mxnet_gluon.convert import export_canonical, load_canonical
from impls.mxnet_gluon.model import AlexNet


class MXNetBackend:
    name = "mxnet"

    def __init__(self) -> None:
        self.ctx = mx.cpu()

    def version(self) -> str:
        return mx.__version__

    def use_device(self, device: str) -> str:
        if device == "gpu":
            if mx.context.num_gpus() == 0:
                raise FrameworkUnavailable("mxnet: no GPU is visible to MXNet (a CUDA build, "
                                           "e.g. mxnet-cu112, is needed)")
            # TF32 off: MXNet's cuDNN/cuBLAS calls honour NVIDIA_TF32_OVERRIDE, read when CUDA
            # initializes, so it takes effect only if set before MXNet's first GPU call.
            os.environ["NVIDIA_TF32_OVERRIDE"] = "0"
            self.ctx = mx.gpu(0)
            return "gpu(0), NVIDIA_TF32_OVERRIDE=0"
        self.ctx = mx.cpu()
        return "cpu"

    def build(self, variant: Variant, weights: Weights) -> AlexNet:
        model = AlexNet(variant)
        model.initialize(mx.init.Zero(), ctx=self.ctx)  # every value is overwritten next
        load_canonical(model, weights)
        return model

    def export_weights(self, model: AlexNet) -> Weights:
        return export_canonical(model)

    def layer_outputs(self, model: AlexNet, x: np.ndarray) -> dict[str, np.ndarray]:
        # Outside autograd.record() Gluon is in predict mode: dropout is the identity.
        outputs: dict[str, np.ndarray] = {}
        h = mx.nd.array(x, ctx=self.ctx, dtype=np.float32)
        for name, block in model.named_layers():
            h = block(h)
            outputs[name] = h.asnumpy()
        return outputs


BACKEND = MXNetBackend()

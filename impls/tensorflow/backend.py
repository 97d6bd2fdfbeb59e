"""The TensorFlow/Keras backend the crosscheck drives (see ``impls.base.Backend``)."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from common.conventions import hwc_flat_to_chw
from common.spec import Variant
from common.weights import Weights
from impls.base import FrameworkUnavailable
from impls.tensorflow.convert import export_canonical, load_canonical
from impls.tensorflow.model import build_alexnet


class TensorFlowBackend:
    name = "tensorflow"

    def __init__(self) -> None:
        self.device = "/CPU:0"

    def version(self) -> str:
        return f"{tf.__version__} (keras {keras.__version__})"

    def use_device(self, device: str) -> str:
        if device == "gpu":
            gpus = tf.config.list_physical_devices("GPU")
            if not gpus:
                raise FrameworkUnavailable("tensorflow: no GPU is visible to TensorFlow")
            # TF32 off: it would make float32 convolutions and matmuls ~1e-3 accurate on Ampere+.
            tf.config.experimental.enable_tensor_float_32_execution(False)
            self.device = "/GPU:0"
            name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
            return f"/GPU:0 ({name}), TF32 off"
        self.device = "/CPU:0"
        return "cpu"

    def build(self, variant: Variant, weights: Weights) -> keras.Sequential:
        with tf.device(self.device):
            model = build_alexnet(variant, kernel_initializer="zeros")  # overwritten next
            load_canonical(model, weights)
        return model

    def export_weights(self, model: keras.Sequential) -> Weights:
        return export_canonical(model)

    def layer_outputs(self, model: keras.Sequential, x: np.ndarray) -> dict[str, np.ndarray]:
        outputs: dict[str, np.ndarray] = {}
        with tf.device(self.device):
            # Canonical NCHW in, Keras's NHWC through every layer, called eagerly in eval mode.
            h = tf.convert_to_tensor(np.ascontiguousarray(x.transpose(0, 2, 3, 1),
                                                          dtype=np.float32))
            chw = None  # (C, H, W) while h is a Keras (H*W*C) flatten, until a Dense mixes it
            for layer in model.layers:
                if isinstance(layer, layers.Flatten):
                    rows, cols, channels = h.shape[1:]
                    chw = (channels, rows, cols)
                elif isinstance(layer, layers.Dense):
                    chw = None
                h = layer(h, training=False)
                out = h.numpy()
                if out.ndim == 4:
                    out = out.transpose(0, 3, 1, 2)
                elif chw is not None:  # the flatten and e.g. a dropout after it
                    out = hwc_flat_to_chw(out, chw)
                outputs[layer.name] = np.ascontiguousarray(out, dtype=np.float32)
        return outputs


BACKEND = TensorFlowBackend()

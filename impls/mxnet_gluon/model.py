"""AlexNet in MXNet Gluon, built from the framework-neutral spec.

Read it beside ``impls/pytorch/model.py`` and ``impls/tensorflow/model.py``: the
same walk over the spec's layers, each mapped to a Gluon block. As in the Gluon
model zoo, ``AlexNet`` is a ``HybridBlock`` (call ``hybridize()`` for a static
graph) around a ``HybridSequential``; each child's prefix is its spec name, so
parameters read ``alexnet0_conv1_weight``. Gluon's layouts are the canonical ones
(OIHW kernels, (out, in) dense weights, C*H*W flatten). Every Conv2D and Dense is
given its input size, so parameters are created at ``initialize()``, not deferred.
Three blocks patch MXNet: asymmetric (SAME) conv padding, ceil-mode pool cropping, and
LRN, written out because ``F.LRN``'s gradient is wrong with oneDNN.
"""

from __future__ import annotations

from typing import Iterator

from mxnet.gluon import nn

from common.conventions import lrn_alpha_divided_by_size
from common.shapes import LayerInfo, infer
from common.spec import (
    LRN, AdaptiveAvgPool2d, Conv2d, Dense, Dropout, Flatten, MaxPool2d, ReLU, Softmax, Variant,
)


class AsymmetricPadConv2D(nn.Conv2D):
    """A convolution after explicit zero padding ``(top, bottom, left, right)``:
    ``nn.Conv2D`` pads symmetrically only, TensorFlow's SAME may not; and oneDNN has no
    fast kernel for some padded convolutions (``make_layer``)."""

    def __init__(self, *args, pad: tuple[int, int, int, int], **kwargs) -> None:
        super().__init__(*args, padding=0, **kwargs)
        top, bottom, left, right = pad
        self._pad_width = (0, 0, 0, 0, top, bottom, left, right)

    def hybrid_forward(self, F, x, weight, bias=None):
        return super().hybrid_forward(F, F.pad(x, mode="constant", pad_width=self._pad_width),
                                      weight, bias)


class CroppedMaxPool2D(nn.MaxPool2D):
    """``nn.MaxPool2D`` cropped to ``out_hw``. MXNet's ceil mode ('full' convention)
    keeps a last window that starts in the padding (it outputs -FLT_MAX there);
    PyTorch and the spec drop it, so MXNet's map is one row/column too large."""

    def __init__(self, *args, out_hw: tuple[int, int], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._end = (None, None) + tuple(out_hw)

    def hybrid_forward(self, F, x):
        return F.slice(super().hybrid_forward(F, x), begin=(None, None, 0, 0), end=self._end)


def mxnet_pool_output(size: int, layer: MaxPool2d) -> int:
    """MXNet's pooled length: 'full' (ceil) or 'valid' (floor), with no drop rule."""
    span = size + 2 * layer.padding - layer.kernel
    return 1 + (-(-span // layer.stride) if layer.ceil_mode else span // layer.stride)


class LocalResponseNorm(nn.HybridBlock):
    """LRN across channels, ``x / (k + alpha / size * S) ** beta``, ``S`` the sum of ``x**2``
    over the ``size`` channels centred on each one (zero outside): ``F.LRN``'s formula, and
    like it this takes the alpha that MXNet divides by ``size``.

    Written out as ``torch.nn.functional.local_response_norm`` does it (a sum pool of the
    squares along the channel axis) rather than ``F.LRN``: with oneDNN, MXNet 1.9.1's LRN
    backward reads an output gradient in oneDNN's blocked layout (from a convolution or max
    pool after it) as plain NCHW, a wrong gradient (docs/mxnet-onednn-bug.md). The pool's zero
    padding also takes a window wider than the channels, which ``F.LRN`` rejects."""

    def __init__(self, size: int, alpha: float, beta: float, k: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self._size, self._alpha, self._beta, self._k = size, alpha, beta, k

    def hybrid_forward(self, F, x):
        squares = F.expand_dims(F.square(x), axis=1)  # (N, 1, C, H, W): pool along C
        window_sum = F.Pooling(squares, kernel=(self._size, 1, 1), stride=(1, 1, 1),
                               pad=(self._size // 2, 0, 0), pool_type="sum")
        return x / (self._k + self._alpha / self._size * F.squeeze(window_sum, axis=1)) ** self._beta


class AdaptiveAvgPool2D(nn.HybridBlock):
    """Average pooling to a fixed size with ``F.contrib.AdaptiveAvgPooling2D``, whose bins
    ``[floor(i*H/o), ceil((i+1)*H/o))`` are PyTorch's (checked: 13->6, 7->3, 2->6 equal)."""

    def __init__(self, output_size: tuple[int, int], **kwargs) -> None:
        super().__init__(**kwargs)
        self._output_size = tuple(output_size)

    def hybrid_forward(self, F, x):
        return F.contrib.AdaptiveAvgPooling2D(x, output_size=self._output_size)


class SoftmaxBlock(nn.HybridBlock):
    """Softmax over the class axis (Gluon has no softmax layer)."""

    def hybrid_forward(self, F, x):
        return F.softmax(x, axis=-1)


def make_layer(info: LayerInfo, prefix: str) -> nn.HybridBlock:
    """The Gluon block for one spec layer, with shapes resolved by ``infer``."""
    layer = info.layer
    if isinstance(layer, Conv2d):
        top, bottom, left, right = info.padding
        args = dict(channels=layer.out_channels, kernel_size=layer.kernel, strides=layer.stride,
                    groups=layer.groups, in_channels=info.in_shape[0], prefix=prefix)
        # oneDNN 2.4 (MXNet 1.9.1) has no AVX2 kernel for a padded, strided convolution wider
        # than 7 (torchvision's conv1, 11x11/4 pad 2): its GEMM fallback writes NCHW, which also
        # sends the max pool after it to a slow kernel. With the zero pad an op of its own, the
        # convolution is valid: torchvision's forward pass (batch 32) 590 ms of CPU, not 673.
        gemm_only = layer.kernel > 7 and layer.stride > 1 and any(info.padding)
        if (top, left) == (bottom, right) and not gemm_only:
            return nn.Conv2D(padding=(top, left), **args)
        return AsymmetricPadConv2D(pad=info.padding, **args)
    if isinstance(layer, ReLU):
        return nn.Activation("relu", prefix=prefix)
    if isinstance(layer, LRN):
        return LocalResponseNorm(layer.size, lrn_alpha_divided_by_size(layer), layer.beta, layer.k,
                                 prefix=prefix)
    if isinstance(layer, MaxPool2d):
        args = (layer.kernel, layer.stride, layer.padding)
        kwargs = dict(ceil_mode=layer.ceil_mode, prefix=prefix)
        out_hw = info.out_shape[1:]
        if tuple(mxnet_pool_output(n, layer) for n in info.in_shape[1:]) == out_hw:
            return nn.MaxPool2D(*args, **kwargs)
        return CroppedMaxPool2D(*args, out_hw=out_hw, **kwargs)
    if isinstance(layer, AdaptiveAvgPool2d):
        return AdaptiveAvgPool2D(layer.output_size, prefix=prefix)
    if isinstance(layer, Flatten):
        return nn.Flatten(prefix=prefix)
    if isinstance(layer, Dense):
        return nn.Dense(layer.out_features, in_units=info.in_shape[0], prefix=prefix)
    if isinstance(layer, Dropout):
        return nn.Dropout(layer.p, prefix=prefix)
    if isinstance(layer, Softmax):
        return SoftmaxBlock(prefix=prefix)
    raise TypeError(f"no Gluon block for {type(layer).__name__}")


class AlexNet(nn.HybridBlock):
    """An AlexNet variant: a ``HybridSequential`` of one block per spec layer.

    Args:
        variant: the spec (``common.variants.get_variant``).
    Input shape: ``(N, C, H, W)`` with ``(C, H, W) == variant.input_shape``.
    Output shape: ``(N, variant.num_classes)``.
    """

    def __init__(self, variant: Variant, **kwargs) -> None:
        super().__init__(**kwargs)
        self.variant = variant
        infos = infer(variant)
        self.layer_names = [info.name for info in infos]
        with self.name_scope():
            # prefix "": parameters read alexnet0_conv1_weight, not alexnet0_hybridsequential0_...
            self.layers = nn.HybridSequential(prefix="")
            with self.layers.name_scope():
                for info in infos:
                    self.layers.add(make_layer(info, prefix=f"{info.name}_"))

    def hybrid_forward(self, F, x):
        return self.layers(x)

    def named_layers(self) -> Iterator[tuple[str, nn.HybridBlock]]:
        """(spec name, block) for every layer, in order."""
        return zip(self.layer_names, (self.layers[i] for i in range(len(self.layers))))

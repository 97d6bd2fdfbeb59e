"""AlexNet in MXNet Gluon: a ``HybridBlock`` with one child per spec layer.

The settings below are the package's only ones for MXNet; Python runs this file
before any submodule, so ``model``, ``convert`` and ``backend`` import mxnet after it.

oneDNN stays on, MXNet's default on the CPU and its fast kernels, except for LRN: in
MXNet 1.9.1, LRN's backward reads an output gradient that arrives in oneDNN's blocked
layout (from a convolution or max pool after the LRN) as plain NCHW, so every AlexNet with
LRN got a wrong gradient (docs/mxnet-onednn-bug.md). ``model.LocalResponseNorm`` computes
LRN from a square, a sum pool and a power instead of ``F.LRN``, and ``bench.MXNetBench``
takes dropout-off gradients in train mode (oneDNN's max pooling keeps no argmax after a
predict-mode forward). ``tests/test_frameworks.py`` checks the shipped model's gradients
against float64 and keeps the bug's reproduction, to tell when it is fixed.
``MXNET_MKLDNN_ENABLED=0`` before importing runs MXNet's own kernels instead.
"""

import os

import numpy as np

np.bool = bool  # mxnet 1.9.1 reads np.bool, removed in numpy 1.24: restore it before importing mxnet
# With MXNET_MKLDNN_ENABLED=0 MXNet logs a "storage type fallback" paragraph for every new operator.
os.environ.setdefault("MXNET_STORAGE_FALLBACK_LOG_VERBOSE", "0")

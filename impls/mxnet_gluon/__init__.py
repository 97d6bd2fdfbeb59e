"""AlexNet in MXNet Gluon: a ``HybridBlock`` with one child per spec layer.

The settings below are the package's only ones for MXNet; Python runs this file
before any submodule, so ``model``, ``convert`` and ``backend`` import mxnet after it.

oneDNN is off by default: in MXNet 1.9.1's CPU build, a convolution whose output goes
through ReLU, LRN and max pooling in one autograd graph gets a wrong gradient (relative
error 0.4 to 1.3 on ``paper`` and ``tf-benchmark``), while each op alone is right. The
crosscheck's step check found it; ``tests/test_frameworks.py`` keeps a reproduction, so
the day it passes this can go. Without oneDNN MXNet runs its own kernels, as fast
here for AlexNet. Set ``MXNET_MKLDNN_ENABLED=1`` before importing to have it back.
"""

import os

import numpy as np

np.bool = bool  # mxnet 1.9.1 reads np.bool, removed in numpy 1.24: restore it before importing mxnet
os.environ.setdefault("MXNET_MKLDNN_ENABLED", "0")
# Without oneDNN MXNet logs a "storage type fallback" paragraph for every new operator.
os.environ.setdefault("MXNET_STORAGE_FALLBACK_LOG_VERBOSE", "0")

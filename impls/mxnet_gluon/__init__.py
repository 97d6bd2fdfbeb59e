"""AlexNet in MXNet Gluon: a ``HybridBlock`` with one child per spec layer.

The numpy shim below is the package's only one; Python runs this file before any
submodule, so ``model``, ``convert`` and ``backend`` import mxnet after it.
"""

import numpy as np

np.bool = bool  # mxnet 1.9.1 reads np.bool, removed in numpy 1.24: restore it before importing mxnet

"""Give freed memory back to the system between checks.

A check builds a full-size model (60M parameters, 240 MB in float32) in one framework,
runs it and drops it. Python frees the model only when its reference cycles are collected
(Keras and Gluon models hold some), and glibc keeps the freed pages of its heap for reuse
rather than returning them, so without this the crosscheck's resident memory grew by about
a gigabyte per variant (measured: TensorFlow 1.2 -> 4.8 GB over four full-size variants,
steady at 2.1 GB with it; MXNet 1.1 -> 4.0 GB, steady at 1.6 GB).

A collection scans every object that lives: with three frameworks and two ONNX exporters
imported, ~520K of them, 0.4-0.55 s per ``gc.collect()``. ``freeze`` moves what lives once
the frameworks are loaded out of the collector's sight (``gc.freeze``) and ``thaw`` brings
it back, so a collection between checks sees only what the checks made (~2 ms). Whatever
a library sets up on first use belongs before the freeze: torch.onnx's first export makes
~200K objects, which put each collection back at 0.12-0.15 s (the ONNX witnesses' ``warm_up``).
Freezing again later is no substitute: a reference cycle alive at a freeze and dropped later
(an exporter's cache holding the last model) is not collected until ``thaw`` (measured: +0.28
GB of resident memory per variant).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from functools import lru_cache
from typing import Optional


@lru_cache(maxsize=1)
def _libc() -> Optional[ctypes.CDLL]:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        return libc if libc is not None and hasattr(libc, "malloc_trim") else None
    except OSError:  # not glibc (macOS, musl): nothing to trim, the collection still helps
        return None


def release() -> None:
    """Collect unreachable objects, then return glibc's free heap pages to the system."""
    gc.collect()
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def freeze() -> None:
    """Collect, then hide every surviving object from later collections (``thaw`` undoes it)."""
    gc.collect()
    gc.freeze()


def thaw() -> None:
    """Undo ``freeze``: what was hidden can be collected again once unreachable."""
    gc.unfreeze()

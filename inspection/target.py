"""Find the model ``alexnet inspect --model TARGET`` names, build it, and wrap it for its framework.

TARGET is ``path/to/file.py:factory`` or ``package.module:factory``: a callable returning a
``torch.nn.Module``, a Gluon ``Block`` or a Keras model (or such a model itself). The
framework is read off the model's class, and only that framework's adapter is imported.
Importing the file runs it: it is the user's own code, named by the user.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from common.spec import SpecError
from impls.foreign import ForeignModel, ForeignModelError

#: framework -> (the adapter's module, the top-level packages its model classes come from)
ADAPTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "pytorch": ("impls.pytorch.foreign", ("torch",)),
    "mxnet": ("impls.mxnet_gluon.foreign", ("mxnet",)),
    "tensorflow": ("impls.tensorflow.foreign", ("keras", "tensorflow", "tf_keras")),
}


class TargetError(SpecError):
    """TARGET cannot be loaded or is not a model: a message and exit 2."""


@dataclass
class Target:
    """The factory TARGET names; ``build()`` gives a fresh wrapped model each call (a model
    with deferred shapes is built once per input shape tried)."""

    text: str
    factory: Callable[[], object]
    framework: str

    def build(self) -> ForeignModel:
        return wrap(self.factory(), self.text)


def _numpy_for_mxnet() -> None:
    """MXNet 1.9 reads ``np.bool``, which NumPy 1.24 removed: a user's file that imports mxnet
    would fail before any adapter of ours is imported (impls/mxnet_gluon/__init__.py does the
    same for this package's own MXNet code)."""
    import warnings

    import numpy as np
    with warnings.catch_warnings():  # NumPy warns that np.bool will come back, differently
        warnings.simplefilter("ignore", FutureWarning)
        if not hasattr(np, "bool"):
            np.bool = bool


def _module_from_file(path: Path, text: str):
    if not path.is_file():
        raise TargetError(f"--model {text}: no file {path}")
    name = f"_alexnet_inspect_{abs(hash(path.resolve()))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise TargetError(f"--model {text}: {path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.resolve().parent))  # the file may import its neighbours
    writes_bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # no __pycache__ there
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise TargetError(f"--model {text}: importing {path} raised {type(exc).__name__}: {exc}") from exc
    finally:
        sys.path.remove(str(path.resolve().parent))
        sys.dont_write_bytecode = writes_bytecode
    return module


def resolve(text: str) -> Callable[[], object]:
    """The object TARGET names (``file.py:factory`` or ``module:factory``, dotted attributes
    allowed after the colon)."""
    _numpy_for_mxnet()
    where, colon, attribute = text.rpartition(":")
    if not colon or not where or not attribute:
        raise TargetError(f"--model {text!r}: expected path/to/file.py:factory or "
                          f"package.module:factory")
    if where.endswith(".py") or "/" in where or "\\" in where:
        module = _module_from_file(Path(where), text)
    else:
        try:
            module = importlib.import_module(where)
        except Exception as exc:
            raise TargetError(f"--model {text}: cannot import {where}: {type(exc).__name__}: "
                              f"{exc}") from exc
    obj = module
    for part in attribute.split("."):
        if not hasattr(obj, part):
            known = sorted(n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n)))
            raise TargetError(f"--model {text}: {where} has no {attribute!r}; callables there: "
                              f"{', '.join(known[:12]) or 'none'}")
        obj = getattr(obj, part)
    return obj


def framework_of(obj: object) -> str | None:
    """The framework whose model class ``obj`` is an instance of, by its classes' modules."""
    for cls in type(obj).__mro__:
        top = cls.__module__.split(".")[0]
        for framework, (_, packages) in ADAPTERS.items():
            if top in packages:
                return framework
    return None


def call(factory: Callable[[], object], text: str) -> object:
    """``factory()``, or the object itself where TARGET names a model rather than a factory."""
    if framework_of(factory) is not None:
        return factory
    if not callable(factory):
        raise TargetError(f"--model {text}: {type(factory).__name__} is neither a model nor a "
                          f"callable returning one")
    try:
        return factory()
    except Exception as exc:
        raise TargetError(f"--model {text}: calling it raised {type(exc).__name__}: {exc}") from exc


def wrap(obj: object, text: str) -> ForeignModel:
    """``obj`` wrapped by its framework's adapter."""
    framework = framework_of(obj)
    if framework is None:
        raise TargetError(f"--model {text} returned a {type(obj).__module__}.{type(obj).__name__}, "
                          f"not a torch.nn.Module, a Gluon Block or a Keras model")
    adapter = importlib.import_module(ADAPTERS[framework][0])
    try:
        model = adapter.adapt(obj)
    except ForeignModelError as exc:
        raise TargetError(f"--model {text}: {exc}") from exc
    if model is None:
        raise TargetError(f"--model {text}: a {type(obj).__name__} of {framework} that the "
                          f"inspection cannot take (expected a whole model)")
    return model


def load(text: str) -> Target:
    """TARGET resolved, its model built once to learn the framework."""
    factory = resolve(text)
    first = call(factory, text)
    framework = framework_of(first)
    if framework is None:
        wrap(first, text)  # raises with the message
    once = [first]

    def fresh() -> object:  # the first build is reused once, then every call builds anew
        return once.pop() if once else call(factory, text)

    return Target(text, fresh, framework)

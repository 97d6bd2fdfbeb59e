"""The weight file formats ``alexnet convert`` reads and writes, each through its own
framework's loader, all meeting in canonical weights (``common.weights``).

| format      | file                         | read with                          | names          |
|-------------|------------------------------|------------------------------------|----------------|
| canonical   | ``.safetensors``             | safetensors                        | canonical      |
| pytorch     | ``.pt`` / ``.pth`` state_dict | ``torch.load(weights_only=True)``  | this package's, or torchvision's |
| torchvision | ``.pt`` / ``.pth`` state_dict | ``torch.load(weights_only=True)``  | torchvision's  |
| gluon       | ``.params``                  | ``mx.nd.load``                     | this package's, or the Gluon zoo's |
| gluon-zoo   | ``.params``                  | ``mx.nd.load``                     | the Gluon zoo's |
| keras       | ``.weights.h5``              | ``keras.Model.load_weights``       | this package's |
| caffe       | ``.caffemodel``              | ``common.caffemodel``'s own decoder | the file's, or their order |

No format is unpickled; a .caffemodel is decoded field by field and nothing in it is run.
Reading ``pytorch`` or ``gluon`` also accepts the zoo's names, so a downloaded torchvision
or Gluon zoo file can be named either way; writing uses the format's own names. Caffe's
ImageNet models take BGR input: the format's ``note`` says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from common.caffemodel import BGR_NOTE, read_caffemodel, write_caffemodel
from common.shapes import param_shapes
from common.spec import Variant
from common.weights import (
    Weights, WeightsError, atomic_write_with, load_weights, save_weights, validate,
)
from common.zoo_names import GLUON_ZOO, TORCHVISION, ZooNames, from_gluon_legacy, zoo_for


@dataclass(frozen=True)
class WeightFormat:
    name: str
    framework: Optional[str]  # whose package reads and writes it (None: no framework)
    suffixes: tuple[str, ...]
    description: str
    zoo: Optional[ZooNames] = None  # the names it is written with, if a model zoo's
    note: Optional[str] = None  # said whenever the format is read or written


FORMATS: dict[str, WeightFormat] = {f.name: f for f in (
    WeightFormat("canonical", None, (".safetensors",), "canonical weights (safetensors)"),
    WeightFormat("pytorch", "pytorch", (".pt", ".pth"), "a PyTorch state_dict of this package's model"),
    WeightFormat("torchvision", "pytorch", (".pt", ".pth"),
                 "a PyTorch state_dict with torchvision.models.alexnet's names", TORCHVISION),
    WeightFormat("gluon", "mxnet", (".params",), "a Gluon .params file of this package's model"),
    WeightFormat("gluon-zoo", "mxnet", (".params",),
                 "a Gluon .params file with the model zoo's alexnet names", GLUON_ZOO),
    WeightFormat("keras", "tensorflow", (".weights.h5",), "a Keras .weights.h5 file of this package's model"),
    WeightFormat("caffe", None, (".caffemodel",), "a Caffe .caffemodel (binary NetParameter)",
                 note=BGR_NOTE),
)}


def parse_location(text: str) -> tuple[WeightFormat, Path]:
    """``FORMAT:FILE``, or a bare FILE whose suffix names the format (the zoo formats
    must be named)."""
    head, sep, tail = text.partition(":")
    if sep and head in FORMATS:
        return FORMATS[head], Path(tail)
    path = Path(text)
    for fmt in FORMATS.values():
        if fmt.zoo is None and any(path.name.endswith(s) for s in fmt.suffixes):
            return fmt, path
    raise WeightsError(f"cannot tell the format of {text!r}: write FORMAT:FILE with FORMAT one of "
                       f"{', '.join(FORMATS)} (or use a "
                       f"{', '.join(s for f in FORMATS.values() if f.zoo is None for s in f.suffixes)} name)")


def _named(arrays: Weights, variant: Variant, own: dict[str, str], zoos: tuple[ZooNames, ...],
           legacy_gluon: bool = False) -> Weights:
    """Canonical names for a file's arrays: this package's names (``own``: canonical ->
    file name), or a zoo's when the keys are exactly that zoo's."""
    keys = set(arrays)
    for names in zoos:
        if names.variant == variant.name and names.matches(keys):
            return names.from_zoo(arrays)
    if legacy_gluon and variant.name == GLUON_ZOO.variant:
        renamed = from_gluon_legacy(arrays)
        if renamed is not None:
            return renamed
    canonical = {file_name: key for key, file_name in own.items()}
    return {canonical.get(key, key): value for key, value in arrays.items()}


def read(fmt: WeightFormat, path: Path, variant: Variant) -> Weights:
    """The file's weights as canonical arrays, validated against ``variant``: a
    WeightsError naming the first missing, unexpected or misshapen keys otherwise."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path} does not exist or is not a file")
    if fmt.name == "canonical":
        return load_weights(path, variant)
    if fmt.name == "caffe":
        return read_caffemodel(path, variant)
    if fmt.zoo is not None:
        zoo_for(fmt.zoo.zoo, variant.name)
    try:
        if fmt.framework == "pytorch":
            from impls.pytorch.convert import read_state_dict
            arrays = read_state_dict(path)
            if fmt.zoo is None:
                arrays = _named(arrays, variant, {}, (TORCHVISION,))
            else:
                arrays = fmt.zoo.from_zoo(arrays)
        elif fmt.framework == "mxnet":
            from impls.mxnet_gluon.convert import read_params, structural_names
            arrays = read_params(path)
            if fmt.zoo is None:
                arrays = _named(arrays, variant, structural_names(variant), (GLUON_ZOO,), True)
            else:
                arrays = from_gluon_legacy(arrays) or fmt.zoo.from_zoo(arrays)
        else:
            from impls.tensorflow.convert import read_weights_h5
            arrays = read_weights_h5(path, variant)
    except WeightsError:
        raise
    except Exception as exc:  # each framework raises its own types for a bad file
        lines = [line for line in str(exc).strip().splitlines() if line.strip()]
        # MXNet puts its C++ stack first and the reason last
        reason = (lines[-1] if lines[0].startswith("Traceback") else lines[0]) if lines else type(exc).__name__
        raise WeightsError(f"{path} is not {fmt.description} that fits variant {variant.name!r}: "
                           f"{reason[:400]}") from None
    validate(variant, arrays)
    return {key: arrays[key] for key in param_shapes(variant)}  # the spec's order


def write(fmt: WeightFormat, path: Path, variant: Variant, weights: Weights, *,
          overwrite: bool = False) -> None:
    """Write canonical ``weights`` in ``fmt``, atomically (a temporary file beside ``path``,
    then a rename); never over an existing file unless ``overwrite``."""
    validate(variant, weights)
    if fmt.name == "canonical":
        save_weights(path, variant, weights, overwrite=overwrite)
        return
    if fmt.name == "caffe":
        write_caffemodel(path, variant, weights, overwrite=overwrite)
        return
    if fmt.zoo is not None:
        zoo_for(fmt.zoo.zoo, variant.name)
    if fmt.name == "keras" and not Path(path).name.endswith(".weights.h5"):
        raise WeightsError(f"{path}: Keras writes weights only to a file named *.weights.h5")
    if fmt.framework == "pytorch":
        from impls.pytorch.convert import write_state_dict
        arrays = fmt.zoo.to_zoo(weights) if fmt.zoo else weights
        atomic_write_with(path, lambda tmp: write_state_dict(tmp, arrays), overwrite=overwrite)
    elif fmt.framework == "mxnet":
        from impls.mxnet_gluon.convert import structural_names, write_params
        if fmt.zoo:
            arrays = fmt.zoo.to_zoo(weights)
        else:
            names = structural_names(variant)
            arrays = {names[key]: value for key, value in weights.items()}
        atomic_write_with(path, lambda tmp: write_params(tmp, arrays), overwrite=overwrite)
    else:
        from impls.tensorflow.convert import write_weights_h5
        atomic_write_with(path, lambda tmp: write_weights_h5(tmp, variant, weights), overwrite=overwrite)

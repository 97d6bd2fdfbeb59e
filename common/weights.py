"""Canonical weights: one framework-neutral layout, a seeded initializer, safe files.

Layout: ``<layer>.weight`` is OIHW for a convolution and ``(out, in)`` for a
dense layer, whose inputs after a flatten are in C*H*W order; ``<layer>.bias``
is ``(out,)``. All float32. Files are safetensors (no pickle anywhere).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Callable

import numpy as np

from common.shapes import param_shapes
from common.spec import SpecError, Variant

Weights = dict[str, np.ndarray]


class WeightsError(SpecError):
    """Weights that do not fit a variant, or a file that is not a weights file."""


#: The output layer's weights are this much smaller than He-normal (seed 004 too starts
#: its last layer small): logits of pixel-scale inputs are then O(1), not O(100), and
#: the softmax is not saturated; a saturated softmax leaves float32 gradients as noise.
OUTPUT_LAYER_GAIN = 0.01


def init_weights(variant: Variant, seed: int = 0) -> Weights:
    """Seeded He-normal weights (std sqrt(2 / fan_in)) so that, through ReLUs, every
    layer's output keeps the scale of its input; the output layer scaled by
    OUTPUT_LAYER_GAIN; small random biases so that no ReLU is all on or all off.
    Float32, canonical layout."""
    rng = np.random.default_rng(seed)
    weights: Weights = {}
    shapes = param_shapes(variant)
    output_weight = [k for k in shapes if k.endswith(".weight")][-1]
    for key, shape in shapes.items():
        if key.endswith(".weight"):
            fan_in = int(np.prod(shape[1:]))
            gain = OUTPUT_LAYER_GAIN if key == output_weight else 1.0
            # in place: (value * std) * gain as before, bit for bit, without two float64
            # temporaries of fc6's size (300 MB each, most of the time in page faults)
            value = rng.standard_normal(shape)
            value *= np.sqrt(2.0 / fan_in)
            value *= gain
        else:
            value = rng.standard_normal(shape)
            value *= 0.1
        weights[key] = value.astype(np.float32)
    return weights


def validate(variant: Variant, weights: Weights) -> None:
    """Raise WeightsError naming the first problems: missing or unexpected keys,
    wrong shapes, non-finite values."""
    expected = param_shapes(variant)
    problems = [f"missing key {k!r} (shape {expected[k]})" for k in expected if k not in weights]
    problems += [f"unexpected key {k!r}" for k in weights if k not in expected]
    for key, shape in expected.items():
        if key in weights:
            value = np.asarray(weights[key])
            if value.shape != shape:
                problems.append(f"key {key!r} has shape {value.shape}, expected {shape}")
            elif not np.issubdtype(value.dtype, np.floating):
                problems.append(f"key {key!r} has dtype {value.dtype}, expected a float type")
            elif not np.all(np.isfinite(value)):
                problems.append(f"key {key!r} holds NaN or Inf values")
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        misfit = any("key" in p and ("shape" in p or p.startswith(("missing", "unexpected")))
                     for p in problems)
        fix = ("are they for another variant, input size or number of classes? Use the variant "
               "they were made for" if misfit else
               "these are not usable weights (a diverged run leaves NaN): use an earlier "
               "checkpoint, or write the file again")
        raise WeightsError(f"weights do not fit variant {variant.name!r} "
                           f"(input {'x'.join(map(str, variant.input_shape))}): {shown}; {fix}")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes, *, overwrite: bool = False) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place.
    Refuses to replace an existing file unless ``overwrite``."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass --force to overwrite it")
    # the name is chosen before the file exists (not mkstemp's create-then-return): a
    # Ctrl-C that lands as the file is created still finds it to remove
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # 0600 while it was written; the umask's mode now
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_with(path: Path, write: Callable[[Path], None], *, overwrite: bool = False) -> None:
    """Let ``write`` write a temporary file beside ``path`` (its name ends like ``path``'s,
    for writers that insist on a suffix), then rename it into place."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass --force to overwrite it")
    tmp = path.parent / f".tmp-{secrets.token_hex(4)}-{path.name}"
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_weights(path: Path, variant: Variant, weights: Weights, *, overwrite: bool = False) -> None:
    """Validate, then write canonical weights as safetensors, atomically."""
    from safetensors.numpy import save

    validate(variant, weights)
    data = save({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()},
                metadata={"variant": variant.name, "layout": "canonical-oihw-out_in-chw"})
    atomic_write_bytes(Path(path), data, overwrite=overwrite)


def load_weights(path: Path, variant: Variant) -> Weights:
    """Read a canonical safetensors file (never unpickles) and validate it against the variant."""
    from safetensors.numpy import load

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist or is not a file")
    try:
        weights = load(path.read_bytes())
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise WeightsError(f"{path} is not a valid safetensors file ({exc}); canonical weights "
                           f"are written by 'alexnet' or safetensors.numpy.save_file") from None
    validate(variant, weights)
    return {k: v.astype(np.float32, copy=False) for k, v in weights.items()}

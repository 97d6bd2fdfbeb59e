"""``alexnet inspect --export FILE``: an inspected model's own weights as canonical safetensors.

The weights are those ``--own-weights`` read out, with every layout, block-diagonal group
and flatten permutation undone, so ``alexnet convert`` takes them to any framework. Like
``alexnet convert``'s output, the file is written beside the target, read back and verified
(the arrays identical; this package's own model of the inspected framework computes the
float64 reference with them) before it is renamed into place.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from common.spec import SpecError
from common.variants import get_variant
from common.weights import WeightsError, load_weights, save_weights, validate
from crosscheck.conversion import ConversionCheck, verify_conversion
from impls.base import is_installed
from inspection.run import Inspection


def registered_variant(r: Inspection):
    """The registered variant (with the model's classes, channels and input) the weights fit;
    WeightsError where the model's numbers are its own (no registered variant holds them)."""
    c, h, w = r.variant.input_shape
    variant = get_variant(r.candidate.variant.name, num_classes=r.variant.num_classes,
                          in_channels=c, input_size=(h, w))
    try:
        validate(variant, r.weights)
    except SpecError as exc:
        changed = [d.text for d in r.candidate.changes() if d.cost >= 1.0] + r.notes
        raise WeightsError(f"the model's weights fit no registered variant, so there is nothing "
                           f"alexnet convert could read ({'; '.join(changed) or exc}); nothing "
                           f"was exported") from None
    return variant


def export(r: Inspection, path: Path, *, overwrite: bool) -> ConversionCheck:
    """Write ``r.weights`` to ``path`` (canonical safetensors), verified; nothing is left
    behind when verification fails."""
    variant = registered_variant(r)
    staging = path.parent / f".inspect-{secrets.token_hex(4)}-{path.name}"
    try:
        save_weights(staging, variant, r.weights)
        reread = load_weights(staging, variant)
        framework = r.framework if is_installed(r.framework) else None
        check = verify_conversion(variant, r.weights, reread, None, framework)
        if check.passed:
            if path.exists() and not overwrite:
                raise FileExistsError(f"{path} exists; pass --force to overwrite it")
            os.replace(staging, path)
        return check
    finally:
        staging.unlink(missing_ok=True)

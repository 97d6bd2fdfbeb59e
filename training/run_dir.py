"""The output directory of a training run: its files, writing an epoch, resuming.

After epoch N, in this order, each file written atomically (temporary file, rename):

- ``weights-epochN.safetensors``: canonical weights, loadable by every framework;
- ``native-epochN.pt|.params|.weights.h5``: the framework's own weights file;
- ``state-epochN.safetensors``: the optimizer's state (momenta, moments, step counts);
- ``metrics.json``, ``metrics.csv``, ``curves.png``.

``metrics.json`` is the commit: ``--resume`` continues after the last epoch it lists.
A run killed mid-epoch leaves at most files of that epoch, which the resumed run
writes again. Only the newest optimizer state is kept (it is as large as the weights,
twice that for Adam).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from common.spec import Variant
from common.weights import Weights, atomic_write_bytes, atomic_write_with, load_weights, save_weights
from training.metrics import EpochMetrics, write_curves, write_metrics

RUN_FILES = ("metrics.json", "metrics.csv", "curves.png")
CHECKPOINT_PATTERN = re.compile(r"(weights|native|state)-epoch(\d+)\.")
#: Settings a resumed run must share with the run it continues (only --epochs may change).
RESUME_KEYS = ("framework", "variant", "dataset", "batch_size", "optimizer", "lr", "seed",
               "augment", "subset", "workers")
#: the value of a setting a run's metrics.json may not record: single-process runs, and
#: every run before ``--workers``, have no "workers"
RESUME_DEFAULTS: dict[str, Any] = {"workers": 1}


class RunDirError(ValueError):
    """The output directory cannot be used (not writable, nothing to resume, another run)."""


@dataclass
class Resumed:
    history: list[EpochMetrics]
    weights: Weights
    optimizer_state: dict[str, np.ndarray]


def _paths(out: Path, epoch: int, native_suffix: str) -> tuple[Path, Path, Path]:
    return (out / f"weights-epoch{epoch}.safetensors", out / f"native-epoch{epoch}{native_suffix}",
            out / f"state-epoch{epoch}.safetensors")


def prepare(out: Path, *, force: bool, resume: bool) -> None:
    """Create ``out`` and make sure it can be written, before any training work.

    FileExistsError if it already holds a run and neither ``force`` nor ``resume``."""
    if resume and not out.is_dir():  # nothing to continue: create nothing either
        raise RunDirError(f"nothing to resume: {out} is not a directory; start the run "
                          f"without --resume, or pass the --out of the run to continue")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise RunDirError(f"cannot write to output directory {out}: {exc.strerror or exc}; "
                          f"choose another --out") from None
    if resume or force:
        return
    existing = sorted(p.name for p in out.iterdir()
                      if p.name in RUN_FILES or CHECKPOINT_PATTERN.match(p.name))
    if existing:
        shown = ", ".join(existing[:4]) + (", ..." if len(existing) > 4 else "")
        raise FileExistsError(f"{out} already holds a run ({shown}); pass --resume to continue "
                              f"it or --force to overwrite it")


def write_epoch(out: Path, epoch: int, backend: Any, model: Any, optimizer: Any, variant: Variant,
                history: list[EpochMetrics], info: dict[str, Any]) -> None:
    """Checkpoint epoch ``epoch``, then commit it to ``metrics.json``."""
    from safetensors.numpy import save

    weights_path, native_path, state_path = _paths(out, epoch, backend.native_suffix)
    save_weights(weights_path, variant, backend.export_weights(model), overwrite=True)
    atomic_write_with(native_path, lambda tmp: backend.save_native(model, tmp), overwrite=True)
    state = {k: np.array(v, order="C") for k, v in backend.optimizer_state(optimizer).items()}  # 0-d stays 0-d
    atomic_write_bytes(state_path, save(state, metadata={"epoch": str(epoch),
                                                         "framework": backend.name}), overwrite=True)
    write_metrics(out, history, info)  # the commit
    write_curves(out / "curves.png", history, f"{info['framework']} {info['variant']} on "
                                              f"{info['dataset']}")
    for older in out.glob("state-epoch*.safetensors"):
        match = CHECKPOINT_PATTERN.match(older.name)
        if match and int(match.group(2)) < epoch:
            older.unlink(missing_ok=True)


def load_last(out: Path, info: dict[str, Any], variant: Variant, native_suffix: str) -> Resumed:
    """The last committed epoch of the run in ``out``: its history, weights, optimizer state."""
    from safetensors.numpy import load

    history = committed(out, info)
    weights_path, _, state_path = _paths(out, history[-1].epoch, native_suffix)
    try:
        state = load(state_path.read_bytes())
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise RunDirError(f"cannot resume: {state_path} is damaged ({exc})") from None
    return Resumed(history, load_weights(weights_path, variant), state)


def _setting(record: dict[str, Any], key: str) -> Any:
    """``key``'s value in a run's settings, or what a run that did not record it had."""
    return record.get(key, RESUME_DEFAULTS.get(key))


def committed(out: Path, info: dict[str, Any]) -> list[EpochMetrics]:
    """The epochs committed in ``out`` by a run of the same settings as ``info`` (at least
    ``RESUME_KEYS``), whose last optimizer state is there: RunDirError if there are none.
    Reads no checkpoint (``alexnet train --workers`` checks this before it launches)."""
    record = out / "metrics.json"
    if not record.is_file():
        raise RunDirError(f"nothing to resume in {out}: it has no metrics.json; "
                          f"start the run without --resume")
    try:
        saved = json.loads(record.read_text())
        config, history = saved["config"], [EpochMetrics.from_dict(e) for e in saved["epochs"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise RunDirError(f"{record} is not a metrics file this package wrote ({exc})") from None
    differ = [f"{key} {_setting(config, key)!r} (now {_setting(info, key)!r})"
              for key in RESUME_KEYS if _setting(config, key) != _setting(info, key)]
    if differ:
        raise RunDirError(f"cannot resume the run in {out} with other settings: it was trained with "
                          f"{', '.join(differ)}")
    if not history:
        raise RunDirError(f"nothing to resume in {out}: no epoch was completed")
    state_path = _paths(out, history[-1].epoch, "")[2]  # the native suffix names no state file
    if not state_path.is_file():
        raise RunDirError(f"cannot resume: {state_path} (the optimizer state of epoch "
                          f"{history[-1].epoch}) is missing")
    return history

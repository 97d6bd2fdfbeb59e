"""The worker side of the crosscheck's data-parallel jobs: the distributed check's steps
(``crosscheck/distributed.py``) and the 2-worker training parity (``crosscheck/parity.py``).

Every worker builds the variant from the same canonical weights, takes its shard of the
same batch, and runs ``steps`` data-parallel steps of each optimizer setting with
dropout off, the labels moving on by a class a step (as the step check's probe). After
every step, each worker leaves its replica's weights and the averaged gradient it applied
(the framework's native layout) where the check reads them. After steps 1 and ``steps``,
the workers that write (rank 0: ``distributed.shard.writes``) write the run's checkpoint;
each checkpoint write is recorded in ``writers/rank<r>``, so a write from another rank is
seen.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from common.optim import OptimizerSpec
from common.spec import Dropout, Variant
from common.variants import get_variant
from common.weights import Weights, atomic_write_with
from crosscheck.narrow import narrow
from distributed import shard as sharding


def job_variant(spec: dict) -> Variant:
    """The variant a job names: registry name, classes, input, narrowed or not."""
    variant = get_variant(spec["name"], num_classes=spec["num_classes"],
                          in_channels=spec["input_shape"][0], input_size=tuple(spec["input_shape"][1:]))
    return narrow(variant) if spec["narrow"] else variant


def variant_spec(variant: Variant, narrowed: bool) -> dict:
    """How a job names ``variant`` (``job_variant``'s input); ``narrowed``: it is the
    registry's variant narrowed (``crosscheck/narrow.py``)."""
    return {"name": variant.name, "num_classes": variant.num_classes,
            "input_shape": list(variant.input_shape), "narrow": narrowed}


def save_job_arrays(path: Path, weights: Weights, **arrays: np.ndarray) -> None:
    """A job's canonical ``weights`` (float32) and other ``arrays``, C order: safetensors
    writes a buffer as if it were C order (a transposed batch from np.stack came back
    scrambled)."""
    from safetensors.numpy import save_file

    save_file({**{f"w/{k}": np.ascontiguousarray(w, dtype=np.float32) for k, w in weights.items()},
               **{k: np.ascontiguousarray(a) for k, a in arrays.items()}}, str(path))


def load_job_arrays(path: str) -> tuple[Weights, dict[str, np.ndarray]]:
    """(weights, the other arrays) that ``save_job_arrays`` wrote."""
    from safetensors.numpy import load_file

    arrays = load_file(path)
    return _saved_under(arrays, "w/"), {k: v for k, v in arrays.items() if not k.startswith("w/")}


def _saved_under(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The arrays a job file or a replica holds under ``prefix`` (``w/`` weights, ``g/``
    gradients), by their own names."""
    return {k.removeprefix(prefix): v for k, v in arrays.items() if k.startswith(prefix)}


def _dropout_off(variant: Variant) -> dict[str, float]:
    """Each Dropout replaced by a factor of one: train mode, nothing dropped."""
    return {layer.name: 1.0 for layer in variant.layers if isinstance(layer, Dropout)}


def replica_path(out: Path, setting: str, step: int, rank: int) -> Path:
    """Where rank ``rank`` leaves its replica's weights (``w/``) and the gradient it applied
    (``g/``) after ``step``: each rank its own file."""
    return out / "replicas" / f"{setting}-step{step}-rank{rank}.safetensors"


def load_replica(out: Path, setting: str, step: int, rank: int) -> tuple[Weights, Weights]:
    """(weights, gradient) rank ``rank`` left after ``step`` (``replica_path``); empty
    where it left none."""
    from safetensors.numpy import load_file

    path = replica_path(out, setting, step, rank)
    arrays = load_file(str(path)) if path.exists() else {}
    return _saved_under(arrays, "w/"), _saved_under(arrays, "g/")


def _save(path: Path, weights: Weights) -> None:
    from safetensors.numpy import save_file

    path.parent.mkdir(exist_ok=True)
    atomic_write_with(path, lambda tmp: save_file(
        {k: np.ascontiguousarray(v) for k, v in weights.items()}, str(tmp)), overwrite=True)


def save_checkpoint(out: Path, rank: int, setting: str, step: int, weights: Weights) -> None:
    """The run's checkpoint after ``step``, written by the ranks that write (rank 0); each
    write is recorded in ``writers/rank<r>``."""
    if not sharding.writes(rank):
        return
    (out / "writers").mkdir(exist_ok=True)
    with open(out / "writers" / f"rank{rank}", "a") as journal:
        journal.write(f"{setting} step {step} pid {os.getpid()}\n")
    _save(out / "checkpoints" / f"{setting}-step{step}.safetensors", weights)


def run_steps(engine, job: dict) -> None:
    variant = job_variant(job["variant"])
    weights, arrays = load_job_arrays(job["arrays"])
    x, labels, steps, out = arrays["x"], arrays["labels"], job["steps"], Path(job["out"])
    off = _dropout_off(variant)
    local_x = sharding.shard(x, engine.rank, engine.size)
    engine.report = True
    for name, fields in job["settings"].items():
        model = engine.build(variant, weights)
        optimizer = engine.make_optimizer(model, OptimizerSpec(**fields))
        for step in range(1, steps + 1):
            step_labels = (labels + step - 1) % variant.num_classes
            engine.fit_step(model, optimizer, local_x,
                            sharding.shard(step_labels, engine.rank, engine.size), off)
            # every step's replica and gradient: the check's float64 update takes each
            _save(replica_path(out, name, step, engine.rank),
                  {**{f"w/{k}": w for k, w in engine.backend.native_weights(model).items()},
                   **{f"g/{k}": g for k, g in engine.gradients(model, optimizer).items()}})
            if step in (1, steps):
                save_checkpoint(out, engine.rank, name, step, engine.backend.export_weights(model))


def run_parity(engine, job: dict) -> None:
    """The training-parity run on this worker's shard of each batch, dropout off; rank 0
    writes the loss of the whole batch before each step (the mean of the shards' means,
    summed over the workers) to ``out/losses.json``."""
    import json

    variant = job_variant(job["variant"])
    weights, arrays = load_job_arrays(job["arrays"])
    off = _dropout_off(variant)
    model = engine.build(variant, weights)
    optimizer = engine.make_optimizer(model, OptimizerSpec(**job["spec"]))
    losses = []
    for x, labels in zip(arrays["x"], arrays["labels"]):
        loss, _ = engine.fit_step(model, optimizer, sharding.shard(x, engine.rank, engine.size),
                                  sharding.shard(labels, engine.rank, engine.size), off)
        losses.append(engine.sum_all([loss])[0] / engine.size)
    if sharding.writes(engine.rank):
        atomic_write_with(Path(job["out"]) / "losses.json",
                          lambda tmp: tmp.write_text(json.dumps(losses)), overwrite=True)

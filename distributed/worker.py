"""One worker process of a data-parallel run: ``python -m distributed.worker JOB.json``.

``distributed/launch.py`` starts one per rank with the engine's environment. The job
says what to run: ``"train"`` (``alexnet train --workers``: ``training.loop.train`` with
this worker's engine), ``"steps"`` or ``"parity"`` (the crosscheck's distributed check
and its 2-worker training parity, ``distributed/steps.py``). A worker that fails prints
the error and exits 1, which stops the whole run.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path


def main(argv: list[str]) -> int:
    job = json.loads(Path(argv[0]).read_text())
    from impls.parallel import load_engine

    engine = load_engine(job["framework"], job.get("device", "cpu"),
                         exact=job["kind"] in ("steps", "parity"))
    try:
        if job["kind"] == "steps":
            from distributed.steps import run_steps

            run_steps(engine, job)
        elif job["kind"] == "parity":
            from distributed.steps import run_parity

            run_parity(engine, job)
        elif job["kind"] == "train":
            from training.loop import TrainConfig, printer, train

            config = TrainConfig(**{**job["config"], **{k: Path(v) for k, v in job["paths"].items()}})
            train(config, say=printer(job.get("quiet", False)), engine=engine)  # rank 0 alone says
        else:
            raise ValueError(f"unknown job kind {job['kind']!r}")
    finally:
        engine.close()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except Exception as exc:  # noqa: BLE001 (the launcher shows it and stops the run)
        if "--debug" in sys.argv or __import__("os").environ.get("ALEXNET_DEBUG"):
            traceback.print_exc()
        print(f"worker error: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)

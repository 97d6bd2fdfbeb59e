"""One worker process of a data-parallel run: ``python -m distributed.worker JOB.json``.

``distributed/launch.py`` starts one per rank with the engine's environment. The job
says what to run: ``"train"`` (``alexnet train --workers``: ``training.loop.train`` with
this worker's engine), ``"steps"`` or ``"parity"`` (the crosscheck's distributed check
and its 2-worker training parity, ``distributed/steps.py``). A worker that fails prints
the error and exits 1, which stops the whole run.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path


#: frameworks whose finished workers exit without the interpreter's teardown (see the end).
#: Not MXNet: ps-lite leaves the group in the KVStore's destructor, at teardown, and MXNet's
#: scheduler and server wait for that (a worker that skipped it hung the run).
HARD_EXIT = {"pytorch", "tensorflow"}


def read_job(argv: list[str]) -> dict:
    """The job file named on the command line."""
    return json.loads(Path(argv[0]).read_text())


def main(job: dict) -> int:
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
    job: dict = {}
    try:
        job = read_job(sys.argv[1:])
        code = main(job)
    except Exception as exc:  # noqa: BLE001 (the launcher shows it and stops the run)
        if "--debug" in sys.argv or os.environ.get("ALEXNET_DEBUG"):
            traceback.print_exc()
        print(f"worker error: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        code = 1
    # Everything is written (atomically) and the group is left: exit without the
    # interpreter's teardown, where a framework's native threads still alive at exit once
    # aborted a finished PyTorch worker ("terminate called without an active exception",
    # exit -6, in CI under load) and failed the run it had completed.
    sys.stdout.flush()
    sys.stderr.flush()
    if job.get("framework") in HARD_EXIT:  # no job read: the ordinary exit
        os._exit(code)
    sys.exit(code)

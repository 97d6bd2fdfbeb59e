"""Start the processes of a data-parallel run on this machine, as each engine expects them.

Every worker runs ``python -m distributed.worker JOB`` with the environment its engine
reads, on loopback, with free ports:

- PyTorch: MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE, LOCAL_RANK (what ``torchrun`` sets);
- TensorFlow: TF_CONFIG, every worker's 127.0.0.1:port and this worker's index;
- MXNet: DMLC_ROLE, DMLC_PS_ROOT_URI/PORT, DMLC_NUM_WORKER/SERVER, and beside the workers
  the scheduler and one server, each a process that imports MXNet and serves until the
  workers leave (what MXNet's ``tools/launch.py`` starts).

Rank 0's output goes to this terminal; the other workers' output is kept in files and
shown only if one of them fails. A failed or hung process stops the whole run.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

#: how long a run may wait for its processes, unless told (the crosscheck's jobs take ~30 s)
DEFAULT_TIMEOUT = 600.0


class LaunchError(RuntimeError):
    """A worker (or MXNet's scheduler or server) failed or did not finish in time."""


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on loopback now (the OS picks them)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def worker_env(framework: str, rank: int, workers: int, ports: list[int]) -> dict[str, str]:
    """The variables ``framework``'s engine reads in worker ``rank`` of ``workers``; ``ports``:
    ``workers + 1`` free ports."""
    if framework == "pytorch":
        return {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(ports[0]), "RANK": str(rank),
                "WORLD_SIZE": str(workers), "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": str(workers)}
    if framework == "tensorflow":
        return {"TF_CONFIG": json.dumps({
            "cluster": {"worker": [f"127.0.0.1:{port}" for port in ports[:workers]]},
            "task": {"type": "worker", "index": rank}})}
    if framework == "mxnet":
        # ps-lite numbers the workers by their listening ports, not by their start: each
        # worker listens on the rank-th of the ascending ports, so that this rank (whose
        # output is shown) is the engine's rank too
        return {**mxnet_env(workers, ports[0]), "DMLC_ROLE": "worker",
                "PORT": str(sorted(ports[1:workers + 1])[rank])}
    raise ValueError(f"no distributed engine for {framework!r}")


def mxnet_env(workers: int, port: int) -> dict[str, str]:
    """ps-lite's variables common to MXNet's scheduler, server and workers."""
    return {"DMLC_PS_ROOT_URI": "127.0.0.1", "DMLC_PS_ROOT_PORT": str(port),
            "DMLC_NUM_SERVER": "1", "DMLC_NUM_WORKER": str(workers), "PS_VERBOSE": "0"}


@dataclass
class _Process:
    label: str
    popen: subprocess.Popen
    log: Optional[Path]


def launch(framework: str, workers: int, job: dict, *, timeout: float = DEFAULT_TIMEOUT,
           echo_rank0: bool = True, extra_env: Optional[dict[str, str]] = None) -> None:
    """Run ``job`` (``distributed.worker``'s JSON job) in ``workers`` processes of
    ``framework``'s engine; return when all have finished. LaunchError, with the failed
    process's last lines, if one fails or the run takes longer than ``timeout`` seconds.
    ``echo_rank0``: rank 0's output on this terminal (else kept like the others')."""
    with tempfile.TemporaryDirectory(prefix="alexnet-launch-") as tmp:
        job_path = Path(tmp) / "job.json"
        job_path.write_text(json.dumps(job))
        ports = free_ports(workers + 1)  # MXNet: the scheduler's and each worker's
        base = {**os.environ, **(extra_env or {}), "PYTHONUNBUFFERED": "1",
                # each worker gets its share of the cores: N processes of all-core thread
                # pools on the same cores slow each other down many times over
                **({} if "OMP_NUM_THREADS" in os.environ
                   else {"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // workers))})}
        processes: list[_Process] = []

        def start(label: str, argv: list[str], env: dict[str, str], echo: bool) -> None:
            log = None if echo else Path(tmp) / f"{label.replace(' ', '-')}.log"
            out = None if echo else open(log, "wb")
            try:
                processes.append(_Process(label, subprocess.Popen(
                    argv, env={**base, **env}, stdout=out, stderr=subprocess.STDOUT if out else None,
                    stdin=subprocess.DEVNULL), log))
            finally:
                if out is not None:
                    out.close()

        try:
            if framework == "mxnet":  # ps-lite's scheduler and server: MXNet serves on import
                for role in ("scheduler", "server"):  # (the package's settings first)
                    start(f"mxnet {role}", [sys.executable, "-c", "import impls.mxnet_gluon, mxnet"],
                          {**mxnet_env(workers, ports[0]), "DMLC_ROLE": role}, False)
            for rank in range(workers):
                start(f"rank {rank}", [sys.executable, "-m", "distributed.worker", str(job_path)],
                      worker_env(framework, rank, workers, ports), echo_rank0 and rank == 0)
            _wait(processes, timeout)
        finally:
            for p in processes:
                if p.popen.poll() is None:
                    p.popen.kill()
                    p.popen.wait()


def _wait(processes: list[_Process], timeout: float) -> None:
    """Until every process has exited 0; LaunchError at the first failure or at ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        running = [p for p in processes if p.popen.poll() is None]
        failed = next((p for p in processes if p.popen.returncode not in (None, 0)), None)
        if failed is not None:
            raise LaunchError(f"{failed.label} exited with {failed.popen.returncode}"
                              + _tail(failed, processes))
        if not running:
            return
        if time.monotonic() > deadline:
            raise LaunchError(f"{', '.join(p.label for p in running)} still running after "
                              f"{timeout:.0f} s; stopped" + _tail(running[0], processes))
        time.sleep(0.05)


def _tail(process: _Process, processes: list[_Process], lines: int = 15) -> str:
    """The last ``lines`` lines of ``process``'s kept output (or of the first kept one)."""
    kept = [p for p in [process, *processes] if p.log is not None and p.log.exists()]
    if not kept:
        return ""
    text = kept[0].log.read_text(errors="replace").strip().splitlines()[-lines:]
    return f"; the last lines of {kept[0].label}:\n  " + "\n  ".join(text) if text else ""

"""One framework's benchmark, run in a process of its own by ``benchmark.run``.

A process per framework keeps them apart: each gets the machine's threads (importing
MXNet resets PyTorch's), its own peak memory figure, and its own GPU settings read at
CUDA start (MXNet's TF32 switch). Usage: ``python -m benchmark.worker CONFIG_JSON OUT_FILE
FRAMEWORK [plain]``; the result is written as JSON to OUT_FILE, also when the framework
fails. ``plain`` times the framework's plain hand-written model instead of the spec's.
"""

from __future__ import annotations

import json
import resource
import sys
import traceback
from pathlib import Path

import numpy as np

from benchmark.config import MATMUL_SIZE, BenchConfig
from benchmark.timing import time_calls
from common.inputs import normal_batch
from common.variants import get_variant
from common.weights import init_weights
from impls.base import FrameworkUnavailable, load_backend, select_device


def peak_rss() -> int:
    """The process's peak resident memory so far, in bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def bench_device_label(description: str, precision: str) -> str:
    """``select_device``'s description without the crosscheck's numerics settings (TF32 off,
    deterministic cuDNN), which the benchmark replaces with ``precision``'s and its fast paths;
    the GPU run of 2026-11-26 printed "TF32 off" for a --precision tf32 run."""
    device = description.split(", ")[0]
    return device if device == "cpu" else f"{device}, TF32 {'on' if precision == 'tf32' else 'off'}"


def bench_framework(framework: str, config: BenchConfig, plain: bool = False) -> dict:
    """Time every mode of ``config`` in ``framework``; the result as a JSON-ready dict."""
    result: dict = {"framework": framework, "status": "ok", "modes": {}}
    try:
        backend = load_backend(framework)
        result["version"] = backend.version()
        result["device"] = bench_device_label(select_device(backend, config.device), config.precision)
        on_gpu = not result["device"].startswith("cpu")
        variant = get_variant(config.variant)
        x = normal_batch(variant, config.batch_size, config.seed)
        labels = np.random.default_rng([config.seed, 5]).integers(0, variant.num_classes,
                                                                  config.batch_size)
        if plain:
            session = backend.plain_bench_session(variant, x, labels, config.fast, config.precision)
        else:
            session = backend.bench_session(variant, init_weights(variant, config.seed), x, labels,
                                            config.fast, config.precision)
        result["fast_paths"] = session.applied
        session.peak_memory()  # start each mode's device peak afresh
        for mode in config.modes:
            call = session.forward if mode == "forward" else session.train
            times = time_calls(call, session.sync, config.warmup, config.iters,
                               f"{framework} {mode}", config.progress)
            memory, how = session.peak_memory()
            if memory is None:
                memory, how = peak_rss(), "peak RSS of the process so far (framework included)"
            result["modes"][mode] = {"times": times, "memory": memory, "memory_how": how}
        n = config.matmul_size or MATMUL_SIZE["gpu" if on_gpu else "cpu"]
        times = time_calls(session.matmul(n), session.sync, 3, 10, f"{framework} matmul",
                           config.progress)
        result["matmul"] = {"n": n, "times": times}
    except FrameworkUnavailable as exc:
        result.update(status="skipped", message=str(exc))
    except Exception as exc:  # reported in the table; the other frameworks still run
        result.update(status="error", message=f"{type(exc).__name__}: {exc}",
                      traceback=traceback.format_exc())
    return result


def main(argv: list[str]) -> int:
    config_json, out_file, framework, *plain = argv
    result = bench_framework(framework, BenchConfig.from_json(config_json), plain == ["plain"])
    Path(out_file).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Run each framework's benchmark worker and turn its times into the table's figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from benchmark.config import BenchConfig
from benchmark.timing import Timing
from common.shapes import infer, totals
from common.variants import get_variant

#: FLOPs per multiply-accumulate: the forward pass does one multiply and one add per MAC;
#: the backward pass does two such products per forward one (input and weight gradients)
FLOPS_PER_MAC = {"forward": 2, "train": 6}


def flops_per_batch(variant_name: str, mode: str, batch_size: int) -> int:
    """The spec's arithmetic for one batch: 2 x MACs forward, 6 x MACs forward+backward."""
    return FLOPS_PER_MAC[mode] * totals(infer(get_variant(variant_name)))["macs"] * batch_size


@dataclass
class FrameworkResult:
    """What one worker reported: its status, device, and the peak its matmul reached."""

    framework: str
    status: str  # ok | skipped | error
    message: str = ""
    version: str = ""
    device: str = ""
    fast_paths: dict[str, bool] = field(default_factory=dict)
    matmul_n: int = 0
    peak: Optional[Timing] = None

    @property
    def matmul_gflops(self) -> float:
        """What this framework's own NxN matmul reached (median)."""
        return 2 * self.matmul_n ** 3 / self.peak.median / 1e9 if self.peak else float("nan")


@dataclass
class BenchRow:
    """One framework in one mode."""

    framework: str
    mode: str
    timing: Timing
    batch_size: int
    flops: int
    matmul_gflops: float  # this framework's own matmul
    memory: int
    memory_how: str
    times: list[float] = field(default_factory=list)
    vs_fastest: float = 1.0  # this row's median time / the fastest framework's in this mode
    #: the device's peak: the fastest matmul any framework ran on this device in this run
    peak_gflops: float = float("nan")
    peak_by: str = ""

    @property
    def images_per_s(self) -> float:
        return self.batch_size / self.timing.median

    @property
    def gflops(self) -> float:
        return self.flops / self.timing.median / 1e9

    @property
    def percent_of_peak(self) -> float:
        return 100 * self.gflops / self.peak_gflops


@dataclass
class BenchRun:
    config: BenchConfig
    frameworks: list[FrameworkResult]
    rows: list[BenchRow]

    @property
    def ok(self) -> bool:
        return not any(f.status == "error" for f in self.frameworks) and bool(self.rows)


def run_worker(framework: str, config: BenchConfig, plain: bool = False) -> dict:
    """Benchmark ``framework`` (its plain hand-written model if ``plain``) in a fresh Python
    process; its result dict."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    with tempfile.TemporaryDirectory(prefix="alexnet-bench-") as tmp:
        out = Path(tmp) / "result.json"
        proc = subprocess.run([sys.executable, "-m", "benchmark.worker", config.to_json(),
                               str(out), framework] + ["plain"] * plain, env=env,
                              stdout=subprocess.DEVNULL)
        if out.exists():
            return json.loads(out.read_text())
    return {"framework": framework, "status": "error",
            "message": f"the worker process exited with status {proc.returncode} (its messages are above)"}


def set_device_peaks(results: list[FrameworkResult], rows: list[BenchRow]) -> None:
    """Each row's peak: the best matmul measured on its device by any framework. A
    framework's own BLAS can be far from the hardware's limit (PyTorch's MKL reached 205
    GFLOP/s on this AMD CPU, TensorFlow's matmul 473, PyTorch's own convolutions 383), and a
    share of a slow matmul would flatter it."""
    devices = {r.framework: r.device for r in results if r.status == "ok"}
    best: dict[str, FrameworkResult] = {}
    for r in results:
        if r.status == "ok" and (r.device not in best
                                 or r.matmul_gflops > best[r.device].matmul_gflops):
            best[r.device] = r
    for row in rows:
        top = best[devices[row.framework]]
        row.peak_gflops, row.peak_by = top.matmul_gflops, top.framework


def run_bench(frameworks: list[str], config: BenchConfig,
              say: Callable[[str], None] = lambda line: None) -> BenchRun:
    """Benchmark each framework in turn, one process each; rows in the given order."""
    results, rows = [], []
    jobs = [(f, plain) for f in frameworks for plain in (False, True)[:1 + config.plain]]
    for name, plain in jobs:
        raw = run_worker(name, config, plain)
        framework = f"{name} (plain)" if plain else name
        result = FrameworkResult(framework, raw["status"], raw.get("message", ""),
                                 raw.get("version", ""), raw.get("device", ""),
                                 raw.get("fast_paths", {}))
        if raw["status"] == "ok":
            result.matmul_n, result.peak = raw["matmul"]["n"], Timing.of(raw["matmul"]["times"])
            for mode, timed in raw["modes"].items():
                rows.append(BenchRow(framework, mode, Timing.of(timed["times"]), config.batch_size,
                                     flops_per_batch(config.variant, mode, config.batch_size),
                                     result.matmul_gflops, timed["memory"], timed["memory_how"],
                                     timed["times"]))
            say(f"  {framework:<18} {result.device}: " + ", ".join(
                f"{r.mode} {1e3 * r.timing.median:.1f} ms" for r in rows if r.framework == framework))
        else:
            say(f"  {framework:<18} {result.status}: {result.message}")
        results.append(result)
    set_device_peaks(results, rows)
    for mode in config.modes:
        in_mode = [r for r in rows if r.mode == mode]
        fastest = min((r.timing.median for r in in_mode), default=None)
        for row in in_mode:
            row.vs_fastest = row.timing.median / fastest
    return BenchRun(config, results, rows)

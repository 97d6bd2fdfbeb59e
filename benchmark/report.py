"""The benchmark's outputs: the table (terminal or markdown), the JSON file, the bar chart."""

from __future__ import annotations

import io
import json
from dataclasses import asdict
from pathlib import Path

from benchmark.run import BenchRun
from common.table import render
from common.weights import atomic_write_bytes


def _mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"


def table(run: BenchRun, fmt: str = "table") -> str:
    """One row per framework and mode: time, throughput, GFLOP/s, % of peak, memory, ratio."""
    headers = ["framework", "mode", "ms/batch (mean ± std)", "median ms", "images/s",
               "GFLOP/s", "% of peak", "own matmul GFLOP/s", "memory", "vs fastest"]
    rows = [[r.framework, r.mode, f"{1e3 * r.timing.mean:.2f} ± {1e3 * r.timing.std:.2f}",
             f"{1e3 * r.timing.median:.2f}", f"{r.images_per_s:,.1f}", f"{r.gflops:,.1f}",
             f"{r.percent_of_peak:.0f}%", f"{r.matmul_gflops:,.1f}", _mib(r.memory),
             f"{r.vs_fastest:.2f}x"] for r in run.rows]
    return render(headers, rows, fmt)


def terminal(run: BenchRun) -> str:
    """The readable report printed by ``alexnet bench``."""
    c = run.config
    lines = [f"{c.variant}, batch {c.batch_size}, {c.precision}, {c.warmup} warm-up + "
             f"{c.iters} timed iterations per mode; device synchronized before every clock read",
             "forward = eval-mode pass (2 x MACs); train = forward + loss + backward, every "
             "parameter's gradient, no optimizer step (6 x MACs); images/s and GFLOP/s from the "
             "median",
             ""]
    if run.rows:
        lines += [table(run).rstrip("\n"), ""]
        peaks = {(r.peak_by, r.peak_gflops) for r in run.rows}
        lines += [f"peak = the fastest {c.precision} NxN matmul any framework ran on the device in "
                  f"this run: {by}'s, {gflops:,.1f} GFLOP/s" for by, gflops in sorted(peaks)]
        if any(r.percent_of_peak > 100 for r in run.rows):
            lines.append("above 100%: the only matmul measured was slower than the model's "
                         "convolutions; run all frameworks for a truer peak")
    for f in run.frameworks:
        if f.status == "ok":
            paths = ", ".join(f"{k} {'on' if v else 'off'}" for k, v in f.fast_paths.items())
            lines.append(f"{f.framework} {f.version} on {f.device}; fast paths: {paths}; "
                         f"own matmul {f.matmul_n}x{f.matmul_n}")
        else:
            reason = f.message.removeprefix(f"{f.framework.split()[0]}: ")
            lines.append(f"{f.framework}: {f.status}: {reason}")
    memory = sorted({r.memory_how for r in run.rows})
    if memory:
        lines.append("memory: " + "; ".join(memory))
    return "\n".join(lines)


def to_json(run: BenchRun) -> str:
    """Settings, each framework's status and every row with its per-iteration times."""
    data = {"config": asdict(run.config),
            "frameworks": [{**asdict(f), "matmul_gflops": f.matmul_gflops}
                           for f in run.frameworks],
            "rows": [{**asdict(r), "ms_median": 1e3 * r.timing.median,
                      "images_per_s": r.images_per_s, "gflops": r.gflops,
                      "percent_of_peak": r.percent_of_peak} for r in run.rows]}
    return json.dumps(data, indent=2) + "\n"


def write_json(run: BenchRun, path: Path, overwrite: bool) -> None:
    atomic_write_bytes(path, to_json(run).encode(), overwrite=overwrite)


def write_plot(run: BenchRun, path: Path, overwrite: bool) -> None:
    """Bar charts: images per second, and percent of the measured peak, per framework and mode."""
    import matplotlib
    matplotlib.use("Agg")
    import numpy as np
    from matplotlib import pyplot as plt

    frameworks = list(dict.fromkeys(r.framework for r in run.rows))
    modes = list(dict.fromkeys(r.mode for r in run.rows))
    by = {(r.framework, r.mode): r for r in run.rows}
    figure, axes = plt.subplots(1, 2, figsize=(13, 4.2))
    width = 0.8 / max(len(modes), 1)
    for i, mode in enumerate(modes):
        at = np.arange(len(frameworks)) + (i - (len(modes) - 1) / 2) * width
        rows = [by.get((f, mode)) for f in frameworks]
        for ax, value in ((axes[0], "images_per_s"), (axes[1], "percent_of_peak")):
            heights = [getattr(r, value) if r else 0 for r in rows]
            bars = ax.bar(at, heights, width, label=mode)
            ax.bar_label(bars, fmt="%.0f", fontsize=8)
    c = run.config
    axes[0].set(ylabel="images per second", title="throughput (median)")
    peak = run.rows[0].peak_gflops if run.rows else float("nan")
    axes[1].set(ylabel="% of the device's fastest matmul", title=f"share of the measured peak "
                f"({peak:,.0f} GFLOP/s)" if len({r.peak_gflops for r in run.rows}) == 1
                else "share of the measured peak")
    for ax in axes:
        ax.set_xticks(range(len(frameworks)), [f.replace(" (", "\n(") for f in frameworks])
        ax.grid(axis="y", alpha=0.3)
        ax.legend()
    figure.suptitle(f"alexnet bench: {c.variant}, batch {c.batch_size}, {c.precision}")
    figure.tight_layout()
    png = io.BytesIO()
    figure.savefig(png, format="png", dpi=100)
    plt.close(figure)
    atomic_write_bytes(path, png.getvalue(), overwrite=overwrite)

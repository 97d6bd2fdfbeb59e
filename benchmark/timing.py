"""The benchmark's clock: warm-up not counted, the device synchronized before every read."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable

from tqdm import tqdm


def time_calls(call: Callable[[], None], sync: Callable[[], None], warmup: int, iters: int,
               label: str = "", progress: bool = False) -> list[float]:
    """Seconds of each of ``iters`` calls of ``call`` after ``warmup`` untimed ones. The
    device is synchronized before the clock starts and before it stops, so each time is
    the work of one call, not the time it took to queue it."""
    bar = tqdm(total=warmup + iters, desc=label, unit="it", leave=False,
               disable=not progress, dynamic_ncols=True)
    for _ in range(warmup):
        call()
        sync()
        bar.update()
    times = []
    for _ in range(iters):
        sync()
        start = time.perf_counter()
        call()
        sync()
        times.append(time.perf_counter() - start)
        bar.update()
    bar.close()
    return times


@dataclass(frozen=True)
class Timing:
    """Statistics of per-call times, in seconds."""

    mean: float
    std: float
    median: float
    best: float
    n: int

    @classmethod
    def of(cls, times: list[float]) -> "Timing":
        if not times:
            raise ValueError("no timed calls")
        std = statistics.stdev(times) if len(times) > 1 else 0.0
        return cls(statistics.fmean(times), std, statistics.median(times), min(times), len(times))

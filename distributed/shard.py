"""What each worker of a data-parallel run sees: its part of every global batch, and
whether it is the one that writes.

A global batch is split into ``size`` equal contiguous parts, rank r taking part r, so
the workers' mean gradients average to the whole batch's. Every worker draws the same
global batches (their order depends only on the seed and the epoch), so a run with N
workers sees the images a single process would, and repeats when resumed. Each worker's
dropout stream is seeded from (seed, epoch, rank): ``training.loop.epoch_seed``.
"""

from __future__ import annotations

import numpy as np


class ShardError(ValueError):
    """A global batch that does not split evenly over the workers."""


def shard(batch: np.ndarray, rank: int, size: int) -> np.ndarray:
    """Rank ``rank``'s part of ``batch`` (first axis) of ``size`` equal parts."""
    if len(batch) % size:
        raise ShardError(f"a batch of {len(batch)} does not split evenly over {size} workers")
    part = len(batch) // size
    return batch[rank * part:(rank + 1) * part]


def writes(rank: int) -> bool:
    """Whether worker ``rank`` writes files (checkpoints, metrics, results): rank 0 only,
    so no two processes write the same file at once."""
    return rank == 0

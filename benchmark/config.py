"""What one ``alexnet bench`` run times: the settings shared by every framework's worker."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Optional

from impls.base import FastPaths

MODES: tuple[str, ...] = ("forward", "train")
#: matrix size of the peak measurement: big enough to saturate the device, small enough
#: to time quickly (2048^3 x 2 = 17 GFLOP, ~0.2 s on 2 CPU cores; 8192: 1.1 TFLOP)
MATMUL_SIZE = {"cpu": 2048, "gpu": 8192}


@dataclass(frozen=True)
class BenchConfig:
    """Settings of one benchmark run (``alexnet bench --help`` explains each)."""

    variant: str = "torchvision"
    batch_size: int = 32
    device: str = "auto"
    warmup: int = 10
    iters: int = 100
    modes: tuple[str, ...] = MODES
    precision: str = "fp32"
    fast: FastPaths = field(default_factory=FastPaths)
    seed: int = 0
    matmul_size: Optional[int] = None  # None: MATMUL_SIZE of the device used
    plain: bool = False  # also time each framework's plain hand-written torchvision AlexNet
    progress: bool = True

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "BenchConfig":
        raw = json.loads(text)
        return cls(**{**raw, "modes": tuple(raw["modes"]), "fast": FastPaths(**raw["fast"])})

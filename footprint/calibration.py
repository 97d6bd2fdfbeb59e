"""Measure the constants of ``footprint.estimate`` again: short runs of each command at two
batch sizes (and on two variants), their peak RSS, and the slopes and intercepts fitted to
them, printed next to the values in ``footprint.estimate``.

Usage: ``python -m footprint.calibration [crosscheck|bench|train ...] [--cache FILE]``
(all three by default). Each run is one process at a time, on the CPU; the whole set takes
~15 minutes on 2 cores. ``--cache`` keeps every measured peak in a JSON file and reuses it,
so an interrupted calibration goes on where it stopped (delete the file to measure afresh).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Optional, Sequence

from footprint import estimate as footprint
from footprint.estimate import MiB, activation_elements, params_of
from common.spec import Variant
from common.variants import get_variant

THREE = "pytorch,mxnet,tensorflow"
#: the batch sizes every crosscheck slope is measured between
LOW, HIGH = 2, 8
COMMANDS = ("crosscheck", "bench", "train")


#: runs its arguments and prints "exit code, peak RSS in KiB" of that child alone (os.wait4)
_LAUNCHER = ("import os, subprocess, sys\n"
             "p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
             "_, status, usage = os.wait4(p.pid, 0)\n"
             "print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)\n")


def measured_peak(argv: Sequence[str], env: Optional[dict[str, str]] = None) -> tuple[int, int]:
    """Run ``argv`` and return (its exit code, its peak RSS in bytes), through a small
    launcher process: Linux carries the RSS high-water mark of the process that forks over
    the child's exec into the child's ``ru_maxrss``, so a command forked straight from a
    test process of 6.6 GB measured 6.6 GB (seen in CI). Forked from the launcher, its
    figure starts at the launcher's ~10 MB; ``os.wait4`` there reports that child alone."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    proc = subprocess.run([sys.executable, "-c", _LAUNCHER, *argv], env=full_env,
                          capture_output=True, text=True)
    code, kib = (int(v) for v in proc.stdout.split()[-2:])
    if code not in (0, 1):  # 1: a divergence, which does not change the memory
        sys.stderr.write(proc.stderr[-2000:])
    return code, kib * 1024  # Linux reports KiB


def alexnet(*args: str) -> list[str]:
    return [sys.executable, "-m", "alexnet_cli.main", *args]


class Cache:
    """Measured peaks by command line, kept in a JSON file between runs (if given)."""

    def __init__(self, path: Optional[Path]) -> None:
        self.path = path
        self.values: dict = (json.loads(path.read_text())
                                       if path is not None and path.exists() else {})

    def peak(self, argv: list[str]) -> int:
        key = " ".join(argv[1:])
        if key not in self.values:
            code, peak = measured_peak(argv)
            if code not in (0, 1):
                raise SystemExit(f"calibration: '{key}' exited with {code}")
            self.values[key] = peak
            print(f"  {peak / MiB:8.0f} MiB  {key}", file=sys.stderr, flush=True)
            self.save()
        return self.values[key]

    def save(self) -> None:
        if self.path is not None:
            self.path.write_text(json.dumps(self.values, indent=1))


def crosscheck_argv(variant: str, frameworks: str, checks: str, batch: int) -> list[str]:
    return alexnet("crosscheck", "--variant", variant, "--framework", frameworks, "--check",
                   checks, "--batch-size", str(batch), "--native-only", "--device", "cpu", "--quiet")


def fit(low: int, high: int, small: int, big_elements: int, small_elements: int,
        big_params: int, small_params: int) -> tuple[float, float, float]:
    """(bytes per element, bytes per parameter, the rest) from the big variant at batch LOW
    and HIGH and the small one at LOW (the crosscheck adds the photograph to each batch)."""
    element = (high - low) / ((HIGH - LOW) * big_elements)
    big_rest = low - element * big_elements * (LOW + 1)
    small_rest = small - element * small_elements * (LOW + 1)
    per_param = (big_rest - small_rest) / (big_params - small_params)
    return element, per_param, small_rest - per_param * small_params


def calibrate_crosscheck(cache: Cache, say: Callable[[str], None]) -> None:
    """Every check with pytorch alone and with the three frameworks, on paper (batch LOW and
    HIGH) and cifar-small (LOW); the shares held once and per framework follow."""
    base = cache.peak([sys.executable, "-c", "import alexnet_cli.main, crosscheck.cli, crosscheck.run"])
    say(f"PROCESS_BASE = {base / MiB:.0f} MiB (now {footprint.PROCESS_BASE / MiB:.0f})")
    for name in ("pytorch", "mxnet", "tensorflow", "onnx-pytorch", "onnx-tensorflow"):
        peak = cache.peak(crosscheck_argv("cifar-small", name, "forward", 1))
        estimate = footprint.crosscheck_estimate([(get_variant("cifar-small"), ("forward",), False)],
                                                 [name], parity_images=0).bytes_at(1)
        say(f"{name}: cifar-small forward at batch 1 {peak / MiB:.0f} MiB, the estimate "
            f"{estimate / MiB:.0f}")
    paper, small = get_variant("paper"), get_variant("cifar-small")
    measured: dict[str, tuple[footprint.Share, footprint.Share]] = {}
    for check in ("forward", "backward", "step", "fastpath"):
        checks = "forward" if check == "forward" else f"forward,{check}"
        shares = {}
        for frameworks, count in (("pytorch", 1), (THREE, 3)):
            shares[count] = fit(cache.peak(crosscheck_argv("paper", frameworks, checks, LOW)),
                                cache.peak(crosscheck_argv("paper", frameworks, checks, HIGH)),
                                cache.peak(crosscheck_argv("cifar-small", frameworks, checks, LOW)),
                                activation_elements(paper), activation_elements(small),
                                params_of(paper), params_of(small))
        (e1, p1, r1), (e3, p3, r3) = shares[1], shares[3]
        measured[check] = (split(e1, e3), split(p1, p3))
        say(f"{checks}: per element {e1:.1f} B (pytorch), {e3:.1f} B (three); per parameter "
            f"{p1:.1f} B, {p3:.1f} B; the rest {r1 / MiB:.0f} MiB, {r3 / MiB:.0f} MiB "
            f"(PROCESS_BASE and the imports)")
    calibrate_witnesses(cache, say)
    for check, (element, param) in measured.items():  # each check's total, forward's included
        say(f"  CROSSCHECK_ELEMENT[{check!r}] = {element} (now {footprint.CROSSCHECK_ELEMENT[check]})")
        say(f"  CROSSCHECK_PARAM[{check!r}] = {param} (now {footprint.CROSSCHECK_PARAM[check]})")


def calibrate_witnesses(cache: Cache, say: Callable[[str], None]) -> None:
    """Each ONNX witness alone on paper and cifar-small at batch LOW (WITNESS_PARAM), and the
    five together on paper (WITNESS_HELD_PARAM: what the estimate without it misses)."""
    paper, small = get_variant("paper"), get_variant("cifar-small")
    witnesses = ("onnx-pytorch", "onnx-tensorflow")
    images = (LOW + 1) * footprint.CROSSCHECK_ELEMENT["forward"].times(1)
    for witness in witnesses:
        big = (cache.peak(crosscheck_argv("paper", witness, "forward", LOW))
               - images * activation_elements(paper))
        tiny = (cache.peak(crosscheck_argv("cifar-small", witness, "forward", LOW))
                - images * activation_elements(small))
        per_param = (big - tiny) / (params_of(paper) - params_of(small))
        say(f"WITNESS_PARAM[{witness!r}] = {per_param:.1f} "
            f"(now {footprint.WITNESS_PARAM[witness]})")
    peak = cache.peak(crosscheck_argv("paper", ",".join((THREE,) + witnesses), "forward", LOW))
    held, footprint.WITNESS_HELD_PARAM = footprint.WITNESS_HELD_PARAM, 0
    try:
        without = footprint.crosscheck_estimate([(paper, ("forward",), False)],
                                                THREE.split(",") + list(witnesses),
                                                parity_images=0).bytes_at(LOW)
    finally:
        footprint.WITNESS_HELD_PARAM = held
    say(f"WITNESS_HELD_PARAM = {(peak - without) / (len(witnesses) * params_of(paper)):.1f} (now {held})")


def split(one: float, three: float) -> footprint.Share:
    """The share held once and per framework, from runs with one and with three frameworks."""
    per_framework = (three - one) / 2
    return footprint.Share(once=round(one - per_framework, 1), per_framework=round(per_framework, 1))


def bench_peaks(cache: Cache, variant: str, batch: int) -> dict[tuple[str, str], int]:
    """Each framework worker's peak RSS after each mode, from ``alexnet bench --json``."""
    key = f"bench {variant} {batch}"
    if key not in cache.values:
        cache.values[key] = {" ".join(k): v for k, v in _bench_peaks(variant, batch).items()}
        cache.save()
    return {tuple(k.split()): v for k, v in cache.values[key].items()}  # type: ignore[union-attr]


def _bench_peaks(variant: str, batch: int) -> dict[tuple[str, str], int]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.json"
        subprocess.run(alexnet("bench", "--framework", THREE, "--variant", variant, "--batch-size",
                               str(batch), "--iters", "1", "--warmup", "0", "--device", "cpu",
                               "--quiet", "--json", str(out)),
                       check=False, stdout=subprocess.DEVNULL,
                       env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        rows = json.loads(out.read_text())["rows"]
    return {(row["framework"], row["mode"]): row["memory"] for row in rows}


def lrn_elements(variant: Variant) -> tuple[int, int]:
    """(elements of one image but LRN outputs, LRN output elements)."""
    lrn = round(footprint.image_bytes(variant, footprint.ElementCost(0, 1)))
    return activation_elements(variant) - lrn, lrn


def element_cost(plain_slope: float, plain: Variant, lrn_slope: float,
                 with_lrn: Variant) -> footprint.ElementCost:
    """Bytes per element from the slope per image of a variant without LRN and of one with."""
    other = plain_slope / activation_elements(plain)
    rest, lrn = lrn_elements(with_lrn)
    return footprint.ElementCost(round(other, 1), round((lrn_slope - other * rest) / lrn, 1))


def calibrate_bench(cache: Cache, say: Callable[[str], None]) -> None:
    """Workers' peaks on torchvision (no LRN) and paper at batch 4 and 16, cifar-small at 4."""
    plain, lrn, small = get_variant("torchvision"), get_variant("paper"), get_variant("cifar-small")
    runs = {name: {batch: bench_peaks(cache, name, batch) for batch in (4, 16)}
            for name in ("torchvision", "paper")}
    tiny = bench_peaks(cache, "cifar-small", 4)
    for key in tiny:
        slope = {name: (runs[name][16][key] - runs[name][4][key]) / 12 - 4 * math.prod(v.input_shape)
                 for name, v in (("torchvision", plain), ("paper", lrn))}
        cost = element_cost(slope["torchvision"], plain, slope["paper"], lrn)
        rest_big = runs["torchvision"][4][key] - 4 * (slope["torchvision"] + 4 * math.prod(plain.input_shape))
        rest_small = tiny[key] - 4 * (footprint.image_bytes(small, cost) + 4 * math.prod(small.input_shape))
        per_param = (rest_big - rest_small) / (params_of(plain) - params_of(small))
        say(f"bench {key[0]} {key[1]}: per element {cost} (now {footprint.BENCH_ELEMENT[key[0]][key[1]]}), "
            f"per parameter {per_param:.1f} B (now {footprint.BENCH_PARAM[key[0]]}), the worker "
            f"{(rest_small - per_param * params_of(small)) / MiB:.0f} MiB (now "
            f"{footprint.BENCH_WORKER[key[0]] / MiB:.0f})")


def calibrate_train(cache: Cache, say: Callable[[str], None]) -> None:
    """Each framework on digits, one epoch, no checkpoints: paper at batch 4 and 16 (32
    images), d2l (no LRN) at 8 and 32 (64 images), cifar-small at 4 (32 images)."""
    def argv(framework: str, variant: str, batch: int) -> list[str]:
        subset = "64" if variant == "d2l" else "32"
        return alexnet("train", "--framework", framework, "--variant", variant, "--dataset",
                       "digits", "--subset", subset, "--epochs", "1", "--batch-size", str(batch),
                       "--device", "cpu", "--quiet")

    paper, plain, small = (get_variant(name, num_classes=10, in_channels=1)
                           for name in ("paper", "d2l", "cifar-small"))
    inputs = lambda v: footprint.TRAIN_INPUT_ELEMENT * math.prod(v.input_shape)  # noqa: E731
    for framework in ("pytorch", "mxnet", "tensorflow"):
        low, high = cache.peak(argv(framework, "paper", 4)), cache.peak(argv(framework, "paper", 16))
        plain_slope = (cache.peak(argv(framework, "d2l", 32)) - cache.peak(argv(framework, "d2l", 8))) / 24
        tiny = cache.peak(argv(framework, "cifar-small", 4))
        slope = (high - low) / 12
        cost = element_cost(plain_slope - inputs(plain), plain, slope - inputs(paper), paper)
        rest_big = low - 4 * slope
        rest_small = tiny - 4 * (inputs(small) + footprint.image_bytes(small, cost))
        per_param = (rest_big - rest_small) / (params_of(paper) - params_of(small))
        rest = rest_small - per_param * params_of(small)
        say(f"train {framework}: per element {cost} (now {footprint.TRAIN_ELEMENT[framework]}), "
            f"per parameter {per_param:.1f} B (now {footprint.TRAIN_PARAM[framework]}), the rest "
            f"{rest / MiB:.0f} MiB (now {footprint.TRAIN_BASE[framework] / MiB:.0f})")
        for variant, batch, subset in (("paper", 4, 32), ("paper", 16, 32), ("d2l", 8, 64),
                                       ("d2l", 32, 64), ("cifar-small", 4, 32)):
            estimate = footprint.train_estimate(variant, framework, "digits", optimizer="sgd",
                                                subset=subset)
            say(f"  {variant} batch {batch}: measured {cache.peak(argv(framework, variant, batch)) / MiB:.0f}"
                f" MiB, estimate {estimate.bytes_at(batch) / MiB:.0f} MiB")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m footprint.calibration",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("commands", nargs="*", metavar="COMMAND",
                        help=f"what to calibrate: {', '.join(COMMANDS)} (default: all three)")
    parser.add_argument("--cache", type=Path, help="keep (and reuse) the measured peaks here")
    args = parser.parse_args(argv)
    unknown = [c for c in args.commands if c not in COMMANDS]
    if unknown:  # not choices=: argparse refuses an empty nargs="*" list against them
        parser.error(f"unknown {', '.join(unknown)}; choose from {', '.join(COMMANDS)}")
    cache = Cache(args.cache)
    for command in args.commands or COMMANDS:
        if command == "crosscheck":
            calibrate_crosscheck(cache, print)
        elif command == "bench":
            calibrate_bench(cache, print)
        else:
            calibrate_train(cache, print)
    return 0


if __name__ == "__main__":
    sys.exit(main())

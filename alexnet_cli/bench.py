"""``alexnet bench``: time forward and forward+backward in each framework side by side."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from alexnet_cli.args import choice_list, non_negative_int, positive_int
from benchmark.config import MATMUL_SIZE, MODES, BenchConfig
from footprint.estimate import activations_on_host, bench_estimate, refuse_if_too_big
from common.variants import get_variant
from impls.base import FRAMEWORKS, PRECISIONS, FastPaths


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "bench", help="time forward and forward+backward in each framework against the device's peak",
        description="Time each framework's forward pass and forward+backward pass on the same "
                    "model, weights and batch, each in its own process; report ms per batch "
                    "(mean ± std, median), images/s, GFLOP/s from the spec's MACs, percent of "
                    "the device's peak (the fastest large matrix product any of the frameworks ran "
                    "on it in the same run; each framework's own is shown too), "
                    "memory, and each framework's time relative to the fastest.")
    p.add_argument("--framework", type=choice_list(list(FRAMEWORKS), allow_all=True), default="all",
                   help=f"comma-separated frameworks or 'all' ({', '.join(FRAMEWORKS)})")
    p.add_argument("--variant", default="torchvision", help="the variant to time (default torchvision)")
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--device", choices=("cpu", "gpu", "auto"), default="auto",
                   help="auto = the GPU where a framework sees one, else the CPU (default)")
    p.add_argument("--warmup", type=int, default=10, help="untimed iterations per mode (default 10)")
    p.add_argument("--iters", type=positive_int, default=100, help="timed iterations per mode")
    p.add_argument("--mode", type=choice_list(list(MODES)), default=list(MODES),
                   help="forward, train (forward + backward) or both (default forward,train)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="fp32; tf32 (GPU tensor cores); bf16 (each framework's mixed precision)")
    p.add_argument("--matmul-size", type=positive_int, metavar="N",
                   help="size of the peak-measuring matmul (default 2048 on CPUs, 8192 on GPUs)")
    fast = p.add_argument_group("fast paths (each framework's own; all on by default but compile)")
    fast.add_argument("--no-channels-last", action="store_true", help="PyTorch: NCHW memory format")
    fast.add_argument("--no-cudnn-benchmark", action="store_true", help="PyTorch: no cuDNN autotuning")
    fast.add_argument("--compile", action="store_true", help="PyTorch: torch.compile the model")
    fast.add_argument("--no-xla", action="store_true", help="TensorFlow: tf.function without jit_compile")
    fast.add_argument("--no-hybridize", action="store_true", help="MXNet: imperative Gluon")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--plain", action="store_true",
                   help="also time a plain hand-written torchvision AlexNet in each framework "
                        "(impls/*/plain.py; --variant torchvision only): the yardstick")
    p.add_argument("--json", type=Path, metavar="FILE",
                   help="write settings, rows and every iteration's time")
    p.add_argument("--plot", type=Path, metavar="FILE",
                   help="write a PNG bar chart of images/s and %% of peak")
    p.add_argument("--force", action="store_true", help="overwrite --json and --plot files")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run_bench_command)


def _check_output(path: Path | None, force: bool) -> None:
    """Fail before the (long) run, not after it, on an output that cannot be written."""
    if path is None:
        return
    if path.is_dir():
        raise OSError(f"{path} is a directory; give a file name")
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists; pass --force to overwrite it")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise OSError(f"cannot write {path}: {parent} is not a writable directory")


def run_bench_command(args: argparse.Namespace) -> int:
    from benchmark import report
    from benchmark.run import run_bench

    variant = get_variant(args.variant)  # an unknown variant: a usage error before any worker starts
    if args.precision == "tf32" and args.device == "cpu":
        print("alexnet bench: error: tf32 is a GPU tensor-core mode; use --precision fp32 or "
              "bf16 on the CPU", file=sys.stderr)
        return 2
    if args.plain and args.variant != "torchvision":
        print("alexnet bench: error: --plain compares with a hand-written torchvision AlexNet; "
              "use it with --variant torchvision", file=sys.stderr)
        return 2
    if args.warmup < 0:
        print("alexnet bench: error: --warmup must be 0 or more", file=sys.stderr)
        return 2
    for path in (args.json, args.plot):
        _check_output(path, args.force)
    on_host = activations_on_host(args.device)
    refuse_if_too_big(
        bench_estimate(variant, args.framework, args.mode, activations_on_host=on_host,
                       matmul_size=args.matmul_size or MATMUL_SIZE["cpu" if on_host else "gpu"]),
        args.batch_size, f"--batch-size {args.batch_size}"
        + (f" with --matmul-size {args.matmul_size}" if args.matmul_size else ""))
    config = BenchConfig(
        variant=args.variant, batch_size=args.batch_size, device=args.device, warmup=args.warmup,
        iters=args.iters, modes=tuple(m for m in MODES if m in args.mode), precision=args.precision,
        fast=FastPaths(channels_last=not args.no_channels_last,
                       cudnn_benchmark=not args.no_cudnn_benchmark, compile=args.compile,
                       xla=not args.no_xla, hybridize=not args.no_hybridize),
        seed=args.seed, matmul_size=args.matmul_size, plain=args.plain,
        progress=not args.quiet and sys.stderr.isatty())
    run = run_bench(args.framework, config, say=lambda line: print(line, file=sys.stderr))
    print(report.terminal(run))
    if args.json:
        report.write_json(run, args.json, args.force)
    if args.plot and run.rows:
        report.write_plot(run, args.plot, args.force)
    if not run.rows and not any(f.status == "error" for f in run.frameworks):
        print("alexnet bench: error: no framework could run: "
              + "; ".join(f.message for f in run.frameworks), file=sys.stderr)
        return 2
    return 0 if run.ok else 1

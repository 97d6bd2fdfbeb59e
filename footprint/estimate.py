"""Peak memory of each ``alexnet`` command, estimated from the spec before anything big is
allocated; the memory this machine has for it; and the check that refuses, up front, a run
that cannot fit (exit 2, with the estimate, the memory available and the largest batch that fits).

The estimate of a command is a set of phases, stretches of the run whose memory is held at
once (each check of one variant at one input size in the crosscheck, one framework's worker
process in the benchmark), each ``fixed + per_image x images``: ``fixed`` is the interpreter,
the imported frameworks and the parameters (float32 in each framework, float64 copies,
gradients, optimizer state), ``per_image`` the activation elements of one image
(``common.shapes.infer``) times the bytes each element costs in that command (the float64
reference, each framework's float32 copies, their gradients). The command's peak is its
largest phase. Every constant is a measured peak RSS (``CALIBRATION`` below says how to
measure them again).

The memory available is ``/proc/meminfo``'s MemAvailable, or less where a cgroup limit is set
(v2 ``memory.max``, v1 ``memory.limit_in_bytes``, less the cgroup's working set); the
environment variable ``ALEXNET_MEMORY_LIMIT`` (a size such as ``4G``, ``512M``, ``2.5GiB`` or
a number of bytes) replaces both. Where none of them can be read (not Linux), nothing is refused.
docs/memory.md says the same for users.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence

from common.shapes import infer, totals
from common.spec import Variant
from impls.base import FRAMEWORKS, WITNESSES, is_installed

KiB, MiB, GiB = 1024, 1024 ** 2, 1024 ** 3

#: the environment variable that replaces the memory read from the machine (tests, or a
#: run that must leave room for something else)
LIMIT_ENV = "ALEXNET_MEMORY_LIMIT"

# --- the constants: every number the estimate uses, and where it comes from -------------
#
# CALIBRATION. Each number is a slope or an intercept of the peak RSS (``os.wait4``'s
# ru_maxrss, the figure ``/usr/bin/time -v`` prints as "Maximum resident set size"; for bench
# ``benchmark.worker``'s own, in ``alexnet bench --json``) of short runs on the CPU (2 cores
# of an AMD EPYC, 24 GiB, 2026-11-29; numpy 1.26, torch 2.13.0, mxnet 1.9.1, tensorflow-cpu
# 2.21, shared with other work):
#     bytes per element   = (RSS(batch 8) - RSS(batch 2)) / 6 / activation_elements(paper)
#     bytes per parameter = (intercept(paper) - intercept(cifar-small))
#                           / (params(paper) - params(cifar-small))
#     the rest            = PROCESS_BASE + the imports (checked against PACKAGE_IMPORT)
# and a share held once against one per framework from runs with one and with three.
# ``python -m footprint.calibration [crosscheck|bench|train] [--cache FILE]`` runs
# those commands (crosscheck: 34 runs, ~12 minutes; bench 5, ~5; train 15, ~8) and prints
# each constant as measured next to its value here. After a change to what a command holds
# (the crosscheck releasing each framework's state when its check is done, say), run it
# and copy the new numbers in; the sums in the comments are the measurements of 2026-11-29.
# tests/test_footprint.py checks a real run against the estimate within ``MEASURED_FACTOR``.

#: RSS of an ``alexnet`` process before any framework is imported (Python, NumPy, the
#: package): ``python -c "import alexnet_cli.main, crosscheck.cli, crosscheck.run"``, 38 MiB
PROCESS_BASE = 40 * MiB

#: what importing a package and running a first small model adds to the RSS (shared
#: libraries, kernels, thread pools), by importable package; a framework costs the packages
#: it needs (``impls.base``), each once. The peak of cifar-small's forward crosscheck at
#: batch 1 with that framework alone, less PROCESS_BASE and cifar-small's ~10 MiB: pytorch
#: 316 MiB, mxnet 253, tensorflow 614, onnx-pytorch 462 (torch, onnxruntime, onnx,
#: onnxscript), onnx-tensorflow 680 (tensorflow, onnxruntime, onnx, tf2onnx). The three
#: frameworks together measured 930-1057 MiB against 1,080 summed here (shared pages).
PACKAGE_IMPORT: dict[str, int] = {
    "torch": 270 * MiB,
    "mxnet": 205 * MiB,
    "tensorflow": 565 * MiB,
    "onnxruntime": 45 * MiB,
    "onnx": 15 * MiB,
    "onnxscript": 85 * MiB,
    "tf2onnx": 10 * MiB,
}


@dataclass(frozen=True)
class Share:
    """Bytes held once in a command (the float64 reference) and once per framework."""

    once: float
    per_framework: float

    def times(self, frameworks: int) -> float:
        return self.once + frameworks * self.per_framework


@dataclass(frozen=True)
class ElementCost:
    """Bytes per activation element of one image in a framework's own pass: a LRN's output
    stands for the temporaries its backward pass keeps (the square, the window sum, the
    power), several times a plain layer's (measured: paper's two LRNs against torchvision
    and d2l, which have none)."""

    other: float
    lrn: float


#: crosscheck: bytes per activation element of one image while each check runs, the forward
#: check's results (held to the variant's end) included: a run's peak is its largest check.
#: ``alexnet crosscheck --variant paper --native-only --check forward[,CHECK]`` with
#: ``--framework pytorch`` and with the three, at batch 2 and 8 (paper: 2,089,027 elements
#: an image). Measured, pytorch / three: forward 17.0 / 22.2 (the float64 reference's 8,
#: a framework's float32 outputs twice for the run-to-run check, transiently), backward
#: 50.0 / 57.3 (float64 and float32 outputs and gradients), step 16.9 / 24.6 (it runs on a
#: narrowed variant, crosscheck/narrow.py: below the forward check's), fastpath 19.9 / 44.8.
CROSSCHECK_ELEMENT: dict[str, Share] = {
    "forward": Share(once=15, per_framework=3),
    "backward": Share(once=47, per_framework=4),
    "step": Share(once=14, per_framework=4),
    "fastpath": Share(once=8, per_framework=13),
    "distributed": Share(once=14, per_framework=4),  # this process: the step check's share
}
#: crosscheck: bytes per parameter while each check runs, from the same runs' intercepts
#: and cifar-small's (paper 60,965,224 parameters). Measured, pytorch / three: forward 8.1 /
#: 25.1 (each framework's model and a float64 layer's weights at a time), backward 20.3 /
#: 37.1 (the float64 gradients), step 7.4 / 23.9, fastpath 20.8 / 36.2.
CROSSCHECK_PARAM: dict[str, Share] = {
    "forward": Share(once=0, per_framework=8.5),
    "backward": Share(once=12, per_framework=8.5),
    "step": Share(once=0, per_framework=8.5),
    "fastpath": Share(once=13, per_framework=8),
    "distributed": Share(once=0, per_framework=8.5),
}
#: crosscheck --check distributed: what its worker processes hold beside this one, each a
#: framework's import and a narrowed model (crosscheck/distributed.py runs 2 at a time).
#: Measured: the summed RSS of the workers (and MXNet's scheduler and server) at their peak,
#: sampled every 0.2 s, ``--variant paper --check forward,distributed``: TensorFlow 1,534,504
#: kB, MXNet 768,752 kB, PyTorch 674,888 kB. The largest, with room, whatever the framework.
DISTRIBUTED_WORKERS_BYTES = 1_700_000_000
#: bytes per parameter of each worker of the 2-worker training parity (see its use)
PARITY_WORKER_PARAM = 20
#: crosscheck, a forward-only ONNX witness: bytes per parameter while it runs (its
#: framework's model, the export, the onnxruntime session, a float64 layer's weights): its
#: own phase, after the frameworks' checks (crosscheck/run.py runs the witnesses last). ``--framework onnx-pytorch``
#: (onnx-tensorflow) ``--check forward`` at batch 2 measured 1,686 (2,136) MiB on paper and
#: 465 (680) on cifar-small: 19.4 (23.4) bytes per parameter
WITNESS_PARAM: dict[str, float] = {"onnx-pytorch": 20, "onnx-tensorflow": 24}
#: crosscheck: bytes per parameter a witness leaves behind for the rest of the variant (most
#: of its export is released after its check): the residual of ``--variant paper --check
#: forward`` with all five (3,211 MiB at batch 2) over the three frameworks' estimate, 2.7
WITNESS_HELD_PARAM = 3
#: crosscheck, the training-parity check (20 steps of SGD on ``parity_images`` digits, in
#: float64 twice and in each framework): not measured (minutes per large variant); from the
#: code, crosscheck.parity: per element the backward check's, per parameter float64
#: weights, gradients and momentum (8 x 3, held once) and each framework's (4 x 3)
PARITY_ELEMENT = CROSSCHECK_ELEMENT["backward"]
PARITY_PARAM = Share(once=3 * 8, per_framework=3 * 4)

#: bench: a worker process per framework, one after another, while the parent (its RSS
#: ~PROCESS_BASE) waits. The worker's RSS before the batch and the parameters: Python, the
#: package, the framework and its fast path's machinery (XLA, hybridization). The intercepts
#: of ``alexnet bench --framework pytorch,mxnet,tensorflow --iters 1 --warmup 0 --json``
#: (each worker's peak RSS after each mode) on torchvision at batch 4 and 16 and on
#: cifar-small at 4 (``python -m footprint.calibration bench``): 274-284, 227-232,
#: 660-722 MiB.
BENCH_WORKER: dict[str, int] = {"pytorch": 285 * MiB, "mxnet": 235 * MiB, "tensorflow": 725 * MiB}
#: bench: bytes per activation element of one image in each mode, by framework, from the
#: slopes of the same runs (less the batch's float32 input) on torchvision (``other``) and on
#: paper at batch 4 and 16 (its LRN outputs: ``lrn``). Small: a framework frees each
#: activation it no longer needs in the forward pass and keeps only what its backward pass
#: reads. Measured, train mode, other / lrn: pytorch 4.6 / 27.2, mxnet 0.1 / 24.3,
#: tensorflow 2.4 / 23.0; forward: 0.4, 0.1, 0.0 (1 is a floor here).
BENCH_ELEMENT: dict[str, dict[str, ElementCost]] = {
    "pytorch": {"forward": ElementCost(1, 1), "train": ElementCost(5, 28)},
    "mxnet": {"forward": ElementCost(1, 1), "train": ElementCost(1, 25)},
    "tensorflow": {"forward": ElementCost(1, 1), "train": ElementCost(3, 23)},
}
#: bench: bytes per parameter in a worker, the same runs: the float32 canonical weights, the
#: model, its gradients, and what each fast path keeps (a compiled graph's constants, MXNet's
#: hybridized copy). Measured: pytorch 7.9 / 8.2 (forward / train), mxnet 14.7 / 14.6,
#: tensorflow 15.9 / 14.7.
BENCH_PARAM: dict[str, float] = {"pytorch": 8.5, "mxnet": 15, "tensorflow": 16}
#: bench: the peak-measuring matmul holds three n x n float32 matrices (after the modes,
#: counted beside them: at most 48 MiB at the CPU's default n = 2048)
MATMUL_MATRICES = 3

#: train: one process with one framework. ``alexnet train --framework F --dataset digits
#: --subset 32 --epochs 1 --device cpu`` on paper (1x227x227, 10 classes) at batch 4 and
#: 16 and on cifar-small at 4 (``python -m footprint.calibration train`` for
#: pytorch). Its RSS before the batch and the parameters (Python, the package, the
#: framework, scikit-learn's digits, the training loop): measured pytorch 385, mxnet 237,
#: tensorflow 614 MiB.
TRAIN_BASE: dict[str, int] = {"pytorch": 385 * MiB, "mxnet": 240 * MiB, "tensorflow": 615 * MiB}
#: train: bytes per parameter with SGD: the model, its gradients, the momentum and what the
#: framework's training step keeps; measured pytorch 15.2, mxnet 12.1, tensorflow 31.1
TRAIN_PARAM: dict[str, float] = {"pytorch": 16, "mxnet": 13, "tensorflow": 32}
#: train: what Adam holds beyond SGD per parameter (a second float32 moment; from the code)
ADAM_EXTRA_PARAM = 4
#: train with --out: the checkpoint after each epoch builds the canonical weights, the
#: native ones and the optimizer's state in memory before writing them (float32; from
#: training/run_dir.py, not measured)
CHECKPOINT_PARAM = 3 * 4
#: train and bench on a GPU: bytes per parameter still on the host (the float32 canonical
#: weights, and a checkpoint's canonical and native copies); the rest is in device memory
HOST_PARAM_ON_DEVICE = 3 * 4
#: train: bytes per activation element of one image, by framework: the activations the
#: framework keeps for its backward pass and their gradients, from the slopes above (less
#: the pipeline's TRAIN_INPUT_ELEMENT) and d2l's (no LRN; 1x224x224, batch 8 and 32,
#: --subset 64). Measured, other / LRN: pytorch 1.9 / 42.8, mxnet 8.4 / 83.7 (imperative
#: Gluon), tensorflow -0.5 / 19.5 (its allocator's arena absorbed d2l's batch 32: 1 is a floor).
TRAIN_ELEMENT: dict[str, ElementCost] = {
    "pytorch": ElementCost(2, 43),
    "mxnet": ElementCost(8.5, 84),
    "tensorflow": ElementCost(1, 20),
}
#: train: bytes per input element of one batch image: the data pipeline's float64 resize and
#: float32 result, ``pipeline.Batches.ahead`` = 2 batches prepared in advance
TRAIN_INPUT_ELEMENT = 8 + 3 * 4
#: train: bytes per pixel of the data set held: the uint8 images, and the float64 copy
#: ``pipeline.Normalization.of`` makes of the training images to fit the mean and std
DATASET_PIXEL = 1 + 8

#: what each data set holds: the shape of one image, training images, test images (the
#: files' own sizes; digits is scikit-learn's 1797 split 75/25 by ``data.load_digits``)
DATASET_SIZES: dict[str, tuple[tuple[int, int, int], int, int]] = {
    "digits": ((1, 8, 8), 1348, 449),
    "fashion-mnist": ((1, 28, 28), 60000, 10000),
    "cifar10": ((3, 32, 32), 50000, 10000),
}

#: the factor tests/test_footprint.py allows between the estimate and a measured peak RSS
MEASURED_FACTOR = 1.5


# --- the estimate --------------------------------------------------------------------------

class FootprintError(ValueError):
    """A run that would not fit in the memory available, or an unreadable memory limit."""


@dataclass(frozen=True)
class Phase:
    """A stretch of a command whose memory is held at once: ``fixed + per_image x images``."""

    what: str
    fixed: int
    per_image: int
    #: what ``fixed`` is, for the message when not even batch 1 fits
    holds: str = "the frameworks and the parameters"

    def at(self, images: int) -> int:
        return self.fixed + self.per_image * images


@dataclass(frozen=True)
class Estimate:
    """A command's peak memory at a batch size: the largest of its phases. ``extra_images``:
    images a phase runs besides the batch (the crosscheck's photograph); ``cap``: the most
    images one batch can hold (a training batch never exceeds the data set)."""

    phases: tuple[Phase, ...]
    extra_images: int = 0
    cap: Optional[int] = None

    def images(self, batch: int) -> int:
        return (batch if self.cap is None else min(batch, self.cap)) + self.extra_images

    def bytes_at(self, batch: int) -> int:
        """The estimated peak, in bytes, at ``batch``."""
        return max(phase.at(self.images(batch)) for phase in self.phases)

    def largest_batch(self, available: int) -> Optional[int]:
        """The largest batch whose estimate is at most ``available`` bytes: 0 if not even
        batch 1 fits, None if any batch does (a capped batch, or nothing per image)."""
        if self.bytes_at(1) > available:
            return 0
        bounds = [(available - phase.fixed) // phase.per_image - self.extra_images
                  for phase in self.phases if phase.per_image]
        if not bounds or (self.cap is not None and min(bounds) >= self.cap):
            return None
        return min(bounds)


def activation_elements(variant: Variant) -> int:
    """Elements of one image's input and of every layer's output (each a separate array in
    the crosscheck, and kept for the backward pass in training)."""
    return math.prod(variant.input_shape) + sum(math.prod(i.out_shape) for i in infer(variant))


def image_bytes(variant: Variant, cost: ElementCost) -> float:
    """Bytes one image's activations cost in a framework's own pass (``ElementCost``)."""
    lrn = sum(math.prod(i.out_shape) for i in infer(variant) if i.kind == "LRN")
    return cost.other * (activation_elements(variant) - lrn) + cost.lrn * lrn


def params_of(variant: Variant) -> int:
    return totals(infer(variant))["params"]


def import_bytes(frameworks: Iterable[str]) -> int:
    """RSS the imports of ``frameworks`` add: each package they need, once. A framework that
    is not installed is skipped by the commands, and costs nothing here."""
    packages: set[str] = set()
    for name in frameworks:
        if name in FRAMEWORKS and is_installed(name):
            packages.add(FRAMEWORKS[name][1])
        elif name in WITNESSES and is_installed(name):
            packages.update(WITNESSES[name][1])
    return sum(PACKAGE_IMPORT.get(package, 0) for package in packages)


def crosscheck_estimate(runs: Sequence[tuple[Variant, tuple[str, ...], bool]],
                        frameworks: Sequence[str], *, parity_images: int) -> Estimate:
    """``alexnet crosscheck`` over ``runs`` (``crosscheck.run.plan``'s (variant, checks, is
    the second size)) with ``frameworks`` (witnesses included: forward only, native size
    only); ``parity_images``: the fixed batch of the training-parity check. A phase per
    check of each run: the checks run one after another."""
    installed = [f for f in frameworks if (f in FRAMEWORKS or f in WITNESSES) and is_installed(f)]
    trainable = len([f for f in installed if f in FRAMEWORKS])
    overhead = PROCESS_BASE + import_bytes(installed)
    phases = []
    for variant, checks, second in runs:
        witnesses = [] if second else [f for f in installed if f in WITNESSES]
        elements, params = activation_elements(variant), params_of(variant)
        shape = "x".join(map(str, variant.input_shape))
        holds = f"the frameworks and the {params:,} parameters of {variant.name} at {shape}"
        # a witness holds its forward outputs, and a little of its export, to the variant's end
        held = (len(witnesses) * CROSSCHECK_ELEMENT["forward"].per_framework * elements,
                len(witnesses) * WITNESS_HELD_PARAM * params)
        outputs = CROSSCHECK_ELEMENT["forward"].times(trainable + len(witnesses)) * elements
        for witness in witnesses:
            phases.append(Phase(f"{variant.name} {shape} {witness}",
                                overhead + math.ceil(WITNESS_PARAM[witness] * params),
                                math.ceil(outputs), holds))
        for check in dict.fromkeys(("forward",) + tuple(checks)):
            if check == "train":  # fixed batches; the batch's forward results still held
                fixed = (PARITY_ELEMENT.times(trainable) * elements * parity_images
                         + PARITY_PARAM.times(trainable) * params
                         # and the 2-worker run: each worker a model, its gradient and
                         # momentum and the engine's buffers (~20 bytes a parameter, estimated
                         # from PARITY_PARAM's one-framework share, not measured separately)
                         + DISTRIBUTED_WORKERS_BYTES + 2 * PARITY_WORKER_PARAM * params)
                per_element = CROSSCHECK_ELEMENT["forward"].times(trainable)
            else:
                fixed = CROSSCHECK_PARAM[check].times(trainable) * params
                per_element = CROSSCHECK_ELEMENT[check].times(trainable)
                if check == "distributed":  # the worker processes, one framework at a time
                    fixed += DISTRIBUTED_WORKERS_BYTES
            phases.append(Phase(f"{variant.name} {shape} {check}",
                                overhead + math.ceil(fixed + held[1]),
                                math.ceil(per_element * elements + held[0]), holds))
    return Estimate(tuple(phases), extra_images=1)  # the photograph


def inspect_estimate(variant: Variant, framework: str) -> Estimate:
    """``alexnet inspect`` (to come): a model file in one framework checked against
    ``variant``'s float64 reference, the forward check's holdings with one framework."""
    return crosscheck_estimate([(variant, ("forward",), False)], [framework], parity_images=0)


def bench_estimate(variant: Variant, frameworks: Sequence[str], modes: Sequence[str], *,
                   matmul_size: int, activations_on_host: bool = True) -> Estimate:
    """``alexnet bench``: one worker process per framework, one after another, beside the
    parent. ``activations_on_host`` False (on a GPU): the activations, the model and the
    matmul live in the device's memory, the batch's input on the host."""
    params = params_of(variant)
    phases = []
    for name in frameworks:
        if name not in FRAMEWORKS or not is_installed(name):
            continue  # a worker that cannot import its framework holds next to nothing
        if activations_on_host:
            activations = max(image_bytes(variant, BENCH_ELEMENT[name][mode]) for mode in modes)
            held = BENCH_PARAM[name] * params + MATMUL_MATRICES * 4 * matmul_size ** 2
        else:
            activations, held = 0, HOST_PARAM_ON_DEVICE * params
        phases.append(Phase(name, PROCESS_BASE + BENCH_WORKER[name] + math.ceil(held),
                            math.ceil(activations) + 4 * math.prod(variant.input_shape),
                            f"{name}, the {params:,} parameters and the {matmul_size}x{matmul_size} "
                            f"peak-measuring matmul"))
    return Estimate(tuple(phases) or (Phase("nothing", PROCESS_BASE, 0),))


def train_estimate(variant_name: str, framework: str, dataset: str, *, optimizer: str,
                   subset: Optional[int] = None, checkpoints: bool = False,
                   activations_on_host: bool = True) -> Estimate:
    """``alexnet train``: ``variant_name`` at the data set's channels and classes in one
    framework, the data set in memory, a batch in train mode (never more images than the
    training split) and the data pipeline's batches prepared ahead; ``checkpoints``: --out."""
    from common.data import NUM_CLASSES
    from common.variants import get_variant

    shape, n_train, n_test = DATASET_SIZES[dataset]
    if subset is not None:
        n_train, n_test = min(n_train, subset), min(n_test, subset)
    variant = get_variant(variant_name, num_classes=NUM_CLASSES[dataset], in_channels=shape[0])
    params = params_of(variant)
    data = math.prod(shape) * (n_train * DATASET_PIXEL + n_test)
    if activations_on_host:
        per_param = (TRAIN_PARAM[framework] + ADAM_EXTRA_PARAM * (optimizer == "adam")
                     + CHECKPOINT_PARAM * checkpoints)
    else:
        per_param = HOST_PARAM_ON_DEVICE
    fixed = TRAIN_BASE[framework] + data + math.ceil(per_param * params)
    per_image = (TRAIN_INPUT_ELEMENT * math.prod(variant.input_shape)
                 + math.ceil(image_bytes(variant, TRAIN_ELEMENT[framework])) * activations_on_host)
    return Estimate((Phase(f"{framework} {variant.name}", fixed, per_image,
                           f"{framework}, the {params:,} parameters and the {dataset} images"),),
                    cap=max(n_train, 1))


def activations_on_host(device: str) -> bool:
    """Whether bench's and train's frameworks keep activations in host memory: on the CPU,
    and with ``auto`` where no GPU is visible. A GPU's device files are the cheap sign (no
    framework imported): a CPU-only framework on such a machine is then underestimated, as
    before this check existed, rather than refused for memory it would not use."""
    if device != "auto":
        return device == "cpu"
    if os.environ.get("CUDA_VISIBLE_DEVICES", "x").strip() in ("", "-1"):
        return True
    return not any(Path(p).exists() for p in ("/dev/nvidiactl", "/dev/kfd"))


# --- the memory available ------------------------------------------------------------------

_UNITS = {"": 1, "k": KiB, "m": MiB, "g": GiB, "t": 1024 ** 4, "p": 1024 ** 5, "e": 1024 ** 6}


def parse_size(text: str) -> int:
    """Bytes in a size such as ``4G``, ``512M``, ``2.5GiB``, ``4gb`` or ``1000000`` (bytes).
    Units are binary (K = 1024), as in ``ulimit`` and container memory limits."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([kmgtpe]?)(?:i?b)?\s*", text, re.IGNORECASE)
    if not match or float(match.group(1)) <= 0:
        raise FootprintError(f"{LIMIT_ENV}={text!r} is not a memory size; write e.g. 4G, 512M, "
                             f"2.5GiB or a number of bytes")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def format_bytes(n: float) -> str:
    """``n`` bytes in binary units with one decimal: 21.3 GiB, 1.2 PiB."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            break
        n /= 1024
    return f"{n:,.0f} B" if unit == "B" else f"{n:,.1f} {unit}"


def _read_int(path: Path) -> Optional[int]:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # cgroup v2 writes "max" for no limit


def _stat(path: Path, key: str) -> int:
    """The number after ``key`` in a file of "key value" lines (/proc/meminfo, memory.stat)."""
    try:
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == key and parts[1].isdigit():
                return int(parts[1])
    except OSError:
        pass
    return 0


def cgroup_headroom(root: Path = Path("/sys/fs/cgroup"),
                    self_cgroup: Path = Path("/proc/self/cgroup")) -> Optional[int]:
    """Bytes left under this process's cgroup memory limit (the limit less the working set:
    the usage without the reclaimable page cache), or None where no limit is set."""
    try:
        lines = self_cgroup.read_text().splitlines()
    except OSError:
        lines = []
    candidates: list[tuple[Path, str, str, str]] = []  # (dir, limit, usage, stat key)
    for line in lines:
        _, controllers, path = line.split(":", 2)
        relative = path.lstrip("/")
        if controllers == "":  # v2
            for directory in (root / relative, root):
                candidates.append((directory, "memory.max", "memory.current", "inactive_file"))
        elif "memory" in controllers.split(","):  # v1
            for directory in (root / "memory" / relative, root / "memory"):
                candidates.append((directory, "memory.limit_in_bytes", "memory.usage_in_bytes",
                                   "total_inactive_file"))
    headroom = []
    for directory, limit_file, usage_file, inactive in candidates:
        limit = _read_int(directory / limit_file)
        if limit is None or limit >= 2 ** 60:  # v1 writes a huge number for no limit
            continue
        usage = _read_int(directory / usage_file) or 0
        working_set = max(usage - _stat(directory / "memory.stat", inactive), 0)
        headroom.append(max(limit - working_set, 0))
    return min(headroom) if headroom else None


def available_memory(meminfo: Path = Path("/proc/meminfo")) -> Optional[tuple[int, str]]:
    """Bytes a new run may use, and where the figure comes from; None where it cannot be read."""
    override = os.environ.get(LIMIT_ENV, "").strip()
    if override:
        return parse_size(override), f"{LIMIT_ENV}={override}"
    found: list[tuple[int, str]] = []
    kib = _stat(meminfo, "MemAvailable:")  # "MemAvailable:   20787108 kB"
    if kib:
        found.append((kib * KiB, "MemAvailable"))
    headroom = cgroup_headroom()
    if headroom is not None:
        found.append((headroom, "under the cgroup's memory limit"))
    return min(found) if found else None


# --- the check -----------------------------------------------------------------------------

def refuse_if_too_big(estimate: Estimate, batch: int, subject: str) -> None:
    """Raise FootprintError when ``estimate`` at ``batch`` exceeds the memory available: the
    message gives the estimate, the memory and the largest batch that fits. ``subject``
    names what was asked (``--batch-size 100000000``, with ``--input`` where one was given)."""
    memory = available_memory()
    if memory is None:
        return
    available, source = memory
    need = estimate.bytes_at(batch)
    if need <= available:
        return
    if estimate.cap is not None and batch > estimate.cap:
        subject += f" (a batch of all {estimate.cap:,} training images)"
    message = (f"{subject} needs about {format_bytes(need)} (estimate), "
               f"{format_bytes(available)} is available ({source}); ")
    largest = estimate.largest_batch(available)
    if largest:  # never None here: the batch asked for does not fit
        message += f"the largest batch that fits is {largest}"
    else:
        biggest = max(estimate.phases, key=lambda phase: phase.fixed)
        message += "not even batch 1 fits" + (
            f": {biggest.holds} alone need about {format_bytes(biggest.fixed)}"
            if biggest.fixed > available else f" (it needs about {format_bytes(estimate.bytes_at(1))})")
    if not source.startswith(LIMIT_ENV):
        message += f" ({LIMIT_ENV}=SIZE replaces the figure read from the machine; docs/memory.md)"
    raise FootprintError(message)

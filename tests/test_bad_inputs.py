"""Every bad input, tried: one table of malformed files and absurd arguments for every
``alexnet`` command, each of which must end in a one-paragraph error that names the
problem, exit code 2, no traceback (unless ``--debug``), and a working directory left
exactly as it was (no file changed, none left behind).

A second test proves that a weights file carrying a malicious pickle is refused by
every loader outside ``alexnet convert`` (``tests/test_convert.py`` covers its readers)
and that its payload never runs.
"""

from __future__ import annotations

import gzip
import json
import os
import pickle
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from alexnet_cli.main import main
from common.variants import get_variant
from common.weights import init_weights
from tests.conftest import backend_or_skip

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
SMALL = "cifar-small"


# --- file makers ---------------------------------------------------------------------

class Payload:
    """Unpickling this runs ``touch <marker>``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


MARKER = "payload-ran"


def pickle_bytes(t: Path) -> bytes:
    return pickle.dumps({"conv1.weight": Payload(t / MARKER)})


def small_weights(channels: int = 3) -> dict[str, np.ndarray]:
    return init_weights(get_variant(SMALL, in_channels=channels))


def safetensors_bytes(weights: dict[str, np.ndarray]) -> bytes:
    from safetensors.numpy import save
    return save({k: np.ascontiguousarray(v) for k, v in weights.items()})


def edited(change: Callable[[dict], None], channels: int = 3) -> bytes:
    """Safetensors bytes of cifar-small's weights after ``change`` edited them."""
    weights = small_weights(channels)
    change(weights)
    return safetensors_bytes(weights)


def _set(key: str, value: Callable[[np.ndarray], np.ndarray]) -> Callable[[dict], None]:
    def change(weights: dict) -> None:
        weights[key] = value(weights[key])
    return change


def _with_value(x: float) -> Callable[[np.ndarray], np.ndarray]:
    def put(a: np.ndarray) -> np.ndarray:
        a = a.copy()
        a.flat[3] = x
        return a
    return put


#: bad canonical (safetensors) weights files for cifar-small; name -> (bytes maker, message)
BAD_SAFETENSORS: dict[str, tuple[Callable[[Path, int], bytes], str]] = {
    "empty": (lambda t, c: b"", "not a valid safetensors file"),
    "truncated": (lambda t, c: edited(lambda w: None, c)[:5000], "not a valid safetensors file"),
    "garbage": (lambda t, c: b"this is not a weights file\n" * 10, "not a valid safetensors file"),
    "wrong-magic-zip": (lambda t, c: b"PK\x03\x04" + bytes(200), "not a valid safetensors file"),
    "absurd-header-length": (lambda t, c: struct.pack("<Q", 10**15) + b"{}",
                             "not a valid safetensors file"),
    "int32": (lambda t, c: edited(_set("conv1.weight", lambda a: a.astype(np.int32)), c),
              "dtype int32, expected a float type"),
    "nan": (lambda t, c: edited(_set("fc3.weight", _with_value(np.nan)), c), "NaN or Inf"),
    "inf": (lambda t, c: edited(_set("conv2.bias", _with_value(-np.inf)), c), "NaN or Inf"),
    "extra-key": (lambda t, c: edited(lambda w: w.update(extra=np.zeros(3, np.float32)), c),
                  "unexpected key 'extra'"),
    "missing-key": (lambda t, c: edited(lambda w: w.pop("fc4.bias"), c), "missing key 'fc4.bias'"),
    "wrong-shape": (lambda t, c: edited(_set("fc5.weight", lambda a: a[:, :10].copy()), c),
                    "'fc5.weight' has shape (10, 10)"),
    "scalar": (lambda t, c: edited(_set("fc5.bias", lambda a: np.float32(1.0) * np.ones(())), c),
               "'fc5.bias' has shape"),
    "pickle": (lambda t, c: pickle_bytes(t), "not a valid safetensors file"),
}


def write(rel: str, data: bytes | Callable[[Path], bytes]) -> Callable[[Path], None]:
    def make(t: Path) -> None:
        path = t / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data(t) if callable(data) else data)
    return make


def mkdir(rel: str) -> Callable[[Path], None]:
    return lambda t: (t / rel).mkdir(parents=True, exist_ok=True)


def idx(magic: int, shape: tuple[int, ...], payload: bytes | None = None) -> bytes:
    """An IDX file (not yet gzipped): header and ``payload`` (zeros to fit ``shape`` if None)."""
    header = struct.pack(f">I{len(shape)}I", magic, *shape)
    return header + (bytes(int(np.prod(shape))) if payload is None else payload)


def fashion(n: int = 4, **replace: bytes) -> Callable[[Path], None]:
    """A small Fashion-MNIST folder ``fm/``; ``replace`` maps a file's key (train_images,
    train_labels, test_images, test_labels) to its raw (already gzipped or not) bytes."""
    def make(t: Path) -> None:
        d = t / "fm"
        d.mkdir()
        files = {
            "train_images": ("train-images-idx3-ubyte.gz", gzip.compress(idx(2051, (n, 28, 28)))),
            "train_labels": ("train-labels-idx1-ubyte.gz", gzip.compress(idx(2049, (n,)))),
            "test_images": ("t10k-images-idx3-ubyte.gz", gzip.compress(idx(2051, (n, 28, 28)))),
            "test_labels": ("t10k-labels-idx1-ubyte.gz", gzip.compress(idx(2049, (n,)))),
        }
        for key, (name, data) in files.items():
            if replace.get(key) == b"<dir>":
                (d / name).mkdir()
            else:
                (d / name).write_bytes(replace.get(key, data))
    return make


def cifar(**replace: bytes) -> Callable[[Path], None]:
    """A small CIFAR-10 binary folder ``c/cifar-10-batches-bin`` (2 records a file);
    ``replace`` maps a file's stem to its bytes (None: leave it out)."""
    def make(t: Path) -> None:
        d = t / "c" / "cifar-10-batches-bin"
        d.mkdir(parents=True)
        for stem in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            data = replace.get(stem, bytes(2 * 3073))
            if data is not None:
                (d / f"{stem}.bin").write_bytes(data)
    return make


def run_dir(config: dict | None = None, epochs: int = 1, state: bytes | None = None,
            weights: bytes | None = None) -> Callable[[Path], None]:
    """A training run in ``run/`` as ``alexnet train`` leaves it after ``epochs`` epochs of
    ``TRAIN`` below, with the given (bad) optimizer-state or weights file."""
    def make(t: Path) -> None:
        out = t / "run"
        out.mkdir()
        info = {"framework": "pytorch", "variant": SMALL, "dataset": "digits", "batch_size": 64,
                "optimizer": "sgd", "lr": None, "seed": 0, "augment": False, "subset": 8,
                **(config or {})}
        rows = [{"epoch": e, "train_loss": 1.0, "train_accuracy": 0.1, "test_accuracy": 0.1,
                 "seconds": 1.0, "images_per_second": 8.0} for e in range(1, epochs + 1)]
        (out / "metrics.json").write_text(json.dumps({"config": info, "epochs": rows}))
        (out / f"weights-epoch{epochs}.safetensors").write_bytes(
            weights if weights is not None else safetensors_bytes(small_weights(1)))
        if state is not None:
            (out / f"state-epoch{epochs}.safetensors").write_bytes(state)
    return make


def keras_nan(t: Path) -> None:
    """A Keras weights file of cifar-small whose first kernel holds a NaN."""
    import h5py

    from impls import formats
    path = t / "w.weights.h5"
    formats.write(formats.FORMATS["keras"], path, get_variant(SMALL), small_weights())
    with h5py.File(path, "r+") as f:
        found = []
        f.visit(lambda name: found.append(name) if isinstance(f[name], h5py.Dataset)
                and f[name].ndim == 4 and not found else None)
        data = f[found[0]][...]
        data.flat[0] = np.nan
        f[found[0]][...] = data


def torch_file(rel: str, make: Callable[[], object]) -> Callable[[Path], None]:
    def save(t: Path) -> None:
        import torch
        torch.save(make(), t / rel)
    return save


def torch_weights(change: Callable[[dict], None] = lambda w: None) -> dict:
    import torch
    weights = small_weights()
    change(weights)
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in weights.items()}


# --- the table -----------------------------------------------------------------------

@dataclass
class Case:
    id: str
    argv: Callable[[Path], list[str]]
    expect: tuple[str, ...]  # fragments the error must contain
    files: tuple[Callable[[Path], None], ...] = ()
    usage: bool = False  # an argparse error (SystemExit 2, "usage: ... error: ...")
    needs: tuple[str, ...] = ()  # frameworks the case reaches
    as_root: str = ""  # reason to skip when running as root (permission bits are ignored)
    marks: list = field(default_factory=list)
    env: dict = field(default_factory=dict)  # environment variables set for the case


def _p(t: Path, rel: str) -> str:
    return str(t / rel)


CASES: list[Case] = []


def case(id: str, argv, expect, *files, **kw) -> None:
    CASES.append(Case(id, argv, (expect,) if isinstance(expect, str) else tuple(expect),
                      tuple(files), **kw))


def usage(id: str, argv, expect) -> None:
    case(id, argv, expect, usage=True)


# shapes
SHAPES = ["shapes", "--variant", SMALL]
for text in ("1x1", "0x0", "abc", "3x0x32", "3x-1x32", "3x32x32x1", ""):
    usage(f"shapes-input-{text or 'empty'}", lambda t, x=text: SHAPES + ["--input", x],
          "expected CxHxW with positive integers")
case("shapes-input-3x1x1-too-small", lambda t: SHAPES + ["--input", "3x1x1"], "too small")
case("shapes-input-1x1-all-variants", lambda t: ["shapes", "--variant", "all", "--input", "3x1x1"],
     "too small")
case("shapes-unknown-variant", lambda t: ["shapes", "--variant", "alexnet9000"], "unknown variant")
for text in ("0", "-3", "abc", "1.5"):
    usage(f"shapes-num-classes-{text}", lambda t, x=text: SHAPES + ["--num-classes", x],
          "expected a positive integer")
usage("shapes-format", lambda t: SHAPES + ["--format", "yaml"], "invalid choice")

# crosscheck
CROSS = ["crosscheck", "--variant", SMALL, "--framework", "pytorch", "--check", "forward"]
for name, (make, message) in BAD_SAFETENSORS.items():
    case(f"crosscheck-weights-{name}", lambda t: CROSS + ["--weights", _p(t, "w.safetensors")],
         message, write("w.safetensors", lambda t, m=make: m(t, 3)))
case("crosscheck-weights-directory", lambda t: CROSS + ["--weights", str(t)], "not a file")
case("crosscheck-weights-missing", lambda t: CROSS + ["--weights", _p(t, "none.safetensors")],
     "does not exist")
case("crosscheck-weights-under-a-file", lambda t: CROSS + ["--weights", _p(t, "f/w.safetensors")],
     "does not exist", write("f", b"a file"))
case("crosscheck-weights-all-variants", lambda t: ["crosscheck", "--weights", _p(t, "w.safetensors")],
     "exactly one --variant", write("w.safetensors", lambda t: safetensors_bytes(small_weights())))
for text in ("0", "-1", "two"):
    usage(f"crosscheck-batch-size-{text}", lambda t, x=text: CROSS + ["--batch-size", x],
          "expected a positive integer")
usage("crosscheck-unknown-variant", lambda t: ["crosscheck", "--variant", "nope"], "unknown 'nope'")
usage("crosscheck-unknown-framework", lambda t: ["crosscheck", "--framework", "caffe"], "unknown 'caffe'")
usage("crosscheck-unknown-check", lambda t: ["crosscheck", "--check", "sideways"], "unknown 'sideways'")
usage("crosscheck-empty-framework", lambda t: ["crosscheck", "--framework", ","], "empty list")
for text in ("-1", "nan", "inf", "abc"):
    usage(f"crosscheck-rel-l2-tol-{text}", lambda t, x=text: CROSS + ["--rel-l2-tol", x],
          "expected a positive number")
usage("crosscheck-norm-max-tol-0", lambda t: CROSS + ["--norm-max-tol", "0"], "expected a positive number")
usage("crosscheck-seed-negative", lambda t: CROSS + ["--seed", "-1"], "expected an integer 0 or more")
case("crosscheck-report-is-a-file", lambda t: CROSS + ["--report", _p(t, "r")], "report directory",
     write("r", b"a file"))
case("crosscheck-report-under-a-file", lambda t: CROSS + ["--report", _p(t, "r/sub")],
     "report directory", write("r", b"a file"))
case("crosscheck-report-exists", lambda t: CROSS + ["--report", _p(t, "r")], "--force",
     write("r/crosscheck.json", b"{}"))
case("crosscheck-report-unwritable", lambda t: CROSS + ["--report", _p(t, "ro")], "not writable",
     lambda t: (t / "ro").mkdir(mode=0o500), as_root="root writes to any directory")
for text in ("", "3x32", "0x32x32", "3x-1x32", "axbxc"):
    usage(f"crosscheck-input-{text or 'empty'}", lambda t, x=text: CROSS + ["--input", x],
          "expected CxHxW with positive integers")
case("crosscheck-input-too-small", lambda t: CROSS + ["--input", "3x4x4", "--report", _p(t, "r")],
     "too small")
for text in ("0", "-3", "ten"):
    usage(f"crosscheck-num-classes-{text}", lambda t, x=text: CROSS + ["--num-classes", x],
          "expected a positive integer")
# memory (footprint.estimate): refused before anything big is allocated or any report written
FITS = ("(estimate)", "is available", "the largest batch that fits is")
case("crosscheck-batch-size-absurd",
     lambda t: CROSS + ["--batch-size", "100000000", "--report", _p(t, "r")],
     ("--batch-size 100000000 needs about",) + FITS)
case("crosscheck-input-absurd", lambda t: CROSS + ["--input", "3x100000x100000"],
     ["at --input 3x100000x100000 needs about", "not even batch 1 fits",
      "parameters of cifar-small at 3x100000x100000 alone need about"])
case("crosscheck-num-classes-absurd", lambda t: CROSS + ["--num-classes", "100000000000"],
     ["not even batch 1 fits", "parameters of cifar-small at 3x32x32 alone"])
# sizes a broken estimate would let run in seconds (an absurd one fails to allocate at once)
case("crosscheck-batch-size-over-the-limit", lambda t: CROSS + ["--batch-size", "1000"],
     ("--batch-size 1000 needs about", "is available (ALEXNET_MEMORY_LIMIT=1G)") + FITS[2:],
     env={"ALEXNET_MEMORY_LIMIT": "1G"})
# the distributed check's worker processes are counted: the forward check alone fits in 1500M
case("crosscheck-distributed-workers-do-not-fit",
     lambda t: CROSS[:-1] + ["forward,distributed"], ["needs about", "not even batch 1 fits"],
     env={"ALEXNET_MEMORY_LIMIT": "1500M"})
case("crosscheck-memory-limit-not-a-size", lambda t: CROSS, "ALEXNET_MEMORY_LIMIT='lots' is not a memory size",
     env={"ALEXNET_MEMORY_LIMIT": "lots"})

# train
TRAIN = ["train", "--framework", "pytorch", "--variant", SMALL, "--dataset", "digits",
         "--subset", "8", "--device", "cpu", "--quiet"]
for flag, text in (("--epochs", "0"), ("--epochs", "-1"), ("--epochs", "1.5"), ("--batch-size", "0"),
                   ("--subset", "0"), ("--subset", "-5")):
    usage(f"train{flag}-{text}", lambda t, f=flag, x=text: TRAIN + [f, x], "expected a positive integer")
for text in ("-0.1", "0", "nan", "inf", "ten"):
    usage(f"train-lr-{text}", lambda t, x=text: TRAIN + ["--lr", x], "expected a positive number")
usage("train-seed-negative", lambda t: TRAIN + ["--seed", "-1"], "expected an integer 0 or more")
usage("train-unknown-dataset", lambda t: TRAIN + ["--dataset", "imagenet"], "invalid choice")
usage("train-unknown-framework", lambda t: TRAIN + ["--framework", "caffe"], "invalid choice")
usage("train-unknown-variant", lambda t: TRAIN + ["--variant", "nope"], "invalid choice")
usage("train-resume-and-force", lambda t: TRAIN + ["--resume", "--force"], "not allowed with")
for text in ("0", "-1", "two"):
    usage(f"train-workers-{text}", lambda t, x=text: TRAIN + ["--workers", x], "expected a positive integer")
# refused before any worker process starts (alexnet_cli/train_workers.py)
case("train-workers-batch-does-not-split", lambda t: TRAIN + ["--batch-size", "3", "--workers", "2"],
     "--batch-size 3 does not split evenly over --workers 2")
case("train-workers-batch-over-the-images", lambda t: TRAIN + ["--batch-size", "16", "--workers", "2"],
     ["more than the 8 training images", "drop an incomplete batch"])
# a training batch never holds more than the training split: a limit makes all of it too much
# (cifar-small's 1,348 digits in one batch: ~0.8 GiB if a broken estimate let it run)
case("train-batch-size-absurd",
     lambda t: ["train", "--framework", "pytorch", "--variant", SMALL, "--dataset", "digits",
                "--epochs", "1", "--device", "cpu", "--quiet", "--batch-size", "100000000",
                "--out", _p(t, "run")],
     ("--batch-size 100000000 (a batch of all 1,348 training images) needs about",) + FITS,
     env={"ALEXNET_MEMORY_LIMIT": "500M"})
FM = ["train", "--framework", "pytorch", "--variant", SMALL, "--dataset", "fashion-mnist",
      "--device", "cpu", "--quiet", "--data-dir"]
case("train-fashion-no-data-dir", lambda t: FM[:-1], "needs --data-dir")
case("train-fashion-data-dir-missing", lambda t: FM + [_p(t, "none")], "does not exist")
case("train-fashion-data-dir-is-a-file", lambda t: FM + [_p(t, "f")], "is not a directory",
     write("f", b"a file"))
case("train-fashion-files-missing", lambda t: FM + [_p(t, "fm")], ["not found in", "download them"],
     mkdir("fm"))
case("train-fashion-images-a-directory", lambda t: FM + [_p(t, "fm")], "not found in",
     fashion(train_images=b"<dir>"))
case("train-fashion-empty-file", lambda t: FM + [_p(t, "fm")], "too short for an IDX header",
     fashion(train_images=b""))
case("train-fashion-not-gzip", lambda t: FM + [_p(t, "fm")], "not a readable gzip file",
     fashion(train_images=idx(2051, (4, 28, 28))))
case("train-fashion-truncated-gzip", lambda t: FM + [_p(t, "fm")], "not a readable gzip file",
     fashion(test_labels=gzip.compress(idx(2049, (4,)))[:-12]))
case("train-fashion-wrong-magic", lambda t: FM + [_p(t, "fm")], "magic number 2049, expected 2051",
     fashion(train_images=gzip.compress(idx(2049, (4,)))))
case("train-fashion-wrong-dtype", lambda t: FM + [_p(t, "fm")], "magic number 3331, expected 2051",
     fashion(train_images=gzip.compress(idx(0x0D03, (4, 28, 28), bytes(4 * 784 * 4)))))
case("train-fashion-truncated-images", lambda t: FM + [_p(t, "fm")], "truncated",
     fashion(test_images=gzip.compress(idx(2051, (4, 28, 28))[:-100])))
case("train-fashion-absurd-header", lambda t: FM + [_p(t, "fm")], "truncated",
     fashion(train_images=gzip.compress(idx(2051, (2**32 - 1,) * 3, b""))))
case("train-fashion-count-mismatch", lambda t: FM + [_p(t, "fm")], "4 images but 3 labels",
     fashion(train_labels=gzip.compress(idx(2049, (3,)))))
case("train-fashion-label-out-of-range", lambda t: FM + [_p(t, "fm")], "label 10 out of range",
     fashion(test_labels=gzip.compress(idx(2049, (4,), bytes([0, 1, 10, 2])))))
case("train-fashion-no-images", lambda t: FM + [_p(t, "fm")], "no images",
     fashion(n=0))
CF = ["train", "--framework", "pytorch", "--variant", SMALL, "--dataset", "cifar10",
      "--device", "cpu", "--quiet", "--data-dir"]
case("train-cifar-missing-batch", lambda t: CF + [_p(t, "c")], ["data_batch_3.bin", "not found"],
     cifar(data_batch_3=None))
case("train-cifar-truncated", lambda t: CF + [_p(t, "c")], "not a whole number",
     cifar(data_batch_2=bytes(3073 + 100)))
case("train-cifar-empty", lambda t: CF + [_p(t, "c")], "0 bytes", cifar(test_batch=b""))
case("train-cifar-python-pickle", lambda t: CF + [_p(t, "c")], "not the binary version",
     cifar(data_batch_1=pickle.dumps({"data": np.zeros((2, 3072), np.uint8)})))
case("train-cifar-label-out-of-range", lambda t: CF + [_p(t, "c")], "label 10 out of range",
     cifar(test_batch=bytes([10]) + bytes(3072)))
case("train-out-is-a-file", lambda t: TRAIN + ["--out", _p(t, "o")], "choose another --out",
     write("o", b"a file"))
case("train-out-under-a-file", lambda t: TRAIN + ["--out", _p(t, "o/run")], "choose another --out",
     write("o", b"a file"))
case("train-out-holds-a-run", lambda t: TRAIN + ["--out", _p(t, "run")], "--resume",
     run_dir(), needs=("pytorch",))
case("train-out-unwritable", lambda t: TRAIN + ["--out", _p(t, "ro/run")], "choose another --out",
     lambda t: (t / "ro").mkdir(mode=0o500), as_root="root writes to any directory")
case("train-resume-without-out", lambda t: TRAIN + ["--resume"], "--resume needs --out")
case("train-resume-missing-dir", lambda t: TRAIN + ["--resume", "--out", _p(t, "none")],
     "nothing to resume", needs=("pytorch",))
case("train-resume-empty-dir", lambda t: TRAIN + ["--resume", "--out", _p(t, "run")],
     "nothing to resume", mkdir("run"), needs=("pytorch",))
case("train-resume-bad-metrics", lambda t: TRAIN + ["--resume", "--out", _p(t, "run")],
     "not a metrics file", write("run/metrics.json", b"{\"config\": 3"), needs=("pytorch",))
case("train-resume-other-settings", lambda t: TRAIN + ["--resume", "--out", _p(t, "run")],
     "with other settings", run_dir({"optimizer": "adam"}), needs=("pytorch",))
case("train-resume-no-epoch", lambda t: TRAIN + ["--resume", "--out", _p(t, "run")],
     "no epoch was completed", run_dir(epochs=0), needs=("pytorch",))
case("train-resume-state-missing", lambda t: TRAIN + ["--resume", "--out", _p(t, "run")],
     "is missing", run_dir(), needs=("pytorch",))
case("train-resume-state-pickle", lambda t: TRAIN + ["--resume", "--out", _p(t, "run")],
     "is damaged", run_dir(state=b"\x80\x04junk" * 30), needs=("pytorch",))
case("train-resume-state-wrong-keys", lambda t: TRAIN + ["--resume", "--out", _p(t, "run")],
     "optimizer state", run_dir(state=safetensors_bytes({"bogus": np.zeros(3, np.float32)})),
     needs=("pytorch",))
case("train-resume-weights-nan", lambda t: TRAIN + ["--resume", "--out", _p(t, "run")],
     "NaN or Inf", run_dir(state=safetensors_bytes({}), weights=edited(
         _set("conv1.weight", _with_value(np.nan)), channels=1)), needs=("pytorch",))

# evaluate
EVAL = ["evaluate", "--framework", "pytorch", "--variant", SMALL, "--dataset", "digits",
        "--subset", "4", "--device", "cpu"]
for name in ("empty", "truncated", "int32", "nan", "inf", "extra-key", "missing-key", "pickle"):
    make, message = BAD_SAFETENSORS[name]
    case(f"evaluate-weights-{name}", lambda t: EVAL + ["--weights", _p(t, "w.safetensors")],
         message, write("w.safetensors", lambda t, m=make: m(t, 1)))
case("evaluate-weights-directory", lambda t: EVAL + ["--weights", str(t)], "not a file")
case("evaluate-weights-missing", lambda t: EVAL + ["--weights", _p(t, "none.safetensors")],
     "does not exist")
case("evaluate-weights-of-another-input", lambda t: EVAL + ["--weights", _p(t, "w.safetensors")],
     ["'conv1.weight' has shape (64, 3, 5, 5)", "input 1x32x32"],
     write("w.safetensors", lambda t: safetensors_bytes(small_weights(3))))
case("evaluate-weights-pytorch-file", lambda t: EVAL + ["--weights", _p(t, "w.safetensors")],
     "not a valid safetensors file", torch_file("w.safetensors", torch_weights), needs=("pytorch",))
for flag in ("--batch-size", "--subset"):
    usage(f"evaluate{flag}-0", lambda t, f=flag: EVAL + ["--weights", "w", f, "0"],
          "expected a positive integer")
usage("evaluate-no-weights", lambda t: EVAL, "--weights")
case("evaluate-data-dir-is-a-file", lambda t: EVAL[:6] + ["cifar10", "--data-dir", _p(t, "f"),
                                                         "--weights", _p(t, "f")],
     "is not a directory", write("f", b"a file"))

# bench
BENCH = ["bench", "--framework", "pytorch", "--variant", SMALL, "--device", "cpu", "--iters", "1",
         "--warmup", "0", "--quiet"]
for flag, text in (("--batch-size", "0"), ("--iters", "0"), ("--iters", "-3"), ("--matmul-size", "0"),
                   ("--batch-size", "1e9")):
    usage(f"bench{flag}-{text}", lambda t, f=flag, x=text: BENCH + [f, x], "expected a positive integer")
case("bench-batch-size-absurd", lambda t: BENCH + ["--batch-size", "100000000", "--json", _p(t, "b.json")],
     ("--batch-size 100000000 needs about",) + FITS)
case("bench-matmul-size-absurd", lambda t: BENCH + ["--matmul-size", "10000000"],
     ["--batch-size 32 with --matmul-size 10000000 needs about", "not even batch 1 fits",
      "the 10000000x10000000 peak-measuring matmul alone need about"])
usage("bench-warmup-abc", lambda t: BENCH + ["--warmup", "abc"], "invalid int value")
case("bench-warmup-negative", lambda t: BENCH + ["--warmup", "-1"], "--warmup must be 0 or more")
usage("bench-seed-negative", lambda t: BENCH + ["--seed", "-1"], "expected an integer 0 or more")
usage("bench-unknown-framework", lambda t: BENCH + ["--framework", "caffe"], "unknown 'caffe'")
usage("bench-unknown-mode", lambda t: BENCH + ["--mode", "sideways"], "unknown 'sideways'")
usage("bench-unknown-precision", lambda t: BENCH + ["--precision", "fp8"], "invalid choice")
case("bench-unknown-variant", lambda t: BENCH + ["--variant", "nope"], "unknown variant")
case("bench-tf32-on-cpu", lambda t: BENCH + ["--precision", "tf32"], "tf32 is a GPU tensor-core mode")
case("bench-plain-other-variant", lambda t: BENCH + ["--plain"], "--variant torchvision")
case("bench-json-exists", lambda t: BENCH + ["--json", _p(t, "b.json")], "--force",
     write("b.json", b"{}"))
case("bench-json-is-a-directory", lambda t: BENCH + ["--json", _p(t, "d")], "is a directory",
     mkdir("d"))
case("bench-json-is-a-directory-force", lambda t: BENCH + ["--json", _p(t, "d"), "--force"],
     "is a directory", mkdir("d"))
case("bench-json-no-folder", lambda t: BENCH + ["--json", _p(t, "no/b.json")],
     "not a writable directory")
case("bench-plot-under-a-file", lambda t: BENCH + ["--plot", _p(t, "f/b.png")],
     "not a writable directory", write("f", b"a file"))
case("bench-json-unwritable", lambda t: BENCH + ["--json", _p(t, "ro/b.json")],
     "not a writable directory", lambda t: (t / "ro").mkdir(mode=0o500),
     as_root="root writes to any directory")

# convert
CONV = ["convert", "--variant", SMALL, "--from"]
GOOD = write("w.safetensors", lambda t: safetensors_bytes(small_weights()))
for name, (make, message) in BAD_SAFETENSORS.items():
    case(f"convert-canonical-{name}", lambda t: CONV + [_p(t, "w.safetensors"), "--to", _p(t, "o.pt")],
         message, write("w.safetensors", lambda t, m=make: m(t, 3)), needs=("pytorch",))
PT_BAD = {
    "empty": (lambda: None, "is not a PyTorch state_dict"),
    "garbage": (lambda: None, "is not a PyTorch state_dict"),
    "truncated": (lambda: None, "is not a PyTorch state_dict"),
    "not-a-dict": (lambda: __import__("torch").zeros(3), "holds no state_dict"),
    "non-tensor-values": (lambda: {"conv1.weight": [1, 2, 3]}, "holds no state_dict"),
    "int32": (lambda: torch_weights(_set("conv1.weight", lambda a: a.astype(np.int32))),
              "'conv1.weight' has dtype torch.int32"),
    "nan": (lambda: torch_weights(_set("fc3.weight", _with_value(np.nan))), "NaN or Inf"),
    "inf": (lambda: torch_weights(_set("fc3.bias", _with_value(np.inf))), "NaN or Inf"),
    "extra-key": (lambda: torch_weights(lambda w: w.update(extra=np.zeros(3, np.float32))),
                  "unexpected key 'extra'"),
    "missing-key": (lambda: torch_weights(lambda w: w.pop("conv2.weight")), "missing key 'conv2.weight'"),
    "wrong-shape": (lambda: torch_weights(_set("fc4.bias", lambda a: a[:5].copy())),
                    "'fc4.bias' has shape (5,)"),
}
for name, (make, message) in PT_BAD.items():
    if name == "empty":
        files = write("w.pt", b"")
    elif name == "garbage":
        files = write("w.pt", b"not a torch file\n" * 20)
    elif name == "truncated":
        def files(t: Path) -> None:
            torch_file("full.pt", torch_weights)(t)
            (t / "w.pt").write_bytes((t / "full.pt").read_bytes()[:3000])
            (t / "full.pt").unlink()
    else:
        files = torch_file("w.pt", make)
    case(f"convert-pytorch-{name}", lambda t: CONV + [_p(t, "w.pt"), "--to", _p(t, "o.safetensors")],
         message, files, needs=("pytorch",))
case("convert-pytorch-wrong-magic", lambda t: CONV + [_p(t, "w.pt"), "--to", _p(t, "o.safetensors")],
     "is not a PyTorch state_dict", write("w.pt", lambda t: safetensors_bytes(small_weights())),
     needs=("pytorch",))
case("convert-torchvision-pickle",
     lambda t: CONV[:2] + ["torchvision", "--from", "torchvision:" + _p(t, "w.pt"), "--to",
                           _p(t, "o.safetensors")],
     "only running pickled code", lambda t: __import__("torch").save(
         {"features.0.weight": Payload(t / MARKER)}, t / "w.pt"), needs=("pytorch",))
case("convert-torchvision-empty",
     lambda t: CONV[:2] + ["torchvision", "--from", "torchvision:" + _p(t, "w.pt"), "--to",
                           _p(t, "o.safetensors")],
     "is not a PyTorch state_dict", write("w.pt", b""), needs=("pytorch",))
case("convert-torchvision-wrong-variant",
     lambda t: CONV + ["torchvision:" + _p(t, "w.pt"), "--to", _p(t, "o.safetensors")],
     "--variant torchvision", write("w.pt", b""), needs=("pytorch",))
for name, data in (("empty", b""), ("garbage", b"\x89HDF\r\n\x1a\nnot really" * 10),
                   ("pickle", None), ("safetensors", b"<st>")):
    def keras_file(t: Path, d=data) -> None:
        content = pickle_bytes(t) if d is None else (
            safetensors_bytes(small_weights()) if d == b"<st>" else d)
        (t / "w.weights.h5").write_bytes(content)
    case(f"convert-keras-{name}",
         lambda t: CONV + [_p(t, "w.weights.h5"), "--to", _p(t, "o.safetensors")],
         "is not a Keras .weights.h5 file", keras_file, needs=("tensorflow",))
case("convert-keras-nan", lambda t: CONV + [_p(t, "w.weights.h5"), "--to", _p(t, "o.safetensors")],
     "NaN or Inf", keras_nan, needs=("tensorflow",))
for name, data in (("empty", b""), ("garbage", b"not params" * 10), ("pickle", None)):
    case(f"convert-gluon-{name}", lambda t: CONV + [_p(t, "w.params"), "--to", _p(t, "o.safetensors")],
         "is not a Gluon .params file",
         write("w.params", (lambda t: pickle_bytes(t)) if data is None else data), needs=("mxnet",))


def gluon_int32(t: Path) -> None:
    import mxnet as mx
    from impls.mxnet_gluon.convert import structural_names
    names = structural_names(get_variant(SMALL))
    arrays = {names[k]: mx.nd.array(v, dtype="int32" if k == "conv1.weight" else "float32")
              for k, v in small_weights().items()}
    mx.nd.save(str(t / "w.params"), arrays)


case("convert-gluon-int32", lambda t: CONV + [_p(t, "w.params"), "--to", _p(t, "o.safetensors")],
     "has dtype int32, not a float type", gluon_int32, needs=("mxnet",))


def caffe_bytes(drop: str | None = None, **change) -> Callable[[Path], bytes]:
    """A .caffemodel of cifar-small (written by tests/test_caffe_format.py's own encoder),
    without layer ``drop``, or with weights changed (``_set``-style: key -> function)."""
    def make(t: Path) -> bytes:
        from tests.test_caffe_format import caffemodel_bytes
        weights = small_weights()
        for key, value in change.items():
            weights[key.replace("_", ".")] = value(weights[key.replace("_", ".")])
        return caffemodel_bytes(get_variant(SMALL), weights, drop=drop)
    return make


CAFFE_BAD = {
    "empty": (lambda t: b"", "the file is empty"),
    "garbage": (lambda t: b"this is not a weights file\n" * 10, "wire type 4"),
    "truncated": (lambda t: caffe_bytes()(t)[:50_000], "(a truncated file?)"),
    "length-beyond-the-end": (lambda t: b"\xa2\x06\xff\xff\xff\xff\x0f" + bytes(10), "but only 10 are left"),
    "pickle": (lambda t: pickle_bytes(t), "is not a Caffe .caffemodel"),
    "safetensors": (lambda t: safetensors_bytes(small_weights()), "is not a Caffe .caffemodel"),
    "missing-layer": (caffe_bytes(drop="fc4"), "fc4 is not among the names"),
    "wrong-shape": (caffe_bytes(fc3_weight=lambda a: a[:, :1000].copy()),
                    "'fc3.weight' has shape (384, 1000)"),
    "nan": (caffe_bytes(conv2_bias=_with_value(np.nan)), "NaN or Inf"),
}
for name, (make, message) in CAFFE_BAD.items():
    case(f"convert-caffe-{name}",
         lambda t: CONV + [_p(t, "w.caffemodel"), "--to", _p(t, "o.safetensors")], message,
         write("w.caffemodel", make))
case("convert-caffe-bgr-to-rgb-from-canonical",
     lambda t: CONV + [_p(t, "w.safetensors"), "--to", _p(t, "o.safetensors"), "--bgr-to-rgb"],
     "--bgr-to-rgb is for Caffe's BGR models: it needs --from caffe:FILE", GOOD)
case("convert-caffe-rgb-to-bgr-to-canonical",
     lambda t: CONV + [_p(t, "w.safetensors"), "--to", _p(t, "o.safetensors"), "--rgb-to-bgr"],
     "it needs --to caffe:FILE", GOOD)
case("convert-caffe-bgr-to-rgb-caffe-to-caffe",
     lambda t: CONV + [_p(t, "w.caffemodel"), "--to", _p(t, "o.caffemodel"), "--bgr-to-rgb"],
     "caffe on both sides", write("w.caffemodel", caffe_bytes()))
case("convert-caffe-bgr-to-rgb-one-channel",
     lambda t: CONV + [_p(t, "w.caffemodel"), "--to", _p(t, "o.safetensors"), "--bgr-to-rgb",
                       "--variant", "d2l"], "takes 1 input channel", write("w.caffemodel", caffe_bytes()))
usage("convert-caffe-both-channel-orders",
      lambda t: CONV + ["w.caffemodel", "--to", "o.safetensors", "--bgr-to-rgb", "--rgb-to-bgr"],
      "not allowed with argument")
case("convert-caffe-target-exists",
     lambda t: CONV + [_p(t, "w.safetensors"), "--to", _p(t, "o.caffemodel")], "--force",
     GOOD, write("o.caffemodel", b"keep me"))
for fmt, suffix in (("canonical", "safetensors"), ("pytorch", "pt"), ("keras", "weights.h5"),
                    ("gluon", "params"), ("caffe", "caffemodel")):
    case(f"convert-{fmt}-directory", lambda t, s=suffix: CONV + [_p(t, f"d.{s}"), "--to",
                                                                  _p(t, "o.safetensors")],
         "not a file", mkdir(f"d.{suffix}"), needs=() if fmt in ("canonical", "caffe") else (
             {"pytorch": "pytorch", "keras": "tensorflow", "gluon": "mxnet"}[fmt],))
case("convert-target-exists", lambda t: CONV + [_p(t, "w.safetensors"), "--to", _p(t, "o.pt")],
     "--force", GOOD, write("o.pt", b"keep me"))
case("convert-target-folder-missing",
     lambda t: CONV + [_p(t, "w.safetensors"), "--to", _p(t, "no/o.pt")], "create it first", GOOD)
case("convert-target-under-a-file",
     lambda t: CONV + [_p(t, "w.safetensors"), "--to", _p(t, "f/o.pt")], "not a folder",
     GOOD, write("f", b"a file"))
case("convert-target-is-a-directory",
     lambda t: CONV + [_p(t, "w.safetensors"), "--to", "pytorch:" + _p(t, "d")], "is a directory",
     GOOD, mkdir("d"))
case("convert-target-unwritable",
     lambda t: CONV + [_p(t, "w.safetensors"), "--to", _p(t, "ro/o.pt")], "not writable",
     GOOD, lambda t: (t / "ro").mkdir(mode=0o500), as_root="root writes to any directory")
case("convert-unknown-format", lambda t: CONV + ["darknet:" + _p(t, "w.weights"), "--to",
                                                 _p(t, "o.pt")], "cannot tell the format")
case("convert-unknown-variant", lambda t: ["convert", "--variant", "nope", "--from",
                                           _p(t, "w.safetensors"), "--to", _p(t, "o.pt")],
     "unknown variant", GOOD)
case("convert-wrong-num-classes",
     lambda t: CONV + [_p(t, "w.safetensors"), "--to", _p(t, "o.safetensors"), "--num-classes", "7"],
     "'fc5.weight' has shape (10, 192)", GOOD)
usage("convert-num-classes-0", lambda t: CONV + ["w.safetensors", "--to", "o.pt", "--num-classes", "0"],
      "expected a positive integer")


# inspect
def _model_file(body: str) -> Callable[[Path], None]:
    return write("m.py", ("import torch\nfrom torch import nn\n" + body).encode())


def inspect_argv(target: str, *more: str):
    """``alexnet inspect`` arguments; "@" stands for the test's folder."""
    return lambda t: [a.replace("@", str(t) + "/") for a in ("inspect", "--model", target, *more)]


TINY_NET = _model_file("def f():\n    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), "
                       "nn.LazyLinear(2))\n")
case("inspect-target-without-factory", inspect_argv("model.py"), "expected path/to/file.py:factory")
case("inspect-file-missing", inspect_argv("@missing.py:f"), "no file")
case("inspect-file-fails-to-import", inspect_argv("@m.py:f"), "importing",
     write("m.py", b"raise RuntimeError('broken on purpose')\n"))
case("inspect-module-missing", inspect_argv("no_such_module_here:f"), "cannot import no_such_module_here")
case("inspect-factory-missing", inspect_argv("@m.py:g"), "has no 'g'", write("m.py", b"def f():\n    pass\n"))
case("inspect-factory-raises", inspect_argv("@m.py:f"), "calling it raised",
     write("m.py", b"def f():\n    raise ValueError('no model today')\n"))
case("inspect-factory-returns-no-model", inspect_argv("@m.py:f"), "not a torch.nn.Module",
     write("m.py", b"def f():\n    return 3\n"))
case("inspect-model-without-parameters", inspect_argv("@m.py:f"), "no parameters",
     _model_file("def f():\n    return nn.Sequential(nn.ReLU())\n"), needs=("pytorch",))
case("inspect-model-without-convolutions", inspect_argv("@m.py:f"), "both convolutions and dense",
     _model_file("def f():\n    return nn.Sequential(nn.Flatten(), nn.LazyLinear(4))\n"),
     needs=("pytorch",))
case("inspect-model-of-no-variant-structure", inspect_argv("@m.py:f"), "no variant has that structure",
     TINY_NET, needs=("pytorch",))
case("inspect-model-refuses-every-input", inspect_argv("@m.py:f"), "ran at none of the input shapes",
     _model_file("class M(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
                 "        self.c = nn.Conv2d(3, 4, 3)\n        self.d = nn.Linear(4, 2)\n"
                 "    def forward(self, x):\n        raise RuntimeError('refused')\n"
                 "def f():\n    return M()\n"), needs=("pytorch",))
case("inspect-unknown-variant", inspect_argv("@m.py:f", "--variant", "nope"), "--variant 'nope'", TINY_NET)
case("inspect-map-missing", inspect_argv("@m.py:f", "--map", "@nomap.json"), "--map", TINY_NET)
case("inspect-map-not-json", inspect_argv("@m.py:f", "--map", "@map.json"), "not JSON", TINY_NET,
     write("map.json", b"{conv1: features.0"))
case("inspect-map-not-strings", inspect_argv("@m.py:f", "--map", "@map.json"),
     "expected an object of strings", TINY_NET, write("map.json", b'{"conv1": 3}'))
case("inspect-map-bad-flatten", inspect_argv("@m.py:f", "--map", "@map.json"), '"flatten" is',
     TINY_NET, write("map.json", b'{"flatten": "whc"}'))
case("inspect-export-exists", inspect_argv("@m.py:f", "--export", "@w.safetensors"), "--force",
     TINY_NET, write("w.safetensors", b"keep me"))
case("inspect-export-folder-missing", inspect_argv("@m.py:f", "--export", "@no/w.safetensors"),
     "create it first", TINY_NET)
case("inspect-report-exists", inspect_argv("@m.py:f", "--report", "@r"), "--force", TINY_NET,
     write("r/inspect.json", b"{}"))
for text in ("3x0x4", "abc"):
    usage(f"inspect-input-{text}", inspect_argv("m.py:f", "--input", text), "expected CxHxW")
usage("inspect-batch-size-0", inspect_argv("m.py:f", "--batch-size", "0"), "expected a positive integer")


# init
INIT = ["init", "--variant", SMALL, "--out"]
case("init-unknown-variant", lambda t: ["init", "--variant", "nope", "--out", _p(t, "w.safetensors")],
     "unknown variant")
case("init-out-exists", lambda t: INIT + [_p(t, "w.safetensors")], "--force",
     write("w.safetensors", b"keep me"))
case("init-out-folder-missing", lambda t: INIT + [_p(t, "no/w.safetensors")], "create it first")
case("init-out-is-a-directory", lambda t: INIT + [_p(t, "d")], "is a directory", mkdir("d"))
case("init-input-too-small", lambda t: INIT + [_p(t, "w.safetensors"), "--input", "3x4x4"], "too small")
usage("init-seed-negative", lambda t: INIT + ["w.safetensors", "--seed", "-1"], "expected an integer 0 or more")
usage("init-out-missing", lambda t: ["init", "--variant", SMALL], "--out")


# --- the test --------------------------------------------------------------------------

def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file (its bytes) and folder (None) under ``root``."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(root.rglob("*"))}


def _command(argv: list[str]) -> str:
    return next(a for a in argv if not a.startswith("-"))


@pytest.mark.parametrize("bad", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_a_clean_exit_2(tmp_path, capsys, monkeypatch, bad: Case):
    if bad.as_root and IS_ROOT:
        pytest.skip(f"running as root: {bad.as_root}")
    for framework in bad.needs:
        backend_or_skip(framework)
    monkeypatch.chdir(tmp_path)  # nothing may land in the working directory either
    for name, value in bad.env.items():
        monkeypatch.setenv(name, value)
    for make in bad.files:
        make(tmp_path)
    before = snapshot(tmp_path)
    argv = bad.argv(tmp_path)
    try:
        if bad.usage:
            with pytest.raises(SystemExit) as exit_info:
                main(argv)
            code = exit_info.value.code
        else:
            code = main(argv)
    finally:
        for ro in tmp_path.rglob("ro"):
            ro.chmod(0o700)  # let pytest clean up
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    if bad.usage:
        assert err.startswith("usage: alexnet"), err
        assert "error:" in err
    else:
        assert err.startswith(f"alexnet {_command(argv)}: error:"), err
        assert "\n" not in err.strip(), f"not one paragraph: {err!r}"
    for fragment in bad.expect:
        assert fragment in err, f"{fragment!r} not in {err!r}"
    assert not (tmp_path / MARKER).exists(), "a pickle payload ran"
    assert snapshot(tmp_path) == before, "a file was changed, created or removed"


def test_the_table_covers_every_command():
    commands = {_command(c.argv(Path("/t"))) for c in CASES}
    assert commands == {"shapes", "crosscheck", "train", "evaluate", "bench", "convert", "inspect", "init"}
    assert len(CASES) >= 100, len(CASES)
    assert len({c.id for c in CASES}) == len(CASES), "case ids must be unique"


def test_debug_shows_the_traceback(tmp_path, capsys):
    (tmp_path / "w.safetensors").write_bytes(b"")
    with pytest.raises(Exception, match="not a valid safetensors file"):
        main(["--debug", "crosscheck", "--variant", SMALL, "--weights", str(tmp_path / "w.safetensors")])


# --- pickle payloads -------------------------------------------------------------------

LOADERS = ["load_weights", "formats.read-canonical", "formats.read-pytorch",
           "formats.read-torchvision", "formats.read-gluon", "formats.read-gluon-zoo",
           "formats.read-keras", "formats.read-caffe", "evaluate", "crosscheck", "train-resume-state",
           "train-resume-weights", "data-cifar10", "data-fashion-mnist"]


@pytest.mark.parametrize("loader", LOADERS)
def test_a_pickle_payload_is_refused_and_never_runs(tmp_path, capsys, monkeypatch, loader):
    """Every place the package reads a file a user hands it refuses a pickle whose
    ``__reduce__`` would run a command, and the command never runs."""
    from common import data
    from common.weights import WeightsError, load_weights
    from impls import formats

    monkeypatch.chdir(tmp_path)
    marker = tmp_path / MARKER
    evil = pickle.dumps({"conv1.weight": Payload(marker)})
    variant = get_variant(SMALL)
    if loader.startswith("formats.read-"):
        fmt = formats.FORMATS[loader.removeprefix("formats.read-")]
        if fmt.framework:
            backend_or_skip(fmt.framework)
        path = tmp_path / f"evil{fmt.suffixes[0]}"
        if fmt.framework == "pytorch":
            import torch
            torch.save({"features.0.weight" if fmt.zoo else "conv1.weight": Payload(marker)}, path)
        else:
            path.write_bytes(evil)
        with pytest.raises(WeightsError):
            formats.read(fmt, path, get_variant("torchvision") if fmt.zoo else variant)
    elif loader == "load_weights":
        path = tmp_path / "evil.safetensors"
        path.write_bytes(evil)
        with pytest.raises(WeightsError, match="not a valid safetensors file"):
            load_weights(path, variant)
    elif loader.startswith("data-"):
        if loader == "data-cifar10":
            d = tmp_path / "cifar-10-batches-bin"
            d.mkdir()
            for name in data.CIFAR_FILES["train"] + data.CIFAR_FILES["test"]:
                (d / name).write_bytes(evil)
        else:
            for name in data.FASHION_FILES["train"] + data.FASHION_FILES["test"]:
                (tmp_path / name).write_bytes(gzip.compress(evil))
        with pytest.raises(data.DataError):
            data.load(loader.removeprefix("data-"), "train", tmp_path)
    else:
        backend_or_skip("pytorch")
        (tmp_path / "evil.safetensors").write_bytes(evil)
        if loader == "evaluate":
            argv = EVAL + ["--weights", "evil.safetensors"]
        elif loader == "crosscheck":
            argv = CROSS + ["--weights", "evil.safetensors"]
        else:
            run_dir(state=evil if loader == "train-resume-state" else safetensors_bytes({}),
                    weights=evil if loader == "train-resume-weights" else None)(tmp_path)
            argv = TRAIN + ["--resume", "--out", "run"]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"alexnet {argv[0]}: error:") and "Traceback" not in err, err
    assert not marker.exists(), "the pickle payload ran"

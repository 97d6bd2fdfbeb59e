"""``alexnet bench``: honest timing (warm-up, synchronization), the spec's FLOP arithmetic,
every framework end to end on a tiny CPU batch, and the fast paths under the crosscheck.
No test asserts a speed: figures belong in benchmarks, not in tests."""

from __future__ import annotations

import dataclasses
import json
import threading
import time

import numpy as np
import pytest

from alexnet_cli.main import main
from benchmark.config import BenchConfig
from benchmark.run import BenchRow, FrameworkResult, flops_per_batch, run_bench, set_device_peaks
from benchmark.timing import Timing, time_calls
from common import reference, reference_backward
from common.inputs import crosscheck_batch
from common.spec import Variant
from common.variants import get_variant
from common.weights import init_weights
from crosscheck.compare import DEFAULT_TOLERANCES
from crosscheck.fastpath import check_fast_paths
from tests.conftest import FRAMEWORK_NAMES, backend_or_skip
from tests.test_frameworks import odd_variant

TINY = BenchConfig(variant="cifar-small", batch_size=2, device="cpu", warmup=1, iters=2,
                   matmul_size=64, progress=False)


def test_flops_are_the_spec_macs():
    """torchvision: 714,188,480 MACs per 224x224 image (DESIGN.md); 2x forward, 6x train."""
    assert flops_per_batch("torchvision", "forward", 32) == 2 * 714_188_480 * 32
    assert flops_per_batch("torchvision", "train", 128) == 6 * 714_188_480 * 128


class AsyncDevice:
    """A device whose calls return at once and whose work finishes ``seconds`` later."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.calls, self.pending = seconds, 0, None

    def call(self) -> None:
        self.calls += 1
        self.pending = threading.Thread(target=time.sleep, args=(self.seconds,))
        self.pending.start()

    def sync(self) -> None:
        if self.pending is not None:
            self.pending.join()


def test_time_calls_waits_for_the_device_and_skips_warmup():
    device = AsyncDevice(0.02)
    times = time_calls(device.call, device.sync, warmup=3, iters=4)
    assert device.calls == 7 and len(times) == 4
    assert min(times) >= 0.02
    # the planted bug: a clock read without synchronizing times the queueing only
    unsynced = time_calls(device.call, lambda: None, warmup=0, iters=4)
    device.sync()
    assert max(unsynced) < 0.01


def test_timing_statistics():
    t = Timing.of([0.1, 0.2, 0.3, 1.0])
    assert (t.mean, t.median, t.best, t.n) == (pytest.approx(0.4), pytest.approx(0.25), 0.1, 4)
    assert t.std == pytest.approx(np.std([0.1, 0.2, 0.3, 1.0], ddof=1))


def test_percent_of_peak_is_against_the_devices_best_matmul():
    def result(name, device, seconds):
        return FrameworkResult(name, "ok", device=device, matmul_n=1000,
                               peak=Timing.of([seconds]))

    # own matmuls of 200, 500 and 100 GFLOP/s; two frameworks share the CPU
    results = [result("a", "cpu", 0.01), result("b", "cpu", 0.004), result("c", "cuda:0", 0.02)]
    rows = [BenchRow(r.framework, "forward", Timing.of([1.0]), 1, int(300e9), r.matmul_gflops, 0, "")
            for r in results]
    set_device_peaks(results, rows)
    assert [(r.peak_by, round(r.peak_gflops)) for r in rows] == [("b", 500), ("b", 500), ("c", 100)]
    assert [round(r.percent_of_peak) for r in rows] == [60, 60, 300]


@pytest.mark.parametrize("name", FRAMEWORK_NAMES)
def test_bench_runs_end_to_end(name):
    backend_or_skip(name)
    run = run_bench([name], TINY)
    assert run.ok, run.frameworks[0].message
    assert [r.mode for r in run.rows] == ["forward", "train"]
    for row in run.rows:
        assert len(row.times) == 2 and row.timing.median > 0 and row.memory > 0
        assert row.flops == flops_per_batch("cifar-small", row.mode, 2)
        assert np.isfinite(row.percent_of_peak) and row.percent_of_peak > 0
    assert run.frameworks[0].matmul_gflops > 0 and run.frameworks[0].matmul_n == 64


def test_bench_cli_writes_json_and_plot_and_never_overwrites(tmp_path, capsys):
    for name in FRAMEWORK_NAMES:
        backend_or_skip(name)
    out, png = tmp_path / "bench.json", tmp_path / "bench.png"
    args = ["bench", "--variant", "cifar-small", "--batch-size", "2", "--warmup", "0",
            "--iters", "2", "--device", "cpu", "--matmul-size", "64", "--quiet",
            "--json", str(out), "--plot", str(png)]
    assert main(args) == 0
    table = capsys.readouterr().out
    assert all(name in table for name in FRAMEWORK_NAMES) and "% of peak" in table
    saved = json.loads(out.read_text())
    assert len(saved["rows"]) == 6 and all(len(r["times"]) == 2 for r in saved["rows"])
    assert sorted(r["vs_fastest"] for r in saved["rows"] if r["mode"] == "train")[0] == 1.0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    before = out.read_bytes()
    assert main(args) == 2  # exists: nothing runs, nothing is written
    assert out.read_bytes() == before
    assert "--force" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--precision", "tf32", "--device", "cpu"], "tf32 is a GPU"),
    (["--variant", "vgg"], "vgg"),
    (["--json", "/nonexistent-dir/x.json"], "not a writable directory"),
    (["--mode", "backward"], "backward"),
])
def test_bench_bad_input_exits_2(args, message, capsys):
    try:
        code = main(["bench", "--framework", "pytorch", "--iters", "1", *args])
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    assert code == 2
    assert message in capsys.readouterr().err


def fast_path_case(name: str | Variant, **size):
    """(variant, weights, x, labels, float64 output, float64 gradients): a registered
    variant by name (at ``size``), or a Variant itself."""
    variant = name if isinstance(name, Variant) else get_variant(name, **size)
    weights = init_weights(variant, seed=0)
    x = crosscheck_batch(variant, 2, seed=0)
    labels = np.arange(len(x)) % variant.num_classes
    ref_out = reference.forward(variant, weights, x)[variant.layers[-1].name]
    ref_grads = reference_backward.backward(variant, weights, x, labels)[4]
    return variant, weights, x, labels, ref_out, ref_grads


@pytest.mark.parametrize("variant_name, size", [("cifar-small", {}), ("paper", {"input_size": (99, 99)}),
                                                ("tf-benchmark", {"input_size": (67, 67)})])
def test_fast_paths_compute_the_same_function(backend, variant_name, size):
    """Grouped convolutions (paper), SAME padding and a final Softmax (tf-benchmark)."""
    run = check_fast_paths(backend, *fast_path_case(variant_name, **size))
    assert run.status == "pass", (run.error, run.output, run.worst_gradient)
    assert any(run.fast_paths.values()), run.fast_paths  # a fast path was on


def test_torch_compile_computes_the_same_function():
    """The optional fast path (--compile), not in the crosscheck's default, on the network
    with every layer option AlexNet's variants leave unused (LRN, groups, SAME and
    asymmetric padding, ceil pools, adaptive pooling, a final Softmax). Inductor compiles
    cold in every CI run: tf-benchmark's 22 layers took 66-96 s here, these 12 layers 45 s."""
    from impls.base import FastPaths
    backend = backend_or_skip("pytorch")
    run = check_fast_paths(backend, *fast_path_case(odd_variant()), fast=FastPaths(compile=True))
    assert run.status == "pass", (run.error, run.output, run.worst_gradient)
    assert run.fast_paths["compile"]


def test_planted_fast_path_bugs_are_caught(monkeypatch):
    """A compiled forward traced in training mode (dropout on), and gradients taken
    with dropout on: each fails the check."""
    case = fast_path_case("d2l", input_size=(67, 67))
    from impls.tensorflow import bench as tf_bench
    backend = backend_or_skip("tensorflow")
    real_init = tf_bench.TensorFlowBench.__init__

    def traced_in_training_mode(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        self._forward = tf_bench.tf.function(lambda: self.model(self.x, training=True),
                                             jit_compile=True)
    monkeypatch.setattr(tf_bench.TensorFlowBench, "__init__", traced_in_training_mode)
    run = check_fast_paths(backend, *case)
    assert run.status == "FAIL" and run.error is None and not run.output.passes(DEFAULT_TOLERANCES)

    from impls.mxnet_gluon import bench as mx_bench
    backend = backend_or_skip("mxnet")
    monkeypatch.setattr(mx_bench.MXNetBench, "gradients",
                        lambda self: (self.train(),  # dropout on
                                      {k: p.grad(self.ctx).asnumpy()
                                       for k, p in mx_bench.parameters(self.model).items()})[1])
    run = check_fast_paths(backend, *case)
    assert run.status == "FAIL" and run.error is None and run.output.passes(DEFAULT_TOLERANCES)
    assert run.worst_gradient[1] > 0.1


@pytest.mark.parametrize("name", FRAMEWORK_NAMES)
def test_plain_yardstick_runs_beside_the_spec_model(name):
    """--plain: the hand-written torchvision AlexNet of each framework, same batch and fast
    paths, as a row of its own; same FLOPs (it is the same network)."""
    backend_or_skip(name)
    config = dataclasses.replace(TINY, variant="torchvision", batch_size=1, modes=("train",),
                                 plain=True)
    run = run_bench([name], config)
    assert run.ok, [f.message for f in run.frameworks]
    assert [r.framework for r in run.rows] == [name, f"{name} (plain)"]
    assert run.rows[0].flops == run.rows[1].flops


@pytest.mark.parametrize("planted", [False, True])
def test_crosscheck_fastpath_check_reports_and_fails(planted, monkeypatch, tmp_path, capsys):
    """`alexnet crosscheck --check fastpath` passes the real fast path and fails, with exit
    status 1, one whose compiled forward was traced in training mode (dropout on)."""
    backend_or_skip("tensorflow")
    from impls.tensorflow import bench as tf_bench
    if planted:
        real_init = tf_bench.TensorFlowBench.__init__

        def traced_in_training_mode(self, *args, **kwargs):
            real_init(self, *args, **kwargs)
            self._forward = tf_bench.tf.function(lambda: self.model(self.x, training=True))
        monkeypatch.setattr(tf_bench.TensorFlowBench, "__init__", traced_in_training_mode)
    code = main(["crosscheck", "--variant", "torchvision", "--framework", "tensorflow",
                 "--check", "forward,fastpath", "--device", "cpu", "--quiet",
                 "--report", str(tmp_path)])
    saved = json.loads((tmp_path / "crosscheck.json").read_text())
    fast = saved["variants"][0]["fast_paths"]
    assert [f["framework"] for f in fast] == ["tensorflow"] and fast[0]["fast_paths"] == {"xla": True}
    assert "### fast paths" in (tmp_path / "crosscheck.md").read_text()
    if planted:
        assert code == 1 and fast[0]["status"] == "FAIL"
        assert "torchvision/tensorflow fastpath" in capsys.readouterr().out
    else:
        assert code == 0 and fast[0]["status"] == "pass"


def test_device_label_names_the_benchmarks_own_tf32_setting():
    from benchmark.worker import bench_device_label
    crosscheck = "cuda (NVIDIA H200), TF32 off, cuDNN deterministic"
    assert bench_device_label(crosscheck, "tf32") == "cuda (NVIDIA H200), TF32 on"
    assert bench_device_label(crosscheck, "bf16") == "cuda (NVIDIA H200), TF32 off"
    assert bench_device_label("cpu", "fp32") == "cpu"


def test_a_bench_session_leaves_the_crosscheck_exact_cudnn_settings_behind():
    """Found on an H200: the fastpath check's session switched cuDNN to benchmark mode, and
    the next variant's gradients ran other algorithms (non-deterministic; and cuDNN's are not
    float32-exact: 1.6e-4 off float64). Every model the crosscheck builds restores its
    exact settings (impls.pytorch.backend.cuda_numerics)."""
    from impls.base import FastPaths
    backend = backend_or_skip("pytorch")
    import torch
    variant = get_variant("cifar-small")
    weights, x = init_weights(variant, 0), crosscheck_batch(variant, 2, 0)
    cudnn = torch.backends.cudnn
    backend.bench_session(variant, weights, x, np.array([0, 1]), FastPaths(), "fp32")
    assert cudnn.enabled and cudnn.benchmark and not cudnn.deterministic
    backend.build(variant, weights)
    assert not cudnn.enabled and not cudnn.benchmark and cudnn.deterministic
    assert not cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32

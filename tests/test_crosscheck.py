"""The crosscheck must be able to fail: plant a known porting bug and assert it is
caught at the layer where it is born, and only in the framework that has it."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from safetensors.numpy import save_file

import impls.base
from alexnet_cli.main import main
from common import reference
from common.inputs import normal_batch
from common.spec import symmetric
from common.variants import get_variant
from common.weights import init_weights, save_weights
from crosscheck.compare import DEFAULT_TOLERANCES
from crosscheck.run import FAIL, PASS, layer_results, run_crosscheck
from tests.conftest import backend_or_skip
from tests.test_frameworks import odd_variant

QUIET = ["--quiet"]


def check(variant: str, framework: str):
    """Run one framework on one variant; return its FrameworkRun."""
    backend_or_skip(framework)
    run = run_crosscheck([variant], [framework], device="cpu")
    return run.variants[0].frameworks[0]


def assert_caught(result, layer: str):
    assert result.status == FAIL, "the planted bug went unnoticed"
    assert result.first_divergence.name == layer
    assert all(l.passed for l in result.layers[:[l.name for l in result.layers].index(layer)])


def patch_layer(monkeypatch, module, layer_name: str, **changes):
    """Make ``module.make_layer`` build ``layer_name`` with some spec fields changed."""
    original = module.make_layer

    def make_layer(info):
        if info.name == layer_name:
            info = replace(info, layer=replace(info.layer, **changes))
            if "padding" in changes:
                info = replace(info, padding=changes["padding"])
        return original(info)

    monkeypatch.setattr(module, "make_layer", make_layer)


# --- planted bugs, PyTorch -------------------------------------------------

def test_lrn_alpha_left_unconverted_is_caught_at_norm1(monkeypatch):
    import impls.pytorch.model as m
    monkeypatch.setattr(m, "lrn_alpha_divided_by_size", lambda lrn: lrn.alpha)
    assert_caught(check("paper", "pytorch"), "norm1")


@pytest.mark.parametrize("framework", ["pytorch", "tensorflow"])
def test_caffe_lrn_in_the_papers_convention_is_caught_at_norm1(monkeypatch, framework):
    """A port that reads Caffe's alpha as the paper's (undivided): PyTorch given alpha * n,
    TensorFlow alpha as it is, both five times Caffe's alpha / n."""
    import importlib

    from common import conventions
    backend_or_skip(framework)
    module, function = {"pytorch": ("impls.pytorch.model", "lrn_alpha_divided_by_size"),
                        "tensorflow": ("impls.tensorflow.model", "lrn_alpha_undivided")}[framework]
    convert = getattr(conventions, function)
    monkeypatch.setattr(importlib.import_module(module), function,
                        lambda lrn: convert(replace(lrn, alpha_over_size=False)))
    result = check("caffe-alexnet", framework)
    assert_caught(result, "norm1")
    assert result.first_divergence.error.rel_l2 > 1e-2  # far above float32 noise


def test_d2l_conv1_padding_1_same_shapes_caught_by_values(monkeypatch):
    # The d2l PyTorch port pads conv1 by 1, MXNet by 0: both give 54x54 (DESIGN.md).
    import impls.pytorch.model as m
    patch_layer(monkeypatch, m, "conv1", padding=symmetric(1))
    result = check("d2l", "pytorch")
    assert result.layers[0].error.problem is None, "shapes agree: only the values differ"
    assert_caught(result, "conv1")


def test_same_padding_made_symmetric_is_caught(monkeypatch):
    import impls.pytorch.model as m
    patch_layer(monkeypatch, m, "conv1", padding=symmetric(4))  # SAME is (3, 4): same 56x56
    assert_caught(check("tf-benchmark", "pytorch"), "conv1")


def test_pool_rounding_is_caught(monkeypatch):
    import impls.pytorch.model as m
    patch_layer(monkeypatch, m, "pool1", ceil_mode=True)  # 28 -> 14 instead of 13
    result = check("cifar-small", "pytorch")
    assert_caught(result, "pool1")
    assert "shape" in result.first_divergence.error.problem


def test_kernel_layout_transposed_is_caught(monkeypatch):
    import impls.pytorch.backend as b
    original = b.load_canonical
    monkeypatch.setattr(b, "load_canonical", lambda model, w: original(
        model, {k: v.transpose(0, 1, 3, 2) if v.ndim == 4 else v for k, v in w.items()}))
    assert_caught(check("torchvision", "pytorch"), "conv1")


def test_dropout_left_in_train_mode_is_caught(monkeypatch):
    import impls.pytorch.backend as b
    original = b.PyTorchBackend.build
    monkeypatch.setattr(b.PyTorchBackend, "build", lambda self, v, w: original(self, v, w).train())
    assert_caught(check("torchvision", "pytorch"), "drop6")


def test_nan_output_never_passes(monkeypatch):
    import impls.pytorch.backend as b
    original = b.PyTorchBackend.layer_outputs

    def with_nan(self, model, x):
        outputs = original(self, model, x)
        outputs["fc4"] = outputs["fc4"].copy()
        outputs["fc4"][0, 0] = np.nan
        return outputs

    monkeypatch.setattr(b.PyTorchBackend, "layer_outputs", with_nan)
    result = check("cifar-small", "pytorch")
    assert_caught(result, "fc4")
    assert "NaN" in result.first_divergence.error.problem


# --- exit codes and reports --------------------------------------------------

def test_cli_pass_writes_reports(tmp_path, capsys):
    backend_or_skip("pytorch")
    code = main(["crosscheck", "--variant", "cifar-small", "--framework", "pytorch",
                 "--report", str(tmp_path), *QUIET])
    out = capsys.readouterr().out
    assert code == 0 and "PASS" in out and "fc5" in out
    report = json.loads((tmp_path / "crosscheck.json").read_text())
    assert report["exit_code"] == 0 and report["variants"][0]["frameworks"][0]["status"] == PASS
    assert "| conv1" in (tmp_path / "crosscheck.md").read_text()
    assert (tmp_path / "errors-cifar-small.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # A second run does not overwrite the reports unless asked.
    assert main(["crosscheck", "--variant", "cifar-small", "--framework", "pytorch",
                 "--report", str(tmp_path), *QUIET]) == 2


def test_cli_divergence_exits_1(monkeypatch, capsys):
    backend_or_skip("pytorch")
    import impls.pytorch.model as m
    patch_layer(monkeypatch, m, "pool1", ceil_mode=True)
    assert main(["crosscheck", "--variant", "cifar-small", "--framework", "pytorch", *QUIET]) == 1
    assert "first divergence at pool1" in capsys.readouterr().out


def test_cli_require_all_fails_on_missing_framework(monkeypatch, capsys):
    backend_or_skip("pytorch")
    real = impls.base.is_installed
    monkeypatch.setattr(impls.base, "is_installed", lambda name: name == "pytorch" and real(name))
    args = ["crosscheck", "--variant", "cifar-small", *QUIET]
    assert main(args) == 0
    assert "skipped" in capsys.readouterr().out
    assert main(args + ["--require", "all"]) == 2


def test_cli_gpu_without_gpu_exits_2(monkeypatch):
    backend_or_skip("pytorch")
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["crosscheck", "--variant", "cifar-small", "--framework", "pytorch",
                 "--device", "gpu", *QUIET]) == 2


@pytest.mark.parametrize("argv", [["--variant", "alexnet9"], ["--framework", "caffe"],
                                  ["--batch-size", "0"], ["--device", "tpu"]])
def test_cli_usage_errors_exit_2(argv):
    with pytest.raises(SystemExit) as exc:
        main(["crosscheck", *argv])
    assert exc.value.code == 2


@pytest.mark.parametrize("kind", ["missing", "shape", "nan"])
def test_cli_bad_weights_exit_2_and_write_nothing(tmp_path, capsys, kind):
    variant = get_variant("cifar-small")
    weights = init_weights(variant)
    if kind == "missing":
        del weights["fc3.bias"]
    elif kind == "shape":
        weights["conv1.weight"] = np.zeros((64, 3, 3, 3), np.float32)
    else:
        weights["fc5.weight"][0, 0] = np.inf
    path = tmp_path / "w.safetensors"
    save_file(weights, str(path))
    report_dir = tmp_path / "report"
    code = main(["crosscheck", "--variant", "cifar-small", "--weights", str(path),
                 "--report", str(report_dir), *QUIET])
    assert code == 2 and not report_dir.exists()
    err = capsys.readouterr().err
    assert {"missing": "'fc3.bias'", "shape": "'conv1.weight'", "nan": "'fc5.weight'"}[kind] in err
    assert "Traceback" not in err


def test_cli_checks_given_weights(tmp_path):
    backend_or_skip("pytorch")
    variant = get_variant("cifar-small")
    path = tmp_path / "w.safetensors"
    save_weights(path, variant, init_weights(variant, seed=5))
    assert main(["crosscheck", "--variant", "cifar-small", "--framework", "pytorch",
                 "--weights", str(path), *QUIET]) == 0


# --- planted bugs, TensorFlow ------------------------------------------------

def test_tf_flatten_permutation_missing_is_caught_at_first_dense(monkeypatch):
    backend_or_skip("tensorflow")
    import impls.tensorflow.convert as c
    original = c.dense_to_keras
    monkeypatch.setattr(c, "dense_to_keras", lambda weight, flatten_chw=None: original(weight))
    assert_caught(check("paper", "tensorflow"), "fc6")


def test_tf_lrn_radius_taken_as_size_is_caught(monkeypatch):
    backend_or_skip("tensorflow")
    import impls.tensorflow.model as m
    monkeypatch.setattr(m, "lrn_depth_radius", lambda lrn: lrn.size)
    assert_caught(check("tf-benchmark", "tensorflow"), "norm1")


def test_tf_kernel_layout_is_caught(monkeypatch):
    backend_or_skip("tensorflow")
    import impls.tensorflow.convert as c
    # (O, I, H, W) -> (W, H, I, O): height and width swapped, the shapes still fit.
    monkeypatch.setattr(c, "oihw_to_hwio", lambda k: k.transpose(3, 2, 1, 0).copy())
    assert_caught(check("cifar-small", "tensorflow"), "conv1")


# --- planted bugs, MXNet -----------------------------------------------------

def test_mxnet_lrn_alpha_left_unconverted_is_caught(monkeypatch):
    backend_or_skip("mxnet")
    import impls.mxnet_gluon.model as m
    monkeypatch.setattr(m, "lrn_alpha_divided_by_size", lambda lrn: lrn.alpha)
    result = check("paper", "mxnet")
    assert_caught(result, "norm1")
    assert result.first_divergence.error.rel_l2 > 1e-2  # far above float32 noise


def test_mxnet_ceil_mode_without_pytorch_rule_is_caught(monkeypatch):
    # MXNet's own ceil mode keeps a last window that starts in the padding.
    backend = backend_or_skip("mxnet")
    import impls.mxnet_gluon.model as m
    from mxnet.gluon import nn
    original = m.make_layer

    def make_layer(info, prefix):
        layer = info.layer
        if info.name == "pool1":
            return nn.MaxPool2D(layer.kernel, layer.stride, layer.padding, ceil_mode=True, prefix=prefix)
        return original(info, prefix)

    monkeypatch.setattr(m, "make_layer", make_layer)
    variant = odd_variant()
    weights = init_weights(variant)
    x = normal_batch(variant, 2, seed=0)
    results = layer_results(variant, backend.layer_outputs(backend.build(variant, weights), x),
                             reference.forward(variant, weights, x), DEFAULT_TOLERANCES)
    assert next(r for r in results if not r.passed).name == "pool1"


def test_cli_unwritable_report_dir_fails_before_the_run(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code = main(["crosscheck", "--variant", "cifar-small", "--framework", "pytorch",
                 "--report", str(blocker / "report"), *QUIET])
    captured = capsys.readouterr()
    assert code == 2 and "cannot create report directory" in captured.err
    assert captured.out == "" and blocker.read_text() == "not a directory"


def test_run_to_run_differences_are_reported(monkeypatch):
    backend_or_skip("pytorch")
    import impls.pytorch.backend as b
    original = b.PyTorchBackend.layer_outputs
    calls = []

    def flaky(self, model, x):  # the second run differs in fc4, as a nondeterministic kernel would
        outputs = original(self, model, x)
        calls.append(1)
        if len(calls) % 2 == 0:
            outputs["fc4"] = outputs["fc4"] + 1e-3
        return outputs

    assert not check("cifar-small", "pytorch").run_to_run
    monkeypatch.setattr(b.PyTorchBackend, "layer_outputs", flaky)
    result = check("cifar-small", "pytorch")
    assert set(result.run_to_run) == {"fc4"} and result.run_to_run["fc4"] == pytest.approx(1e-3, rel=0.05)
    from crosscheck.report import framework_line
    assert "two runs DIFFER from fc4 on" in framework_line(result)


# --- the oracle is independent -------------------------------------------------

@pytest.mark.parametrize("framework,caught", [("pytorch", True), ("mxnet", True), ("tensorflow", False)])
def test_wrong_shared_same_rule_blames_the_frameworks_that_use_it(monkeypatch, framework, caught):
    """A SAME rule in common.shapes that puts the odd pixel first: PyTorch and MXNet take
    their explicit padding from it and are wrong; Keras pads by itself and is right. The
    reference derives SAME on its own, so it blames the two that are wrong, and only them."""
    backend = backend_or_skip(framework)
    import common.shapes as shapes
    right = shapes.same_padding
    monkeypatch.setattr(shapes, "same_padding", lambda *a: tuple(reversed(right(*a))))
    variant = get_variant("tf-benchmark", num_classes=5, input_size=(68, 68))  # conv1 pads (3, 4)
    weights = init_weights(variant)
    x = normal_batch(variant, 2, seed=0)
    results = layer_results(variant, backend.layer_outputs(backend.build(variant, weights), x),
                            reference.forward(variant, weights, x), DEFAULT_TOLERANCES)
    failed = next((r.name for r in results if not r.passed), None)
    assert failed == ("conv1" if caught else None)

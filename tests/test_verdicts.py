"""A verdict for every failure: porting bugs that change a shape make a framework raise;
the crosscheck turns that into that framework's failure (exit 1), naming the first layer
involved with both shapes, the other frameworks still checked and the report written,
never a traceback."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from alexnet_cli.main import main
from common.shapes import _layer_info
from common.spec import Conv2d, MaxPool2d
from common.variants import get_variant
from crosscheck.report import framework_line
from crosscheck.run import FAIL, PASS, plan, run_crosscheck
from tests.conftest import backend_or_skip

FRAMEWORKS = ["pytorch", "mxnet", "tensorflow"]
ALL_CHECKS = ("forward", "backward", "step", "fastpath")
PAPER_SMALL = get_variant("paper", num_classes=5, input_size=(67, 67))


def model_module(framework: str):
    import importlib
    return importlib.import_module({"pytorch": "impls.pytorch.model", "mxnet": "impls.mxnet_gluon.model",
                                    "tensorflow": "impls.tensorflow.model"}[framework])


def patch_make_layer(monkeypatch, framework: str, change):
    """Build every layer from ``change(info)`` instead of the spec's info."""
    module = model_module(framework)
    original = module.make_layer
    monkeypatch.setattr(module, "make_layer",
                        lambda info, *rest, **kw: original(change(info), *rest, **kw))


def ceil_every_pool(info):
    if isinstance(info.layer, MaxPool2d):
        return _layer_info(replace(info.layer, ceil_mode=True), info.in_shape)
    return info


def conv2_without_groups(info):
    if info.name == "conv2":
        return replace(info, layer=replace(info.layer, groups=1))
    return info


def plant_no_bias(monkeypatch, framework: str):
    """Every convolution built without its bias, in the framework's own words."""
    module = model_module(framework)
    namespace, name, flag = {"pytorch": lambda: (module.nn, "Conv2d", "bias"),
                             "mxnet": lambda: (module.nn, "Conv2D", "use_bias"),
                             "tensorflow": lambda: (module.layers, "Conv2D", "use_bias")}[framework]()
    original = getattr(namespace, name)

    class NoBias(original):  # a subclass, not a partial: the backends test isinstance
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, flag: False})

    monkeypatch.setattr(namespace, name, NoBias)


def plant_refused_layout(monkeypatch, framework: str):
    """Convolution kernels handed over as OHWI (a channels-last export read as is)."""
    if framework == "tensorflow":
        import impls.tensorflow.convert as c
        monkeypatch.setattr(c, "oihw_to_hwio", lambda k: k.transpose(2, 3, 0, 1).copy())  # HWOI
        return
    import importlib
    b = importlib.import_module({"pytorch": "impls.pytorch.backend", "mxnet": "impls.mxnet_gluon.backend"}[framework])
    original = b.load_canonical
    monkeypatch.setattr(b, "load_canonical", lambda model, w: original(
        model, {k: v.transpose(0, 2, 3, 1) if v.ndim == 4 else v for k, v in w.items()}))


def verdict_run(framework: str, variant, checks=ALL_CHECKS):
    backend_or_skip(framework)
    run = run_crosscheck([(variant, checks)], [framework], device="cpu").variants[0]
    return run


def assert_verdict(run, layer: str, *needles: str):
    forward = run.frameworks[0]
    assert forward.status == FAIL, "the planted bug went unnoticed"
    assert forward.failed_layer == layer, forward.detail
    line = framework_line(forward)
    for needle in needles:
        assert needle in line, line
    assert "Traceback" not in line
    for other in run.gradients:  # the backward check builds the same model: it fails too
        assert other.status == FAIL and "Traceback" not in str(other)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_ceil_mode_on_every_pool_names_the_first_pool_with_both_shapes(monkeypatch, framework):
    patch_make_layer(monkeypatch, framework, ceil_every_pool)
    run = verdict_run(framework, get_variant("cifar-small"))
    assert_verdict(run, "pool1", "pool1", "64x14x14", "64x13x13")


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_grouped_conv_built_without_groups_names_the_weight(monkeypatch, framework):
    patch_make_layer(monkeypatch, framework, conv2_without_groups)
    run = verdict_run(framework, PAPER_SMALL)
    assert_verdict(run, "conv2", "conv2.weight", "model's own parameter differs")


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_conv_built_without_bias_names_the_bias(monkeypatch, framework):
    plant_no_bias(monkeypatch, framework)
    run = verdict_run(framework, get_variant("cifar-small"), ("forward", "backward"))
    assert_verdict(run, "conv1", "conv1.bias")


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_kernel_in_a_refused_layout_names_the_weight_and_both_shapes(monkeypatch, framework):
    plant_refused_layout(monkeypatch, framework)
    run = verdict_run(framework, get_variant("cifar-small"), ("forward", "backward"))
    assert_verdict(run, "conv1", "conv1.weight", "the array loaded into it is not")


def test_the_other_frameworks_are_still_checked_and_the_report_written(monkeypatch, tmp_path, capsys):
    for name in ("pytorch", "tensorflow"):
        backend_or_skip(name)
    patch_make_layer(monkeypatch, "pytorch", ceil_every_pool)
    code = main(["crosscheck", "--variant", "cifar-small", "--framework", "pytorch,tensorflow",
                 "--check", "forward,backward", "--native-only", "--report", str(tmp_path), "--quiet"])
    captured = capsys.readouterr()
    assert code == 1 and "Traceback" not in captured.out + captured.err
    report = json.loads((tmp_path / "crosscheck.json").read_text())
    pytorch, tensorflow = report["variants"][0]["frameworks"]
    assert (pytorch["status"], pytorch["first_divergence"]) == (FAIL, "pool1")
    assert tensorflow["status"] == PASS
    assert "pool1 (MaxPool2d)" in captured.out and "64x14x14 where the spec has 64x13x13" in captured.out


def test_the_second_input_size_catches_what_the_native_one_cannot(monkeypatch):
    """torchvision's pools round alike at 224x224 (ceil mode passes there) and its adaptive
    pool is an identity; the second size makes both show."""
    backend_or_skip("pytorch")
    patch_make_layer(monkeypatch, "pytorch", ceil_every_pool)
    runs = plan(["torchvision"], ("forward",), num_classes=4, second_sizes=True)
    (native, _, _), (second, _, is_second) = runs
    assert is_second
    assert second.input_shape != native.input_shape
    result = run_crosscheck(runs, ["pytorch"], device="cpu")
    assert [v.frameworks[0].status for v in result.variants] == [PASS, FAIL]


# --- messages that point the right way ----------------------------------------

@pytest.mark.parametrize("where", ["plain model", "fast path"])
def test_a_fastpath_failure_says_whether_the_plain_model_passes(monkeypatch, where):
    backend_or_skip("pytorch")
    if where == "plain model":  # the LRN convention left unconverted: every path is wrong
        import impls.pytorch.model as m
        monkeypatch.setattr(m, "lrn_alpha_divided_by_size", lambda lrn: lrn.alpha)
    else:  # only the benchmark's session is wrong
        import impls.pytorch.bench as bench
        original = bench.PyTorchBench.logits
        monkeypatch.setattr(bench.PyTorchBench, "logits", lambda self: original(self) * 1.01)
    run = verdict_run("pytorch", PAPER_SMALL, ("forward", "backward", "fastpath"))
    from crosscheck.report import fast_path_line
    line = fast_path_line(run.fast_paths[0])
    assert run.fast_paths[0].status == FAIL
    if where == "plain model":
        assert "fails its own checks too" in line
    else:
        assert "plain model of the same framework passes" in line


def test_the_dense_diagnosis_near_a_dropout_is_not_cut_short():
    """It read '...ropout placement' once: a slice of a longer message, off by one."""
    from crosscheck.backward import Row, diagnose
    from crosscheck.compare import LayerError
    row = Row("fc7", "Dense", "own dL/din", LayerError(1.0, 1.0, 1.0), False)
    text = diagnose(get_variant("torchvision"), row)
    assert text.startswith("dropout placement")


def test_weights_trained_at_another_input_are_checked_with_input(tmp_path, capsys):
    """What `alexnet train --dataset digits` writes (1 input channel): refused at the native
    3x32x32 with a hint, checked with --input 1x32x32."""
    backend_or_skip("pytorch")
    from common.weights import init_weights, save_weights
    digits = get_variant("cifar-small", in_channels=1)
    path = tmp_path / "weights-epoch1.safetensors"
    save_weights(path, digits, init_weights(digits, seed=3))
    args = ["crosscheck", "--variant", "cifar-small", "--framework", "pytorch", "--weights", str(path),
            "--check", "forward", "--quiet"]
    assert main(args) == 2
    assert "--input CxHxW" in capsys.readouterr().err
    assert main(args + ["--input", "1x32x32"]) == 0


def test_the_summary_counts_variants_not_their_second_sizes():
    """A variant and its second input size are two runs of one variant."""
    backend_or_skip("pytorch")
    from crosscheck.report import summary
    result = run_crosscheck(plan(["cifar-small"], ("forward",), second_sizes=True), ["pytorch"])
    assert len(result.variants) == 2
    assert summary(result) == ("PASS: 1 variant(s) agree with the float64 reference "
                               "(2 runs: each at its input size and a second)")

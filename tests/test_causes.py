"""Confirmed causes: each known porting bug, planted in a real framework's model or weight
conversion, is caught by the forward (or backward) check and named by the hypothesis
whose float64 output reproduces the framework's, and by no other; the correct models
confirm nothing; shape causes from the reference's shape arithmetic."""

from __future__ import annotations

import functools
from dataclasses import replace

import numpy as np
import pytest

from common import reference
from common.inputs import normal_batch
from common.spec import (
    LRN, AdaptiveAvgPool2d, Conv2d, Dense, Dropout, Flatten, MaxPool2d, ReLU, Variant, symmetric,
)
from common.variants import get_variant
from common.weights import init_weights
from crosscheck.backward import check_gradients, gradient_inputs, reference_chain
from crosscheck.compare import DEFAULT_TOLERANCES
from crosscheck.hypotheses import MATCH, layer_cause, shape_cause, weight_shape_cause
from crosscheck.report import framework_line
from crosscheck.run import FAIL, PASS, check_framework
from tests.conftest import FRAMEWORK_NAMES, backend_or_skip

PAPER = get_variant("paper", num_classes=5, input_size=(67, 67))       # grouped convs, LRN
CIFAR = get_variant("cifar-small")                                      # conv1 28x28 -> pool1 13x13
CIFAR31 = get_variant("cifar-small", input_size=(31, 31))               # pool1 27 -> 13 for k 2 and 3
TF_BENCH = get_variant("tf-benchmark", num_classes=5, input_size=(68, 68))  # conv1 SAME pads (3, 4)
CAFFE = get_variant("caffe-alexnet", num_classes=5, input_size=(67, 67))  # Caffe's LRN
#: what the registry's variants lack at a small size: a square dense layer (fc7), dropout
#: on both sides of a dense layer, adaptive pooling 8x8 -> 3x3 with overlapping bins
TINY = Variant("tiny", (
    Conv2d("conv1", 8, 5, stride=2, padding=symmetric(2)), ReLU("relu1"),
    LRN("norm1", size=5, alpha=1e-4, beta=0.75, k=2.0), MaxPool2d("pool1", 3, 2),
    Conv2d("conv2", 16, 3, padding=symmetric(1), groups=2), ReLU("relu2"),
    AdaptiveAvgPool2d("avgpool", (3, 3)), Flatten("flatten"),
    Dropout("drop6"), Dense("fc6", 32), ReLU("relu6"),
    Dropout("drop7"), Dense("fc7", 32), ReLU("relu7"), Dense("fc8", 5)), (3, 33, 33), 5, "test")
#: a padded pool on an even map, where TensorFlow's SAME gives the same size
POOL_PADDED = Variant("pool-padded", (
    Conv2d("conv1", 4, 3, padding=symmetric(1)), ReLU("relu1"), MaxPool2d("pool1", 3, 2, padding=1),
    Flatten("flatten"), Dense("fc", 3)), (3, 14, 14), 3, "test")

MODEL_MODULES = {"pytorch": "impls.pytorch.model", "tensorflow": "impls.tensorflow.model",
                 "mxnet": "impls.mxnet_gluon.model"}
BACKEND_MODULES = {"pytorch": "impls.pytorch.backend", "tensorflow": "impls.tensorflow.backend",
                   "mxnet": "impls.mxnet_gluon.backend"}


@functools.lru_cache(maxsize=None)
def case(variant: Variant):
    """Seeded weights, two normal images and the float64 reference of ``variant``."""
    weights = init_weights(variant, seed=0)
    x = normal_batch(variant, 2, seed=0)
    return weights, x, reference.forward(variant, weights, x)


def forward(framework: str, variant: Variant):
    """The forward check of one framework on ``variant``: its FrameworkRun."""
    backend = backend_or_skip(framework)
    weights, x, ref = case(variant)
    return check_framework(backend, variant, weights, x, ref, DEFAULT_TOLERANCES)[0]


def assert_cause(run, layer: str, keyword: str, *, shapes: bool = False) -> None:
    """Caught at ``layer``, and the confirmed cause says ``keyword``."""
    assert run.status == FAIL, "the planted bug went unnoticed"
    assert run.first_divergence.name == layer, framework_line(run)
    cause = run.cause
    assert cause is not None, framework_line(run)
    assert keyword in cause.text, cause.text
    assert cause.from_shapes == shapes
    if not shapes:
        assert cause.hypothesis_error <= MATCH and cause.hypothesis_error * 10 <= cause.observed_error
    assert "cause confirmed: " + cause.text in framework_line(run)


def torch_or_skip():
    backend_or_skip("pytorch")
    import torch
    return torch


def plant_spec(monkeypatch, framework: str, layer_name: str, **changes) -> None:
    """Build the framework's model as if the spec's ``layer_name`` had ``changes``: the
    port's own code (padding, pool rounding, LRN constants) with a wrong number."""
    import importlib
    backend_or_skip(framework)

    from common.shapes import infer
    module = importlib.import_module(MODEL_MODULES[framework])
    changed = lambda layer: replace(layer, **changes) if layer.name == layer_name else layer  # noqa: E731
    monkeypatch.setattr(module, "infer", lambda v: infer(replace(v, layers=tuple(map(changed, v.layers)))))


def plant_weights(monkeypatch, framework: str, transform) -> None:
    """The framework's weight conversion passes canonical weights through ``transform``."""
    import importlib
    backend_or_skip(framework)
    module = importlib.import_module(BACKEND_MODULES[framework])
    original = module.load_canonical
    monkeypatch.setattr(module, "load_canonical", lambda model, w: original(model, transform(dict(w))))


def changed(key: str, function):
    """A weights transform changing one array."""
    return lambda w: {**w, key: np.ascontiguousarray(function(w[key]))}


def plant_module(monkeypatch, framework: str, layer_name: str, build) -> None:
    """The framework's ``make_layer`` builds ``layer_name`` with ``build(info, original)``."""
    import importlib
    backend_or_skip(framework)
    module = importlib.import_module(MODEL_MODULES[framework])
    original = module.make_layer

    def make_layer(info, *args, **kwargs):
        if info.name == layer_name:
            return build(info, lambda i=info: original(i, *args, **kwargs))
        return original(info, *args, **kwargs)

    monkeypatch.setattr(module, "make_layer", make_layer)


def halves_swapped(a: np.ndarray) -> np.ndarray:
    return np.concatenate([a[len(a) // 2:], a[:len(a) // 2]])


# --- weight layouts ------------------------------------------------------------

@pytest.mark.parametrize("framework", FRAMEWORK_NAMES)
def test_kernel_height_width_swapped(monkeypatch, framework):
    plant_weights(monkeypatch, framework, changed("conv1.weight", lambda k: k.transpose(0, 1, 3, 2)))
    assert_cause(forward(framework, CIFAR), "conv1", "height and width swapped")


def test_tf_kernel_reshaped_to_hwio_instead_of_transposed(monkeypatch):
    backend_or_skip("tensorflow")
    import impls.tensorflow.convert as c
    monkeypatch.setattr(c, "oihw_to_hwio", lambda k: k.reshape(k.shape[2], k.shape[3], k.shape[1], k.shape[0]))
    assert_cause(forward("tensorflow", CIFAR), "conv1", "the OIHW array reshaped to HWIO")


@pytest.mark.parametrize("framework", ["pytorch", "mxnet"])
def test_hwio_kernel_reshaped_to_oihw(monkeypatch, framework):
    """A Keras kernel loaded into a channels-first port by reshape."""
    plant_weights(monkeypatch, framework,
                  changed("conv2.weight", lambda k: k.transpose(2, 3, 1, 0).reshape(k.shape)))
    assert_cause(forward(framework, CIFAR), "conv2", "a HWIO array (Keras/TensorFlow) reshaped to OIHW")


def test_tf_dense_reshaped_instead_of_transposed(monkeypatch):
    backend_or_skip("tensorflow")
    import impls.tensorflow.convert as c
    original = c.dense_to_keras
    monkeypatch.setattr(c, "dense_to_keras", lambda w, chw=None: original(w, chw) if chw
                        else np.ascontiguousarray(w.reshape(w.shape[1], w.shape[0])))
    assert_cause(forward("tensorflow", CIFAR), "fc4", "the (out, in) array reshaped to Keras's (in, out)")


@pytest.mark.parametrize("framework", ["pytorch", "mxnet"])
def test_keras_dense_kernel_reshaped_to_out_in(monkeypatch, framework):
    plant_weights(monkeypatch, framework, changed("fc5.weight", lambda w: w.T.reshape(w.shape)))
    assert_cause(forward(framework, CIFAR), "fc5", "a Keras (in, out) kernel reshaped to (out, in)")


def test_tf_square_dense_kernel_not_transposed(monkeypatch):
    backend_or_skip("tensorflow")
    import impls.tensorflow.convert as c
    original = c.dense_to_keras
    monkeypatch.setattr(c, "dense_to_keras", lambda w, chw=None: np.ascontiguousarray(w)
                        if w.shape[0] == w.shape[1] else original(w, chw))
    assert_cause(forward("tensorflow", TINY), "fc7", "weight transposed")


def test_pytorch_square_dense_transposed(monkeypatch):
    backend_or_skip("pytorch")
    plant_weights(monkeypatch, "pytorch", changed("fc7.weight", lambda w: w.T))
    assert_cause(forward("pytorch", TINY), "fc7", "weight transposed")


def test_tf_flatten_order_at_first_dense(monkeypatch):
    backend_or_skip("tensorflow")
    import impls.tensorflow.convert as c
    original = c.dense_to_keras
    monkeypatch.setattr(c, "dense_to_keras", lambda w, chw=None: original(w))
    assert_cause(forward("tensorflow", CIFAR), "fc3", "flatten order at fc3")


def test_pytorch_flatten_channels_last(monkeypatch):
    torch = torch_or_skip()

    class ChannelsLast(torch.nn.Module):  # a port flattening an NHWC view
        def forward(self, x):
            return x.permute(0, 2, 3, 1).flatten(1)

    plant_module(monkeypatch, "pytorch", "flatten", lambda info, original: ChannelsLast())
    assert_cause(forward("pytorch", CIFAR), "flatten", "H*W*C order")


# --- bias, ReLU, channels ------------------------------------------------------------

@pytest.mark.parametrize("framework", FRAMEWORK_NAMES)
def test_bias_zero(monkeypatch, framework):
    plant_weights(monkeypatch, framework, changed("conv2.bias", np.zeros_like))
    assert_cause(forward(framework, CIFAR), "conv2", "bias missing or zero")


def test_pytorch_relu_missing(monkeypatch):
    torch = torch_or_skip()
    plant_module(monkeypatch, "pytorch", "relu3", lambda info, original: torch.nn.Identity())
    assert_cause(forward("pytorch", CIFAR), "relu3", "ReLU missing")


def test_mxnet_relu_missing(monkeypatch):
    backend_or_skip("mxnet")
    from mxnet.gluon import nn
    plant_module(monkeypatch, "mxnet", "relu1", lambda info, original: nn.HybridLambda(lambda F, x: x))
    assert_cause(forward("mxnet", CIFAR), "relu1", "ReLU missing")


def test_tf_relu_fused_into_conv(monkeypatch):
    backend_or_skip("tensorflow")
    import keras

    def fused(info, original):
        layer = original()
        layer.activation = keras.activations.relu  # Conv2D(..., activation="relu")
        return layer

    plant_module(monkeypatch, "tensorflow", "conv2", fused)
    assert_cause(forward("tensorflow", CIFAR), "conv2", "ReLU fused into conv2")


def test_pytorch_caffe_bgr_weights_on_rgb_input(monkeypatch):
    backend_or_skip("pytorch")
    plant_weights(monkeypatch, "pytorch", changed("conv1.weight", lambda k: k[:, ::-1]))
    assert_cause(forward("pytorch", PAPER), "conv1", "input channels reversed")


@pytest.mark.parametrize("framework", ["tensorflow", "mxnet"])
def test_input_channels_reversed_by_the_port(monkeypatch, framework):
    """The port's input pipeline hands the model BGR where it was given RGB."""
    backend_class = type(backend_or_skip(framework))
    original = backend_class.layer_outputs
    monkeypatch.setattr(backend_class, "layer_outputs",
                        lambda self, model, x: original(self, model, np.ascontiguousarray(x[:, ::-1])))
    assert_cause(forward(framework, CIFAR), "conv1", "input channels reversed")


# --- grouped convolutions ---------------------------------------------------------

@pytest.mark.parametrize("framework", FRAMEWORK_NAMES)
def test_group_halves_stacked_the_wrong_way(monkeypatch, framework):
    plant_weights(monkeypatch, framework, lambda w: {**w, "conv2.weight": halves_swapped(w["conv2.weight"]),
                                                     "conv2.bias": halves_swapped(w["conv2.bias"])})
    assert_cause(forward(framework, PAPER), "conv2", "kernel and bias blocks in reverse order")


@pytest.mark.parametrize("where", ["output", "input"])
def test_pytorch_group_blocks_swapped(monkeypatch, where):
    """A port that runs the two groups as separate convolutions and joins them (or feeds
    them) in the wrong order."""
    torch = torch_or_skip()

    class Swapped(torch.nn.Conv2d):
        def forward(self, x):
            swap = lambda t: torch.cat(torch.chunk(t, self.groups, dim=1)[::-1], dim=1)  # noqa: E731
            return swap(super().forward(x)) if where == "output" else super().forward(swap(x))

    def build(info, original):
        module = original()
        module.__class__ = Swapped
        return module

    plant_module(monkeypatch, "pytorch", "conv4", build)
    keyword = "output blocks swapped" if where == "output" else "group input blocks swapped"
    assert_cause(forward("pytorch", PAPER), "conv4", keyword)


# --- LRN -------------------------------------------------------------------------

@pytest.mark.parametrize("framework", ["pytorch", "mxnet"])
def test_lrn_alpha_not_multiplied_by_n(monkeypatch, framework):
    backend_or_skip(framework)
    import importlib
    module = importlib.import_module(MODEL_MODULES[framework])
    monkeypatch.setattr(module, "lrn_alpha_divided_by_size", lambda lrn: lrn.alpha)
    assert_cause(forward(framework, PAPER), "norm1", "alpha divided by the window size 5")


@pytest.mark.parametrize("framework", ["tensorflow", "pytorch"])
def test_lrn_alpha_multiplied_by_n(monkeypatch, framework):
    """A PyTorch/MXNet alpha (times n) given to an LRN that does not divide by n."""
    plant_spec(monkeypatch, framework, "norm1", alpha=PAPER.layer("norm1").alpha * 5)
    assert_cause(forward(framework, PAPER), "norm1", "alpha multiplied by the window size 5")


#: the function of common.conventions each framework's model takes its LRN alpha from
LRN_ALPHA = {"pytorch": "lrn_alpha_divided_by_size", "mxnet": "lrn_alpha_divided_by_size",
             "tensorflow": "lrn_alpha_undivided"}


def plant_papers_convention(monkeypatch, framework: str) -> None:
    """The framework's model reads every LRN's alpha in the paper's convention, whatever the
    spec says: a Caffe alpha taken as undivided."""
    import importlib

    from common import conventions
    backend_or_skip(framework)
    module, function = importlib.import_module(MODEL_MODULES[framework]), LRN_ALPHA[framework]
    convert = getattr(conventions, function)
    monkeypatch.setattr(module, function, lambda lrn: convert(replace(lrn, alpha_over_size=False)))


@pytest.mark.parametrize("framework", FRAMEWORK_NAMES)
def test_caffe_lrn_alpha_read_in_the_papers_convention(monkeypatch, framework):
    plant_papers_convention(monkeypatch, framework)
    assert_cause(forward(framework, CAFFE), "norm1", "Caffe's alpha taken as the paper's")


def test_caffe_lrn_alpha_divided_twice(monkeypatch):
    """TensorFlow's conversion (a Caffe alpha over n) given to PyTorch, which divides again."""
    backend_or_skip("pytorch")
    import impls.pytorch.model as m
    from common.conventions import lrn_alpha_undivided
    monkeypatch.setattr(m, "lrn_alpha_divided_by_size", lrn_alpha_undivided)
    assert_cause(forward("pytorch", CAFFE), "norm1", "divided by the window size 5 once more")


@pytest.mark.parametrize("framework", FRAMEWORK_NAMES)
def test_lrn_k(monkeypatch, framework):
    plant_spec(monkeypatch, framework, "norm1", k=1.0)  # Caffe's k where the paper has 2
    assert_cause(forward(framework, PAPER), "norm1", "LRN k is 1 where the spec has 2")


@pytest.mark.parametrize("framework", FRAMEWORK_NAMES)
def test_lrn_beta(monkeypatch, framework):
    plant_spec(monkeypatch, framework, "norm2", beta=0.5)
    assert_cause(forward(framework, PAPER), "norm2", "LRN beta is 0.5 where the spec has 0.75")


@pytest.mark.parametrize("framework", FRAMEWORK_NAMES)
def test_lrn_window(monkeypatch, framework):
    plant_spec(monkeypatch, framework, "norm1", size=3)
    assert_cause(forward(framework, PAPER), "norm1", "LRN window is 3 channels where the spec has 5")


def test_tf_lrn_radius_taken_as_size(monkeypatch):
    backend_or_skip("tensorflow")
    import impls.tensorflow.model as m
    monkeypatch.setattr(m, "lrn_depth_radius", lambda lrn: lrn.size)
    assert_cause(forward("tensorflow", TF_BENCH), "norm1", "depth_radius given the window size")


# --- padding -----------------------------------------------------------------------

@pytest.mark.parametrize("framework", FRAMEWORK_NAMES)
def test_same_padding_made_symmetric(monkeypatch, framework):
    plant_spec(monkeypatch, framework, "conv1", padding=symmetric(4))  # SAME is (3, 4): same 17x17
    assert_cause(forward(framework, TF_BENCH), "conv1", "SAME padding made symmetric: 4")


@pytest.mark.parametrize("framework", FRAMEWORK_NAMES)
def test_same_padding_odd_pixel_first(monkeypatch, framework):
    plant_spec(monkeypatch, framework, "conv1", padding=(4, 3, 4, 3))
    assert_cause(forward(framework, TF_BENCH), "conv1", "odd pixel of padding top/left")


@pytest.mark.parametrize("framework", FRAMEWORK_NAMES)
def test_explicit_padding_off_by_one(monkeypatch, framework):
    plant_spec(monkeypatch, framework, "conv1", padding=symmetric(1))  # stride 4: still 15x15
    assert_cause(forward(framework, PAPER), "conv1", "padding off by one: 1 on every side")


# --- pooling -----------------------------------------------------------------------

@pytest.mark.parametrize("framework", FRAMEWORK_NAMES)
def test_pool_ceil_mode(monkeypatch, framework):
    plant_spec(monkeypatch, framework, "pool1", ceil_mode=True)  # 28 -> 14 instead of 13
    run = forward(framework, CIFAR)
    assert "shape" in run.first_divergence.error.problem
    assert_cause(run, "pool1", "ceil mode where the spec rounds down")
    assert run.cause.hypothesis_error == 0  # confirmed by its values, not its shape alone


@pytest.mark.parametrize("framework", FRAMEWORK_NAMES)
def test_pool_window(monkeypatch, framework):
    plant_spec(monkeypatch, framework, "pool1", kernel=2)  # 27 -> 13 with either window
    run = forward(framework, CIFAR31)
    assert run.first_divergence.error.problem is None, "shapes agree: only the values differ"
    assert_cause(run, "pool1", "window 2 where the spec has 3")


def test_pool_stride(monkeypatch):
    plant_spec(monkeypatch, "pytorch", "pool1", stride=3)  # TINY's adaptive pool absorbs 5x5
    assert_cause(forward("pytorch", TINY), "pool1", "stride 3 where the spec has 2")


@pytest.mark.parametrize("framework", FRAMEWORK_NAMES)
def test_pool_stride_where_the_model_raises(monkeypatch, framework):
    """cifar-small's fc3 then gets 576 features for 1024 weights: the verdict on what the
    framework raised (``crosscheck.verdicts``) names pool2 and this cause, from shapes.
    TensorFlow's loader once raised nothing here: its flatten permutation picked 576 of the
    1024 weight columns; it refuses the weight now, as the other two do."""
    plant_spec(monkeypatch, framework, "pool2", stride=3)
    run = forward(framework, CIFAR)
    assert run.status == FAIL and run.verdict_layer == "pool2", run.detail
    assert "cause confirmed: pool2: stride 3 where the spec has 2" in run.detail, run.detail


def test_tf_same_pool_where_spec_pads_one(monkeypatch):
    backend_or_skip("tensorflow")
    from keras import layers
    plant_module(monkeypatch, "tensorflow", "pool1",
                 lambda info, original: layers.MaxPooling2D(3, 2, padding="same", name="pool1"))
    run = forward("tensorflow", POOL_PADDED)
    assert run.first_divergence.error.problem is None, "SAME gives the same 7x7"
    assert_cause(run, "pool1", "TensorFlow SAME padding (0, 1, 0, 1) where the spec pads 1")


def test_pytorch_pool_missing(monkeypatch):
    """TINY's conv2 and adaptive pool take any size: the forward pass runs on."""
    torch = torch_or_skip()
    plant_module(monkeypatch, "pytorch", "pool1", lambda info, original: torch.nn.Identity())
    assert_cause(forward("pytorch", TINY), "pool1", "pool missing")


def test_pytorch_pool_missing_where_the_model_raises(monkeypatch):
    """In cifar-small fc3 then gets 5184 features for 1024 weights: the verdict on what
    PyTorch raised (``crosscheck.verdicts``) names pool2 and this cause."""
    torch = torch_or_skip()
    plant_module(monkeypatch, "pytorch", "pool2", lambda info, original: torch.nn.Identity())
    run = forward("pytorch", CIFAR)
    assert run.status == FAIL and run.verdict_layer == "pool2"
    assert "cause confirmed: pool2 missing (its output is its input)" in run.detail


def test_mxnet_ceil_mode_keeping_the_window_in_the_padding(monkeypatch):
    backend_or_skip("mxnet")
    from mxnet.gluon import nn

    from tests.test_frameworks import odd_variant
    plant_module(monkeypatch, "mxnet", "pool1", lambda info, original: nn.MaxPool2D(
        info.layer.kernel, info.layer.stride, info.layer.padding, ceil_mode=True,
        prefix=original().prefix))
    run = forward("mxnet", odd_variant())
    assert_cause(run, "pool1", "MXNet's ceil mode (pooling_convention='full')", shapes=True)


@pytest.mark.parametrize("framework", FRAMEWORK_NAMES)
def test_conv_stride(monkeypatch, framework):
    plant_spec(monkeypatch, framework, "conv2", stride=2)  # 4x4, then TINY's adaptive pool
    assert_cause(forward(framework, TINY), "conv2", "stride 2 where the spec has 1")


# --- adaptive pooling ----------------------------------------------------------------

def test_tf_adaptive_bins_floor_floor(monkeypatch):
    backend_or_skip("tensorflow")
    import impls.tensorflow.model as m
    monkeypatch.setattr(m, "adaptive_bins", lambda size, out: [((i * size) // out, ((i + 1) * size) // out)
                                                                for i in range(out)])
    assert_cause(forward("tensorflow", TINY), "avgpool", "naive port")


def test_pytorch_adaptive_pool_emulated_by_avgpool(monkeypatch):
    torch = torch_or_skip()

    def emulated(info, original):
        (_, h, w), (oh, ow) = info.in_shape, info.layer.output_size
        stride = (h // oh, w // ow)
        return torch.nn.AvgPool2d((h - (oh - 1) * stride[0], w - (ow - 1) * stride[1]), stride)

    plant_module(monkeypatch, "pytorch", "avgpool", emulated)
    assert_cause(forward("pytorch", TINY), "avgpool", "AvgPool2d(kernel=(4, 4), stride=(2, 2))")


# --- dropout -----------------------------------------------------------------------

def _always_dropout(framework: str, p: float):
    """The framework's Dropout layer forced into train mode (its own random mask)."""
    if framework == "pytorch":
        import torch

        class Active(torch.nn.Dropout):  # model.eval() cannot turn it off
            def forward(self, x):
                return torch.nn.functional.dropout(x, self.p, training=True)

        return Active(p)
    if framework == "mxnet":
        from mxnet.gluon import nn
        return nn.HybridLambda(lambda F, x: F.Dropout(x, p=p, mode="always"))
    from keras import layers

    class Active(layers.Dropout):
        def call(self, inputs, training=None):
            return super().call(inputs, training=True)

    return Active(p)


@pytest.mark.parametrize("framework", FRAMEWORK_NAMES)
def test_dropout_left_active_in_eval_mode(monkeypatch, framework):
    backend_or_skip(framework)
    plant_module(monkeypatch, framework, "drop6", lambda info, original: _rename(
        _always_dropout(framework, info.layer.p), framework, "drop6"))
    assert_cause(forward(framework, TINY), "drop6", "dropout left active in eval mode")


def _rename(layer, framework: str, name: str):
    """Keras finds layers by name: give the planted layer the spec's."""
    if framework == "tensorflow":
        layer.name = name
    return layer


def test_pytorch_dropout_scaled_at_test_time(monkeypatch):
    torch = torch_or_skip()

    class TestTimeScaled(torch.nn.Module):  # the old, non-inverted dropout's eval mode
        def __init__(self, p: float) -> None:
            super().__init__()
            self.p = p

        def forward(self, x):
            return x * (1 - self.p)

    plant_module(monkeypatch, "pytorch", "drop7", lambda info, original: TestTimeScaled(info.layer.p))
    assert_cause(forward("pytorch", TINY), "drop7", "scales by 1-p = 0.5 in eval mode")


def backward(framework: str, variant: Variant):
    backend = backend_or_skip(framework)
    weights, x, _ = case(variant)
    labels, masks = gradient_inputs(variant, len(x), seed=0)
    return check_gradients(backend, variant, weights, x, labels, masks,
                           reference_chain(variant, weights, x, labels, masks))


def test_pytorch_dropout_mask_at_the_dense_output_backward(monkeypatch):
    """drop7 is after relu6 in TINY's spec; this port applies its mask to fc6's output."""
    torch = torch_or_skip()

    import impls.pytorch.backend as b
    original = b.PyTorchBackend._run_layer
    keep = torch.from_numpy(np.random.default_rng(5).random((2, 32)) >= 0.5).float()

    def misplaced(self, model, name, x, scale):
        if name == "drop7":
            return x
        out = original(self, model, name, x, scale)
        return out * keep * 2 if name == "fc6" else out

    monkeypatch.setattr(b.PyTorchBackend, "_run_layer", misplaced)
    run = backward("pytorch", TINY)
    assert (run.blamed.layer, run.blamed.what) == ("fc6", "own out")
    assert "keep-mask applied to fc6's output" in run.cause.text and "confirmed:" in run.diagnosis


def test_lrn_alpha_blamed_and_confirmed_backward(monkeypatch):
    backend_or_skip("pytorch")
    import impls.pytorch.model as m
    monkeypatch.setattr(m, "lrn_alpha_divided_by_size", lambda lrn: lrn.alpha)
    run = backward("pytorch", TINY)
    assert run.blamed.layer == "norm1" and "alpha divided by the window size" in run.cause.text
    assert run.cause.hypothesis_error < MATCH < run.cause.observed_error


# --- nothing confirmed where nothing is wrong --------------------------------------------

@pytest.mark.parametrize("framework", FRAMEWORK_NAMES)
def test_correct_model_confirms_nothing(framework):
    run = forward(framework, TINY)
    assert run.status == PASS and run.cause is None


def test_noise_and_unknown_bugs_confirm_nothing():
    weights, x, ref = case(PAPER)
    rng = np.random.default_rng(0)
    names = [layer.name for layer in PAPER.layers]
    for name in ("conv1", "norm1", "pool1", "conv2", "fc6", "drop6", "relu6", "fc8"):
        layer_input = x if name == "conv1" else ref[names[names.index(name) - 1]]
        expected = ref[name]
        float32 = expected * (1 + 1e-7 * rng.standard_normal(expected.shape))
        assert layer_cause(PAPER, name, weights, layer_input, float32) is None, name
        unknown = expected + 0.05 * np.std(expected) * rng.standard_normal(expected.shape)
        assert layer_cause(PAPER, name, weights, layer_input, unknown) is None, name


def test_forward_failure_without_a_known_cause_says_so(monkeypatch):
    backend_or_skip("pytorch")
    import impls.pytorch.backend as b
    original = b.PyTorchBackend.layer_outputs

    def perturbed(self, model, x):  # a bug no hypothesis knows: conv2 off by a smooth ramp
        outputs = original(self, model, x)
        outputs["conv2"] = outputs["conv2"] * np.linspace(0.9, 1.1, outputs["conv2"].shape[-1])
        return outputs

    monkeypatch.setattr(b.PyTorchBackend, "layer_outputs", perturbed)
    run = forward("pytorch", CIFAR)
    assert run.first_divergence.name == "conv2" and run.cause is None
    assert "no known cause reproduces it" in framework_line(run)


# --- unit tests: hypotheses fed a changed output ---------------------------------------

def planted_output(variant: Variant, name: str, bug) -> tuple[np.ndarray, np.ndarray]:
    """(the layer's input, the output of ``bug(layer, input, weights)``) in float32."""
    weights, x, ref = case(variant)
    names = [layer.name for layer in variant.layers]
    layer_input = x if names.index(name) == 0 else ref[names[names.index(name) - 1]]
    return layer_input, bug(variant.layer(name), layer_input, weights).astype(np.float32)


def _with(key, function):
    return lambda layer, x, w: reference.apply(layer, x, {**w, key: function(w[key])})


@pytest.mark.parametrize("variant,name,bug,keyword", [
    (PAPER, "conv3", _with("conv3.weight", lambda k: k.transpose(0, 2, 3, 1).reshape(k.shape)),
     "a OHWI array"),
    (PAPER, "conv3", _with("conv3.weight", lambda k: k.reshape(k.shape[1], 3, 3, k.shape[0]).transpose(3, 0, 1, 2)),
     "the OIHW array reshaped to IHWO"),
    (PAPER, "norm2", lambda l, x, w: reference.lrn(x, replace(l, alpha=3e-4), w), "LRN alpha is 0.0003"),
    (PAPER, "pool1", lambda l, x, w: reference.max_pool2d(x, replace(l, stride=1), w),
     "stride 1 where the spec has 2"),
    (TINY, "fc7", lambda l, x, w: reference.dense(x * (np.random.default_rng(1).random(x.shape) < 0.7) / 0.7, l, w),
     "keep-mask applied to fc7's input"),
    (TINY, "relu7", lambda l, x, w: np.maximum(x, 0) * (np.random.default_rng(2).random(x.shape) < 0.5) * 2,
     "keep-mask applied to relu7's output"),
    (TINY, "drop6", lambda l, x, w: x * (np.random.default_rng(3).random(x.shape) < 0.7) / 0.7,
     "dropout active in eval mode at drop6 with p = 0.3 where the spec has 0.5"),
    (TINY, "conv2", lambda l, x, w: reference.conv2d(x, replace(l, padding="same"), w), None),
])
def test_hypotheses_on_changed_outputs(variant, name, bug, keyword):
    weights, _, _ = case(variant)
    layer_input, output = planted_output(variant, name, bug)
    cause = layer_cause(variant, name, weights, layer_input, output)
    if keyword is None:  # SAME with a 3x3 kernel at stride 1 is the spec's padding 1: no bug
        assert cause is None
    else:
        assert cause is not None and keyword in cause.text, cause
        assert cause.hypothesis_error <= MATCH


# --- unit tests: shapes ---------------------------------------------------------------

@pytest.mark.parametrize("variant,name,in_shape,got,keyword", [
    (CIFAR, "pool1", (64, 28, 28), (64, 14, 14), "pool1: ceil mode where the spec rounds down"),
    (CIFAR, "pool1", (64, 28, 28), (64, 28, 28), "pool1 missing"),
    (CIFAR, "pool1", (64, 28, 28), (64, 9, 9), "stride 3 where the spec has 2"),
    (CIFAR, "conv1", (3, 32, 32), (64, 32, 32), "padding"),
    (CIFAR, "conv1", (3, 32, 32), (64, 14, 14), "stride 2 where the spec has 1"),
    (CIFAR, "conv1", (3, 32, 32), (96, 28, 28), "conv1 has 96 output channels where the spec has 64"),
    (CIFAR, "fc5", (192,), (1000,), "fc5 has 1000 outputs where the spec has 10"),
    (PAPER, "fc8", (4096,), (1000,), "num_classes left at paper's default 1000"),
    (get_variant("torchvision"), "avgpool", (256, 6, 6), (256, 7, 7), "adaptive output size (7, 7)"),
    (get_variant("torchvision"), "pool1", (64, 55, 55), (64, 28, 28), "TensorFlow SAME padding"),
    (CIFAR, "fc3", (5184,), (384,), "fc3 gets 5184 where the spec gives 1024: pool2 missing"),
    (CIFAR, "flatten", (64, 4, 4), (64, 4, 4), "flatten missing"),
])
def test_shape_cause(variant, name, in_shape, got, keyword):
    cause = shape_cause(variant, name, in_shape, got)
    assert cause is not None and keyword in cause.text and cause.from_shapes, cause


@pytest.mark.parametrize("name", ["conv1", "pool1", "conv2", "pool2", "flatten", "fc3", "fc5"])
def test_shape_cause_of_the_spec_shape_is_none(name):
    names = [layer.name for layer in CIFAR.layers]
    shapes = reference.input_shapes(CIFAR)
    after = shapes[names[names.index(name) + 1]] if name != "fc5" else (CIFAR.num_classes,)
    assert shape_cause(CIFAR, name, shapes[name], after) is None


def test_shape_cause_with_a_batch_axis_and_an_ambiguity_named():
    cause = shape_cause(CIFAR, "pool1", (2, 64, 28, 28), (2, 64, 14, 14))
    assert cause.text.startswith("pool1: ceil mode") and "also consistent:" in cause.text


@pytest.mark.parametrize("variant,key,expected,got,keyword", [
    (PAPER, "fc6.bias", (4096,), None, "fc6 built without its bias"),
    (PAPER, "conv2.weight", (256, 48, 5, 5), (256, 96, 5, 5), "conv2's groups ignored"),
    (PAPER, "conv1.weight", (96, 3, 11, 11), (11, 11, 3, 96), "is HWIO (11, 11, 3, 96) where OIHW"),
    (PAPER, "conv1.weight", (96, 3, 11, 11), (96, 11, 11, 3), "is OHWI"),
    (PAPER, "conv1.weight", (96, 3, 11, 11), (3, 11, 11, 96), "is IHWO"),
    (PAPER, "conv1.weight", (11, 11, 3, 96), (96, 3, 11, 11), "is OIHW (96, 3, 11, 11) where HWIO"),
    (PAPER, "fc8.weight", (5, 4096), (4096, 5), "is (in, out) (4096, 5) where (out, in)"),
    (PAPER, "fc8.weight", (5, 4096), (1000, 4096), "fc8 has 1000 outputs where the spec has 5"),
    (PAPER, "fc8.bias", (5,), (1000,), "num_classes left at paper's default 1000"),
    (CIFAR, "conv1.weight", (64, 3, 5, 5), (64, 1, 5, 5), "takes 1 input channels where the spec has 3"),
    (CIFAR, "conv2.weight", (64, 64, 5, 5), (64, 64, 3, 3), "kernel 3x3 where the spec has 5x5"),
    (CIFAR, "fc3.weight", (384, 1024), (384, 5184), "fc3 takes 5184 inputs where the spec gives 1024: pool2 missing"),
])
def test_weight_shape_cause(variant, key, expected, got, keyword):
    cause = weight_shape_cause(variant, key, expected, got)
    assert cause is not None and keyword in cause.text and cause.from_shapes, cause


def test_weight_shape_cause_of_a_real_pytorch_port():
    """A PyTorch port built without conv1's bias, with conv2's groups ignored and fc8 left
    at 1000 classes: each refused parameter of its state_dict gets its cause."""
    torch = torch_or_skip()
    from torch import nn

    from crosscheck.causes.shapes import param_shapes
    variant = get_variant("paper", num_classes=5, input_size=(67, 67))
    with torch.device("meta"):
        port = nn.Sequential()
        port.add_module("conv1", nn.Conv2d(3, 96, 11, 4, bias=False))
        port.add_module("conv2", nn.Conv2d(96, 256, 5, padding=2))
        port.add_module("fc8", nn.Linear(4096, 1000))
    have = {key: tuple(p.shape) for key, p in port.state_dict().items()}
    spec = param_shapes(variant)
    causes = {key: weight_shape_cause(variant, key, spec[key], have.get(key)).text
              for key in ("conv1.bias", "conv2.weight", "fc8.weight", "fc8.bias")}
    assert "conv1 built without its bias" in causes["conv1.bias"]
    assert "conv2's groups ignored" in causes["conv2.weight"]
    assert "fc8 has 1000 outputs" in causes["fc8.weight"] and "default 1000" in causes["fc8.bias"]
    assert weight_shape_cause(variant, "conv1.weight", spec["conv1.weight"], have["conv1.weight"]) is None

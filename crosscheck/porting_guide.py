"""``docs/PORTING.md``, generated: the porting rules, each with the function that implements
it and the test that proves it, and the tables that are data (layouts, name mappings, LRN
and optimizer arguments) computed by the very functions the implementations call.

``python -m crosscheck.porting_guide > docs/PORTING.md`` regenerates it;
``tests/test_porting_guide.py`` fails when the file is stale or a cited name is gone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common.conventions import (
    LRN_DIVIDES_ALPHA, dense_to_keras, hwc_to_chw_index, lrn_alpha_divided_by_size, lrn_alpha_undivided,
    lrn_depth_radius, oihw_to_hwio,
)
from common.optim import OPTIMIZERS, framework_optimizer
from common.shapes import infer, param_shapes, same_padding
from common.spec import LRN, Conv2d, Dense, Flatten, MaxPool2d
from common.table import render
from common.variants import get_variant, variant_names
from common.zoo_names import GLUON_ZOO, GLUON_ZOO_LEGACY_LAYERS, TORCHVISION


@dataclass(frozen=True)
class Rule:
    topic: str
    rule: str
    implemented_by: tuple[str, ...]  # dotted names of functions, classes or constants
    proven_by: tuple[str, ...]  # pytest node ids: tests/file.py::test_name


RULES = (
    Rule("Tensor layout",
         "PyTorch and MXNet: NCHW activations, OIHW kernels, (out, in) dense weights (the "
         "canonical layout). Keras: NHWC activations, HWIO kernels, (in, out) dense kernels.",
         ("common.conventions.oihw_to_hwio", "common.conventions.hwio_to_oihw",
          "common.conventions.dense_to_keras"),
         ("tests/test_crosscheck.py::test_kernel_layout_transposed_is_caught",
          "tests/test_crosscheck.py::test_tf_kernel_layout_is_caught",
          "tests/test_backward.py::test_kernel_gradient_layout_is_blamed")),
    Rule("Flatten order",
         "A flatten of a C x H x W map is C*H*W in PyTorch and MXNet, H*W*C in Keras: the "
         "first dense layer after it has its input rows permuted (not just transposed).",
         ("common.conventions.hwc_to_chw_index", "common.conventions.dense_to_keras",
          "impls.tensorflow.model.flatten_inputs"),
         ("tests/test_crosscheck.py::test_tf_flatten_permutation_missing_is_caught_at_first_dense",
          "tests/test_backward.py::test_tf_missing_flatten_permutation_is_blamed_on_fc6")),
    Rule("LRN parameters",
         "A spec LRN writes alpha as its source does: the paper's, not divided by the window "
         "size n, or Caffe's, divided by n (`alpha_over_size`; Caffe's k defaults to 1). "
         "PyTorch LocalResponseNorm and MXNet LRN divide alpha by n: pass a paper's alpha * n, "
         "a Caffe alpha as it is. TensorFlow takes a radius r = (n - 1) / 2 and does not "
         "divide: pass a paper's alpha as it is, a Caffe alpha / n.",
         ("common.conventions.lrn_alpha_divided_by_size", "common.conventions.lrn_alpha_undivided",
          "common.conventions.lrn_depth_radius"),
         ("tests/test_crosscheck.py::test_lrn_alpha_left_unconverted_is_caught_at_norm1",
          "tests/test_crosscheck.py::test_mxnet_lrn_alpha_left_unconverted_is_caught",
          "tests/test_crosscheck.py::test_caffe_lrn_in_the_papers_convention_is_caught_at_norm1",
          "tests/test_crosscheck.py::test_tf_lrn_radius_taken_as_size_is_caught",
          "tests/test_reference.py::test_lrn_at_large_magnitude",
          "tests/test_reference.py::test_caffe_lrn_by_hand")),
    Rule("SAME padding",
         "TensorFlow's SAME pads asymmetrically, the odd pixel at the bottom/right; PyTorch and "
         "MXNet pad symmetrically, so SAME becomes an explicit asymmetric pad there.",
         ("common.shapes.same_padding", "common.shapes.conv_padding",
          "impls.pytorch.model.AsymmetricPadConv2d", "impls.mxnet_gluon.model.AsymmetricPadConv2D"),
         ("tests/test_spec.py::test_tf_same_padding_is_asymmetric",
          "tests/test_crosscheck.py::test_same_padding_made_symmetric_is_caught",
          "tests/test_frameworks.py::test_padding_and_adaptive_pooling_shortcuts_match_reference")),
    Rule("Pooling rounding",
         "Floor by default everywhere; ceil mode (Caffe, cuda-convnet) in PyTorch drops a last "
         "window that would start in the padding, MXNet's 'full' convention keeps it, so MXNet "
         "crops it; Keras pads with -inf explicitly.",
         ("common.shapes.pool_output", "impls.mxnet_gluon.model.mxnet_pool_output",
          "impls.mxnet_gluon.model.CroppedMaxPool2D", "impls.tensorflow.model.PaddedMaxPooling2D"),
         ("tests/test_spec.py::test_pool_ceil_mode_drops_window_starting_in_padding",
          "tests/test_crosscheck.py::test_pool_rounding_is_caught",
          "tests/test_crosscheck.py::test_mxnet_ceil_mode_without_pytorch_rule_is_caught")),
    Rule("Adaptive pooling",
         "PyTorch's bins along each axis are [floor(i*H/o), ceil((i+1)*H/o)), overlapping when o "
         "does not divide H; Keras and MXNet have no such layer, so it is built from the bins.",
         ("common.reference.adaptive_avg_pool2d", "impls.tensorflow.model.adaptive_bins",
          "impls.tensorflow.model.AdaptiveAveragePooling2D", "impls.mxnet_gluon.model.AdaptiveAvgPool2D"),
         ("tests/test_reference.py::test_adaptive_avg_pool",
          "tests/test_frameworks.py::test_odd_layer_options_match_reference",
          "tests/test_frameworks.py::test_padding_and_adaptive_pooling_shortcuts_match_reference")),
    Rule("Dropout",
         "Its place (before or after a dense layer) is part of each variant's layer list; it is "
         "the identity in eval mode, and a framework's training mode must be off to compare.",
         ("common.variants.get_variant", "common.reference.dropout_eval"),
         ("tests/test_backward.py::test_dropout_before_instead_of_after_dense_is_blamed_on_fc6",
          "tests/test_crosscheck.py::test_dropout_left_in_train_mode_is_caught",
          "tests/test_parity.py::test_dropout_is_off_in_every_framework")),
    Rule("Optimizer hyperparameters",
         "Weight decay is coupled L2 in torch.optim and MXNet, decoupled in Keras 3 (so it is "
         "added to the gradients by hand there); MXNet's Trainer divides by step(batch_size); "
         "Adam's epsilon sits in different places. See the table below.",
         ("common.optim.framework_optimizer", "common.optim.ReferenceOptimizer"),
         ("tests/test_step.py::test_keras_decoupled_weight_decay_is_caught_at_step_3",
          "tests/test_step.py::test_torch_momentum_dampening_is_caught_at_step_3",
          "tests/test_step.py::test_gluon_trainer_step_by_batch_size_is_caught_at_step_1",
          "tests/test_step.py::test_adam_epsilon_form_mismatch_is_caught")),
    Rule("Default initializers",
         "They differ (PyTorch kaiming-uniform(a=sqrt 5), Gluon uniform(0.07), Keras "
         "glorot-uniform, seed 000 Xavier(2.24), seed 004 truncated normal 0.1): never rely on "
         "them to compare; build every model and then load the same canonical weights.",
         ("common.weights.init_weights", "impls.pytorch.convert.load_canonical",
          "impls.mxnet_gluon.convert.load_canonical", "impls.tensorflow.convert.load_canonical"),
         ("tests/test_frameworks.py::test_canonical_round_trip_is_exact",
          "tests/test_convert.py::test_round_trip_through_every_format_keeps_the_arrays")),
    Rule("Shapes are not a proof",
         "d2l pads conv1 by 1 in PyTorch and 0 in MXNet/TF: both give 54x54, so shape tables "
         "agree while the values differ. Compare values, layer by layer.",
         ("crosscheck.run.check_framework",),
         ("tests/test_crosscheck.py::test_d2l_conv1_padding_1_same_shapes_caught_by_values",)),
    Rule("Model zoo names",
         "torchvision and the Gluon model zoo name parameters by position in their Sequential "
         "containers, with different positions (Gluon fuses ReLU into the layer); the tables "
         "below map them onto the spec's layers.",
         ("common.zoo_names.TORCHVISION", "common.zoo_names.GLUON_ZOO",
          "common.zoo_names.from_gluon_legacy"),
         ("tests/test_convert.py::test_reads_a_torchvision_state_dict_and_computes_its_function",
          "tests/test_convert.py::test_reads_a_gluon_model_zoo_file_and_computes_its_function",
          "tests/test_convert.py::test_a_wrong_conversion_fails_verification_and_leaves_nothing")),
)


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def _rules() -> str:
    rows = [[r.topic, r.rule, "<br>".join(f"`{n}`" for n in r.implemented_by),
             "<br>".join(f"`{t.split('::')[1]}` ({t.split('::')[0].split('/')[-1]})"
                         for t in r.proven_by)] for r in RULES]
    return render(["topic", "rule", "implemented by", "proven by"], rows, "markdown")


def _parameters(variant_name: str) -> str:
    """Every parameter: canonical and Keras shapes, and the zoo names for ``torchvision``."""
    variant = get_variant(variant_name)
    infos = {info.name: info for info in infer(variant)}
    flattened: dict[str, tuple[int, int, int]] = {}
    pending = None
    for info in infer(variant):
        if isinstance(info.layer, Flatten):
            pending = tuple(info.in_shape)
        elif isinstance(info.layer, Dense) and pending is not None:
            flattened[info.name], pending = pending, None
    zoo = variant_name == TORCHVISION.variant
    headers = ["parameter", "canonical (PyTorch, MXNet)", "Keras"] + (
        ["torchvision", "Gluon model zoo"] if zoo else [])
    rows = []
    for key, shape in param_shapes(variant).items():
        layer, kind = key.rsplit(".", 1)
        if kind == "weight" and isinstance(infos[layer].layer, Conv2d):
            keras = _shape(oihw_to_hwio(np.empty(shape, np.int8)).shape) + " (HWIO)"
        elif kind == "weight":
            keras = _shape(shape[::-1]) + " (in, out)"
            if layer in flattened:
                c, h, w = flattened[layer]
                keras += f", rows permuted from C*H*W {c}x{h}x{w} to H*W*C"
        else:
            keras = _shape(shape)
        row = [f"`{key}`", _shape(shape), keras]
        if zoo:
            row += [f"`{TORCHVISION.prefixes[layer]}.{kind}`", f"`{GLUON_ZOO.prefixes[layer]}.{kind}`"]
        rows.append(row)
    return render(headers, rows, "markdown")


def _flatten_example() -> str:
    perm = hwc_to_chw_index(256, 6, 6)
    weight = np.arange(2 * 256 * 36).reshape(2, 256 * 36)
    kernel = dense_to_keras(weight, (256, 6, 6))
    return (f"For `torchvision` (pool5 is 256x6x6), Keras's input row j holds canonical column "
            f"`hwc_to_chw_index(256, 6, 6)[j]`: rows 0-3 are columns {', '.join(map(str, perm[:4]))}"
            f" (channels 0-3 of pixel (0, 0)), row 256 is column {perm[256]} (channel 0 of pixel "
            f"(0, 1)). Check: `dense_to_keras(W, (256, 6, 6))[1, 0] == W[0, {kernel[1, 0]}]`.")


def _lrn() -> str:
    rows = []
    for name in variant_names():
        for layer in get_variant(name).layers:
            if isinstance(layer, LRN):
                rows.append([name, f"`{layer.name}`", f"{layer.size}, {layer.alpha:g}, {layer.beta:g}, {layer.k:g}",
                             "Caffe's (/ n)" if layer.alpha_over_size else "paper's",
                             f"`LocalResponseNorm({layer.size}, alpha={lrn_alpha_divided_by_size(layer):g}, "
                             f"beta={layer.beta:g}, k={layer.k:g})`",
                             f"`LRN(nsize={layer.size}, alpha={lrn_alpha_divided_by_size(layer):g}, "
                             f"beta={layer.beta:g}, knorm={layer.k:g})`",
                             f"`local_response_normalization(depth_radius={lrn_depth_radius(layer)}, "
                             f"bias={layer.k:g}, alpha={lrn_alpha_undivided(layer):g}, beta={layer.beta:g})`"])
    return render(["variant", "layer", "spec size, alpha, beta, k", "alpha convention", "PyTorch",
                   "MXNet", "TensorFlow"], rows, "markdown")


def _padding() -> str:
    rows = []
    for name in variant_names():
        variant = get_variant(name)
        for info in infer(variant):
            layer = info.layer
            if isinstance(layer, Conv2d) and info.padding != (0, 0, 0, 0):
                _, h, w = info.in_shape
                is_same = info.padding == (same_padding(h, layer.kernel, layer.stride)
                                           + same_padding(w, layer.kernel, layer.stride))
                rows.append([name, f"`{layer.name}`", f"{layer.kernel}/{layer.stride}",
                             "SAME" if layer.padding == "same" else "explicit",
                             "(top, bottom, left, right) = " + str(info.padding),
                             "`padding=\"same\"`" if is_same else "explicit pad, then valid"])
            elif isinstance(layer, MaxPool2d) and (layer.ceil_mode or layer.padding):
                rows.append([name, f"`{layer.name}`", f"{layer.kernel}/{layer.stride}",
                             "ceil mode" if layer.ceil_mode else "padded",
                             "-inf pad " + str(info.padding),
                             "explicit -inf pad, then valid" if any(info.padding) else
                             "`padding=\"valid\"` (ceil mode rounds nothing up at this size)"])
    return render(["variant", "layer", "kernel/stride", "spec", "resolved", "Keras"], rows, "markdown")


def _optimizers() -> str:
    rows = []
    for spec in OPTIMIZERS.values():
        for framework in ("pytorch", "mxnet", "tensorflow"):
            mapped = framework_optimizer(spec, framework)
            args = ", ".join(f"{k}={v}" for k, v in mapped.kwargs.items())
            extra = [f"weight decay {mapped.decay_in_gradient:g} added to the gradients"] if mapped.decay_in_gradient else []
            if spec.kind == "adam":
                extra.append(f"eps: {mapped.adam_eps}")
            rows.append([spec.name, framework, f"`{mapped.cls}({args})`", "; ".join(extra) or "-"])
    return render(["setting", "framework", "constructed as", "besides"], rows, "markdown")


def guide() -> str:
    """The whole of ``docs/PORTING.md``."""
    legacy = ", ".join(f"`{old}` -> `{new}`" for old, new in GLUON_ZOO_LEGACY_LAYERS.items())
    parts = [
        "# Porting AlexNet between PyTorch, MXNet Gluon and TensorFlow/Keras",
        "Generated by `python -m crosscheck.porting_guide > docs/PORTING.md` from the functions "
        "it cites; `tests/test_porting_guide.py` fails when this file is stale or a cited "
        "function or test no longer exists. Read the three models side by side "
        "(`impls/pytorch/model.py`, `impls/mxnet_gluon/model.py`, `impls/tensorflow/model.py`), "
        "convert weights with `alexnet convert`, and prove a port with `alexnet crosscheck`.",
        "## The rules",
        "Each rule is a classic porting bug. *Implemented by* names the one place the package "
        "writes it; *proven by* names tests that plant the bug and see the crosscheck catch it "
        "(or compare with the framework itself).",
        _rules(),
        "## Layer arguments, computed",
        "### LRN",
        "Divides alpha by the window size n (`common.conventions.LRN_DIVIDES_ALPHA`): "
        + ", ".join(f"{who} {'yes' if divides else 'no'}" for who, divides in LRN_DIVIDES_ALPHA.items())
        + ".",
        _lrn(),
        "### Padding and pooling that differ from each framework's default",
        _padding(),
        "### Optimizers",
        "This package's meaning of each number is torch.optim's; `common.optim.framework_optimizer` "
        "maps it:",
        _optimizers(),
        "## Parameters and their layouts, per variant",
        "Canonical is the layout of the canonical safetensors files and of PyTorch and MXNet. "
        + _flatten_example(),
        *[part for name in variant_names() for part in (f"### {name}", _parameters(name))],
        f"Older Gluon model zoo files (the pretrained downloads, `collect_params().save()`) name "
        f"parameters `<prefix>_<block>_<weight|bias>`: {legacy}.",
    ]
    return "\n\n".join(p.rstrip("\n") for p in parts) + "\n"


if __name__ == "__main__":
    print(guide(), end="")

"""``docs/PORTING.md``, generated: the guide to porting any AlexNet (this package's between
PyTorch, MXNet and TensorFlow/Keras, or someone else's: a repository's, a book's, Caffe's model
zoo). Each rule names the function that implements it and the tests that prove it, and the
tables that are data (layouts, name mappings, LRN and pooling arguments, the variants side by
side) are computed by the very functions the implementations call.

``python -m crosscheck.porting_guide > docs/PORTING.md`` regenerates it;
``tests/test_porting_guide.py`` fails when the file is stale or a cited name is gone (a cited
model of ``tests/inspect_models`` that is gone from its ``CASES`` table makes ``guide()``
raise), and ``tests/test_docs_examples.py`` checks ``LIBRARY_LRN`` against the installed
libraries and parses every ``alexnet`` command the guide shows.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from common import reference
from common.conventions import (
    LRN_DIVIDES_ALPHA, dense_to_keras, hwc_to_chw_index, lrn_alpha_divided_by_size, lrn_alpha_undivided,
    lrn_depth_radius, oihw_to_hwio,
)
from common.optim import OPTIMIZERS, framework_optimizer
from common.shapes import infer, param_shapes, same_padding, totals
from common.spec import LRN, Conv2d, Dense, Flatten, MaxPool2d
from common.table import render
from common.variants import get_variant, variant_names
from common.zoo_names import GLUON_ZOO, GLUON_ZOO_LEGACY_LAYERS, TORCHVISION
from inspection.flatten import ORDERS
from inspection.transfer import block_diagonal

ROOT = Path(__file__).resolve().parents[1]
#: the test that runs every model of the tests/inspect_models CASES tables
INSPECT_TEST = "tests/test_inspect.py::test_a_third_party_model_is_identified_and_fingerprinted"


@dataclass(frozen=True)
class Rule:
    topic: str
    rule: str
    implemented_by: tuple[str, ...]  # dotted names of functions, classes or constants
    proven_by: tuple[str, ...]  # pytest node ids: tests/file.py::test_name
    #: models written as third-party ports are (tests/inspect_models/<file>.py::<CASES key>),
    #: each run by ``INSPECT_TEST``, which ``proven_by`` then cites
    cases: tuple[str, ...] = ()


#: the conventions that differ between PyTorch, MXNet Gluon and TensorFlow/Keras
FRAMEWORK_RULES = (
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
         "first dense layer after it has its input rows permuted (not just transposed). "
         "Which one a model someone else wrote needs depends on how it flattens: see "
         "[How does your target flatten?](#how-does-your-target-flatten).",
         ("common.conventions.hwc_to_chw_index", "common.conventions.dense_to_keras",
          "impls.tensorflow.model.flatten_inputs"),
         ("tests/test_crosscheck.py::test_tf_flatten_permutation_missing_is_caught_at_first_dense",
          "tests/test_backward.py::test_tf_missing_flatten_permutation_is_blamed_on_fc6")),
    Rule("LRN parameters",
         "A spec LRN writes alpha as its source does: the paper's, not divided by the window "
         "size n, or Caffe's, divided by n (`alpha_over_size`; Caffe's k defaults to 1). "
         "PyTorch LocalResponseNorm and MXNet LRN divide alpha by n: pass a paper's alpha * n, "
         "a Caffe alpha as it is. TensorFlow takes a radius r = (n - 1) / 2 and does not "
         "divide: pass a paper's alpha as it is, a Caffe alpha / n. Every argument left out "
         "takes the library's default, none of which is the paper's: see [LRN](#lrn).",
         ("common.conventions.lrn_alpha_divided_by_size", "common.conventions.lrn_alpha_undivided",
          "common.conventions.lrn_depth_radius", "crosscheck.porting_guide.LIBRARY_LRN"),
         ("tests/test_crosscheck.py::test_lrn_alpha_left_unconverted_is_caught_at_norm1",
          "tests/test_crosscheck.py::test_mxnet_lrn_alpha_left_unconverted_is_caught",
          "tests/test_crosscheck.py::test_caffe_lrn_in_the_papers_convention_is_caught_at_norm1",
          "tests/test_crosscheck.py::test_tf_lrn_radius_taken_as_size_is_caught",
          "tests/test_reference.py::test_lrn_at_large_magnitude",
          "tests/test_reference.py::test_caffe_lrn_by_hand",
          "tests/test_docs_examples.py::test_the_guides_lrn_defaults_are_the_installed_libraries")),
    Rule("MXNet LRN's gradient with oneDNN",
         "`LRN(nsize=..., alpha=...)` computes the right forward pass, but in the mxnet 1.9.1 "
         "CPU wheel, where oneDNN is on by default, its input gradient is wrong whenever the "
         "op after it hands back its gradient in oneDNN's blocked layout: a convolution after "
         "it (CaffeNet's order), or a max pool after it where a convolution comes before (the "
         "paper's order); relative errors from 5.5e-2 to 1.9 in the report's cases. To train, compute LRN from a square, a sum over "
         "the channel window and a power, as this package's Gluon model does, or run with "
         "`MXNET_MKLDNN_ENABLED=0`. The reduction and the oneDNN source at fault: "
         "[mxnet-onednn-bug.md](mxnet-onednn-bug.md).",
         ("impls.mxnet_gluon.model.LocalResponseNorm",),
         ("tests/test_frameworks.py::test_mxnet_onednn_lrn_backward_bug",
          "tests/test_frameworks.py::test_mxnet_lrn_gradient_is_exact_as_shipped",
          "tests/test_frameworks.py::test_mxnet_f_lrn_with_onednn_is_caught")),
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
         "Adam's epsilon sits in different places. See [Optimizers](#optimizers).",
         ("common.optim.framework_optimizer", "common.optim.ReferenceOptimizer"),
         ("tests/test_step.py::test_keras_decoupled_weight_decay_is_caught_at_step_3",
          "tests/test_step.py::test_torch_momentum_dampening_is_caught_at_step_3",
          "tests/test_step.py::test_gluon_trainer_step_by_batch_size_is_caught_at_step_1",
          "tests/test_step.py::test_adam_epsilon_form_mismatch_is_caught")),
    Rule("Default initializers",
         "They differ (PyTorch kaiming-uniform(a=sqrt 5), Gluon uniform(0.07), Keras "
         "glorot-uniform, seed 000 Xavier(2.24), seed 004 truncated normal 0.1): never rely on "
         "them to compare; build every model and then load the same canonical weights "
         "(`alexnet init` writes them).",
         ("common.weights.init_weights", "impls.pytorch.convert.load_canonical",
          "impls.mxnet_gluon.convert.load_canonical", "impls.tensorflow.convert.load_canonical"),
         ("tests/test_frameworks.py::test_canonical_round_trip_is_exact",
          "tests/test_convert.py::test_round_trip_through_every_format_keeps_the_arrays")),
    Rule("Model zoo names",
         "torchvision and the Gluon model zoo name parameters by position in their Sequential "
         "containers, with different positions (Gluon fuses ReLU into the layer); the tables "
         "in [Parameters and their layouts](#parameters-and-their-layouts-per-variant) map "
         "them onto the spec's layers.",
         ("common.zoo_names.TORCHVISION", "common.zoo_names.GLUON_ZOO",
          "common.zoo_names.from_gluon_legacy"),
         ("tests/test_convert.py::test_reads_a_torchvision_state_dict_and_computes_its_function",
          "tests/test_convert.py::test_reads_a_gluon_model_zoo_file_and_computes_its_function",
          "tests/test_convert.py::test_a_wrong_conversion_fails_verification_and_leaves_nothing")),
)

#: what porting a model someone else wrote adds: its own flatten, grouping, pooling tricks
FOREIGN_RULES = (
    Rule("How the target flattens",
         "The permutation of the first dense layer's rows depends on the order the *target* "
         "flattens in, not on its framework: a plain reshape of an NHWC map (Keras `Flatten`, "
         "`tf.reshape`, a PyTorch port that permutes to channels-last first) is H*W*C and needs "
         "it; a model that transposes to NCHW before the reshape (a TensorFlow port of a "
         "PyTorch model) is C*H*W and must not get it. `alexnet inspect` tells the two apart "
         "from the model's own forward pass.",
         ("inspection.flatten.from_own_map", "inspection.flatten.flatten_columns",
          "common.conventions.dense_to_keras"),
         (INSPECT_TEST,
          "tests/test_inspect.py::test_a_forced_flatten_order_is_fingerprinted",
          "tests/test_inspect.py::test_export_undoes_the_keras_layouts_and_flatten_order"),
         ("tests/inspect_models/keras_models.py::d2l_sequential",
          "tests/inspect_models/keras_models.py::d2l_nchw_flatten",
          "tests/inspect_models/torch_models.py::cifar_small_channels_last_flatten",
          "tests/inspect_models/torch_models.py::torchvision_channels_last_flatten")),
    Rule("Grouped to ungrouped",
         "A model that builds conv2, conv4 and conv5 ungrouped (groups=1) takes a grouped "
         "variant's kernels block-diagonally: group g's outputs get group g's kernel on group "
         "g's input channels and zeros elsewhere, and compute exactly the grouped layer. The "
         "way back only works for a block-diagonal kernel: weights trained ungrouped are a "
         "larger model, not a grouped variant's.",
         ("inspection.transfer.block_diagonal", "inspection.transfer.grouped_blocks"),
         (INSPECT_TEST,),
         ("tests/inspect_models/torch_models.py::paper_ungrouped",
          "tests/inspect_models/keras_models.py::paper_ungrouped")),
    Rule("Ceil mode is not symmetric zero padding",
         "Ceil mode adds one window at the bottom/right only, where a partial window is left "
         "over (the -inf padding is on that side only). A symmetric zero pad before a floor "
         "pool shifts every window by the pad and may change the size: it computes something "
         "else, even where the sizes agree. Emulate ceil mode with bottom/right -inf padding "
         "(Keras here) or the framework's own option.",
         ("common.reference.pool_pads", "impls.tensorflow.model.PaddedMaxPooling2D",
          "crosscheck.causes.fits.pool_hypotheses"),
         (INSPECT_TEST, "tests/test_causes.py::test_pool_ceil_mode",
          "tests/test_reference.py::test_max_pool"),
         ("tests/inspect_models/torch_models.py::paper_pool1_zero_pad",
          "tests/inspect_models/keras_models.py::paper_pool1_zero_padded")),
    Rule("Caffe's input is BGR",
         "Caffe's ImageNet models (bvlc_alexnet, bvlc_reference_caffenet) take BGR, 0-255 minus "
         "the mean image. A port fed RGB must reverse conv1's input channels once "
         "(`alexnet convert --bgr-to-rgb`), or reverse the image; reversing both undoes it.",
         ("common.caffemodel.bgr_to_rgb",),
         ("tests/test_caffe_format.py::test_the_bgr_options_reverse_exactly_conv1s_input_channels",
          "tests/test_causes.py::test_pytorch_caffe_bgr_weights_on_rgb_input", INSPECT_TEST),
         ("tests/inspect_models/torch_models.py::torchvision_bgr_input",
          "tests/inspect_models/gluon_models.py::bgr_alexnet")),
)

#: published AlexNets that disagree with each other, or with themselves
SOURCE_RULES = (
    Rule("d2l: conv1 padded or not",
         "The d2l book's AlexNet has been printed with padding=1 on conv1 (d2l-en's PyTorch "
         "tab) and without (its MXNet and TensorFlow tabs, gluonbook, seeds 001/002). Both give "
         "54x54 maps, so shape tables agree while the values differ: compare values, layer by "
         "layer. This package's `d2l` pads nothing.",
         ("common.variants.d2l", "crosscheck.run.check_framework"),
         ("tests/test_crosscheck.py::test_d2l_conv1_padding_1_same_shapes_caught_by_values",
          INSPECT_TEST),
         ("tests/inspect_models/torch_models.py::d2l_book_conv1_pad1",
          "tests/inspect_models/torch_models.py::d2l_sequential")),
    Rule("Caffe's LRN is not the paper's",
         "bvlc_alexnet and CaffeNet write alpha=1e-4 and Caffe divides it by local_size 5, and "
         "leave k at Caffe's default 1; the paper's equation has alpha=1e-4 undivided and k=2. "
         "Caffe's weights go with `caffe-alexnet` or `caffenet`, not `paper`; Caffe also "
         "rounds pools up (ceil mode).",
         ("common.variants.CAFFE_LRN", "common.reference.lrn_alpha"),
         ("tests/test_spec.py::test_caffe_variants_are_bvlcs_deploy_definitions",
          "tests/test_reference.py::test_caffe_lrn_by_hand",
          "tests/test_crosscheck.py::test_caffe_lrn_in_the_papers_convention_is_caught_at_norm1",
          INSPECT_TEST),
         ("tests/inspect_models/torch_models.py::paper_lrn_caffe_k1",
          "tests/inspect_models/gluon_models.py::lrn_caffe_k")),
    Rule("CaffeNet pools before it normalizes",
         "bvlc_reference_caffenet swaps pool and norm in blocks 1 and 2; its parameters have "
         "exactly bvlc_alexnet's (and the paper's) shapes, so either file loads into the other "
         "model without an error and computes something else.",
         ("common.variants.caffenet",),
         ("tests/test_spec.py::test_caffe_variants_are_bvlcs_deploy_definitions",
          "tests/test_frameworks.py::test_every_layer_matches_reference")),
    Rule("torchvision is 'One weird trick', not the paper",
         "torchvision's `alexnet` (and the Gluon model zoo's, the same without the adaptive "
         "pool) follows Krizhevsky 2014: conv1 has 64 channels, not 96, no LRN, no groups, "
         "224x224 input with conv1 padded by 2, dropout before each hidden dense layer. Its "
         "weights fit no 2012 AlexNet.",
         ("common.variants.torchvision", "common.zoo_names.TORCHVISION"),
         ("tests/test_spec.py::test_param_counts", "tests/test_spec.py::test_feature_shapes",
          "tests/test_convert.py::test_reads_a_torchvision_state_dict_and_computes_its_function")),
)

RULES = FRAMEWORK_RULES + FOREIGN_RULES + SOURCE_RULES


@dataclass(frozen=True)
class LibraryLRN:
    """What an LRN call computes with every optional argument left out."""

    key: str  # a key of LRN_DIVIDES_ALPHA
    call: str
    size: Optional[int]  # the window in channels, None where the call requires it
    size_text: str
    alpha: float
    beta: float
    k: float
    how_checked: str


#: each library's LRN with its arguments left out; tests/test_docs_examples.py checks the
#: frameworks' rows against the installed libraries (signature or docstring, and the function)
LIBRARY_LRN = (
    LibraryLRN("caffe", "Caffe `LRN` layer, `lrn_param` fields left out", 5, "`local_size` 5",
               1.0, 0.75, 1.0,
               "BVLC `caffe.proto` (`LRNParameter` defaults) and `lrn_layer.cpp` (`alpha_ / size_`); "
               "Caffe is not installed here, so this row is read, not run"),
    LibraryLRN("pytorch", "`torch.nn.functional.local_response_norm(x, size)`, "
               "`torch.nn.LocalResponseNorm(size)`", None, "`size` required", 1e-4, 0.75, 1.0,
               "`inspect.signature` and the function, torch 2.13.0"),
    LibraryLRN("mxnet", "`mx.nd.LRN(x, nsize=n)`, `F.LRN` in a HybridBlock", None, "`nsize` required",
               1e-4, 0.75, 2.0, "the docstring (`alpha` default 9.99999975e-05, float32's 1e-4) "
               "and the function, mxnet 1.9.1"),
    LibraryLRN("tensorflow", "`tf.nn.lrn(x)` = `tf.nn.local_response_normalization(x)` "
               "(Keras 3 has no LRN layer)", 11, "`depth_radius` 5: an 11-channel window",
               1.0, 0.5, 1.0, "`inspect.signature` and the function, tensorflow 2.21.0"),
)


def _case_names(path: Path) -> set[str]:
    """The keys of the ``CASES = {...}`` literal in a tests/inspect_models file, read without
    importing it (which needs its framework)."""
    for node in ast.parse(path.read_text()).body:
        if (isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "CASES" for t in node.targets)
                and isinstance(node.value, ast.Dict)):
            return {key.value for key in node.value.keys if isinstance(key, ast.Constant)}
    return set()


def check_cases() -> None:
    """Every cited model is a case of its file's CASES table, run by ``INSPECT_TEST``."""
    for rule in RULES:
        if rule.cases and INSPECT_TEST not in rule.proven_by:
            raise ValueError(f"{rule.topic!r} cites models but not {INSPECT_TEST}")
        for case in rule.cases:
            path, name = case.split("::")
            if name not in _case_names(ROOT / path):
                raise ValueError(f"{rule.topic!r} cites {case}, which is not in {path}'s CASES: "
                                 f"{', '.join(sorted(_case_names(ROOT / path)))}")


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def _rules(rules: tuple[Rule, ...]) -> str:
    rows = []
    for r in rules:
        proofs = [f"`{t.split('::')[1]}` ({t.split('::')[0].split('/')[-1]})" for t in r.proven_by]
        if r.cases:
            proofs.append("models (`alexnet inspect --model tests/inspect_models/FILE:NAME`): "
                          + ", ".join(f"`{c.split('::')[0].split('/')[-1]}:{c.split('::')[1]}`"
                                      for c in r.cases))
        rows.append([r.topic, r.rule, "<br>".join(f"`{n}`" for n in r.implemented_by), "<br>".join(proofs)])
    return render(["topic", "rule", "implemented by", "proven by"], rows, "markdown", right_align_from=4)


def _variants() -> str:
    """The variants side by side: what tells them apart, from the spec itself."""
    rows = []
    for name in variant_names():
        variant = get_variant(name)
        convs = [layer for layer in variant.layers if isinstance(layer, Conv2d)]
        lrns = [layer for layer in variant.layers if isinstance(layer, LRN)]
        names = [layer.name for layer in variant.layers]
        order = ""
        if lrns:
            first = names.index(lrns[0].name)
            order = ", pool then norm" if isinstance(variant.layers[first - 1], MaxPool2d) else ", norm then pool"
            lrn = lrns[0]
            lrn_text = (f"n {lrn.size}, alpha {lrn.alpha:g} {'/ n' if lrn.alpha_over_size else 'undivided'}, "
                        f"k {lrn.k:g}{order}")
        else:
            lrn_text = "none"
        pools = [layer for layer in variant.layers if isinstance(layer, MaxPool2d)]
        rows.append([f"`{name}`", variant.source, _shape(variant.input_shape),
                     "-".join(str(c.out_channels) for c in convs),
                     ", ".join(c.name for c in convs if c.groups > 1) or "none", lrn_text,
                     "ceil" if any(p.ceil_mode for p in pools) else "floor",
                     f"{totals(infer(variant))['params']:,}"])
    return render(["variant", "source", "input", "conv channels", "grouped", "LRN", "pools",
                   "parameters"], rows, "markdown", right_align_from=7)


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


def _flatten_decision() -> str:
    chw, hwc = (ORDERS[order].split(" (")[0] for order in ("chw", "hwc"))
    rows = [
        ["PyTorch `torch.flatten(x, 1)`, `nn.Flatten`, `x.view(n, -1)` on NCHW; MXNet `Flatten`",
         chw, "none: the canonical (out, in) weight as it is", "`torch_models.py:d2l_sequential`"],
        ["Keras `Flatten()` or `tf.reshape(x, (n, -1))` on an NHWC map",
         hwc, "permute the rows: `dense_to_keras(W, (C, H, W))`",
         "`keras_models.py:d2l_sequential`"],
        ["TensorFlow that transposes first: `tf.transpose(x, [0, 3, 1, 2])`, then a reshape",
         chw, "none: transpose only, `dense_to_keras(W)` without the map",
         "`keras_models.py:d2l_nchw_flatten`"],
        ["PyTorch that permutes to channels-last first: `x.permute(0, 2, 3, 1).reshape(n, -1)` "
         "(a port of Keras weights)", hwc, "permute the columns of the (out, in) weight",
         "`torch_models.py:cifar_small_channels_last_flatten`"],
    ]
    return render(["the target flattens with", "order", "what the first dense weight needs",
                   "model that proves it"], rows, "markdown", right_align_from=4)


def _block_diagonal_example() -> str:
    shape = param_shapes(get_variant("paper"))["conv2.weight"]
    full = block_diagonal(np.ones(shape, np.int8), 2)
    half_out, half_in = shape[0] // 2, shape[1]
    zeros = 1 - np.count_nonzero(full) / full.size
    return (f"For `paper`'s conv2, `block_diagonal` turns the grouped {_shape(shape)} kernel into an "
            f"ungrouped {_shape(full.shape)} one: output channels 0-{half_out - 1} read input channels "
            f"0-{half_in - 1}, outputs {half_out}-{shape[0] - 1} read inputs {half_in}-{2 * half_in - 1}, "
            f"and {zeros:.0%} of it is zeros.")


def _ceil_example() -> str:
    """caffe-alexnet's pool1 at two input sizes: ceil mode against a 1-pixel zero pad, on a
    seeded non-negative (post-ReLU) map, so that zeros and -inf pad alike."""
    lines = []
    for size in (227, 224):
        variant = get_variant("caffe-alexnet", input_size=(size, size))
        info = next(i for i in infer(variant) if i.name == "pool1")
        ceil = info.layer
        zero_pad = MaxPool2d(ceil.name, ceil.kernel, ceil.stride, padding=1)
        c, h, w = info.in_shape
        x = np.maximum(np.random.default_rng(0).standard_normal((1, 4, h, w)), 0.0)
        a, b = reference.max_pool2d(x, ceil, {}), reference.max_pool2d(x, zero_pad, {})
        if a.shape == b.shape:
            diff = (f"the same size, and on a seeded non-negative 4x{h}x{w} map the two differ by "
                    f"relative L2 {np.linalg.norm(a - b) / np.linalg.norm(a):.2f}")
        else:
            diff = "another size, so every layer after it is another network"
        lines.append(f"- input {size}x{size}: pool1 gets {h}x{w}; ceil mode gives {a.shape[2]}x{a.shape[3]} "
                     f"(-inf padding (top, bottom, left, right) = {info.padding}), a zero pad of 1 and a "
                     f"floor pool give {b.shape[2]}x{b.shape[3]}: {diff}.")
    return "\n".join(lines)


def _library_lrn() -> str:
    paper = next(layer for layer in get_variant("paper").layers if isinstance(layer, LRN))
    rows = [["the paper (section 3.3): what a port must reach", str(paper.size), f"{paper.alpha:g}",
             f"{paper.beta:g}", f"{paper.k:g}", "yes" if paper.alpha_over_size else "no",
             f"the `paper` variant's `{paper.name}`"]]
    for row in LIBRARY_LRN:
        rows.append([row.call, row.size_text, f"{row.alpha:g}", f"{row.beta:g}", f"{row.k:g}",
                     "yes" if LRN_DIVIDES_ALPHA[row.key] else "no", row.how_checked])
    return render(["LRN", "window", "alpha", "beta", "k", "divides alpha by n", "checked against"],
                  rows, "markdown", right_align_from=7)


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
                   "MXNet (forward; to train, see above)", "TensorFlow"], rows, "markdown")


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


INSPECT_EXAMPLE = """```console
$ alexnet inspect --model my_alexnet.py:alexnet
$ alexnet inspect --model my_alexnet.py:alexnet --map order.json
$ alexnet inspect --model my_alexnet.py:alexnet --export mine.safetensors
$ alexnet crosscheck --variant paper --weights mine.safetensors
$ alexnet convert --variant paper --from mine.safetensors --to keras:mine.weights.h5
```"""


def guide() -> str:
    """The whole of ``docs/PORTING.md``."""
    check_cases()
    legacy = ", ".join(f"`{old}` -> `{new}`" for old, new in GLUON_ZOO_LEGACY_LAYERS.items())
    parts = [
        "# Porting an AlexNet: between PyTorch, MXNet Gluon and TensorFlow/Keras, and from any source",
        "Generated by `python -m crosscheck.porting_guide > docs/PORTING.md` from the functions "
        "it cites; `tests/test_porting_guide.py` fails when this file is stale or a cited "
        "function, test or model no longer exists. It is for anyone moving AlexNet weights or "
        "code: between this package's three models (`impls/pytorch/model.py`, "
        "`impls/mxnet_gluon/model.py`, `impls/tensorflow/model.py`, read side by side), or "
        "from someone else's: a repository's, a book's, Caffe's model zoo. Convert weight "
        "files with `alexnet convert` ([convert.md](convert.md)), check a model you did not "
        "write with `alexnet inspect` ([inspect.md](inspect.md)), and prove a port with "
        "`alexnet crosscheck` ([crosscheck.md](crosscheck.md)).",
        "Every rule below is a classic porting bug. *Implemented by* names the one place the "
        "package writes it; *proven by* names tests that plant the bug and see a check catch "
        "it (or compare with the framework itself), and models written the way third-party "
        "ports are (`tests/inspect_models/`), each of which `alexnet inspect` must identify "
        "and, where it differs, fingerprint at the right layer.",
        "- [Which AlexNet is it? Sources that disagree](#which-alexnet-is-it-sources-that-disagree)\n"
        "- [The rules between frameworks](#the-rules-between-frameworks)\n"
        "- [Porting a model someone else wrote](#porting-a-model-someone-else-wrote)\n"
        "- [LRN](#lrn)\n"
        "- [How does your target flatten?](#how-does-your-target-flatten)\n"
        "- [Grouped to ungrouped](#grouped-to-ungrouped)\n"
        "- [Ceil-mode pooling and its emulations](#ceil-mode-pooling-and-its-emulations)\n"
        "- [Optimizers](#optimizers)\n"
        "- [Check your port with alexnet inspect](#check-your-port-with-alexnet-inspect)\n"
        "- [Parameters and their layouts, per variant](#parameters-and-their-layouts-per-variant)",
        "## Which AlexNet is it? Sources that disagree",
        "\"AlexNet\" names several networks, and weights of one computed by another's code give "
        "no error, only other numbers. Find which one you have first (`alexnet inspect` does "
        "it from the model's layers). The registered variants, from the spec "
        "(`common/variants.py`):",
        _variants(),
        "Where published sources disagree:",
        _rules(SOURCE_RULES),
        "## The rules between frameworks",
        _rules(FRAMEWORK_RULES),
        "## Porting a model someone else wrote",
        "A model you did not write adds its own choices: how it flattens, whether it groups, how "
        "it emulates what its framework lacks, which input it expects.",
        _rules(FOREIGN_RULES),
        "## LRN",
        "Two conventions for alpha: the paper's equation (and TensorFlow) multiply the window's "
        "sum of squares by alpha; Caffe, PyTorch and MXNet by alpha / n. Divides alpha by the "
        "window size n (`common.conventions.LRN_DIVIDES_ALPHA`): "
        + ", ".join(f"{who} {'yes' if divides else 'no'}" for who, divides in LRN_DIVIDES_ALPHA.items())
        + ".",
        "### Each library's defaults, when arguments are left out",
        "None of them is the paper's LRN: a port that leaves an argument out gets the value "
        "below. `tests/test_docs_examples.py::"
        "test_the_guides_lrn_defaults_are_the_installed_libraries` checks each framework row "
        "against the installed library: the signature's (or MXNet's docstring's) defaults, and "
        "the function called with only the required arguments against the float64 reference "
        "LRN with this row's constants and convention.",
        _library_lrn(),
        "So `nn.LocalResponseNorm(5)` is alpha 2e-5 in effect and k 1 (two constants off), "
        "`LRN(nsize=5)` alpha 2e-5 with the paper's k 2, and a bare `tf.nn.lrn(x)` differs from "
        "the paper in all four: an 11-channel window, alpha 1, beta 0.5, k 1 "
        "(`keras_models.py:paper_lrn_default_radius` has that window).",
        "### The arguments each variant needs",
        _lrn(),
        "## How does your target flatten?",
        "The canonical weights (and PyTorch, MXNet) flatten C*H*W. Whether the first dense "
        "layer's rows must be permuted depends on the order the model you port *to* flattens "
        "in, which its framework alone does not tell. Read its forward pass:",
        _flatten_decision(),
        _flatten_example(),
        "If you cannot tell, `alexnet inspect` finds it: it compares the first dense layer's "
        "input with the model's own last feature map flattened both ways and prints the order "
        "on its `flatten:` line (`inspection/flatten.py`); `--map` with "
        "`{\"flatten\": \"chw\"}` or `\"hwc\"` forces one, and a forced wrong order is "
        "fingerprinted at the flatten.",
        "## Grouped to ungrouped",
        "The paper, `caffe-alexnet` and `caffenet` split conv2, conv4 and conv5 into 2 groups "
        "(the two GPUs). Ports to a framework or layer without groups build them ungrouped. "
        + _block_diagonal_example()
        + " `alexnet inspect` expands a grouped variant's kernels this way wherever the model's "
        "convolution is ungrouped (`inspection/transfer.py`), and with `--own-weights` or "
        "`--export` reads an ungrouped model as the grouped variant only where its kernels are "
        "block-diagonal.",
        "## Ceil-mode pooling and its emulations",
        "Caffe and cuda-convnet round pool sizes up. Where a framework lacks the option, ports "
        "pad instead, and a symmetric zero pad is not ceil mode. `caffe-alexnet`'s pool1, "
        "computed by the float64 reference:",
        _ceil_example(),
        "`alexnet inspect` fingerprints such a pool as a padding where the spec has none "
        "(`torch_models.py:paper_pool1_zero_pad`, `keras_models.py:paper_pool1_zero_padded`).",
        "### Padding and pooling that differ from each framework's default",
        _padding(),
        "## Optimizers",
        "This package's meaning of each number is torch.optim's; `common.optim.framework_optimizer` "
        "maps it:",
        _optimizers(),
        "## Check your port with alexnet inspect",
        "`alexnet inspect --model FILE.py:FACTORY` (or `package.module:factory`) takes a PyTorch "
        "module, a Gluon block or a Keras model as its author wrote it, finds the variant it "
        "implements, puts that variant's seeded canonical weights in (through every rule "
        "above: layouts, flatten order, block-diagonal groups) and checks each layer in "
        "isolation against the float64 reference. Where a layer differs it names the "
        "convention that layer computes instead, recomputed and matched to float32 precision: "
        "the bugs of this guide are what it looks for. Then `--export` writes the model's own "
        "weights as canonical safetensors, which `alexnet crosscheck` checks in all three "
        "frameworks and `alexnet convert` turns into any format. A `--map` file names the "
        "model's layer per spec layer where the order is ambiguous. Options, output, what it "
        "cannot see and worked examples: [inspect.md](inspect.md).",
        INSPECT_EXAMPLE,
        "## Parameters and their layouts, per variant",
        "Canonical is the layout of the canonical safetensors files (`alexnet init` writes "
        "them) and of PyTorch and MXNet; Keras's first dense kernel after the flatten has its "
        "rows permuted as in [How does your target flatten?](#how-does-your-target-flatten).",
        *[part for name in variant_names() for part in (f"### {name}", _parameters(name))],
        f"Older Gluon model zoo files (the pretrained downloads, `collect_params().save()`) name "
        f"parameters `<prefix>_<block>_<weight|bias>`: {legacy}.",
    ]
    return "\n\n".join(p.rstrip("\n") for p in parts) + "\n"


if __name__ == "__main__":
    print(guide(), end="")

"""Shapes, parameters and MACs against the figures checked in DESIGN.md."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from common.shapes import infer, param_shapes, pool_output, same_padding, smallest_square_input, totals
from common.spec import LRN, Conv2d, MaxPool2d, SpecError
from common.variants import get_variant
from tests.conftest import VARIANTS

#: BVLC publishes no count for CaffeNet: its layer shapes are bvlc_alexnet's, so is its count
PARAMS = {"paper": 60_965_224, "caffe-alexnet": 60_965_224, "caffenet": 60_965_224,
          "torchvision": 61_100_840, "d2l": 46_764_746, "cifar-small": 576_778}

# Per-layer (C, H, W) after each conv and pool, from DESIGN.md (and seed 004's printout).
FEATURE_SHAPES = {
    "paper": [(96, 55, 55), (96, 27, 27), (256, 27, 27), (256, 13, 13), (384, 13, 13),
              (384, 13, 13), (256, 13, 13), (256, 6, 6)],
    # Caffe's ceil rounding changes no size at 227: (55 - 3) / 2 and (27 - 3) / 2 are whole
    "caffe-alexnet": [(96, 55, 55), (96, 27, 27), (256, 27, 27), (256, 13, 13), (384, 13, 13),
                      (384, 13, 13), (256, 13, 13), (256, 6, 6)],
    "torchvision": [(64, 55, 55), (64, 27, 27), (192, 27, 27), (192, 13, 13), (384, 13, 13),
                    (256, 13, 13), (256, 13, 13), (256, 6, 6)],
    "d2l": [(96, 54, 54), (96, 26, 26), (256, 26, 26), (256, 12, 12), (384, 12, 12),
            (384, 12, 12), (256, 12, 12), (256, 5, 5)],
    "tf-benchmark": [(64, 56, 56), (64, 27, 27), (192, 27, 27), (192, 13, 13), (384, 13, 13),
                     (256, 13, 13), (256, 13, 13), (256, 6, 6)],
}


@pytest.mark.parametrize("name,params", PARAMS.items())
def test_param_counts(name, params):
    assert totals(infer(get_variant(name)))["params"] == params


def test_torchvision_macs_and_flops():
    t = totals(infer(get_variant("torchvision")))
    assert t["macs"] == 714_188_480 and t["flops"] == 2 * 714_188_480


@pytest.mark.parametrize("name", FEATURE_SHAPES)
def test_feature_shapes(name):
    shapes = [i.out_shape for i in infer(get_variant(name)) if i.kind in ("Conv2d", "MaxPool2d")]
    assert shapes == FEATURE_SHAPES[name]


def test_caffe_variants_are_bvlcs_deploy_definitions():
    """bvlc_alexnet normalizes before it pools, CaffeNet after; both have Caffe's LRN (alpha
    divided by local_size, k 1), ceil-mode pools, and a Softmax ``prob`` after fc8."""
    alexnet, caffenet = get_variant("caffe-alexnet"), get_variant("caffenet")
    names = [layer.name for layer in alexnet.layers]
    assert names[:8] == ["conv1", "relu1", "norm1", "pool1", "conv2", "relu2", "norm2", "pool2"]
    assert [layer.name for layer in caffenet.layers][:8] == [
        "conv1", "relu1", "pool1", "norm1", "conv2", "relu2", "pool2", "norm2"]
    assert names[-8:] == ["fc6", "relu6", "drop6", "fc7", "relu7", "drop7", "fc8", "prob"]
    assert alexnet.logits_layer == "fc8" and alexnet.input_shape == (3, 227, 227)
    for variant in (alexnet, caffenet):
        assert sorted(layer.name for layer in variant.layers) == sorted(names)
        assert {(l.size, l.alpha, l.beta, l.k, l.alpha_over_size) for l in variant.layers
                if isinstance(l, LRN)} == {(5, 1e-4, 0.75, 1.0, True)}
        assert all(l.ceil_mode for l in variant.layers if isinstance(l, MaxPool2d))
        assert [l.groups for l in variant.layers if isinstance(l, Conv2d)] == [1, 2, 1, 2, 2]
    # the same shapes as paper: each other's weights load
    assert param_shapes(alexnet) == param_shapes(caffenet) == param_shapes(get_variant("paper"))


def test_d2l_flatten_is_6400():
    assert [i.out_shape for i in infer(get_variant("d2l")) if i.name == "flatten"] == [(6400,)]


def test_tf_same_padding_is_asymmetric():
    conv1 = infer(get_variant("tf-benchmark"))[0]
    assert conv1.padding == (3, 4, 3, 4)
    assert same_padding(224, 11, 4) == (3, 4)


@pytest.mark.parametrize("name", VARIANTS)
def test_params_equal_param_shapes(name):
    variant = get_variant(name)
    assert sum(math.prod(s) for s in param_shapes(variant).values()) == totals(infer(variant))["params"]


def test_overrides():
    v = get_variant("paper", num_classes=10, in_channels=1, input_size=(99, 99))
    infos = infer(v)
    assert v.input_shape == (1, 99, 99) and infos[-1].out_shape == (10,)
    assert param_shapes(v)["conv1.weight"] == (96, 1, 11, 11)


@pytest.mark.parametrize("name", VARIANTS)
def test_too_small_input_names_layer_and_smallest(name):
    variant = get_variant(name)
    smallest = smallest_square_input(variant)
    c = variant.input_shape[0]
    infer(replace(variant, input_shape=(c, smallest, smallest)))  # the smallest works
    with pytest.raises(SpecError) as err:
        infer(replace(variant, input_shape=(c, smallest - 1, smallest - 1)))
    message = str(err.value)
    assert f"smallest input that works is {c}x{smallest}x{smallest}" in message
    assert "at layer '" in message


def test_bad_overrides_and_unknown_variant():
    with pytest.raises(SpecError, match="unknown variant 'alexnet2'"):
        get_variant("alexnet2")
    with pytest.raises(SpecError, match="num_classes must be a positive"):
        get_variant("paper", num_classes=0)


def test_pool_ceil_mode_drops_window_starting_in_padding():
    # PyTorch: MaxPool2d(2, 2, padding=1, ceil_mode=True) on 5 -> 3: a 4th window would
    # start at padded index 6, in the right padding.
    assert pool_output(5, 2, 2, 1, True) == 3 and pool_output(4, 2, 2, 1, True) == 3
    assert pool_output(5, 3, 2, 0, True) == 2 and pool_output(6, 3, 2, 0, True) == 3
    assert pool_output(6, 3, 2, 0, False) == 2


def test_groups_must_divide_channels():
    variant = get_variant("cifar-small")
    bad = replace(variant, layers=(Conv2d("conv1", 64, 5, groups=2),) + variant.layers[1:])
    with pytest.raises(SpecError, match="groups=2"):
        infer(bad)


def test_pool_padding_over_half_kernel_is_refused():
    variant = get_variant("cifar-small")
    bad = replace(variant, layers=variant.layers[:2] + (MaxPool2d("pool1", 3, 2, padding=2),)
                  + variant.layers[3:])
    with pytest.raises(SpecError, match="more than half"):
        infer(bad)

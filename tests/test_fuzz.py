"""Property-based crosscheck: random valid small networks (tests/strategies.py), each
framework against the spec's shapes and the float64 reference, forward and backward.

The default hypothesis profile runs a few derandomized examples per framework; ``tox -e
fuzz`` (HYPOTHESIS_PROFILE=fuzz, registered in tests/conftest.py) runs many more. Every
failure the fuzzer found is kept below as an explicit regression test.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from typing import Optional

from common import reference, reference_backward
from common.inputs import normal_batch
from common.shapes import infer
from common.spec import (LRN, AdaptiveAvgPool2d, Conv2d, Dense, Dropout, Flatten, MaxPool2d, ReLU,
                         Softmax, Variant)
from common.weights import init_weights
from crosscheck.backward import (DEFAULT_GRADIENT_TOLERANCES, check_gradients, compare_chains,
                                 float32_scales, gradient_inputs, reference_chain, run_chain)
from crosscheck.compare import DEFAULT_TOLERANCES, Tolerances, layer_error
from tests.conftest import FRAMEWORK_NAMES, backend_or_skip
from tests.strategies import variants

BATCH = 2


def static_shapes(backend, model) -> dict[str, tuple[int, ...]]:
    """The per-image output shapes the framework's model declares before running, where it
    has them (Keras's symbolic outputs, channels-first), else {}."""
    if backend.name != "tensorflow":
        return {}
    shapes = {}
    for layer in model.layers:
        shape = tuple(layer.output.shape[1:])
        shapes[layer.name] = (shape[2], shape[0], shape[1]) if len(shape) == 3 else shape
    return shapes


def magnitudes(variant: Variant, weights, x: np.ndarray, outputs: dict[str, np.ndarray],
               scales: Optional[dict[str, np.ndarray]] = None) -> dict[str, np.ndarray]:
    """Every layer's output as computed on absolute values (|x|, |W|, |b|; LRN's divisor
    and a softmax taken from the reference ``outputs``): the size of the sums behind each
    element, which float32 rounding errors scale with. Where a sum cancels (a narrow dense
    layer whose output is near zero by chance, kept by a ReLU) the result is much smaller
    than its terms, and an error relative to the result judges float32 itself, not the
    framework. ``scales``: dropout factors in train mode."""
    absolute = {k: np.abs(v.astype(np.float64)) for k, v in weights.items()}
    m = np.abs(np.asarray(x, np.float64))
    layer_in = np.asarray(x, np.float64)
    out = {}
    for info in infer(variant):
        layer = info.layer
        if isinstance(layer, (Conv2d, Dense, MaxPool2d, AdaptiveAvgPool2d, Flatten)):
            m = reference.FORWARD[type(layer)](m, layer, absolute)
        elif isinstance(layer, LRN):
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.abs(outputs[info.name] / layer_in)
            m = m * np.where(np.isfinite(ratio), ratio, layer.k ** -layer.beta)
        elif isinstance(layer, Dropout) and scales is not None:
            m = m * scales[info.name]
        elif isinstance(layer, Softmax):
            m = np.abs(outputs[info.name])
        out[info.name] = m
        layer_in = outputs[info.name]
    return out


def within_float32(value: np.ndarray, expected: np.ndarray, magnitude: np.ndarray,
                   tol: Tolerances = DEFAULT_TOLERANCES) -> bool:
    """``layer_error``'s figures normalized by the magnitude of the computation instead of
    the result: the same tolerances where nothing cancels, float32 noise where a sum does.
    Every porting bug (layout, padding, LRN convention) is still off by > 1e-2 of it."""
    if value.shape != expected.shape or not np.all(np.isfinite(value)):
        return False
    diff = value.astype(np.float64) - expected
    if not diff.size or not np.any(diff):
        return True
    return bool(np.linalg.norm(diff) <= tol.rel_l2 * np.linalg.norm(magnitude)
                and np.max(np.abs(diff)) <= tol.norm_max * np.max(magnitude))


def gradient_magnitudes(info, x: np.ndarray, grad_out: np.ndarray, weights) -> dict[str, np.ndarray]:
    """A conv or dense layer's gradients on absolute values: "dL/din", "dL/dweight",
    "dL/dbias" as the sums behind them."""
    absolute = {k: np.abs(v.astype(np.float64)) for k, v in weights.items()}
    grad_in, grads = reference_backward.BACKWARD[type(info.layer)](
        np.abs(x), None, np.abs(grad_out), info.layer, absolute)
    return {"dL/din": grad_in, **{"dL/d" + k.split(".")[1]: v for k, v in grads.items()}}


def unexplained_failures(backend, variant, weights, x, labels, masks, ref, run) -> list:
    """The rows of a failed gradient run that float32 cancellation does not explain: an
    end-to-end output or a layer-isolated conv or dense result within ``within_float32``
    of the reference is float32 noise (the run's loss error is judged as it is)."""
    failed = [r for r in run.end_to_end + run.isolated if not r.passed]
    if not failed:
        return []
    scales = float32_scales(variant, masks)
    model = backend.build(variant, weights)
    chains = {}
    infos = {i.name: i for i in infer(variant)}
    names = list(infos)
    train = magnitudes(variant, weights, x, ref.outputs, scales)
    near_ties = pool_near_ties(variant, x, ref.outputs)

    seeded_rows: list = []  # end to end from the reference's dL/dlogits, run once if needed

    def row_passes_from_reference_loss_grad(row) -> bool:
        """A saturated softmax's dL/dlogits = (p - onehot) / N cancels: float32 gets it to
        ~1e-7 of p + onehot, which can be 40% of the result, and every end-to-end gradient
        below carries that relative error. So: the framework's own dL/dlogits within float32
        of the sums behind it, and the row passing end to end from the reference's."""
        if not seeded_rows:
            logits = variant.logits_layer
            own, expected = chains[False].output_grads.get(logits), ref.output_grads[logits]
            z = ref.outputs[logits]
            magnitude = (reference.softmax(z, None, {}) + np.eye(z.shape[1])[labels]) / len(z)
            if own is None or not within_float32(own, expected, magnitude):
                seeded_rows.append(None)  # the loss gradient itself is off: no excuse
            else:
                seeded = run_chain(backend, model, variant, x, labels, scales, loss_grad=expected)
                chains["seeded"] = seeded
                seeded_rows.extend(compare_chains(variant, seeded, ref, x,
                                                  DEFAULT_GRADIENT_TOLERANCES, isolated=False))
        return any(r is not None and (r.layer, r.what) == (row.layer, row.what)
                   and (r.passed or sum_within_float32(chains["seeded"], row))
                   for r in seeded_rows)

    def sum_within_float32(got, row) -> bool:
        """A conv or dense layer's gradient in ``got`` within float32 of the sums behind it
        (``gradient_magnitudes``): a bias gradient, the sum of the images' dL/dout, can
        cancel to 1e-6 of its terms, and float32's rounding of the terms alone is then 2%
        of it (the fuzzer, MXNet: logits' dL/dbias 4.8e-7 from +-0.245)."""
        info, what = infos[row.layer], row.what.removeprefix("own ")
        if not isinstance(info.layer, (Conv2d, Dense)) or what == "out":
            return False
        index = names.index(row.layer)
        layer_in = x.astype(np.float64) if index == 0 else ref.outputs[names[index - 1]]
        scale = gradient_magnitudes(info, layer_in, ref.output_grads[row.layer], weights)[what]
        value = (got.input_grads.get(row.layer) if what == "dL/din" else
                 got.param_grads.get(f"{row.layer}.{what[4:]}"))
        expected = (ref.input_grads[row.layer] if what == "dL/din" else
                    ref.param_grads[f"{row.layer}.{what[4:]}"])
        return value is not None and within_float32(np.asarray(value), expected, scale)

    unexplained = []
    # the layer-isolated rows first: an end-to-end row is excused only where none of them
    # is left unexplained (a row that is float32 noise is not a bug below it)
    for row in sorted(failed, key=lambda r: r not in run.isolated):
        isolated = row in run.isolated
        what = row.what.removeprefix("own ")
        if isolated not in chains:
            chains[isolated] = run_chain(backend, model, variant, x, labels, scales,
                                         isolate_on=ref if isolated else None)
        got = chains[isolated]
        if what == "out" and row.layer in got.outputs:
            if within_float32(got.outputs[row.layer], ref.outputs[row.layer], train[row.layer]):
                continue
        elif isolated and sum_within_float32(got, row):
            continue
        elif not isolated and what != "out" and not any(u[3] for u in unexplained):
            if near_ties:
                continue  # a max-pool winner that float32 and float64 pick differently
            if row_passes_from_reference_loss_grad(row):
                continue  # the loss gradient's own float32 error, carried down
        unexplained.append((row.layer, row.what, row.error, isolated))
    return [u[:3] for u in unexplained]


def pool_near_ties(variant: Variant, x: np.ndarray, outputs: dict[str, np.ndarray]) -> bool:
    """Whether a max pool has a window whose winner float32 and float64, or two frameworks,
    may pick differently, which moves whole elements of the end-to-end gradients below it
    (crosscheck.backward.GradientTolerances; layer-isolated, each layer still matches):

    - a near tie: its two largest inputs differ by less than float32's forward error;
    - an exact tie of a nonzero maximum (a region where only a bias reaches, say): which
      of the tied inputs gets the gradient is each framework's own choice (PyTorch and
      MXNet take the first, TensorFlow's CPU kernel may not), and a nonzero input passes
      it on through the ReLU below, where a tie of ReLU zeros would not. The crosscheck
      leaves tied positions out of the rows next to the pool (``_untied``), not below it.
    """
    infos = infer(variant)
    for i, info in enumerate(infos):
        if isinstance(info.layer, MaxPool2d) and info.layer.kernel > 1:
            layer_in = x.astype(np.float64) if i == 0 else outputs[infos[i - 1].name]
            win = reference.pool_windows(layer_in, info.layer)[1]
            top = np.sort(win.reshape(win.shape[:4] + (-1,)), axis=-1)[..., -2:]
            gap = top[..., 1] - top[..., 0]
            if np.any((gap > 0) & (gap < 1e-4 * np.max(np.abs(layer_in)))):
                return True
            if np.any((gap == 0) & (top[..., 1] != 0)):
                return True
    return False


def check_variant(backend, variant: Variant, seed: int) -> None:
    """Shapes, forward and backward of ``backend`` on ``variant`` against the spec and the
    float64 reference; assertion messages name the layer."""
    weights = init_weights(variant, seed)
    x = normal_batch(variant, BATCH, seed)
    infos = infer(variant)
    model = backend.build(variant, weights)

    spec_shapes = {i.name: i.out_shape for i in infos}
    for name, shape in static_shapes(backend, model).items():
        assert shape == spec_shapes[name], (
            f"{backend.name} {name}: declared shape {shape}, spec {spec_shapes[name]}")
    outputs = backend.layer_outputs(model, x)
    assert list(outputs) == [i.name for i in infos], "one output per spec layer, in order"
    for info in infos:
        real = tuple(outputs[info.name].shape)
        assert real == (BATCH,) + info.out_shape, (
            f"{backend.name} {info.name} ({info.kind}): real shape {real[1:]}, spec {info.out_shape}")

    ref = reference.forward(variant, weights, x)
    sizes = magnitudes(variant, weights, x, ref)
    for name, expected in ref.items():
        error = layer_error(outputs[name], expected)
        assert error.passes(DEFAULT_TOLERANCES) or within_float32(outputs[name], expected, sizes[name]), (
            f"{backend.name} forward {name}: {error}")

    labels, masks = gradient_inputs(variant, BATCH, seed)
    ref_chain = reference_chain(variant, weights, x, labels, masks)
    run = check_gradients(backend, variant, weights, x, labels, masks, ref_chain)
    failed = unexplained_failures(backend, variant, weights, x, labels, masks, ref_chain, run)
    assert not failed and run.loss_error <= DEFAULT_TOLERANCES.rel_l2, (
        f"{backend.name} backward: blamed {run.blamed and run.blamed.layer} ({run.diagnosis}); "
        f"loss error {run.loss_error}; {failed}")


@pytest.mark.parametrize("framework", FRAMEWORK_NAMES)
@given(variant=variants(), seed=st.integers(0, 2 ** 16))
def test_random_network_matches_spec_and_reference(framework, variant, seed):
    check_variant(backend_or_skip(framework), variant, seed)


# Regression tests: each a failure the fuzzer found, shrunk and kept.

def lrn_wider_than_channels():
    """An LRN window (size 3, 5) wider than the map's channels (1, 2). MXNet's LRN raised
    "local size must be smaller than nchannels"; the spec's window is zero outside the
    channels, which impls/mxnet_gluon/model.py's LocalResponseNorm now pads explicitly."""
    from common.spec import LRN, Conv2d, Dense, Flatten, ReLU
    layers = (Conv2d("conv1", 1, 1, padding="valid"), ReLU("relu1"),
              LRN("norm1", size=3, alpha=1e-3, beta=1.0, k=1.0),
              Conv2d("conv2", 2, 3, padding="same"), ReLU("relu2"),
              LRN("norm2", size=5, alpha=1e-3, beta=0.75, k=2.0),
              Flatten("flatten"), Dense("logits", 2))
    return Variant("lrn-wide", layers, (1, 7, 7), 2, "fuzz regression")


@pytest.mark.parametrize("framework", FRAMEWORK_NAMES)
def test_lrn_window_wider_than_channels(framework):
    check_variant(backend_or_skip(framework), lrn_wider_than_channels(), seed=0)


def cancelling_sums():
    """Found by the fuzzer in every framework: not a framework bug, float32 itself. A
    narrow dense layer (fc1, 1 wide) whose output is near zero by chance, kept by a ReLU;
    and the output bias gradient of a batch of 2 whose softmax is near uniform (the two
    images' p - onehot cancel). The error relative to such a result is 1e-5..4e-5; relative
    to the sums behind it (``within_float32``) it is float32 noise."""
    from common.spec import Dense, Flatten, ReLU
    narrow = (Conv2d("conv1", 6, 2, padding=(1, 2, 2, 2)), ReLU("relu1"),
              MaxPool2d("pool1", 2, 1), Conv2d("conv2", 1, 2, padding=(1, 1, 2, 2)),
              ReLU("relu2"), Conv2d("conv3", 5, 1, stride=2, padding="valid"), ReLU("relu3"),
              Flatten("flatten"), Dense("fc0", 2), ReLU("fc_relu0"), Dense("fc1", 1),
              ReLU("fc_relu1"), Dense("logits", 2))
    bias = (Conv2d("conv1", 1, 1, padding="valid"), ReLU("relu1"), Flatten("flatten"),
            Dense("logits", 2))
    padded = (Conv2d("conv1", 1, 1, stride=2, padding=(2, 2, 2, 2)), ReLU("relu1"),
              Flatten("flatten"), Dense("fc0", 2), ReLU("fc_relu0"), Dense("logits", 2))
    return [(Variant("narrow-dense", narrow, (2, 25, 8), 2, "fuzz regression"), 0),
            (Variant("bias-grad", bias, (2, 7, 7), 2, "fuzz regression"), 2),
            (Variant("padded-1x1", padded, (1, 7, 7), 2, "fuzz regression"), 0),
            (cancelled_bias_end_to_end(), 0)]


def cancelled_bias_end_to_end():
    """Found by the fuzzer (MXNet, the clean-clone CI of 4ea5c47): logits' dL/dbias is
    4.8e-7, the sum of +-0.245 over the two images. Layer-isolated, float32's rounding of
    those terms alone is 2% of it; end to end, MXNet's own dL/dlogits (3.6e-7 from float64,
    7e-7 of p + onehot) made it 147% off. Both are float32 noise of the sums behind them."""
    from common.spec import Dense, Flatten, ReLU
    layers = (Conv2d("conv1", 1, 1, stride=3, padding=(1, 1, 1, 1)), ReLU("relu1"),
              Flatten("flatten"), Dense("logits", 2))
    return Variant("cancelled-bias", layers, (1, 22, 12), 2, "fuzz regression")


@pytest.mark.parametrize("framework", FRAMEWORK_NAMES)
@pytest.mark.parametrize("index", range(4), ids=["narrow-dense", "bias-grad", "padded-1x1",
                                                 "cancelled-bias"])
def test_cancelling_sums_are_float32_noise(framework, index):
    variant, seed = cancelling_sums()[index]
    check_variant(backend_or_skip(framework), variant, seed)


@pytest.mark.parametrize("where", ["logits weight", "conv1 weight"])
def test_a_cancelled_bias_does_not_hide_a_planted_gradient_bug(monkeypatch, where):
    """On the cancelled-bias network, where MXNet's end-to-end rows are excused as float32
    noise, a 1% error planted in a weight gradient still fails ``check_variant``."""
    backend = backend_or_skip("mxnet")
    layer = where.split()[0]
    vjp_layer = backend.vjp_layer

    def planted(model, name, *args):
        g, grads = vjp_layer(model, name, *args)
        return (g, {k: v * 1.01 if k.endswith("weight") else v for k, v in grads.items()}) \
            if name == layer else (g, grads)
    monkeypatch.setattr(backend, "vjp_layer", planted)
    with pytest.raises(AssertionError, match=f"backward.*{layer}"):
        check_variant(backend, cancelled_bias_end_to_end(), seed=0)


def pool_near_tie():
    """Found by the fuzzer (PyTorch): end-to-end gradients below pool3 off by 3% while
    every layer-isolated check passes. pool3's input has windows whose two largest values
    differ by less than the float32 forward error, so float32 and float64 route the
    gradient to different elements (the documented limit of end-to-end gradients,
    crosscheck.backward.GradientTolerances); in a tiny network one moved element is 3% of
    the norm. ``pool_near_ties`` recognizes it."""
    layers = (Conv2d("conv1", 6, 1, padding="valid", groups=3), ReLU("relu1"),
              Conv2d("conv2", 12, 1, padding="valid", groups=3), ReLU("relu2"),
              Conv2d("conv3", 4, 2, padding="same", groups=4), ReLU("relu3"),
              LRN("norm3", size=3, alpha=1e-5, beta=1.0, k=1.0), MaxPool2d("pool3", 2, 1),
              Flatten("flatten"), Dense("logits", 2))
    return Variant("pool-near-tie", layers, (3, 7, 7), 2, "fuzz regression")


@pytest.mark.parametrize("framework", FRAMEWORK_NAMES)
def test_pool_near_tie_moves_only_end_to_end_gradients(framework):
    check_variant(backend_or_skip(framework), pool_near_tie(), seed=0)


def tied_nonzero_maxima():
    """Found by the fuzzer (TensorFlow, tox -e fuzz; this kind twice in about 5,000 fresh
    networks): end-to-end dL/dout of relu3 and conv3 off 15% while every layer-isolated
    check passed. Where relu2 is 0, conv3 (1x1) outputs its bias alone, so pool3's windows
    hold exact ties of a positive value; TensorFlow's MaxPoolGrad routes the gradient to
    another of the tied inputs than the reference (PyTorch and MXNet agree with it), and
    the positive input passes it down. Both are valid subgradients; ``pool_near_ties``
    recognizes it."""
    layers = (Conv2d("conv1", 3, 2, stride=2, padding="valid", groups=3), ReLU("relu1"),
              MaxPool2d("pool1", 1, 1), Conv2d("conv2", 3, 2, padding="same", groups=3),
              ReLU("relu2"), MaxPool2d("pool2", 1, 1),
              Conv2d("conv3", 3, 1, padding="valid", groups=3), ReLU("relu3"),
              LRN("norm3", size=7, alpha=1e-5, beta=0.7297168477328149, k=1.5),
              MaxPool2d("pool3", 4, 1, padding=2), Flatten("flatten"), Dense("logits", 2))
    return Variant("tied-nonzero-maxima", layers, (3, 7, 7), 2, "fuzz regression")


@pytest.mark.parametrize("framework", FRAMEWORK_NAMES)
def test_tied_nonzero_maxima_move_only_end_to_end_gradients(framework):
    check_variant(backend_or_skip(framework), tied_nonzero_maxima(), seed=2)


def test_tensorflow_breaks_the_tie_differently_and_the_check_takes_the_reference_routing():
    """The regression above must not pass for the wrong reason: with its own routing of the
    tied gradient, TensorFlow's end-to-end gradients really are off below pool3 (relu3: 15%)
    while each layer is right; the backward check takes the reference's routing at tied
    elements (``crosscheck.backward.run_chain``'s ``ties_from``) and passes, as PyTorch,
    which routes as the reference does, passes either way."""
    variant = tied_nonzero_maxima()
    weights, x = init_weights(variant, 2), normal_batch(variant, BATCH, 2)
    labels, masks = gradient_inputs(variant, BATCH, 2)
    ref_chain = reference_chain(variant, weights, x, labels, masks)
    assert pool_near_ties(variant, x, ref_chain.outputs)
    tensorflow = backend_or_skip("tensorflow")
    own = compare_chains(variant, run_chain(tensorflow, tensorflow.build(variant, weights), variant,
                                            x, labels, float32_scales(variant, masks)),
                         ref_chain, x, DEFAULT_GRADIENT_TOLERANCES, isolated=False)
    assert max(r.error.rel_l2 for r in own if not r.passed) > 0.1  # relu3: 15%
    run = check_gradients(tensorflow, variant, weights, x, labels, masks, ref_chain)
    assert run.status == "pass" and run.worst("end_to_end", "dL/d") < 1e-4
    pytorch = backend_or_skip("pytorch")
    assert check_gradients(pytorch, variant, weights, x, labels, masks, ref_chain).status == "pass"


PLANTED = {
    # a wrong LRN constant: the layer's own output off by 1e-3
    "lrn output": ("forward", "norm3", lambda out: out * 1.001),
    # a wrong kernel-gradient scale (e.g. a mean where a sum belongs)
    "conv weight gradient": ("vjp", "conv3", lambda g, grads: (g, {k: v * 1.01 for k, v in grads.items()})),
    # the LRN gradient's cross-channel term dropped or doubled: its input gradient off by 1%
    "lrn input gradient": ("vjp", "norm3", lambda g, grads: (g * 1.01, grads)),
}


@pytest.mark.parametrize("bug", list(PLANTED))
def test_the_excuses_do_not_hide_a_planted_bug(monkeypatch, bug):
    """Every excuse above (near and tied pool winners, cancelling sums) is active on the
    tied network, and still a planted bug in one layer fails ``check_variant``: the excuses
    judge end-to-end rows only where every layer-isolated row passes or is float32 noise."""
    backend = backend_or_skip("pytorch")
    where, layer, plant = PLANTED[bug]
    if where == "forward":
        forward_layer, layer_outputs = backend.forward_layer, backend.layer_outputs
        monkeypatch.setattr(backend, "forward_layer", lambda model, name, *a: (
            plant(forward_layer(model, name, *a)) if name == layer else forward_layer(model, name, *a)))
        monkeypatch.setattr(backend, "layer_outputs", lambda model, x: {
            name: plant(out) if name == layer else out for name, out in layer_outputs(model, x).items()})
    else:
        vjp_layer = backend.vjp_layer
        monkeypatch.setattr(backend, "vjp_layer", lambda model, name, *a: (
            plant(*vjp_layer(model, name, *a)) if name == layer else vjp_layer(model, name, *a)))
    with pytest.raises(AssertionError, match=layer if where == "forward" else "backward"):
        check_variant(backend, tied_nonzero_maxima(), seed=2)


def saturated_softmax():
    """Found by the fuzzer (TensorFlow, tox -e fuzz; then all three frameworks alike): every
    end-to-end gradient 44% off float64 while each layer matched, PyTorch, MXNet and
    TensorFlow within 1e-6 of each other. One image's 1-wide fc1 is 354, so its softmax is
    saturated and dL/dlogits = (p - onehot) / N ~ 1e-8 cancels: float32 gets it right to
    ~1e-7 of p + onehot, 44% of itself, and every gradient below carries that. Started
    from the reference's dL/dlogits, the framework's chain passes end to end."""
    layers = (Conv2d("conv1", 4, 1, padding="valid"), ReLU("relu1"), MaxPool2d("pool1", 2, 1),
              AdaptiveAvgPool2d("avgpool", (1, 5)), Flatten("flatten"), Dense("fc0", 14),
              ReLU("fc_relu0"), Dropout("drop0", 0.5), Dense("fc1", 1), ReLU("fc_relu1"),
              Dense("logits", 2))
    return Variant("saturated-softmax", layers, (1, 7, 7), 2, "fuzz regression")


@pytest.mark.parametrize("framework", FRAMEWORK_NAMES)
def test_a_saturated_softmax_gradient_is_float32_noise(framework):
    check_variant(backend_or_skip(framework), saturated_softmax(), seed=202)


def test_the_saturated_softmax_is_excused_only_for_its_loss_gradient(monkeypatch):
    """The regression above passes for the right reason: the end-to-end gradients really
    are 44% off, and a planted 1% error in fc0's weight gradient on the same network still
    fails (the chain started from the reference's dL/dlogits does not hide it)."""
    backend = backend_or_skip("pytorch")
    variant = saturated_softmax()
    weights, x = init_weights(variant, 202), normal_batch(variant, BATCH, 202)
    labels, masks = gradient_inputs(variant, BATCH, 202)
    ref_chain = reference_chain(variant, weights, x, labels, masks)
    run = check_gradients(backend, variant, weights, x, labels, masks, ref_chain)
    assert run.blamed is None and run.first_divergence.error.rel_l2 > 0.3
    vjp_layer = backend.vjp_layer

    def planted(model, name, *args):
        g, grads = vjp_layer(model, name, *args)
        return (g * 1.01, grads) if name == "fc0" else (g, grads)
    monkeypatch.setattr(backend, "vjp_layer", planted)
    with pytest.raises(AssertionError, match="backward"):
        check_variant(backend, variant, seed=202)


@pytest.mark.parametrize("framework", FRAMEWORK_NAMES)
@pytest.mark.parametrize("gain", [8.0, 40.0], ids=["tiny-loss", "zero-loss"])
def test_a_confident_network_has_a_tiny_loss_with_float32_noise(framework, gain):
    """Found by the fuzzer (PyTorch, tox -e fuzz): loss relative error 3.9e-5 while every
    gradient passed. A confident network's loss is logsumexp(z) - z_label ~ 0: relative to
    the loss, float32's rounding of z is large (7% here); relative to |z| it is noise
    (``crosscheck.backward.loss_scale``). At gain 40 the float64 loss is exactly 0, which
    made the crosscheck divide by zero."""
    from common.spec import Dense, Flatten
    backend = backend_or_skip(framework)
    variant = Variant("confident", (Flatten("flatten"), Dense("logits", 3)), (1, 4, 4), 3,
                      "fuzz regression")
    weights = {k: v * (gain if k == "logits.weight" else 1.0)
               for k, v in init_weights(variant, seed=1).items()}
    x = normal_batch(variant, BATCH, seed=1)
    labels = np.argmax(reference.forward(variant, weights, x)["logits"], axis=1)  # right, and sure
    _, masks = gradient_inputs(variant, BATCH, 0)
    ref_chain = reference_chain(variant, weights, x, labels, masks)
    run = check_gradients(backend, variant, weights, x, labels, masks, ref_chain)
    assert ref_chain.loss < 1e-6
    assert run.loss_error <= DEFAULT_TOLERANCES.rel_l2, run.loss_error
    # (its gradients, p - onehot ~ 1e-7, are cancelling sums: check_variant's magnitude-aware
    # judgement covers those, as test_cancelling_sums_are_float32_noise shows)

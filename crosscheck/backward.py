"""The backward check: train-mode forward, gradients, and layer-isolated localization.

Every framework runs the same chain: each layer's forward, the framework's own
mean softmax cross-entropy, then each layer's vector-Jacobian product from the
top, all by the framework's own autograd. Dropout stays in the comparison: every
framework gets the same seeded keep-masks, applied where the spec puts dropout,
so a dropout in the wrong place shows up at that layer.

Two modes, compared with the float64 reference (``common.reference_backward``):

- end to end: each layer gets the framework's own input and output gradient, as
  in training; errors accumulate from layer to layer;
- layer-isolated: each layer gets the reference's input and output gradient, so
  its error is its own. The first layer whose own error breaks tolerance is the
  one to blame; ``diagnose`` names the porting bug its kind usually means.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from common.reference_backward import backward as reference_backward
from common.reference_backward import dropout_masks, dropout_scale, max_pool_ties
from common.shapes import LayerInfo, infer
from common.spec import Conv2d, Dense, Dropout, Flatten, MaxPool2d, Variant
from common.weights import Weights
from crosscheck.compare import LayerError, Tolerances, layer_error
from crosscheck.verdicts import quote
from crosscheck.hypotheses import Cause, confirmed


@dataclass(frozen=True)
class GradientTolerances:
    """Thresholds for train-mode outputs and gradients in float32.

    Layer-isolated, every output and gradient stays below ~2e-6 (relative L2) against
    float64, so the forward tolerance 1e-5 applies: this is the strict check, and the
    one that blames a layer. End to end, train-mode outputs stay as close as in eval
    mode (1e-5), but gradients can move: where two max-pool candidates differ by less
    than the float32 forward error, float32 and float64 pick different winners and a
    whole gradient element moves (measured up to 5e-3 on `paper`, < 5e-6 elsewhere).
    2e-2 accepts that; a wrong gradient (LRN term, layout, dropout mask) is off by > 0.1.
    A moved element makes the normalized max error O(1), so end to end only the
    relative L2 error of gradients is judged. The backward check's own chain takes the
    reference's routing at tied elements (``run_chain``'s ``ties_from``), which leaves ~1e-6;
    the fast path's whole-model gradients, judged with the same limit, route ties their own way.
    """

    isolated: Tolerances = Tolerances(rel_l2=1e-5, norm_max=1e-5)
    end_to_end_outputs: Tolerances = Tolerances(rel_l2=1e-5, norm_max=1e-5)
    end_to_end_gradients: Tolerances = Tolerances(rel_l2=2e-2, norm_max=float("inf"))


DEFAULT_GRADIENT_TOLERANCES = GradientTolerances()


@dataclass
class Chain:
    """Everything one run of the chain produced (canonical layout)."""

    loss: float
    outputs: dict[str, np.ndarray]
    output_grads: dict[str, np.ndarray]   # dL/d(layer output)
    input_grads: dict[str, np.ndarray]    # dL/d(layer input)
    param_grads: dict[str, np.ndarray]
    #: layer -> what the framework raised there (e.g. after a shape mismatch upstream)
    errors: dict[str, str] = field(default_factory=dict)
    #: of a reference chain: pool layer -> (its input, ``max_pool_ties`` of it), made once
    #: and read by every framework's comparison in both modes
    ties: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)


@dataclass
class Row:
    """One compared quantity: ``what`` is e.g. 'out', 'dL/dout', 'own dL/din', 'dL/dW'."""

    layer: str
    kind: str
    what: str
    error: LayerError
    passed: bool


@dataclass
class GradientRun:
    framework: str
    status: str
    loss_error: float = float("nan")
    end_to_end: list[Row] = field(default_factory=list)
    isolated: list[Row] = field(default_factory=list)
    diagnosis: Optional[str] = None
    seconds: float = 0.0
    #: the porting bug that reproduces the blamed layer's own output, if one does
    cause: Optional[Cause] = None

    @property
    def first_divergence(self) -> Optional[Row]:
        return next((r for r in self.end_to_end if not r.passed), None)

    @property
    def blamed(self) -> Optional[Row]:
        """The first layer whose own (isolated) error breaks tolerance."""
        return next((r for r in self.isolated if not r.passed), None)

    def worst(self, rows: str, what_prefix: str = "") -> float:
        values = [r.error.rel_l2 for r in getattr(self, rows) if r.what.startswith(what_prefix)]
        return max(values, default=float("nan"))


def reference_chain(variant: Variant, weights: Weights, x: np.ndarray, labels: np.ndarray,
                    masks: dict[str, np.ndarray],
                    eval_outputs: Optional[dict[str, np.ndarray]] = None) -> Chain:
    """The float64 chain every framework's is compared with. ``eval_outputs``:
    ``reference.forward`` of the same weights and ``x``, reused up to the first dropout."""
    loss, outputs, output_grads, grad_x, param_grads = reference_backward(
        variant, weights, x, labels, masks, eval_outputs=eval_outputs)
    names = list(output_grads)  # up to the logits layer: a final Softmax has no gradient
    input_grads = {name: (grad_x if i == 0 else output_grads[names[i - 1]]) for i, name in enumerate(names)}
    return Chain(loss, outputs, output_grads, input_grads, param_grads)


def run_chain(backend, model, variant: Variant, x: np.ndarray, labels: np.ndarray,
              scales: dict[str, np.ndarray], isolate_on: Optional[Chain] = None,
              loss_grad: Optional[np.ndarray] = None, ties_from: Optional[Chain] = None) -> Chain:
    """Forward then backward through the framework, layer by layer. With ``isolate_on``
    (the reference's chain) every layer gets the reference's input and output gradient.
    ``loss_grad``: start the backward pass from this dL/dlogits instead of the framework's
    own (end to end with the reference's, the loss gradient's float32 error is taken out).
    ``ties_from`` (the reference's chain, end to end): below a max pool, where the window's
    maximum is tied to float32 accuracy (``max_pool_ties``), the gradient takes the
    reference's routing, since either is right and the comparisons skip those elements at
    the pool itself; otherwise a tie routed the other way moves every gradient below it
    (paper at --batch-size 1: 2.2e-2 relative from pool5 down, against 2e-2 allowed).
    A layer that raises is recorded in ``errors``; end to end the chain stops there."""
    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
    infos = infer(variant)
    chain = Chain(float("nan"), {}, {}, {}, {})
    inputs = {}
    h = x
    for i, info in enumerate(infos):
        if isolate_on is not None and i > 0:
            h = isolate_on.outputs[infos[i - 1].name]
        inputs[info.name] = f32(h)
        try:
            h = backend.forward_layer(model, info.name, inputs[info.name], scales.get(info.name))
        except Exception as exc:  # a framework's own error message, kept for the report
            chain.errors[info.name] = f"forward raised {quote(exc)}"
            if isolate_on is None:
                return chain
            continue
        chain.outputs[info.name] = h
    # the loss folds a final Softmax in (Variant.logits_layer): backward starts below it
    infos = infos[:[i.name for i in infos].index(variant.logits_layer) + 1]
    logits = (chain.outputs if isolate_on is None else isolate_on.outputs)[infos[-1].name]
    chain.loss, g = backend.loss_and_grad(f32(logits), labels)
    if loss_grad is not None:
        g = f32(loss_grad)
    for info in reversed(infos):
        if isolate_on is not None:
            g = isolate_on.output_grads[info.name]
        chain.output_grads[info.name] = g
        try:
            g, grads = backend.vjp_layer(model, info.name, inputs[info.name], f32(g),
                                         scales.get(info.name))
        except Exception as exc:
            chain.errors.setdefault(info.name, f"backward raised {quote(exc)}")
            if isolate_on is None:
                return chain
            continue
        if ties_from is not None and isinstance(info.layer, MaxPool2d):
            index = [i.name for i in infos].index(info.name)
            pool_input = x if index == 0 else ties_from.outputs[infos[index - 1].name]
            expected = ties_from.input_grads[info.name]
            if g.shape == expected.shape:  # else the comparison reports the shape
                g = np.where(_ties(ties_from, info, pool_input), expected, g).astype(np.float32)
        chain.input_grads[info.name] = g
        chain.param_grads.update(grads)
    return chain


def _untied(grad: np.ndarray, ref_grad: np.ndarray, pool_input: np.ndarray, info: LayerInfo,
            ref: Chain):
    """Both gradients with the ambiguous max-pool tie positions zeroed. The ties of the
    reference's ``pool_input`` are kept in ``ref`` (the same for every framework and mode)."""
    if grad.shape != ref_grad.shape:
        return grad, ref_grad  # layer_error reports the shape mismatch
    ties = _ties(ref, info, pool_input)
    return np.where(ties, 0.0, grad), np.where(ties, 0.0, ref_grad)


def _ties(ref: Chain, info: LayerInfo, pool_input: np.ndarray) -> np.ndarray:
    """``max_pool_ties`` of the reference's ``pool_input`` to pool ``info``, made once per chain."""
    known = ref.ties.get(info.name)
    if known is None or known[0] is not pool_input:
        known = ref.ties[info.name] = (pool_input, max_pool_ties(
            np.asarray(pool_input, np.float64), info.layer))
    return known[1]


def compare_chains(variant: Variant, got: Chain, ref: Chain, x: np.ndarray,
                   tol: GradientTolerances, isolated: bool) -> list[Row]:
    infos = infer(variant)
    rows: list[Row] = []

    def add(info: LayerInfo, what: str, value: Optional[np.ndarray], expected: np.ndarray) -> None:
        if value is None:
            error = LayerError(np.inf, np.inf, np.inf, got.errors.get(info.name, "not computed"))
        else:
            error = layer_error(np.asarray(value), expected)
        limit = (tol.isolated if isolated else
                 tol.end_to_end_outputs if what == "out" else tol.end_to_end_gradients)
        rows.append(Row(info.name, info.kind, what, error, error.passes(limit)))

    for i, info in enumerate(infos):
        prefix = "own " if isolated else ""
        add(info, prefix + "out", got.outputs.get(info.name), ref.outputs[info.name])
        if info.name not in ref.output_grads:
            continue  # a final Softmax, folded into the loss
        grad, ref_grad = got.input_grads.get(info.name), ref.input_grads[info.name]
        if isinstance(info.layer, MaxPool2d) and grad is not None:
            pool_input = x if i == 0 else ref.outputs[infos[i - 1].name]
            grad, ref_grad = _untied(grad, ref_grad, pool_input, info, ref)
        if isolated or i == 0:
            add(info, prefix + "dL/din", grad, ref_grad)
        for key in (f"{info.name}.weight", f"{info.name}.bias"):
            if key in ref.param_grads:
                add(info, prefix + "dL/d" + key.split(".")[1], got.param_grads.get(key),
                    ref.param_grads[key])
        if not isolated:
            grad, ref_grad = got.output_grads.get(info.name), ref.output_grads[info.name]
            if (i + 1 < len(infos) and isinstance(infos[i + 1].layer, MaxPool2d)
                    and grad is not None):
                grad, ref_grad = _untied(grad, ref_grad, ref.outputs[info.name], infos[i + 1], ref)
            add(info, "dL/dout", grad, ref_grad)
    return rows


def diagnose(variant: Variant, row: Row) -> str:
    """The known porting bug a layer's own failure most often means."""
    infos = infer(variant)
    index = [i.name for i in infos].index(row.layer)
    info = infos[index]
    earlier = [i.layer for i in infos[:index] if not isinstance(i.layer, Dropout)]
    shape_problem = row.error.problem is not None and "shape" in row.error.problem
    near_dropout = any(isinstance(i.layer, Dropout) for i in infos[max(index - 1, 0):index + 3])
    placement = "dropout placement (a mask applied before instead of after it)"
    also = f"; or {placement}" if near_dropout else ""
    if isinstance(info.layer, Dense) and earlier and isinstance(earlier[-1], Flatten):
        return ("flatten order: the first dense layer after a flatten needs its input rows "
                "permuted between C*H*W and H*W*C (common.conventions.dense_to_keras)" + also)
    if info.kind == "LRN":
        return ("LRN convention: alpha divided by the window size or not, window size vs "
                "radius (common.conventions.lrn_alpha_divided_by_size, lrn_depth_radius)")
    if isinstance(info.layer, MaxPool2d):
        return ("pooling rounding: floor vs ceil mode, or the last window that starts in the "
                "padding" if shape_problem else "max pooling: padding value or window")
    if isinstance(info.layer, Conv2d):
        if info.layer.padding == "same" or (info.padding and info.padding[0] != info.padding[1]):
            return "SAME padding: TensorFlow pads asymmetrically (the extra pixel bottom/right)"
        if row.what.endswith("dL/dweight"):
            return "kernel gradient layout (OIHW vs HWIO)"
        return "kernel layout (OIHW vs HWIO, or height and width swapped) or padding"
    if isinstance(info.layer, Dropout):
        return "dropout placement (before vs after the dense layer) or train/eval mode"
    if isinstance(info.layer, Dense) and row.what.endswith("dL/dweight"):
        return "dense weight layout ((out, in) vs (in, out))" + also
    if isinstance(info.layer, Dense) and also:
        return placement
    return f"the {info.kind} layer itself"


def loss_scale(variant: Variant, ref: Chain) -> float:
    """What a loss error is relative to: the loss, or the largest logit where that is larger.
    Cross-entropy is logsumexp(z) - z_label; in a confident network the two nearly cancel
    (the float64 loss can be exactly 0), and float32's rounding of z is then large against
    the loss though it is noise against z (tests/test_fuzz.py found it)."""
    logits = ref.outputs[variant.up_to_logits().layers[-1].name]
    return max(abs(ref.loss), float(np.max(np.abs(logits))), np.finfo(np.float64).tiny)


def check_gradients(backend, variant: Variant, weights: Weights, x: np.ndarray, labels: np.ndarray,
                    masks: dict[str, np.ndarray], ref: Chain,
                    tol: GradientTolerances = DEFAULT_GRADIENT_TOLERANCES,
                    model: object = None) -> GradientRun:
    """End-to-end and layer-isolated gradient comparison of one framework. ``model``: the
    framework's model of ``variant`` holding ``weights``, if one is built already."""
    start = time.perf_counter()
    scales = float32_scales(variant, masks)
    model = backend.build(variant, weights) if model is None else model
    end_to_end = compare_chains(variant, run_chain(backend, model, variant, x, labels, scales,
                                                   ties_from=ref),
                                ref, x, tol, isolated=False)
    isolated_chain = run_chain(backend, model, variant, x, labels, scales, isolate_on=ref)
    isolated = compare_chains(variant, isolated_chain, ref, x, tol, isolated=True)
    loss_error = abs(isolated_chain.loss - ref.loss) / loss_scale(variant, ref)
    if not np.isfinite(loss_error):
        loss_error = float("inf")
    run = GradientRun(backend.name, "pass", loss_error, end_to_end, isolated,
                      seconds=time.perf_counter() - start)
    if run.blamed is not None or run.first_divergence is not None or loss_error > tol.isolated.rel_l2:
        run.status = "FAIL"
        blamed = run.blamed
        if blamed is not None:
            run.diagnosis = diagnose(variant, blamed)
            output = isolated_chain.outputs.get(blamed.layer)
            if blamed.what == "own out" and output is not None:
                names = [i.name for i in infer(variant)]
                index = names.index(blamed.layer)
                layer_input = x if index == 0 else ref.outputs[names[index - 1]]
                run.cause = confirmed(variant, blamed.layer, weights, layer_input, output,
                                      ref.outputs[blamed.layer], train=True)
                run.diagnosis = (f"{run.cause.text} (confirmed: {run.cause.evidence()})" if run.cause
                                 else f"{run.diagnosis} (not confirmed numerically)")
    return run


def float32_scales(variant: Variant, masks: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The dropout factors ``mask / (1 - p)`` the frameworks get, per Dropout layer."""
    return {name: dropout_scale(mask, variant.layer(name).p).astype(np.float32)
            for name, mask in masks.items()}


def gradient_inputs(variant: Variant, batch: int, seed: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Seeded labels and dropout keep-masks for a batch of ``batch`` images."""
    rng = np.random.default_rng(seed + 1)
    return rng.integers(0, variant.num_classes, batch), dropout_masks(variant, batch, seed + 2)

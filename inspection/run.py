"""``alexnet inspect``'s steps, without printing: which variant, weights in (or the model's own
out), the flatten order, one forward pass captured, layers lined up and checked, fingerprints.

The model is built at the input shapes of the variants until one fits best (a model with
deferred shapes is built anew for each, since its first call fixes them). Where several
variants fit its weights equally (an ungrouped ``paper`` has ``d2l``'s shapes, and only its
LRN layers, which hold no weights, tell them apart), each is checked and the one the model
computes wins.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from common import reference
from common.inputs import crosscheck_batch
from common.spec import Flatten, SpecError, Variant
from common.variants import variant_names
from common.weights import Weights, init_weights
from crosscheck.compare import DEFAULT_TOLERANCES, Tolerances
from impls.foreign import ForeignModel, ForeignModelError
from inspection import align, flatten, identify, transfer
from inspection.fingerprint import LayerCheck, check_layers
from inspection.target import Target, TargetError

#: candidates within this cost of the best are all checked by their values
TIE = 0.5
#: and at most this many
MAX_CHECKED = 3


@dataclass
class Inspection:
    """Everything ``alexnet inspect`` found about one model."""

    target: str
    framework: str
    description: str
    candidate: identify.Candidate
    variant: Variant  # the variant the layers were checked against (the model's own numbers)
    weights: Weights  # canonical: the seeded ones put in, or the model's own read out
    own_weights: bool
    flatten_order: str
    flatten_how: str
    checks: list[LayerCheck]
    unmatched: list[str]
    notes: list[str] = field(default_factory=list)
    others: list[tuple[str, int]] = field(default_factory=list)  # (variant, failing layers) also tried
    seconds: float = 0.0

    @property
    def exact(self) -> bool:
        """The model computes the registered variant: every layer passes, no change of numbers."""
        return (self.candidate.same_function and all(c.passed for c in self.checks)
                and bool(self.checks))

    def unchecked(self) -> list[LayerCheck]:
        return [c for c in self.checks if not c.checked]

    @property
    def exit_code(self) -> int:
        return 0 if self.exact else 1

    def failing(self) -> list[LayerCheck]:
        return [c for c in self.checks if not c.passed and c.checked]


Progress = Optional[Callable[[str], None]]


def _probe_shapes(input_shape: Optional[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    if input_shape is not None:
        return [input_shape]
    from common.variants import get_variant
    return list(dict.fromkeys(get_variant(n).input_shape for n in variant_names()))


def identify_model(target: Target, *, input_shape: Optional[tuple[int, int, int]] = None,
                   names: Optional[list[str]] = None, mapping: Optional[dict[str, str]] = None,
                   progress: Progress = None) -> list[tuple[ForeignModel, identify.Candidate]]:
    """(a model built at the candidate's input, the candidate) for the best candidates."""
    found: list[tuple[tuple, ForeignModel, identify.Candidate]] = []
    refusals = []
    model: Optional[ForeignModel] = None
    for shape in _probe_shapes(input_shape):
        if model is None:
            model = target.build()
        try:
            model.build(shape)
        except ForeignModelError as exc:
            refusals.append(str(exc))
            model = None  # a failed first call may have fixed shapes: build anew
            continue
        layers = model.param_layers()
        if not any(l.kind == "conv" for l in layers) or not any(l.kind == "dense" for l in layers):
            raise TargetError(f"--model {target.text}: {model.description} has "
                              f"{identify.structure(layers)}; an AlexNet has both convolutions "
                              f"and dense layers")
        kinds = [c.kind for c in model.run(np.zeros((1, *shape), np.float32))]
        found_here = identify.candidates(layers, kinds, input_shape, names, mapping)
        if not found_here and not found:  # the layer counts fit no variant at any input
            raise TargetError(f"--model {target.text}: {identify.no_match_message(layers, names)}")
        for c in found_here:
            at_default = c.variant.input_shape == shape
            found.append(((c.cost, not at_default), model, c))
        if progress:
            progress(f"built at {'x'.join(map(str, shape))}: {identify.structure(layers)}")
        if any(c.same_function and c.variant.input_shape == shape for _, _, c in found):
            break  # the variant's own function at its own input: no other shape can do better
        model = None
    if not found:
        if refusals and len(refusals) == len(_probe_shapes(input_shape)):
            raise TargetError(f"--model {target.text}: the model ran at none of the input shapes "
                              f"tried (pass --input CxHxW): " + "; ".join(refusals[:3]))
        raise TargetError(f"--model {target.text}: {identify.no_match_message(layers, names)}")
    found.sort(key=lambda item: item[0])
    best = found[0][0][0]
    seen, chosen = set(), []
    for key, model, candidate in found:
        if key[0] < best + TIE and candidate.variant.name not in seen and len(chosen) < MAX_CHECKED:
            seen.add(candidate.variant.name)
            chosen.append((model, candidate))
    return chosen


def _order(model: ForeignModel, candidate: identify.Candidate, variant: Variant, captured,
           forced: Optional[str], expected: Optional[dict[str, np.ndarray]]) -> tuple[str, str]:
    """The model's flatten order and how it was found."""
    if forced is not None:
        return forced, "given in --map"
    fc = identify.first_dense_after_flatten(variant)
    chw = transfer.flattened_map(variant)
    if fc is None or chw is None or chw[1] * chw[2] == 1 or chw[0] == 1:
        return "chw", "either order gives the same vector here"
    model_fc = candidate.pairs[fc.name].name
    call = next((c for c in captured if c.name == model_fc and c.inputs is not None), None)
    if call is None:
        return "chw", f"not seen ({model_fc}'s input was not captured); C*H*W assumed"
    dense_input = call.inputs
    if dense_input.ndim == 4:  # the dense layer flattens itself (Gluon's Dense(flatten=True))
        return ("hwc" if call.channels_last else "chw"), f"{model_fc} flattens its 4-D input itself"
    maps = []  # the model's 4-D arrays before the dense layer, latest first, NCHW: the spec's
    # map shape first; any of the dense layer's width after (a change upstream resized it)
    for c in reversed(captured[:captured.index(call) + 1]):
        for array in (c.output, c.inputs):
            if array is not None and array.ndim == 4 and array[0].size == dense_input[0].size:
                obs = align.Observation(c.name, c.kind, array, c.channels_last)
                maps.append(obs.canonical(chw) if obs.canonical(chw) is not None else obs.canonical())
    found = flatten.from_own_map(dense_input, maps)
    if found is not None:
        return found, f"{model_fc}'s input is the model's own last feature map flattened so"
    if expected is not None:
        order, errors = flatten.closest(dense_input, expected[_flatten_input_layer(variant)])
        said = ", ".join(f"{o} {e:.2g}" for o, e in errors.items())
        return order, f"nearest the reference's map flattened each way (rel L2 {said}); --map can fix it"
    return "chw", "not seen; C*H*W assumed"


def _flattened_to_chw(obs: list[align.Observation], variant: Variant,
                      candidate: identify.Candidate) -> None:
    """Reorder, in place, the model's flattened vectors (those of the map's width, before its
    first dense layer's output) from H*W*C to the spec's C*H*W: the order is a layout the
    first dense layer's weights absorb, not a divergence."""
    chw = transfer.flattened_map(variant)
    fc = identify.first_dense_after_flatten(variant)
    model_fc = candidate.pairs[fc.name].name
    width = chw[0] * chw[1] * chw[2]
    for o in obs:
        if o.layer == model_fc:
            break
        if o.array.ndim == 2 and o.array.shape[1] == width:
            o.array = flatten.unflatten_columns(o.array, "hwc", chw)


def _flatten_input_layer(variant: Variant) -> str:
    names = [l.name for l in variant.layers]
    index = next(i for i, l in enumerate(variant.layers) if isinstance(l, Flatten))
    return names[index - 1]


def check_candidate(model: ForeignModel, candidate: identify.Candidate, *, own_weights: bool,
                    seed: int, batch_size: int, flatten_forced: Optional[str],
                    tolerances: Tolerances, target: str, framework: str,
                    progress: Progress = None) -> Inspection:
    """Weights in (or out), one captured forward pass, layers lined up and checked."""
    variant = candidate.variant if candidate.same_function else candidate.adjusted
    notes: list[str] = []
    x = crosscheck_batch(variant, batch_size, seed).astype(np.float32)
    model.build(variant.input_shape)  # a model built for one input may refuse another: find
    # out with one image of zeros before the weights and the reference are made
    if own_weights:
        captured = model.run(x)
        order, how = _order(model, candidate, variant, captured, flatten_forced, None)
        variant, weights, notes = transfer.from_model(candidate, variant, model.read_weights(), order)
    else:
        weights = init_weights(variant, seed)
        model.write_weights(transfer.to_model(candidate, variant, weights, "chw"))
        captured = model.run(x)
        order, how = _order(model, candidate, variant, captured, flatten_forced, None)
        if order != "chw":  # only the first dense layer's columns move
            fc = candidate.pairs[identify.first_dense_after_flatten(variant).name].name
            moved = transfer.to_model(candidate, variant, weights, order)
            model.write_weights({fc: moved[fc]} if fc in moved else {})
            captured = model.run(x)
    if progress:
        progress(f"{variant.name}: {len(captured)} layer calls captured; checking against float64")
    weights64 = {k: np.asarray(v, np.float64) for k, v in weights.items()}  # cast once
    expected = reference.forward(variant, weights64, x)
    owner = {layer.name: spec for spec, layer in candidate.pairs.items()}
    obs = align.observations(x, captured, set(owner))
    if order != "chw":  # the model's flattened vectors, in the spec's order from here on
        _flattened_to_chw(obs, variant, candidate)
    matched = align.align(variant, obs, expected, owner)
    checks = check_layers(variant, weights64, x, matched, tolerances)
    return Inspection(target, framework, model.description, candidate, variant, weights, own_weights,
                      order, how, checks, align.unmatched(obs, matched), notes)


def inspect(target: Target, *, variant: Optional[str] = None,
            input_shape: Optional[tuple[int, int, int]] = None, seed: int = 0,
            batch_size: int = 2, own_weights: bool = False,
            mapping: Optional[dict[str, str]] = None, tolerances: Tolerances = DEFAULT_TOLERANCES,
            progress: Progress = None) -> Inspection:
    """The whole inspection of ``target``."""
    start = time.perf_counter()
    mapping = dict(mapping or {})
    flatten_forced = mapping.pop("flatten", None)
    chosen = identify_model(target, input_shape=input_shape, names=[variant] if variant else None,
                            mapping=mapping, progress=progress)
    results, refused = [], []
    for model, candidate in chosen:
        if progress:
            progress(f"checking as {candidate.variant.name}")
        try:
            results.append(check_candidate(model, candidate, own_weights=own_weights, seed=seed,
                                           batch_size=batch_size, flatten_forced=flatten_forced,
                                           tolerances=tolerances, target=target.text,
                                           framework=target.framework, progress=progress))
        except ForeignModelError:  # a model built for one input refuses another's
            if not results and len(chosen) == len(refused) + 1:
                raise
            refused.append(f"{candidate.variant.name} "
                           f"(at {'x'.join(map(str, candidate.variant.input_shape))})")
            continue
        last = results[-1]
        if last.exact or all(c.finding is not None and c.finding.matched for c in last.failing()):
            break  # computed exactly, or every difference has a confirmed convention: no other
            # candidate can explain the model better
    results.sort(key=lambda r: (not r.exact, len(r.failing()), r.candidate.cost))
    best = results[0]
    best.others = [(r.candidate.variant.name, len(r.failing())) for r in results[1:]]
    if refused:
        best.notes.append(f"{' and '.join(refused)} also fit the layer shapes, but the model "
                          f"does not run at that input")
    best.seconds = time.perf_counter() - start
    return best


__all__ = ["Inspection", "inspect", "identify_model", "check_candidate", "SpecError"]

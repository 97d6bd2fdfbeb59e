"""``alexnet convert``: every format pair, the model zoos' real files, verification that can
fail, and refusals that leave every file as it was."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import pytest

from alexnet_cli.main import main
from common import reference
from common.inputs import crosscheck_batch
from common.variants import get_variant
from common.weights import init_weights, load_weights, save_weights
from common.zoo_names import GLUON_ZOO, TORCHVISION
from crosscheck.conversion import verify_conversion
from impls import formats
from impls.formats import FORMATS
from tests.conftest import VARIANTS, backend_or_skip, rel_l2

#: every variant at an input small enough to convert and verify in a second or two
SMALL_INPUT = {"paper": (67, 67), "caffe-alexnet": (67, 67), "caffenet": (67, 67),
               "torchvision": (63, 63), "d2l": (67, 67),
               "gluon-cifar": (163, 163), "tf-benchmark": (67, 67), "cifar-small": None}
#: the formats any variant has (the zoo formats hold only ``torchvision``)
OWN_FORMATS = [name for name, fmt in FORMATS.items() if fmt.zoo is None]
SUFFIX = {name: fmt.suffixes[0] for name, fmt in FORMATS.items()}


def small(name: str):
    return get_variant(name, num_classes=5, input_size=SMALL_INPUT[name])


def frameworks_of(*names: str) -> None:
    for name in names:
        if FORMATS[name].framework:
            backend_or_skip(FORMATS[name].framework)


def convert(capsys, variant: str, source: str, target: str, *extra: str) -> tuple[int, str, str]:
    code = main(["convert", "--variant", variant, "--from", source, "--to", target, *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("variant_name", VARIANTS)
def test_round_trip_through_every_format_keeps_the_arrays(tmp_path, variant_name):
    """canonical -> pytorch -> gluon -> keras -> canonical, each step verified: the very
    same arrays come back, and every framework matches the float64 reference with them."""
    frameworks_of(*OWN_FORMATS)
    variant = small(variant_name)
    weights = init_weights(variant, seed=4)
    chain = OWN_FORMATS + ["canonical"]
    current = weights
    for source, target in zip(chain, chain[1:]):
        path = tmp_path / f"{target}{SUFFIX[target]}"
        formats.write(FORMATS[target], path, variant, current)
        converted = formats.read(FORMATS[target], path, variant)
        check = verify_conversion(variant, current, converted, FORMATS[source].framework,
                                  FORMATS[target].framework)
        assert check.passed, f"{source} -> {target}: {check.summary()}"
        current = converted
    assert all(np.array_equal(current[k], weights[k]) for k in weights)


@pytest.mark.parametrize("source,target", list(itertools.permutations(OWN_FORMATS, 2)))
def test_every_format_pair_converts_and_verifies(tmp_path, capsys, source, target):
    frameworks_of(source, target)
    variant = get_variant("cifar-small")
    weights = init_weights(variant, seed=5)
    src = tmp_path / f"in{SUFFIX[source]}"
    formats.write(FORMATS[source], src, variant, weights)
    out = tmp_path / f"out{SUFFIX[target]}"
    code, stdout, stderr = convert(capsys, "cifar-small", f"{source}:{src}", f"{target}:{out}")
    assert code == 0, stderr
    assert "verified" in stdout and "arrays identical" in stdout
    back = formats.read(FORMATS[target], out, variant)
    assert all(np.array_equal(back[k], weights[k]) for k in weights)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging left


def _torchvision_alexnet(source: str, num_classes: int):
    """torchvision.models.alexnet: torchvision's own constructor where it is installed (it
    does not install beside this package's torch; the GPU image has it), else
    ``impls/pytorch/plain.py``, which is its class name for name."""
    if source == "torchvision":
        models = pytest.importorskip("torchvision.models")
        return models.alexnet(weights=None, num_classes=num_classes).eval()
    from impls.pytorch.plain import PlainAlexNet
    return PlainAlexNet(num_classes).eval()


@pytest.mark.parametrize("source", ["plain", "torchvision"])
def test_reads_a_torchvision_state_dict_and_computes_its_function(tmp_path, capsys, source):
    backend_or_skip("pytorch")
    import torch
    torch.manual_seed(0)
    model = _torchvision_alexnet(source, num_classes=7)
    path = tmp_path / "alexnet-owt.pth"
    torch.save(model.state_dict(), path)
    assert TORCHVISION.matches(set(model.state_dict()))
    variant = get_variant("torchvision", num_classes=7, input_size=(99, 99))
    weights = formats.read(FORMATS["pytorch"], path, variant)  # the names are recognized
    x = crosscheck_batch(variant, 2, seed=1)
    with torch.no_grad():
        theirs = model(torch.from_numpy(x)).numpy()
    assert rel_l2(theirs, reference.forward(variant, weights, x)["fc8"]) < 1e-5
    # and back: a file torchvision's model loads, strictly, with the same values
    out = tmp_path / "back.pth"
    formats.write(FORMATS["torchvision"], out, variant, weights)
    fresh = _torchvision_alexnet(source, num_classes=7)
    fresh.load_state_dict(torch.load(out, weights_only=True), strict=True)
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(),
                                                 model.state_dict().values()))


@pytest.mark.parametrize("legacy", [False, True], ids=["save_parameters", "legacy-prefixed"])
def test_reads_a_gluon_model_zoo_file_and_computes_its_function(tmp_path, legacy):
    backend_or_skip("mxnet")
    import mxnet as mx
    from mxnet.gluon.model_zoo import vision
    mx.random.seed(0)
    zoo = vision.alexnet(classes=7)  # the model zoo's own constructor
    zoo.initialize(mx.init.Xavier(magnitude=2))
    variant = get_variant("torchvision", num_classes=7)  # the zoo has no adaptive pool: 224 only
    x = crosscheck_batch(variant, 1, seed=1)
    theirs = zoo(mx.nd.array(x)).asnumpy()
    path = tmp_path / "alexnet.params"
    if legacy:
        zoo.collect_params().save(str(path))  # alexnet0_conv0_weight, ... as the downloads are
    else:
        zoo.save_parameters(str(path))
        assert GLUON_ZOO.matches(set(mx.nd.load(str(path))))
    weights = formats.read(FORMATS["gluon"], path, variant)
    assert rel_l2(theirs, reference.forward(variant, weights, x)["fc8"]) < 1e-5
    # and back: the zoo's model loads what gluon-zoo writes, strictly
    out = tmp_path / "back.params"
    formats.write(FORMATS["gluon-zoo"], out, variant, weights)
    fresh = vision.alexnet(classes=7)
    fresh.load_parameters(str(out), allow_missing=False, ignore_extra=False)
    assert rel_l2(fresh(mx.nd.array(x)).asnumpy(), theirs) == 0.0


def test_zoo_formats_convert_through_the_cli(tmp_path, capsys):
    frameworks_of("torchvision", "gluon-zoo", "keras")
    variant = get_variant("torchvision")
    save_weights(tmp_path / "w.safetensors", variant, init_weights(variant, 2))
    steps = [("w.safetensors", "gluon-zoo:z.params"), ("gluon-zoo:z.params", "torchvision:t.pt"),
             ("torchvision:t.pt", "k.weights.h5"), ("k.weights.h5", "back.safetensors")]
    for source, target in steps:
        code, out, err = convert(capsys, "torchvision", *(
            f"{s.split(':')[0]}:{tmp_path / s.split(':')[1]}" if ":" in s else str(tmp_path / s)
            for s in (source, target)))
        assert code == 0 and "verified" in out, err
    back, first = (load_weights(tmp_path / n, variant) for n in ("back.safetensors", "w.safetensors"))
    assert all(np.array_equal(back[k], first[k]) for k in first)


# --- verification can fail -------------------------------------------------------------

@pytest.mark.parametrize("planted", ["a scaled array", "a transposed kernel"])
def test_a_wrong_conversion_fails_verification_and_leaves_nothing(tmp_path, capsys, monkeypatch,
                                                                  planted):
    backend_or_skip("pytorch")
    import impls.pytorch.convert as torch_convert
    real = torch_convert.write_state_dict

    def buggy(path, arrays):
        arrays = dict(arrays)
        if planted == "a scaled array":
            arrays["fc4.weight"] = arrays["fc4.weight"] * 1.001
        else:  # a spatially transposed kernel: same shape, wrong values
            arrays["conv2.weight"] = arrays["conv2.weight"].transpose(0, 1, 3, 2)
        real(path, arrays)

    monkeypatch.setattr(torch_convert, "write_state_dict", buggy)
    variant = get_variant("cifar-small")
    save_weights(tmp_path / "w.safetensors", variant, init_weights(variant, 3))
    target = tmp_path / "out.pt"
    target.write_bytes(b"the user's old file")
    code, out, _ = convert(capsys, "cifar-small", str(tmp_path / "w.safetensors"),
                           f"pytorch:{target}", "--force")
    assert code == 1 and "FAILED verification" in out and "arrays changed" in out
    assert "fail" in out  # the forward check in PyTorch fails too
    assert target.read_bytes() == b"the user's old file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.pt", "w.safetensors"]


# --- refusals: exit 2, nothing written --------------------------------------------------

class _Payload:
    """Unpickling this runs ``touch <marker>``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("fmt", ["pytorch", "gluon", "canonical", "keras"])
def test_a_pickle_payload_is_refused_and_never_runs(tmp_path, capsys, fmt):
    frameworks_of(fmt)
    import pickle
    marker = tmp_path / "payload-ran"
    source = tmp_path / f"evil{SUFFIX[fmt]}"
    if fmt == "pytorch":
        import torch
        torch.save({"conv1.weight": _Payload(marker)}, source)
    else:
        source.write_bytes(pickle.dumps({"conv1.weight": _Payload(marker)}))
    code, _, err = convert(capsys, "cifar-small", f"{fmt}:{source}", str(tmp_path / "out.safetensors"))
    assert code == 2 and "error:" in err and "Traceback" not in err
    assert not marker.exists(), "the pickle payload ran"
    assert not (tmp_path / "out.safetensors").exists()


def test_keys_or_shapes_that_do_not_fit_list_the_first_mismatches(tmp_path, capsys):
    backend_or_skip("pytorch")
    import torch
    variant = get_variant("cifar-small")
    weights = {k: torch.from_numpy(v) for k, v in init_weights(variant).items()}
    weights["fc3.weight"] = weights["fc3.weight"][:, :10]
    weights["extra.bias"] = weights.pop("conv2.bias")
    torch.save(weights, tmp_path / "bad.pt")
    code, _, err = convert(capsys, "cifar-small", str(tmp_path / "bad.pt"), str(tmp_path / "o.params"))
    assert code == 2
    assert "missing key 'conv2.bias'" in err and "unexpected key 'extra.bias'" in err
    assert "'fc3.weight' has shape (384, 10)" in err
    assert not (tmp_path / "o.params").exists()


def test_never_overwrites_without_force(tmp_path, capsys):
    variant = get_variant("cifar-small")
    save_weights(tmp_path / "w.safetensors", variant, init_weights(variant))
    target = tmp_path / "t.safetensors"
    target.write_bytes(b"keep me")
    code, _, err = convert(capsys, "cifar-small", str(tmp_path / "w.safetensors"), str(target))
    assert code == 2 and "--force" in err and target.read_bytes() == b"keep me"
    code, _, err = convert(capsys, "cifar-small", str(tmp_path / "w.safetensors"), str(target), "--force")
    assert code == 0, err
    assert load_weights(target, variant).keys() == init_weights(variant).keys()


@pytest.mark.parametrize("case", ["unknown suffix", "same file", "missing source", "no folder",
                                  "keras name", "zoo variant", "directory", "not weights"])
def test_bad_arguments_exit_2_with_a_message(tmp_path, capsys, case):
    variant = get_variant("cifar-small")
    good = tmp_path / "w.safetensors"
    save_weights(good, variant, init_weights(variant))
    (tmp_path / "text.pt").write_text("not a weights file")
    source, target, name = str(good), str(tmp_path / "o.pt"), "cifar-small"
    source, target, name, expected = {
        "unknown suffix": (source, str(tmp_path / "o.bin"), name, "cannot tell the format"),
        "same file": (source, source, name, "is the file being read"),
        "missing source": (str(tmp_path / "none.pt"), target, name, "does not exist"),
        "no folder": (source, str(tmp_path / "no" / "o.pt"), name, "does not exist; create it"),
        "keras name": (source, f"keras:{tmp_path / 'o.h5'}", name, "*.weights.h5"),
        "zoo variant": (source, f"torchvision:{target}", name, "use --variant torchvision"),
        "directory": (source, str(tmp_path), name, "cannot tell the format"),
        "not weights": (str(tmp_path / "text.pt"), str(tmp_path / "o.params"), name,
                        "is not a PyTorch state_dict"),
    }[case]
    if case in ("keras name", "zoo variant", "not weights", "missing source"):
        frameworks_of("keras" if case == "keras name" else "pytorch")
    if case == "not weights":
        frameworks_of("gluon")
    code, _, err = convert(capsys, name, source, target)
    assert code == 2, err
    assert expected in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["text.pt", "w.safetensors"]

"""The ``caffe`` weight format: real ``.caffemodel`` bytes in both of Caffe's layer forms,
written here from caffe.proto's field numbers by an encoder of this file's own (not the
package's, so that a bug the two shared could not hide), read by ``common.caffemodel``;
the package's own files decoded here the same way; the round trip; the BGR options; and
malformed files, each a clean WeightsError.

Field numbers (BVLC caffe, src/caffe/proto/caffe.proto): NetParameter name 1, layers 2
(V1LayerParameter), layer 100 (LayerParameter); LayerParameter name 1, type 2, blobs 7;
V1LayerParameter layer 1 (V0), bottom 2, top 3, name 4, type 5 (CONVOLUTION 4, RELU 18,
POOLING 17, INNER_PRODUCT 14), blobs 6, blobs_lr 7; BlobProto num 1, channels 2, height 3,
width 4, data 5, diff 6, shape 7, double_data 8; BlobShape dim 1.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from alexnet_cli.main import main
from common import caffemodel, reference
from common.inputs import crosscheck_batch
from common.spec import Conv2d, Dense
from common.variants import get_variant
from common.weights import WeightsError, init_weights, load_weights, save_weights
from impls import formats
from impls.formats import FORMATS
from tests.conftest import rel_l2

CAFFE = FORMATS["caffe"]


def small(name: str):
    """cifar-small as it is; ``paper`` (grouped conv2, conv4, conv5) at a small input."""
    return get_variant(name, num_classes=5, input_size=(67, 67)) if name == "paper" else get_variant(name)


# --- an encoder of the protobuf wire format, written for these tests ---------------------

def varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # int64: negative numbers take ten bytes, two's complement
    out = []
    while n >= 0x80:
        out.append(0x80 | (n % 128))
        n //= 128
    out.append(n)
    return bytes(out)


def key(number: int, wire: int) -> bytes:
    return varint(number * 8 + wire)


def vint(number: int, n: int) -> bytes:
    return key(number, 0) + varint(n)


def ld(number: int, payload: bytes | str) -> bytes:
    payload = payload.encode() if isinstance(payload, str) else payload
    return key(number, 2) + varint(len(payload)) + payload


def f32(number: int, x: float) -> bytes:
    return key(number, 5) + struct.pack("<f", x)


def blob(array: np.ndarray, *, legacy: bool = False, packed: bool = True, double: bool = False,
         extra: bytes = b"") -> bytes:
    """A BlobProto: BlobShape (or legacy num/channels/height/width, padded with leading ones
    to four axes as old Caffe wrote them) and the values, packed or one field each."""
    values = np.asarray(array).ravel()
    if double:
        data = ld(8, struct.pack(f"<{values.size}d", *values.astype(np.float64)))
    elif packed:
        data = ld(5, struct.pack(f"<{values.size}f", *values))
    else:
        data = b"".join(f32(5, float(v)) for v in values)
    if legacy:
        dims = (1,) * (4 - array.ndim) + tuple(array.shape)
        shape = b"".join(vint(n, d) for n, d in zip((1, 2, 3, 4), dims))
    else:
        shape = ld(7, ld(1, b"".join(varint(d) for d in array.shape)))
    return shape + extra + data  # field order is free in protobuf


def layer(name: str, kind: str, blobs: list[bytes], *, legacy: bool = False) -> bytes:
    if legacy:  # V1LayerParameter, with bottom/top/blobs_lr that the reader must skip
        kind_number = {"Convolution": 4, "InnerProduct": 14, "ReLU": 18, "Pooling": 17}[kind]
        body = (ld(2, "data") + ld(3, name) + ld(4, name) + vint(5, kind_number)
                + b"".join(ld(6, b) for b in blobs) + f32(7, 1.0) + f32(7, 2.0))
        return ld(2, body)
    body = (ld(1, name) + ld(2, kind) + ld(3, "data") + ld(4, name)
            + ld(6, f32(3, 1.0)) + b"".join(ld(7, b) for b in blobs))  # param { lr_mult: 1 }
    return ld(100, body)


def caffemodel_bytes(variant, weights, *, legacy: bool = False, names: dict | None = None,
                     drop: str | None = None, **blob_options) -> bytes:
    """A NetParameter holding ``weights``: each spec layer with weights in Caffe's form
    (renamed by ``names``, left out if ``drop``), a ReLU without blobs after each, a data
    layer before them all."""
    names = names or {}
    parts = [ld(1, "CaffeNet"), ld(3, "data") if legacy else b""]  # input = 3, deprecated
    parts.append(layer("data", "Pooling", [], legacy=legacy))
    for spec_layer in variant.layers:
        if not isinstance(spec_layer, (Conv2d, Dense)) or spec_layer.name == drop:
            continue
        kind = "Convolution" if isinstance(spec_layer, Conv2d) else "InnerProduct"
        blobs = [blob(weights[f"{spec_layer.name}.{k}"], legacy=legacy, **blob_options)
                 for k in ("weight", "bias")]
        parts.append(layer(names.get(spec_layer.name, spec_layer.name), kind, blobs, legacy=legacy))
        parts.append(layer(f"relu_{spec_layer.name}", "ReLU", [], legacy=legacy))
    return b"".join(parts)


# --- and a decoder, for the package's own files -----------------------------------------

def fields(data: bytes) -> list[tuple[int, int, object]]:
    out, pos = [], 0
    while pos < len(data):
        k, pos = read_varint(data, pos)
        number, wire = divmod(k, 8)
        if wire == 0:
            value, pos = read_varint(data, pos)
        elif wire == 2:
            size, pos = read_varint(data, pos)
            value, pos = data[pos:pos + size], pos + size
        else:
            raise AssertionError(f"unexpected wire type {wire}")
        out.append((number, wire, value))
    return out


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        n |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return n, pos


def write_file(tmp_path: Path, data: bytes, name: str = "w.caffemodel") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def same(a: dict, b: dict, ordered: bool = True) -> bool:
    """The same arrays, dtypes and keys (in the same order: the spec's, if ``ordered``)."""
    keys = list(a) == list(b) if ordered else set(a) == set(b)
    return keys and all(a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]) for k in a)


# --- reading -------------------------------------------------------------------------------

@pytest.mark.parametrize("legacy", [False, True], ids=["layer", "V1-layers"])
@pytest.mark.parametrize("name", ["cifar-small", "paper"])
def test_reads_both_layer_forms(tmp_path, name, legacy):
    variant = small(name)
    weights = init_weights(variant, seed=3)
    path = write_file(tmp_path, caffemodel_bytes(variant, weights, legacy=legacy))
    assert same(formats.read(CAFFE, path, variant), weights)


@pytest.mark.parametrize("options", [{"packed": False}, {"double": True}],
                         ids=["unpacked-floats", "double_data"])
def test_reads_unpacked_and_double_values(tmp_path, options):
    variant = small("cifar-small")
    weights = init_weights(variant, seed=4)
    path = write_file(tmp_path, caffemodel_bytes(variant, weights, **options))
    assert same(formats.read(CAFFE, path, variant), weights)  # float32 -> float64 -> float32 is exact


def test_skips_fields_it_does_not_need(tmp_path):
    """diff blobs (field 6), unknown fields of every wire type, a 64-bit and a 32-bit one."""
    variant = small("cifar-small")
    weights = init_weights(variant, seed=5)
    unknown = ld(6, b"\x00" * 12) + vint(99, 7) + key(98, 1) + bytes(8) + key(97, 5) + bytes(4)
    data = caffemodel_bytes(variant, weights, extra=unknown) + ld(6, vint(1, 1)) + vint(5, 1)
    assert same(formats.read(CAFFE, write_file(tmp_path, data), variant), weights)


def test_layers_named_otherwise_are_matched_by_order(tmp_path):
    variant = small("paper")
    weights = init_weights(variant, seed=6)
    renamed = {"fc6": "fc6_new", "fc7": "fc7_new", "fc8": "fc8_flickr"}
    path = write_file(tmp_path, caffemodel_bytes(variant, weights, names=renamed))
    assert same(formats.read(CAFFE, path, variant), weights)


def test_names_that_contradict_the_order_are_refused(tmp_path):
    variant = small("cifar-small")
    weights = init_weights(variant, seed=6)
    swapped = {"conv1": "conv2", "conv2": "conv_a"}
    path = write_file(tmp_path, caffemodel_bytes(variant, weights, names=swapped))
    with pytest.raises(WeightsError, match="names and its order disagree"):
        formats.read(CAFFE, path, variant)


# --- writing -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["cifar-small", "paper"])
def test_round_trip_is_exact_and_the_file_is_caffes_current_form(tmp_path, name):
    variant = small(name)
    weights = init_weights(variant, seed=7)
    path = tmp_path / "w.caffemodel"
    formats.write(CAFFE, path, variant, weights)
    assert same(formats.read(CAFFE, path, variant), weights)
    # decoded here: NetParameter.name, then one LayerParameter (100) per layer with weights
    net = fields(path.read_bytes())
    assert net[0] == (1, 2, name.encode())
    layers = [dict_of(value) for number, _, value in net[1:] if number == 100]
    assert len(layers) == len(net) - 1
    spec = [l for l in variant.layers if isinstance(l, (Conv2d, Dense))]
    assert [l[1][0] for l in layers] == [l.name.encode() for l in spec]
    assert [l[2][0] for l in layers] == [b"Convolution" if isinstance(l, Conv2d) else b"InnerProduct"
                                        for l in spec]
    for spec_layer, caffe_layer in zip(spec, layers):
        for kind, blob_bytes in zip(("weight", "bias"), caffe_layer[7]):
            proto = dict_of(blob_bytes)
            (shape,) = proto[7]
            (packed_dims,) = dict_of(shape)[1]
            dims, pos = [], 0
            while pos < len(packed_dims):
                d, pos = read_varint(packed_dims, pos)
                dims.append(d)
            expected = weights[f"{spec_layer.name}.{kind}"]
            assert tuple(dims) == expected.shape
            (data,) = proto[5]
            assert np.array_equal(np.frombuffer(data, "<f4").reshape(dims), expected)


def dict_of(message: bytes) -> dict[int, list]:
    out: dict[int, list] = {}
    for number, _, value in fields(message):
        out.setdefault(number, []).append(value)
    return out


def test_writing_refuses_weights_that_do_not_fit(tmp_path):
    variant = small("cifar-small")
    weights = init_weights(variant)
    weights["fc4.bias"] = weights["fc4.bias"][:3]
    with pytest.raises(WeightsError, match="'fc4.bias' has shape"):
        formats.write(CAFFE, tmp_path / "w.caffemodel", variant, weights)
    assert list(tmp_path.iterdir()) == []


# --- the command line: conversion, the note, BGR ----------------------------------------------

def convert(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["convert", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_converts_through_the_cli_both_ways_with_verification(tmp_path, capsys):
    variant = get_variant("cifar-small")
    weights = init_weights(variant, seed=8)
    save_weights(tmp_path / "w.safetensors", variant, weights)
    code, out, err = convert(capsys, "--variant", "cifar-small", "--from", str(tmp_path / "w.safetensors"),
                             "--to", f"caffe:{tmp_path / 'w.caffemodel'}")
    assert code == 0, err
    assert "verified" in out and "arrays identical" in out and "BGR" in out
    code, out, err = convert(capsys, "--variant", "cifar-small", "--from", str(tmp_path / "w.caffemodel"),
                             "--to", str(tmp_path / "back.safetensors"))
    assert code == 0, err
    assert "verified" in out and "take BGR input" in out
    assert same(load_weights(tmp_path / "back.safetensors", variant), weights, ordered=False)


@pytest.mark.parametrize("option", ["--bgr-to-rgb", "--rgb-to-bgr"])
def test_the_bgr_options_reverse_exactly_conv1s_input_channels(tmp_path, capsys, option):
    variant = get_variant("cifar-small")
    weights = init_weights(variant, seed=9)
    if option == "--bgr-to-rgb":
        source = write_file(tmp_path, caffemodel_bytes(variant, weights))
        target = tmp_path / "rgb.safetensors"
    else:
        source = tmp_path / "w.safetensors"
        save_weights(source, variant, weights)
        target = tmp_path / "bgr.caffemodel"
    code, out, err = convert(capsys, "--variant", "cifar-small", "--from", str(source),
                             "--to", str(target), option)
    assert code == 0, err
    assert f"{option}: conv1.weight's input channels reversed" in out and "verified" in out
    flipped = formats.read(FORMATS["canonical" if option == "--bgr-to-rgb" else "caffe"], target, variant)
    assert np.array_equal(flipped["conv1.weight"], weights["conv1.weight"][:, ::-1])
    assert all(np.array_equal(flipped[k], weights[k]) for k in weights if k != "conv1.weight")
    # the flipped model computes on one channel order what the original does on the other
    x = crosscheck_batch(variant, 2, seed=1)
    ours = reference.forward(variant, flipped, x)["fc5"]
    theirs = reference.forward(variant, weights, np.ascontiguousarray(x[:, ::-1]))["fc5"]
    assert rel_l2(ours, theirs) < 1e-12
    assert rel_l2(reference.forward(variant, weights, x)["fc5"], theirs) > 1e-3  # the flip matters


@pytest.mark.parametrize("case", ["bgr-from-canonical", "rgb-to-canonical", "caffe-to-caffe",
                                  "one-channel-variant", "both-options"])
def test_the_bgr_options_are_refused_where_they_make_no_sense(tmp_path, capsys, case):
    variant = get_variant("cifar-small")
    weights = init_weights(variant)
    save_weights(tmp_path / "w.safetensors", variant, weights)
    write_file(tmp_path, caffemodel_bytes(variant, weights))
    st, cm = str(tmp_path / "w.safetensors"), str(tmp_path / "w.caffemodel")
    argv, expected = {
        "bgr-from-canonical": (["--from", st, "--to", str(tmp_path / "o.safetensors"), "--bgr-to-rgb"],
                               "needs --from caffe:FILE, not canonical"),
        "rgb-to-canonical": (["--from", st, "--to", str(tmp_path / "o.safetensors"), "--rgb-to-bgr"],
                             "needs --to caffe:FILE, not canonical"),
        "caffe-to-caffe": (["--from", cm, "--to", str(tmp_path / "o.caffemodel"), "--bgr-to-rgb"],
                           "caffe on both sides"),
        "one-channel-variant": (["--from", cm, "--to", str(tmp_path / "o.safetensors"), "--bgr-to-rgb",
                                 "--variant", "d2l"], "takes 1 input channel"),
        "both-options": (["--from", cm, "--to", str(tmp_path / "o.safetensors"), "--bgr-to-rgb",
                          "--rgb-to-bgr"], "not allowed with argument"),
    }[case]
    if "--variant" not in argv:
        argv = ["--variant", "cifar-small", *argv]
    if case == "both-options":
        with pytest.raises(SystemExit) as exit_info:
            main(["convert", *argv])
        code, err = exit_info.value.code, capsys.readouterr().err
    else:
        code, _, err = convert(capsys, *argv)
    assert code == 2 and expected in err and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.caffemodel", "w.safetensors"]


# --- malformed files ---------------------------------------------------------------------------

def _good() -> bytes:
    variant = small("cifar-small")
    return caffemodel_bytes(variant, init_weights(variant, seed=10))


def _with_blob(replace_weight: np.ndarray | None = None, raw: bytes | None = None, *,
               bias: bool = True, kind: str = "InnerProduct") -> bytes:
    """cifar-small's file with fc3's weight blob replaced (by an array, or raw BlobProto
    bytes), its bias left out, or its type changed."""
    variant = small("cifar-small")
    weights = init_weights(variant, seed=10)
    parts = [ld(1, "net")]
    for spec_layer in variant.layers:
        if isinstance(spec_layer, (Conv2d, Dense)):
            w, b = weights[f"{spec_layer.name}.weight"], weights[f"{spec_layer.name}.bias"]
            blobs = [blob(w), blob(b)]
            caffe_type = "Convolution" if isinstance(spec_layer, Conv2d) else "InnerProduct"
            if spec_layer.name == "fc3":
                if raw is not None or replace_weight is not None:
                    blobs[0] = raw if raw is not None else blob(replace_weight)
                blobs, caffe_type = blobs[:1 + bias], kind
            parts.append(layer(spec_layer.name, caffe_type, blobs))
    return b"".join(parts)


BAD = {
    "empty": (lambda: b"", "the file is empty"),
    "truncated": (lambda: _good()[:100_000], "but only"),
    "truncated-in-a-number": (lambda: ld(1, "net") + b"\xa2\x06\xff", "runs past the end"),
    "garbage": (lambda: b"this is not a weights file\n" * 10, "wire type"),
    "length-beyond-the-end": (lambda: ld(1, "net") + key(100, 2) + varint(2**60) + b"abc",
                              "1,152,921,504,606,846,976 bytes long"),
    "varint-too-long": (lambda: b"\x08" + b"\xff" * 11, "longer than the 10 bytes"),
    "field-number-0": (lambda: b"\x02\x00", "numbered 0"),
    "field-number-too-large": (lambda: varint(2**29 * 8) + b"\x00", "numbered 536870912"),
    "group-wire-type": (lambda: key(100, 3) + key(100, 4), "wire type 3"),
    "layer-as-a-number": (lambda: vint(100, 5), "field 100 of the NetParameter has wire type 0"),
    "no-layers": (lambda: ld(1, "deploy"), "no layer in it holds blobs"),
    "missing-layer": (lambda: caffemodel_bytes(small("cifar-small"), init_weights(small("cifar-small")),
                                               drop="fc4"),
                      "fc4 is not among the names"),
    "wrong-shape": (lambda: _with_blob(np.zeros((384, 1000), np.float32)),
                    "'fc3.weight' has shape (384, 1000), expected (384, 1024)"),
    "shape-and-values-disagree": (lambda: _with_blob(raw=ld(7, ld(1, varint(384) + varint(1024)))
                                                     + ld(5, bytes(400))),
                                  "holds 100 values"),
    "absurd-shape": (lambda: _with_blob(raw=ld(7, ld(1, varint(2**40) + varint(2**40))) + ld(5, bytes(8))),
                     "holds 2 values"),
    "no-values": (lambda: _with_blob(raw=ld(7, ld(1, varint(384) + varint(1024)))), "holds no values"),
    "no-shape": (lambda: _with_blob(raw=ld(5, bytes(8))), "has no shape"),
    "negative-dim": (lambda: _with_blob(raw=ld(7, ld(1, varint(-3))) + ld(5, bytes(8))), "negative"),
    "ragged-floats": (lambda: _with_blob(raw=ld(7, ld(1, varint(1))) + ld(5, bytes(5))),
                      "not a whole number of 4-byte values"),
    "nan": (lambda: _with_blob(np.full((384, 1024), np.nan, np.float32)), "NaN or Inf"),
    "no-bias": (lambda: _with_blob(bias=False), "has 1 blob; the variant's fc3 has a weight and a bias"),
    "wrong-type": (lambda: _with_blob(kind="Convolution"), "is of type 'Convolution'; the variant's fc3 "
                                                            "is an InnerProduct"),
    "both-forms": (lambda: _good() + layer("x", "ReLU", [], legacy=True), "both the current form"),
    "v0-layer": (lambda: ld(2, ld(1, ld(1, "conv1"))), "V0 form"),
    "extra-layer": (lambda: _good() + layer("fc9", "InnerProduct",
                                            [blob(np.zeros((1, 3))), blob(np.zeros(1))]),
                    "unexpected key 'fc9.weight'"),
    "duplicate-names": (lambda: _good() + layer("conv1", "Convolution", [blob(np.zeros(3))]),
                        "more than one layer with weights is named 'conv1'"),
    "pickle": (lambda: b"\x80\x04\x95" + bytes(40), "is not a Caffe .caffemodel"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_malformed_file_is_a_clean_error(tmp_path, case):
    make, expected = BAD[case]
    path = write_file(tmp_path, make())
    with pytest.raises(WeightsError) as info:
        formats.read(CAFFE, path, small("cifar-small"))
    assert expected in str(info.value), str(info.value)
    assert len(str(info.value)) < 1000


def _tiny(legacy: bool) -> bytes:
    """A few hundred bytes in Caffe's form with cifar-small's layer names and tiny blobs of
    every kind the reader takes (packed, unpacked, double, legacy shapes)."""
    rng = np.random.default_rng(12)
    parts = [ld(1, "tiny")]
    options = [{}, {"packed": False}, {"double": True}, {}, {"packed": False}]
    for name, kind, extra in zip(["conv1", "conv2", "fc3", "fc4", "fc5"],
                                 ["Convolution"] * 2 + ["InnerProduct"] * 3, options):
        w = rng.standard_normal((2, 1, 2, 2) if kind == "Convolution" else (2, 3)).astype(np.float32)
        parts.append(layer(name, kind, [blob(w, legacy=legacy, **extra),
                                        blob(np.ones(2, np.float32), legacy=legacy, **extra)],
                           legacy=legacy))
    return b"".join(parts)


@pytest.mark.parametrize("legacy", [False, True], ids=["layer", "V1-layers"])
def test_every_truncation_and_corruption_is_a_clean_error(legacy):
    """Cut anywhere, or any byte overwritten: the reader's own error, or weights, never
    another exception (an IndexError, a MemoryError, a numpy error)."""
    variant = small("cifar-small")
    good = _tiny(legacy)
    whole = caffemodel.to_canonical(caffemodel.parse(good), variant)
    assert [a.shape for a in whole.values()] == [(2, 1, 2, 2), (2,)] * 2 + [(2, 3), (2,)] * 3
    for cut in range(len(good)):  # every layer is needed, and each is one length-delimited field
        with pytest.raises(caffemodel._Malformed):
            caffemodel.to_canonical(caffemodel.parse(good[:cut]), variant)
    for position in range(len(good)):
        for value in (0x00, 0x80, 0xff, 0x7f, 0x0a):
            data = bytearray(good)
            data[position] = value
            try:
                caffemodel.to_canonical(caffemodel.parse(bytes(data)), variant)
            except caffemodel._Malformed:
                pass


def test_a_truncated_real_file_is_refused_through_formats_read(tmp_path):
    variant = small("cifar-small")
    good = _good()
    for cut in (1, 10, 50, 200, len(good) // 3, len(good) - 1):
        with pytest.raises(WeightsError, match="is not a Caffe .caffemodel"):
            formats.read(CAFFE, write_file(tmp_path, good[:cut]), variant)


def test_the_format_is_told_by_its_suffix():
    fmt, path = formats.parse_location("models/bvlc_alexnet.caffemodel")
    assert fmt is CAFFE and path == Path("models/bvlc_alexnet.caffemodel")
    with pytest.raises(WeightsError, match=r"\.caffemodel"):
        formats.parse_location("w.bin")


# --- against Google's protobuf library, where it is installed (TensorFlow brings it) ---------

def caffe_proto_classes():
    """NetParameter, LayerParameter, V1LayerParameter, BlobProto and BlobShape as protobuf
    message classes, declared field by field from caffe.proto (the subset with weights, and
    a few fields the reader must skip)."""
    descriptor_pb2 = pytest.importorskip("google.protobuf.descriptor_pb2")
    from google.protobuf import descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(name="caffe_subset.proto", package="caffe_subset",
                                               syntax="proto2")

    def message(name, *fields):
        m = proto.message_type.add(name=name)
        for number, field_name, kind, label, type_name, packed in fields:
            f = m.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                f.type_name = f".caffe_subset.{type_name}"
            if packed:
                f.options.packed = True

    opt, rep = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    message("BlobShape", (1, "dim", F.TYPE_INT64, rep, None, True))
    message("BlobProto", (7, "shape", F.TYPE_MESSAGE, opt, "BlobShape", False),
            (5, "data", F.TYPE_FLOAT, rep, None, True), (6, "diff", F.TYPE_FLOAT, rep, None, True),
            (8, "double_data", F.TYPE_DOUBLE, rep, None, True),
            (1, "num", F.TYPE_INT64, opt, None, False), (2, "channels", F.TYPE_INT64, opt, None, False),
            (3, "height", F.TYPE_INT64, opt, None, False), (4, "width", F.TYPE_INT64, opt, None, False))
    message("LayerParameter", (1, "name", F.TYPE_STRING, opt, None, False),
            (2, "type", F.TYPE_STRING, opt, None, False), (3, "bottom", F.TYPE_STRING, rep, None, False),
            (4, "top", F.TYPE_STRING, rep, None, False),
            (7, "blobs", F.TYPE_MESSAGE, rep, "BlobProto", False))
    message("V1LayerParameter", (2, "bottom", F.TYPE_STRING, rep, None, False),
            (4, "name", F.TYPE_STRING, opt, None, False), (5, "type", F.TYPE_INT32, opt, None, False),
            (6, "blobs", F.TYPE_MESSAGE, rep, "BlobProto", False),
            (7, "blobs_lr", F.TYPE_FLOAT, rep, None, False))
    message("NetParameter", (1, "name", F.TYPE_STRING, opt, None, False),
            (3, "input", F.TYPE_STRING, rep, None, False),
            (100, "layer", F.TYPE_MESSAGE, rep, "LayerParameter", False),
            (2, "layers", F.TYPE_MESSAGE, rep, "V1LayerParameter", False))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("caffe_subset.NetParameter"))


@pytest.mark.parametrize("legacy", [False, True], ids=["layer", "V1-layers"])
def test_files_protobuf_writes_are_read_and_files_written_here_parse_in_protobuf(tmp_path, legacy):
    NetParameter = caffe_proto_classes()
    variant = small("paper")
    weights = init_weights(variant, seed=13)
    net = NetParameter(name="AlexNet", input=["data"])
    for spec_layer in variant.layers:
        if not isinstance(spec_layer, (Conv2d, Dense)):
            continue
        caffe_layer = net.layers.add(type=4 if isinstance(spec_layer, Conv2d) else 14) if legacy else \
            net.layer.add(type="Convolution" if isinstance(spec_layer, Conv2d) else "InnerProduct")
        caffe_layer.name = spec_layer.name
        caffe_layer.bottom.append("data")
        for kind in ("weight", "bias"):
            array = weights[f"{spec_layer.name}.{kind}"]
            proto_blob = caffe_layer.blobs.add()
            proto_blob.data.extend(array.ravel().tolist())
            if legacy:
                proto_blob.num, proto_blob.channels, proto_blob.height, proto_blob.width = \
                    (1,) * (4 - array.ndim) + array.shape
            else:
                proto_blob.shape.dim.extend(array.shape)
    path = write_file(tmp_path, net.SerializeToString())
    assert same(formats.read(CAFFE, path, variant), weights)
    # and the other way: protobuf parses what the package writes, to the same values
    formats.write(CAFFE, tmp_path / "ours.caffemodel", variant, weights)
    parsed = NetParameter.FromString((tmp_path / "ours.caffemodel").read_bytes())
    assert parsed.name == variant.name and len(parsed.layers) == 0
    names = [l.name for l in variant.layers if isinstance(l, (Conv2d, Dense))]
    assert [l.name for l in parsed.layer] == names
    for caffe_layer in parsed.layer:
        for kind, proto_blob in zip(("weight", "bias"), caffe_layer.blobs):
            expected = weights[f"{caffe_layer.name}.{kind}"]
            assert tuple(proto_blob.shape.dim) == expected.shape
            assert np.array_equal(np.array(proto_blob.data, np.float32).reshape(expected.shape), expected)

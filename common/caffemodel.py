"""Caffe's ``.caffemodel`` weight files, read and written without Caffe or protobuf.

A ``.caffemodel`` is one binary protobuf ``NetParameter`` message. This module decodes the
protobuf wire format itself (varints, 64-bit, length-delimited and 32-bit fields; see
https://protobuf.dev/programming-guides/encoding/) for the few fields that hold weights,
and steps over every other field by its wire type without looking inside. The field
numbers are BVLC Caffe's, ``src/caffe/proto/caffe.proto``:

================  ====================================================================
NetParameter      name = 1; layers = 2 (V1LayerParameter, the legacy form);
                  layer = 100 (LayerParameter, the current form)
LayerParameter    name = 1; type = 2 (a string: "Convolution", "InnerProduct", ...);
                  blobs = 7 (BlobProto)
V1LayerParameter  layer = 1 (V0LayerParameter, older still: refused); name = 4;
                  type = 5 (enum LayerType: CONVOLUTION = 4, INNER_PRODUCT = 14);
                  blobs = 6 (BlobProto)
BlobProto         num = 1, channels = 2, height = 3, width = 4 (int64, the legacy 4-D
                  shape); data = 5 (repeated float, packed); shape = 7 (BlobShape);
                  double_data = 8 (repeated double, packed)
BlobShape         dim = 1 (repeated int64, packed)
================  ====================================================================

Repeated numbers are accepted packed (one length-delimited field) and unpacked (one field
per value), as every protobuf parser must. Nothing in the file is executed; every length
is checked against the bytes that are left before anything is sliced, arrays are views
of the file's bytes until one copy makes them float32, and the nesting is fixed
(NetParameter > layer > BlobProto > BlobShape), so no file can make the reader recurse or
allocate more than its own size. A malformed file is a WeightsError that says what is
wrong and where.

Layout: Caffe's blobs are already canonical. A convolution's weight is
``(out, in / groups, kh, kw)`` (OIHW), an InnerProduct's ``(out, in)`` with ``in`` in
C*H*W order (it flattens the NCHW blob from axis 1), a bias ``(out,)``. Only the names
change: blob 0 is ``<layer>.weight``, blob 1 ``<layer>.bias``, and the layer is the
spec's layer of the same name (BVLC's conv1..conv5, fc6..fc8 are the spec's names), or,
where the names differ, the spec's layer at the same position among the layers that hold
weights.

Caffe's ImageNet models (``bvlc_alexnet``, ``bvlc_reference_caffenet``) take BGR input:
``bgr_to_rgb`` reverses conv1's input channels so that RGB input computes what the Caffe
model computes on BGR (the flip is its own inverse).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from common.shapes import param_shapes
from common.spec import PARAMETRIC, Conv2d, Variant
from common.weights import Weights, WeightsError, atomic_write_with, validate

#: Said whenever a .caffemodel is read or written.
BGR_NOTE = ("Caffe's ImageNet models (bvlc_alexnet, bvlc_reference_caffenet) take BGR input "
            "(0-255 pixels minus the mean image, no scaling); a .caffemodel's conv1 expects "
            "BGR unless it was made otherwise. --bgr-to-rgb (reading caffe) and --rgb-to-bgr "
            "(writing caffe) reverse conv1's input channels")

# Wire types (protobuf encoding): 0 varint, 1 64-bit, 2 length-delimited, 5 32-bit.
# 3 and 4 (groups) are deprecated and unused by caffe.proto; 6 and 7 do not exist.
VARINT, I64, LEN, I32 = 0, 1, 2, 5

# caffe.proto field numbers (see the table above)
NET_NAME, NET_LAYERS_V1, NET_LAYER = 1, 2, 100
LAYER_NAME, LAYER_TYPE, LAYER_BLOBS = 1, 2, 7
V1_V0LAYER, V1_NAME, V1_TYPE, V1_BLOBS = 1, 4, 5, 6
BLOB_NUM, BLOB_CHANNELS, BLOB_HEIGHT, BLOB_WIDTH = 1, 2, 3, 4
BLOB_DATA, BLOB_SHAPE, BLOB_DOUBLE_DATA = 5, 7, 8
SHAPE_DIM = 1

#: V1LayerParameter.LayerType values this module names (caffe.proto); others are shown
#: by number
V1_TYPES = {4: "Convolution", 14: "InnerProduct"}
#: the Caffe layer type of each parametric spec layer
CAFFE_TYPE = {Conv2d: "Convolution"}
DEFAULT_CAFFE_TYPE = "InnerProduct"  # Dense

#: protobuf's largest field number (2^29 - 1)
MAX_FIELD_NUMBER = 2**29 - 1
#: Caffe's Blob has at most kMaxBlobAxes = 32 axes (blob.hpp)
MAX_AXES = 32
#: protobuf (and Caffe's ReadProtoFromBinaryFile, which raises the limit to INT_MAX)
#: cannot read a message of 2 GiB or more
MAX_MESSAGE_BYTES = 2**31 - 1


class _Malformed(Exception):
    """The bytes are not a NetParameter: the reason, without the file's name."""


# --- decoding --------------------------------------------------------------------------

def _varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    """The unsigned varint at ``pos`` and the position after it."""
    result = shift = 0
    while True:
        if pos >= end:
            raise _Malformed("a number runs past the end of its message (a truncated file?)")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
        if shift >= 70:
            raise _Malformed("a number is longer than the 10 bytes a protobuf varint may take")
    if result >= 1 << 64:
        raise _Malformed("a number is larger than 64 bits")
    return result, pos


def _int64(value: int) -> int:
    """A varint's bits as protobuf's int64 (two's complement)."""
    return value - (1 << 64) if value >= 1 << 63 else value


class _Fields:
    """The fields of one message, in order: ``(field number, wire type, value)``, the value
    an int for a varint and a memoryview of the bytes for the others. Every length is
    checked against the bytes left before anything is sliced. ``pos`` is where the next
    field starts; a reader may move it past fields it has consumed at once."""

    def __init__(self, buf: memoryview, message: str) -> None:
        self.buf, self.message, self.pos = buf, message, 0

    def __iter__(self) -> Iterator[tuple[int, int, object]]:
        buf, end = self.buf, len(self.buf)
        while self.pos < end:
            key, pos = _varint(buf, self.pos, end)
            number, wire = key >> 3, key & 7
            if number == 0 or number > MAX_FIELD_NUMBER:
                raise _Malformed(f"{self.message} has a field numbered {number}, which protobuf "
                                 f"does not allow (not a protobuf file?)")
            if wire == VARINT:
                value, pos = _varint(buf, pos, end)
            elif wire in (I64, I32, LEN):
                if wire == LEN:
                    size, pos = _varint(buf, pos, end)
                else:
                    size = 8 if wire == I64 else 4
                if size > end - pos:
                    raise _Malformed(f"field {number} of {self.message} says it is {size:,} "
                                     f"bytes long, but only {end - pos:,} are left "
                                     f"(a truncated file?)")
                value = buf[pos:pos + size]
                pos += size
            else:
                raise _Malformed(f"field {number} of {self.message} has wire type {wire}, "
                                 f"which no field of caffe.proto uses (not a .caffemodel?)")
            self.pos = pos
            yield number, wire, value


def _expect(wire: int, wanted: int, number: int, message: str) -> None:
    if wire != wanted:
        raise _Malformed(f"field {number} of {message} has wire type {wire}; caffe.proto's "
                         f"field {number} there has wire type {wanted}")


def _text(value: memoryview) -> str:
    return bytes(value).decode("utf-8", errors="replace")


def _quoted(name: str) -> str:
    """A name from the file as a message shows it: quoted, and cut short if long."""
    return repr(name if len(name) <= 60 else name[:57] + "...")


def _unpacked_run(fields: _Fields, key: int, dtype: str) -> np.ndarray:
    """The values of one unpacked repeated field that follow the one just read, each a
    one-byte ``key`` and the value, taken at once (a long unpacked run would otherwise be
    one Python step per value); ``fields`` moves past them."""
    width = np.dtype(dtype).itemsize
    stride = 1 + width
    count = (len(fields.buf) - fields.pos) // stride
    if count == 0:
        return np.zeros(0, dtype)
    records = np.frombuffer(fields.buf, np.uint8, count=count * stride,
                            offset=fields.pos).reshape(count, stride)
    breaks = np.flatnonzero(records[:, 0] != key)
    run = int(breaks[0]) if breaks.size else count
    fields.pos += run * stride
    return np.ascontiguousarray(records[:run, 1:]).view(dtype).reshape(run)


def _numbers(buf: memoryview, dtype: str, number: int, message: str) -> np.ndarray:
    """A packed run of little-endian ``dtype`` values (a view of ``buf``)."""
    width = np.dtype(dtype).itemsize
    if len(buf) % width:
        raise _Malformed(f"field {number} of {message} holds {len(buf):,} bytes, not a whole "
                         f"number of {width}-byte values")
    return np.frombuffer(buf, dtype)


@dataclass
class Blob:
    """One BlobProto: its values (float32 or float64, as stored) and shape."""

    shape: Optional[tuple[int, ...]] = None  # BlobShape's dims, if the blob has one
    legacy: Optional[tuple[int, int, int, int]] = None  # num, channels, height, width, if set
    chunks: list[np.ndarray] = field(default_factory=list)
    double_chunks: list[np.ndarray] = field(default_factory=list)

    def values(self) -> np.ndarray:
        """The values as one float32 array (Caffe's Blob::FromProto reads double_data
        when there is any, else data)."""
        chunks = self.double_chunks or self.chunks
        if not chunks:
            return np.zeros(0, np.float32)
        with np.errstate(over="ignore"):  # a double beyond float32 becomes inf: validate says so
            return np.concatenate(chunks).astype(np.float32, copy=False)

    def count(self) -> int:
        return sum(c.size for c in (self.double_chunks or self.chunks))


def _shape(buf: memoryview, message: str) -> list[int]:
    dims: list[int] = []
    for number, wire, value in _Fields(buf, message):
        if number != SHAPE_DIM:
            continue
        if wire == VARINT:
            dims.append(_int64(value))
        else:
            _expect(wire, LEN, number, message)
            pos = 0
            while pos < len(value) and len(dims) <= MAX_AXES:
                dim, pos = _varint(value, pos, len(value))
                dims.append(_int64(dim))
        if len(dims) > MAX_AXES:
            raise _Malformed(f"{message} has more than {MAX_AXES} axes (Caffe's limit)")
    if any(d < 0 for d in dims):
        raise _Malformed(f"{message} has a negative dimension: {dims}")
    return dims


def _blob(buf: memoryview, message: str) -> Blob:
    blob = Blob()
    legacy: dict[int, int] = {}
    fields = _Fields(buf, message)
    for number, wire, value in fields:
        if number in (BLOB_NUM, BLOB_CHANNELS, BLOB_HEIGHT, BLOB_WIDTH):
            _expect(wire, VARINT, number, message)
            legacy[number] = _int64(value)
        elif number == BLOB_SHAPE:
            _expect(wire, LEN, number, message)
            # an embedded message given twice is merged: its repeated dims add up
            blob.shape = (blob.shape or ()) + tuple(_shape(value, f"the shape of {message}"))
            if len(blob.shape) > MAX_AXES:
                raise _Malformed(f"the shape of {message} has more than {MAX_AXES} axes")
        elif number in (BLOB_DATA, BLOB_DOUBLE_DATA):
            dtype, single = ("<f4", I32) if number == BLOB_DATA else ("<f8", I64)
            chunks = blob.chunks if number == BLOB_DATA else blob.double_chunks
            if wire == LEN:
                chunks.append(_numbers(value, dtype, number, message))
            else:
                _expect(wire, single, number, message)
                chunks.append(np.frombuffer(value, dtype))
                chunks.append(_unpacked_run(fields, (number << 3) | single, dtype))
    if legacy:
        dims = tuple(legacy.get(n, 0) for n in (BLOB_NUM, BLOB_CHANNELS, BLOB_HEIGHT, BLOB_WIDTH))
        if any(d < 0 for d in dims):
            raise _Malformed(f"{message} has a negative dimension: {list(dims)}")
        blob.legacy = dims  # type: ignore[assignment]
    return blob


@dataclass
class Layer:
    """A layer of the file: its name, its type (LayerParameter's string, or V1's enum
    named as the current form names it) and its blobs."""

    name: str
    type: str
    blobs: list[Blob]


@dataclass
class Net:
    name: str
    layers: list[Layer]
    legacy: bool  # the V1 ``layers`` form


def _layer(buf: memoryview, index: int, legacy: bool) -> Layer:
    where = f"{'V1 layer' if legacy else 'layer'} #{index + 1}"
    name_field, type_field, blobs_field = ((V1_NAME, V1_TYPE, V1_BLOBS) if legacy else
                                           (LAYER_NAME, LAYER_TYPE, LAYER_BLOBS))
    layer = Layer(name="", type="", blobs=[])
    for number, wire, value in _Fields(buf, where):
        if number == name_field:
            _expect(wire, LEN, number, where)
            layer.name = _text(value)
            where = f"{'V1 layer' if legacy else 'layer'} #{index + 1} ({_quoted(layer.name)})"
        elif number == type_field:
            if legacy:
                _expect(wire, VARINT, number, where)
                layer.type = V1_TYPES.get(value, f"V1 LayerType {value}")
            else:
                _expect(wire, LEN, number, where)
                layer.type = _text(value)[:200]
        elif number == blobs_field:
            _expect(wire, LEN, number, where)
            layer.blobs.append(_blob(value, f"blob {len(layer.blobs)} of {where}"))
        elif legacy and number == V1_V0LAYER:
            raise _Malformed(f"{where} is in Caffe's V0 form (before 2014), which this reader "
                             f"does not read; upgrade the file with Caffe's "
                             f"tools/upgrade_net_proto_binary first")
    return layer


def parse(data: bytes) -> Net:
    """The layers of a .caffemodel's bytes; ``_Malformed`` if they are not a NetParameter."""
    buf = memoryview(data)
    net = Net(name="", layers=[], legacy=False)
    forms = set()
    for number, wire, value in _Fields(buf, "the NetParameter"):
        if number == NET_NAME:
            _expect(wire, LEN, number, "the NetParameter")
            net.name = _text(value)
        elif number in (NET_LAYER, NET_LAYERS_V1):
            _expect(wire, LEN, number, "the NetParameter")
            legacy = number == NET_LAYERS_V1
            forms.add(legacy)
            net.layers.append(_layer(value, len(net.layers), legacy))
    if len(forms) == 2:  # Caffe's UpgradeV1Net refuses this too
        raise _Malformed("it has layers in both the current form (layer) and the legacy one "
                         "(layers); Caffe refuses such a file too")
    net.legacy = forms == {True}
    return net


# --- canonical names -------------------------------------------------------------------

def _spec_layers(variant: Variant) -> list[tuple[str, str]]:
    """``(name, Caffe type)`` of the variant's layers with weights, in order."""
    return [(layer.name, CAFFE_TYPE.get(type(layer), DEFAULT_CAFFE_TYPE))
            for layer in variant.layers if isinstance(layer, PARAMETRIC)]


def _array(blob: Blob, expected: tuple[int, ...], where: str) -> np.ndarray:
    """The blob as an array of its own shape: BlobShape's, or the legacy 4-D one with the
    leading ones Caffe pads it with taken off where ``expected`` has fewer axes (Caffe's
    Blob::ShapeEquals compares legacy shapes the same way)."""
    if blob.shape is not None:
        shape = blob.shape
    elif blob.legacy is not None:
        shape = blob.legacy
        extra = len(shape) - len(expected)
        if extra > 0 and all(d == 1 for d in shape[:extra]):
            shape = shape[extra:]
    else:
        raise _Malformed(f"{where} has no shape (neither a BlobShape nor num/channels/height/"
                         f"width)")
    size = int(np.prod(shape, dtype=object)) if shape else 1
    count = blob.count()
    if count == 0 and size:
        raise _Malformed(f"{where} holds no values (a net definition without trained weights?)")
    if count != size:
        raise _Malformed(f"{where} has shape {tuple(shape)} ({size:,} values) but holds "
                         f"{count:,} values")
    return blob.values().reshape(shape)


def to_canonical(net: Net, variant: Variant) -> Weights:
    """The file's blobs under canonical names: a layer by its name where every spec layer
    with weights has a namesake in the file, else by its position among the layers that
    hold blobs. Not validated: ``validate`` names what does not fit."""
    spec = _spec_layers(variant)
    spec_names = [name for name, _ in spec]
    layers = [layer for layer in net.layers if layer.blobs]
    names = [layer.name for layer in layers]
    if not layers:
        raise _Malformed("no layer in it holds blobs (a net definition without weights?)")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise _Malformed(f"more than one layer with weights is named {_quoted(twice[0])}")
    shown = ", ".join(f"{_quoted(layer.name)} ({layer.type or 'no type'})" for layer in layers[:12])
    shown += f" and {len(layers) - 12} more" if len(layers) > 12 else ""
    if set(spec_names) <= set(names):
        by_name = {layer.name: layer for layer in layers}
        pairs = [(name, by_name[name]) for name in spec_names]
        extra = [layer for layer in layers if layer.name not in spec_names]
    elif len(layers) == len(spec):
        for i, (layer, name) in enumerate(zip(layers, spec_names)):
            if layer.name in spec_names and layer.name != name:
                raise _Malformed(f"its layer {_quoted(layer.name)} is at position {i + 1} among the "
                                 f"layers with weights, where variant {variant.name!r} has "
                                 f"{name!r}: its names and its order disagree")
        pairs, extra = list(zip(spec_names, layers)), []
    else:
        missing = [n for n in spec_names if n not in names]
        raise _Malformed(f"its {len(layers)} layers with weights are {shown}; variant "
                         f"{variant.name!r} has {len(spec)} ({', '.join(spec_names)}): "
                         f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not "
                         f"among the names, and the counts differ, so they cannot be "
                         f"matched by order either")
    kinds = dict(spec)
    shapes = param_shapes(variant)
    weights: Weights = {}
    for name, layer in pairs:
        where = f"layer {_quoted(layer.name)}" + (f" (the variant's {name})" if layer.name != name else "")
        if layer.type != kinds[name]:
            raise _Malformed(f"{where} is of type {_quoted(layer.type)}; the variant's "
                             f"{name} is a{'n' if kinds[name][0] in 'AEIOU' else ''} "
                             f"{kinds[name]}")
        if len(layer.blobs) != 2:
            raise _Malformed(f"{where} has {len(layer.blobs)} blob{'s' * (len(layer.blobs) != 1)}; "
                             f"the variant's {name} has a weight and a bias"
                             + (" (bias_term: false?)" if len(layer.blobs) == 1 else ""))
        for blob, kind in zip(layer.blobs, ("weight", "bias")):
            key = f"{name}.{kind}"
            weights[key] = _array(blob, shapes[key], f"the {kind} blob of {where}")
    for layer in extra:  # validate reports them as unexpected keys
        for blob, kind in zip(layer.blobs, ("weight", "bias", *(f"blob{i}" for i in range(2, 99)))):
            weights[f"{layer.name[:60]}.{kind}"] = np.zeros(0, np.float32)
    return weights


def read_caffemodel(path: Path, variant: Variant) -> Weights:
    """A .caffemodel's weights as canonical arrays, validated against ``variant``."""
    path = Path(path)
    data = path.read_bytes()
    try:
        if not data:
            raise _Malformed("the file is empty")
        weights = to_canonical(parse(data), variant)
    except _Malformed as exc:
        raise WeightsError(f"{path} is not a Caffe .caffemodel (a binary NetParameter) that "
                           f"fits variant {variant.name!r}: {exc}") from None
    validate(variant, weights)
    return weights


# --- encoding --------------------------------------------------------------------------

def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _length_delimited(number: int, parts: list[bytes]) -> list[bytes]:
    """A length-delimited field around ``parts`` (kept as parts: nothing large is copied)."""
    return [_encode_varint((number << 3) | LEN), _encode_varint(sum(map(len, parts))), *parts]


def _blob_parts(array: np.ndarray) -> list[bytes]:
    # BlobProto in field-number order, as Caffe's C++ protobuf writes it: data (5), shape (7)
    values = np.ascontiguousarray(array, dtype="<f4").tobytes()
    dims = b"".join(_encode_varint(d) for d in array.shape)
    shape = _length_delimited(SHAPE_DIM, [dims])
    return _length_delimited(BLOB_DATA, [values]) + _length_delimited(BLOB_SHAPE, shape)


def encode(variant: Variant, weights: Weights) -> list[bytes]:
    """The NetParameter of canonical ``weights``, in the current form (``layer`` messages
    named as the spec's layers, typed Convolution or InnerProduct, BlobShape shapes), as
    parts to be written one after another. Validated first."""
    validate(variant, weights)
    parts = _length_delimited(NET_NAME, [variant.name.encode()])
    for name, caffe_type in _spec_layers(variant):
        layer = (_length_delimited(LAYER_NAME, [name.encode()])
                 + _length_delimited(LAYER_TYPE, [caffe_type.encode()]))
        for kind in ("weight", "bias"):
            layer += _length_delimited(LAYER_BLOBS, _blob_parts(weights[f"{name}.{kind}"]))
        parts += _length_delimited(NET_LAYER, layer)
    size = sum(map(len, parts))
    if size > MAX_MESSAGE_BYTES:
        raise WeightsError(f"these weights make a {size:,}-byte .caffemodel; Caffe (protobuf) "
                           f"cannot read one of 2 GiB or more")
    return parts


def write_caffemodel(path: Path, variant: Variant, weights: Weights, *,
                     overwrite: bool = False) -> None:
    """Write canonical ``weights`` as a .caffemodel, atomically."""
    parts = encode(variant, weights)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            for part in parts:
                f.write(part)

    atomic_write_with(Path(path), write, overwrite=overwrite)


# --- channel order ---------------------------------------------------------------------

def first_conv_weight(variant: Variant) -> str:
    """The key of the weight whose input channels are the image's colours: a WeightsError
    for a variant whose first layer does not take 3 ungrouped channels."""
    first = next(layer for layer in variant.layers if isinstance(layer, PARAMETRIC))
    channels = variant.input_shape[0]
    if not isinstance(first, Conv2d) or channels != 3 or first.groups != 1:
        why = (f"takes {channels} input channel{'s' * (channels != 1)}" if channels != 3 else
               f"has {first.name} grouped" if isinstance(first, Conv2d) else
               f"starts with {first.name}, not a convolution")
        raise WeightsError(f"variant {variant.name!r} {why}; reversing the colour channels "
                           f"(RGB <-> BGR) needs a first convolution over 3 channels")
    return f"{first.name}.weight"


def bgr_to_rgb(variant: Variant, weights: Weights) -> Weights:
    """``weights`` with conv1's input channels reversed: the model then computes on RGB
    input what it computed on BGR (and the other way round: the flip is its own inverse)."""
    key = first_conv_weight(variant)
    flipped = dict(weights)
    flipped[key] = np.ascontiguousarray(weights[key][:, ::-1])
    return flipped

"""Example encoder: a ``tf.train.Example`` in protobuf wire format without TensorFlow."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from .features import (
    BBOX_XMAX,
    BBOX_XMIN,
    BBOX_YMAX,
    BBOX_YMIN,
    CLASS_LABEL,
    CLASS_TEXT,
    IMAGE_ENCODED,
    IMAGE_FILENAME,
    IMAGE_FORMAT,
    IMAGE_HEIGHT,
    IMAGE_SHA256,
    IMAGE_SOURCE_ID,
    IMAGE_WIDTH,
    OBJECT_AREA,
    OBJECT_IS_CROWD,
    OBJECT_LABEL,
    OBJECT_MASK,
    OBJECT_TEXT,
    SEGMENTATION_ENCODED,
    SEGMENTATION_FORMAT,
)

__all__ = ["ExampleContent", "encode_example"]


@dataclass
class ExampleContent:
    """Everything one image's ``tf.train.Example`` holds.

    Sequences of objects must all have the same length (one entry per object);
    empty ones are allowed for ``texts``, ``is_crowd``, ``area`` and ``masks_png``
    (meaning: not given).

    Attributes:
        encoded: JPEG or PNG bytes.
        image_format: ``jpeg`` or ``png``.
        height: pixels of the encoded image.
        width: pixels of the encoded image.
        filename: the image's path in the manifest.
        source_id: the image's id.
        sha256: hex sha256 of the source file.
        boxes: normalised ``(ymin, xmin, ymax, xmax)`` per object.
        labels: label-map id per object.
        texts: class name per object.
        is_crowd: crowd flag per object.
        area: area per object, pixels of the encoded image.
        masks_png: one PNG (0/1 values, ``height x width``) per object.
        class_label: image class id (classification).
        class_text: image class name (classification).
        segmentation_png: PNG class map (label-map ids, 0 background; segmentation).
    """

    encoded: bytes
    image_format: str
    height: int
    width: int
    filename: str = ""
    source_id: str = ""
    sha256: str = ""
    boxes: Sequence[Sequence[float]] = ()
    labels: Sequence[int] = ()
    texts: Sequence[str] = ()
    is_crowd: Sequence[bool] = ()
    area: Sequence[float] = ()
    masks_png: Sequence[bytes] = ()
    class_label: int | None = None
    class_text: str | None = None
    segmentation_png: bytes | None = None


_SMALL = [bytes([i]) for i in range(0x80)]
_TAG = [bytes([(f << 3) | 2]) for f in range(16)]  # length-delimited field tags 0..15


def _varint(value: int) -> bytes:
    if 0 <= value < 0x80:
        return _SMALL[value]
    if value < 0:
        value += 1 << 64  # int64 two's complement, as protobuf encodes negatives
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _hdr(field_number: int, size: int) -> bytes:
    """Tag and length of a length-delimited field."""
    if size < 0x80:
        return bytes(((field_number << 3) | 2, size))
    return _TAG[field_number] + _varint(size)


def _bytes_feature(values: Sequence[bytes]) -> bytes:
    # Feature.bytes_list (1) -> BytesList.value (1), repeated
    if len(values) == 1 and len(values[0]) < 0x7E:  # one short value: all lengths fit one byte
        v = values[0]
        return bytes((0x0A, len(v) + 2, 0x0A, len(v))) + v
    inner = b"".join([_hdr(1, len(v)) + v for v in values])
    return _hdr(1, len(inner)) + inner


def _float_feature(values: Sequence[float]) -> bytes:
    # Feature.float_list (2) -> FloatList.value (1), packed
    n = len(values)
    if not n:
        return b"\x12\x00"
    packed = struct.pack(f"<{n}f", *values)
    if n < 31:
        return bytes((0x12, 4 * n + 2, 0x0A, 4 * n)) + packed
    inner = _hdr(1, len(packed)) + packed
    return _hdr(2, len(inner)) + inner


def _int64_feature(values: Sequence[int]) -> bytes:
    # Feature.int64_list (3) -> Int64List.value (1), packed
    if not values:
        return b"\x1a\x00"
    packed = b"".join([_varint(int(v)) for v in values])
    if len(packed) < 0x7E:
        return bytes((0x1A, len(packed) + 2, 0x0A, len(packed))) + packed
    inner = _hdr(1, len(packed)) + packed
    return _hdr(3, len(inner)) + inner


def _key(key: str) -> bytes:
    raw = key.encode()
    return _hdr(1, len(raw)) + raw


_KEYS: dict[str, bytes] = {}


def _entry(key: str, value: bytes) -> bytes:
    # one Features.feature map entry {key (1), value (2)}, framed as field 1 of Features
    k = _KEYS.get(key)
    if k is None:
        k = _KEYS[key] = _key(key)
    vl = len(value)
    bl = len(k) + 2 + vl
    if bl < 0x80:  # the common case: every length fits one byte
        return bytes((0x0A, bl)) + k + bytes((0x12, vl)) + value
    body = k + _hdr(2, vl) + value
    return _hdr(1, len(body)) + body


_ENCODED_KEY = _key(IMAGE_ENCODED)


def _encoded_entry_parts(encoded: bytes) -> list[bytes]:
    # the image entry without copying the image: [headers..., image bytes]
    k = _ENCODED_KEY
    h1 = _hdr(1, len(encoded))  # BytesList.value
    h2 = _hdr(1, len(h1) + len(encoded))  # Feature.bytes_list
    vsize = len(h2) + len(h1) + len(encoded)
    h3 = _hdr(2, vsize)  # entry value
    h4 = _hdr(1, len(k) + len(h3) + vsize)  # Features.feature entry
    return [h4 + k + h3 + h2 + h1, encoded]


def encode_example(content: ExampleContent) -> bytes:
    """Serialises one image as a ``tf.train.Example`` (without importing TensorFlow).

    ``tf.train.Example.FromString(encode_example(c))`` parses the result.
    Object features are written when any object is given or the image has
    boxes (detection, segmentation); the classification and segmentation
    features only when set.

    Args:
        content: the image and its annotations.

    Returns:
        The serialised ``tf.train.Example``.

    Raises:
        ValueError: per-object sequences of different lengths.
    """
    c = content
    n = len(c.boxes)
    for name, seq in (("labels", c.labels), ("texts", c.texts), ("is_crowd", c.is_crowd), ("area", c.area), ("masks_png", c.masks_png)):
        if len(seq) not in ((n,) if name == "labels" else (0, n)):
            raise ValueError(f"{name} has {len(seq)} entries for {n} boxes")
    e = _entry
    parts = _encoded_entry_parts(c.encoded)
    small = [
        e(IMAGE_FORMAT, _bytes_feature([c.image_format.encode()])),
        e(IMAGE_HEIGHT, _int64_feature([c.height])),
        e(IMAGE_WIDTH, _int64_feature([c.width])),
        e(IMAGE_FILENAME, _bytes_feature([c.filename.encode()])),
        e(IMAGE_SOURCE_ID, _bytes_feature([c.source_id.encode()])),
        e(IMAGE_SHA256, _bytes_feature([c.sha256.encode()])),
    ]
    if c.class_label is None or n:
        boxes = c.boxes
        small += [
            e(BBOX_YMIN, _float_feature([float(b[0]) for b in boxes])),
            e(BBOX_XMIN, _float_feature([float(b[1]) for b in boxes])),
            e(BBOX_YMAX, _float_feature([float(b[2]) for b in boxes])),
            e(BBOX_XMAX, _float_feature([float(b[3]) for b in boxes])),
            e(OBJECT_LABEL, _int64_feature(c.labels)),
            e(OBJECT_TEXT, _bytes_feature([t.encode() for t in c.texts])),
            e(OBJECT_IS_CROWD, _int64_feature([int(bool(v)) for v in c.is_crowd] if c.is_crowd else [0] * n)),
            e(OBJECT_AREA, _float_feature(c.area if c.area else [(b[2] - b[0]) * (b[3] - b[1]) * c.height * c.width for b in boxes])),
            e(OBJECT_MASK, _bytes_feature(c.masks_png)),
        ]
    if c.class_label is not None:
        small.append(e(CLASS_LABEL, _int64_feature([c.class_label])))
        small.append(e(CLASS_TEXT, _bytes_feature([(c.class_text or "").encode()])))
    if c.segmentation_png is not None:
        small.append(e(SEGMENTATION_ENCODED, _bytes_feature([c.segmentation_png])))
        small.append(e(SEGMENTATION_FORMAT, _bytes_feature([b"png"])))
    rest = b"".join(small)
    size = len(parts[0]) + len(parts[1]) + len(rest)
    return b"".join((_hdr(1, size), parts[0], parts[1], rest))

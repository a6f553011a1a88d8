"""The TFRecord contract shared by transform, training and evaluation.

Transform writes one ``tf.train.Example`` per image into sharded TFRecord
files plus an index, ``examples.json``; training and evaluation read them
back with :func:`read_dataset`. Feature keys follow the TensorFlow Object
Detection API:

=================================  ========  ==============================================
key                                type      meaning
=================================  ========  ==============================================
image/encoded                      bytes     JPEG or PNG bytes of upright 8-bit RGB pixels
image/format                       bytes     ``jpeg`` or ``png``
image/height, image/width          int64     size of the encoded image
image/filename                     bytes     the image's path in the manifest
image/source_id                    bytes     the manifest's ``image_id``
image/key/sha256                   bytes     hex sha256 of the *source* file (the manifest's content hash)
image/object/bbox/xmin|xmax|...    float     boxes, normalised to 0..1
image/object/class/label           int64     label-map ids (from 1)
image/object/class/text            bytes     class names
image/object/is_crowd              int64     COCO ``iscrowd`` (0/1)
image/object/area                  float     object area in pixels of the encoded image
image/object/mask                  bytes     one PNG per object, 0/1 values, image size
image/class/label, .../text        int64     image class (classification)
image/segmentation/class/encoded   bytes     PNG class map: label-map ids, 0 background
image/segmentation/class/format    bytes     ``png``
=================================  ========  ==============================================

The index (:class:`ExamplesIndex`, ``examples_dir/examples.json``) lists each
split's shards (file, record count, sha256), whether they are GZIP
compressed, the task, the label map and counts per split and class.

Writing needs no TensorFlow: :func:`encode_example` emits the protobuf wire
format directly and :class:`TFRecordWriter` frames records with CRC32C, so
transform workers start in milliseconds. Reading (:func:`read_dataset`)
imports TensorFlow inside the function, so importing this module stays cheap.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from .errors import DataError
from .io import atomic_write_json, read_json
from .labelmap import LabelMap
from .manifest import Task

if TYPE_CHECKING:  # pragma: no cover
    import tensorflow as tf

__all__ = [
    "AUTOTUNE",
    "EXAMPLES_INDEX",
    "SPLITS",
    "ExampleContent",
    "ExamplesIndex",
    "ShardInfo",
    "SplitInfo",
    "TFRecordWriter",
    "encode_example",
    "iter_records",
    "load_index",
    "read_dataset",
    "shard_paths",
]

EXAMPLES_INDEX = "examples.json"
"""File name of the index inside an examples directory."""

SPLITS = ("train", "validation", "test")
"""The splits transform writes, in order."""

AUTOTUNE = -1
"""Same value as ``tf.data.AUTOTUNE`` (usable without importing TensorFlow)."""

# Feature keys (TensorFlow Object Detection API names).
IMAGE_ENCODED = "image/encoded"
IMAGE_FORMAT = "image/format"
IMAGE_HEIGHT = "image/height"
IMAGE_WIDTH = "image/width"
IMAGE_FILENAME = "image/filename"
IMAGE_SOURCE_ID = "image/source_id"
IMAGE_SHA256 = "image/key/sha256"
BBOX_XMIN = "image/object/bbox/xmin"
BBOX_XMAX = "image/object/bbox/xmax"
BBOX_YMIN = "image/object/bbox/ymin"
BBOX_YMAX = "image/object/bbox/ymax"
OBJECT_LABEL = "image/object/class/label"
OBJECT_TEXT = "image/object/class/text"
OBJECT_IS_CROWD = "image/object/is_crowd"
OBJECT_AREA = "image/object/area"
OBJECT_MASK = "image/object/mask"
CLASS_LABEL = "image/class/label"
CLASS_TEXT = "image/class/text"
SEGMENTATION_ENCODED = "image/segmentation/class/encoded"
SEGMENTATION_FORMAT = "image/segmentation/class/format"


# --------------------------------------------------------------------------- index


class ShardInfo(BaseModel):
    """One finished TFRecord shard.

    Attributes:
        file: file name, relative to the examples directory.
        records: number of records in it.
        sha256: hex sha256 of the file's bytes (compressed bytes when GZIP).
        bytes: file size.
    """

    file: str
    records: int
    sha256: str
    bytes: int = 0


class SplitInfo(BaseModel):
    """One split of an examples directory.

    Attributes:
        records: records written (oversampled duplicates included).
        images: distinct images written.
        class_counts: class name -> examples in the written records (objects for
            detection/segmentation, images for classification).
        shards: the shard files, in order.
    """

    records: int = 0
    images: int = 0
    class_counts: dict[str, int] = Field(default_factory=dict)
    shards: list[ShardInfo] = Field(default_factory=list)


class ExamplesIndex(BaseModel):
    """``examples.json``: what an examples directory holds.

    Attributes:
        format_version: version of this contract.
        task: classification, detection or segmentation.
        gzip: whether shards are GZIP-compressed.
        label_map: the label map the ids refer to (its ``version`` included).
        image_size: ``[height, width]`` every image was resized to, or None (original sizes).
        splits: split name -> its shards and counts.
        quarantined: images transform rejected (see its quarantine report).
        extra: anything else worth keeping (options, timings).
    """

    format_version: int = 1
    task: Task
    gzip: bool = False
    label_map: LabelMap
    image_size: tuple[int, int] | None = None
    splits: dict[str, SplitInfo] = Field(default_factory=dict)
    quarantined: int = 0
    extra: dict[str, Any] = Field(default_factory=dict)

    @property
    def counts(self) -> dict[str, int]:
        """Records per split."""
        return {name: s.records for name, s in self.splits.items()}

    def save(self, examples_dir: str | os.PathLike[str]) -> Path:
        """Writes ``examples.json`` atomically into ``examples_dir``.

        Args:
            examples_dir: the examples directory.

        Returns:
            The index file's path.
        """
        return atomic_write_json(Path(examples_dir) / EXAMPLES_INDEX, self.model_dump(mode="json"))


def load_index(examples_dir: str | os.PathLike[str]) -> ExamplesIndex:
    """Reads ``examples.json`` from an examples directory.

    Args:
        examples_dir: the directory transform wrote.

    Returns:
        The index.

    Raises:
        DataError: the directory has no (valid) index, i.e. transform did not finish there.
    """
    p = Path(examples_dir) / EXAMPLES_INDEX
    try:
        return ExamplesIndex.model_validate(read_json(p))
    except FileNotFoundError:
        raise DataError(f"{p}: no examples index; transform did not finish writing this directory") from None
    except ValueError as e:
        raise DataError(f"{p}: malformed examples index: {e}") from None


def shard_paths(examples_dir: str | os.PathLike[str], split: str) -> list[Path]:
    """Absolute paths of one split's shards, in order.

    Args:
        examples_dir: the directory transform wrote.
        split: ``train``, ``validation`` or ``test``.

    Returns:
        The shard files (empty when the split has no records).

    Raises:
        DataError: no index, or no such split.
    """
    index = load_index(examples_dir)
    if split not in index.splits:
        have = ", ".join(index.splits) or "none"
        raise DataError(f"{examples_dir}: no split {split!r} in {EXAMPLES_INDEX} (splits: {have})")
    return [Path(examples_dir) / s.file for s in index.splits[split].shards]


# --------------------------------------------------------------------------- encoding


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


# --------------------------------------------------------------------------- TFRecord framing


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE: list[int] | None = None


def _crc32c_python(data: bytes) -> int:
    global _TABLE
    if _TABLE is None:
        _TABLE = _crc32c_table()
    t = _TABLE
    crc = 0xFFFFFFFF
    for b in data:
        crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


try:  # the C implementation (a locked transitive dependency); pure Python otherwise
    import google_crc32c as _gcrc

    if getattr(_gcrc, "implementation", "c") != "c":
        raise ImportError("google_crc32c without its C extension")

    def _crc32c(data: bytes) -> int:
        return int(_gcrc.value(data))

except ImportError:  # pragma: no cover - depends on the environment
    _crc32c = _crc32c_python


def _masked_crc(data: bytes) -> int:
    crc = _crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


class _HashingFile:
    """A write-only file that hashes (sha256) and counts what passes through."""

    def __init__(self, raw: IO[bytes]):
        self.raw = raw
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.raw.write(data)
        self.hash.update(data)
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        self.raw.flush()


class TFRecordWriter:
    """Writes TFRecord files (optionally GZIP) without TensorFlow.

    Each record is framed as TensorFlow does: length (uint64 LE), masked
    CRC32C of the length, data, masked CRC32C of the data. The file's sha256
    and size are computed while writing (:attr:`sha256`, :attr:`bytes`).

    Args:
        path: the file to write (callers write to a temporary name and rename).
        gzip_compress: write a GZIP stream (``compression_type="GZIP"`` when reading).
        fsync: flush to disk on close. Off by default, as ``tf.io.TFRecordWriter``: a
            killed process loses nothing the kernel already has, and the
            temporary-name-then-rename protocol guards readers.
    """

    def __init__(self, path: str | os.PathLike[str], gzip_compress: bool = False, fsync: bool = False):
        self.path = Path(path)
        self._raw: IO[bytes] = open(path, "wb")  # noqa: SIM115 - closed in close()
        self._file = _HashingFile(self._raw)
        self._gz = gzip.GzipFile(fileobj=self._file, mode="wb", compresslevel=6, mtime=0) if gzip_compress else None  # type: ignore[arg-type]
        self._out: Any = self._gz if self._gz is not None else self._file
        self.records = 0
        self._fsync = fsync
        self._closed = False

    def write(self, record: bytes) -> None:
        """Appends one record.

        Args:
            record: the serialised record.
        """
        header = struct.pack("<Q", len(record))
        out = self._out
        out.write(header + struct.pack("<I", _masked_crc(header)))
        out.write(record)
        out.write(struct.pack("<I", _masked_crc(record)))
        self.records += 1

    @property
    def sha256(self) -> str:
        """Hex sha256 of the bytes written to the file so far (complete after :meth:`close`)."""
        return self._file.hash.hexdigest()

    @property
    def bytes(self) -> int:
        """Bytes written to the file so far (complete after :meth:`close`)."""
        return self._file.size

    def close(self) -> None:
        """Flushes and closes the file (and fsyncs it when asked to)."""
        if self._closed:
            return
        self._closed = True
        if self._gz is not None:
            self._gz.close()
        self._raw.flush()
        if self._fsync:
            os.fsync(self._raw.fileno())
        self._raw.close()

    def __enter__(self) -> TFRecordWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def iter_records(path: str | os.PathLike[str], gzip_compressed: bool | None = None, verify: bool = True) -> Iterator[bytes]:
    """Reads the records of a TFRecord file without TensorFlow.

    Args:
        path: the file.
        gzip_compressed: whether it is GZIP; None guesses from the ``.gz`` suffix.
        verify: check both CRCs of every record.

    Yields:
        Each record's bytes.

    Raises:
        DataError: the file is truncated or a CRC does not match.
    """
    p = os.fspath(path)
    compressed = p.endswith(".gz") if gzip_compressed is None else gzip_compressed
    with gzip.open(p, "rb") if compressed else open(p, "rb") as f:
        n = 0
        while True:
            header = f.read(12)
            if not header:
                return
            if len(header) < 12:
                raise DataError(f"{p}: truncated record header after {n} records")
            (length,) = struct.unpack("<Q", header[:8])
            if verify and struct.unpack("<I", header[8:])[0] != _masked_crc(header[:8]):
                raise DataError(f"{p}: length CRC mismatch in record {n}")
            data = f.read(length)
            footer = f.read(4)
            if len(data) < length or len(footer) < 4:
                raise DataError(f"{p}: truncated record {n}")
            if verify and struct.unpack("<I", footer)[0] != _masked_crc(data):
                raise DataError(f"{p}: data CRC mismatch in record {n}")
            n += 1
            yield data


# --------------------------------------------------------------------------- reading with tf.data


def _check_task(index: ExamplesIndex, task: Task, where: str) -> None:
    ok = index.task == task or (task == "detection" and index.task == "segmentation")
    if not ok:
        raise DataError(f"{where}: examples were written for {index.task}, cannot be read as {task}")


def read_dataset(
    examples_dir: str | os.PathLike[str],
    split: str,
    task: Task,
    *,
    decode_masks: bool = True,
    shuffle: bool = False,
    num_parallel_calls: int | None = AUTOTUNE,
    shuffle_buffer: int = 1024,
    seed: int | None = None,
) -> tf.data.Dataset:
    """Reads one split of an examples directory as a ``tf.data.Dataset`` of per-image dicts.

    Shards come from ``examples.json``; GZIP shards are read as such. Each
    element is a dict with exactly these keys:

    - ``image`` uint8 ``[H, W, 3]``; ``height``, ``width`` int64 scalars;
      ``source_id``, ``filename``, ``sha256`` string scalars.
    - detection and segmentation: ``boxes`` float32 ``[N, 4]`` normalised
      ``(ymin, xmin, ymax, xmax)``; ``labels`` int64 ``[N]`` label-map ids;
      ``is_crowd`` bool ``[N]``; ``area`` float32 ``[N]``; ``masks`` uint8
      ``[N, H, W]`` (0/1) when ``decode_masks`` and the records have masks, else
      ``[0, H, W]``.
    - classification: ``label`` int64 scalar (label-map id).
    - segmentation: ``segmentation`` uint8 ``[H, W]`` (label-map ids, 0 background).

    Args:
        examples_dir: the directory transform wrote.
        split: ``train``, ``validation`` or ``test``.
        task: the task to read for (a segmentation directory can also be read for detection).
        decode_masks: decode instance masks (detection/segmentation).
        shuffle: shuffle shard order and records (buffer of ``shuffle_buffer``).
        num_parallel_calls: parallelism of reading and decoding (``AUTOTUNE`` = -1).
        shuffle_buffer: records in the shuffle buffer.
        seed: shuffle seed (None: different each iteration).

    Returns:
        The dataset (finite; repeat it yourself).

    Raises:
        DataError: no index, no such split, or examples written for an incompatible task.
    """
    import tensorflow as tf

    index = load_index(examples_dir)
    _check_task(index, task, os.fspath(examples_dir))
    files = [os.fspath(p) for p in shard_paths(examples_dir, split)]
    compression = "GZIP" if index.gzip else ""
    parallel = tf.data.AUTOTUNE if num_parallel_calls is None or num_parallel_calls == AUTOTUNE else int(num_parallel_calls)

    ds = tf.data.Dataset.from_tensor_slices(tf.constant(files, dtype=tf.string))
    if shuffle and len(files) > 1:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    ds = ds.interleave(
        lambda f: tf.data.TFRecordDataset(f, compression_type=compression),
        cycle_length=max(1, min(len(files), 8)),
        num_parallel_calls=parallel,
        deterministic=not shuffle,
    )
    if shuffle:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    parse = _parser(task, decode_masks)
    return ds.map(parse, num_parallel_calls=parallel, deterministic=not shuffle)


def _parser(task: Task, decode_masks: bool) -> Any:
    import tensorflow as tf

    spec: dict[str, Any] = {
        IMAGE_ENCODED: tf.io.FixedLenFeature([], tf.string),
        IMAGE_HEIGHT: tf.io.FixedLenFeature([], tf.int64),
        IMAGE_WIDTH: tf.io.FixedLenFeature([], tf.int64),
        IMAGE_SOURCE_ID: tf.io.FixedLenFeature([], tf.string, default_value=""),
        IMAGE_FILENAME: tf.io.FixedLenFeature([], tf.string, default_value=""),
        IMAGE_SHA256: tf.io.FixedLenFeature([], tf.string, default_value=""),
    }
    objects = task in ("detection", "segmentation")
    if objects:
        for k in (BBOX_YMIN, BBOX_XMIN, BBOX_YMAX, BBOX_XMAX, OBJECT_AREA):
            spec[k] = tf.io.VarLenFeature(tf.float32)
        spec[OBJECT_LABEL] = tf.io.VarLenFeature(tf.int64)
        spec[OBJECT_IS_CROWD] = tf.io.VarLenFeature(tf.int64)
        if decode_masks:
            spec[OBJECT_MASK] = tf.io.VarLenFeature(tf.string)
    if task == "classification":
        spec[CLASS_LABEL] = tf.io.FixedLenFeature([], tf.int64)
    if task == "segmentation":
        spec[SEGMENTATION_ENCODED] = tf.io.FixedLenFeature([], tf.string)

    def dense(x: Any) -> Any:
        return tf.sparse.to_dense(x)

    def parse(serialized: Any) -> dict[str, Any]:
        f = tf.io.parse_single_example(serialized, spec)
        image = tf.io.decode_image(f[IMAGE_ENCODED], channels=3, dtype=tf.uint8, expand_animations=False)
        image.set_shape([None, None, 3])
        out: dict[str, Any] = {
            "image": image,
            "height": f[IMAGE_HEIGHT],
            "width": f[IMAGE_WIDTH],
            "source_id": f[IMAGE_SOURCE_ID],
            "filename": f[IMAGE_FILENAME],
            "sha256": f[IMAGE_SHA256],
        }
        h = tf.shape(image)[0]
        w = tf.shape(image)[1]
        if objects:
            boxes = tf.stack([dense(f[BBOX_YMIN]), dense(f[BBOX_XMIN]), dense(f[BBOX_YMAX]), dense(f[BBOX_XMAX])], axis=1)
            out["boxes"] = tf.reshape(boxes, [-1, 4])
            out["labels"] = dense(f[OBJECT_LABEL])
            out["is_crowd"] = tf.cast(dense(f[OBJECT_IS_CROWD]), tf.bool)
            out["area"] = dense(f[OBJECT_AREA])
            empty = tf.zeros(tf.stack([0, h, w]), dtype=tf.uint8)
            if decode_masks:
                pngs = dense(f[OBJECT_MASK])

                def decode_all() -> Any:
                    return tf.map_fn(
                        lambda b: tf.io.decode_png(b, channels=1)[:, :, 0],
                        pngs,
                        fn_output_signature=tf.TensorSpec([None, None], tf.uint8),
                    )

                masks = tf.cond(tf.size(pngs) > 0, decode_all, lambda: empty)
            else:
                masks = empty
            masks.set_shape([None, None, None])
            out["masks"] = masks
        if task == "classification":
            out["label"] = f[CLASS_LABEL]
        if task == "segmentation":
            seg = tf.io.decode_png(f[SEGMENTATION_ENCODED], channels=1, dtype=tf.uint8)[:, :, 0]
            seg.set_shape([None, None])
            out["segmentation"] = seg
        return out

    return parse

"""Transform: a validated manifest becomes sharded TFRecords per split.

What it does, in order:

1. **Split** each image deterministically by its content hash: the first 64
   bits of its sha256 give a number in [0, 1) compared with the split
   fractions, so the same bytes land in the same split in every run and every
   dataset version (and duplicates never straddle train and test). A split
   the source preset (``ImageRecord.split``) is respected.
2. **Balance** (optional): images of rare classes are repeated in the
   training split (repeat-factor sampling: an image is repeated as often as
   its rarest class needs to match the most frequent one, capped at
   :data:`MAX_REPEAT`).
3. **Plan shards** per split from file sizes (target ``shard_size_mb``, at
   most :data:`MAX_RECORDS_PER_SHARD` records), named
   ``train-00000-of-00004.tfrecord[.gz]``. The plan depends only on the data,
   never on the number of cores, so the output is reproducible.
4. **Write** shards in parallel: one task per shard over a process pool. An
   already-RGB, upright, complete JPEG is copied byte for byte; everything
   else is decoded (:func:`~components.core.images.decode_rgb`: CMYK, gray,
   palette, RGBA, 16-bit, EXIF rotation) and re-encoded (JPEG sources as
   JPEG, lossless sources as PNG). With ``image_size`` every image is resized
   and masks follow (normalised boxes are unchanged by a resize). Each shard
   is written under a temporary dot-name and renamed when complete, so a
   killed run never leaves a shard that looks finished; ``examples.json`` is
   written last.
5. Images that cannot be used go to the quarantine report (stage
   ``transform``) with the reason; single bad objects (unknown class, empty
   box, undecodable mask) are dropped and reported; every other image reaches
   the TFRecords.

Annotation geometry: boxes and masks are in the pixel frame of the manifest's
``width x height``. When the decoded (EXIF-upright) image is that frame
transposed, the annotations were made on the stored pixels and are rotated
with them.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import multiprocessing as mp
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from components.core.errors import DataError, ImageError
from components.core.examples import (
    EXAMPLES_INDEX,
    SPLITS,
    ExampleContent,
    ExamplesIndex,
    ShardInfo,
    SplitInfo,
    TFRecordWriter,
    encode_example,
)
from components.core.images import MAX_PIXELS, decode_rgb, encode_jpeg, encode_png
from components.core.io import atomic_path, sha256_file
from components.core.labelmap import LabelMap
from components.core.lineage import ArtifactRef, NewArtifact
from components.core.log import get_logger, progress
from components.core.manifest import ImageRecord, Manifest, ObjectAnnotation, Task
from components.core.masks import decode_segmentation
from components.core.quarantine import QuarantineReport
from components.core.spec import SplitSpec, TransformSpec
from components.core.step import StepContext

__all__ = [
    "MAX_RECORDS_PER_SHARD",
    "MAX_REPEAT",
    "TransformResult",
    "TransformUris",
    "normalise_split",
    "run",
    "split_for",
    "write_examples",
]

STAGE = "transform"
MAX_RECORDS_PER_SHARD = 1024
"""A shard holds at most this many records (more shards: parallel writing and better shuffling)."""
MAX_REPEAT = 20
"""Largest number of copies class balancing makes of one image."""
JPEG_QUALITY = 95
"""Quality of re-encoded JPEGs."""

_SHARD_RE = re.compile(r"^(train|validation|test)-\d{5}-of-\d{5}\.tfrecord(\.gz)?$")
_SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "validation",
    "valid": "validation",
    "validation": "validation",
    "dev": "validation",
    "test": "test",
    "testing": "test",
}


# --------------------------------------------------------------------------- public types


@dataclass(frozen=True)
class TransformUris:
    """Artifact URIs for lineage (KFP artifact ``.uri`` values).

    Attributes:
        manifest: the validated manifest artifact.
        label_map: the label map artifact.
        examples: the examples output artifact.
        quarantine: the quarantine report output artifact.
        statistics: TFDV statistics the manifest was validated with, if any.
        schema: the schema it was validated against, if any.
    """

    manifest: str
    label_map: str
    examples: str
    quarantine: str
    statistics: str | None = None
    schema: str | None = None


@dataclass
class TransformResult:
    """What transform wrote.

    Attributes:
        examples_dir: the examples directory.
        index: its ``examples.json``.
        quarantine: images and objects rejected at this stage.
        copied: records whose image bytes were copied unchanged.
        reencoded: records whose image was decoded and re-encoded.
        seconds: wall time of the writing.
    """

    examples_dir: Path
    index: ExamplesIndex
    quarantine: QuarantineReport
    copied: int = 0
    reencoded: int = 0
    seconds: float = 0.0

    @property
    def counts(self) -> dict[str, int]:
        """Records per split."""
        return self.index.counts

    @property
    def shards(self) -> dict[str, int]:
        """Shards per split."""
        return {name: len(s.shards) for name, s in self.index.splits.items()}

    def metadata(self) -> dict[str, Any]:
        """Summary for KFP artifact metadata and lineage properties."""
        return {
            "task": self.index.task,
            "counts": self.counts,
            "images": {name: s.images for name, s in self.index.splits.items()},
            "shards": self.shards,
            "gzip": self.index.gzip,
            "label_map_version": self.index.label_map.version,
            "quarantined": len(self.quarantine),
            "copied": self.copied,
            "reencoded": self.reencoded,
        }


# --------------------------------------------------------------------------- split and balance


def normalise_split(name: str | None) -> str | None:
    """Maps a source's split name (``val``, ``training``...) to train/validation/test, or None."""
    if not name:
        return None
    return _SPLIT_ALIASES.get(name.strip().lower())


def _unit(hex_digest: str, offset: int = 0) -> float:
    """A number in [0, 1) from 16 hex digits of a digest."""
    chunk = hex_digest[offset : offset + 16]
    try:
        return int(chunk, 16) / float(1 << (4 * len(chunk)))
    except ValueError:
        return _unit(hashlib.sha256(hex_digest.encode()).hexdigest(), offset)


def split_for(sha256: str, fractions: SplitSpec) -> str:
    """The split of an image with this content hash.

    Depends only on the hash and the fractions, so an image keeps its split
    across runs and dataset versions.

    Args:
        sha256: hex sha256 of the image file.
        fractions: split fractions.

    Returns:
        ``train``, ``validation`` or ``test``.
    """
    u = _unit(sha256.lower())
    if u < fractions.train:
        return "train"
    if u < fractions.train + fractions.validation:
        return "validation"
    return "test" if fractions.test > 0 else ("validation" if fractions.validation > 0 else "train")


def _classes_of(record: ImageRecord, task: Task) -> set[int]:
    if task == "classification":
        return {record.class_id} if record.class_id is not None else set()
    return {o.class_id for o in record.objects if not o.is_crowd}


def _copies(records: Sequence[ImageRecord], task: Task) -> list[int]:
    """Repeat-factor sampling: copies of each record so rare classes match the most frequent one."""
    freq: Counter[int] = Counter()
    for r in records:
        freq.update(_classes_of(r, task))
    if not freq:
        return [1] * len(records)
    top = max(freq.values())
    out = []
    for r in records:
        factor = max((top / freq[c] for c in _classes_of(r, task)), default=1.0)
        factor = min(factor, float(MAX_REPEAT))
        whole = int(factor)
        # the fractional part is resolved by the image's hash: deterministic, unbiased over many images
        out.append(whole + (1 if _unit(r.sha256.lower(), 16) < factor - whole else 0))
    return out


# --------------------------------------------------------------------------- shard plan


@dataclass
class _ShardTask:
    split: str
    file: str
    items: list[tuple[int, int]]  # (image index, copy number)
    est_bytes: int


@dataclass
class _ShardResult:
    split: str
    file: str
    records: int = 0
    sha256: str = ""
    bytes: int = 0
    class_counts: Counter[str] = field(default_factory=Counter)
    images: set[int] = field(default_factory=set)
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    copied: int = 0
    reencoded: int = 0


def _plan(split: str, items: list[tuple[int, int]], sizes: Sequence[int], target_bytes: float, gz: bool) -> list[_ShardTask]:
    if not items:
        return []
    total = sum(sizes[i] for i, _ in items)
    n = max(1, math.ceil(total / target_bytes), math.ceil(len(items) / MAX_RECORDS_PER_SHARD))
    n = min(n, len(items))
    ext = ".tfrecord.gz" if gz else ".tfrecord"
    tasks = []
    for k in range(n):
        chunk = items[k * len(items) // n : (k + 1) * len(items) // n]
        tasks.append(_ShardTask(split, f"{split}-{k:05d}-of-{n:05d}{ext}", chunk, sum(sizes[i] for i, _ in chunk)))
    return tasks


# --------------------------------------------------------------------------- JPEG header (fast path)


def _exif_orientation(tiff: bytes) -> int | None:
    """Orientation tag of an EXIF TIFF block; -1 when the block cannot be read."""
    if len(tiff) < 8 or tiff[:2] not in (b"II", b"MM"):
        return -1
    order: Literal["little", "big"] = "little" if tiff[:2] == b"II" else "big"
    ifd = int.from_bytes(tiff[4:8], order)
    if ifd + 2 > len(tiff):
        return -1
    count = int.from_bytes(tiff[ifd : ifd + 2], order)
    for k in range(count):
        e = ifd + 2 + 12 * k
        if e + 12 > len(tiff):
            return -1
        if int.from_bytes(tiff[e : e + 2], order) == 0x0112:
            return int.from_bytes(tiff[e + 8 : e + 10], order)
    return None


def jpeg_copy_size(data: bytes) -> tuple[int, int] | None:
    """``(height, width)`` when ``data`` can go into a record unchanged, else None.

    That is a complete (ends with the EOI marker) baseline or progressive
    JPEG with three 8-bit components and no EXIF rotation. Anything else
    (gray, CMYK, truncated, rotated, lossless, not a JPEG) is decoded instead.
    Only header markers are read, so this costs microseconds.

    Args:
        data: the file's bytes.

    Returns:
        The size, or None.
    """
    n = len(data)
    if n < 4 or data[:3] != b"\xff\xd8\xff" or data[-2:] != b"\xff\xd9":
        return None
    i = 2
    size: tuple[int, int] | None = None
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:
            i += 2
            continue
        if marker == 0xD9:
            return None
        seglen = int.from_bytes(data[i + 2 : i + 4], "big")
        if seglen < 2 or i + 2 + seglen > n:
            return None
        seg = data[i + 4 : i + 2 + seglen]
        if marker in (0xC0, 0xC1, 0xC2):
            if len(seg) < 6 or seg[0] != 8 or seg[5] != 3:
                return None
            size = (int.from_bytes(seg[1:3], "big"), int.from_bytes(seg[3:5], "big"))
            if size[0] == 0 or size[1] == 0:
                return None
        elif 0xC3 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return None  # lossless, hierarchical or arithmetic-coded
        elif marker == 0xE1 and seg.startswith(b"Exif\x00\x00"):
            if _exif_orientation(seg[6:]) not in (None, 1):
                return None
        elif marker == 0xDA:
            return size
        i += 2 + seglen
    return None


# --------------------------------------------------------------------------- one record


class _Reject(Exception):
    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


_IMAGE_ERROR_KINDS = (("over the limit", "decompression_bomb"), ("not a recognised image", "not_an_image"), ("empty", "empty_file"))

# PIL transpose methods for EXIF orientations 5..8 and the matching map of normalised (x, y)
_ORIENT: dict[int, tuple[Image.Transpose, Any]] = {
    5: (Image.Transpose.TRANSPOSE, lambda x, y: (y, x)),
    6: (Image.Transpose.ROTATE_270, lambda x, y: (1.0 - y, x)),
    7: (Image.Transpose.TRANSVERSE, lambda x, y: (1.0 - y, 1.0 - x)),
    8: (Image.Transpose.ROTATE_90, lambda x, y: (y, 1.0 - x)),
}


@dataclass
class _State:
    """What workers need; set before the pool starts (inherited on fork, pickled on spawn)."""

    root: str
    task: Task
    images: list[ImageRecord]
    shas: list[str]
    classes: dict[int, str]
    image_size: tuple[int, int] | None
    gzip: bool
    max_pixels: int
    out_dir: str


_STATE: _State | None = None


def _init_worker(state: _State) -> None:
    global _STATE
    _STATE = state


def _orientation(data: bytes) -> int | None:
    try:
        with Image.open(io.BytesIO(data)) as im:
            value = im.getexif().get(0x0112)
            return int(value) if value is not None else None
    except Exception:
        return None


def _resize_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    if mask.shape == (height, width):
        return mask
    return np.asarray(Image.fromarray(mask).resize((width, height), Image.Resampling.NEAREST))


def _build(st: _State, idx: int, quarantine: list[dict[str, Any]]) -> tuple[bytes, list[str], bool]:
    """Builds one record; returns (serialised example, class names counted, copied)."""
    rec = st.images[idx]
    path = rec.file(st.root)  # an absolute rec.path wins, as in Manifest.image_path
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise _Reject("missing_file", "file not found") from None
    except OSError as e:
        raise _Reject("unreadable_file", f"cannot read file: {e.strerror or e}") from None
    if not data:
        raise _Reject("empty_file", "file is empty (0 bytes)")
    size = None if st.image_size else jpeg_copy_size(data)
    if size is not None and size[0] * size[1] > st.max_pixels:
        size = None  # decode_rgb rejects it with the standard message
    copied = size is not None
    frame_w = rec.width if rec.width > 0 else 0
    frame_h = rec.height if rec.height > 0 else 0
    orient = None
    if size is not None:
        encoded, fmt, (height, width) = data, "jpeg", size
    else:
        try:
            pixels = decode_rgb(data, max_pixels=st.max_pixels)
        except ImageError as e:
            kind = next((k for text, k in _IMAGE_ERROR_KINDS if text in e.problem), "decode_error")
            raise _Reject(kind, e.problem) from None
        dh, dw = pixels.shape[:2]
        if not frame_w or not frame_h:  # no size in the manifest: the decoded image is the frame
            frame_w, frame_h = dw, dh
        elif (dw, dh) == (frame_h, frame_w) and dw != dh:
            o = _orientation(data)
            orient = o if o in _ORIENT else None
        if st.image_size is not None:
            th, tw = st.image_size
            if (dh, dw) != (th, tw):
                pixels = np.asarray(Image.fromarray(pixels).resize((tw, th), Image.Resampling.BILINEAR))
        height, width = pixels.shape[:2]
        lossless = data[:3] != b"\xff\xd8\xff"
        fmt = "png" if lossless else "jpeg"
        encoded = encode_png(pixels) if lossless else encode_jpeg(pixels, quality=JPEG_QUALITY)
    if not frame_w or not frame_h:
        frame_w, frame_h = width, height

    content = ExampleContent(
        encoded=encoded,
        image_format=fmt,
        height=height,
        width=width,
        filename=rec.path,
        source_id=rec.image_id,
        sha256=st.shas[idx],
    )
    counted: list[str] = []
    if st.task == "classification":
        if rec.class_id is None:
            raise _Reject("missing_label", "image has no class label")
        name = st.classes.get(rec.class_id)
        if name is None:
            raise _Reject("unknown_class", f"class id {rec.class_id} is not in the label map")
        content.class_label, content.class_text = rec.class_id, name
        counted.append(name)
    else:
        _objects(st, rec, content, frame_w, frame_h, orient, quarantine, counted)
    return encode_example(content), counted, copied


def _objects(
    st: _State,
    rec: ImageRecord,
    content: ExampleContent,
    frame_w: int,
    frame_h: int,
    orient: int | None,
    quarantine: list[dict[str, Any]],
    counted: list[str],
) -> None:
    """Fills boxes, labels, masks (and the class map) of a detection/segmentation record."""
    height, width = content.height, content.width
    point = _ORIENT[orient][1] if orient else None
    kept: list[tuple[ObjectAnnotation, list[float], np.ndarray | None]] = []

    def drop(o: ObjectAnnotation, kind: str, reason: str) -> None:
        ann = o.annotation_id or f"object {rec.objects.index(o)}"
        quarantine.append(dict(file=rec.path, kind=kind, reason=reason, image_id=rec.image_id, annotation_id=ann))

    want_masks = st.task == "segmentation" or any(o.segmentation is not None for o in rec.objects)
    for o in rec.objects:
        if o.class_id not in st.classes:
            drop(o, "unknown_class", f"class id {o.class_id} is not in the label map")
            continue
        x, y, w, h = o.bbox
        x0, y0, x1, y1 = x / frame_w, y / frame_h, (x + w) / frame_w, (y + h) / frame_h
        if point is not None:
            (ax, ay), (bx, by) = point(x0, y0), point(x1, y1)
            x0, x1, y0, y1 = min(ax, bx), max(ax, bx), min(ay, by), max(ay, by)
        x0, x1 = min(max(x0, 0.0), 1.0), min(max(x1, 0.0), 1.0)
        y0, y1 = min(max(y0, 0.0), 1.0), min(max(y1, 0.0), 1.0)
        if x1 <= x0 or y1 <= y0:
            drop(o, "degenerate_box", f"box {o.bbox} has no area inside the {frame_w}x{frame_h} image")
            continue
        mask = None
        if want_masks:
            try:
                if o.segmentation is not None:
                    m = decode_segmentation(o.segmentation, frame_h, frame_w).astype(np.uint8)
                else:  # a box-only object among masked ones: its box is its mask
                    m = np.zeros((frame_h, frame_w), np.uint8)
                    m[int(y) : math.ceil(y + h), int(x) : math.ceil(x + w)] = 1
            except (ValueError, KeyError, TypeError, IndexError) as e:
                drop(o, "bad_mask", f"segmentation cannot be decoded: {e}")
                continue
            if orient:
                m = np.asarray(Image.fromarray(m).transpose(_ORIENT[orient][0]))
            mask = _resize_mask(m, height, width)
        kept.append((o, [y0, x0, y1, x1], mask))

    scale = (height * width) / float(frame_h * frame_w)
    content.boxes = [b for _, b, _ in kept]
    content.labels = [o.class_id for o, _, _ in kept]
    content.texts = [st.classes[o.class_id] for o, _, _ in kept]
    content.is_crowd = [o.is_crowd for o, _, _ in kept]
    content.area = [(o.area if o.area > 0 else o.bbox[2] * o.bbox[3]) * scale for o, _, _ in kept]
    counted.extend(st.classes[o.class_id] for o, _, _ in kept if not o.is_crowd)
    masks = [m for _, _, m in kept if m is not None]
    if want_masks:
        content.masks_png = [encode_png(m) for m in masks]
    if st.task == "segmentation":
        if any(o.class_id > 255 for o, _, _ in kept):
            raise _Reject("class_id_over_255", "segmentation class maps are 8-bit; class ids above 255 cannot be stored")
        seg = np.zeros((height, width), np.uint8)
        # large objects first, so small objects on top of them stay visible
        for (o, _, _), m in sorted(zip(kept, masks, strict=True), key=lambda t: -int(t[1].sum())):
            seg[m > 0] = o.class_id
        content.segmentation_png = encode_png(seg)


def _write_record(writer: TFRecordWriter, record: bytes) -> None:
    writer.write(record)


def _write_shard(task: _ShardTask) -> _ShardResult:
    """Writes one shard (in a worker); bad images are quarantined, I/O errors propagate."""
    st = _STATE
    assert st is not None, "worker state not initialised"
    res = _ShardResult(task.split, task.file)
    final = Path(st.out_dir) / task.file
    with atomic_path(final) as tmp:
        writer = TFRecordWriter(tmp, gzip_compress=st.gzip)
        try:
            _fill(st, task, writer, res)
        finally:
            writer.close()
    res.sha256, res.bytes = writer.sha256, writer.bytes
    return res


def _fill(st: _State, task: _ShardTask, writer: TFRecordWriter, res: _ShardResult) -> None:
    left = Counter(idx for idx, _ in task.items)  # oversampled images: build once, write each copy
    cache: dict[int, tuple[bytes, list[str], bool] | None] = {}
    for idx, _copy in task.items:
        if idx in cache:
            built = cache[idx]
        else:
            built = _build_or_quarantine(st, idx, res.quarantine)
            if left[idx] > 1:
                cache[idx] = built
        left[idx] -= 1
        if not left[idx]:
            cache.pop(idx, None)
        if built is None:
            continue
        data, counted, copied = built
        _write_record(writer, data)
        res.records += 1
        res.images.add(idx)
        res.class_counts.update(counted)
        if copied:
            res.copied += 1
        else:
            res.reencoded += 1


def _build_or_quarantine(st: _State, idx: int, quarantine: list[dict[str, Any]]) -> tuple[bytes, list[str], bool] | None:
    rec = st.images[idx]
    try:
        return _build(st, idx, quarantine)
    except _Reject as r:
        quarantine.append(dict(file=rec.path, kind=r.kind, reason=r.reason, image_id=rec.image_id))
    except Exception as e:  # a bug or an exotic file must not sink the other images
        quarantine.append(dict(file=rec.path, kind="transform_error", reason=f"{type(e).__name__}: {e}", image_id=rec.image_id))
    return None


# --------------------------------------------------------------------------- driver


def _clean(out: Path) -> None:
    """Removes what a previous (maybe killed) run left: the index first, then shards and temporaries."""
    with contextlib.suppress(FileNotFoundError):
        (out / EXAMPLES_INDEX).unlink()
    for f in out.iterdir():
        if f.is_file() and (_SHARD_RE.match(f.name) or (f.name.startswith(".") and f.name.endswith(".tmp"))):
            f.unlink()


def _workers(requested: int, tasks: int) -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(requested or cores, tasks))


def _run_tasks(tasks: list[_ShardTask], state: _State, workers: int) -> Iterator[_ShardResult]:
    log = get_logger(STAGE)
    if workers <= 1:
        global _STATE
        previous, _STATE = _STATE, state
        try:
            yield from progress((_write_shard(t) for t in tasks), len(tasks), "writing shards", log)
        finally:
            _STATE = previous
        return
    # fork starts workers in milliseconds; after TensorFlow was imported in this process forking is unsafe
    ctx = mp.get_context("spawn" if "tensorflow" in sys.modules or sys.platform != "linux" else "fork")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(state,)) as pool:
        futures: list[Future[_ShardResult]] = [pool.submit(_write_shard, t) for t in tasks]
        try:
            yield from progress(_completed(futures), len(futures), "writing shards", log)
        except BaseException:
            for f in futures:
                f.cancel()
            raise


def _completed(futures: list[Future[_ShardResult]]) -> Iterator[_ShardResult]:
    pending = set(futures)
    while pending:
        done, pending = wait(pending, return_when=FIRST_EXCEPTION)
        for f in done:
            yield f.result()  # re-raises a worker's error


def _check_label_maps(manifest: Manifest, label_map: LabelMap) -> None:
    for cid, name in manifest.label_map.classes.items():
        if label_map.classes.get(cid) != name:
            raise DataError(
                f"label map version {label_map.version} gives id {cid} to {label_map.classes.get(cid)!r}, the manifest's label map to {name!r}"
            )


def write_examples(
    manifest: Manifest,
    examples_dir: str | os.PathLike[str],
    options: TransformSpec | None = None,
    label_map: LabelMap | None = None,
    max_pixels: int = MAX_PIXELS,
    shard_runner: Callable[[list[_ShardTask], _State, int], Iterable[_ShardResult]] | None = None,
) -> TransformResult:
    """Writes a manifest's images as sharded TFRecords with ``examples.json`` (no lineage).

    Args:
        manifest: the validated manifest.
        examples_dir: output directory (previous shards and index there are replaced).
        options: split fractions, resize, shard size, GZIP, balancing, workers.
        label_map: the label map to record (default: the manifest's); it must
            agree with the manifest's on every id the manifest uses.
        max_pixels: largest width x height decoded (decompression-bomb guard).
        shard_runner: writes the planned shards and returns their results
            (default: a local process pool; :func:`components.transform.beam.beam_shard_runner`
            writes the same shards on Apache Beam).

    Returns:
        The index, the quarantine report and counts.

    Raises:
        DataError: the label map disagrees with the manifest's.
        OSError: the output cannot be written (nothing finished-looking is left behind).
    """
    start = time.monotonic()
    opts = options or TransformSpec.model_validate({})
    lm = label_map or manifest.label_map
    _check_label_maps(manifest, lm)
    log = get_logger(STAGE)
    out = Path(examples_dir)
    out.mkdir(parents=True, exist_ok=True)
    _clean(out)

    images = list(manifest.images)
    shas = [r.sha256.lower() if r.sha256 else _file_sha(manifest, r) for r in images]
    by_split: dict[str, list[int]] = {s: [] for s in SPLITS}
    for i, r in enumerate(images):
        preset = normalise_split(r.split)
        if r.split and preset is None:
            log.warning("%s: unknown preset split %r; using the content-hash split", r.path, r.split)
        by_split[preset or split_for(shas[i], opts.split)].append(i)
    sizes = [_size(manifest.root, r) for r in images]

    tasks: list[_ShardTask] = []
    for split, idxs in by_split.items():
        copies = _copies([images[i] for i in idxs], manifest.task) if (split == "train" and opts.balance_classes) else [1] * len(idxs)
        items = [(i, c) for i, n in zip(idxs, copies, strict=True) for c in range(n)]
        # hash order: deterministic and class-mixed; copies of one image spread over shards
        items.sort(key=lambda it: shas[it[0]] if it[1] == 0 else hashlib.sha256(f"{shas[it[0]]}:{it[1]}".encode()).hexdigest())
        tasks += _plan(split, items, sizes, opts.shard_size_mb * (1 << 20), opts.gzip)

    state = _State(
        root=manifest.root,
        task=manifest.task,
        images=images,
        shas=shas,
        classes=dict(lm.classes),
        image_size=tuple(opts.image_size) if opts.image_size else None,  # type: ignore[arg-type]
        gzip=opts.gzip,
        max_pixels=max_pixels,
        out_dir=str(out),
    )
    workers = _workers(opts.num_workers, len(tasks))
    log.info("%d images -> %d shards with %d worker(s)", len(images), len(tasks), workers)
    ordered = sorted(tasks, key=lambda t: -t.est_bytes)  # largest first balances the pool
    results = list((shard_runner or _run_tasks)(ordered, state, workers))

    report = QuarantineReport(stage=STAGE, total=len(images))
    seen: set[tuple[str, str, str]] = set()
    splits: dict[str, SplitInfo] = {}
    copied = reencoded = 0
    for split in SPLITS:
        mine = sorted((r for r in results if r.split == split), key=lambda r: r.file)
        counts: Counter[str] = Counter()
        distinct: set[int] = set()
        for res in mine:
            counts.update(res.class_counts)
            distinct |= res.images
            copied += res.copied
            reencoded += res.reencoded
        splits[split] = SplitInfo(
            records=sum(r.records for r in mine),
            images=len(distinct),
            class_counts={name: counts.get(name, 0) for name in lm.names},
            shards=[ShardInfo(file=r.file, records=r.records, sha256=r.sha256, bytes=r.bytes) for r in mine],
        )
    for res in sorted(results, key=lambda x: x.file):
        for q in res.quarantine:
            key = (q["file"], q["kind"], str(q.get("annotation_id")))
            if key not in seen:  # an oversampled image appears in several shards
                seen.add(key)
                report.add(**q)

    index = ExamplesIndex(
        task=manifest.task,
        gzip=opts.gzip,
        label_map=lm,
        image_size=opts.image_size,
        splits=splits,
        quarantined=report.rejected_images,
        extra={
            "split_fractions": opts.split.model_dump(),
            "balance_classes": opts.balance_classes,
            "copied": copied,
            "reencoded": reencoded,
        },
    )
    index.save(out)  # last: its presence means every shard it lists is complete
    seconds = time.monotonic() - start
    log.info(
        "wrote %s records (%d copied, %d re-encoded), %d quarantined in %.1fs",
        ", ".join(f"{s}={n}" for s, n in index.counts.items()),
        copied,
        reencoded,
        len(report),
        seconds,
    )
    return TransformResult(examples_dir=out, index=index, quarantine=report, copied=copied, reencoded=reencoded, seconds=seconds)


def _size(root: str, record: ImageRecord) -> int:
    try:
        return os.stat(record.file(root)).st_size
    except OSError:
        return 0


def _file_sha(manifest: Manifest, record: ImageRecord) -> str:
    try:
        return sha256_file(manifest.image_path(record))
    except OSError:
        return hashlib.sha256(record.image_id.encode()).hexdigest()  # missing: quarantined later anyway


# --------------------------------------------------------------------------- step


def _file_in(path: str | os.PathLike[str], name: str) -> Path:
    p = Path(path)
    return p / name if p.is_dir() else p


def run(
    ctx: StepContext,
    manifest_path: str | os.PathLike[str],
    label_map_path: str | os.PathLike[str],
    examples_dir: str | os.PathLike[str],
    quarantine_dir: str | os.PathLike[str],
    uris: TransformUris | Mapping[str, str] | None = None,
) -> TransformResult:
    """Runs the transform step: TFRecords, quarantine report, lineage.

    Args:
        ctx: the step context (spec, run id, lineage store).
        manifest_path: the validated ``manifest.json`` (or its directory).
        label_map_path: ``label_map.json`` (or its directory).
        examples_dir: where shards and ``examples.json`` go.
        quarantine_dir: where ``quarantine.json``/``.csv`` go.
        uris: artifact URIs for lineage (keys as :class:`TransformUris`); by
            default the local paths.

    Returns:
        What was written.

    Raises:
        DataError: the label map disagrees with the manifest.
        QuarantineLimitError: more images were rejected than ``data.max_quarantine_*``
            allow (the report is written first).
    """
    manifest = Manifest.load(_file_in(manifest_path, "manifest.json"))
    label_map = LabelMap.load(_file_in(label_map_path, "label_map.json"))
    u = _uris(uris, manifest_path, label_map_path, examples_dir, quarantine_dir)
    spec = ctx.spec
    runner = None
    if spec.runtime.beam is not None:
        from .beam import beam_shard_runner

        runner = beam_shard_runner(spec.runtime.beam)
    result = write_examples(
        manifest, examples_dir, spec.transform, label_map=label_map, max_pixels=spec.validation.max_pixels, shard_runner=runner
    )
    report_path = result.quarantine.write(quarantine_dir)
    result.quarantine.check_limit(spec.data.max_quarantine_fraction, spec.data.max_quarantine_count, str(report_path))

    inputs: dict[str, ArtifactRef | None] = {
        "manifest": ctx.input_artifact(u.manifest, "Manifest"),
        "label_map": ctx.input_artifact(u.label_map, "LabelMap", {"version": label_map.version, "num_classes": label_map.num_classes}),
        "statistics": ctx.input_artifact(u.statistics, "ExampleStatistics") if u.statistics else None,
        "schema": ctx.input_artifact(u.schema, "Schema") if u.schema else None,
    }
    meta = result.metadata()
    ctx.record(
        inputs=inputs,
        outputs={
            "examples": NewArtifact(
                "Examples", u.examples, {**meta, "pipeline": spec.name, "images": sum(s.images for s in result.index.splits.values())}
            ),
            "quarantine": NewArtifact(
                "QuarantineReport", u.quarantine, {"stage": STAGE, "items": len(result.quarantine), "total": result.quarantine.total}
            ),
        },
        properties={"copied": result.copied, "reencoded": result.reencoded, "seconds": round(result.seconds, 3)},
    )
    return result


def _uris(
    uris: TransformUris | Mapping[str, str] | None,
    manifest_path: str | os.PathLike[str],
    label_map_path: str | os.PathLike[str],
    examples_dir: str | os.PathLike[str],
    quarantine_dir: str | os.PathLike[str],
) -> TransformUris:
    if isinstance(uris, TransformUris):
        return uris
    given: dict[str, str] = dict(uris or {})
    return TransformUris(
        manifest=given.get("manifest", os.fspath(manifest_path)),
        label_map=given.get("label_map", os.fspath(label_map_path)),
        examples=given.get("examples", os.fspath(examples_dir)),
        quarantine=given.get("quarantine", os.fspath(quarantine_dir)),
        statistics=given.get("statistics"),
        schema=given.get("schema"),
    )

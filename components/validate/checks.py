"""Image and annotation checks TFDV cannot do: one pass over the files, per-item problems.

Every image is probed (header only) before anything is decoded: a header that
claims more than ``max_pixels`` is reported as ``decompression_bomb`` and never
decoded. Images that pass are fully decoded (a truncated file only shows up
then) on a thread pool: Pillow and numpy release the GIL while decoding and
reducing, and a thread pool is safe in a process that has already imported
TensorFlow, where forking worker processes is not.

Nothing here imports TensorFlow; the findings become anomalies in
:mod:`components.validate.core`.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from components.core.errors import ImageError
from components.core.images import ImageInfo, decode_rgb, probe_image
from components.core.io import sha256_bytes
from components.core.labelmap import LabelMap
from components.core.log import progress
from components.core.manifest import ImageRecord, Manifest

__all__ = [
    "BOX_TOLERANCE_PX",
    "ImageFacts",
    "Problem",
    "duplicate_problems",
    "inspect_images",
    "object_annotation_id",
    "object_problems",
]

BOX_TOLERANCE_PX = 0.5
"""How far (pixels) a box may reach past the image border before ``box_outside_image`` (rounding of exported boxes)."""

_SPLIT_ORDER = {"train": 0, "validation": 1, "val": 1, "test": 2}
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float64)  # ITU-R BT.601


@dataclass(frozen=True)
class Problem:
    """One problem found in an image or one of its objects.

    Attributes:
        kind: the anomaly kind (``undecodable``, ``box_outside_image``...).
        message: a sentence a person understands.
        annotation_id: the object's id when the problem concerns one object, not the image.
    """

    kind: str
    message: str
    annotation_id: str | None = None


@dataclass
class ImageFacts:
    """What reading one image file established.

    Attributes:
        index: position of the record in the manifest.
        image_id: the record's id.
        file: the image file's path.
        file_size: bytes on disk, None when the file is missing.
        info: the header, None when it could not be read.
        sha256: hex sha256 of the bytes read (None when not read).
        brightness: mean luminance 0..255 of the decoded pixels (None when not decoded).
        contrast: standard deviation of the luminance (None when not decoded).
        problems: image-level problems found.
    """

    index: int
    image_id: str
    file: str
    file_size: int | None = None
    info: ImageInfo | None = None
    sha256: str | None = None
    brightness: float | None = None
    contrast: float | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def decoded(self) -> bool:
        """Whether the pixels were decoded successfully."""
        return self.brightness is not None


def _describe_mode(info: ImageInfo) -> str | None:
    mode = info.mode
    if mode == "RGB":
        return None
    names = {
        "L": "grayscale",
        "1": "1-bit black and white",
        "P": "palette",
        "RGBA": "RGB with alpha (composited on white)",
        "LA": "grayscale with alpha (composited on white)",
        "CMYK": "CMYK",
        "YCbCr": "YCbCr",
        "I;16": "16-bit grayscale",
        "I;16B": "16-bit grayscale",
        "I;16L": "16-bit grayscale",
        "I": "32-bit integer",
        "F": "32-bit float",
    }
    name = names.get(mode, "not 8-bit RGB")
    label = mode if name == mode else f"{mode} ({name})"
    return f"colour mode {label} will be converted to 8-bit RGB"


def _inspect_one(index: int, record: ImageRecord, path: Path, max_pixels: int) -> ImageFacts:
    facts = ImageFacts(index=index, image_id=record.image_id, file=str(path))
    try:
        facts.file_size = path.stat().st_size
    except OSError:
        facts.problems.append(Problem("unreadable", "file not found"))
        return facts
    try:
        # The header is read with no size limit so the decompression-bomb decision is ours
        # (and named as such); nothing is decoded here.
        info = probe_image(path, max_pixels=sys.maxsize)
    except ImageError as e:
        facts.problems.append(Problem("unreadable", e.problem))
        return facts
    facts.info = info
    if info.width * info.height > max_pixels:
        facts.problems.append(
            Problem(
                "decompression_bomb",
                f"header claims {info.width}x{info.height} pixels, over the limit of {max_pixels}; rejected without decoding",
            )
        )
        return facts
    mode_msg = _describe_mode(info)
    if mode_msg:
        facts.problems.append(Problem("color_mode", mode_msg))
    if info.exif_orientation not in (None, 1):
        facts.problems.append(Problem("exif_orientation", f"EXIF orientation {info.exif_orientation}: pixels will be rotated upright"))
    if not info.extension_matches:
        facts.problems.append(
            Problem("extension_mismatch", f"content is {info.format} but the file is named {path.suffix or '(no extension)'}")
        )
    try:
        data = path.read_bytes()
    except OSError as e:
        facts.problems.append(Problem("unreadable", f"cannot read file: {e.strerror}"))
        return facts
    facts.sha256 = sha256_bytes(data)
    try:
        pixels = decode_rgb(data, max_pixels=max_pixels)
    except ImageError as e:
        facts.problems.append(Problem("undecodable", e.problem))
        return facts
    luma = pixels.reshape(-1, 3) @ _LUMA
    facts.brightness = float(luma.mean()) if luma.size else 0.0
    facts.contrast = float(luma.std()) if luma.size else 0.0
    return facts


def _workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def inspect_images(
    manifest: Manifest, max_pixels: int, logger: logging.Logger | None = None, workers: int | None = None
) -> list[ImageFacts]:
    """Probes and decodes every image of a manifest, in manifest order.

    Args:
        manifest: the dataset.
        max_pixels: header size limit; larger images are ``decompression_bomb`` and not decoded.
        logger: a ``logging.Logger`` for progress lines.
        workers: decoding threads (default: one per available core).

    Returns:
        One :class:`ImageFacts` per record.
    """
    jobs = [(i, r, manifest.image_path(r)) for i, r in enumerate(manifest.images)]
    n = workers or _workers()
    with ThreadPoolExecutor(max_workers=n, thread_name_prefix="validate-decode") as pool:
        results = pool.map(lambda job: _inspect_one(job[0], job[1], job[2], max_pixels), jobs)
        return list(progress(results, total=len(jobs), description="checking images", logger=logger))


def object_annotation_id(record: ImageRecord, index: int) -> str:
    """The id an object is reported under: its own id, else ``<image_id>#<index>``.

    Args:
        record: the image.
        index: the object's position in ``record.objects``.

    Returns:
        The id.
    """
    obj = record.objects[index]
    return obj.annotation_id if obj.annotation_id else f"{record.image_id}#{index}"


def object_problems(record: ImageRecord, facts: ImageFacts, label_map: LabelMap, task: str) -> list[Problem]:
    """Label and box problems of one image's annotations.

    Boxes are checked against the size in the file's header when it could be
    read, else against the size the manifest records.

    Args:
        record: the image.
        facts: what reading its file established.
        label_map: the authoritative label map.
        task: the manifest's task.

    Returns:
        Problems; those about one object carry its annotation id.
    """
    out: list[Problem] = []
    if task == "classification" and record.class_id is not None and record.class_id not in label_map.classes:
        out.append(Problem("unknown_label", f"image class id {record.class_id} is not in the label map (version {label_map.version})"))
    width, height = (facts.info.width, facts.info.height) if facts.info is not None else (record.width, record.height)
    for i, obj in enumerate(record.objects):
        aid = object_annotation_id(record, i)
        if obj.class_id not in label_map.classes:
            out.append(Problem("unknown_label", f"class id {obj.class_id} is not in the label map (version {label_map.version})", aid))
        x, y, w, h = obj.bbox
        if not all(math.isfinite(v) for v in obj.bbox):
            out.append(Problem("nan_coordinate", f"box {obj.bbox} has a non-finite coordinate", aid))
            continue
        if w <= 0 or h <= 0:
            out.append(Problem("degenerate_box", f"box {obj.bbox} has zero or negative size", aid))
            continue
        t = BOX_TOLERANCE_PX
        if width > 0 and height > 0 and (x < -t or y < -t or x + w > width + t or y + h > height + t):
            out.append(Problem("box_outside_image", f"box {obj.bbox} reaches outside the {width}x{height} image", aid))
    return out


def _split_rank(split: str) -> tuple[int, str]:
    return (_SPLIT_ORDER.get(split, 3), split)


def duplicate_problems(records: Sequence[ImageRecord], facts: Sequence[ImageFacts]) -> dict[int, Problem]:
    """Finds the same bytes in more than one preset split (leakage between train and evaluation).

    The copy in the first split (train, then validation, then test, then any
    other split by name) is kept; every other copy is a problem.

    Args:
        records: the manifest's images.
        facts: their facts, same order.

    Returns:
        Record index -> problem, for the copies that are not kept.
    """
    by_hash: dict[str, list[int]] = defaultdict(list)
    for i, (r, f) in enumerate(zip(records, facts, strict=True)):
        digest = f.sha256 or r.sha256
        if r.split and digest:
            by_hash[digest].append(i)
    out: dict[int, Problem] = {}
    for indices in by_hash.values():
        splits = {records[i].split for i in indices}
        if len(splits) < 2:
            continue
        keep = min(indices, key=lambda i: (_split_rank(records[i].split or ""), i))
        for i in indices:
            if i == keep or records[i].split == records[keep].split:
                continue
            out[i] = Problem(
                "duplicate_across_splits",
                f"same bytes as {records[keep].path} in split {records[keep].split!r} (this copy is in {records[i].split!r})",
            )
    return out

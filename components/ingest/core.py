"""Ingest: read any supported annotation format into one canonical manifest and a versioned label map.

Formats: COCO JSON, Pascal VOC XML directories, YOLO (``data.yaml``),
SageMaker Ground Truth manifests and class-per-folder sets. Each format's
reader only parses; this module then checks every entry the same way:

* the image file name must stay inside the dataset root (no ``../``, no
  absolute path elsewhere), exist, and pass :func:`~components.core.images.probe_file`
  (not empty, an image, not a decompression bomb); its size comes from the header;
* image ids and image paths must be unique (later uses are quarantined);
* a box must be finite, with positive width and height, and inside the image.
  An overshoot of at most :data:`BOX_TOLERANCE_PX` (1 px) on any side is
  clipped: it is what rounding and 1-based tools produce (a VOC ``xmin`` of 0).
  A box further outside is quarantined, not clipped: it means a wrong image,
  wrong size or swapped axes, and clipping would hide that;
* masks (COCO polygons or RLE) must be well formed and RLE sizes match the image;
* classes: with a fixed label map (``data.label_map``) a class not in it is
  quarantined; otherwise the previous label map is extended, so existing ids
  never change and new classes get new ids and a new version.

Every rejected image or annotation lands in the :class:`~components.core.quarantine.QuarantineReport`
with its file and reason; only an annotation file that cannot be read at all
raises :class:`~components.core.errors.AnnotationError`.
"""

from __future__ import annotations

import json
import math
import os
import stat
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from components.core.bulk import bulk_build
from components.core.errors import AnnotationError, ImageError
from components.core.images import MAX_PIXELS, probe_file
from components.core.io import display_name, sha256_file
from components.core.labelmap import LabelMap
from components.core.lineage import ArtifactRef, NewArtifact
from components.core.log import get_logger, progress
from components.core.manifest import ImageRecord, Manifest, ObjectAnnotation, Task
from components.core.masks import mask_area, mask_to_bbox, rle_decode
from components.core.quarantine import QuarantineReport
from components.core.spec import DataSpec
from components.core.step import ArtifactUris, StepContext

from ._raw import PathEscapeError, RawDataset, RawImage, RawObject, is_finite, join_inside
from .coco import read_coco
from .folders import read_folders
from .groundtruth import read_groundtruth
from .voc import read_voc
from .yolo import read_yolo

__all__ = ["BOX_TOLERANCE_PX", "STAGE", "IngestResult", "check_box", "label_map_from_artifact", "read_source", "run"]

STAGE = "ingest"
"""The quarantine stage and component name."""

BOX_TOLERANCE_PX = 1.0
"""A box overshooting the image by at most this many pixels is clipped; further out it is quarantined."""

_READERS: dict[str, Callable[[DataSpec, Task, QuarantineReport], RawDataset]] = {
    "coco": read_coco,
    "voc": read_voc,
    "yolo": read_yolo,
    "groundtruth": read_groundtruth,
    "folders": read_folders,
}

Problem = tuple[str, str]


@dataclass
class IngestResult:
    """What ingest produced.

    Attributes:
        manifest: the canonical manifest of the accepted images.
        label_map: the label map (also embedded in the manifest).
        quarantine: every rejected image or annotation, with reasons.
        artifacts: the recorded lineage artifacts by output name (filled by :func:`run`).
    """

    manifest: Manifest
    label_map: LabelMap
    quarantine: QuarantineReport
    artifacts: dict[str, ArtifactRef] = field(default_factory=dict)


# -- checks ---------------------------------------------------------------------------------------


def check_box(bbox: list[float], width: int, height: int) -> tuple[list[float], None] | tuple[None, Problem]:
    """Checks a box against its image and clips a small overshoot.

    Args:
        bbox: ``[x, y, w, h]`` in absolute pixels.
        width: image width.
        height: image height.

    Returns:
        ``(clipped box, None)`` when usable, else ``(None, (kind, reason))`` with
        kind ``invalid_coordinates`` (NaN, inf, negative size or position),
        ``zero_size_box`` or ``box_outside_image``.
    """
    x, y, w, h = bbox
    tol = BOX_TOLERANCE_PX
    if (
        x >= 0.0
        and y >= 0.0
        and w > 0.0
        and h > 0.0
        and x + w <= width + tol
        and y + h <= height + tol
        and x < width
        and y < height
        and (w < math.inf and h < math.inf)
    ):  # the common case, decided without formatting anything (NaN fails every comparison)
        return [x, y, min(float(width), x + w) - x, min(float(height), y + h) - y], None
    shown = "[" + ", ".join(f"{v:g}" for v in bbox) + "]"
    if not is_finite(bbox):
        return None, ("invalid_coordinates", f"box {shown} has a NaN or infinite coordinate")
    if w < 0 or h < 0:
        return None, ("invalid_coordinates", f"box {shown} has a negative width or height")
    if w == 0 or h == 0:
        return None, ("zero_size_box", f"box {shown} has zero width or height")
    if x < -tol or y < -tol:
        return None, ("invalid_coordinates", f"box {shown} has a negative position, more than {tol:g} px before the image")
    if x + w > width + tol or y + h > height + tol:
        return None, ("box_outside_image", f"box {shown} reaches past the {width}x{height} image by more than {tol:g} px")
    x0, y0 = max(0.0, x), max(0.0, y)
    x1, y1 = min(float(width), x + w), min(float(height), y + h)
    if x1 - x0 <= 0 or y1 - y0 <= 0:
        return None, ("zero_size_box", f"box {shown} has no area inside the {width}x{height} image")
    return [x0, y0, x1 - x0, y1 - y0], None


def _polygon_area(poly: list[float]) -> float:
    xs, ys = poly[0::2], poly[1::2]
    s = sum(xs[i] * ys[(i + 1) % len(xs)] - xs[(i + 1) % len(xs)] * ys[i] for i in range(len(xs)))
    return abs(s) / 2.0


class _Rejected(Exception):
    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


_NUMBER_TYPES = frozenset({int, float})
_FLOAT = frozenset({float})


def _check_segmentation(
    seg: Any, width: int, height: int, need_area: bool = True, need_extent: bool = True
) -> tuple[list[list[float]] | dict[str, Any], float | None, list[float] | None]:
    """Returns (segmentation, area, extent box); area and extent of polygons are None when not needed. Raises _Rejected."""
    if isinstance(seg, dict):
        size, counts = seg.get("size"), seg.get("counts")
        if not isinstance(size, list) or size != [height, width]:
            raise _Rejected("invalid_mask", f"RLE size {size!r} does not match the {width}x{height} image (expected [{height}, {width}])")
        if not isinstance(counts, str) and not (
            isinstance(counts, list) and all(isinstance(c, int) and not isinstance(c, bool) for c in counts)
        ):
            raise _Rejected("invalid_mask", "RLE counts must be a compressed string or a list of integers")
        try:
            mask = rle_decode({"size": size, "counts": counts})
        except (ValueError, TypeError, IndexError) as e:
            raise _Rejected("invalid_mask", f"RLE cannot be decoded: {e}") from None
        if not mask.any():
            raise _Rejected("invalid_mask", "RLE mask is empty")
        return {"size": [height, width], "counts": counts}, float(mask_area(mask)), mask_to_bbox(mask)
    if isinstance(seg, list) and seg:
        polys: list[list[float]] = []
        for poly in seg:
            # type(), not isinstance: a JSON true is an int to isinstance
            if type(poly) is not list or len(poly) < 6 or len(poly) % 2:
                raise _Rejected("invalid_mask", "a polygon must be a list of at least 3 finite x, y pairs")
            if _FLOAT.issuperset(map(type, poly)):
                values = poly  # parsed decimals are floats already, and the parsed list is ingest's own
            elif _NUMBER_TYPES.issuperset(map(type, poly)):
                values = list(map(float, poly))
            else:
                raise _Rejected("invalid_mask", "a polygon must be a list of at least 3 finite x, y pairs")
            # a finite sum means every value is finite (a NaN or an infinity makes the sum one); only an overflowing sum needs the long check
            if not math.isfinite(sum(values)) and not all(map(math.isfinite, values)):
                raise _Rejected("invalid_mask", "a polygon must be a list of at least 3 finite x, y pairs")
            polys.append(values)
        extent = None
        if need_extent:
            xs = [v for p in polys for v in p[0::2]]
            ys = [v for p in polys for v in p[1::2]]
            extent = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
        return polys, (sum(_polygon_area(p) for p in polys) if need_area else None), extent
    raise _Rejected("invalid_mask", f"segmentation must be polygons or an RLE object, got {type(seg).__name__}")


def _object(obj: RawObject, width: int, height: int, label_map: LabelMap, class_ids: Mapping[str, int]) -> ObjectAnnotation:
    """The canonical object; raises _Rejected."""
    if obj.problem is not None:
        raise _Rejected(*obj.problem)
    name = obj.class_name
    class_id = class_ids.get(name) if name else None
    if class_id is None:
        raise _Rejected("unknown_class", f"class {name!r} is not in the label map ({', '.join(label_map.names)})")
    bbox = obj.bbox
    seg = obj.segmentation
    if obj.normalized:
        if bbox is not None:
            cx, cy, w, h = bbox
            bbox = [(cx - w / 2) * width, (cy - h / 2) * height, w * width, h * height]
        if isinstance(seg, list):
            seg = [[v * (width if i % 2 == 0 else height) for i, v in enumerate(p)] for p in seg]
    seg_area: float | None = None
    given_area = obj.area if obj.area is not None and math.isfinite(obj.area) and obj.area >= 0 else None
    if seg is not None:
        seg, seg_area, extent = _check_segmentation(seg, width, height, need_area=given_area is None, need_extent=bbox is None)
        if bbox is None:
            bbox = extent
    if bbox is None:
        raise _Rejected("invalid_annotation", "object has neither a box nor a mask")
    clipped, problem = check_box(bbox, width, height)
    if problem is not None or clipped is None:
        raise _Rejected(*(problem or ("invalid_coordinates", "unusable box")))
    area = given_area
    if area is None:
        area = seg_area if seg_area is not None else clipped[2] * clipped[3]
    # every field is checked and of its type by now (clipped floats, float area, float polygons or a checked RLE)
    return ObjectAnnotation.from_checked(class_id, clipped, float(area), bool(obj.is_crowd), seg, obj.annotation_id, obj.attributes)


# -- label map -------------------------------------------------------------------------------------


def _label_map(raw: RawDataset, data: DataSpec, previous: LabelMap | None) -> tuple[LabelMap, bool]:
    """Returns (label map, whether it is fixed)."""
    if data.label_map:
        fixed = LabelMap.load(data.label_map)
        if previous is not None:
            moved = [
                f"{n!r}: {previous.id_of(n)} -> {fixed.id_of(n)}"
                for n in previous.names
                if n in fixed and fixed.id_of(n) != previous.id_of(n)
            ]
            if moved:
                get_logger(STAGE).warning("label map %s renumbers classes of the previous label map: %s", data.label_map, "; ".join(moved))
        return fixed, True
    seen: list[str] = list(raw.class_names)
    for img in raw.images:
        if img.class_name:
            seen.append(img.class_name)
        seen.extend(o.class_name for o in img.objects if o.class_name)
    names = [n.strip() for n in dict.fromkeys(seen) if n and n.strip()]
    if previous is not None:
        return previous.extended(names), False
    return LabelMap.from_names(names), False


# -- assembly --------------------------------------------------------------------------------------


@dataclass
class _Rules:
    """What every image entry is held to, beside the label map."""

    max_pixels: int
    allow_outside_root: bool
    real_root: str
    class_ids: dict[str, int] = field(default_factory=dict)
    """class name -> id of the label map, built once (ingest asks once per object)."""
    real_folders: dict[str, str] = field(default_factory=dict)
    """folder -> its real path, worked out once per folder."""


SHARED_STORAGE_HINT = "set data.allow_outside_root: true for a dataset on shared storage that relies on links"


IO_THREADS = 4
"""Threads reading and hashing image files ahead of the checks when files are slow to read (hashing and reads run outside the GIL)."""

SLOW_READ_S = 50e-6
"""Mean seconds per file (read, hash, header) above which reader threads are used.

Small files on a local disk take 25 us each, and threads contending for the
GIL would slow them down 1.6x; 640x480 JPEGs (150 KB) take 130 us and two
threads read them twice as fast, as they do files on network storage.
"""

_CHUNK = 256
_WINDOW = 2 * IO_THREADS


@dataclass(slots=True)
class _Placed:
    """An image entry whose path and ids passed the checks that need no file."""

    path: str
    rel: str
    image_id: str


@dataclass(slots=True)
class _Refused:
    """An image entry refused before its file was read; reported in entry order."""

    file: str
    kind: str
    reason: str
    image_id: str | None


_MISSING = object()


def _read_files(placed: list[_Placed | _Refused], max_pixels: int) -> list[Any]:
    """Per entry: ``(info, sha256)``, an ImageError, ``_MISSING`` or None (refused before reading). Runs in a reader thread."""
    out: list[Any] = []
    for p in placed:
        if not isinstance(p, _Placed):
            out.append(None)
        elif not os.path.isfile(p.path):
            out.append(_MISSING)
        else:
            try:
                out.append(probe_file(p.path, max_pixels=max_pixels))
            except ImageError as e:
                out.append(e)
    return out


def _assemble(raw: RawDataset, label_map: LabelMap, rules: _Rules, q: QuarantineReport) -> list[ImageRecord]:
    """Checks every entry and builds its record, in entry order.

    Entries are placed (path and id checks) in this thread, which owns the
    duplicate tables, a chunk at a time; their files are read and hashed by
    :func:`_read_ahead`. Every quarantine item is added in entry order.
    """
    log = get_logger(STAGE)
    records: list[ImageRecord] = []
    ids: dict[str, str] = {}
    paths: dict[str, str] = {}
    root = os.path.abspath(raw.root)
    for img, placed, found in progress(_read_ahead(raw.images, root, rules, ids, paths), len(raw.images), "ingest: reading images", log):
        q.total += 1
        if isinstance(placed, _Refused):
            q.add(placed.file, placed.kind, placed.reason, image_id=placed.image_id)
        else:
            record = _image(img, root, placed, found, label_map, rules, q)
            if record is not None:
                records.append(record)
        img.objects = []  # the record holds the checked objects now: per-image state stays bounded
    return records


def _read_ahead(
    images: list[RawImage], root: str, rules: _Rules, ids: dict[str, str], paths: dict[str, str]
) -> Iterator[tuple[RawImage, _Placed | _Refused, Any]]:
    """``(entry, placement, what its file gave)`` in entry order.

    The first chunk's files are read here, and timed. When they took more
    than :data:`SLOW_READ_S` each (large images, network storage, a bucket
    mounted with FUSE), the rest are read by :data:`IO_THREADS` reader threads
    a few chunks ahead of the caller's checks; otherwise here, one chunk at a
    time. Which way only changes the speed, never the result.
    """
    entries = iter(images)

    def place(chunk: list[RawImage]) -> list[_Placed | _Refused]:
        return [_place(img, root, rules, ids, paths) for img in chunk]

    chunk = list(islice(entries, _CHUNK))
    placed = place(chunk)
    started = time.perf_counter()
    found = _read_files(placed, rules.max_pixels)
    per_file = (time.perf_counter() - started) / max(1, sum(isinstance(p, _Placed) for p in placed))
    yield from zip(chunk, placed, found, strict=True)
    if per_file <= SLOW_READ_S:
        while chunk := list(islice(entries, _CHUNK)):
            placed = place(chunk)
            yield from zip(chunk, placed, _read_files(placed, rules.max_pixels), strict=True)
        return
    get_logger(STAGE).info("image files take %.0f us each to read and hash: reading them with %d threads", per_file * 1e6, IO_THREADS)
    window: deque[tuple[list[RawImage], list[_Placed | _Refused], Future[list[Any]]]] = deque()
    with ThreadPoolExecutor(max_workers=IO_THREADS, thread_name_prefix="ingest-read") as pool:

        def submit() -> None:
            chunk = list(islice(entries, _CHUNK))
            if chunk:
                placed = place(chunk)
                window.append((chunk, placed, pool.submit(_read_files, placed, rules.max_pixels)))

        for _ in range(_WINDOW):
            submit()
        while window:
            chunk, placed, future = window.popleft()
            submit()
            yield from zip(chunk, placed, future.result(), strict=True)


def _place(img: RawImage, root: str, rules: _Rules, ids: dict[str, str], paths: dict[str, str]) -> _Placed | _Refused:
    """The checks of an entry that need no file: a parse problem, the path, unique ids and paths."""
    if img.problem is not None:
        kind, reason = img.problem
        return _Refused(img.origin, kind, f"{img.file_name or img.origin}: {reason}", img.image_id)
    try:
        path, rel = _locate(img, root, rules)
    except _Rejected as r:
        link = "link" in r.reason and "outside the dataset root" in r.reason
        return _Refused(os.path.join(root, img.file_name) if link else img.origin, r.kind, r.reason, img.image_id or img.file_name)
    image_id = img.image_id if img.image_id is not None else rel
    if image_id in ids:
        return _Refused(
            img.origin, "duplicate_image_id", f"image id {image_id!r} ({rel}) appears again; the first ({ids[image_id]}) is kept", image_id
        )
    if rel in paths:
        return _Refused(
            img.origin, "duplicate_image", f"{rel} is listed again (as {image_id!r}); the first entry ({paths[rel]!r}) is kept", image_id
        )
    ids[image_id] = rel
    paths[rel] = image_id
    return _Placed(path, rel, image_id)


def _inside(real: str, real_root: str) -> bool:
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


def _realpath(path: str, rules: _Rules) -> str:
    """``os.path.realpath``, with each folder's real path worked out once (a folder of 100,000 images: once)."""
    try:
        is_link = stat.S_ISLNK(os.lstat(path).st_mode)
    except OSError:
        is_link = True  # missing or unreadable: let realpath say what it is
    if is_link:
        return os.path.realpath(path)
    folder, base = os.path.split(path)
    real_folder = rules.real_folders.get(folder)
    if real_folder is None:
        real_folder = rules.real_folders[folder] = os.path.realpath(folder)
    return os.path.join(real_folder, base)


def _locate(img: RawImage, root: str, rules: _Rules) -> tuple[str, str]:
    """The image's path and its name relative to the (absolute) root; raises _Rejected (path_escapes_root)."""
    try:
        path, rel = join_inside(root, img.file_name)
    except PathEscapeError as e:
        name = img.file_name.replace("\\", "/")
        absolute = os.path.isabs(name) and ".." not in name.split("/")
        if absolute and rules.allow_outside_root:
            return os.path.normpath(name), os.path.normpath(name)
        hint = " (an absolute path outside the root is read only with data.allow_outside_root: true)" if absolute else ""
        raise _Rejected("path_escapes_root", f"{e}{hint}") from None
    if not rules.allow_outside_root:
        real = _realpath(path, rules)
        if not _inside(real, rules.real_root):
            raise _Rejected(
                "path_escapes_root", f"{rel} is a link to {real}, outside the dataset root {rules.real_root}; {SHARED_STORAGE_HINT}"
            )
    return path, rel


def _frame(img: RawImage, rel: str, info: Any) -> tuple[int, int, str | None]:
    """The pixel frame the annotations were drawn on: ``(width, height, "stored" | "displayed" | None)``.

    An EXIF orientation other than 1 shows the stored pixels rotated or
    flipped. The declared size tells which frame the annotation tool used when
    the two differ (orientations 5-8 on a non-square image); otherwise a
    format's convention (YOLO: the displayed image, as Ultralytics reads it)
    decides, and without one the image is ambiguous (raises _Rejected).
    """
    w, h, orient = info.width, info.height, info.exif_orientation
    if orient in (None, 1) or not img.objects:
        return w, h, None
    shown = (h, w) if orient in (5, 6, 7, 8) else (w, h)
    declared = img.source.get("declared_size")
    if declared is not None and shown != (w, h):
        if list(declared) == [w, h]:
            return w, h, "stored"
        if list(declared) == list(shown):
            return shown[0], shown[1], "displayed"
    convention = img.source.get("annotation_frame")
    if convention == "displayed":
        return shown[0], shown[1], "displayed"
    stated = f"declared size {declared[0]}x{declared[1]}" if declared else "no declared size"
    raise _Rejected(
        "ambiguous_orientation",
        f"{rel}: EXIF orientation {orient} displays the stored {w}x{h} pixels as {shown[0]}x{shown[1]}; with {stated} "
        "it cannot be told whether the annotations were drawn on the stored or the displayed pixels, so the boxes "
        "would land in the wrong place half the time (strip the EXIF orientation or re-save the image upright)",
    )


def _image(
    img: RawImage, root: str, placed: _Placed, found: Any, label_map: LabelMap, rules: _Rules, q: QuarantineReport
) -> ImageRecord | None:
    """The record of a placed entry from what its file gave; None (quarantined) when the file or the frame fails."""
    path, rel, image_id = placed.path, placed.rel, placed.image_id

    def reject(file: str, kind: str, reason: str, image_id: str | None) -> None:
        q.add(file, kind, reason, image_id=image_id)

    if found is _MISSING:
        reject(path, "missing_file", f"image file {rel} not found under {root}", image_id)
        return None
    if isinstance(found, ImageError):
        reject(path, "unreadable_image", found.problem, image_id)
        return None
    info, digest = found
    try:
        width, height, frame = _frame(img, rel, info)
    except _Rejected as r:
        reject(path, r.kind, r.reason, image_id)
        return None

    class_id: int | None = None
    if img.class_name is not None:
        class_id = label_map.id_of(img.class_name)
        if class_id is None:
            reject(
                img.origin,
                "unknown_class",
                f"{rel}: class {img.class_name!r} is not in the label map ({', '.join(label_map.names)})",
                image_id,
            )
            return None
    objects: list[ObjectAnnotation] = []
    for obj in img.objects:
        try:
            objects.append(_object(obj, width, height, label_map, rules.class_ids))
        except _Rejected as r:
            q.add(
                img.origin, r.kind, f"{rel}, annotation {obj.annotation_id}: {r.reason}", image_id=image_id, annotation_id=obj.annotation_id
            )
    source = dict(img.source)
    source.pop("annotation_frame", None)
    if source.get("declared_size") == [width, height]:
        del source["declared_size"]  # kept only when the annotation file disagrees with the header
    if frame is not None:
        source["exif_orientation"] = info.exif_orientation
        source["annotation_frame"] = frame
    shown = display_name(rel)
    return ImageRecord(
        image_id=display_name(image_id),
        path=shown,
        raw_path=os.fsencode(rel).hex() if shown != rel else None,
        sha256=digest,
        width=width,
        height=height,
        objects=objects,
        class_id=class_id,
        split=img.split,
        source=source,
    )


def _under(path: str, dirs: Sequence[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip(os.sep) + os.sep) for d in dirs)


def _drop_outputs(raw: RawDataset, fmt: str, exclude: Sequence[str | os.PathLike[str]]) -> None:
    """Removes entries under output folders (a run root inside the dataset): outputs are never inputs."""
    root = os.path.normpath(os.path.abspath(raw.root))
    # only folders strictly inside the dataset: a run root above it holds the dataset itself
    dirs = [d for d in (os.path.normpath(os.path.abspath(x)) for x in exclude) if d != root and _under(d, [root])]
    if not dirs:
        return
    raw.images = [i for i in raw.images if not _under(os.path.normpath(os.path.join(root, i.file_name)), dirs)]
    if fmt == "folders":  # a folder's classes are the folders that hold images
        kept = {i.class_name for i in raw.images}
        raw.class_names = [n for n in raw.class_names if n in kept]


def _displayable(raw: RawDataset) -> None:
    """Class names and ids that are not UTF-8 (folder or file names) become their escaped form."""
    shown: dict[str, str] = {}  # a class name is escaped once, not once per object

    def class_name(name: str) -> str:
        found = shown.get(name)
        if found is None:
            found = shown[name] = display_name(name)
        return found

    raw.class_names = [display_name(n) for n in raw.class_names]
    for img in raw.images:
        if img.class_name is not None:
            img.class_name = class_name(img.class_name)
        if img.image_id is not None:
            img.image_id = display_name(img.image_id)
        for o in img.objects:
            if o.class_name is not None:
                o.class_name = class_name(o.class_name)


def read_source(
    data: DataSpec,
    task: Task,
    previous: LabelMap | None = None,
    *,
    max_pixels: int = MAX_PIXELS,
    exclude: Sequence[str | os.PathLike[str]] = (),
) -> IngestResult:
    """Reads an annotated dataset into a canonical manifest and label map; writes nothing.

    Args:
        data: where the data is and how it is annotated (``data.format`` picks the reader).
        task: classification, detection or segmentation.
        previous: the label map of the previous dataset version, extended so
            that its ids never change (ignored for ids when ``data.label_map``
            names a fixed label map; a conflict is logged).
        max_pixels: largest width x height of an image header (decompression-bomb guard).
        exclude: output folders (run root, registry) that may lie inside the
            dataset; nothing under them is read as input.

    Returns:
        The manifest, its label map and the quarantine report (``total`` = image
        entries seen). The quarantine limit is not checked here: :func:`run`
        checks it after writing the report.

    Raises:
        AnnotationError: the annotation file (or label map file) cannot be read at all.
    """
    fmt = data.format or "folders"
    reader = _READERS.get(fmt)
    if reader is None:
        raise AnnotationError(data.source, f"unsupported annotation format {fmt!r}")
    q = QuarantineReport(stage=STAGE)
    with bulk_build():  # one object per annotation, all kept: no cycle collections walking them over and over
        raw = reader(data, task, q)
        _drop_outputs(raw, fmt, exclude)
        _displayable(raw)
        label_map, _ = _label_map(raw, data, previous)
        rules = _Rules(
            max_pixels=max_pixels,
            allow_outside_root=data.allow_outside_root,
            real_root=os.path.realpath(raw.root),
            class_ids={name: cid for cid, name in reversed(list(label_map.classes.items()))},  # the first id of a name wins, as id_of
        )
        records = _assemble(raw, label_map, rules, q)
        manifest = Manifest(
            task=task,
            root=os.path.abspath(raw.root),
            label_map=label_map,
            images=records,
            format=fmt,
            source=data.source if "://" in data.source else os.path.abspath(data.source),
        )
    get_logger(STAGE).info(
        "%s: %d images accepted, %d items quarantined (%s); label map v%d with %d classes",
        data.source,
        len(records),
        len(q),
        ", ".join(f"{k}={v}" for k, v in sorted(q.by_kind().items())) or "none",
        label_map.version,
        label_map.num_classes,
    )
    return IngestResult(manifest=manifest, label_map=label_map, quarantine=q)


# -- the step ----------------------------------------------------------------------------------------


def _local_path(uri: str) -> Path:
    """A local path for an artifact URI (KFP mounts gs://, s3://, minio:// under /gcs, /s3, /minio)."""
    for scheme, mount in (("gs://", "/gcs/"), ("s3://", "/s3/"), ("minio://", "/minio/")):
        if uri.startswith(scheme):
            return Path(mount + uri[len(scheme) :])
    return Path(uri.removeprefix("file://"))


def label_map_from_artifact(ref: ArtifactRef) -> LabelMap:
    """Reads the label map a LabelMap artifact stands for.

    The ``classes`` property ingest records holds the whole map, so no file
    access is needed; otherwise ``label_map.json`` under the artifact's URI is read.

    Args:
        ref: the artifact.

    Returns:
        The label map.

    Raises:
        AnnotationError: neither the property nor the file can be read. A
            previous label map that cannot be read fails the step instead of
            silently renumbering classes.
    """
    classes = ref.properties.get("classes")
    if isinstance(classes, str):
        try:
            parsed = json.loads(classes)
            return LabelMap(classes={int(k): str(v) for k, v in parsed.items()}, version=int(ref.properties.get("version", 1)))
        except (ValueError, TypeError, AttributeError):
            pass
    path = _local_path(ref.uri)
    return LabelMap.load(path / "label_map.json" if path.is_dir() else path)


def _output_dirs(spec: Any) -> list[str]:
    """Folders cvpipe writes to that may sit inside a dataset (the default ``runs/`` beside a spec in it)."""
    dirs = [spec.runtime.root]
    if spec.registry.backend == "local":
        dirs.append(spec.registry.root)
    if spec.monitoring is not None:
        dirs += [d for d in (spec.monitoring.prediction_log, spec.monitoring.labels) if d]
    url = spec.runtime.metadata.url
    if url.startswith("sqlite:///") and os.path.isabs(url.removeprefix("sqlite:///")):
        dirs.append(url.removeprefix("sqlite:///"))  # the store file itself
    return [d for d in dirs if "://" not in d]


def run(
    ctx: StepContext, manifest_dir: Path, label_map_dir: Path, quarantine_dir: Path, uris: ArtifactUris | Mapping[str, str] | None = None
) -> IngestResult:
    """The ingest step: read ``ctx.spec.data``, write the outputs, record lineage, check the quarantine limit.

    The previous label map is the newest LabelMap artifact of this pipeline in
    the lineage store, extended so ids stay stable; a fixed ``data.label_map``
    file replaces it.

    Args:
        ctx: the step context.
        manifest_dir: output directory for ``manifest.json``.
        label_map_dir: output directory for ``label_map.json``.
        quarantine_dir: output directory for ``quarantine.json`` and ``quarantine.csv``.
        uris: artifact URIs by output name (``manifest``, ``label_map``,
            ``quarantine``) to record; a missing one records the local directory.

    Returns:
        The result, with the recorded artifacts.

    Raises:
        AnnotationError: the source cannot be read at all.
        QuarantineLimitError: more images were rejected than ``data`` allows
            (after the report is written and lineage recorded).
    """
    spec, data = ctx.spec, ctx.spec.data
    u = ArtifactUris.of(uris)
    previous_ref = ctx.store.latest("LabelMap", pipeline=spec.name)
    previous = label_map_from_artifact(previous_ref) if previous_ref is not None else None
    result = read_source(data, spec.task, previous, max_pixels=spec.validation.max_pixels, exclude=_output_dirs(spec))
    if data.label_map:
        previous_ref = ctx.input_artifact(
            os.path.abspath(data.label_map),
            "LabelMap",
            {"version": result.label_map.version, "num_classes": result.label_map.num_classes, "fixed": True},
        )

    with bulk_build():  # writing walks every record: no cycle collections over them meanwhile
        manifest_file = result.manifest.save(Path(manifest_dir) / "manifest.json")
        result.label_map.save(Path(label_map_dir) / "label_map.json")
        report_path = result.quarantine.write(quarantine_dir)

    source_uri = data.source if "://" in data.source else os.path.abspath(data.source)
    source_ref = ctx.input_artifact(source_uri, "RawDataset", {"format": data.format or ""})
    lm = result.label_map
    q = result.quarantine
    result.artifacts = ctx.record(
        inputs={"source": source_ref, "previous_label_map": previous_ref},
        outputs={
            "manifest": NewArtifact(
                "Manifest",
                u.get("manifest", str(manifest_dir)),
                {
                    "images": len(result.manifest),
                    "sha256": sha256_file(manifest_file),
                    "format": result.manifest.format,
                    "task": spec.task,
                    "pipeline": spec.name,
                    "label_map_version": lm.version,
                },
            ),
            "label_map": NewArtifact(
                "LabelMap",
                u.get("label_map", str(label_map_dir)),
                {
                    "version": lm.version,
                    "num_classes": lm.num_classes,
                    "pipeline": spec.name,
                    "classes": json.dumps({str(k): v for k, v in sorted(lm.classes.items())}),
                },
            ),
            "quarantine": NewArtifact(
                "QuarantineReport",
                u.get("quarantine", str(quarantine_dir)),
                {"rejected": len(q), "rejected_images": q.rejected_images, "total": q.total, "stage": STAGE},
            ),
        },
        properties={"format": result.manifest.format, "images": len(result.manifest), "rejected": len(q)},
    )
    q.check_limit(data.max_quarantine_fraction, data.max_quarantine_count, str(report_path))
    return result

"""Record building: one manifest image becomes one serialised ``tf.train.Example``.

An already-RGB, upright, complete JPEG is copied byte for byte
(:func:`~components.transform.jpeg.jpeg_copy_size`); everything else is
decoded (:func:`~components.core.images.decode_rgb`: CMYK, gray, palette,
RGBA, 16-bit, EXIF rotation) and re-encoded (JPEG sources as JPEG, lossless
sources as PNG). With ``image_size`` every image is resized and masks follow.
Boxes and masks are in the pixel frame of the manifest's ``width x height``;
when the decoded image is that frame transposed, they are rotated with it.
Used by the local process pool and by the Beam path alike, so both write
identical records.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from components.core.errors import ImageError
from components.core.examples import ExampleContent, encode_example
from components.core.images import decode_rgb, encode_jpeg, encode_png
from components.core.manifest import ImageRecord, ObjectAnnotation, Task
from components.core.masks import decode_segmentation

from .jpeg import jpeg_copy_size

__all__ = ["JPEG_QUALITY", "STAGE", "Built", "BuiltRecord", "Reject", "WorkerState", "build_or_quarantine", "build_record"]

STAGE = "transform"
"""Stage name in quarantine reports and logger name suffix."""
JPEG_QUALITY = 95
"""Quality of re-encoded JPEGs."""

BuiltRecord = tuple[bytes, list[str], bool]
"""A built record: serialised example, class names counted, whether the image bytes were copied."""
Built = BuiltRecord | None
"""A built record, or None when its image was quarantined."""


class Reject(Exception):
    """An image that cannot become a record: ``kind`` and ``reason`` go to the quarantine report."""

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
class WorkerState:
    """What building records needs: the manifest's images and the output options.

    Workers get it before the pool starts (inherited on fork, pickled on spawn).
    """

    root: str
    task: Task
    images: list[ImageRecord]
    shas: list[str]
    classes: dict[int, str]
    image_size: tuple[int, int] | None
    gzip: bool
    max_pixels: int
    out_dir: str


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


def build_record(st: WorkerState, idx: int, quarantine: list[dict[str, Any]]) -> BuiltRecord:
    """Builds one record.

    Args:
        st: the images and options.
        idx: index of the image in ``st.images``.
        quarantine: single bad objects (dropped from the record) are appended here.

    Returns:
        The serialised example, the class names it counts, whether its bytes were copied.

    Raises:
        Reject: the image cannot become a record.
    """
    rec = st.images[idx]
    path = rec.file(st.root)  # an absolute rec.path wins, as in Manifest.image_path
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise Reject("missing_file", "file not found") from None
    except OSError as e:
        raise Reject("unreadable_file", f"cannot read file: {e.strerror or e}") from None
    if not data:
        raise Reject("empty_file", "file is empty (0 bytes)")
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
            raise Reject(kind, e.problem) from None
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
            raise Reject("missing_label", "image has no class label")
        name = st.classes.get(rec.class_id)
        if name is None:
            raise Reject("unknown_class", f"class id {rec.class_id} is not in the label map")
        content.class_label, content.class_text = rec.class_id, name
        counted.append(name)
    else:
        _objects(st, rec, content, frame_w, frame_h, orient, quarantine, counted)
    return encode_example(content), counted, copied


def _objects(
    st: WorkerState,
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
            raise Reject("class_id_over_255", "segmentation class maps are 8-bit; class ids above 255 cannot be stored")
        seg = np.zeros((height, width), np.uint8)
        # large objects first, so small objects on top of them stay visible
        for (o, _, _), m in sorted(zip(kept, masks, strict=True), key=lambda t: -int(t[1].sum())):
            seg[m > 0] = o.class_id
        content.segmentation_png = encode_png(seg)


def build_or_quarantine(st: WorkerState, idx: int, quarantine: list[dict[str, Any]]) -> Built:
    """Builds one record, or quarantines its image (never raises for a bad image).

    Args:
        st: the images and options.
        idx: index of the image in ``st.images``.
        quarantine: the image's rejection or dropped objects are appended here.

    Returns:
        What :func:`build_record` returns, or None when the image was quarantined.
    """
    rec = st.images[idx]
    try:
        return build_record(st, idx, quarantine)
    except Reject as r:
        quarantine.append(dict(file=rec.path, kind=r.kind, reason=r.reason, image_id=rec.image_id))
    except Exception as e:  # a bug or an exotic file must not sink the other images
        quarantine.append(dict(file=rec.path, kind="transform_error", reason=f"{type(e).__name__}: {e}", image_id=rec.image_id))
    return None

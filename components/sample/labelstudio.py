"""Label Studio round trip: tasks with pre-annotations out, a validated JSON export back in.

Tasks (Label Studio's import format) carry the image URL and cvpipe's keys in
``data`` (``image_sha256``, ``request_id``, ``labelling_batch_id``, ``stratum``,
``width``, ``height``), and the model's prediction as a pre-annotation
(``predictions[0].result``). Region results follow Label Studio's format:
``from_name`` / ``to_name`` name the tags of :func:`label_config`, ``type`` the
tag kind, ``original_width`` / ``original_height`` the image size and
``value`` the region in **percent** of the image:

* detection: ``rectanglelabels`` ``{x, y, width, height, rotation, rectanglelabels: [name]}``;
* classification: ``choices`` ``{choices: [name]}``;
* segmentation: ``polygonlabels`` ``{points: [[x, y], ...], polygonlabels: [name]}``
  out; ``polygonlabels`` or ``brushlabels`` (``{format: "rle", rle: [...]}``,
  Label Studio's brush RLE of the RGBA mask) back in.

:func:`import_export` validates a JSON export of completed tasks like any
ingest: known classes, boxes inside the image (1 px tolerance, clipped), no
degenerate or rotated boxes, well-formed polygons and masks, image size as
sampled. A task with any bad region is quarantined whole (each bad region with
its reason, plus the image) so a partial label never counts as complete
ground truth; tasks without a completed annotation are reported as unlabelled.
Accepted labels become :class:`~components.predict.logs.LabelRow` rows and a
:class:`~components.core.manifest.Manifest` of the labelled images (and a COCO
file ingest reads), ready to join the training data.

:class:`LabelStudioClient` talks to Label Studio's API (task import, JSON
export) with retries; the token comes from an environment variable only.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

import numpy as np

from components.core.errors import AnnotationError, LabellingError
from components.core.io import atomic_write_json, read_json
from components.core.labelmap import LabelMap
from components.core.log import get_logger
from components.core.logged_image import logged_image_problem
from components.core.manifest import ImageRecord, Manifest, ObjectAnnotation, Task
from components.core.masks import mask_area, mask_to_bbox, rle_encode
from components.core.quarantine import QuarantineReport
from components.predict.logs import LabelRow, ground_truth_json, utc

from .core import LabellingBatch, SampledItem

__all__ = [
    "FROM_NAMES",
    "LabelImport",
    "LabelStudioClient",
    "brush_decode",
    "brush_encode",
    "default_image_url",
    "import_export",
    "label_config",
    "prediction_regions",
    "read_export",
    "to_tasks",
]

STAGE = "import_labels"
BOX_TOLERANCE_PX = 1.0
FROM_NAMES = {"rectanglelabels": "label", "choices": "choice", "polygonlabels": "polygon", "brushlabels": "brush"}
"""``from_name`` of each result type (the tag names of :func:`label_config`)."""
TO_NAME = "image"
_IGNORED_TYPES = {"textarea", "relation", "rating", "pairwise"}  # comments and relations carry no ground truth
_COLOURS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45", "#fabed4", "#469990"]


# -- tasks out ------------------------------------------------------------------------------------


def default_image_url(uri: str) -> str:
    """The URL Label Studio loads an image from.

    URLs (``http(s)://``, ``gs://``, ``s3://``) are kept. A local path becomes a
    Label Studio local-files URL, ``/data/local-files/?d=<path>``, relative to
    ``$LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT`` when the path is under it.

    Args:
        uri: the logged ``image_uri``.

    Returns:
        The URL.
    """
    if "://" in uri:
        return uri
    path = Path(uri)
    root = os.environ.get("LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT")
    if root:
        try:
            path = path.resolve().relative_to(Path(root).resolve())
        except ValueError:
            pass
    return "/data/local-files/?d=" + quote(path.as_posix().lstrip("/"))


def label_config(task: Task, label_map: LabelMap) -> str:
    """The Label Studio labelling config (XML) matching the tasks' result names.

    Args:
        task: classification, detection or segmentation.
        label_map: the classes.

    Returns:
        The XML.
    """
    names = label_map.names

    def labels(tag: str) -> str:
        return "\n".join(
            f"    <{tag} value={quoteattr(n)} background={quoteattr(_COLOURS[i % len(_COLOURS)])}/>" for i, n in enumerate(names)
        )

    head = f'<View>\n  <Image name="{TO_NAME}" value="$image" zoom="true"/>\n'
    if task == "classification":
        choices = "\n".join(f"    <Choice value={quoteattr(n)}/>" for n in names)
        body = f'  <Choices name="choice" toName="{TO_NAME}" choice="single" showInline="true">\n{choices}\n  </Choices>\n'
    elif task == "detection":
        body = f'  <RectangleLabels name="label" toName="{TO_NAME}">\n{labels("Label")}\n  </RectangleLabels>\n'
    else:
        body = (
            f'  <PolygonLabels name="polygon" toName="{TO_NAME}" strokeWidth="2" pointSize="small">\n{labels("Label")}\n  </PolygonLabels>\n'
            f'  <BrushLabels name="brush" toName="{TO_NAME}">\n{labels("Label")}\n  </BrushLabels>\n'
        )
    return head + body + "</View>\n"


def prediction_regions(item: SampledItem, task: Task, min_score: float = 0.0) -> list[dict[str, Any]]:
    """The regions of a logged prediction, in pixels.

    Args:
        item: the sampled item.
        task: the model's task.
        min_score: detections below this score are left out.

    Returns:
        ``{"class_id", "score", "bbox": [x, y, w, h], "polygons"?}`` dicts; classification: the top class only.
    """
    pred = json.loads(item.predictions or "{}")
    ids = pred.get("class_ids") or []
    scores = pred.get("scores") or []
    boxes = pred.get("boxes") or []
    polygons = pred.get("polygons") or []
    out: list[dict[str, Any]] = []
    for k, cid in enumerate(ids):
        score = float(scores[k]) if k < len(scores) else 0.0
        if task == "detection" and score < min_score:
            continue
        region: dict[str, Any] = {"class_id": int(cid), "score": score, "bbox": [float(v) for v in boxes[k]] if k < len(boxes) else None}
        if task == "segmentation" and k < len(polygons):
            region["polygons"] = polygons[k]
        if region["bbox"] is None:
            region["bbox"] = [0.0, 0.0, float(item.width), float(item.height)]
        out.append(region)
        if task == "classification":
            break
    return out


def _pct(v: float, size: int) -> float:
    return round(100.0 * float(v) / size, 4) if size else 0.0


def region_results(
    regions: Sequence[dict[str, Any]], task: Task, label_map: LabelMap, width: int, height: int, prefix: str = "r"
) -> list[dict[str, Any]]:
    """Label Studio result items of regions in pixels.

    Args:
        regions: ``{"class_id", "bbox", "polygons"?, "score"?, "mask"?}`` dicts (``mask``:
            an ``HxW`` bool array written as a brush region).
        task: the task.
        label_map: the classes.
        width: image width.
        height: image height.
        prefix: prefix of the result ids.

    Returns:
        The result items.
    """
    results: list[dict[str, Any]] = []
    for n, region in enumerate(regions):
        name = label_map.name_of(int(region["class_id"]))
        if name is None:
            continue
        base: dict[str, Any] = {"to_name": TO_NAME, "original_width": width, "original_height": height, "image_rotation": 0}
        if "score" in region:
            base["score"] = round(float(region["score"]), 5)
        if task == "classification":
            results.append({"id": f"{prefix}{n}", "from_name": "choice", "type": "choices", **base, "value": {"choices": [name]}})
        elif task == "detection":
            x, y, w, h = region["bbox"]
            value = {"x": _pct(x, width), "y": _pct(y, height), "width": _pct(w, width), "height": _pct(h, height), "rotation": 0}
            results.append(
                {
                    "id": f"{prefix}{n}",
                    "from_name": "label",
                    "type": "rectanglelabels",
                    **base,
                    "value": {**value, "rectanglelabels": [name]},
                }
            )
        elif region.get("mask") is not None:
            rle = brush_encode(np.asarray(region["mask"], bool))
            results.append(
                {
                    "id": f"{prefix}{n}",
                    "from_name": "brush",
                    "type": "brushlabels",
                    **base,
                    "value": {"format": "rle", "rle": rle, "brushlabels": [name]},
                }
            )
        else:
            for k, poly in enumerate(region.get("polygons") or []):
                points = [[_pct(poly[i], width), _pct(poly[i + 1], height)] for i in range(0, len(poly) - 1, 2)]
                results.append(
                    {
                        "id": f"{prefix}{n}_{k}",
                        "from_name": "polygon",
                        "type": "polygonlabels",
                        **base,
                        "value": {"points": points, "closed": True, "polygonlabels": [name]},
                    }
                )
    return results


def task_data(item: SampledItem, batch: LabellingBatch, image_url: Callable[[str], str] | None = None) -> dict[str, Any]:
    """The ``data`` of an item's Label Studio task."""
    return {
        "image": (image_url or default_image_url)(item.image_uri),
        "image_uri": item.image_uri,
        "image_sha256": item.image_sha256,
        "request_id": item.request_id,
        "labelling_batch_id": batch.batch_id,
        "stratum": item.stratum,
        "width": item.width,
        "height": item.height,
        "model": f"{item.model_name}:{item.model_version}",
        "predicted_class_name": item.predicted_class_name,
        "top_score": round(item.top_score, 5),
    }


def to_tasks(batch: LabellingBatch, image_url: Callable[[str], str] | None = None, min_score: float = 0.3) -> list[dict[str, Any]]:
    """Label Studio tasks of a batch with the model's predictions as pre-annotations.

    Args:
        batch: the batch.
        image_url: maps an image uri to the URL Label Studio loads (default: :func:`default_image_url`).
        min_score: detections below this score are not pre-annotated.

    Returns:
        The tasks (``POST /api/projects/{id}/import`` body, or a file to import in the UI).
    """
    tasks = []
    for item in batch.items:
        regions = prediction_regions(item, batch.task, min_score=min_score)
        results = region_results(regions, batch.task, batch.label_map, item.width, item.height, prefix="p")
        tasks.append(
            {
                "data": task_data(item, batch, image_url),
                "predictions": [
                    {"model_version": f"{item.model_name}:{item.model_version}", "score": round(item.top_score, 5), "result": results}
                ],
            }
        )
    return tasks


# -- brush masks (Label Studio's RLE) ---------------------------------------------------------------


def _bits_to_int(bits: np.ndarray, pos: int, n: int) -> tuple[int, int]:
    if pos + n > bits.size:
        raise ValueError("brush RLE ends early")
    v = 0
    for b in bits[pos : pos + n]:
        v = (v << 1) | int(b)
    return v, pos + n


def brush_decode(rle: Sequence[int], width: int, height: int) -> np.ndarray:
    """Decodes Label Studio's brush RLE (as label-studio-converter writes it) to an ``HxW`` mask.

    The stream encodes the RGBA pixels of the mask image: a 32-bit value count,
    a 5-bit word size, four 4-bit run-length sizes, then runs (a 1 bit, a 2-bit size
    index, the length, one value) or literals (a 0 bit, size index, length, values).

    Args:
        rle: the ``value.rle`` bytes.
        width: image width.
        height: image height.

    Returns:
        Bool mask, True where the alpha channel is set.

    Raises:
        ValueError: the stream is malformed or not ``width x height x 4`` values.
    """
    data = np.asarray(list(rle), dtype=np.int64)
    if data.size == 0 or data.min() < 0 or data.max() > 255:
        raise ValueError("brush RLE must be a non-empty list of bytes")
    bits = np.unpackbits(data.astype(np.uint8))
    num, pos = _bits_to_int(bits, 0, 32)
    if num != width * height * 4:
        raise ValueError(f"brush RLE holds {num} values, expected {width * height * 4} for a {width}x{height} RGBA mask")
    word, pos = _bits_to_int(bits, pos, 5)
    word += 1
    sizes = []
    for _ in range(4):
        s, pos = _bits_to_int(bits, pos, 4)
        sizes.append(s + 1)
    out = np.zeros(num, np.uint8)
    i = 0
    while i < num:
        flag, pos = _bits_to_int(bits, pos, 1)
        idx, pos = _bits_to_int(bits, pos, 2)
        length, pos = _bits_to_int(bits, pos, sizes[idx])
        j = min(num, i + 1 + length)
        if flag:
            val, pos = _bits_to_int(bits, pos, word)
            out[i:j] = val
        else:
            for k in range(i, j):
                out[k], pos = _bits_to_int(bits, pos, word)
        i = j
    return out.reshape(height, width, 4)[:, :, 3] > 0


def brush_encode(mask: np.ndarray) -> list[int]:
    """Encodes an ``HxW`` mask as Label Studio brush RLE (RGBA, 255 where set), runs only.

    Args:
        mask: truthy where the region is.

    Returns:
        The ``value.rle`` bytes, decodable by :func:`brush_decode` and Label Studio.
    """
    flat = np.repeat(np.where(np.asarray(mask, bool).reshape(-1), 255, 0).astype(np.uint8), 4)
    sizes = [3, 4, 8, 16]
    bits: list[str] = [f"{flat.size:032b}", f"{8 - 1:05b}", *(f"{s - 1:04b}" for s in sizes)]
    change = np.flatnonzero(np.diff(flat.astype(np.int16))) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [flat.size]])
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        value = int(flat[s])
        remaining = e - s
        while remaining > 0:
            chunk = min(remaining, 1 << 16)
            idx = next(k for k, size in enumerate(sizes) if chunk - 1 < (1 << size))
            bits.append(f"1{idx:02b}{chunk - 1:0{sizes[idx]}b}{value:08b}")
            remaining -= chunk
    stream = "".join(bits)
    stream += "0" * (-len(stream) % 8)
    return [int(stream[i : i + 8], 2) for i in range(0, len(stream), 8)]


# -- export in ---------------------------------------------------------------------------------


@dataclass
class LabelImport:
    """Ground truth imported from a Label Studio export.

    Attributes:
        task: the task.
        labels: one :class:`LabelRow` per accepted image (for the prediction log).
        manifest: the labelled images with their objects or class (for training data).
        quarantine: rejected tasks and regions, with reasons.
        unlabelled: tasks without a completed annotation: ``{"image_sha256", "task_id", "reason"}``.
        other_batches: tasks of the export that belong to other labelling batches (not imported).
    """

    task: Task
    labels: list[LabelRow]
    manifest: Manifest
    quarantine: QuarantineReport
    unlabelled: list[dict[str, Any]] = field(default_factory=list)
    other_batches: int = 0

    def coco(self) -> dict[str, Any]:
        """The labelled images as COCO, ``file_name`` relative to ``manifest.root`` (ingest reads it with ``images: <root>``)."""
        images: list[dict[str, Any]] = []
        anns: list[dict[str, Any]] = []
        for n, r in enumerate(self.manifest.images, start=1):
            img: dict[str, Any] = {"id": n, "file_name": r.path, "width": r.width, "height": r.height, "sha256": r.sha256}
            if self.task == "classification" and r.class_id is not None:
                img["category_id"] = r.class_id
            images.append(img)
            for o in r.objects:
                ann: dict[str, Any] = {
                    "id": len(anns) + 1,
                    "image_id": n,
                    "category_id": o.class_id,
                    "bbox": o.bbox,
                    "area": o.area,
                    "iscrowd": 0,
                }
                if o.segmentation is not None:
                    ann["segmentation"] = o.segmentation
                anns.append(ann)
        categories = [{"id": cid, "name": name} for cid, name in sorted(self.manifest.label_map.classes.items())]
        return {"images": images, "annotations": anns, "categories": categories}

    def write(self, manifest_dir: str | os.PathLike[str], quarantine_dir: str | os.PathLike[str]) -> dict[str, Path]:
        """Writes ``manifest.json`` and ``labelled_coco.json``, the quarantine report and ``unlabelled.json``.

        Args:
            manifest_dir: directory of the manifest and COCO file.
            quarantine_dir: directory of the quarantine report and the unlabelled list.

        Returns:
            The files by name (``manifest``, ``coco``, ``quarantine``, ``unlabelled``).
        """
        md, qd = Path(manifest_dir), Path(quarantine_dir)
        return {
            "manifest": self.manifest.save(md / "manifest.json"),
            "coco": atomic_write_json(md / "labelled_coco.json", self.coco(), indent=None),
            "quarantine": self.quarantine.write(qd),
            "unlabelled": atomic_write_json(qd / "unlabelled.json", self.unlabelled),
        }


def read_export(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Reads a Label Studio JSON export (a list of tasks).

    Args:
        path: the file.

    Returns:
        The tasks.

    Raises:
        AnnotationError: not readable, not JSON, or not a list of tasks.
    """
    try:
        doc = read_json(path)
    except OSError as e:
        raise AnnotationError(str(path), f"cannot read the Label Studio export: {e.strerror or e}") from None
    except ValueError as e:
        raise AnnotationError(str(path), f"the Label Studio export is not valid JSON: {e}") from None
    if not isinstance(doc, list) or not all(isinstance(t, dict) for t in doc):
        raise AnnotationError(str(path), "a Label Studio JSON export is a list of task objects")
    return doc


def _when(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return utc(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        return None


def _pick_annotation(annotations: list[Any]) -> tuple[dict[str, Any] | None, str]:
    done = [a for a in annotations if isinstance(a, dict) and not a.get("was_cancelled")]
    if not done:
        return None, "annotation skipped (cancelled)" if annotations else "no annotation"
    gt = [a for a in done if a.get("ground_truth")]
    pool = gt or done
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return max(pool, key=lambda a: _when(a.get("updated_at")) or _when(a.get("created_at")) or epoch), ""


class _Bad(Exception):
    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


def _finite(values: Sequence[Any]) -> list[float]:
    out = []
    for v in values:
        if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(float(v)):
            raise _Bad("invalid_coordinates", f"coordinate {v!r} is not a finite number")
        out.append(float(v))
    return out


def _class_of(value: dict[str, Any], key: str, label_map: LabelMap) -> int:
    names = value.get(key)
    if not isinstance(names, list) or not names:
        raise _Bad("missing_label", f"region has no {key} class")
    if len(names) > 1:
        raise _Bad("ambiguous_label", f"region has {len(names)} classes {names!r}; one is expected")
    cid = label_map.id_of(str(names[0]))
    if cid is None:
        raise _Bad("unknown_class", f"class {names[0]!r} is not in the label map ({', '.join(label_map.names)})")
    return cid


def _check_bbox(bbox: list[float], width: int, height: int) -> list[float]:
    from components.ingest.core import check_box

    clipped, problem = check_box(bbox, width, height)
    if problem is not None or clipped is None:
        kind, reason = problem or ("invalid_coordinates", "unusable box")
        raise _Bad(kind, reason)
    return clipped


def _rectangle(value: dict[str, Any], width: int, height: int, label_map: LabelMap) -> ObjectAnnotation:
    cid = _class_of(value, "rectanglelabels", label_map)
    x, y, w, h = _finite([value.get(k) for k in ("x", "y", "width", "height")])
    rotation = value.get("rotation") or 0
    if not isinstance(rotation, int | float) or abs(float(rotation) % 360) > 1e-6:
        raise _Bad("rotated_box", f"box is rotated by {rotation} degrees; cvpipe boxes are axis-aligned")
    bbox = _check_bbox([x * width / 100, y * height / 100, w * width / 100, h * height / 100], width, height)
    return ObjectAnnotation(class_id=cid, bbox=bbox, area=bbox[2] * bbox[3])


def _polygon(value: dict[str, Any], width: int, height: int, label_map: LabelMap) -> ObjectAnnotation:
    cid = _class_of(value, "polygonlabels", label_map)
    points = value.get("points")
    if not isinstance(points, list) or len(points) < 3 or not all(isinstance(p, list | tuple) and len(p) == 2 for p in points):
        raise _Bad("invalid_mask", "a polygon needs at least 3 [x, y] points")
    xs = [v * width / 100 for v in _finite([p[0] for p in points])]
    ys = [v * height / 100 for v in _finite([p[1] for p in points])]
    tol = BOX_TOLERANCE_PX
    if min(xs) < -tol or min(ys) < -tol or max(xs) > width + tol or max(ys) > height + tol:
        raise _Bad("box_outside_image", f"polygon reaches outside the {width}x{height} image by more than {tol:g} px")
    xs = [min(max(v, 0.0), float(width)) for v in xs]
    ys = [min(max(v, 0.0), float(height)) for v in ys]
    area = abs(sum(xs[i] * ys[(i + 1) % len(xs)] - xs[(i + 1) % len(xs)] * ys[i] for i in range(len(xs)))) / 2
    if area <= 0:
        raise _Bad("zero_size_box", "polygon has no area")
    bbox = _check_bbox([min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)], width, height)
    poly = [round(v, 2) for xy in zip(xs, ys, strict=True) for v in xy]
    return ObjectAnnotation(class_id=cid, bbox=bbox, area=area, segmentation=[poly])


def _brush(value: dict[str, Any], width: int, height: int, label_map: LabelMap) -> ObjectAnnotation:
    cid = _class_of(value, "brushlabels", label_map)
    if value.get("format", "rle") != "rle" or not isinstance(value.get("rle"), list):
        raise _Bad("invalid_mask", "brush region must carry format 'rle' and an 'rle' list")
    try:
        mask = brush_decode(value["rle"], width, height)
    except (ValueError, TypeError) as e:
        raise _Bad("invalid_mask", f"brush RLE cannot be decoded: {e}") from None
    if not mask.any():
        raise _Bad("invalid_mask", "brush mask is empty")
    return ObjectAnnotation(class_id=cid, bbox=mask_to_bbox(mask), area=float(mask_area(mask)), segmentation=rle_encode(mask))


_PARSERS: dict[Task, dict[str, Callable[[dict[str, Any], int, int, LabelMap], ObjectAnnotation]]] = {
    "detection": {"rectanglelabels": _rectangle},
    "segmentation": {"polygonlabels": _polygon, "brushlabels": _brush},
    "classification": {},
}


def _size(data: dict[str, Any], item: SampledItem | None, results: list[Any]) -> tuple[int, int]:
    if item is not None:
        return item.width, item.height
    w, h = data.get("width"), data.get("height")
    if isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0:
        return w, h
    for r in results:
        if isinstance(r, dict) and isinstance(r.get("original_width"), int) and isinstance(r.get("original_height"), int):
            return r["original_width"], r["original_height"]
    raise _Bad("unknown_size", "the image size is neither in the batch, the task data nor the results")


def _regions(
    results: list[Any], task: Task, label_map: LabelMap, width: int, height: int
) -> tuple[list[ObjectAnnotation], int | None, list[tuple[str, str, str]]]:
    """(objects, classification class, problems as (result id, kind, reason))."""
    objects: list[ObjectAnnotation] = []
    classes: list[int] = []
    problems: list[tuple[str, str, str]] = []
    parsers = _PARSERS[task]
    for n, r in enumerate(results):
        rid = str(r.get("id", n)) if isinstance(r, dict) else str(n)
        try:
            if not isinstance(r, dict) or not isinstance(r.get("value"), dict):
                raise _Bad("invalid_annotation", "region is not an object with a 'value'")
            kind = r.get("type")
            if kind in _IGNORED_TYPES:
                continue
            ow, oh = r.get("original_width"), r.get("original_height")
            if (ow is not None and ow != width) or (oh is not None and oh != height):
                raise _Bad("size_mismatch", f"region was drawn on a {ow}x{oh} image, the sampled image is {width}x{height}")
            if task == "classification":
                if kind != "choices":
                    raise _Bad("unsupported_region", f"a classification label is a 'choices' result, got {kind!r}")
                classes.append(_class_of(r["value"], "choices", label_map))
                continue
            parser = parsers.get(str(kind))
            if parser is None:
                raise _Bad("unsupported_region", f"region type {kind!r} is not used for {task} (expected {', '.join(parsers)})")
            objects.append(parser(r["value"], width, height, label_map))
        except _Bad as e:
            problems.append((rid, e.kind, e.reason))
    class_id: int | None = None
    if task == "classification" and not problems:
        if not classes:
            problems.append(("-", "missing_label", "no class was chosen"))
        elif len(set(classes)) > 1:
            problems.append(("-", "ambiguous_label", f"{len(classes)} classes were chosen; one is expected"))
        else:
            class_id = classes[0]
    return objects, class_id, problems


def import_export(
    export: Sequence[dict[str, Any]],
    task: Task,
    label_map: LabelMap,
    *,
    batch: LabellingBatch | None = None,
    source: str = "label-studio-export",
    now: datetime | None = None,
) -> LabelImport:
    """Validates a Label Studio JSON export and turns accepted tasks into ground truth.

    A task's label is its ground-truth annotation if one is marked, else its
    latest completed one; its time (``updated_at``, else ``created_at``, else
    ``now``) becomes the label's event timestamp. An image appearing in several
    tasks keeps its latest label.

    Args:
        export: the exported tasks.
        task: the task.
        label_map: the classes labels may use.
        batch: the labelling batch (when given: tasks of other batches are skipped
            and counted, and batch items missing from the export are unlabelled).
        source: the export's name, for the quarantine report.
        now: the fallback label time (default: now, UTC).

    Returns:
        The import.
    """
    q = QuarantineReport(stage=STAGE)
    fallback = utc(now or datetime.now(UTC))
    unlabelled: list[dict[str, Any]] = []
    accepted: dict[str, tuple[datetime, LabelRow, ImageRecord]] = {}
    seen: set[str] = set()
    other = 0
    for k, t in enumerate(export):
        data = t.get("data") if isinstance(t.get("data"), dict) else {}
        assert isinstance(data, dict)
        tid = t.get("id", k)
        sha = data.get("image_sha256")
        batch_id = str(data.get("labelling_batch_id") or (batch.batch_id if batch else ""))
        if batch is not None and batch_id != batch.batch_id:
            other += 1
            continue
        q.total += 1
        where = str(data.get("image_uri") or data.get("image") or f"{source}#task{tid}")
        if not isinstance(sha, str) or not sha:
            q.add(where, "invalid_task", f"task {tid} has no image_sha256 in its data: not a task cvpipe sent", image_id=str(tid))
            continue
        seen.add(sha)
        item = batch.item(sha) if batch is not None else None
        if batch is not None and item is None:
            q.add(where, "unknown_image", f"task {tid}: image {sha[:12]} is not in batch {batch.batch_id}", image_id=sha)
            continue
        ann, why = _pick_annotation(list(t.get("annotations") or []))
        if ann is None:
            unlabelled.append({"image_sha256": sha, "task_id": tid, "reason": why})
            continue
        results = ann.get("result") if isinstance(ann.get("result"), list) else []
        assert isinstance(results, list)
        try:
            width, height = _size(data, item, results)
        except _Bad as e:
            q.add(where, e.kind, f"task {tid}: {e.reason}", image_id=sha)
            continue
        objects, class_id, problems = _regions(results, task, label_map, width, height)
        if problems:
            for rid, kind, reason in problems:
                q.add(where, kind, f"task {tid}, region {rid}: {reason}", image_id=sha, annotation_id=f"{tid}/{rid}")
            q.add(
                where,
                "partial_label" if len(problems) < max(1, len(results)) else "invalid_label",
                f"task {tid}: {len(problems)} of {len(results)} regions are invalid; the image's label is not used so a partial label never counts as complete",
                image_id=sha,
            )
            continue
        when = _when(ann.get("updated_at")) or _when(ann.get("created_at")) or fallback
        stratum = item.stratum if item is not None else str(data.get("stratum") or "")
        truth_objects = [
            {
                "class_id": o.class_id,
                "bbox": o.bbox,
                "area": o.area,
                **({"segmentation": o.segmentation} if o.segmentation is not None else {}),
            }
            for o in objects
        ]
        row = LabelRow(
            image_sha256=sha,
            event_timestamp=when,
            labelling_batch_id=batch_id,
            ground_truth=ground_truth_json(task, width, height, truth_objects, class_id),
            stratum=stratum,
        )
        uri = item.image_uri if item is not None else str(data.get("image_uri") or "")
        problem = logged_image_problem(uri, sha, missing_ok=True)
        if problem is not None:
            q.add(where, "image_mismatch", f"task {tid}: {problem}", image_id=sha)
            continue
        record = ImageRecord(
            image_id=(item.request_id if item is not None else str(data.get("request_id") or sha)),
            path=uri,
            sha256=sha,
            width=width,
            height=height,
            objects=objects if task != "classification" else [],
            class_id=class_id,
            source={"labelling_batch_id": batch_id, "stratum": stratum, "label_studio_task": tid, "annotation": ann.get("id")},
        )
        if sha not in accepted or accepted[sha][0] <= when:
            accepted[sha] = (when, row, record)
    if batch is not None:
        for it in batch.items:
            if it.image_sha256 not in seen:
                unlabelled.append({"image_sha256": it.image_sha256, "task_id": None, "reason": "not in the export"})
    records = [r for _, _, r in accepted.values()]
    local = [r.path for r in records if r.path and "://" not in r.path and os.path.isabs(r.path)]
    root = os.path.commonpath([os.path.dirname(p) for p in local]) if local else ""
    if root:
        for r in records:
            if r.path in local:
                r.path = os.path.relpath(r.path, root)
    manifest = Manifest(task=task, root=root, label_map=label_map, images=records, format="label-studio", source=source)
    get_logger(STAGE).info(
        "%s: %d images labelled, %d quarantined (%s), %d unlabelled, %d tasks of other batches",
        source,
        len(records),
        q.rejected_images,
        ", ".join(f"{k}={v}" for k, v in sorted(q.by_kind().items())) or "none",
        len(unlabelled),
        other,
    )
    return LabelImport(
        task=task, labels=[r for _, r, _ in accepted.values()], manifest=manifest, quarantine=q, unlabelled=unlabelled, other_batches=other
    )


# -- the API client ---------------------------------------------------------------------------------


class _Transient(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class LabelStudioClient:
    """Label Studio's REST API: create a project, import tasks, export annotations.

    The token is read from an environment variable (never from configuration),
    stripped of surrounding whitespace, and sent as ``Authorization: Token <token>``
    (Label Studio's legacy API token). Errors never quote the HTTP library's
    text nor the token, and show the URL without credentials.
    Connection errors, timeouts, 429 and 5xx answers are retried with exponential
    backoff (``Retry-After`` honoured up to ``max_wait``); any other 4xx fails at once.

    Args:
        url: Label Studio's base URL (``http://localhost:8080``).
        token_env: environment variable holding the API token.
        timeout: seconds per request.
        attempts: tries per call.
        max_wait: longest wait between tries, seconds.

    Raises:
        LabellingError: the token variable is not set, or its value has a line break inside.
    """

    def __init__(
        self, url: str, token_env: str = "LABEL_STUDIO_API_KEY", *, timeout: float = 30.0, attempts: int = 5, max_wait: float = 10.0
    ):
        import requests

        from components.core.secrets import clean_secret, redact_url

        token = os.environ.get(token_env)
        if not token or not token.strip():
            raise LabellingError(f"Label Studio API token: set the environment variable {token_env}")
        try:
            self._token = clean_secret(token, f"Label Studio API token in environment variable {token_env}")
        except ValueError as e:  # names the variable, never the value
            raise LabellingError(str(e)) from None
        self.url = url.rstrip("/")
        self.shown_url = redact_url(self.url)
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.max_wait = max_wait
        self._session = requests.Session()
        self._session.headers["Authorization"] = f"Token {self._token}"

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        import requests
        from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

        from components.core.secrets import describe_http_error, scrub

        backoff = wait_exponential(multiplier=0.2, max=self.max_wait)

        def wait(state: Any) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, _Transient) and exc.retry_after is not None:
                return min(exc.retry_after, self.max_wait)
            return float(backoff(state))

        def once() -> Any:
            failure = None
            try:
                r = self._session.request(method, self.url + path, timeout=self.timeout, **kwargs)
            except Exception as e:  # requests' text quotes the URL and headers (the token): keep only the kind of failure
                failure = (describe_http_error(e), isinstance(e, requests.ConnectionError | requests.Timeout))
            if failure is not None:  # raised outside the except block: the library's exception is not kept as context
                what, transient = failure
                if transient:
                    raise _Transient(f"{method} {path}: {what}")
                raise LabellingError(f"Label Studio at {self.shown_url}: cannot send {method} {path}: {what}")
            if r.status_code == 429 or r.status_code >= 500:
                after = r.headers.get("Retry-After")
                raise _Transient(f"{method} {path}: HTTP {r.status_code}", float(after) if after and after.isdigit() else None)
            if r.status_code >= 400:
                body = scrub(r.text, [self._token, self.url])[:300]
                raise LabellingError(f"Label Studio refused {method} {path}: HTTP {r.status_code}: {body}", status=r.status_code)
            if not r.content:
                return None
            try:
                return r.json()
            except ValueError:
                raise LabellingError(f"Label Studio at {self.shown_url} answered {method} {path} with something that is not JSON") from None

        try:
            for attempt in Retrying(
                retry=retry_if_exception_type(_Transient), stop=stop_after_attempt(self.attempts), wait=wait, reraise=True
            ):
                with attempt:
                    return once()
        except _Transient as e:
            raise LabellingError(f"Label Studio at {self.shown_url} still failing after {self.attempts} tries: {e}") from None
        raise LabellingError(f"Label Studio at {self.shown_url}: no answer")  # pragma: no cover - Retrying always returns or raises

    def create_project(self, title: str, label_config_xml: str) -> int:
        """Creates a project (``POST /api/projects``).

        Args:
            title: project title.
            label_config_xml: the labelling config (:func:`label_config`).

        Returns:
            The project id.
        """
        doc = self._request("POST", "/api/projects", json={"title": title, "label_config": label_config_xml})
        return int(doc["id"])

    def import_tasks(self, project_id: int, tasks: list[dict[str, Any]]) -> dict[str, Any]:
        """Imports tasks with their pre-annotations (``POST /api/projects/{id}/import``).

        Args:
            project_id: the project.
            tasks: the tasks (:func:`to_tasks`).

        Returns:
            Label Studio's answer (``task_count``, ``prediction_count``...).
        """
        return dict(self._request("POST", f"/api/projects/{int(project_id)}/import", json=tasks) or {})

    def export(self, project_id: int) -> list[dict[str, Any]]:
        """Exports the project's tasks with annotations (``GET /api/projects/{id}/export?exportType=JSON``).

        Args:
            project_id: the project.

        Returns:
            The exported tasks.

        Raises:
            LabellingError: the answer is not a list of tasks.
        """
        doc = self._request("GET", f"/api/projects/{int(project_id)}/export", params={"exportType": "JSON"})
        if not isinstance(doc, list):
            raise LabellingError(f"Label Studio export of project {project_id} is not a list of tasks")
        return doc

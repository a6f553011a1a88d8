"""Export in: a Label Studio JSON export of completed tasks becomes validated ground truth.

:func:`import_export` validates the export like any ingest: known classes,
boxes inside the image (1 px tolerance, clipped), no degenerate or rotated
boxes, well-formed polygons and masks (``polygonlabels`` or ``brushlabels``,
see :mod:`.brush`), image size as sampled. A task with any bad region is
quarantined whole (each bad region with its reason, plus the image) so a
partial label never counts as complete ground truth; tasks without a
completed annotation are reported as unlabelled. Accepted labels become
:class:`~components.core.prediction_log.LabelRow` rows and a
:class:`~components.core.manifest.Manifest` of the labelled images (and a COCO
file ingest reads), ready to join the training data.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from components.core.clock import utc
from components.core.errors import AnnotationError
from components.core.io import atomic_write_json, read_json
from components.core.labelmap import LabelMap
from components.core.log import get_logger
from components.core.logged_image import logged_image_problem
from components.core.manifest import ImageRecord, Manifest, ObjectAnnotation, Task
from components.core.masks import mask_area, mask_to_bbox, rle_encode
from components.core.prediction_log import LabelRow, ground_truth_json
from components.core.quarantine import QuarantineReport

from ..batch import LabellingBatch, SampledItem
from .brush import brush_decode

__all__ = ["BOX_TOLERANCE_PX", "STAGE", "LabelImport", "import_export", "read_export"]

STAGE = "import_labels"
"""Stage name of the import's quarantine report."""
BOX_TOLERANCE_PX = 1.0
"""How far (pixels) a box may reach outside the image before it is rejected instead of clipped."""
_IGNORED_TYPES = {"textarea", "relation", "rating", "pairwise"}  # comments and relations carry no ground truth


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

"""Stand-in for people: a Label Studio export made from known true labels.

The demo and the tests have no annotators. :func:`simulate_labels` answers a
labelling batch from a manifest that holds the true labels of the images
(matched by sha256), producing exactly what Label Studio's JSON export would
hold after people labelled every task: the tasks as sent (``data``,
``predictions``), each with one completed annotation whose regions are the
true objects in Label Studio's percent coordinates. Images the manifest does
not know come back without an annotation, as tasks nobody labelled.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from components.core.manifest import Manifest
from components.core.masks import decode_segmentation
from components.predict.core import mask_polygons

from .batch import LabellingBatch
from .labelstudio import region_results, to_tasks

__all__ = ["simulate_labels"]


def simulate_labels(
    batch: LabellingBatch,
    truth: Manifest,
    *,
    completed_at: datetime | None = None,
    mask_format: Literal["polygon", "brush"] = "polygon",
    annotator_id: int = 1,
) -> list[dict[str, Any]]:
    """A Label Studio JSON export of ``batch`` labelled with the true labels of ``truth``.

    Args:
        batch: the labelling batch.
        truth: a manifest with the true objects (or classes) of the images.
        completed_at: the annotations' time (default: now, UTC).
        mask_format: segmentation regions as ``polygonlabels`` or ``brushlabels``.
        annotator_id: the ``completed_by`` user id.

    Returns:
        The exported tasks, in batch order, with task ids from 1.
    """
    when = (completed_at or datetime.now(UTC)).astimezone(UTC).isoformat().replace("+00:00", "Z")
    by_sha = {r.sha256: r for r in truth.images}
    tasks = to_tasks(batch, min_score=0.0)
    out = []
    for n, (item, task) in enumerate(zip(batch.items, tasks, strict=True), start=1):
        record = by_sha.get(item.image_sha256)
        annotations: list[dict[str, Any]] = []
        if record is not None:
            regions: list[dict[str, Any]] = []
            if batch.task == "classification":
                if record.class_id is not None:
                    regions.append({"class_id": record.class_id})
            else:
                for o in record.objects:
                    region: dict[str, Any] = {"class_id": o.class_id, "bbox": o.bbox}
                    if batch.task == "segmentation" and o.segmentation is not None:
                        if mask_format == "brush":
                            region["mask"] = decode_segmentation(o.segmentation, record.height, record.width)
                        elif isinstance(o.segmentation, dict):
                            region["polygons"] = mask_polygons(decode_segmentation(o.segmentation, record.height, record.width))
                        else:
                            region["polygons"] = o.segmentation
                    regions.append(region)
            result = region_results(regions, batch.task, batch.label_map, record.width, record.height, prefix="a")
            annotations.append(
                {
                    "id": 1000 + n,
                    "completed_by": annotator_id,
                    "result": result,
                    "was_cancelled": False,
                    "ground_truth": False,
                    "created_at": when,
                    "updated_at": when,
                    "lead_time": 12.5,
                    "task": n,
                }
            )
        out.append({"id": n, **task, "annotations": annotations, "created_at": batch.created.isoformat(), "project": 1})
    return out

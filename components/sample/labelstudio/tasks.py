"""Tasks out: Label Studio tasks (import format) with the model's predictions as pre-annotations.

Tasks carry the image URL and cvpipe's keys in ``data`` (``image_sha256``,
``request_id``, ``labelling_batch_id``, ``stratum``, ``width``, ``height``), and
the model's prediction as a pre-annotation (``predictions[0].result``). Region
results follow Label Studio's format: ``from_name`` / ``to_name`` name the tags
of :func:`label_config`, ``type`` the tag kind, ``original_width`` /
``original_height`` the image size and ``value`` the region in **percent** of
the image.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

import numpy as np

from components.core.labelmap import LabelMap
from components.core.manifest import Task

from ..batch import LabellingBatch, SampledItem
from .brush import brush_encode

__all__ = ["FROM_NAMES", "TO_NAME", "default_image_url", "label_config", "prediction_regions", "region_results", "task_data", "to_tasks"]

FROM_NAMES = {"rectanglelabels": "label", "choices": "choice", "polygonlabels": "polygon", "brushlabels": "brush"}
"""``from_name`` of each result type (the tag names of :func:`label_config`)."""
TO_NAME = "image"
"""``to_name`` of every result: the image tag of :func:`label_config`."""
_COLOURS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45", "#fabed4", "#469990"]


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

"""SageMaker Ground Truth output manifest reader (JSON lines).

Each line names its image in ``source-ref`` and carries the label under a
*label attribute* (the labelling job's name, e.g. ``bounding-box``) beside a
``<attribute>-metadata`` object:

* bounding-box jobs: ``{"annotations": [{"class_id", "left", "top", "width",
  "height"}], "image_size": [...]}`` with ``metadata["class-map"]`` id -> name;
* image classification jobs: the class id, with ``metadata["class-name"]``.

The attribute is ``data.label_attribute`` when set, else the one key that has
a ``-metadata`` companion and a value fitting the task; several candidates
are an error asking for ``label_attribute``.

``s3://bucket/key`` references are matched to local files by the longest
suffix of the key that exists under the image root, so ``aws s3 sync
s3://bucket/prefix images/`` makes a manifest readable unchanged.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from components.core.errors import AnnotationError
from components.core.manifest import Task
from components.core.quarantine import QuarantineReport
from components.core.spec import DataSpec

from ._raw import RawDataset, RawImage, RawObject, floats

__all__ = ["read_groundtruth"]


def _kind(value: Any) -> str | None:
    if isinstance(value, dict) and isinstance(value.get("annotations"), list):
        return "boxes"
    if isinstance(value, int | str) and not isinstance(value, bool) and str(value).strip().lstrip("-").isdigit():
        return "class"
    if isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return "class"
    return None


def _wanted(task: Task) -> str:
    return "class" if task == "classification" else "boxes"


def _detect_attribute(records: list[tuple[int, dict[str, Any]]], task: Task, src: Path) -> str | None:
    fitting: Counter[str] = Counter()
    other: Counter[str] = Counter()
    for _, rec in records:
        for key, value in rec.items():
            if key == "source-ref" or key.endswith("-metadata") or f"{key}-metadata" not in rec:
                continue
            (fitting if _kind(value) == _wanted(task) else other)[key] += 1
    if len(fitting) == 1:
        return next(iter(fitting))
    if len(fitting) > 1:
        raise AnnotationError(
            str(src), f"several label attributes fit a {task} task ({', '.join(sorted(fitting))}); set data.label_attribute"
        )
    if not records:
        return None
    found = f"; found {', '.join(sorted(other))}" if other else ""
    raise AnnotationError(str(src), f"no {task} label attribute (a key with a '<key>-metadata' companion){found}")


def _image_file(ref: str, root: Path) -> str:
    parsed = urlparse(ref)
    if parsed.scheme == "file":
        return unquote(parsed.path)
    if parsed.scheme and len(parsed.scheme) > 1:
        parts = [p for p in unquote(parsed.path).split("/") if p]
        if ".." in parts or not parts:
            return "/".join(parts) or ref
        for i in range(len(parts)):
            candidate = "/".join(parts[i:])
            if (root / candidate).is_file():
                return candidate
        return "/".join(parts)
    return ref


def _class_map(meta: dict[str, Any]) -> dict[str, str]:
    cmap = meta.get("class-map")
    if not isinstance(cmap, dict):
        return {}
    return {str(k): str(v).strip() for k, v in cmap.items() if str(v).strip()}


def _boxes(raw: RawImage, value: dict[str, Any], meta: dict[str, Any], names: dict[tuple[int, str], None]) -> None:
    cmap = _class_map(meta)
    size = value.get("image_size")
    first = size[0] if isinstance(size, list) and size and isinstance(size[0], dict) else {}
    if isinstance(first.get("width"), int) and isinstance(first.get("height"), int):
        raw.source["declared_size"] = [first["width"], first["height"]]
    for cid, class_name in cmap.items():
        names[(int(cid) if cid.lstrip("-").isdigit() else 1 << 30, class_name)] = None
    objects = meta.get("objects")
    confidences: list[Any] = objects if isinstance(objects, list) else []
    for k, ann in enumerate(value["annotations"]):
        ann_id = f"{Path(raw.origin).name}#{k}"
        if not isinstance(ann, dict):
            raw.objects.append(RawObject(annotation_id=ann_id, class_name=None, problem=("invalid_annotation", f"{ann_id}: not an object")))
            continue
        name = cmap.get(str(ann.get("class_id")))
        obj = RawObject(annotation_id=ann_id, class_name=name)
        if name is None:
            obj.problem = ("unknown_class", f"{ann_id}: class_id {ann.get('class_id')!r} is not in the class-map")
        else:
            try:
                obj.bbox = floats([ann.get(key) for key in ("left", "top", "width", "height")], 4)
            except ValueError as e:
                obj.problem = ("invalid_coordinates", f"{ann_id}: left/top/width/height {e}")
        if k < len(confidences) and isinstance(confidences[k], dict) and "confidence" in confidences[k]:
            obj.attributes["confidence"] = confidences[k]["confidence"]
        raw.objects.append(obj)


def _image_class(raw: RawImage, value: Any, meta: dict[str, Any], names: dict[tuple[int, str], None]) -> None:
    if isinstance(value, list):
        if len(value) != 1:
            raw.problem = ("invalid_annotation", f"{len(value)} labels on one image (multi-label classification is not supported)")
            return
        value = value[0]
    cid = str(value).strip()
    given = meta.get("class-name")
    name = given if isinstance(given, str) and given.strip() else _class_map(meta).get(cid)
    if not name:
        raw.problem = ("unknown_class", f"class id {cid} has no class-name in the metadata")
        return
    raw.class_name = name.strip()
    raw.source["class_id"] = int(cid)
    names[(int(cid), raw.class_name)] = None
    if "confidence" in meta:
        raw.source["confidence"] = meta["confidence"]


def read_groundtruth(data: DataSpec, task: Task, quarantine: QuarantineReport) -> RawDataset:
    """Reads a SageMaker Ground Truth output manifest.

    Args:
        data: the data spec (``source`` is the manifest; ``images`` the image
            root, default beside it; ``label_attribute`` the label key).
        task: ``classification`` reads image-classification labels, the others
            bounding-box labels.
        quarantine: where lines that are not JSON objects go (one rejected item each).

    Returns:
        The raw dataset; class names ordered by their Ground Truth class id.

    Raises:
        AnnotationError: the file cannot be read, or the label attribute is
            missing or ambiguous.
    """
    src = Path(data.source)
    try:
        text = src.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise AnnotationError(str(src), "manifest not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise AnnotationError(str(src), f"cannot read: {e}") from None
    root = Path(data.images) if data.images else src.parent

    records: list[tuple[int, dict[str, Any]]] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            quarantine.total += 1
            quarantine.add(f"{src}:{lineno}", "invalid_annotation", f"line {lineno} is not valid JSON: {e}")
            continue
        except RecursionError:
            quarantine.total += 1
            quarantine.add(f"{src}:{lineno}", "invalid_annotation", f"line {lineno}: JSON nested too deeply")
            continue
        if not isinstance(rec, dict) or not isinstance(rec.get("source-ref"), str) or not rec["source-ref"].strip():
            quarantine.total += 1
            quarantine.add(f"{src}:{lineno}", "invalid_annotation", f"line {lineno} has no 'source-ref' string")
            continue
        records.append((lineno, rec))
    attr = data.label_attribute or _detect_attribute(records, task, src)

    names: dict[tuple[int, str], None] = {}
    images: list[RawImage] = []
    for lineno, rec in records:
        ref = rec["source-ref"]
        raw = RawImage(file_name=_image_file(ref, root), origin=f"{src}:{lineno}", source={"source-ref": ref})
        images.append(raw)
        value = rec.get(attr or "")
        meta = rec.get(f"{attr}-metadata")
        meta = meta if isinstance(meta, dict) else {}
        if value is None:
            failure = meta.get("failure-reason")
            raw.problem = ("missing_label", f"no label {attr!r}" + (f": labelling failed ({failure})" if failure else ""))
        elif _kind(value) != _wanted(task):
            raw.problem = (
                "invalid_annotation",
                f"label {attr!r} is not a {'class id' if task == 'classification' else 'bounding-box'} label",
            )
        elif task == "classification":
            _image_class(raw, value, meta, names)
        else:
            _boxes(raw, value, meta, names)
    ordered = [n for _, n in sorted(names)]
    return RawDataset(root=root, images=images, class_names=list(dict.fromkeys(ordered)))

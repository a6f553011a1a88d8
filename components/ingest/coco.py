"""COCO JSON reader: images, categories and annotations (boxes, polygons, RLE, crowd).

Categories become label-map classes by *name* (COCO ids are often sparse,
1..90); their order of first id sets the order new ids are given in. An
image id used by several image entries makes every annotation of that id
ambiguous, so all those entries are quarantined; an annotation id used again
is quarantined from its second use on.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import orjson

from components.core.errors import AnnotationError
from components.core.io import open_text
from components.core.manifest import Task
from components.core.quarantine import QuarantineReport
from components.core.spec import DataSpec

from ._raw import RawDataset, RawImage, RawObject, floats

__all__ = ["read_coco"]


def _load(src: Path) -> dict[str, Any]:
    try:
        # orjson parses a large COCO file several times faster than json, into the same Python values;
        # what it refuses (NaN, a huge integer, bad UTF-8, deep nesting) goes through json for json's answer
        try:
            doc = orjson.loads(src.read_bytes().removeprefix(b"\xef\xbb\xbf"))
        except orjson.JSONDecodeError:
            with open_text(src) as f:
                doc = json.load(f)
    except FileNotFoundError:
        raise AnnotationError(str(src), "annotation file not found") from None
    except IsADirectoryError:
        raise AnnotationError(str(src), "is a directory, expected a COCO JSON file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise AnnotationError(str(src), f"not valid JSON: {e}") from None
    except OSError as e:
        raise AnnotationError(str(src), f"cannot read: {e.strerror or e}") from None
    except RecursionError:
        raise AnnotationError(str(src), "not a COCO file: JSON nested too deeply") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        raise AnnotationError(str(src), "not a COCO file: no 'images' list at the top level")
    for key in ("annotations", "categories"):
        if not isinstance(doc.get(key, []), list):
            raise AnnotationError(str(src), f"not a COCO file: '{key}' is not a list")
    return doc


def _categories(doc: dict[str, Any], src: str, quarantine: QuarantineReport) -> tuple[dict[str, str], set[str], list[str]]:
    """Returns (COCO category id -> name, ambiguous ids, names in id order)."""
    names: dict[str, str] = {}
    ambiguous: set[str] = set()
    order: list[tuple[Any, str]] = []
    for i, cat in enumerate(doc.get("categories", [])):
        where = f"categories[{i}]"
        if not isinstance(cat, dict) or "id" not in cat or not isinstance(cat.get("name"), str) or not cat["name"].strip():
            quarantine.add(src, "invalid_annotation", f"{where}: a category needs an 'id' and a non-empty 'name'", annotation_id=where)
            continue
        cid, name = str(cat["id"]), cat["name"].strip()
        if cid in names and names[cid] != name:
            ambiguous.add(cid)
            quarantine.add(
                src,
                "invalid_annotation",
                f"{where}: category id {cid} names both {names[cid]!r} and {name!r}; its annotations are quarantined",
                annotation_id=where,
            )
            continue
        names[cid] = name
        order.append((cat["id"], name))
    order.sort(key=lambda t: (not isinstance(t[0], int), t[0] if isinstance(t[0], int) else 0, str(t[0])))
    return names, ambiguous, [n for _, n in order]


def _object(ann: dict[str, Any], ann_id: str, categories: dict[str, str], ambiguous: set[str]) -> RawObject:
    cat = str(ann.get("category_id"))
    obj = RawObject(annotation_id=ann_id, class_name=categories.get(cat), is_crowd=bool(ann.get("iscrowd", 0)))
    if cat in ambiguous:
        obj.class_name = None
        obj.problem = ("unknown_class", f"annotation {ann_id}: category id {cat} is ambiguous")
        return obj
    if obj.class_name is None:
        obj.problem = ("unknown_class", f"annotation {ann_id}: category id {cat} is not among the categories")
        return obj
    if ann.get("bbox") is not None:
        try:
            obj.bbox = floats(ann["bbox"], 4)
        except ValueError as e:
            obj.problem = ("invalid_coordinates", f"annotation {ann_id}: bbox {e}")
            return obj
    seg = ann.get("segmentation")
    if seg not in (None, [], {}):
        obj.segmentation = seg
    area = ann.get("area")
    if isinstance(area, int | float) and not isinstance(area, bool):
        obj.area = float(area)
    return obj


def read_coco(data: DataSpec, task: Task, quarantine: QuarantineReport) -> RawDataset:
    """Reads a COCO JSON annotation file.

    Args:
        data: the data spec (``source`` is the JSON file; ``images`` the image
            directory, default beside it).
        task: the task; for classification an image's class is the one
            category of its annotations (or the image entry's ``category_id``).
        quarantine: where unusable entries go.

    Returns:
        The raw dataset.

    Raises:
        AnnotationError: the file is missing, not JSON, or not COCO-shaped.
    """
    src = Path(data.source)
    doc = _load(src)
    origin = str(src)
    categories, ambiguous, names = _categories(doc, origin, quarantine)
    root = Path(data.images) if data.images else src.parent

    entries: list[tuple[str, dict[str, Any]]] = []
    for i, img in enumerate(doc["images"]):
        if not isinstance(img, dict) or "id" not in img or not isinstance(img.get("file_name"), str):
            quarantine.total += 1
            quarantine.add(origin, "invalid_annotation", f"images[{i}]: an image needs an 'id' and a 'file_name'")
            continue
        entries.append((str(img["id"]), img))
    id_uses = Counter(iid for iid, _ in entries)

    by_image: dict[str, list[RawObject]] = defaultdict(list)
    seen_ann: set[str] = set()
    annotations = doc.pop("annotations", [])
    for i, ann in enumerate(annotations):
        annotations[i] = None  # each annotation's dict goes as soon as it is read: the parsed file and the objects never coexist whole
        where = f"annotations[{i}]"
        if not isinstance(ann, dict) or "image_id" not in ann:
            quarantine.add(origin, "invalid_annotation", f"{where}: an annotation needs an 'image_id'", annotation_id=where)
            continue
        ann_id = str(ann["id"]) if "id" in ann else where
        iid = str(ann["image_id"])
        if iid not in id_uses:
            quarantine.add(
                origin, "unknown_image", f"annotation {ann_id}: image id {iid} is not among the images", image_id=iid, annotation_id=ann_id
            )
            continue
        obj = _object(ann, ann_id, categories, ambiguous)
        if ann_id in seen_ann:
            obj.problem = ("duplicate_annotation_id", f"annotation id {ann_id} is used more than once; the first use is kept")
        seen_ann.add(ann_id)
        by_image[iid].append(obj)

    images: list[RawImage] = []
    for iid, img in entries:
        raw = RawImage(file_name=img["file_name"], origin=origin, image_id=iid, objects=by_image.get(iid, []))
        declared = (img.get("width"), img.get("height"))
        if all(isinstance(v, int) for v in declared):
            raw.source["declared_size"] = list(declared)
        if id_uses[iid] > 1:
            raw.problem = (
                "duplicate_image_id",
                f"image id {iid} is used by {id_uses[iid]} image entries ({img['file_name']} is one); its annotations cannot be attributed",
            )
        elif task == "classification":
            _image_class(raw, img, categories)
        images.append(raw)
    return RawDataset(root=root, images=images, class_names=names)


def _image_class(raw: RawImage, img: dict[str, Any], categories: dict[str, str]) -> None:
    if "category_id" in img:
        raw.class_name = categories.get(str(img["category_id"]))
        if raw.class_name is None:
            raw.problem = ("unknown_class", f"image {raw.image_id}: category id {img['category_id']} is not among the categories")
        return
    found = sorted({o.class_name for o in raw.objects if o.class_name and not o.is_crowd and o.problem is None})
    if len(found) > 1:
        raw.problem = (
            "ambiguous_class",
            f"image {raw.image_id} has annotations of several classes ({', '.join(found)}); classification needs one",
        )
    elif found:
        raw.class_name = found[0]

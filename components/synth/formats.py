"""COCO writing and re-export of a COCO dataset as Pascal VOC or YOLO.

The exports let tests and demos feed one generated dataset to every ingest
reader. Conventions, as the reference tools read them:

- COCO ``file_name`` is relative to the directory of the annotation file
  (the default image root of a cvpipe data spec).
- Pascal VOC boxes are 1-based inclusive pixel indices (``xmin = x + 1``,
  ``xmax = x + w``); a COCO crowd region becomes ``difficult=1``, VOC's
  "ignore in evaluation" flag.
- YOLO labels are ``class cx cy w h`` in fractions of the image size with
  0-based class indices in category-id order; YOLO has no crowd regions, so
  they are left out. ``data.yaml`` has no ``path`` key, so the dataset root
  is the YAML file's directory and the export can be moved.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from components.core.errors import AnnotationError
from components.core.io import atomic_write_bytes, atomic_write_json, atomic_write_text, read_json

__all__ = ["export_voc", "export_yolo", "write_coco"]


def write_coco(
    path: str | os.PathLike[str],
    images: Sequence[dict[str, Any]],
    annotations: Sequence[dict[str, Any]],
    categories: Sequence[dict[str, Any]],
    info: dict[str, Any] | None = None,
) -> Path:
    """Writes a COCO instances file atomically.

    Args:
        path: the ``.json`` file.
        images: COCO image entries (``id``, ``file_name``, ``width``, ``height``).
        annotations: COCO annotation entries (``id``, ``image_id``, ``category_id``,
            ``bbox``, ``area``, ``iscrowd``, ``segmentation``).
        categories: COCO categories (``id``, ``name``, ``supercategory``).
        info: the optional ``info`` block.

    Returns:
        The path written.
    """
    doc: dict[str, Any] = {}
    if info is not None:
        doc["info"] = info
    doc.update({"licenses": [], "images": list(images), "annotations": list(annotations), "categories": list(categories)})
    return atomic_write_json(path, doc, indent=None)


def _load_coco(coco_json: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        doc = read_json(coco_json)
    except FileNotFoundError:
        raise AnnotationError(str(coco_json), "COCO file not found") from None
    except ValueError as e:
        raise AnnotationError(str(coco_json), f"not valid JSON: {e}") from None
    if not isinstance(doc, dict) or not all(isinstance(doc.get(k), list) for k in ("images", "annotations", "categories")):
        raise AnnotationError(str(coco_json), "a COCO file needs 'images', 'annotations' and 'categories' lists")
    return doc


def _image_source(coco_json: Path, images_dir: Path | None, file_name: str) -> Path:
    root = images_dir if images_dir is not None else coco_json.parent
    return root / file_name


def _by_image(doc: dict[str, Any]) -> dict[Any, list[dict[str, Any]]]:
    out: dict[Any, list[dict[str, Any]]] = {img["id"]: [] for img in doc["images"]}
    for ann in doc["annotations"]:
        out.setdefault(ann["image_id"], []).append(ann)
    return out


def _stem(file_name: str) -> str:
    return PurePosixPath(file_name.replace("\\", "/")).stem


def export_voc(
    coco_json: str | os.PathLike[str], out_dir: str | os.PathLike[str], images_dir: str | os.PathLike[str] | None = None
) -> Path:
    """Writes a COCO detection dataset in the Pascal VOC devkit layout.

    ``out_dir/Annotations/<stem>.xml``, ``out_dir/JPEGImages/<stem>.<ext>`` (copies)
    and ``out_dir/ImageSets/Main/trainval.txt`` (written last). Images
    without objects get an XML file without ``<object>``.

    Args:
        coco_json: the COCO instances file.
        out_dir: the VOC root to write.
        images_dir: directory COCO ``file_name`` is relative to (default: the
            COCO file's directory).

    Returns:
        The VOC root directory.

    Raises:
        AnnotationError: the COCO file is missing or malformed.
    """
    src = Path(coco_json)
    doc = _load_coco(src)
    root = Path(out_dir)
    img_root = Path(images_dir) if images_dir is not None else None
    names = {c["id"]: str(c["name"]) for c in doc["categories"]}
    per_image = _by_image(doc)
    stems: list[str] = []
    for img in doc["images"]:
        stem = _stem(img["file_name"])
        ext = PurePosixPath(img["file_name"]).suffix or ".jpg"
        stems.append(stem)
        atomic_write_bytes(root / "JPEGImages" / f"{stem}{ext}", _image_source(src, img_root, img["file_name"]).read_bytes())
        ann_el = ET.Element("annotation")
        ET.SubElement(ann_el, "folder").text = "JPEGImages"
        ET.SubElement(ann_el, "filename").text = f"{stem}{ext}"
        size = ET.SubElement(ann_el, "size")
        ET.SubElement(size, "width").text = str(int(img["width"]))
        ET.SubElement(size, "height").text = str(int(img["height"]))
        ET.SubElement(size, "depth").text = "3"
        ET.SubElement(ann_el, "segmented").text = "0"
        for ann in per_image.get(img["id"], []):
            x, y, w, h = (float(v) for v in ann["bbox"])
            obj = ET.SubElement(ann_el, "object")
            ET.SubElement(obj, "name").text = names[ann["category_id"]]
            ET.SubElement(obj, "pose").text = "Unspecified"
            ET.SubElement(obj, "truncated").text = "0"
            ET.SubElement(obj, "difficult").text = "1" if ann.get("iscrowd") else "0"
            box = ET.SubElement(obj, "bndbox")
            ET.SubElement(box, "xmin").text = str(round(x) + 1)
            ET.SubElement(box, "ymin").text = str(round(y) + 1)
            ET.SubElement(box, "xmax").text = str(round(x + w))
            ET.SubElement(box, "ymax").text = str(round(y + h))
        ET.indent(ann_el)
        atomic_write_bytes(root / "Annotations" / f"{stem}.xml", ET.tostring(ann_el, encoding="utf-8", xml_declaration=True) + b"\n")
    atomic_write_text(root / "ImageSets" / "Main" / "trainval.txt", "".join(f"{s}\n" for s in stems))
    return root


def export_yolo(
    coco_json: str | os.PathLike[str], out_dir: str | os.PathLike[str], images_dir: str | os.PathLike[str] | None = None
) -> Path:
    """Writes a COCO detection dataset in the Ultralytics YOLO layout.

    ``out_dir/images/<stem>.<ext>`` (copies), ``out_dir/labels/<stem>.txt`` (one
    ``class cx cy w h`` line per non-crowd object; empty for an image without
    objects) and ``out_dir/data.yaml`` (written last) listing every image
    under ``train``.

    Args:
        coco_json: the COCO instances file.
        out_dir: the YOLO root to write.
        images_dir: directory COCO ``file_name`` is relative to (default: the
            COCO file's directory).

    Returns:
        The ``data.yaml`` path (what a cvpipe data spec names as ``source``).

    Raises:
        AnnotationError: the COCO file is missing or malformed.
    """
    src = Path(coco_json)
    doc = _load_coco(src)
    root = Path(out_dir)
    img_root = Path(images_dir) if images_dir is not None else None
    cats = sorted(doc["categories"], key=lambda c: c["id"])
    index = {c["id"]: i for i, c in enumerate(cats)}
    per_image = _by_image(doc)
    for img in doc["images"]:
        stem = _stem(img["file_name"])
        ext = PurePosixPath(img["file_name"]).suffix or ".jpg"
        atomic_write_bytes(root / "images" / f"{stem}{ext}", _image_source(src, img_root, img["file_name"]).read_bytes())
        width, height = float(img["width"]), float(img["height"])
        lines = []
        for ann in per_image.get(img["id"], []):
            if ann.get("iscrowd"):
                continue
            x, y, w, h = (float(v) for v in ann["bbox"])
            lines.append(
                f"{index[ann['category_id']]} {(x + w / 2) / width:.6f} {(y + h / 2) / height:.6f} {w / width:.6f} {h / height:.6f}\n"
            )
        atomic_write_text(root / "labels" / f"{stem}.txt", "".join(lines))
    data = {"train": "images", "nc": len(cats), "names": [str(c["name"]) for c in cats]}
    return atomic_write_text(root / "data.yaml", yaml.safe_dump(data, sort_keys=False))

"""Pascal VOC reader: a directory of XML files, one per image.

XML is parsed with defusedxml, so entity declarations (the "billion laughs"
and external-entity attacks) and external references are refused: such a
file is quarantined and nothing it points at is ever read.

VOC boxes are 1-based, inclusive pixel indices: ``xmin=1, xmax=W`` covers
the whole image. As the reference VOC tools do (py-faster-rcnn, Detectron),
they become 0-based ``[x, y, w, h]`` with ``x = xmin - 1`` and
``w = xmax - xmin + 1``, so that whole-image box is ``[0, 0, W, H]``.

Classes are numbered in order of first mention, reading the XML files sorted
by path (the rule every format follows). ``<size>`` is the declared size.

Layouts: ``source/Annotations/*.xml`` with images in ``source/JPEGImages``
(the VOCdevkit layout; splits from ``ImageSets/Main/{train,val,test}.txt``),
or XML files directly in ``source`` beside their images.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from components.core.errors import AnnotationError
from components.core.log import get_logger, progress
from components.core.manifest import Task
from components.core.quarantine import QuarantineReport
from components.core.spec import DataSpec

from ._raw import IMAGE_EXTENSIONS, SPLIT_NAMES, RawDataset, RawImage, RawObject

__all__ = ["read_voc"]

_FLAGS = ("difficult", "truncated", "occluded")


def _splits(src: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    main = src / "ImageSets" / "Main"
    for name in ("train", "val", "test"):
        f = main / f"{name}.txt"
        if not f.is_file():
            continue
        for line in f.read_text(encoding="utf-8", errors="replace").splitlines():
            parts = line.split()
            if parts:
                out.setdefault(parts[0], SPLIT_NAMES[name])
    return out


def _number(el: ET.Element | None, tag: str) -> float:
    text = el.findtext(tag) if el is not None else None
    if text is None or not text.strip():
        raise ValueError(f"<{tag}> is missing")
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"<{tag}> is not a number: {text.strip()!r}") from None


def _flag(obj: ET.Element, tag: str) -> bool | None:
    text = obj.findtext(tag)
    if text is None or not text.strip():
        return None
    try:
        return bool(int(float(text)))
    except ValueError:
        return text.strip().lower() in ("true", "yes")


def _object(obj: ET.Element, ann_id: str) -> RawObject:
    name = (obj.findtext("name") or "").strip()
    out = RawObject(annotation_id=ann_id, class_name=name or None)
    attrs: dict[str, Any] = {}
    for tag in _FLAGS:
        v = _flag(obj, tag)
        if v is not None:
            attrs[tag] = v
    pose = (obj.findtext("pose") or "").strip()
    if pose and pose != "Unspecified":
        attrs["pose"] = pose
    out.attributes = attrs
    if not name:
        out.problem = ("invalid_annotation", f"object {ann_id} has no <name>")
        return out
    box = obj.find("bndbox")
    try:
        xmin, ymin, xmax, ymax = (_number(box, t) for t in ("xmin", "ymin", "xmax", "ymax"))
    except ValueError as e:
        out.problem = ("invalid_coordinates", f"object {ann_id} ({name}): <bndbox> {e}")
        return out
    out.bbox = [xmin - 1.0, ymin - 1.0, xmax - xmin + 1.0, ymax - ymin + 1.0]
    return out


def _find_image(images_dir: Path, stem: str) -> str:
    for ext in sorted(IMAGE_EXTENSIONS):
        for e in (ext, ext.upper()):
            if (images_dir / f"{stem}{e}").is_file():
                return f"{stem}{e}"
    return f"{stem}.jpg"


def read_voc(data: DataSpec, task: Task, quarantine: QuarantineReport) -> RawDataset:
    """Reads a Pascal VOC annotation directory.

    Args:
        data: the data spec (``source`` is the directory; ``images`` the image
            directory, default ``source/JPEGImages`` or ``source``).
        task: the task (VOC carries boxes).
        quarantine: unused here: every problem is attached to its image entry.

    Returns:
        The raw dataset; an XML file that cannot be parsed (or is unsafe) is an
        image entry with a problem, so it is quarantined, not fatal.

    Raises:
        AnnotationError: the directory is missing or holds no XML file.
    """
    src = Path(data.source)
    if not src.is_dir():
        raise AnnotationError(str(src), "Pascal VOC source must be a directory of XML files")
    ann_dir = src / "Annotations" if (src / "Annotations").is_dir() else src
    root = Path(data.images) if data.images else (src / "JPEGImages" if (src / "JPEGImages").is_dir() else src)
    xmls = sorted(p for p in ann_dir.rglob("*.xml") if p.is_file())
    if not xmls:
        raise AnnotationError(str(src), "no .xml annotation files found")
    splits = _splits(src)
    images: list[RawImage] = []
    names: dict[str, None] = {}  # first mention, reading the XML files in sorted order
    for x in progress(xmls, len(xmls), "ingest: parsing VOC XML", get_logger("ingest")):
        image_id = x.relative_to(ann_dir).with_suffix("").as_posix()
        raw = RawImage(file_name="", origin=str(x), image_id=image_id, split=splits.get(image_id))
        images.append(raw)
        try:
            doc = SafeET.parse(x)
        except DefusedXmlException as e:
            raw.problem = ("unsafe_xml", f"refused to parse: {type(e).__name__} ({e}); entities and external references are not allowed")
            continue
        except (ET.ParseError, OSError, UnicodeDecodeError, ValueError) as e:
            raw.problem = ("invalid_annotation", f"cannot parse XML: {e}")
            continue
        top = doc.getroot()
        if top is None or top.tag != "annotation":
            raw.problem = ("invalid_annotation", f"root element is <{getattr(top, 'tag', '?')}>, expected <annotation>")
            continue
        file_name = (top.findtext("filename") or "").strip()
        # <filename> is a bare name: beside its XML in the flat layout, in JPEGImages otherwise
        prefix = x.parent.relative_to(ann_dir).as_posix() if root == ann_dir and "/" not in file_name.replace("\\", "/") else "."
        raw.file_name = str(Path(prefix) / (file_name or _find_image(root / prefix, x.stem)))
        size = top.find("size")
        try:
            raw.source["declared_size"] = [int(_number(size, "width")), int(_number(size, "height"))]
        except (ValueError, OverflowError):
            pass  # no usable <size>: the header's size is used
        for k, obj in enumerate(top.findall("object")):
            ro = _object(obj, f"{image_id}#{k}")
            if ro.class_name:
                names.setdefault(ro.class_name, None)
            raw.objects.append(ro)
    return RawDataset(root=root, images=images, class_names=list(names))

"""YOLO (Ultralytics) reader: a ``data.yaml`` with class names and image lists, one label file per image.

``data.yaml`` keys: ``path`` (dataset root; relative to the YAML file's
directory), ``train`` / ``val`` / ``test`` (each a directory of images, a
``.txt`` list of image paths, or a list of those) and ``names`` (a list, or a
dict index -> name). The split of an image is the key it was listed under.

Label files follow Ultralytics' rule: the image path with its last
``/images/`` replaced by ``/labels/`` and the extension by ``.txt``. Each
line is ``class cx cy w h`` in fractions of the image size, or
``class x1 y1 x2 y2 ...`` (a segmentation polygon, box = its extent). A
missing label file means an image with no objects (a background image), as
in Ultralytics.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import yaml

from components.core.errors import AnnotationError
from components.core.log import get_logger
from components.core.manifest import Task
from components.core.quarantine import QuarantineReport
from components.core.spec import DataSpec

from ._raw import IMAGE_EXTENSIONS, PathEscapeError, RawDataset, RawImage, RawObject, safe_join

__all__ = ["label_path", "read_yolo"]

_SPLIT_KEYS = (("train", "train"), ("val", "validation"), ("test", "test"))


def label_path(image: str) -> str:
    """The label file of an image path, by Ultralytics' rule.

    Args:
        image: the image path.

    Returns:
        The ``.txt`` label path.
    """
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    return os.path.splitext(sb.join(image.rsplit(sa, 1)))[0] + ".txt"


def _names(doc: dict[str, Any], src: Path) -> list[str]:
    names = doc.get("names")
    if isinstance(names, list) and all(isinstance(n, str | int) for n in names):
        out = [str(n).strip() for n in names]
    elif isinstance(names, dict):
        try:
            index = {int(k): str(v).strip() for k, v in names.items()}
        except (TypeError, ValueError):
            raise AnnotationError(str(src), "'names' keys must be class indices 0..N-1") from None
        if sorted(index) != list(range(len(index))):
            raise AnnotationError(str(src), f"'names' indices must be 0..{len(index) - 1}, got {sorted(index)}")
        out = [index[i] for i in range(len(index))]
    else:
        raise AnnotationError(str(src), "no 'names' list or mapping of class names")
    if any(not n for n in out) or len(set(out)) != len(out):
        raise AnnotationError(str(src), "'names' must be unique, non-empty class names")
    return out


def _listed_images(entry: str, base: Path, src: Path) -> list[str]:
    p = Path(entry) if os.path.isabs(entry) else base / entry
    if p.is_dir():
        return [str(f) for f in sorted(p.rglob("*")) if f.suffix.lower() in IMAGE_EXTENSIONS and f.is_file()]
    if p.is_file() and p.suffix.lower() == ".txt":
        out = []
        for line in p.read_text(encoding="utf-8", errors="replace").splitlines():
            line = line.strip()
            if not line:
                continue
            # Ultralytics: "./x" is relative to the list file; other relative names to the dataset root
            if line.startswith("./"):
                out.append(str(p.parent / line[2:]))
            elif os.path.isabs(line):
                out.append(line)
            else:
                out.append(str(base / line))
        return out
    raise AnnotationError(str(src), f"image list {entry!r} not found (looked for {p})")


def _parse_line(tokens: list[str], ann_id: str, names: list[str], keypoints: bool) -> RawObject:
    obj = RawObject(annotation_id=ann_id, class_name=None, normalized=True)
    try:
        cls_f = float(tokens[0])
        values = [float(t) for t in tokens[1:]]
    except ValueError:
        obj.problem = ("invalid_annotation", f"label {ann_id}: not numbers: {' '.join(tokens)!r}")
        return obj
    if not math.isfinite(cls_f) or cls_f != int(cls_f):
        obj.problem = ("invalid_annotation", f"label {ann_id}: class index {tokens[0]!r} is not an integer")
        return obj
    cls = int(cls_f)
    if not 0 <= cls < len(names):
        obj.problem = ("unknown_class", f"label {ann_id}: class index {cls} is not in names (0..{len(names) - 1})")
        return obj
    obj.class_name = names[cls]
    if len(values) == 4 or (keypoints and len(values) > 4):
        obj.bbox = values[:4]
    elif len(values) >= 6 and len(values) % 2 == 0:
        xs, ys = values[0::2], values[1::2]
        x0, y0 = min(xs), min(ys)
        w, h = max(xs) - x0, max(ys) - y0
        obj.bbox = [x0 + w / 2, y0 + h / 2, w, h]
        obj.segmentation = [values]
    else:
        obj.problem = ("invalid_annotation", f"label {ann_id}: expected 'class cx cy w h' or a polygon, got {len(values)} coordinates")
    return obj


def _read_labels(raw: RawImage, image: str, names: list[str], keypoints: bool) -> None:
    lp = label_path(image)
    try:
        text = Path(lp).read_text(encoding="utf-8")
    except FileNotFoundError:
        raw.source["label_file"] = None
        return
    except (OSError, UnicodeDecodeError) as e:
        raw.problem = ("invalid_annotation", f"label file {lp} cannot be read: {e}")
        return
    raw.source["label_file"] = lp
    raw.origin = lp
    for lineno, line in enumerate(text.splitlines(), 1):
        tokens = line.split()
        if tokens:
            raw.objects.append(_parse_line(tokens, f"{lp}:{lineno}", names, keypoints))


def read_yolo(data: DataSpec, task: Task, quarantine: QuarantineReport) -> RawDataset:
    """Reads a YOLO dataset from its ``data.yaml``.

    Args:
        data: the data spec (``source`` is the YAML file; ``images`` overrides
            the dataset root).
        task: the task (YOLO carries boxes or polygons).
        quarantine: unused here: every problem is attached to its image entry.

    Returns:
        The raw dataset; class names in the YAML's index order.

    Raises:
        AnnotationError: the YAML is missing or invalid, has no class names,
            no image list, or names an image list that does not exist.
    """
    src = Path(data.source)
    try:
        doc = yaml.safe_load(src.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise AnnotationError(str(src), "data.yaml not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise AnnotationError(str(src), f"cannot read: {e}") from None
    except yaml.YAMLError as e:
        raise AnnotationError(str(src), f"not valid YAML: {e}") from None
    except RecursionError:
        raise AnnotationError(str(src), "not valid YAML: nested too deeply") from None
    if not isinstance(doc, dict):
        raise AnnotationError(str(src), "not a YOLO data.yaml: expected a mapping")
    names = _names(doc, src)
    base = Path(str(doc["path"])) if doc.get("path") else src.parent
    if not base.is_absolute():
        base = src.parent / base
    root = _root(data, src, base)
    keypoints = "kpt_shape" in doc

    by_path: dict[str, RawImage] = {}
    listed = False
    for key, split in _SPLIT_KEYS:
        entries = doc.get(key)
        if not entries:
            continue
        listed = True
        for entry in entries if isinstance(entries, list) else [entries]:
            for image in _listed_images(str(entry), base, src):
                seen = by_path.get(os.path.normpath(image))
                if seen is not None:  # listed again (Ultralytics' coco128 lists one folder as train and val): one image
                    if split not in seen.source["listed_in"]:
                        seen.source["listed_in"].append(split)
                        seen.split = None  # in several splits: transform's content-hash split decides
                    continue
                # Ultralytics reads labels against the EXIF-upright image
                raw = RawImage(
                    file_name=image, origin=str(src), split=split, source={"listed_in": [split], "annotation_frame": "displayed"}
                )
                by_path[os.path.normpath(image)] = raw
                try:
                    path, _ = safe_join(root, image)
                except PathEscapeError:
                    continue  # quarantined later; its label file is never opened
                _read_labels(raw, str(path), names, keypoints)
    if not listed:
        raise AnnotationError(str(src), "no 'train', 'val' or 'test' image list")
    images = list(by_path.values())
    for raw in images:
        if len(raw.source["listed_in"]) == 1:
            del raw.source["listed_in"]
    return RawDataset(root=root, images=images, class_names=names)


def _root(data: DataSpec, src: Path, base: Path) -> Path:
    """The dataset root: ``path:`` when it stays inside the trusted folder (``data.images``, else the YAML's).

    A ``path:`` elsewhere on the machine is followed only with
    ``data.allow_outside_root``; otherwise the trusted folder stays the root, so
    every image under that ``path:`` is quarantined as ``path_escapes_root``.
    """
    trusted = Path(data.images) if data.images else src.parent
    if data.allow_outside_root:
        return Path(data.images) if data.images else base
    real_base, real_trusted = os.path.realpath(base), os.path.realpath(trusted)
    if real_base == real_trusted or real_base.startswith(real_trusted.rstrip(os.sep) + os.sep):
        return Path(data.images) if data.images else base
    get_logger("ingest").warning(
        "%s: 'path: %s' leaves the dataset root %s; its images are quarantined (set data.allow_outside_root: true to read them)",
        src,
        base,
        trusted,
    )
    return trusted

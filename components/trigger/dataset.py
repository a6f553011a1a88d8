"""The retraining dataset: what the production model was trained on plus the newly labelled images, as COCO.

The base is the canonical manifest the production model's training run
ingested (found upstream of the model in lineage), so retraining after a
retraining keeps every label added so far. The labelled images (a manifest
from the label import) are added; an image already in the base (same
sha256) takes its newer human label. Classes are matched by name, so
ingest's stable label map keeps every existing id and appends new classes.

The result is a self-contained COCO dataset directory::

    <dir>/annotations.json     COCO instances (classification: the image's category_id)
    <dir>/images/<sha>.<ext>   hard links to the original files (copies across file systems)

which a derived spec names as ``data.source`` (format ``coco``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from components.core.errors import DataError
from components.core.io import atomic_write_json
from components.core.logged_image import logged_image_problem
from components.core.manifest import ImageRecord, Manifest

__all__ = ["MergedDataset", "link_or_copy", "merge_datasets"]


@dataclass
class MergedDataset:
    """What :func:`merge_datasets` wrote.

    Attributes:
        annotations: the COCO file.
        images: images in the merged set.
        base_images: images that came from the base dataset.
        added: newly labelled images added.
        relabelled: base images whose label the new one replaced.
        classes: class names, in category-id order.
        quarantined: labelled images left out because their file is not the logged
            image (``(path, reason)``): changed or replaced since it was predicted.
    """

    annotations: Path
    images: int
    base_images: int
    added: int
    relabelled: int
    classes: list[str]
    quarantined: list[tuple[str, str]] = field(default_factory=list)


def link_or_copy(src: Path, dst: Path) -> None:
    """Hard-links a file, or copies it when a link is impossible (another file system).

    Args:
        src: the file.
        dst: where it should appear (its directory is created).
    """
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        return
    try:
        os.link(src, dst)
    except OSError:
        tmp = dst.with_name("." + dst.name + ".tmp")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)


def _categories(manifests: Iterable[Manifest]) -> dict[str, int]:
    """Class name -> COCO category id: the first manifest's ids, new names appended."""
    out: dict[str, int] = {}
    for m in manifests:
        for cid, name in sorted(m.label_map.classes.items()):
            if name not in out:
                free = cid if cid not in out.values() else max(out.values(), default=0) + 1
                out[name] = free
    return out


def _segmentation(seg: Any) -> Any:
    return seg if seg is not None else []


def merge_datasets(base: Manifest, labelled: Manifest, out_dir: str | os.PathLike[str]) -> MergedDataset:
    """Writes ``base`` plus ``labelled`` as one COCO dataset.

    Args:
        base: the dataset the production model was trained on.
        labelled: the newly labelled production images (same task).
        out_dir: the dataset directory to write (``annotations.json`` and ``images/``).

    Returns:
        What was written.

    A labelled image whose file no longer holds the bytes its sha256 names (changed,
    replaced or re-pointed since it was logged) is left out and listed in
    :attr:`MergedDataset.quarantined`, never copied into the training data.

    Raises:
        DataError: the tasks differ, or an image file is missing.
    """
    if base.task != labelled.task:
        raise DataError(f"cannot add {labelled.task} labels to a {base.task} dataset")
    out = Path(out_dir)
    cats = _categories([base, labelled])
    by_sha: dict[str, tuple[Manifest, ImageRecord]] = {}
    relabelled = 0
    for r in base.images:
        by_sha.setdefault(r.sha256, (base, r))
    base_count = len(by_sha)
    quarantined: list[tuple[str, str]] = []
    for r in labelled.images:
        # a labelled image is a logged one: its file must still be the bytes that were predicted
        src = labelled.image_path(r)
        problem = logged_image_problem(str(src), r.sha256, missing_ok=True)
        if problem is not None:
            quarantined.append((str(src), problem))
            continue
        if r.sha256 in by_sha and by_sha[r.sha256][0] is base:
            relabelled += 1
        by_sha[r.sha256] = (labelled, r)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for image_id, (m, r) in enumerate(by_sha.values(), start=1):
        src = m.image_path(r)
        if not src.is_file():
            raise DataError(f"{src}: image of {r.image_id} is missing; cannot build the retraining dataset")
        ext = PurePosixPath(src.name).suffix.lower() or ".jpg"
        rel = f"images/{r.sha256[:24]}{ext}"
        link_or_copy(src, out / rel)
        entry: dict[str, Any] = {"id": image_id, "file_name": rel, "width": r.width, "height": r.height}
        if m.task == "classification":
            if r.class_id is None:
                continue
            entry["category_id"] = cats[str(m.label_map.name_of(r.class_id))]
        images.append(entry)
        for o in r.objects:
            name = m.label_map.name_of(o.class_id)
            if name is None:
                raise DataError(f"image {r.image_id}: class id {o.class_id} is not in its label map")
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": cats[name],
                    "bbox": [float(v) for v in o.bbox],
                    "area": float(o.area or o.bbox[2] * o.bbox[3]),
                    "iscrowd": int(o.is_crowd),
                    "segmentation": _segmentation(o.segmentation),
                }
            )
    categories = [{"id": cid, "name": name, "supercategory": ""} for name, cid in sorted(cats.items(), key=lambda kv: kv[1])]
    path = atomic_write_json(
        out / "annotations.json",
        {
            "info": {
                "description": "cvpipe retraining dataset",
                "base_images": base_count,
                "added": len(labelled.images) - len(quarantined),
            },
            "licenses": [],
            "images": images,
            "annotations": annotations,
            "categories": categories,
        },
        indent=None,
    )
    return MergedDataset(
        annotations=path,
        images=len(images),
        base_images=base_count,
        added=len(labelled.images) - relabelled - len(quarantined),
        relabelled=relabelled,
        classes=[str(c["name"]) for c in categories],
        quarantined=quarantined,
    )

"""Class-per-folder reader: ``root/<class>/**/<image>`` (Keras ``image_dataset_from_directory`` layout).

When every top-level folder is a split name (``train``, ``val``/``validation``,
``test``), each holds class folders and gives its images that split. Every
file in a class folder is an image candidate (one that is not an image is
quarantined when its header is probed); hidden files (``.DS_Store``) are
skipped. An image lying outside any class folder has no label and is
quarantined. Class names are the folder names, in order of first appearance
walking the folders sorted by name (the class-order rule of every format).
"""

from __future__ import annotations

from pathlib import Path

from components.core.errors import AnnotationError
from components.core.manifest import Task
from components.core.quarantine import QuarantineReport
from components.core.spec import DataSpec

from ._raw import IMAGE_EXTENSIONS, SPLIT_NAMES, RawDataset, RawImage

__all__ = ["read_folders"]


def _visible_dirs(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))


def _loose_images(d: Path, split: str | None) -> list[RawImage]:
    return [
        RawImage(file_name=str(f), origin=str(d), split=split, problem=("missing_label", "image is not inside a class folder"))
        for f in sorted(d.iterdir())
        if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS
    ]


def read_folders(data: DataSpec, task: Task, quarantine: QuarantineReport) -> RawDataset:
    """Reads a class-per-folder dataset.

    Args:
        data: the data spec (``source`` is the root directory).
        task: the task (folders carry image-level classes).
        quarantine: unused here: every problem is attached to its image entry.

    Returns:
        The raw dataset.

    Raises:
        AnnotationError: the directory is missing or has no class folder.
    """
    src = Path(data.source)
    if not src.is_dir():
        raise AnnotationError(str(src), "class-folder source must be a directory")
    top = _visible_dirs(src)
    by_split = bool(top) and all(d.name.lower() in SPLIT_NAMES for d in top)
    groups: list[tuple[Path, str | None]] = [(d, SPLIT_NAMES[d.name.lower()]) for d in top] if by_split else [(src, None)]
    images: list[RawImage] = []
    names: dict[str, None] = {}
    for group, split in groups:
        images.extend(_loose_images(group, split))
        for class_dir in _visible_dirs(group):
            name = class_dir.name.strip()
            names.setdefault(name, None)
            for f in sorted(class_dir.rglob("*")):
                rel = f.relative_to(class_dir)
                if any(part.startswith(".") for part in rel.parts) or not f.is_file():
                    continue
                images.append(RawImage(file_name=str(f), origin=str(class_dir), class_name=name, split=split))
    if not names:
        raise AnnotationError(str(src), "no class folders (expected root/<class>/<image>)")
    return RawDataset(root=src, images=images, class_names=list(names))

"""The intermediate form every format reader produces, before validation.

A reader only parses its format: it turns each image entry into a
:class:`RawImage` with :class:`RawObject` children, noting problems it can see
while parsing (an unparsable line, a class index out of range). Everything
that needs the image itself (path safety, the header size, box checks, the
label map) happens once, for every format, in :mod:`components.ingest.core`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "IMAGE_EXTENSIONS",
    "SPLIT_NAMES",
    "PathEscapeError",
    "RawDataset",
    "RawImage",
    "RawObject",
    "floats",
    "is_finite",
    "join_inside",
    "safe_join",
]

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
"""File extensions treated as images when a directory is scanned."""

SPLIT_NAMES = {
    "train": "train",
    "training": "train",
    "val": "validation",
    "valid": "validation",
    "validation": "validation",
    "test": "test",
}
"""Source split names -> the canonical split names of the manifest."""

Problem = tuple[str, str]
"""``(kind, reason)`` of a rejected item."""


@dataclass(slots=True)
class RawObject:
    """One object as the source states it.

    Attributes:
        annotation_id: the source's id, or one made up as ``<image>#<index>``.
        class_name: the class name, or None when the source's class is unknown.
        bbox: ``[x, y, w, h]`` absolute pixels (``[cx, cy, w, h]`` fractions of the
            image size when ``normalized``), or None to derive it from the mask.
        segmentation: COCO polygons (fractions when ``normalized``) or RLE dict.
        area: the source's area, or None to compute it.
        is_crowd: COCO ``iscrowd``.
        normalized: coordinates are fractions of the image size (YOLO).
        attributes: format-specific flags kept on the object.
        problem: a problem found while parsing; the object is quarantined.
    """

    annotation_id: str
    class_name: str | None
    bbox: list[float] | None = None
    segmentation: list[list[float]] | dict[str, Any] | None = None
    area: float | None = None
    is_crowd: bool = False
    normalized: bool = False
    attributes: dict[str, Any] = field(default_factory=dict)
    problem: Problem | None = None


@dataclass(slots=True)
class RawImage:
    """One image entry as the source states it.

    Attributes:
        file_name: the image file as named by the source: relative to the dataset
            root, or absolute.
        origin: the annotation file (or file:line) the entry came from.
        image_id: the source's id; None to use the path relative to the root.
        objects: the objects.
        class_name: image-level class (classification).
        split: canonical split name the source assigned.
        source: format-specific extras kept on the record.
        problem: a problem found while parsing; the whole image is quarantined.
    """

    file_name: str
    origin: str
    image_id: str | None = None
    objects: list[RawObject] = field(default_factory=list)
    class_name: str | None = None
    split: str | None = None
    source: dict[str, Any] = field(default_factory=dict)
    problem: Problem | None = None


@dataclass(slots=True)
class RawDataset:
    """What a reader found.

    Attributes:
        root: directory image paths are relative to.
        images: image entries in source order.
        class_names: class names the source declares, in the source's order
            (the order new label-map ids are given in).
    """

    root: Path
    images: list[RawImage]
    class_names: list[str]


class PathEscapeError(ValueError):
    """An image file name points outside the dataset root."""


def safe_join(root: str | os.PathLike[str], name: str) -> tuple[Path, str]:
    """Resolves a file name from an annotation file against the dataset root.

    The check is lexical (``..`` segments are collapsed, symlinks are not
    followed), so a dataset whose files are symlinks into a cache (DVC,
    git-annex) still reads, while a name can never reach outside the root.
    Backslashes count as separators (annotation files written on Windows).

    Args:
        root: the dataset root.
        name: the name as given by the source.

    Returns:
        ``(absolute path, path relative to root in POSIX form)``.

    Raises:
        PathEscapeError: the name is empty, names the root itself, or points
            outside the root (``../``, an absolute path elsewhere).
    """
    path, rel = join_inside(os.path.abspath(root), name)
    return Path(path), rel


def join_inside(root_abs: str, name: str) -> tuple[str, str]:
    """:func:`safe_join` on strings, for a root already absolute (ingest calls it once per image)."""
    n = name.replace("\\", "/")
    if not n.strip() or "\x00" in n:
        raise PathEscapeError(f"invalid file name {name!r}")
    candidate = os.path.normpath(n if n.startswith("/") else os.path.join(root_abs, n))
    if candidate == root_abs:
        raise PathEscapeError(f"file name {name!r} names the dataset root, not a file")
    prefix = root_abs if root_abs.endswith("/") else root_abs + "/"
    if not candidate.startswith(prefix) or candidate.startswith("/", len(prefix)):
        raise PathEscapeError(f"file name {name!r} points outside the dataset root {root_abs}")
    return candidate, candidate[len(prefix) :]


_PLAIN_NUMBERS = frozenset({int, float})
_FLOAT = frozenset({float})


def floats(values: Any, n: int) -> list[float]:
    """Converts a sequence of ``n`` numbers to floats (NaN and inf are kept, for the caller to reject).

    Args:
        values: the sequence.
        n: required length.

    Returns:
        The floats: ``values`` itself when it is a list of floats already (a
        freshly parsed one, which the caller owns), else a new list.

    Raises:
        ValueError: not a sequence of ``n`` numbers.
    """
    if not isinstance(values, list | tuple) or len(values) != n:
        raise ValueError(f"expected {n} numbers, got {values!r}")
    if type(values) is list and _FLOAT.issuperset(map(type, values)):  # parsed JSON decimals: already floats
        return values
    if _PLAIN_NUMBERS.issuperset(map(type, values)):  # the common case, without a Python-level loop
        return list(map(float, values))
    out: list[float] = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float | str):
            raise ValueError(f"not a number: {v!r}")
        out.append(float(v))
    return out


def is_finite(values: list[float]) -> bool:
    """Whether every value is a finite number."""
    return all(map(math.isfinite, values))

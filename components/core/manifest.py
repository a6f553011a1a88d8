"""The canonical dataset manifest every ingest format is read into.

One :class:`Manifest` describes a dataset version: the task, the label map,
and one :class:`ImageRecord` per image with its sha256, size and objects.
Boxes are absolute pixels ``[x, y, width, height]`` (COCO order), class ids
come from the label map, masks keep COCO's segmentation encodings (polygons
or RLE) so nothing is rasterised before it must be.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.dataclasses import dataclass
from pydantic_core import PydanticSerializationError

from .bulk import bulk_build
from .io import atomic_path, read_json
from .labelmap import LabelMap

__all__ = ["ImageRecord", "Manifest", "ObjectAnnotation", "Task"]

Task = Literal["classification", "detection", "segmentation"]


def _to_json(model: BaseModel, exclude: set[str] | None = None) -> str:
    """A model as compact JSON; a name that is not UTF-8 (a surrogate escape) is written escaped, as ``json`` does."""
    try:
        return model.model_dump_json(exclude=exclude)
    except PydanticSerializationError:
        return json.dumps(model.model_dump(mode="json", exclude=exclude), separators=(",", ":"))


@dataclass(slots=True, config=ConfigDict(ser_json_inf_nan="constants"))  # a NaN box stays NaN for validate to report
class ObjectAnnotation:
    """One annotated object in an image.

    A pydantic dataclass with slots rather than a model: a manifest can hold
    millions of them, and a model's per-instance dict and set of fields made
    each three times larger (1.5 KB against 0.5 KB with a polygon); it is
    validated, serialised and compared the same way.

    Attributes:
        class_id: id in the label map.
        bbox: ``[x, y, width, height]`` in absolute pixels.
        area: object area in pixels (mask area when a mask exists, else box area).
        is_crowd: COCO ``iscrowd``: a region of many objects, ignored as a match target.
        segmentation: COCO polygon list (``[[x1, y1, x2, y2, ...], ...]``) or RLE
            dict (``{"size": [h, w], "counts": ...}``), or None.
        annotation_id: the source's id for the object, if it had one.
        attributes: format-specific flags of the object worth keeping (Pascal VOC
            ``difficult``, ``truncated``, ``pose``...).
    """

    class_id: int
    bbox: list[float] = Field(min_length=4, max_length=4)
    area: float = 0.0
    is_crowd: bool = False
    segmentation: list[list[float]] | dict[str, Any] | None = None
    annotation_id: str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def from_checked(
        cls,
        class_id: int,
        bbox: list[float],
        area: float,
        is_crowd: bool,
        segmentation: list[list[float]] | dict[str, Any] | None,
        annotation_id: str | None,
        attributes: dict[str, Any],
    ) -> ObjectAnnotation:
        """An object from values its caller has already checked and converted to these types, not validated again.

        Ingest checks and converts every field of every object itself (a
        million objects in a large COCO file); validating them once more
        took 3.4 us of the 6 us each object cost. Anything else constructs
        ``ObjectAnnotation(...)``, which validates.
        """
        obj = cls.__new__(cls)
        obj.class_id = class_id
        obj.bbox = bbox
        obj.area = area
        obj.is_crowd = is_crowd
        obj.segmentation = segmentation
        obj.annotation_id = annotation_id
        obj.attributes = attributes
        return obj


class ImageRecord(BaseModel):
    """One image of the dataset.

    Attributes:
        image_id: stable id (the source's id, else the relative path).
        path: path relative to the manifest's ``root`` (or absolute).
        sha256: hex sha256 of the file's bytes.
        width: pixels.
        height: pixels.
        objects: annotated objects (detection and segmentation).
        class_id: image-level class (classification).
        split: a split the source assigned, if any (train/validation/test).
        source: format-specific extras worth keeping (original file name, ...).
        raw_path: the exact file name as hex of its bytes, only when ``path`` had
            to be escaped for display (a name that is not UTF-8: ``path`` shows
            ``caf\\xe9.jpg``, ``raw_path`` opens the file).
    """

    model_config = ConfigDict(ser_json_inf_nan="constants")  # a NaN box stays NaN for validate to report

    image_id: str
    path: str
    sha256: str
    width: int
    height: int
    objects: list[ObjectAnnotation] = Field(default_factory=list)
    class_id: int | None = None
    split: str | None = None
    source: dict[str, Any] = Field(default_factory=dict)
    raw_path: str | None = None

    def file(self, root: str | os.PathLike[str]) -> Path:
        """The image file: ``root / path`` (an absolute path wins), opened by its exact bytes.

        Args:
            root: the manifest's root.

        Returns:
            The path.
        """
        name = os.fsdecode(bytes.fromhex(self.raw_path)) if self.raw_path else self.path
        p = Path(name)
        return p if p.is_absolute() else Path(root) / p


class Manifest(BaseModel):
    """A dataset version in canonical form.

    Attributes:
        task: classification, detection or segmentation.
        root: directory that relative image paths are resolved against.
        label_map: the versioned label map.
        images: one record per accepted image.
        format: the annotation format it was read from.
        source: the annotation file or directory it was read from.
    """

    model_config = ConfigDict(ser_json_inf_nan="constants")  # a NaN box stays NaN for validate to report

    task: Task
    root: str
    label_map: LabelMap
    images: list[ImageRecord] = Field(default_factory=list)
    format: str = ""
    source: str = ""

    def image_path(self, record: ImageRecord) -> Path:
        """Absolute path of an image record's file."""
        return record.file(self.root)

    def __len__(self) -> int:
        return len(self.images)

    def __iter__(self) -> Iterator[ImageRecord]:  # type: ignore[override]
        return iter(self.images)

    def images_without_annotations(self) -> list[ImageRecord]:
        """Images with no objects (detection/segmentation) or no class (classification)."""
        if self.task == "classification":
            return [r for r in self.images if r.class_id is None]
        return [r for r in self.images if not r.objects]

    def class_counts(self) -> dict[str, int]:
        """Examples per class name: objects for detection/segmentation, images for classification.

        Every class of the label map is present, with 0 when it has no example.
        """
        counts: Counter[int] = Counter()
        for r in self.images:
            if self.task == "classification":
                if r.class_id is not None:
                    counts[r.class_id] += 1
            else:
                counts.update(o.class_id for o in r.objects if not o.is_crowd)
        return {name: counts.get(cid, 0) for cid, name in sorted(self.label_map.classes.items())}

    def count_of(self, class_name: str) -> int:
        """How many examples of one class (0 for an unknown name)."""
        return self.class_counts().get(class_name, 0)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Writes the manifest as JSON (atomically), one image record at a time.

        Each record is serialised on its own, so writing never holds a second,
        dict-shaped copy of a large manifest (100,000 images, a million objects).

        Args:
            path: the file.

        Returns:
            The path written.
        """
        head = _to_json(self, exclude={"images"})
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
            f.write(head[:-1] + ',"images":[')
            for i, record in enumerate(self.images):
                if i:
                    f.write(",")
                f.write(_to_json(record))
            f.write("]}")
            f.flush()
            os.fsync(f.fileno())
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Manifest:
        """Reads a manifest written by :meth:`save`.

        The JSON is parsed and validated in one pass by pydantic-core, without
        an intermediate tree of Python dicts.

        Args:
            path: the file.

        Returns:
            The manifest.

        Raises:
            OSError: the file cannot be read.
            ValueError: it is not a manifest (``pydantic.ValidationError``).
        """
        data = Path(path).read_bytes()
        with bulk_build():  # one object per record and per annotation: no cycle collections walking them meanwhile
            try:
                return cls.model_validate_json(data)
            except ValueError:
                if b"\\ud" not in data and b"\\uD" not in data:
                    raise
            return cls.model_validate(read_json(path))  # an escaped non-UTF-8 name: Python's json reads it back

"""Versioned label maps with stable class ids.

A label map assigns each class name an integer id that never changes once
given: adding a class appends a new id (and bumps the version), it never
renumbers the existing ones, so a model trained on version 1 still reads its
outputs correctly against version 3. Ids start at 1, as in the TensorFlow
Object Detection API (0 is background).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, Field, model_validator

from .errors import AnnotationError
from .io import atomic_write_json, read_json

__all__ = ["LabelMap"]


class LabelMap(BaseModel):
    """Class names with stable integer ids and a version number.

    Attributes:
        classes: id -> name.
        version: increases by one each time classes are added.
    """

    classes: dict[int, str] = Field(default_factory=dict)
    version: int = 1

    @model_validator(mode="after")
    def _check(self) -> LabelMap:
        names = list(self.classes.values())
        if len(set(names)) != len(names):
            raise ValueError("class names must be unique")
        if any(i < 1 for i in self.classes):
            raise ValueError("class ids start at 1 (0 is background)")
        if any(not n or not n.strip() for n in names):
            raise ValueError("class names must be non-empty")
        return self

    @classmethod
    def from_names(cls, names: Iterable[str]) -> LabelMap:
        """Builds version 1 of a label map from names, in order, ids 1..N.

        Args:
            names: class names; duplicates are ignored after the first.

        Returns:
            The label map.
        """
        ordered: list[str] = []
        for n in names:
            if n not in ordered:
                ordered.append(n)
        return cls(classes={i + 1: n for i, n in enumerate(ordered)}, version=1)

    @property
    def names(self) -> list[str]:
        """Class names ordered by id."""
        return [self.classes[i] for i in sorted(self.classes)]

    @property
    def ids(self) -> list[int]:
        """Class ids, ascending."""
        return sorted(self.classes)

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    def id_of(self, name: str) -> int | None:
        """Returns the id of a class name, or None when unknown."""
        for i, n in self.classes.items():
            if n == name:
                return i
        return None

    def name_of(self, class_id: int) -> str | None:
        """Returns the name of a class id, or None when unknown."""
        return self.classes.get(class_id)

    def __contains__(self, name: object) -> bool:
        return name in self.classes.values()

    def extended(self, names: Iterable[str]) -> LabelMap:
        """Returns a label map with any new names appended under new ids.

        Existing ids never change. The version increases by one only when a
        class was actually added.

        Args:
            names: class names that must be present.

        Returns:
            This label map if nothing is new, else the next version.
        """
        new = [n for n in dict.fromkeys(names) if n not in self]
        if not new:
            return self
        next_id = max(self.classes, default=0) + 1
        classes = dict(self.classes)
        for offset, n in enumerate(new):
            classes[next_id + offset] = n
        return LabelMap(classes=classes, version=self.version + 1)

    def dense_index(self) -> dict[int, int]:
        """Maps class id -> contiguous index 0..N-1 (for model outputs)."""
        return {cid: i for i, cid in enumerate(self.ids)}

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Writes the label map as JSON (atomically).

        Args:
            path: the file.

        Returns:
            The path written.
        """
        return atomic_write_json(path, {"version": self.version, "classes": {str(k): v for k, v in sorted(self.classes.items())}})

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LabelMap:
        """Reads a label map written by :meth:`save` (or a plain list of names).

        Args:
            path: the file.

        Returns:
            The label map.

        Raises:
            AnnotationError: the file is missing or malformed.
        """
        try:
            data = read_json(path)
        except FileNotFoundError:
            raise AnnotationError(str(path), "label map file not found") from None
        except ValueError as e:
            raise AnnotationError(str(path), f"label map is not valid JSON: {e}") from None
        except RecursionError:
            raise AnnotationError(str(path), "label map is not valid JSON: nested too deeply") from None
        try:
            if isinstance(data, list):
                return cls.from_names(str(n) for n in data)
            return cls(classes={int(k): str(v) for k, v in data["classes"].items()}, version=int(data.get("version", 1)))
        except (KeyError, TypeError, ValueError) as e:
            raise AnnotationError(str(path), f"malformed label map: {e}") from None

"""The quarantine report: every rejected image or annotation, with its reason.

Components never drop an item silently. They add it here with the file, the
kind of problem and a human-readable reason; the report is written as JSON
(for tools) and CSV (for people) before any limit check can fail the run.
"""

from __future__ import annotations

import csv
import io
import os
from collections import Counter
from pathlib import Path

from pydantic import BaseModel, Field

from .errors import QuarantineLimitError
from .io import atomic_write_json, atomic_write_text, display_name, read_json

__all__ = ["QuarantineItem", "QuarantineReport"]


class QuarantineItem(BaseModel):
    """One rejected item.

    Attributes:
        file: the image or annotation file concerned.
        kind: a short machine-readable problem kind (``missing_file``, ``box_outside_image``...).
        reason: a sentence a person understands.
        stage: the component that rejected it.
        image_id: the image's id when known.
        annotation_id: the annotation's id when one object (not the image) was rejected.
    """

    file: str
    kind: str
    reason: str
    stage: str
    image_id: str | None = None
    annotation_id: str | None = None


class QuarantineReport(BaseModel):
    """All items one component rejected.

    Attributes:
        stage: the component name.
        total: items seen (images), for the limit check.
        items: rejected items.
    """

    stage: str
    total: int = 0
    items: list[QuarantineItem] = Field(default_factory=list)

    def add(self, file: str, kind: str, reason: str, image_id: str | None = None, annotation_id: str | None = None) -> None:
        """Records one rejected item.

        Args:
            file: the image or annotation file.
            kind: short problem kind.
            reason: human-readable reason.
            image_id: the image's id when known.
            annotation_id: the object's id when a single annotation was rejected.
        """

        def shown(v: str | None) -> str | None:  # names that are not UTF-8 are escaped, never a crash
            return None if v is None else display_name(str(v))

        self.items.append(
            QuarantineItem(
                file=display_name(str(file)),
                kind=kind,
                reason=display_name(reason),
                stage=self.stage,
                image_id=shown(image_id),
                annotation_id=shown(annotation_id),
            )
        )

    def extend(self, other: QuarantineReport) -> None:
        """Appends another report's items (keeping their stage)."""
        self.items.extend(other.items)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def rejected_images(self) -> int:
        """Number of distinct images (or files) rejected whole, not single annotations."""
        return len({(i.image_id or i.file) for i in self.items if i.annotation_id is None})

    def by_kind(self) -> dict[str, int]:
        """Count of items per problem kind."""
        return dict(Counter(i.kind for i in self.items))

    def to_csv(self) -> str:
        """The report as CSV text."""
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["stage", "kind", "file", "image_id", "annotation_id", "reason"])
        for i in self.items:
            w.writerow([i.stage, i.kind, i.file, i.image_id or "", i.annotation_id or "", i.reason])
        return buf.getvalue()

    def write(self, directory: str | os.PathLike[str]) -> Path:
        """Writes ``quarantine.json`` and ``quarantine.csv`` into a directory.

        Args:
            directory: where to write.

        Returns:
            The JSON file's path.
        """
        d = Path(directory)
        atomic_write_text(d / "quarantine.csv", self.to_csv())
        return atomic_write_json(d / "quarantine.json", self.model_dump(mode="json"))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> QuarantineReport:
        """Reads a report written by :meth:`write` (the JSON file or its directory)."""
        p = Path(path)
        if p.is_dir():
            p = p / "quarantine.json"
        return cls.model_validate(read_json(p))

    def check_limit(self, max_fraction: float | None, max_count: int | None, report_path: str) -> None:
        """Fails the run when more images were rejected than allowed.

        Args:
            max_fraction: largest allowed fraction of rejected images (None: no limit).
            max_count: largest allowed number of rejected images (None: no limit).
            report_path: where the report was written, for the message.

        Raises:
            QuarantineLimitError: a limit is crossed.
        """
        rejected = self.rejected_images
        if max_count is not None and rejected > max_count:
            raise QuarantineLimitError(self.stage, rejected, self.total, f"{max_count} items", report_path)
        if max_fraction is not None and self.total and rejected / self.total > max_fraction:
            raise QuarantineLimitError(self.stage, rejected, self.total, f"{max_fraction:.0%}", report_path)

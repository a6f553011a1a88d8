"""A validation finding: one anomaly with its policy, severity and place (shared by :mod:`.core` and :mod:`.report`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from components.core.spec import Policy

__all__ = ["Finding", "Level"]

Level = Literal["image", "object", "dataset"]
"""Where a finding is: one image, one object, or the whole dataset."""


class Finding(BaseModel):
    """One anomaly: an item-level problem, a dataset-level problem or a TFDV anomaly.

    Attributes:
        kind: one of :data:`KINDS`.
        policy: the effective policy (``fail``, ``warn`` or ``quarantine``).
        severity: ``error`` (fail), ``quarantined`` or ``warning``.
        level: ``image``, ``object`` or ``dataset``.
        message: a sentence a person understands.
        file: the image file, for image and object findings.
        image_id: the image's id.
        annotation_id: the object's id (or ``<image_id>#<index>``) for object findings.
        table: ``images`` or ``objects`` for TFDV findings.
        feature: the TFDV feature, or the class name for ``too_few_examples``.
    """

    kind: str
    policy: Policy
    severity: Literal["error", "quarantined", "warning"]
    level: Level
    message: str
    file: str | None = None
    image_id: str | None = None
    annotation_id: str | None = None
    table: str | None = None
    feature: str | None = None

    def line(self) -> str:
        """The finding on one line (for logs and the failure message)."""
        where = self.file or (f"{self.table}.{self.feature}" if self.table and self.feature else self.feature or self.table or "dataset")
        if self.annotation_id:
            where += f" [{self.annotation_id}]"
        return f"{self.kind} ({self.policy}): {where}: {self.message}"

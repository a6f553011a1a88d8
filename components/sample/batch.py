"""The labelling batch: what sampling drew from the prediction log, the unit people label.

Shared by sampling (:mod:`components.sample.core`), the Label Studio round
trip (:mod:`components.sample.labelstudio`) and label simulation.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from components.core.clock import utc
from components.core.errors import DataError
from components.core.io import atomic_write_json, read_json
from components.core.labelmap import LabelMap
from components.core.manifest import Task

__all__ = [
    "BATCH_FILE",
    "COCO_FILE",
    "LABEL_CONFIG_FILE",
    "STRATA",
    "TASKS_FILE",
    "LabellingBatch",
    "SampledItem",
    "SamplingConfig",
    "Stratum",
    "new_batch_id",
]

Stratum = Literal["class", "uncertain", "random"]
STRATA: tuple[Stratum, ...] = ("random", "class", "uncertain")
"""Strata in the order they are drawn."""
BATCH_FILE = "batch.json"
TASKS_FILE = "tasks.json"
COCO_FILE = "predictions_coco.json"
LABEL_CONFIG_FILE = "label_config.xml"


class SamplingConfig(BaseModel):
    """How a labelling batch is drawn (the fields of the spec's ``monitoring.sampling``).

    Attributes:
        per_class: images per predicted class the batch should hold, where the window has them.
        uncertain: images with the lowest top score.
        random_share: share of ``max_items`` drawn uniformly from the window.
        max_items: the batch's size limit.
        seed: random seed of the draws.
    """

    model_config = ConfigDict(extra="ignore", from_attributes=True)

    per_class: int = Field(12, ge=0)
    uncertain: int = Field(10, ge=0)
    random_share: float = Field(0.5, ge=0.0, le=1.0)
    max_items: int = Field(100, ge=1)
    seed: int = 0


class SampledItem(BaseModel):
    """One image of a labelling batch, with the prediction that stands for it.

    Attributes:
        stratum: why it was picked: ``random``, ``class`` or ``uncertain``.
        request_id: the logged prediction.
        image_sha256: the image's sha256.
        image_uri: where the image is.
        width: pixels.
        height: pixels.
        model_name: model that predicted.
        model_version: its version.
        event_timestamp: when it predicted.
        predicted_class: top label-map id (0: nothing).
        predicted_class_name: its name.
        top_score: top score.
        predictions: the prediction JSON (see :mod:`components.core.prediction_log`).
    """

    stratum: Stratum
    request_id: str
    image_sha256: str
    image_uri: str
    width: int
    height: int
    model_name: str
    model_version: int
    event_timestamp: datetime
    predicted_class: int
    predicted_class_name: str = ""
    top_score: float = 0.0
    predictions: str = "{}"


class LabellingBatch(BaseModel):
    """A batch of images sent to people for labelling.

    Attributes:
        batch_id: unique id (``lb-YYYYMMDDTHHMMSS-xxxxxx``), carried by every task and label.
        created: when the batch was drawn (UTC).
        model_name: the model whose predictions were sampled.
        task: classification, detection or segmentation.
        label_map: the model's label map (the classes people choose from).
        window_start: the log window's start (inclusive).
        window_end: the log window's end (exclusive).
        config: the sampling configuration.
        window_predictions: predictions in the window.
        window_images: distinct images in the window.
        unlabellable: distinct images left out for want of an ``image_uri``.
        items: the selected images.
        quarantined: selected images left out because the file at their ``image_uri`` is
            not the logged image (``{"image_sha256", "image_uri", "reason"}``).
    """

    batch_id: str
    created: datetime
    model_name: str
    task: Task
    label_map: LabelMap
    window_start: datetime
    window_end: datetime
    config: SamplingConfig
    window_predictions: int = 0
    window_images: int = 0
    unlabellable: int = 0
    items: list[SampledItem] = Field(default_factory=list)
    quarantined: list[dict[str, str]] = Field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Items per stratum (every stratum present)."""
        c = Counter(i.stratum for i in self.items)
        return {s: c.get(s, 0) for s in STRATA}

    def item(self, image_sha256: str) -> SampledItem | None:
        """The item of an image, or None."""
        return next((i for i in self.items if i.image_sha256 == image_sha256), None)

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Writes ``batch.json`` into a directory (atomically).

        Args:
            directory: the batch directory.

        Returns:
            The file.
        """
        return atomic_write_json(Path(directory) / BATCH_FILE, self.model_dump(mode="json"))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LabellingBatch:
        """Reads ``batch.json`` (the file or its directory).

        Args:
            path: the file or the batch directory.

        Returns:
            The batch.

        Raises:
            DataError: missing or malformed.
        """
        p = Path(path)
        if p.is_dir():
            p = p / BATCH_FILE
        try:
            return cls.model_validate(read_json(p))
        except (OSError, ValueError) as e:
            raise DataError(f"{p}: not a labelling batch: {e}") from None


def new_batch_id(now: datetime | None = None) -> str:
    """A fresh batch id, ``lb-YYYYMMDDTHHMMSS-xxxxxx``.

    Args:
        now: the time in the id (default: now, UTC).

    Returns:
        The id.
    """
    t = utc(now or datetime.now(UTC))
    return f"lb-{t:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"

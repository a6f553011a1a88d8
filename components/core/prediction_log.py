"""The prediction log contract: row types, columns, schemas, and reading a window through Feast.

Every prediction a model serves (batch or online) becomes one
:class:`PredictionRow`; every human label imported from Label Studio becomes
one :class:`LabelRow`. The writer (:class:`components.predict.logs.PredictionLog`,
fed by the server's write-ahead log) stores them as parquet part files under the
feature repository's ``data/`` directory; :class:`PredictionLogReader` reads them
back through Feast's historical retrieval, so sampling, monitoring, live metrics
and drift run against the embedded file offline store and, with another
``feature_store.yaml``, against BigQuery, without importing the serving side.

Feast layout (``feature_repo/definitions.py``)::

    entity prediction (join key request_id)   -> feature view "predictions"   <- data/predictions/*.parquet
    entity image      (join key image_sha256) -> feature view "image_labels"  <- data/labels/*.parquet

Timestamps and the point-in-time join:

* a prediction's ``event_timestamp`` is when the model made it (UTC);
* a label's ``event_timestamp`` is when the person completed it (Label Studio's
  annotation time), ``created_timestamp`` when cvpipe imported it (breaks ties);
* :meth:`PredictionLogReader.joined` asks Feast for each prediction's label *as of the
  evaluation time* ``as_of`` (default: now), not as of the prediction time. The
  ground truth of an image does not change with time, so a label given after a
  prediction (the normal case: people label what the model already saw) joins
  it; a label completed after ``as_of`` does not, so evaluating a past window
  again later gives the same answer; a corrected label (a later row for the
  same image) supersedes the earlier one.

JSON columns:

* ``PredictionRow.predictions``: ``{"task", "width", "height", "class_ids",
  "scores", "boxes"}`` with boxes ``[x, y, width, height]`` in pixels;
  classification adds ``"probabilities"`` and ``"label_ids"`` (the ids the
  probabilities are ordered by); segmentation adds ``"polygons"`` (per region,
  COCO polygon lists in pixels) and ``boxes``/``scores`` are each class
  region's tight box and image fraction.
* ``LabelRow.ground_truth``: ``{"task", "width", "height", "objects": [{"class_id",
  "bbox", "segmentation"?}]}`` for detection and segmentation, ``{"task",
  "width", "height", "class_id"}`` for classification (see :func:`ground_truth_json`).

Feast is imported on first read, not when this module is.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, Field, field_validator

import components.core.parquet  # noqa: F401 - installs pyarrow_hotfix before Feast/pyarrow read the part files here

from .clock import utc
from .errors import DataError

if TYPE_CHECKING:
    import pandas as pd

T = TypeVar("T")

__all__ = [
    "LABELS_DIR",
    "LABELS_VIEW",
    "LABEL_FEATURES",
    "LABEL_SCHEMA",
    "PREDICTIONS_DIR",
    "PREDICTIONS_VIEW",
    "PREDICTION_FEATURES",
    "PREDICTION_SCHEMA",
    "LabelRow",
    "PredictionLogReader",
    "PredictionRow",
    "ground_truth_json",
    "has_parts",
]

PREDICTIONS_VIEW = "predictions"
"""Feast feature view of the prediction log (entity ``prediction``, join key ``request_id``)."""
LABELS_VIEW = "image_labels"
"""Feast feature view of human labels (entity ``image``, join key ``image_sha256``)."""

PREDICTION_FEATURES: tuple[str, ...] = (
    "model_name",
    "model_version",
    "image_sha256",
    "image_uri",
    "width",
    "height",
    "brightness",
    "contrast",
    "predictions",
    "predicted_class",
    "predicted_class_name",
    "top_score",
    "num_detections",
    "embedding",
)
"""Features of :data:`PREDICTIONS_VIEW`, in column order."""
LABEL_FEATURES: tuple[str, ...] = ("labelling_batch_id", "stratum", "ground_truth", "labelled_at")
"""Features of :data:`LABELS_VIEW` (``labelled_at`` repeats the label's event timestamp)."""

PREDICTIONS_DIR = "predictions"
"""Directory of prediction part files under the repository's ``data/``."""
LABELS_DIR = "labels"
"""Directory of label part files under the repository's ``data/``."""
_TS = pa.timestamp("us", tz="UTC")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

PREDICTION_SCHEMA = pa.schema(
    [
        ("event_timestamp", _TS),
        ("request_id", pa.string()),
        ("model_name", pa.string()),
        ("model_version", pa.int64()),
        ("image_sha256", pa.string()),
        ("image_uri", pa.string()),
        ("width", pa.int64()),
        ("height", pa.int64()),
        ("brightness", pa.float32()),
        ("contrast", pa.float32()),
        ("predictions", pa.string()),
        ("predicted_class", pa.int64()),
        ("predicted_class_name", pa.string()),
        ("top_score", pa.float32()),
        ("num_detections", pa.int64()),
        ("embedding", pa.list_(pa.float32())),
    ]
)
"""Parquet schema of a prediction log part file."""

LABEL_SCHEMA = pa.schema(
    [
        ("event_timestamp", _TS),
        ("created_timestamp", _TS),
        ("image_sha256", pa.string()),
        ("labelling_batch_id", pa.string()),
        ("stratum", pa.string()),
        ("ground_truth", pa.string()),
        ("labelled_at", _TS),
    ]
)
"""Parquet schema of a labels part file."""


class PredictionRow(BaseModel):
    """One logged prediction.

    Attributes:
        event_timestamp: when the prediction was made (UTC; a naive value is taken as UTC).
        request_id: unique id of this prediction (the Feast join key of the log).
        model_name: registry model name.
        model_version: registry version number.
        image_sha256: hex sha256 of the encoded image bytes (the join key of labels).
        image_uri: where the image lives (a path or URL; empty for online requests without one).
        width: image width in pixels.
        height: image height in pixels.
        brightness: mean luminance (ITU-R BT.601), 0..1.
        contrast: standard deviation of luminance, 0..1.
        predictions: the prediction as JSON (see the module docstring).
        predicted_class: label-map id of the top prediction, 0 when there is none.
        predicted_class_name: its class name, empty when there is none.
        top_score: score of the top prediction, 0 when there is none.
        num_detections: number of predicted objects (classification: 1; segmentation: class regions).
        embedding: penultimate-layer features (empty when the model exports none).
    """

    event_timestamp: datetime
    request_id: str = Field(min_length=1)
    model_name: str
    model_version: int
    image_sha256: str = Field(min_length=1)
    image_uri: str = ""
    width: int = Field(ge=0)
    height: int = Field(ge=0)
    brightness: float
    contrast: float
    predictions: str
    predicted_class: int = 0
    predicted_class_name: str = ""
    top_score: float = 0.0
    num_detections: int = Field(default=0, ge=0)
    embedding: list[float] = Field(default_factory=list)

    @field_validator("event_timestamp")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        return utc(v)

    def prediction(self) -> dict[str, Any]:
        """The parsed ``predictions`` JSON."""
        return dict(json.loads(self.predictions))


class LabelRow(BaseModel):
    """One human label of an image.

    Attributes:
        image_sha256: hex sha256 of the encoded image bytes (the Feast join key).
        event_timestamp: when the label was completed (UTC; naive is taken as UTC).
        labelling_batch_id: the labelling batch the task belonged to.
        ground_truth: the label as JSON (see :func:`ground_truth_json`).
        stratum: why the image was sampled for labelling: ``class``, ``uncertain`` or
            ``random`` (empty when it came from elsewhere). Live metrics use only
            ``random``: it is the one unbiased sample of production.
    """

    image_sha256: str = Field(min_length=1)
    event_timestamp: datetime
    labelling_batch_id: str
    ground_truth: str
    stratum: str = ""

    @field_validator("event_timestamp")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        return utc(v)

    def truth(self) -> dict[str, Any]:
        """The parsed ``ground_truth`` JSON."""
        return dict(json.loads(self.ground_truth))


def ground_truth_json(
    task: str,
    width: int,
    height: int,
    objects: Sequence[dict[str, Any]] | None = None,
    class_id: int | None = None,
) -> str:
    """Builds the ``ground_truth`` JSON of a :class:`LabelRow`.

    Args:
        task: classification, detection or segmentation.
        width: image width in pixels.
        height: image height in pixels.
        objects: detection/segmentation: ``{"class_id", "bbox": [x, y, w, h] px, "segmentation"?}`` dicts.
        class_id: classification: the label-map id of the image's class.

    Returns:
        Compact JSON.
    """
    data: dict[str, Any] = {"task": task, "width": int(width), "height": int(height)}
    if task == "classification":
        data["class_id"] = None if class_id is None else int(class_id)
    else:
        data["objects"] = [dict(o) for o in objects or []]
    return json.dumps(data, separators=(",", ":"))


def has_parts(directory: Path) -> bool:
    """Whether a data directory holds finished part files (``part-*``) or compacted day files (``day-*``).

    Args:
        directory: ``data/predictions`` or ``data/labels``.

    Returns:
        True when a reader has something to read (dot-names are writes in progress).
    """
    return any(not p.name.startswith((".", "_")) for p in directory.glob("*.parquet"))


_READ_TRIES = 5


class PredictionLogReader:
    """Reads the prediction log and human labels of a Feast repository (made by
    :func:`components.predict.logs.init_feature_repo`) through Feast's historical retrieval.

    A read that races a compaction (part files merged under it) is run again.

    Args:
        repo_dir: the Feast repository directory.
    """

    def __init__(self, repo_dir: str | os.PathLike[str]):
        self.repo_dir = Path(repo_dir).resolve()
        if not (self.repo_dir / "feature_store.yaml").is_file():
            raise DataError(f"{self.repo_dir}: not a Feast repository (no feature_store.yaml); create it with init_feature_repo()")
        self.data_dir = self.repo_dir / "data"
        self.predictions_dir = self.data_dir / PREDICTIONS_DIR
        self.labels_dir = self.data_dir / LABELS_DIR
        self._store: Any = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.repo_dir)!r})"

    @property
    def store(self) -> Any:
        """The ``feast.FeatureStore`` of the repository (opened on first use)."""
        if self._store is None:
            from feast import FeatureStore

            self._store = FeatureStore(repo_path=str(self.repo_dir))
        return self._store

    def _pull(self, view: str, columns: list[str], start: datetime, end: datetime) -> pd.DataFrame:
        """Rows of a view's source with ``start <= event_timestamp < end`` (the offline store's ``pull_all``)."""
        from feast.infra.offline_stores.offline_utils import get_offline_store_from_config

        offline = get_offline_store_from_config(self.store.config.offline_store)
        fv = self.store.get_feature_view(view)
        job = offline.pull_all_from_table_or_query(
            config=self.store.config,
            data_source=fv.batch_source,
            join_key_columns=list(fv.join_keys),
            feature_name_columns=[c for c in columns if c not in fv.join_keys],
            timestamp_field="event_timestamp",
            start_date=utc(start),
            end_date=utc(end),
        )
        return job.to_df()

    def _spine(self, start: datetime, end: datetime, model_name: str | None) -> pd.DataFrame:
        """``request_id``, ``image_sha256``, ``event_timestamp`` of the predictions in ``[start, end)``."""
        import pandas as pd

        df = self._pull(PREDICTIONS_VIEW, ["model_name", "image_sha256"], start, end)
        if model_name is not None:
            df = df[df["model_name"] == model_name]
        df = df[["request_id", "image_sha256", "event_timestamp"]].drop_duplicates("request_id", keep="last")
        df["event_timestamp"] = pd.to_datetime(df["event_timestamp"], utc=True)
        return df.sort_values(["event_timestamp", "request_id"]).reset_index(drop=True)

    def _empty_predictions(self) -> pd.DataFrame:
        return PREDICTION_SCHEMA.empty_table().to_pandas()

    def _listing(self) -> tuple[frozenset[str], ...]:
        return tuple(frozenset(p.name for p in d.glob("*.parquet")) for d in (self.predictions_dir, self.labels_dir))

    def _consistent(self, read: Callable[[], T]) -> T:
        """Runs a read again when part files changed under it (a compaction removed what it listed)."""
        for attempt in range(_READ_TRIES):
            before = self._listing()
            try:
                return read()
            except Exception:
                if attempt + 1 < _READ_TRIES and self._listing() != before:
                    continue
                raise
        raise AssertionError("unreachable")

    def read_window(self, start: datetime, end: datetime, model_name: str | None = None) -> pd.DataFrame:
        """Predictions made in ``[start, end)``, read through Feast.

        The window's keys come from the offline store (``pull_all_from_table_or_query``);
        the rows from ``get_historical_features`` on the ``predictions`` view.

        Args:
            start: window start (inclusive; naive means UTC).
            end: window end (exclusive).
            model_name: only this model's predictions (default: all models).

        Returns:
            One row per prediction, ordered by time: ``event_timestamp`` (UTC),
            ``request_id`` and every :data:`PREDICTION_FEATURES` column.
        """
        return self._consistent(lambda: self._read_window(start, end, model_name))

    def _read_window(self, start: datetime, end: datetime, model_name: str | None) -> pd.DataFrame:
        if not has_parts(self.predictions_dir):
            return self._empty_predictions()
        spine = self._spine(start, end, model_name)
        if spine.empty:
            return self._empty_predictions()
        entity_df = spine[["request_id", "event_timestamp"]]
        refs = [f"{PREDICTIONS_VIEW}:{f}" for f in PREDICTION_FEATURES]
        df = self.store.get_historical_features(entity_df=entity_df, features=refs).to_df()
        df = df.sort_values(["event_timestamp", "request_id"]).reset_index(drop=True)
        return df[["event_timestamp", "request_id", *PREDICTION_FEATURES]]

    def read_labels(self) -> pd.DataFrame:
        """Every label row as written (all versions), for audits.

        Returns:
            Columns of :data:`LABEL_SCHEMA`.
        """
        if not has_parts(self.labels_dir):
            return LABEL_SCHEMA.empty_table().to_pandas()
        return self._consistent(lambda: pq.read_table(self.labels_dir, schema=LABEL_SCHEMA).to_pandas())

    @staticmethod
    def _unlabelled(preds: pd.DataFrame) -> pd.DataFrame:
        import pandas as pd

        out = preds.copy()
        out["labelling_batch_id"] = pd.Series([None] * len(out), dtype=object)
        out["stratum"] = pd.Series([None] * len(out), dtype=object)
        out["ground_truth"] = pd.Series([None] * len(out), dtype=object)
        out["labelled_at"] = pd.Series([pd.NaT] * len(out), dtype="datetime64[ns, UTC]")
        out["labelled"] = False
        return out

    def joined(self, start: datetime, end: datetime, model_name: str | None = None, as_of: datetime | None = None) -> pd.DataFrame:
        """Predictions in ``[start, end)`` joined, point-in-time correct, with human labels.

        Each prediction gets the latest label of its image known at ``as_of``
        (Feast ``get_historical_features`` on ``image_labels`` with the entity
        timestamp set to ``as_of``): labels given after the prediction join,
        labels given after ``as_of`` do not.

        Args:
            start: window start (inclusive).
            end: window end (exclusive).
            model_name: only this model's predictions (default: all).
            as_of: the evaluation time (default: now, UTC).

        Returns:
            :meth:`read_window`'s columns plus ``labelling_batch_id``, ``stratum``,
            ``ground_truth`` (JSON), ``labelled_at`` (None/NaT when unlabelled) and
            ``labelled`` (bool).
        """
        return self._consistent(lambda: self._joined(start, end, model_name, as_of))

    def _joined(self, start: datetime, end: datetime, model_name: str | None, as_of: datetime | None) -> pd.DataFrame:
        import pandas as pd

        preds = self._read_window(start, end, model_name)
        cut = utc(as_of) if as_of is not None else datetime.now(UTC)
        if preds.empty or not has_parts(self.labels_dir):
            return self._unlabelled(preds)
        # The label spine holds each image once (Feast's join deduplicates rows with equal keys
        # and timestamps) and only images with a label at or before the cut: Feast's dask
        # join cannot sort a timestamp column with the nulls an unmatched key leaves.
        known = self._pull(LABELS_VIEW, [], _EPOCH, cut + timedelta(microseconds=1))
        images = pd.Series(sorted(set(preds["image_sha256"]) & set(known["image_sha256"])), dtype=object)
        if images.empty:
            return self._unlabelled(preds)
        entity_df = pd.DataFrame({"image_sha256": images, "event_timestamp": pd.Timestamp(cut)})
        refs = [f"{LABELS_VIEW}:{f}" for f in LABEL_FEATURES]
        labels = self.store.get_historical_features(entity_df=entity_df, features=refs).to_df()
        labels = labels[["image_sha256", *LABEL_FEATURES]].drop_duplicates("image_sha256")
        out = preds.merge(labels, on="image_sha256", how="left")
        out["labelled_at"] = pd.to_datetime(out["labelled_at"], utc=True)
        out["labelled"] = out["ground_truth"].notna()
        out["ground_truth"] = out["ground_truth"].astype(object).where(out["labelled"], None)
        for col in ("labelling_batch_id", "stratum"):
            out[col] = out[col].astype(object).where(out["labelled"], None)
        return out

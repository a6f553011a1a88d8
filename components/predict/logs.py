"""Writing the prediction log and human labels into a Feast feature repository.

The contract (row types, columns, schemas, how a window is read back) lives in
:mod:`components.core.prediction_log`, shared by sampling, monitoring, live
metrics and drift; this module creates the repository
(:func:`init_feature_repo`) and writes part files (:class:`PredictionLog`:
one atomic parquet file per append), and re-exports the contract's names.

Feast layout (``feature_repo/definitions.py``)::

    entity prediction (join key request_id)   -> feature view "predictions"   <- data/predictions/*.parquet
    entity image      (join key image_sha256) -> feature view "image_labels"  <- data/labels/*.parquet

Feast is imported on first read or apply, not when this module is.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import sys
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

import components.core.parquet  # noqa: F401 - installs pyarrow_hotfix before Feast/pyarrow read the part files here
from components.core.clock import utc
from components.core.errors import DataError
from components.core.io import atomic_path
from components.core.prediction_log import (
    LABEL_FEATURES,
    LABEL_SCHEMA,
    LABELS_DIR,
    LABELS_VIEW,
    PREDICTION_FEATURES,
    PREDICTION_SCHEMA,
    PREDICTIONS_DIR,
    PREDICTIONS_VIEW,
    LabelRow,
    PredictionLogReader,
    PredictionRow,
    ground_truth_json,
)

__all__ = [
    "FEATURE_REPO_DIR",
    "LABELS_VIEW",
    "LABEL_FEATURES",
    "LABEL_SCHEMA",
    "PREDICTIONS_VIEW",
    "PREDICTION_FEATURES",
    "PREDICTION_SCHEMA",
    "LabelRow",
    "PredictionLog",
    "PredictionRow",
    "ground_truth_json",
    "init_feature_repo",
    "utc",
]

FEATURE_REPO_DIR = Path(__file__).resolve().parents[2] / "feature_repo"
"""The template Feast repository shipped with cvpipe (``feature_repo/`` at the repository root)."""


# -- the feature repository ------------------------------------------------------------

_DATA_DIR_LINE = re.compile(r"^DATA_DIR = .*$", re.MULTILINE)


def _render_yaml(dest: Path, project: str) -> str:
    data = dest / "data"
    return (
        "# Rendered by components.predict.logs.init_feature_repo from cvpipe's feature_repo/.\n"
        "# Production: BigQuery offline store, Redis online store (see the template's comments).\n"
        f"project: {project}\n"
        "provider: local\n"
        f"registry: {json.dumps(str(data / 'registry.db'))}\n"
        "offline_store:\n"
        "  type: file\n"
        "online_store:\n"
        "  type: sqlite\n"
        f"  path: {json.dumps(str(data / 'online_store.db'))}\n"
        "entity_key_serialization_version: 2\n"
    )


def _load_definitions(repo: Path) -> list[Any]:
    """Imports ``definitions.py`` of a repository under a unique name and collects its Feast objects."""
    from feast import Entity, FeatureService, FeatureView
    from feast.data_source import DataSource

    name = f"_cvpipe_feast_defs_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, repo / "definitions.py")
    if spec is None or spec.loader is None:
        raise DataError(f"{repo}: cannot import definitions.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
    kinds = (Entity, FeatureView, FeatureService, DataSource)
    return [v for v in vars(module).values() if isinstance(v, kinds)]


def init_feature_repo(dest_dir: str | os.PathLike[str], project: str = "cvpipe", template: Path | None = None) -> Path:
    """Renders cvpipe's Feast repository into a working directory and applies it (``feast apply``).

    The copy gets absolute paths: ``feature_store.yaml`` points the registry and the
    SQLite online store into ``dest_dir/data``, and ``definitions.py`` points the
    FileSources at ``dest_dir/data/predictions`` and ``dest_dir/data/labels``.
    Running it again on the same directory re-applies (idempotent) and keeps the data.

    Args:
        dest_dir: the working directory (created when missing).
        project: the Feast project name (letters, digits, underscores).
        template: the repository to copy (default: :data:`FEATURE_REPO_DIR`).

    Returns:
        The repository directory (``dest_dir``, absolute).

    Raises:
        DataError: the template is missing or the project name is invalid.
    """
    src = template or FEATURE_REPO_DIR
    if not (src / "definitions.py").is_file():
        raise DataError(f"{src}: not a cvpipe feature repository (no definitions.py)")
    if not re.fullmatch(r"[A-Za-z0-9_]+", project):
        raise DataError(f"Feast project name {project!r}: use letters, digits and underscores")
    dest = Path(dest_dir).resolve()
    data = dest / "data"
    for sub in (PREDICTIONS_DIR, LABELS_DIR):
        (data / sub).mkdir(parents=True, exist_ok=True)
    defs = (src / "definitions.py").read_text(encoding="utf-8")
    defs, n = _DATA_DIR_LINE.subn(f"DATA_DIR = Path({str(data)!r})", defs, count=1)
    if n != 1:
        raise DataError(f"{src / 'definitions.py'}: no 'DATA_DIR = ...' line to render")
    with atomic_path(dest / "definitions.py") as tmp:
        tmp.write_text(defs, encoding="utf-8")
    with atomic_path(dest / "feature_store.yaml") as tmp:
        tmp.write_text(_render_yaml(dest, project), encoding="utf-8")
    ignore = src / ".gitignore"
    if ignore.is_file():
        shutil.copyfile(ignore, dest / ".gitignore")

    from feast import FeatureStore

    FeatureStore(repo_path=str(dest)).apply(_load_definitions(dest))
    return dest


# -- the log -----------------------------------------------------------------------------


def _part_name() -> str:
    now = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"part-{now}-{uuid.uuid4().hex[:12]}.parquet"


def _write_part(directory: Path, table: pa.Table) -> Path:
    final = directory / _part_name()
    # The temporary name starts with a dot: Feast's (dask/pyarrow) readers skip it.
    with atomic_path(final) as tmp:
        pq.write_table(table, tmp)
    return final


class PredictionLog(PredictionLogReader):
    """Prediction log and human labels in a Feast repository made by :func:`init_feature_repo`.

    Writers (the batch predictor, the server's write-ahead log, the label import)
    append parquet part files; reading is :class:`~components.core.prediction_log.PredictionLogReader`'s.
    Appending is safe from many threads and processes at once: each call writes
    its own file under a unique name and renames it into place.

    Args:
        repo_dir: the Feast repository directory.
    """

    def append(self, rows: Sequence[PredictionRow]) -> Path:
        """Appends predictions as one parquet part file.

        Args:
            rows: the predictions (at least one).

        Returns:
            The part file written.

        Raises:
            DataError: no rows.
        """
        if not rows:
            raise DataError("PredictionLog.append: no rows to write")
        cols: dict[str, list[Any]] = {name: [] for name in PREDICTION_SCHEMA.names}
        for r in rows:
            for name in cols:
                cols[name].append(getattr(r, name))
        table = pa.Table.from_pydict(cols, schema=PREDICTION_SCHEMA)
        return _write_part(self.predictions_dir, table)

    def add_labels(self, labels: Sequence[LabelRow]) -> Path | None:
        """Appends human labels as one parquet part file.

        Args:
            labels: the labels; an image labelled again later supersedes its earlier label.

        Returns:
            The part file written, or None when ``labels`` is empty.
        """
        if not labels:
            return None
        now = datetime.now(UTC)
        table = pa.Table.from_pydict(
            {
                "event_timestamp": [r.event_timestamp for r in labels],
                "created_timestamp": [now] * len(labels),
                "image_sha256": [r.image_sha256 for r in labels],
                "labelling_batch_id": [r.labelling_batch_id for r in labels],
                "stratum": [r.stratum for r in labels],
                "ground_truth": [r.ground_truth for r in labels],
                "labelled_at": [r.event_timestamp for r in labels],
            },
            schema=LABEL_SCHEMA,
        )
        return _write_part(self.labels_dir, table)

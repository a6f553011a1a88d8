"""The evaluation window: the production model's logged predictions of the last ``monitoring.window``.

:func:`run` (the ``read_window`` step) reads ``[now - window, now)`` of the
prediction log (Feast) for the spec's model, keeps the rows of the version
in production (``monitoring.model_alias``), and writes them with the window's
bounds, so every later step of the evaluation sees the same rows and the
same interval::

    <window dir>/window.json          start, end, model, version, row counts
    <window dir>/predictions.parquet  the rows (PredictionRow columns)

Lineage: inputs ``log`` (the Feast repository, a ``PredictionLog``) and
``model`` (the ``PushedModel`` in production); output ``window`` (a
``PredictionLog`` with ``rows``, ``start``, ``end``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.alert.model import TimeWindow
from components.core.clock import utc_now
from components.core.errors import SpecError
from components.core.io import atomic_path, atomic_write_json, read_json
from components.core.lineage import ArtifactRef, NewArtifact
from components.core.step import ArtifactUris, StepContext

from .production import blessed_model

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ROWS_FILE", "WINDOW_FILE", "Window", "load_window", "run"]

WINDOW_FILE = "window.json"
"""The window's bounds and counts, inside the window directory."""
ROWS_FILE = "predictions.parquet"
"""The window's prediction rows, inside the window directory."""


@dataclass
class Window:
    """One evaluation window.

    Attributes:
        window: ``[start, end)``.
        model_name: registry model name.
        model_version: the production version whose rows were kept.
        rows: the prediction rows.
        info: everything ``window.json`` holds (rows per version, the log directory...).
        artifacts: recorded output artifacts (``window``).
    """

    window: TimeWindow
    model_name: str
    model_version: int
    rows: pd.DataFrame
    info: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, ArtifactRef] = field(default_factory=dict)


def load_window(path: str | os.PathLike[str]) -> Window:
    """Reads a window directory written by :func:`run`.

    Args:
        path: the directory.

    Returns:
        The window.

    Raises:
        DataError: the rows file declares a column type whose reading would run code from the file.
    """
    import pandas as pd

    from components.core.parquet import read_frame

    d = Path(path)
    info = read_json(d / WINDOW_FILE)
    rows = read_frame(d / ROWS_FILE) if (d / ROWS_FILE).is_file() else pd.DataFrame()
    return Window(
        window=TimeWindow(start=datetime.fromisoformat(info["start"]), end=datetime.fromisoformat(info["end"])),
        model_name=str(info["model_name"]),
        model_version=int(info["model_version"]),
        rows=rows,
        info=info,
    )


def run(ctx: StepContext, out_dir: Path, *, uris: ArtifactUris | Mapping[str, str] | None = None, now: datetime | None = None) -> Window:
    """The read-window step.

    Args:
        ctx: the step context (``spec.monitoring`` is required).
        out_dir: the window directory to write.
        uris: artifact URIs by name (``window``, the output; default: ``out_dir``).
        now: the window's end (default: now).

    Returns:
        The window, with its recorded artifact.

    Raises:
        SpecError: the spec has no ``monitoring`` section.
        RegistryError: no version of the model holds the production alias.
    """
    from components.core.prediction_log import PredictionLogReader

    spec = ctx.spec
    mon = spec.monitoring
    if mon is None:
        raise SpecError([("monitoring", "is required to evaluate a model in production")])
    prod = blessed_model(spec, ctx.store)
    end = now or utc_now()
    window = TimeWindow(start=end - mon.window_delta, end=end)
    log_dir = mon.log_dir(spec.runtime.root)
    log = PredictionLogReader(log_dir)
    frame = log.read_window(window.start, window.end, model_name=spec.model_name)
    per_version = {str(k): int(v) for k, v in frame["model_version"].value_counts().items()} if len(frame) else {}
    rows = frame[frame["model_version"] == prod.version.version].reset_index(drop=True) if len(frame) else frame
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / ROWS_FILE) as tmp:
        rows.to_parquet(tmp, index=False)
    info = {
        "start": window.start.isoformat(),
        "end": window.end.isoformat(),
        "model_name": spec.model_name,
        "model_version": prod.version.version,
        "alias": mon.model_alias,
        "rows": len(rows),
        "rows_per_version": per_version,
        "log": str(log_dir),
    }
    atomic_write_json(out_dir / WINDOW_FILE, info)
    ctx.log.info(
        "window %s .. %s: %d predictions of %s:%d (%d of other versions)",
        info["start"],
        info["end"],
        len(rows),
        spec.model_name,
        prod.version.version,
        len(frame) - len(rows),
    )
    artifacts = ctx.record(
        {
            "log": ctx.input_artifact(str(log_dir), "PredictionLog", {"kind": "feast_repository"}),
            "model": ctx.store.get(prod.version.pushed_id),
        },
        {
            "window": NewArtifact(
                "PredictionLog",
                ArtifactUris.of(uris).uri("window", out_dir),
                {
                    "rows": len(rows),
                    "start": info["start"],
                    "end": info["end"],
                    "model_name": spec.model_name,
                    "model_version": prod.version.version,
                    "pipeline": spec.name,
                },
            )
        },
        {"rows": len(rows), "window": mon.window},
    )
    return Window(window=window, model_name=spec.model_name, model_version=prod.version.version, rows=rows, info=info, artifacts=artifacts)

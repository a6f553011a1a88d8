"""The alert list a step writes beside its outputs (``alerts.json``) and the alert step reads.

Drift and live metrics write their findings here; the alert step groups and
dispatches them. Kept apart from the alert step so the steps that write
findings do not import the step that reads them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from components.core.io import atomic_write_json, read_json

from .model import Alert

__all__ = ["ALERTS_FILE", "read_alert_file", "write_alert_file"]

ALERTS_FILE = "alerts.json"
"""File name of an alert list inside a step's output directory."""


def write_alert_file(out_dir: str | os.PathLike[str], alerts: Sequence[Alert], source: str) -> Path:
    """Writes the alerts a step raises or resolves (for the alert step to dispatch).

    Args:
        out_dir: the step's output directory.
        alerts: the alerts.
        source: the step that raised them (``drift``, ``live_metrics``).

    Returns:
        The file written.
    """
    return atomic_write_json(
        Path(out_dir) / ALERTS_FILE, {"source": source, "alerts": [{"alert": a.model_dump(mode="json")} for a in alerts]}
    )


def read_alert_file(path: str | os.PathLike[str]) -> list[Alert]:
    """Reads :func:`write_alert_file`'s output (a missing file is no alert).

    Args:
        path: the file, or the directory holding it.

    Returns:
        The alerts.
    """
    p = Path(path)
    if p.is_dir():
        p = p / ALERTS_FILE
    if not p.is_file():
        return []
    return [Alert.model_validate(e["alert"]) for e in read_json(p).get("alerts", [])]

"""The alert step of continuous evaluation: dispatch what drift and live metrics found, record it in lineage.

The drift and live-metrics steps each write the alerts they raise or
resolve to an ``alerts.json`` in their output directory (they never send
anything). This step gathers them, hands them to the
:class:`~.dispatcher.AlertDispatcher` configured by ``monitoring.alerts``
(deduplication, cooldown, resolve, redelivery; the JSON-lines log is always
written), records one ``Alert`` artifact per firing alert and per delivered
resolve, and writes its own ``alerts.json`` with each alert's outcome and
artifact id, which the retraining trigger reads.

Firing alerts suppressed as duplicates are recorded too (``notified``
false): the condition still holds in this evaluation, and the trigger's own
cooldown decides what it does with it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.core.io import atomic_write_json, read_json
from components.core.lineage import ArtifactRef, NewArtifact
from components.core.step import StepContext

from .dispatcher import AlertDispatcher, DispatchResult
from .model import Alert

__all__ = ["ALERTS_FILE", "AlertStepResult", "read_alert_file", "run", "write_alert_file"]

ALERTS_FILE = "alerts.json"
"""File name of an alert list inside a step's output directory."""


@dataclass
class AlertStepResult:
    """What the alert step did.

    Attributes:
        alerts: every alert received, in order.
        dispatch: the dispatcher's result.
        recorded: alert dedup key -> its recorded ``Alert`` artifact.
        path: the ``alerts.json`` written.
    """

    alerts: list[Alert]
    dispatch: DispatchResult
    recorded: dict[str, ArtifactRef] = field(default_factory=dict)
    path: Path | None = None


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


def run(
    ctx: StepContext,
    sources: Sequence[Path],
    out_dir: Path,
    *,
    inputs: dict[str, ArtifactRef | None] | None = None,
) -> AlertStepResult:
    """Dispatches the alerts of the given steps and records them.

    Args:
        ctx: the step context (``spec.monitoring.alerts`` configures the dispatcher; its log
            path is relative to ``runtime.root``).
        sources: output directories (or files) of the steps that raised alerts.
        out_dir: output directory for ``alerts.json``.
        inputs: the lineage inputs (the drift report, the live evaluation...).

    Returns:
        The result.
    """
    mon = ctx.spec.monitoring
    if mon is not None:
        config = mon.alert_config(ctx.spec.runtime.root)
    else:
        from .config import AlertConfig

        config = AlertConfig(log=str(Path(ctx.spec.runtime.root) / "alerts" / "alerts.jsonl"))
    alerts = [a for s in sources for a in read_alert_file(s)]
    dispatcher = AlertDispatcher(config)
    result = dispatcher.dispatch(alerts)
    notified = {id(a) for a in result.notified}
    notified_keys = {(a.dedup_key, a.status) for a in result.notified}
    outputs: dict[str, NewArtifact | None] = {}
    entries: list[dict[str, Any]] = []
    keyed: list[tuple[str, Alert, bool]] = []
    for a in alerts:
        sent = id(a) in notified or (a.dedup_key, a.status) in notified_keys
        if a.status == "firing" or sent:
            key = f"alert_{len(keyed)}"
            keyed.append((key, a, sent))
            outputs[key] = NewArtifact(
                "Alert",
                f"{config.log_path.resolve()}#{a.dedup_key}@{a.starts_at.isoformat()}",
                {
                    "name": a.name,
                    "dedup_key": a.dedup_key,
                    "status": a.status,
                    "severity": a.severity,
                    "model_name": a.model,
                    "metric": a.metric,
                    "value": a.value,
                    "threshold": a.threshold,
                    "notified": sent,
                    "summary": a.summary,
                    "pipeline": ctx.spec.name,
                },
            )
    recorded = ctx.record(
        dict(inputs or {}),
        outputs,
        {
            "alerts": len(alerts),
            "notified": len(result.notified),
            "suppressed": len(result.suppressed),
            "undelivered": len(result.undelivered),
        },
    )
    for key, a, sent in keyed:
        entries.append({"alert": a.model_dump(mode="json"), "artifact_id": recorded[key].id, "notified": sent})
    for a in alerts:
        if a.status == "resolved" and (a.dedup_key, a.status) not in notified_keys:
            entries.append({"alert": a.model_dump(mode="json"), "artifact_id": None, "notified": False})
    path = atomic_write_json(
        out_dir / ALERTS_FILE,
        {
            "log": str(config.log_path),
            "alerts": entries,
            "notified": [a.dedup_key for a in result.notified],
            "suppressed": [a.dedup_key for a in result.suppressed],
            "undelivered": result.undelivered,
        },
    )
    firing = sum(1 for a in alerts if a.status == "firing")
    ctx.log.info(
        "%d alerts (%d firing): %d notified, %d suppressed, %d undelivered; log %s",
        len(alerts),
        firing,
        len(result.notified),
        len(result.suppressed),
        len(result.undelivered),
        config.log_path,
    )
    return AlertStepResult(alerts=alerts, dispatch=result, recorded={a.dedup_key: recorded[k] for k, a, _ in keyed}, path=path)

"""The continuous-evaluation page's figures: drift per feature across runs, class mix, live metrics, labelling queue.

Everything comes from what the continuous-evaluation steps recorded: the
``DriftReport`` artifacts (their ``drift_report.json``), the live
``ModelEvaluation`` artifacts (``live=True``) and the ``LabellingBatch``
artifacts with what was imported from them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from components.core.lineage import ArtifactRef

from .data import _local_path, _read_json

if TYPE_CHECKING:
    from .data import ConsoleData

__all__ = ["MonitoringView", "monitoring_view"]


@dataclass
class MonitoringView:
    """The continuous-evaluation page of one model.

    Attributes:
        reports: drift reports, oldest first: ``(artifact, created_at, status)``.
        checks: ``(check, feature, statistic)`` -> one cell per report (value, threshold, status) or None.
        class_mix: per report, class -> count of predictions in the window.
        classes: every class seen in the mix.
        live: live evaluations, oldest first: ``(artifact, metric -> its result (estimate, lower, upper,
            blessed, status), degraded metrics)``.
        live_metrics: every live metric measured.
        batches: labelling batches, newest first: ``(artifact, imported labels or None)``.
    """

    reports: list[tuple[ArtifactRef, str, str]] = field(default_factory=list)
    checks: dict[tuple[str, str, str], list[dict[str, Any] | None]] = field(default_factory=dict)
    class_mix: list[dict[str, int]] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    live: list[tuple[ArtifactRef, dict[str, Any], list[str]]] = field(default_factory=list)
    live_metrics: list[str] = field(default_factory=list)
    batches: list[tuple[ArtifactRef, int | None]] = field(default_factory=list)


def _loads(value: Any, default: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return default
    return default if value is None else value


def monitoring_view(data: ConsoleData, model_name: str) -> MonitoringView:
    """Reads a model's continuous-evaluation history.

    Args:
        data: the console data.
        model_name: the registry model name.

    Returns:
        The view.
    """
    view = MonitoringView()
    reports = data.store.artifacts("DriftReport", model_name=model_name)
    for n, a in enumerate(reports):
        path = _local_path(a.uri)
        doc = _read_json(path / "drift_report.json") if path is not None else None
        doc = doc if isinstance(doc, dict) else {}
        view.reports.append(
            (a, str(doc.get("created_at", ""))[:16].replace("T", " "), str(doc.get("status", a.properties.get("status", ""))))
        )
        for c in doc.get("checks") or []:
            key = (str(c.get("name")), str(c.get("feature")), str(c.get("statistic")))
            cells = view.checks.setdefault(key, [None] * len(reports))
            cells[n] = {"value": c.get("value"), "threshold": c.get("threshold"), "status": c.get("status"), "p": c.get("p_value")}
        mix = doc.get("class_mix") or {}
        counts = dict(zip(mix.get("classes") or [], mix.get("current") or [], strict=False))
        view.class_mix.append(counts)
        view.classes.extend(c for c in counts if c not in view.classes)
    for a in data.store.artifacts("ModelEvaluation", model_name=model_name, live=True):
        # the step's live_metrics.json has each estimate with its interval and the blessed figure it was held to
        path = _local_path(a.uri)
        doc = _read_json(path / "live_metrics.json") if path is not None else None
        results: dict[str, Any] = {}
        if isinstance(doc, dict):
            for m in doc.get("metrics") or []:
                results[str(m.get("metric"))] = m
        else:  # only what the artifact's properties kept
            for k, v in (_loads(a.properties.get("metrics"), {}) or {}).items():
                results[str(k)] = {"metric": k, "estimate": v}
        view.live.append((a, results, [str(x) for x in _loads(a.properties.get("degraded"), [])]))
        view.live_metrics.extend(m for m in results if m not in view.live_metrics)
    for a in reversed(data.store.artifacts("LabellingBatch", model_name=model_name)):
        view.batches.append((a, data.labels_imported(a)))
    return view

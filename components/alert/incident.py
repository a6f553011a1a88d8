"""Incidents: the findings of one evaluation grouped into one notification per model and cause.

A brightness shift trips PSI, KS and Jensen-Shannon on brightness and on
contrast, and the embedding test besides; on-call wants to hear about *input
drift of model M* once, with the worst features first, and about the embedding
drift as its own cause. :func:`group_incidents` turns findings (one
:class:`~.model.Alert` per check, from :mod:`components.drift.alerts` and
:mod:`components.live_metrics.measure`) into incidents, keyed
``cvpipe/<model>/<cause>`` so that repeated evaluations update the same
incident. The causes and their runbook sections:

=================  ===================  ===============================
cause              alert name           runbook section (docs/runbook.md)
=================  ===================  ===============================
input_drift        InputDrift           ``#input-drift``
prediction_drift   PredictionDrift      ``#prediction-mix-drift``
embedding_drift    EmbeddingDrift       ``#embedding-drift``
degradation        LiveMetricDegraded   ``#live-metric-degradation``
=================  ===================  ===============================

An incident keeps its findings as detail (``Alert.findings``, worst first),
says what changed in words (:func:`incident_text` renders the body every sink
shows), links the report, the console page (``<console base>/incidents/<id>``,
assigned when it first fires) and the runbook section, and says what cvpipe
did about it (``action``: the retraining's id, or why none was started).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .model import SEVERITIES, Alert, Severity

__all__ = [
    "CAUSES",
    "RUNBOOK_SECTIONS",
    "cause_of",
    "console_link",
    "default_runbook_base",
    "group_incidents",
    "incident_id",
    "incident_text",
    "runbook_link",
]

CAUSES: dict[str, tuple[str, str]] = {
    "input_drift": ("InputDrift", "input drift"),
    "prediction_drift": ("PredictionDrift", "prediction-mix drift"),
    "embedding_drift": ("EmbeddingDrift", "embedding drift"),
    "degradation": ("LiveMetricDegraded", "live-metric degradation"),
}
"""Cause -> (alert name, words)."""

RUNBOOK_SECTIONS: dict[str, str] = {
    "input_drift": "input-drift",
    "prediction_drift": "prediction-mix-drift",
    "embedding_drift": "embedding-drift",
    "degradation": "live-metric-degradation",
    "retraining": "retraining-follow-ups",
    "alias": "retraining-follow-ups",
}
"""Cause -> the anchor of its section in docs/runbook.md (GitHub-style heading anchors)."""

_BY_NAME = {"PredictionDrift": "prediction_drift", "EmbeddingDrift": "embedding_drift", "LiveMetricDegraded": "degradation"}


def cause_of(alert: Alert) -> str:
    """The cause a finding belongs to.

    Args:
        alert: a finding (or an incident).

    Returns:
        Its ``cause``, else one derived from its name and labels (``input_drift`` for other drift).
    """
    if alert.cause:
        return alert.cause
    if alert.labels.get("kind") == "degradation":
        return "degradation"
    return _BY_NAME.get(alert.name, "input_drift")


def default_runbook_base() -> str:
    """docs/runbook.md of this checkout as a path (used when ``monitoring.runbook_url`` is not set).

    Returns:
        The path, absolute when the file exists here.
    """
    here = Path(__file__).resolve().parents[2] / "docs" / "runbook.md"
    return str(here) if here.is_file() else "docs/runbook.md"


def runbook_link(base: str | None, cause: str) -> str:
    """The runbook section for a cause.

    Args:
        base: the runbook's URL (a team's own copy) or path; None for this checkout's docs/runbook.md.
        cause: the cause.

    Returns:
        ``<base>#<section>``.
    """
    root = (base or default_runbook_base()).split("#", 1)[0]
    return f"{root}#{RUNBOOK_SECTIONS.get(cause, cause.replace('_', '-'))}"


def incident_id(dedup_key: str, first_fired_at: str) -> str:
    """An incident's id: stable while it fires, new when the same condition fires again after a resolve.

    Args:
        dedup_key: the incident's key.
        first_fired_at: when it first fired (ISO 8601).

    Returns:
        12 hex digits.
    """
    return hashlib.sha256(f"{dedup_key}\x1f{first_fired_at}".encode()).hexdigest()[:12]


def console_link(base: str | None, ident: str) -> str | None:
    """The incident's page in the console: ``<base>/incidents/<id>`` (None without a base URL).

    Args:
        base: the console's base URL.
        ident: the incident id.

    Returns:
        The URL, or None.
    """
    return f"{base.rstrip('/')}/incidents/{ident}" if base else None


def _brief(f: dict[str, Any]) -> str:
    change = str(f.get("change") or "")
    head = change.split(";", 1)[0].replace(", down", "").replace(", up", "")
    if f.get("check") == "embedding_mmd":
        return f"embeddings moved ({f.get('statistic', '')})"
    if f.get("check") == "live_metric" and f.get("value") is not None and f.get("blessed") is not None:
        return f"{f.get('feature')} {float(f['value']):.3g} vs {float(f['blessed']):.3g} when blessed"
    return f"{f.get('feature')} {head}" if f.get("check") not in ("prediction_mix", "live_metric") else head


def _per_feature(findings: Sequence[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for f in findings:
        groups.setdefault(str(f.get("feature")), []).append(f)
    ordered = sorted(groups.items(), key=lambda kv: -max(float(f.get("ratio") or 0.0) for f in kv[1]))
    return ordered


def group_incidents(findings: Iterable[Alert], *, runbook_url: str | None = None) -> list[Alert]:
    """Groups one evaluation's findings into one incident per model and cause.

    An incident fires when any of its findings fires (severity: the highest of
    them; findings: the firing ones, worst first, as detail); with no firing
    finding but some cleared, it is a resolve (the dispatcher forwards it only
    while the incident fires).

    Args:
        findings: firing and resolved findings.
        runbook_url: the runbook's base URL (None: this checkout's docs/runbook.md).

    Returns:
        Incidents, firing first, in cause order.
    """
    groups: dict[tuple[str, str], list[Alert]] = {}
    for a in findings:
        groups.setdefault((a.model, cause_of(a)), []).append(a)
    out: list[Alert] = []
    order = list(CAUSES)
    for (model, cause), members in sorted(groups.items(), key=lambda kv: (kv[0][0], order.index(kv[0][1]) if kv[0][1] in order else 99)):
        firing = [a for a in members if a.status == "firing"]
        shown = firing or members
        details = [dict(f) for a in shown for f in (a.findings or [_as_finding(a)])]
        details.sort(key=lambda f: -float(f.get("ratio") or 0.0))
        name, words = CAUSES.get(cause, ("Drift", cause.replace("_", " ")))
        first = shown[0]
        version = next((a.version for a in members if a.version), "")
        alias = next((a.alias for a in members if a.alias), "")
        who = f"{model or 'model'}" + (f" v{version}" if version else "") + (f" ({alias})" if alias else "")
        worst = "; ".join(_brief(f) for _, fs in _per_feature(details)[:2] for f in fs[:1])
        summary = f"{who}: {words} cleared" if not firing else f"{who}: {words}: {worst}" if worst else f"{who}: {words}"
        severity: Severity = max((a.severity for a in shown), key=SEVERITIES.index)
        labels = {k: v for k, v in first.labels.items() if k not in ("check", "feature", "metric")}
        labels["cause"] = cause
        incident = Alert(
            name=name,
            severity=severity,
            summary=summary[:300],
            description=_body(details, first, firing=bool(firing)),
            model=model,
            metric=cause,
            value=first.value if len(details) == 1 else None,
            threshold=first.threshold if len(details) == 1 else None,
            window=first.window,
            runbook_url=runbook_link(runbook_url or _base(first.runbook_url), cause),
            dedup_key=f"cvpipe/{model or 'model'}/{cause}",
            labels=labels,
            generator_url=first.generator_url,
            starts_at=min(a.starts_at for a in shown),
            cause=cause,
            version=version,
            alias=alias,
            findings=details,
        )
        out.append(incident if firing else incident.resolved(max(a.ends_at or a.starts_at for a in members)))
    out.sort(key=lambda a: a.status != "firing")
    return out


def _base(url: str | None) -> str | None:
    return url.split("#", 1)[0] if url else None


def _as_finding(a: Alert) -> dict[str, Any]:
    return {
        "check": a.labels.get("check", a.name),
        "feature": a.labels.get("feature", a.metric),
        "change": a.description,
        "statistic": a.summary,
        "value": a.value,
        "threshold": a.threshold,
        "status": a.status,
        "ratio": (a.value / a.threshold) if a.value is not None and a.threshold else 0.0,
    }


def _body(details: Sequence[dict[str, Any]], first: Alert, *, firing: bool) -> str:
    lines: list[str] = []
    n_ref = max((int(f.get("n_reference") or 0) for f in details), default=0)
    n_cur = max((int(f.get("n_current") or 0) for f in details), default=0)
    if first.window is not None:
        w = first.window
        lines.append(f"Window: {w.start:%Y-%m-%d %H:%M} to {w.end:%Y-%m-%d %H:%M} UTC.")
    if n_cur:
        sizes = f"{n_cur} production" + (f" vs {n_ref} training images" if n_ref else " images")
        lines.append(f"Compared: {sizes}.")
    lines.append("What changed (worst first):" if firing else "Now within limits:")
    for feature, fs in _per_feature(details):
        change = next((str(f.get("change")) for f in fs if f.get("change")), "")
        stats = "; ".join(str(f.get("statistic")) for f in fs if f.get("statistic"))
        label = "" if fs[0].get("check") in ("prediction_mix", "embedding_mmd", "live_metric") else f"{feature}: "
        lines.append(f"- {label}{change}" if change else f"- {feature}")
        if stats:
            lines.append(f"    {stats}")
    return "\n".join(lines)


def incident_text(alert: Alert) -> str:
    """The incident as on-call reads it: summary, what changed, links, what cvpipe did, the latest follow-up.

    Args:
        alert: an incident (or any alert).

    Returns:
        Plain text, one fact per line.
    """
    state = "RESOLVED" if alert.status == "resolved" else "FIRING"
    head = f"[{state}] [{alert.severity}] {alert.summary}"
    lines = [head]
    if alert.incident_id:
        lines.append(f"Incident {alert.incident_id} ({alert.dedup_key})")
    if alert.update:
        lines.append(f"Update: {alert.update}")
    if alert.description:
        lines.append(alert.description)
    if alert.action:
        lines.append(f"What cvpipe did: {alert.action}")
    for label, url in (("Console", alert.console_url), ("Report", alert.generator_url), ("Runbook", alert.runbook_url)):
        if url:
            lines.append(f"{label}: {url}")
    return "\n".join(lines)

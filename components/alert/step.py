"""The alert step of continuous evaluation: findings -> incidents, recorded in lineage, then notified.

The drift and live-metrics steps each write their *findings* (one alert per
check) to an ``alerts.json`` in their output directory; they never send
anything. This step groups them into one incident per model and cause
(:func:`~.incident.group_incidents`), records one ``Alert`` artifact per
incident and writes its own ``alerts.json`` (the incidents with their
artifact ids, and the findings), which the retraining trigger reads.

Notification is the trigger's last act (:func:`notify_incidents`), so each
incident says what cvpipe did about it: the retraining's id, or why none was
started. A pipeline that stops at this step notifies here (``notify``).
The dispatcher deduplicates (an incident already firing is reminded of only
after the cooldown, or told of a retraining it started), resolves once, keeps
acknowledgements and silences, and redelivers what a sink missed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from components.core.clock import utc_now
from components.core.errors import AlertError
from components.core.io import atomic_write_json, read_json
from components.core.lineage import ArtifactRef, NewArtifact
from components.core.step import ArtifactUris, StepContext

from .config import AlertConfig
from .dispatcher import AlertDispatcher, DispatchResult
from .files import ALERTS_FILE, read_alert_file, write_alert_file
from .incident import group_incidents
from .model import Alert

__all__ = ["ALERTS_FILE", "AlertStepResult", "notify_incidents", "read_alert_file", "run", "write_alert_file"]


@dataclass
class AlertStepResult:
    """What the alert step did.

    Attributes:
        alerts: the incidents, firing first.
        dispatch: the dispatcher's result (empty until they are notified).
        recorded: incident dedup key -> its recorded ``Alert`` artifact.
        path: the ``alerts.json`` written.
        findings: every finding received, in order.
    """

    alerts: list[Alert]
    dispatch: DispatchResult
    recorded: dict[str, ArtifactRef] = field(default_factory=dict)
    path: Path | None = None
    findings: list[Alert] = field(default_factory=list)


_INPUT_KINDS = {"drift_report": "DriftReport", "live_evaluation": "ModelEvaluation"}
"""Input name -> the artifact kind the step that wrote it records."""


def _inputs(ctx: StepContext, uris: ArtifactUris) -> dict[str, ArtifactRef | None]:
    """The recorded artifacts at the given input URIs (None for one lineage does not know)."""
    return {name: ctx.store.find_by_uri(uri, _INPUT_KINDS.get(name, "Artifact")) for name, uri in uris.items()}


def _config(ctx: StepContext) -> AlertConfig:
    mon = ctx.spec.monitoring
    if mon is not None:
        return cast(AlertConfig, mon.alert_config(ctx.spec.runtime.root))
    return AlertConfig(log=str(Path(ctx.spec.runtime.root) / "alerts" / "alerts.jsonl"))


def run(
    ctx: StepContext,
    sources: Sequence[Path],
    out_dir: Path,
    *,
    uris: ArtifactUris | Mapping[str, str | None] | None = None,
    notify: bool = True,
) -> AlertStepResult:
    """Groups the findings of the given steps into incidents, records them, and (with ``notify``) dispatches them.

    Args:
        ctx: the step context (``spec.monitoring.alerts`` configures the dispatcher; its log
            path is relative to ``runtime.root``).
        sources: output directories (or files) of the steps that raised findings.
        out_dir: output directory for ``alerts.json``.
        uris: where the inputs live (``drift_report``, ``live_evaluation``); each one given is
            looked up in lineage and recorded as an input of this step.
        notify: dispatch now; False leaves it to the retraining trigger (:func:`notify_incidents`),
            which adds what it decided to each incident before it is sent.

    Returns:
        The result.
    """
    mon = ctx.spec.monitoring
    config = _config(ctx)
    findings = [a for s in sources for a in read_alert_file(s)]
    incidents = group_incidents(findings, runbook_url=mon.runbook_url if mon is not None else None)
    outputs: dict[str, NewArtifact | None] = {}
    for n, a in enumerate(incidents):
        outputs[f"alert_{n}"] = NewArtifact(
            "Alert",
            f"{config.log_path.resolve()}#{a.dedup_key}@{a.starts_at.isoformat()}",
            {
                "name": a.name,
                "dedup_key": a.dedup_key,
                "status": a.status,
                "severity": a.severity,
                "model_name": a.model,
                "model_version": a.version,
                "cause": a.cause,
                "metric": a.metric,
                "findings": len(a.findings),
                "summary": a.summary,
                "pipeline": ctx.spec.name,
            },
        )
    firing = sum(1 for a in incidents if a.status == "firing")
    recorded = ctx.record(
        _inputs(ctx, ArtifactUris.of(uris)), outputs, {"findings": len(findings), "incidents": len(incidents), "firing": firing}
    )
    entries = [
        {"alert": a.model_dump(mode="json"), "artifact_id": recorded[f"alert_{n}"].id, "notified": None} for n, a in enumerate(incidents)
    ]
    path = atomic_write_json(
        out_dir / ALERTS_FILE,
        {"log": str(config.log_path), "alerts": entries, "findings": [a.model_dump(mode="json") for a in findings], "dispatched": False},
    )
    ctx.log.info(
        "%d findings -> %d incidents (%d firing): %s",
        len(findings),
        len(incidents),
        firing,
        "; ".join(a.summary for a in incidents if a.status == "firing") or "nothing firing",
    )
    _export_metrics(ctx, sources, out_dir, findings, incidents)
    result = AlertStepResult(
        alerts=incidents,
        dispatch=DispatchResult(),
        recorded={a.dedup_key: recorded[f"alert_{n}"] for n, a in enumerate(incidents)},
        path=path,
        findings=findings,
    )
    if notify:
        result.dispatch = notify_incidents(ctx, out_dir)
    return result


def _export_metrics(
    ctx: StepContext, sources: Sequence[Path], out_dir: Path, findings: Sequence[Alert], incidents: Sequence[Alert]
) -> None:
    """The evaluation's figures as Prometheus metrics: ``metrics.prom`` always, the Pushgateway when configured."""
    from components.drift.report import REPORT_JSON as DRIFT_JSON
    from components.drift.report import load_drift_report
    from components.live_metrics.measure import REPORT_JSON as LIVE_JSON
    from components.live_metrics.measure import LiveMetricsReport
    from components.monitor.metrics import evaluation_metrics, push_metrics, write_metrics

    drift = live = None
    for src in sources:
        d = src if src.is_dir() else src.parent
        if (d / DRIFT_JSON).is_file():
            drift = load_drift_report(d)
        if (d / LIVE_JSON).is_file():
            live = LiveMetricsReport.model_validate(read_json(d / LIVE_JSON))
    version = next((a.version for a in findings if a.version), "") or (
        str(live.version) if live is not None and live.version is not None else ""
    )
    registry = evaluation_metrics(
        pipeline=ctx.spec.name,
        model=ctx.spec.model_name,
        version=version,
        drift=drift,
        live=live,
        incidents=incidents,
        finished_at=utc_now(),
    )
    path = write_metrics(registry, out_dir)
    mon = ctx.spec.monitoring
    if mon is not None and mon.pushgateway:
        try:
            push_metrics(registry, mon.pushgateway, ctx.spec.name)
        except AlertError as e:
            ctx.log.warning("%s (they are in %s)", e, path)
        else:
            ctx.log.info("metrics pushed to %s (and written to %s)", mon.pushgateway, path)


def notify_incidents(
    ctx: StepContext, alerts_path: Path, actions: Mapping[str, str] | None = None, *, news: bool = False
) -> DispatchResult:
    """Dispatches the incidents the alert step wrote, each with what cvpipe did about it.

    Args:
        ctx: the step context.
        alerts_path: the alert step's ``alerts.json`` (or its directory); it is rewritten with the outcome.
        actions: incident dedup key -> what cvpipe did or will do (the retraining's id, or why none).
        news: the actions are news (a retraining started): an incident already firing gets them as a
            follow-up although its cooldown has not passed.

    Returns:
        The dispatcher's result.
    """
    p = alerts_path / ALERTS_FILE if alerts_path.is_dir() else alerts_path
    doc = read_json(p) if p.is_file() else {"alerts": []}
    config = _config(ctx)
    dispatcher = AlertDispatcher(config)
    state = dispatcher.state()
    incidents: list[Alert] = []
    for e in doc.get("alerts", []):
        a = Alert.model_validate(e["alert"])
        action = (actions or {}).get(a.dedup_key, "")
        if action and a.status == "firing":
            a = a.model_copy(update={"action": action})
            if news and state.get(a.dedup_key, {}).get("status") == "firing":
                a = a.model_copy(update={"update": action})
        incidents.append(a)
    result = dispatcher.dispatch(incidents)
    sent = {(a.dedup_key, a.status) for a in result.notified} | {(a.dedup_key, a.status) for a in result.silenced}
    for e, a in zip(doc.get("alerts", []), incidents, strict=True):
        e["alert"] = a.model_dump(mode="json")
        e["notified"] = (a.dedup_key, a.status) in sent
        if e.get("artifact_id") is not None:
            ctx.store.update_properties(int(e["artifact_id"]), {"notified": e["notified"], "action": a.action})
    doc.update(
        {
            "dispatched": True,
            "notified": [a.dedup_key for a in result.notified],
            "suppressed": [a.dedup_key for a in result.suppressed],
            "silenced": [a.dedup_key for a in result.silenced],
            "undelivered": result.undelivered,
        }
    )
    atomic_write_json(p, doc)
    ctx.log.info(
        "%d incidents: %d notified, %d suppressed as duplicates, %d silenced, %d undelivered; log %s",
        len(incidents),
        len(result.notified),
        len(result.suppressed),
        len(result.silenced),
        len(result.undelivered),
        config.log_path,
    )
    return result

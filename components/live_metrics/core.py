"""The live-metrics step: the production model on labelled production images, against its blessed evaluation.

:func:`run` reads the window's predictions joined with the human labels
known now (``PredictionLogReader.joined``, point-in-time correct, with each label's
labelling stratum), keeps the production version's rows, and measures the
spec's live metrics on the uniformly sampled share
(:func:`~.measure.measure`), comparing each with the evaluation the version
was blessed on (:func:`~components.monitor.production.blessed_model`) at
that evaluation's IoU and score thresholds. It writes ``live_metrics.json``,
``live_metrics.html`` and the alerts it raises or resolves (``alerts.json``,
for the alert step).

Lineage: inputs ``window`` (PredictionLog), ``labelling_batch`` (the
LabellingBatch artifacts whose labels were used, when recorded),
``blessed_evaluation`` (ModelEvaluation) and ``model`` (PushedModel); output
``evaluation`` (a ModelEvaluation with ``live`` true, the status and the estimates).
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from components.alert.files import write_alert_file
from components.alert.model import Alert
from components.core.io import atomic_write_text
from components.core.labelmap import LabelMap
from components.core.lineage import ArtifactRef, NewArtifact
from components.core.step import ArtifactUris, StepContext
from components.monitor.production import blessed_model
from components.monitor.window import load_window

from .measure import REPORT_JSON, LiveMetricsReport, degradation_alerts, measure

__all__ = ["REPORT_HTML", "REPORT_JSON", "LiveMetricsResult", "render_html", "run"]

REPORT_HTML = "live_metrics.html"
"""The report as a page, inside the step's output directory."""


@dataclass
class LiveMetricsResult:
    """What the live-metrics step produced.

    Attributes:
        report: the report.
        alerts: the alerts it raises (degradations) or resolves.
        scalars: estimates for KFP's ``Metrics`` output (``live_<metric>``, bounds, counts).
        artifacts: recorded output artifacts (``evaluation``).
    """

    report: LiveMetricsReport
    alerts: list[Alert]
    scalars: dict[str, float]
    artifacts: dict[str, ArtifactRef] = field(default_factory=dict)


def _num(v: float | None) -> str:
    return "–" if v is None else f"{v:.3f}"


def render_html(report: LiveMetricsReport) -> str:
    """The report as one small self-contained page.

    Args:
        report: the report.

    Returns:
        The HTML text.
    """
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{c}</td>"
            for c in (
                html.escape(m.metric),
                f"<b>{html.escape(m.status)}</b>",
                _num(m.estimate),
                f"[{_num(m.lower)}, {_num(m.upper)}]",
                html.escape(m.method),
                m.images,
                f"{m.design_effect:.2f}",
                _num(m.blessed),
                _num(m.bound),
                _num(m.all_labelled),
                html.escape(m.reason),
            )
        )
        + "</tr>"
        for m in report.metrics
    )
    head = [
        "metric",
        "status",
        "estimate",
        f"{report.confidence:.0%} interval",
        "method",
        "images",
        "design effect",
        "blessed",
        "alarm below",
        "all labelled (biased)",
        "reason",
    ]
    window = f"{report.window.start.isoformat()} – {report.window.end.isoformat()}" if report.window else "not given"
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Live metrics</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:.3em .6em}th{background:#f4f4f4}</style></head><body>"
        f"<h1>Live metrics: {html.escape(report.model)} v{report.version}</h1>"
        f"<p>Status <b>{html.escape(report.status)}</b>; window {html.escape(window)}; {report.labelled} labelled images "
        f"({', '.join(f'{k}: {v}' for k, v in sorted(report.strata.items())) or 'none'}); metrics on the random share only; "
        f"blessed evaluation {html.escape(report.blessed_evaluation or 'not found')}.</p>"
        "<table><thead><tr>" + "".join(f"<th>{h}</th>" for h in head) + f"</tr></thead><tbody>{rows}</tbody></table></body></html>\n"
    )


def run(
    ctx: StepContext,
    window_dir: Path,
    out_dir: Path,
    *,
    uris: ArtifactUris | Mapping[str, str] | None = None,
    as_of: datetime | None = None,
) -> LiveMetricsResult:
    """The live-metrics step.

    Args:
        ctx: the step context (``spec.monitoring`` holds metrics, confidence and minimum labels).
        window_dir: the read-window step's output directory.
        out_dir: output directory for the report and ``alerts.json``.
        uris: artifact URIs by name (``window``, ``evaluation``); a missing one means the local path.
        as_of: labels known at this time are used (default: now).

    Returns:
        The result, with the recorded artifact.
    """
    from components.core.prediction_log import PredictionLogReader

    spec = ctx.spec
    mon = spec.monitoring
    assert mon is not None, "live metrics need spec.monitoring"
    u = ArtifactUris.of(uris)
    window = load_window(window_dir)
    prod = blessed_model(spec, ctx.store)
    log = PredictionLogReader(mon.log_dir(spec.runtime.root))
    joined = log.joined(window.window.start, window.window.end, model_name=spec.model_name, as_of=as_of)
    if len(joined):
        joined = joined[joined["model_version"] == window.model_version]
    label_map = LabelMap.load(Path(prod.version.model_dir) / "label_map.json")
    iou = prod.iou_threshold if prod.iou_threshold is not None else spec.evaluate.iou_threshold
    score = prod.score_threshold if prod.score_threshold is not None else spec.evaluate.score_threshold
    report = measure(
        joined,
        spec.task,
        label_map,
        mon.live_metrics,
        prod.evaluation,
        confidence=mon.confidence,
        min_labelled=mon.min_labelled,
        bootstrap=mon.bootstrap,
        iou_threshold=float(iou),
        score_threshold=float(score),
        seed=mon.sampling.seed,
    )
    report.model = spec.model_name
    report.version = window.model_version
    report.window = window.window
    report.blessed_evaluation = prod.source or None
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / REPORT_JSON, report.model_dump_json(indent=2) + "\n")
    atomic_write_text(out_dir / REPORT_HTML, render_html(report))
    alerts = degradation_alerts(
        report,
        runbook_url=mon.runbook_url,
        generator_url=str(u.get("evaluation", os.fspath(out_dir))).rstrip("/") + "/" + REPORT_HTML,
        labels={"pipeline": spec.name},
        alias=mon.model_alias,
    )
    write_alert_file(out_dir, alerts, "live_metrics")
    scalars: dict[str, float] = {"labelled": float(report.labelled), "labelled_random": float(report.strata.get("random", 0))}
    for m in report.metrics:
        if m.estimate is not None:
            scalars[f"live_{m.metric}"] = m.estimate
        if m.upper is not None:
            scalars[f"live_{m.metric}_upper"] = m.upper
        if m.lower is not None:
            scalars[f"live_{m.metric}_lower"] = m.lower
    ctx.log.info(
        "live metrics %s on %d labelled images (%s): %s",
        report.status,
        report.labelled,
        report.strata,
        "; ".join(
            f"{m.metric} {m.status} {_num(m.estimate)} [{_num(m.lower)}, {_num(m.upper)}] vs {_num(m.bound)}" for m in report.metrics
        ),
    )
    batch_ids = sorted({str(b) for b in joined.get("labelling_batch_id", []) if isinstance(b, str) and b}) if len(joined) else []
    batches = [a for b in batch_ids for a in ctx.store.artifacts("LabellingBatch", batch_id=b)]
    artifacts = ctx.record(
        {
            "window": ctx.input_artifact(u.get("window", os.fspath(window_dir)), "PredictionLog"),
            "labelling_batch": batches or None,
            "blessed_evaluation": prod.evaluation_artifact,
            "model": ctx.store.get(prod.version.pushed_id),
        },
        {
            "evaluation": NewArtifact(
                "ModelEvaluation",
                u.get("evaluation", os.fspath(out_dir)),
                {
                    "live": True,
                    "status": report.status,
                    "task": spec.task,
                    "model_name": spec.model_name,
                    "model_version": window.model_version,
                    "pipeline": spec.name,
                    "labelled": report.labelled,
                    "labelled_random": report.strata.get("random", 0),
                    "metrics": {m.metric: m.estimate for m in report.metrics},
                    "degraded": [m.metric for m in report.degraded],
                },
            )
        },
        {"status": report.status, "labelled": report.labelled},
    )
    return LiveMetricsResult(report=report, alerts=alerts, scalars=scalars, artifacts=artifacts)

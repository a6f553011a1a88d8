"""The drift step of continuous evaluation: the window's predictions against the production model's training data.

:func:`run` builds (or reads from its cache) the reference of the model in
production (:mod:`.reference`), turns the window's rows into the current
side, and runs :func:`~.core.check_drift` with ``monitoring.drift``'s
thresholds and the previous report of the pipeline as the hysteresis state.
It writes the report (JSON, plots, HTML) and the alerts it raises or
resolves (``alerts.json``, for the alert step to dispatch; nothing is sent
here). Lineage: inputs ``window`` (PredictionLog), ``statistics`` (the
training run's ExampleStatistics), ``model`` (the PushedModel in production)
and ``previous_report``; output ``report`` (DriftReport, with ``status`` and
the drifted features).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from components.alert.files import write_alert_file
from components.alert.model import Alert
from components.core.lineage import ArtifactRef, NewArtifact
from components.core.step import ArtifactUris, StepContext
from components.monitor.production import blessed_model
from components.monitor.window import load_window

from .alerts import drift_alerts
from .config import DriftConfig
from .core import check_drift
from .reference import build_reference, drift_inputs
from .report import REPORT_HTML, DriftReport, load_drift_report, write_drift_report

__all__ = ["DriftStepResult", "run"]


@dataclass
class DriftStepResult:
    """What the drift step produced.

    Attributes:
        report: the drift report.
        alerts: the alerts it raises (firing) or resolves.
        reference_path: the cached reference rows used.
        artifacts: recorded output artifacts (``report``).
    """

    report: DriftReport
    alerts: list[Alert]
    reference_path: Path
    artifacts: dict[str, ArtifactRef] = field(default_factory=dict)


def run(
    ctx: StepContext, window_dir: Path, out_dir: Path, *, uris: ArtifactUris | Mapping[str, str] | None = None, plots: bool = True
) -> DriftStepResult:
    """The drift step.

    Args:
        ctx: the step context (``spec.monitoring`` holds the thresholds and reference size).
        window_dir: the read-window step's output directory.
        out_dir: output directory for the report and ``alerts.json``.
        uris: artifact URIs by name (``window``, ``report``); a missing one means the local path.
        plots: draw the report's PNG plots.

    Returns:
        The result, with the recorded artifact.
    """
    spec = ctx.spec
    mon = spec.monitoring
    u = ArtifactUris.of(uris)
    config = mon.drift_config() if mon is not None else DriftConfig()
    window = load_window(window_dir)
    prod = blessed_model(spec, ctx.store)
    reference = build_reference(
        ctx.store,
        prod,
        mon.reference_samples if mon is not None else 200,
        Path(spec.runtime.root) / spec.name / "reference",
        seed=config.seed,
    )
    previous_ref = ctx.store.latest("DriftReport", pipeline=spec.name, model_name=spec.model_name)
    previous = None
    if previous_ref is not None:
        try:
            previous = load_drift_report(previous_ref.uri)
        except (OSError, ValueError) as e:
            ctx.log.warning("previous drift report %s cannot be read (%s); no hysteresis this time", previous_ref.uri, e)
            previous_ref = None
    report = check_drift(
        drift_inputs(reference.rows), drift_inputs(window.rows), config, previous=previous, model=spec.model_name, window=window.window
    )
    files = write_drift_report(report, out_dir, plots=plots)
    alerts = drift_alerts(
        report,
        model=spec.model_name,
        version=str(prod.version.version),
        alias=mon.model_alias if mon is not None else "",
        runbook_url=mon.runbook_url if mon is not None else None,
        generator_url=str(u.get("report", os.fspath(out_dir))).rstrip("/") + "/" + REPORT_HTML,
        labels={"kind": "drift", "pipeline": spec.name},
    )
    write_alert_file(out_dir, alerts, "drift")
    drifted = report.drifted_features()
    ctx.log.info(
        "drift %s: %d reference images (%s, %s), %d window predictions; drifting: %s; report %s",
        report.status,
        len(reference.rows),
        reference.source,
        "cached" if reference.cached else "computed",
        len(window.rows),
        ", ".join(drifted) or "nothing",
        files.html,
    )
    artifacts = ctx.record(
        {
            "window": ctx.input_artifact(u.get("window", os.fspath(window_dir)), "PredictionLog"),
            "statistics": reference.statistics,
            "model": ctx.store.get(prod.version.pushed_id),
            "previous_report": previous_ref,
        },
        {
            "report": NewArtifact(
                "DriftReport",
                u.get("report", os.fspath(out_dir)),
                {
                    "status": report.status,
                    "drifted": drifted,
                    "model_name": spec.model_name,
                    "model_version": prod.version.version,
                    "pipeline": spec.name,
                    "window_rows": len(window.rows),
                    "reference_rows": len(reference.rows),
                    "reference": str(reference.path),
                    "reference_source": reference.source,
                },
            )
        },
        {"status": report.status, "drifted": len(drifted)},
    )
    return DriftStepResult(report=report, alerts=alerts, reference_path=reference.path, artifacts=artifacts)

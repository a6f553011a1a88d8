"""From a drift report to alerts: one firing alert per drifting check, one resolve per check back to ok.

Checks with ``not_enough_data`` produce nothing: too little data neither
raises nor clears an alert. Resolves are sent for every ``ok`` check; the
dispatcher forwards only those whose key is firing, so nothing is announced
as resolved that never fired. Dedup keys are stable per model and check
(``cvpipe/<model>/drift/<check>/<feature>``), so repeated runs update one
incident.
"""

from __future__ import annotations

from collections.abc import Mapping

from components.alert.model import Alert, Severity

from .report import CheckResult, DriftReport

__all__ = ["ALERT_NAMES", "drift_alerts"]

ALERT_NAMES: dict[str, str] = {
    "prediction_mix": "PredictionDrift",
    "psi": "FeatureDrift",
    "ks": "FeatureDrift",
    "js": "FeatureDrift",
    "embedding_mmd": "EmbeddingDrift",
}
"""Alert name (Alertmanager ``alertname``) per check."""


def _summary(model: str, c: CheckResult) -> str:
    who = f"{model}: " if model else ""
    value = f"{c.value:.4g}" if c.value is not None else "n/a"
    p = f", p={c.p_value:.3g} < {c.alpha:g}" if c.p_value is not None and c.alpha is not None else ""
    if c.status == "drift":
        return f"{who}{c.feature} drifted ({c.statistic} {value} > {c.threshold:g}{p})"
    return f"{who}{c.feature} back within limits ({c.statistic} {value})"


def drift_alerts(
    report: DriftReport,
    *,
    model: str | None = None,
    severity: Severity = "warning",
    severities: Mapping[str, Severity] | None = None,
    runbook_url: str | None = None,
    generator_url: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> list[Alert]:
    """The alerts a drift report raises or resolves.

    Args:
        report: the drift report.
        model: model name (default: the report's).
        severity: severity of a drift alert.
        severities: per-check overrides (check name -> severity), e.g. ``{"prediction_mix": "error"}``.
        runbook_url: the runbook linked from every alert.
        generator_url: link to the report (e.g. the HTML page's URL).
        labels: extra labels on every alert.

    Returns:
        Firing alerts for drifting checks and resolved alerts for checks that are ok, in report order.
    """
    name = model if model is not None else report.model
    out: list[Alert] = []
    for c in report.checks:
        if c.status == "not_enough_data":
            continue
        alert = Alert(
            name=ALERT_NAMES.get(c.name, "Drift"),
            severity=(severities or {}).get(c.name, severity),
            summary=_summary(name, c),
            description=f"{c.name} of {c.feature}: n_reference={c.n_reference}, n_current={c.n_current}, clears below {c.clear_threshold:g}",
            model=name,
            metric=c.key,
            value=c.value,
            threshold=c.threshold,
            window=report.window,
            runbook_url=runbook_url,
            dedup_key=f"cvpipe/{name or 'model'}/drift/{c.key}",
            labels={**(labels or {}), "check": c.name, "feature": c.feature},
            generator_url=generator_url,
            starts_at=report.created_at,
        )
        out.append(alert if c.status == "drift" else alert.resolved(report.created_at))
    return out

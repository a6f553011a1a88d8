"""From a drift report to findings: one firing finding per drifting check, one resolve per check back to ok.

A finding is an :class:`~components.alert.model.Alert` of one check; the
alert step groups the findings of one evaluation into one incident per model
and cause (:mod:`components.alert.incident`), so on-call is paged once for a
brightness shift, not once per statistic. Each finding says what changed in
words a person reads (``mean 0.52 -> 0.31 (-40%)``, ``circle 25% -> 68%``) in
its ``description`` and carries the numbers in ``findings[0]``.

Checks with ``not_enough_data`` produce nothing: too little data neither
raises nor clears an alert. Resolves are produced for every ``ok`` check; the
dispatcher forwards only those whose incident is firing, so nothing is
announced as resolved that never fired. Dedup keys are stable per model and
check (``cvpipe/<model>/drift/<check>/<feature>``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from components.alert.model import Alert, Severity

from .results import CheckResult, ClassMixData, DriftReport

__all__ = ["ALERT_NAMES", "CAUSES", "change_in_words", "drift_alerts"]

ALERT_NAMES: dict[str, str] = {
    "prediction_mix": "PredictionDrift",
    "category_mix": "InputDrift",
    "psi": "InputDrift",
    "ks": "InputDrift",
    "js": "InputDrift",
    "embedding_mmd": "EmbeddingDrift",
}
"""Alert name (Alertmanager ``alertname``) per check: the name of its cause's incident."""

CAUSES: dict[str, str] = {
    "prediction_mix": "prediction_drift",
    "category_mix": "input_drift",
    "psi": "input_drift",
    "ks": "input_drift",
    "js": "input_drift",
    "embedding_mmd": "embedding_drift",
}
"""The incident cause each check belongs to."""


def _g(v: float) -> str:
    return f"{v:.3g}"


def _numeric_change(c: CheckResult) -> str:
    ref, cur = c.details.get("reference"), c.details.get("current")
    if not isinstance(ref, dict) or not isinstance(cur, dict):
        return ""
    r, k = float(ref["mean"]), float(cur["mean"])
    rel = f" ({(k - r) / abs(r):+.0%})" if r else ""
    direction = "down" if k < r else "up" if k > r else "unchanged"
    return (
        f"mean {_g(r)} -> {_g(k)}{rel}, {direction}; median {_g(ref['p50'])} -> {_g(cur['p50'])}; "
        f"10-90% range {_g(ref['p10'])}-{_g(ref['p90'])} -> {_g(cur['p10'])}-{_g(cur['p90'])}"
    )


def _mix_change(mix: ClassMixData | None, top: int = 3) -> str:
    if mix is None:
        return ""
    nr, nc = max(1, sum(mix.reference)), max(1, sum(mix.current))
    shares = [(name, r / nr, c / nc) for name, r, c in zip(mix.classes, mix.reference, mix.current, strict=False)]
    shares.sort(key=lambda t: abs(t[2] - t[1]), reverse=True)
    return ", ".join(f"{name} {r:.0%} -> {c:.0%}" for name, r, c in shares[:top])


def change_in_words(c: CheckResult, report: DriftReport) -> str:
    """What a check saw, in words a person reads.

    Args:
        c: the check.
        report: its report (class and category counts).

    Returns:
        E.g. ``mean 0.52 -> 0.31 (-40%), down; ...`` or ``circle 25% -> 68%, star 24% -> 3%``;
        empty when the report holds nothing to say it with.
    """
    if c.name in ("psi", "ks", "js"):
        return _numeric_change(c)
    if c.name == "prediction_mix":
        return "predicted class shares " + _mix_change(report.class_mix)
    if c.name == "category_mix":
        return "shares " + _mix_change(report.categories.get(c.feature))
    if c.name == "embedding_mmd":
        return "production images' embeddings moved away from the training images' (kernel two-sample test)"
    return ""


def _statistic(c: CheckResult) -> str:
    value = f"{c.value:.4g}" if c.value is not None else "n/a"
    p = f", p={c.p_value:.2g} < {c.alpha:g}" if c.p_value is not None and c.alpha is not None and c.status == "drift" else ""
    op = ">" if c.status == "drift" else "<="
    return f"{c.statistic} {value} {op} {c.threshold:g}{p}"


def finding(c: CheckResult, report: DriftReport) -> dict[str, Any]:
    """One check as an incident's finding (the numbers behind the words).

    Args:
        c: the check.
        report: its report.

    Returns:
        ``check``, ``feature``, ``change``, ``statistic``, ``value``, ``threshold``, ``p_value``,
        ``alpha``, ``n_reference``, ``n_current``, ``status`` and ``ratio`` (value / threshold, how far over).
    """
    ratio = (c.value / c.threshold) if c.value is not None and c.threshold else (float("inf") if c.value else 0.0)
    return {
        "check": c.name,
        "feature": c.feature,
        "change": change_in_words(c, report),
        "statistic": _statistic(c),
        "value": c.value,
        "threshold": c.threshold,
        "p_value": c.p_value,
        "alpha": c.alpha,
        "n_reference": c.n_reference,
        "n_current": c.n_current,
        "status": c.status,
        "ratio": ratio if ratio != float("inf") else 1e9,
    }


def drift_alerts(
    report: DriftReport,
    *,
    model: str | None = None,
    version: str = "",
    alias: str = "",
    severity: Severity = "warning",
    severities: Mapping[str, Severity] | None = None,
    runbook_url: str | None = None,
    generator_url: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> list[Alert]:
    """The findings a drift report raises or resolves.

    Args:
        report: the drift report.
        model: model name (default: the report's).
        version: the model version in production.
        alias: the alias it holds.
        severity: severity of a drift finding.
        severities: per-check overrides (check name -> severity), e.g. ``{"prediction_mix": "error"}``.
        runbook_url: the runbook base (the incident links its cause's section).
        generator_url: link to the report (e.g. the HTML page's URL).
        labels: extra labels on every finding.

    Returns:
        Firing findings for drifting checks and resolved ones for checks that are ok, in report order.
    """
    name = model if model is not None else report.model
    out: list[Alert] = []
    for c in report.checks:
        if c.status == "not_enough_data":
            continue
        f = finding(c, report)
        cause = CAUSES.get(c.name, "input_drift")
        state = "drifted" if c.status == "drift" else "back within limits"
        alert = Alert(
            name=ALERT_NAMES.get(c.name, "InputDrift"),
            severity=(severities or {}).get(c.name, severity),
            summary=f"{name or 'model'}: {c.feature} {state} ({f['statistic']})",
            description=f["change"],
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
            cause=cause,
            version=version,
            alias=alias,
            findings=[f],
        )
        out.append(alert if c.status == "drift" else alert.resolved(report.created_at))
    return out

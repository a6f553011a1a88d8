"""Prometheus metrics of one continuous evaluation: written beside the run, pushed to a Pushgateway when configured.

A continuous evaluation is a batch job, so it does not serve ``/metrics``;
Prometheus' documented pattern for batch jobs is the Pushgateway. Each
evaluation builds one registry (:func:`evaluation_metrics`) and

* always writes it in the text exposition format (``metrics.prom`` in the alert
  step's output, beside the run's other outputs);
* pushes it to ``monitoring.pushgateway`` when set (``PUT
  /metrics/job/cvpipe_continuous_eval/pipeline/<name>``: each evaluation
  replaces the previous one's figures).

Metrics (labels ``model``, ``version``, ``pipeline`` on every series):

========================================================  ==========================================
``cvpipe_drift_value{check,feature,statistic,cause}``     the effect size (PSI, KS D, JS distance, L-inf, MMD²)
``cvpipe_drift_threshold{check,feature,cause}``           fires above it
``cvpipe_drift_p_value{check,feature,cause}``             the test's p-value (checks with a test)
``cvpipe_drift_firing{check,feature,cause}``              1 while the check drifts (hysteresis applied), else 0
``cvpipe_drift_samples{side}``                            reference / current values compared
``cvpipe_live_metric{metric,bound}``                      ``bound`` = estimate, lower, upper, blessed, alert_below
``cvpipe_live_metric_degraded{metric}``                   1 when the interval is wholly below ``alert_below``
``cvpipe_live_labelled_images{stratum}``                  labelled images of the window per sampling stratum
``cvpipe_incident_firing{cause}``                         1 per firing incident cause
``cvpipe_ce_last_success_timestamp_seconds``              when this evaluation's figures were complete
========================================================  ==========================================

``infra/prometheus/cvpipe-rules.yml`` alerts on them, so a team alerting from
Prometheus gets the same incidents as cvpipe's own dispatcher.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway, write_to_textfile

from components.core.errors import AlertError

__all__ = ["JOB", "METRICS_FILE", "evaluation_metrics", "push_metrics", "write_metrics"]

METRICS_FILE = "metrics.prom"
"""The text-format file written beside the run."""
JOB = "cvpipe_continuous_eval"
"""The Pushgateway job name."""

_CAUSES = {
    "prediction_mix": "prediction_drift",
    "category_mix": "input_drift",
    "psi": "input_drift",
    "ks": "input_drift",
    "js": "input_drift",
    "embedding_mmd": "embedding_drift",
}


def evaluation_metrics(
    *,
    pipeline: str,
    model: str,
    version: str,
    drift: Any | None = None,
    live: Any | None = None,
    incidents: Sequence[Any] = (),
    finished_at: datetime | None = None,
) -> CollectorRegistry:
    """One evaluation's figures as a Prometheus registry.

    Args:
        pipeline: the spec's name.
        model: the model name.
        version: the version evaluated.
        drift: the drift report (``components.drift.DriftReport``), if any.
        live: the live-metrics report (``components.live_metrics.LiveMetricsReport``), if any.
        incidents: the evaluation's incidents (alerts with a ``cause``).
        finished_at: when the figures were complete (sets the last-success gauge).

    Returns:
        The registry.
    """
    reg = CollectorRegistry()
    base = ["model", "version", "pipeline"]
    ident = {"model": model, "version": version, "pipeline": pipeline}
    if drift is not None:
        value = Gauge(
            "cvpipe_drift_value", "Drift effect size of one check", [*base, "check", "feature", "statistic", "cause"], registry=reg
        )
        thr = Gauge("cvpipe_drift_threshold", "Threshold a drift check fires above", [*base, "check", "feature", "cause"], registry=reg)
        pval = Gauge("cvpipe_drift_p_value", "p-value of a drift check's test", [*base, "check", "feature", "cause"], registry=reg)
        firing = Gauge("cvpipe_drift_firing", "1 while the drift check fires", [*base, "check", "feature", "cause"], registry=reg)
        samples = Gauge("cvpipe_drift_samples", "Values compared by the drift checks", [*base, "side"], registry=reg)
        n_ref = n_cur = 0
        for c in drift.checks:
            labels = {**ident, "check": c.name, "feature": c.feature, "cause": _CAUSES.get(c.name, "input_drift")}
            n_ref, n_cur = max(n_ref, c.n_reference), max(n_cur, c.n_current)
            if c.status == "not_enough_data":
                continue
            thr.labels(**labels).set(c.threshold)
            firing.labels(**labels).set(1 if c.status == "drift" else 0)
            if c.value is not None:
                value.labels(**labels, statistic=c.statistic).set(c.value)
            if c.p_value is not None:
                pval.labels(**labels).set(c.p_value)
        samples.labels(**ident, side="reference").set(n_ref)
        samples.labels(**ident, side="current").set(n_cur)
    if live is not None:
        metric = Gauge(
            "cvpipe_live_metric", "Live metric on labelled production images, with its interval", [*base, "metric", "bound"], registry=reg
        )
        degraded = Gauge(
            "cvpipe_live_metric_degraded", "1 when the live metric's interval is below its alert line", [*base, "metric"], registry=reg
        )
        labelled = Gauge(
            "cvpipe_live_labelled_images", "Labelled images of the window per sampling stratum", [*base, "stratum"], registry=reg
        )
        for m in live.metrics:
            for bound, v in (
                ("estimate", m.estimate),
                ("lower", m.lower),
                ("upper", m.upper),
                ("blessed", m.blessed),
                ("alert_below", m.bound),
            ):
                if v is not None:
                    metric.labels(**ident, metric=m.metric, bound=bound).set(v)
            if m.status in ("degraded", "ok", "inconclusive"):
                degraded.labels(**ident, metric=m.metric).set(1 if m.status == "degraded" else 0)
        for stratum, n in sorted(live.strata.items()):
            labelled.labels(**ident, stratum=stratum).set(n)
        labelled.labels(**ident, stratum="all").set(live.labelled)
    causes = Gauge("cvpipe_incident_firing", "1 per firing incident cause of the evaluation", [*base, "cause"], registry=reg)
    for cause in ("input_drift", "prediction_drift", "embedding_drift", "degradation"):
        causes.labels(**ident, cause=cause).set(1 if any(a.cause == cause and a.status == "firing" for a in incidents) else 0)
    if finished_at is not None:
        Gauge("cvpipe_ce_last_success_timestamp_seconds", "When the last continuous evaluation completed", base, registry=reg).labels(
            **ident
        ).set(finished_at.timestamp())
    return reg


def write_metrics(registry: CollectorRegistry, out_dir: str | os.PathLike[str]) -> Path:
    """Writes the registry in the text exposition format (atomically, as ``prometheus_client`` does).

    Args:
        registry: the registry.
        out_dir: the directory.

    Returns:
        ``<out_dir>/metrics.prom``.
    """
    path = Path(out_dir) / METRICS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry)
    return path


def push_metrics(registry: CollectorRegistry, gateway: str, pipeline: str, timeout_s: float = 10.0) -> None:
    """Pushes the registry to a Pushgateway, replacing the pipeline's previous figures.

    Args:
        registry: the registry.
        gateway: the Pushgateway's URL.
        pipeline: the grouping key's ``pipeline``.
        timeout_s: request timeout.

    Raises:
        AlertError: the Pushgateway refused or could not be reached.
    """
    try:
        push_to_gateway(gateway, job=JOB, registry=registry, grouping_key={"pipeline": pipeline}, timeout=timeout_s)
    except OSError as e:  # urllib's URLError/HTTPError are OSErrors
        raise AlertError(f"Pushgateway {gateway}: the evaluation's metrics were not pushed: {e}", sink="pushgateway") from None

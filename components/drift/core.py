"""Drift of production data against training data: the drift step's pure core.

Three kinds of evidence, each optional, compared side by side:

- the predicted class mix against the training class mix (prediction bias):
  L-infinity distance and a chi-square test (:mod:`.categorical`);
- image statistics per feature (brightness, contrast, width, height...):
  PSI, two-sample Kolmogorov-Smirnov and Jensen-Shannon distance, vectorised
  (:mod:`.numeric`); non-numeric ones (format, colour mode) by their
  category mix like the predictions;
- embeddings: MMD² with a permutation test (:mod:`.mmd`).

:func:`check_drift` turns them into a :class:`~.report.DriftReport` with one
:class:`~.report.CheckResult` per check and feature, applying the thresholds,
minimum sample sizes and hysteresis of :class:`~.config.DriftConfig`
against the previous report's statuses. :func:`~.report.write_drift_report`
writes it with its plots; :func:`~.alerts.drift_alerts` turns it into alerts.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from components.alert.model import TimeWindow

from .categorical import class_mix_statistics
from .config import CheckStatus, DriftConfig, decide
from .mmd import mmd_permutation_test
from .numeric import feature_names, feature_statistics
from .results import CheckResult, ClassMixData, DriftReport, HistogramData, MMDSummary

__all__ = ["PREDICTED_CLASS", "DriftInputs", "check_drift", "embedding_check", "feature_checks", "overall_status", "prediction_check"]

PREDICTED_CLASS = "predicted_class"
"""The ``feature`` of the prediction class-mix check."""
EMBEDDING = "embedding"
"""The ``feature`` of the embedding check."""

Previous = Mapping[str, CheckStatus] | DriftReport | None


@dataclass
class DriftInputs:
    """One side of a drift comparison (training data, or a production window).

    Attributes:
        predictions: predicted (or, for training data, labelled) class per image, or ``{class: count}``.
        features: image statistics: feature name -> values (dict of arrays or a pandas DataFrame);
            numeric features get PSI / KS / Jensen-Shannon, others (format, colour mode) a category-mix check.
        embeddings: image embeddings, ``rows x dims``.
    """

    predictions: Mapping[str, int] | Iterable[object] | None = None
    features: Mapping[str, Any] | Any | None = None
    embeddings: np.ndarray | None = None


def _previous(previous: Previous) -> Mapping[str, CheckStatus]:
    if previous is None:
        return {}
    if isinstance(previous, DriftReport):
        return previous.statuses()
    return previous


def _none_if_nan(v: float) -> float | None:
    return None if v is None or v != v else float(v)


def _check(
    name: str,
    feature: str,
    statistic: str,
    value: float | None,
    threshold: float,
    config: DriftConfig,
    previous: Mapping[str, CheckStatus],
    n_reference: int,
    n_current: int,
    *,
    p_value: float | None = None,
    alpha: float | None = None,
    details: dict[str, Any] | None = None,
) -> CheckResult:
    prev = previous.get(f"{name}/{feature}")
    enough = n_reference >= config.min_samples and n_current >= config.min_samples
    value = _none_if_nan(value) if enough and value is not None else None
    p_value = _none_if_nan(p_value) if enough and p_value is not None else None
    status = decide(value, threshold, p_value=p_value, alpha=alpha, previous=prev, clear_fraction=config.clear_fraction)
    return CheckResult(
        name=name,
        feature=feature,
        statistic=statistic,
        value=value,
        threshold=threshold,
        clear_threshold=threshold * config.clear_fraction,
        p_value=p_value,
        alpha=alpha,
        status=status,
        previous_status=prev,
        n_reference=n_reference,
        n_current=n_current,
        details=details or {},
    )


def prediction_check(
    reference: Mapping[str, int] | Iterable[object],
    current: Mapping[str, int] | Iterable[object],
    config: DriftConfig | None = None,
    previous: Previous = None,
) -> tuple[CheckResult, ClassMixData]:
    """Prediction bias: the current predicted class mix against the reference mix.

    Args:
        reference: reference class per image, or ``{class: count}``.
        current: predicted class per image, or ``{class: count}``.
        config: thresholds (default :class:`DriftConfig`).
        previous: the previous report, or its :meth:`DriftReport.statuses`.

    Returns:
        The ``prediction_mix`` check (value: L-infinity; p-value: chi-square) and the class counts.
    """
    cfg = config or DriftConfig()
    mix = class_mix_statistics(reference, current)
    check = _check(
        "prediction_mix",
        PREDICTED_CLASS,
        "linf",
        mix.linf,
        cfg.prediction_linf,
        cfg,
        _previous(previous),
        mix.n_reference,
        mix.n_current,
        p_value=mix.p_value,
        alpha=cfg.prediction_p_value,
        details={"chi2": _none_if_nan(mix.chi2), "dof": mix.dof},
    )
    return check, ClassMixData(classes=mix.classes, reference=mix.reference, current=mix.current)


def _kind(table: Any, name: str) -> str:
    try:
        col = table[name]
    except (KeyError, IndexError):
        return ""
    return str(np.asarray(col).dtype.kind)


def feature_checks(
    reference: Mapping[str, Any] | Any,
    current: Mapping[str, Any] | Any,
    config: DriftConfig | None = None,
    previous: Previous = None,
) -> tuple[list[CheckResult], dict[str, HistogramData], dict[str, ClassMixData]]:
    """Checks of every image-statistics feature: PSI, KS and Jensen-Shannon when numeric, the category mix otherwise.

    A feature is numeric when its values are booleans, integers or floats on both sides; other
    features (image format, colour mode...) get a ``category_mix`` check like the predicted class mix
    (L-infinity with a chi-square test, thresholds ``categorical_linf`` / ``categorical_p_value``).

    Args:
        reference: feature name -> training values (dict of arrays or DataFrame; NaN is missing).
        current: feature name -> production values.
        config: thresholds (default :class:`DriftConfig`).
        previous: the previous report, or its :meth:`DriftReport.statuses`.

    Returns:
        The checks (per numeric feature ``psi``, ``ks``, ``js``; per categorical feature ``category_mix``;
        in feature order), the numeric histograms and the categorical counts.
    """
    cfg = config or DriftConfig()
    prev = _previous(previous)
    names = feature_names(reference, current)
    numeric = [n for n in names if _kind(reference, n) in "biuf" and _kind(current, n) in "biuf"]
    stats = {
        s.feature: s
        for s in feature_statistics(
            reference, current, features=numeric, psi_bins=cfg.psi_bins, js_bins=cfg.js_bins, workers=cfg.worker_count()
        )
    }
    checks: list[CheckResult] = []
    hists: dict[str, HistogramData] = {}
    categories: dict[str, ClassMixData] = {}
    for name in names:
        s = stats.get(name)
        if s is None:
            ref_values = reference[name] if _kind(reference, name) else []
            cur_values = current[name] if _kind(current, name) else []
            mix = class_mix_statistics(_labels(ref_values), _labels(cur_values))
            details = {"chi2": _none_if_nan(mix.chi2), "dof": mix.dof}
            checks.append(
                _check(
                    "category_mix",
                    name,
                    "linf",
                    mix.linf,
                    cfg.categorical_linf,
                    cfg,
                    prev,
                    mix.n_reference,
                    mix.n_current,
                    p_value=mix.p_value,
                    alpha=cfg.categorical_p_value,
                    details=details,
                )
            )
            categories[name] = ClassMixData(classes=mix.classes, reference=mix.reference, current=mix.current)
            continue
        t = cfg.thresholds_for(s.feature)
        n = (s.n_reference, s.n_current)
        missing: dict[str, Any] = {
            "missing_reference": s.missing_reference,
            "missing_current": s.missing_current,
            "reference": _shape(reference[name]),
            "current": _shape(current[name]),
        }
        psi_bins = {"edges": s.psi_edges, "reference": s.psi_reference, "current": s.psi_current}
        checks.append(_check("psi", name, "psi", s.psi, t.psi, cfg, prev, *n, details={**missing, "bins": psi_bins}))
        checks.append(
            _check(
                "ks", name, "ks_d", s.ks_statistic, t.ks_statistic, cfg, prev, *n, p_value=s.ks_p_value, alpha=t.ks_p_value, details=missing
            )
        )
        checks.append(_check("js", name, "js_distance", s.js_distance, t.js_distance, cfg, prev, *n, details=missing))
        if s.histogram is not None:
            hists[name] = HistogramData(edges=s.histogram.edges, reference=s.histogram.reference, current=s.histogram.current)
    return checks, hists, categories


def _shape(values: Any) -> dict[str, float] | None:
    """Mean and 10/50/90th percentiles of one side, for the alert's words (None when no finite value)."""
    a = np.asarray(values, dtype=np.float64).ravel()
    a = a[np.isfinite(a)]
    if a.size == 0:
        return None
    p10, p50, p90 = np.percentile(a, [10, 50, 90])
    return {"mean": float(a.mean()), "p10": float(p10), "p50": float(p50), "p90": float(p90)}


def _labels(values: Any) -> list[object]:
    """Category labels with missing values (None, NaN) left out."""
    return [v for v in np.asarray(values, dtype=object).reshape(-1).tolist() if v is not None and v == v]


def embedding_check(
    reference: np.ndarray,
    current: np.ndarray,
    config: DriftConfig | None = None,
    previous: Previous = None,
) -> tuple[CheckResult, MMDSummary | None]:
    """Embedding drift: MMD² (RBF kernel, median heuristic) with a permutation test.

    Args:
        reference: training embeddings, ``n x d``.
        current: production embeddings, ``m x d``.
        config: thresholds, permutations, subsample size and seed (default :class:`DriftConfig`).
        previous: the previous report, or its :meth:`DriftReport.statuses`.

    Returns:
        The ``embedding_mmd`` check and the test (None when there was not enough data).
    """
    cfg = config or DriftConfig()
    n, m = len(reference), len(current)
    summary: MMDSummary | None = None
    value = p = None
    details: dict[str, Any] = {}
    if n >= cfg.min_samples and m >= cfg.min_samples:
        r = mmd_permutation_test(reference, current, permutations=cfg.mmd_permutations, seed=cfg.seed, max_samples=cfg.mmd_max_samples)
        summary = MMDSummary(mmd2=r.mmd2, p_value=r.p_value, bandwidth=r.bandwidth, permutations=r.permutations, null=r.null)
        value, p = r.mmd2, r.p_value
        details = {"bandwidth": r.bandwidth, "permutations": r.permutations, "rows_used": [r.n_reference, r.n_current]}
    check = _check(
        "embedding_mmd",
        EMBEDDING,
        "mmd2",
        value,
        cfg.mmd2_threshold,
        cfg,
        _previous(previous),
        n,
        m,
        p_value=p,
        alpha=cfg.mmd_p_value,
        details=details,
    )
    return check, summary


def overall_status(checks: Iterable[CheckResult]) -> CheckStatus:
    """The report's status from its checks.

    Args:
        checks: the checks.

    Returns:
        ``drift`` if any check drifts, else ``ok`` if any check ran, else ``not_enough_data``.
    """
    statuses = {c.status for c in checks}
    if "drift" in statuses:
        return "drift"
    return "ok" if "ok" in statuses else "not_enough_data"


def check_drift(
    reference: DriftInputs,
    current: DriftInputs,
    config: DriftConfig | None = None,
    *,
    previous: Previous = None,
    model: str = "",
    window: TimeWindow | None = None,
) -> DriftReport:
    """Runs every check both sides have data for.

    Args:
        reference: training data (class mix, image statistics, embeddings).
        current: the production window.
        config: thresholds and options (default :class:`DriftConfig`).
        previous: the previous report (hysteresis), or its :meth:`DriftReport.statuses`.
        model: the model monitored (for the report and alerts).
        window: the production window's time span.

    Returns:
        The report (not yet written; see :func:`~.report.write_drift_report`).
    """
    cfg = config or DriftConfig()
    prev = _previous(previous)
    checks: list[CheckResult] = []
    timings: dict[str, float] = {}
    class_mix = mmd = None
    hists: dict[str, HistogramData] = {}
    categories: dict[str, ClassMixData] = {}
    if reference.predictions is not None and current.predictions is not None:
        t0 = time.perf_counter()
        check, class_mix = prediction_check(reference.predictions, current.predictions, cfg, prev)
        checks.append(check)
        timings["prediction"] = round(time.perf_counter() - t0, 4)
    if reference.features is not None and current.features is not None:
        t0 = time.perf_counter()
        features, hists, categories = feature_checks(reference.features, current.features, cfg, prev)
        checks += features
        timings["features"] = round(time.perf_counter() - t0, 4)
    if reference.embeddings is not None and current.embeddings is not None:
        t0 = time.perf_counter()
        check, mmd = embedding_check(reference.embeddings, current.embeddings, cfg, prev)
        checks.append(check)
        timings["embedding"] = round(time.perf_counter() - t0, 4)
    return DriftReport(
        model=model,
        window=window,
        status=overall_status(checks),
        checks=checks,
        config=cfg,
        class_mix=class_mix,
        histograms=hists,
        categories=categories,
        mmd=mmd,
        timings=timings,
    )

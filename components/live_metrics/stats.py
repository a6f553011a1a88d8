"""Confidence intervals for metrics measured on a small labelled sample of production traffic.

Three interval kinds, each chosen by what the metric is:

- :func:`wilson_interval`: a proportion of independent trials (classification
  accuracy: one trial per image). Wilson's score interval keeps its coverage
  near the nominal level down to a handful of trials and never leaves [0, 1],
  where the normal ("Wald") interval collapses to a point at 0/n or n/n.
- :func:`clustered_wilson`: a proportion whose trials come in clusters (detection
  precision and recall: boxes, grouped by image). Boxes of one image share its
  lighting, clutter and difficulty, so they are not independent; the sample
  carries less information than its box count. The design effect of the ratio
  estimator, ``deff = Var_cluster / Var_binomial`` (Kish), shrinks the trial
  count to an effective sample size ``n / deff`` before the Wilson interval is
  taken. ``deff`` is never taken below 1, so the interval is never narrower than
  the binomial one.
- :func:`bootstrap_interval`: anything else (mAP, F1): the percentile interval
  of the statistic recomputed on images drawn with replacement.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

__all__ = ["Interval", "bootstrap_interval", "clustered_wilson", "wilson_interval", "z_value"]


@dataclass(frozen=True)
class Interval:
    """A point estimate with its two-sided confidence interval.

    Attributes:
        estimate: the point estimate (None when undefined, e.g. precision with no prediction).
        lower: lower bound.
        upper: upper bound.
        method: ``wilson``, ``wilson_clustered`` or ``bootstrap``.
        trials: trials behind a proportion (images, or boxes), or images for the bootstrap.
        effective_trials: trials after the design effect (equal to ``trials`` without clustering).
        design_effect: the design effect used (1.0 for independent trials).
        replicates: bootstrap replicates that gave a defined value (0 for Wilson intervals).
    """

    estimate: float | None
    lower: float | None
    upper: float | None
    method: str
    trials: float = 0.0
    effective_trials: float = 0.0
    design_effect: float = 1.0
    replicates: int = 0


def z_value(confidence: float) -> float:
    """The standard normal quantile of a two-sided interval.

    Args:
        confidence: the confidence level, e.g. 0.95.

    Returns:
        ``z`` with ``P(|Z| <= z) = confidence`` (1.96 for 0.95).
    """
    return NormalDist().inv_cdf(1.0 - (1.0 - confidence) / 2.0)


def _wilson_bounds(p: float, n: float, z: float) -> tuple[float, float]:
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2.0 * n)) / denom
    half = z * math.sqrt(max(p * (1.0 - p) / n + z2 / (4.0 * n * n), 0.0)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def wilson_interval(successes: float, trials: float, confidence: float = 0.95) -> Interval:
    """Wilson's score interval of a proportion.

    Args:
        successes: successes (may be fractional when scaled by a design effect).
        trials: trials.
        confidence: confidence level.

    Returns:
        The interval; with no trials the estimate is None and the bounds are ``[0, 1]``.
    """
    if trials <= 0:
        return Interval(None, 0.0, 1.0, "wilson", 0.0, 0.0)
    p = min(max(successes / trials, 0.0), 1.0)
    lo, hi = _wilson_bounds(p, trials, z_value(confidence))
    return Interval(p, lo, hi, "wilson", float(trials), float(trials))


def clustered_wilson(successes: np.ndarray, trials: np.ndarray, confidence: float = 0.95) -> Interval:
    """Wilson's interval of a pooled proportion whose trials are clustered (boxes within images).

    The estimate is the ratio ``sum(successes) / sum(trials)``. Its variance across
    clusters, ``k/(k-1) * sum((y_i - p m_i)^2) / (sum m_i)^2`` (the linearised
    variance of a ratio estimator), over the binomial variance ``p(1-p)/sum(m_i)``
    is the design effect; the Wilson interval is taken at ``sum(m_i) / deff`` trials.

    Args:
        successes: successes per cluster (true positives per image).
        trials: trials per cluster (predicted boxes per image for precision,
            true objects per image for recall).
        confidence: confidence level.

    Returns:
        The interval (``method`` ``wilson_clustered``); no trials gives an undefined estimate.
    """
    y = np.asarray(successes, dtype=np.float64)
    m = np.asarray(trials, dtype=np.float64)
    n = float(m.sum())
    if n <= 0:
        return Interval(None, 0.0, 1.0, "wilson_clustered", 0.0, 0.0)
    p = float(y.sum()) / n
    used = m > 0
    k = int(used.sum())
    deff = 1.0
    if k >= 2 and 0.0 < p < 1.0:
        var_cluster = k / (k - 1) * float(((y[used] - p * m[used]) ** 2).sum()) / (n * n)
        var_binomial = p * (1.0 - p) / n
        deff = max(1.0, var_cluster / var_binomial)
    n_eff = n / deff
    lo, hi = _wilson_bounds(p, n_eff, z_value(confidence))
    return Interval(p, lo, hi, "wilson_clustered", n, n_eff, deff)


def bootstrap_interval(
    statistic: Callable[[np.ndarray], float | None],
    n: int,
    replicates: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
    estimate: float | None = None,
) -> Interval:
    """Percentile bootstrap interval of a statistic of ``n`` images, resampling images.

    Args:
        statistic: the statistic of a sample given as image indices (may repeat);
            returns None or NaN where it is undefined (such replicates are dropped).
        n: the number of images.
        replicates: bootstrap replicates.
        confidence: confidence level.
        seed: random seed.
        estimate: the statistic on the sample itself (computed when None).

    Returns:
        The interval; bounds are None when no replicate gave a defined value.
    """
    point = statistic(np.arange(n)) if estimate is None and n > 0 else estimate
    if n <= 0 or point is None or (isinstance(point, float) and math.isnan(point)):
        return Interval(None, None, None, "bootstrap", float(n), float(n))
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(replicates):
        v = statistic(rng.integers(0, n, size=n))
        if v is not None and not math.isnan(v):
            values.append(float(v))
    if not values:
        return Interval(float(point), None, None, "bootstrap", float(n), float(n))
    alpha = 1.0 - confidence
    lo, hi = np.quantile(np.asarray(values), [alpha / 2.0, 1.0 - alpha / 2.0])
    return Interval(float(point), float(lo), float(hi), "bootstrap", float(n), float(n), 1.0, len(values))

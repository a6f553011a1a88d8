"""Vectorised KS / PSI / Jensen-Shannon against scipy and straightforward numpy."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import ks_2samp

from components.drift.numeric import PSI_EPSILON, feature_statistics, jensen_shannon_distance, ks_p_value, psi


def grid(x: np.ndarray) -> np.ndarray:
    """Values on a 1/1024 grid: exact in float32 with the lowest mantissa bit clear, so no two collapse."""
    return np.round(np.asarray(x) * 1024) / 1024


def naive_psi(ref: np.ndarray, cur: np.ndarray, bins: int = 10) -> float:
    edges = np.unique(np.quantile(ref, np.arange(1, bins) / bins, method="inverted_cdf"))
    r = np.bincount(np.searchsorted(edges, ref, side="left"), minlength=len(edges) + 1) / len(ref)
    c = np.bincount(np.searchsorted(edges, cur, side="left"), minlength=len(edges) + 1) / len(cur)
    r, c = np.maximum(r, PSI_EPSILON), np.maximum(c, PSI_EPSILON)
    return float(np.sum((c - r) * np.log(c / r)))


def one(ref: np.ndarray, cur: np.ndarray, **kw: object):
    (s,) = feature_statistics({"x": ref}, {"x": cur}, **kw)  # type: ignore[arg-type]
    return s


def test_continuous_values_match_scipy_and_numpy():
    rng = np.random.default_rng(0)
    ref, cur = grid(rng.normal(0, 1, 5000)), grid(rng.normal(0.2, 1.3, 3000))
    s = one(ref, cur)
    expected = ks_2samp(ref, cur)
    assert s.n_reference == 5000 and s.n_current == 3000
    assert s.ks_statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert s.psi == pytest.approx(naive_psi(ref, cur), rel=1e-9)
    assert s.psi > 0.05
    assert sum(s.psi_reference) == pytest.approx(1.0) and len(s.psi_reference) == 10


def test_ties_in_integer_features_match_scipy_exactly():
    rng = np.random.default_rng(1)
    ref = rng.integers(0, 10, 4000)
    cur = rng.integers(0, 12, 2500)
    s = one(ref, cur)
    assert s.ks_statistic == pytest.approx(ks_2samp(ref, cur).statistic, abs=1e-12)
    assert s.psi == pytest.approx(naive_psi(ref, cur), rel=1e-9)
    # Deciles of 10 integer values collapse to at most 9 distinct edges.
    assert s.psi_edges == sorted(set(s.psi_edges)) and len(s.psi_edges) <= 9


def test_width_height_like_features_with_heavy_ties():
    rng = np.random.default_rng(2)
    ref = rng.choice([480, 640, 1024, 1920], size=3000, p=[0.1, 0.5, 0.3, 0.1])
    cur = rng.choice([480, 640, 1024, 1920], size=3000, p=[0.1, 0.2, 0.3, 0.4])
    s = one(ref, cur)
    assert s.ks_statistic == pytest.approx(ks_2samp(ref, cur).statistic, abs=1e-12)
    assert s.ks_statistic > 0.25


def test_missing_and_infinite_values():
    rng = np.random.default_rng(3)
    ref = grid(rng.normal(size=2000))
    cur = grid(rng.normal(size=1500))
    ref[:7] = np.nan
    cur[:3] = np.nan
    ref[10], ref[11], cur[10] = np.inf, -np.inf, np.inf
    s = one(ref, cur)
    assert (s.n_reference, s.n_current, s.missing_reference, s.missing_current) == (1993, 1497, 7, 3)
    expected = ks_2samp(ref[~np.isnan(ref)], cur[~np.isnan(cur)]).statistic
    assert s.ks_statistic == pytest.approx(expected, abs=1e-12)
    assert all(math.isfinite(e) for e in s.histogram.edges)
    assert sum(s.histogram.reference) == 1993 and sum(s.histogram.current) == 1497


def test_negative_zero_equals_zero():
    s = one(np.array([0.0] * 100 + [1.0] * 100), np.array([-0.0] * 100 + [1.0] * 100))
    assert s.ks_statistic == 0.0 and s.psi == pytest.approx(0.0) and s.js_distance == pytest.approx(0.0)


def test_jensen_shannon_is_scipy_distance_base_2_on_shared_bins():
    rng = np.random.default_rng(4)
    ref, cur = rng.normal(0, 1, 4000), rng.normal(0.5, 1, 4000)
    s = one(ref, cur, js_bins=20)
    h = s.histogram
    assert len(h.edges) == 21 and len(h.reference) == 20
    # The same counts, computed independently: open-ended outer bins on the interior edges.
    inner = np.asarray(h.edges[1:-1], dtype=np.float32)
    assert list(np.bincount(np.searchsorted(inner, ref.astype(np.float32), side="left"), minlength=20)) == h.reference
    assert list(np.bincount(np.searchsorted(inner, cur.astype(np.float32), side="left"), minlength=20)) == h.current
    assert s.js_distance == pytest.approx(jensenshannon(h.reference, h.current, base=2), abs=1e-12)
    assert jensen_shannon_distance(np.array([1, 0]), np.array([0, 1])) == pytest.approx(1.0)
    assert jensen_shannon_distance(np.array([3, 1]), np.array([6, 2])) == pytest.approx(0.0)


def test_constant_features():
    same = one(np.full(500, 5.0), np.full(400, 5.0))
    assert (same.ks_statistic, same.js_distance) == (0.0, 0.0) and same.psi == pytest.approx(0.0)
    moved = one(np.full(500, 5.0), np.full(400, 6.0))
    assert moved.ks_statistic == 1.0 and moved.js_distance == pytest.approx(1.0)
    assert moved.psi == pytest.approx(2 * (1 - PSI_EPSILON) * math.log(1 / PSI_EPSILON))  # bins (-inf, 5], (5, inf)


def test_p_values_follow_scipy():
    rng = np.random.default_rng(5)
    ref, cur = rng.normal(size=300), rng.normal(0.2, 1, 200)  # n*m/(n+m) = 120: scipy's kstwo
    s = one(ref, cur)
    assert s.ks_p_value == pytest.approx(ks_2samp(ref, cur, method="asymp").pvalue, rel=1e-9)
    big_ref, big_cur = rng.normal(size=60_000), rng.normal(0.01, 1, 50_000)  # asymptotic Kolmogorov limit
    s = one(big_ref, big_cur)
    assert s.ks_p_value == pytest.approx(ks_2samp(big_ref, big_cur, method="asymp").pvalue, rel=0.02)
    assert np.isnan(ks_p_value(0.3, 0, 10))


def test_psi_helper():
    assert psi(np.array([50, 50]), np.array([50, 50])) == 0.0
    assert psi(np.array([90, 10]), np.array([10, 90])) == pytest.approx(2 * 0.8 * math.log(9))
    assert math.isnan(psi(np.array([0, 0]), np.array([1, 2])))


def test_many_features_at_once_equal_one_at_a_time_and_accept_a_dataframe():
    rng = np.random.default_rng(6)
    ref = {f"f{i}": rng.normal(i, 1 + i / 10, 3000) for i in range(7)}
    cur = {f"f{i}": rng.normal(i + (0.3 if i % 3 == 0 else 0), 1 + i / 10, 2000) for i in range(7)}
    cur["f2"] = cur["f2"][:1500]  # ragged lengths are padded with missing values
    alone = [one(ref[k], cur[k]) for k in ref]
    together = feature_statistics(pd.DataFrame(ref), {k: v for k, v in cur.items()}, chunk=3, workers=2)
    assert [s.feature for s in together] == list(ref)
    for a, b in zip(alone, together, strict=True):
        assert (a.n_reference, a.n_current, a.ks_statistic, a.ks_p_value, a.psi, a.js_distance) == (
            b.n_reference,
            b.n_current,
            b.ks_statistic,
            b.ks_p_value,
            b.psi,
            b.js_distance,
        )
    assert together[2].n_current == 1500 and together[2].missing_current == 0


def test_feature_on_one_side_only():
    ref = {"a": np.arange(100.0), "b": np.arange(100.0)}
    cur = {"a": np.arange(100.0), "c": np.arange(100.0)}
    stats = {s.feature: s for s in feature_statistics(ref, cur)}
    assert list(stats) == ["a", "b", "c"]
    assert (stats["b"].n_reference, stats["b"].n_current) == (100, 0) and math.isnan(stats["b"].ks_statistic)
    assert (stats["c"].n_reference, stats["c"].n_current) == (0, 100) and stats["c"].histogram is None
    assert stats["a"].ks_statistic == 0.0


def test_ks_matches_scipy_on_many_small_tied_samples():
    rng = np.random.default_rng(7)
    for _ in range(200):
        n, m = rng.integers(1, 40, size=2)
        ref = rng.integers(-3, 4, n).astype(float)
        cur = rng.integers(-3, 5, m).astype(float) * rng.choice([1.0, 0.5])
        assert one(ref, cur).ks_statistic == pytest.approx(ks_2samp(ref, cur).statistic, abs=1e-12), (ref, cur)

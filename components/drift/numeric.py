"""Vectorised two-sample statistics of numeric features: KS, PSI and Jensen-Shannon.

One sort per feature answers all three, with no Python loop over values:

1. Reference and current values are written side by side into one float32
   row, and the lowest mantissa bit of each value is replaced by its side
   (0 reference, 1 current). Values therefore compare at float32 precision
   less one bit (about 7 significant digits), far below anything a drift
   monitor acts on; ``+-inf`` is clipped to the float32 range first (a tagged
   infinity would read as NaN), ``-0.0`` becomes ``0.0``, NaN is missing.
2. The row is sorted (``ndarray.sort``, SIMD-accelerated in numpy 1.26 on
   AVX-512 machines; NaN sorts last). The running count of current-side
   tags gives both empirical CDFs at every position, hence the exact
   two-sample Kolmogorov-Smirnov statistic. It is read only at the last
   element of each run of equal values, so ties (integer widths and
   heights) give exactly what ``scipy.stats.ks_2samp`` gives.
3. PSI bins are reference quantiles; their edges come from a vectorised
   bisection on the reference's running rank, and the counts per bin from
   ``searchsorted`` of the few edges into the sorted row. Jensen-Shannon uses
   equal-width bins shared by both sides over the pooled 0.1 %-99.9 % range
   (open-ended outer bins, so every value is counted); the same bins make the
   report's histograms.

Features are rows of a 2-D work array, ``chunk`` rows at a time (1 is the
fastest here: the work is memory-bound), optionally in threads (numpy
releases the GIL in sort and ufuncs); each thread reuses its work arrays.

KS p-values: ``scipy.stats.distributions.kstwo.sf(D, round(n*m/(n+m)))``
(what ``ks_2samp`` uses in asymptotic mode) when ``n*m/(n+m) <= 10000``,
else Kolmogorov's limit ``kstwobign.sf(D * sqrt(n*m/(n+m)))``: the two agree
closely there and ``kstwo`` takes up to a second per call at large n.

Jensen-Shannon is reported as a *distance* (square root of the divergence),
base 2, in [0, 1]; ``scipy.spatial.distance.jensenshannon(p, q, base=2)``
gives the same number on the same histograms.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import distributions

__all__ = [
    "FeatureStatistics",
    "Histogram",
    "feature_names",
    "feature_statistics",
    "jensen_shannon_distance",
    "ks_p_value",
    "psi",
]

_CLEAR_SIDE = np.int32(-2)
PSI_EPSILON = 1e-4
"""Proportions below this are raised to it in PSI (empty bins would be infinite)."""
_EXACT_KS_MAX_N = 10_000.0


@dataclass
class Histogram:
    """Counts of reference and current values in shared bins (for plots and the report).

    Attributes:
        edges: ``bins + 1`` finite edges; the first and last bins also hold the values beyond them.
        reference: count per bin, reference side.
        current: count per bin, current side.
    """

    edges: list[float]
    reference: list[int]
    current: list[int]


@dataclass
class FeatureStatistics:
    """The two-sample statistics of one numeric feature.

    Attributes:
        feature: feature name.
        n_reference: non-missing reference values.
        n_current: non-missing current values.
        missing_reference: NaN reference values (ignored).
        missing_current: NaN current values (ignored).
        ks_statistic: two-sample Kolmogorov-Smirnov D (NaN when a side is empty).
        ks_p_value: its two-sided p-value.
        psi: population stability index on reference-quantile bins.
        psi_edges: the PSI bin edges (reference quantiles; bins are ``(e[i-1], e[i]]``).
        psi_reference: reference proportion per PSI bin.
        psi_current: current proportion per PSI bin.
        js_distance: Jensen-Shannon distance, base 2, on ``histogram``.
        histogram: shared equal-width histogram of both sides.
    """

    feature: str
    n_reference: int
    n_current: int
    missing_reference: int = 0
    missing_current: int = 0
    ks_statistic: float = math.nan
    ks_p_value: float = math.nan
    psi: float = math.nan
    psi_edges: list[float] = field(default_factory=list)
    psi_reference: list[float] = field(default_factory=list)
    psi_current: list[float] = field(default_factory=list)
    js_distance: float = math.nan
    histogram: Histogram | None = None


# --------------------------------------------------------------------------- small pure helpers


def ks_p_value(statistic: np.ndarray | float, n: np.ndarray | int, m: np.ndarray | int) -> np.ndarray:
    """Two-sided p-values of two-sample KS statistics.

    Args:
        statistic: D values.
        n: reference sample sizes.
        m: current sample sizes.

    Returns:
        p-values, same shape as the broadcast inputs (NaN where a size is 0 or D is NaN).
    """
    d = np.asarray(statistic, dtype=np.float64)
    n_arr = np.asarray(n, dtype=np.float64)
    m_arr = np.asarray(m, dtype=np.float64)
    d, n_arr, m_arr = np.broadcast_arrays(d, n_arr, m_arr)
    out = np.full(d.shape, np.nan)
    ok = (n_arr > 0) & (m_arr > 0) & np.isfinite(d)
    en = np.where(ok, n_arr * m_arr / np.where(ok, n_arr + m_arr, 1.0), 0.0)
    small = ok & (en <= _EXACT_KS_MAX_N)
    large = ok & ~small
    if small.any():
        out[small] = distributions.kstwo.sf(d[small], np.round(en[small]))
    if large.any():
        out[large] = distributions.kstwobign.sf(d[large] * np.sqrt(en[large]))
    return np.clip(out, 0.0, 1.0)


def psi(reference: np.ndarray, current: np.ndarray, epsilon: float = PSI_EPSILON) -> float:
    """Population stability index of two binned distributions.

    ``sum((c - r) * ln(c / r))`` over bins, proportions floored at ``epsilon``.

    Args:
        reference: reference counts or proportions per bin.
        current: current counts or proportions per bin.
        epsilon: floor of a proportion.

    Returns:
        The PSI (0 for identical distributions); NaN when a side is empty.
    """
    r = np.asarray(reference, dtype=np.float64)
    c = np.asarray(current, dtype=np.float64)
    if r.sum() <= 0 or c.sum() <= 0:
        return math.nan
    r = np.maximum(r / r.sum(), epsilon)
    c = np.maximum(c / c.sum(), epsilon)
    return float(np.sum((c - r) * np.log(c / r)))


def jensen_shannon_distance(reference: np.ndarray, current: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) of two binned distributions.

    Args:
        reference: reference counts or proportions per bin.
        current: current counts or proportions per bin.

    Returns:
        ``sqrt(JSD)`` with the divergence in bits; NaN when a side is empty.
    """
    p = np.asarray(reference, dtype=np.float64)
    q = np.asarray(current, dtype=np.float64)
    if p.sum() <= 0 or q.sum() <= 0:
        return math.nan
    p = p / p.sum()
    q = q / q.sum()
    m = 0.5 * (p + q)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log2(p / m), 0.0)
        kl_q = np.where(q > 0, q * np.log2(q / m), 0.0)
    jsd = 0.5 * float(kl_p.sum() + kl_q.sum())
    return float(math.sqrt(min(max(jsd, 0.0), 1.0)))


# --------------------------------------------------------------------------- side-tagged float32 values


def _tag_parts(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The two float32 values a value's class holds (side bit 0 and 1), in numeric order."""
    bits = (np.asarray(values, dtype=np.float32) + np.float32(0.0)).view(np.int32)
    even = (bits & _CLEAR_SIDE).view(np.float32)
    odd = (bits | np.int32(1)).view(np.float32)
    return np.minimum(even, odd), np.maximum(even, odd)


def _class_upper(values: np.ndarray) -> np.ndarray:
    """The largest tagged float32 equal to each value up to the side bit."""
    return _tag_parts(values)[1]


def _class_value(values: np.ndarray) -> np.ndarray:
    """The value a tagged float32 stands for (side bit cleared), as float64."""
    bits = np.asarray(values, dtype=np.float32).view(np.int32) & _CLEAR_SIDE
    return bits.view(np.float32).astype(np.float64)


_FLT_MAX = np.float32(np.finfo(np.float32).max)
_UPPER_NEG_MAX = _class_upper(np.array([-_FLT_MAX]))[0]
_LOWER_POS_MAX = _tag_parts(np.array([_FLT_MAX]))[0][0]


def _column(table: Any, name: str) -> np.ndarray | None:
    try:
        col = table[name]
    except (KeyError, IndexError):
        return None
    return np.asarray(col).reshape(-1)


def feature_names(reference: Any, current: Any) -> list[str]:
    """The features compared: reference's, then any only the current side has.

    Args:
        reference: mapping (or DataFrame) of feature name -> values.
        current: the same for the current window.

    Returns:
        Feature names in a stable order.
    """
    names = [str(c) for c in reference]
    seen = set(names)
    names += [str(c) for c in current if str(c) not in seen]
    return names


def _fill(dst: np.ndarray, col: np.ndarray | None) -> int:
    if col is None:
        dst[:] = np.nan
        return 0
    n = len(col)
    np.add(col, 0.0, out=dst[:n], casting="same_kind")  # to float32; -0.0 becomes +0.0
    dst[n:] = np.nan
    return n


# --------------------------------------------------------------------------- the kernel


def _rank_positions(cb: np.ndarray, valid: int, ranks: np.ndarray) -> np.ndarray:
    """Smallest positions p with (p + 1 - cb[p]) >= rank: where the reference reaches each rank."""
    lo = np.zeros(len(ranks), dtype=np.int64)
    hi = np.full(len(ranks), valid - 1, dtype=np.int64)
    while np.any(lo < hi):
        mid = (lo + hi) // 2
        ca = mid + 1 - cb[mid]
        right = ca < ranks
        lo = np.where(right, mid + 1, lo)
        hi = np.where(right, hi, mid)
    return lo


def _bin_counts(row: np.ndarray, cb: np.ndarray, valid: int, edges: np.ndarray, n_ref: int, n_cur: int) -> tuple[np.ndarray, np.ndarray]:
    """Reference and current counts in the bins (-inf, e0], (e0, e1], ..., (e_last, inf)."""
    pos = np.searchsorted(row[:valid], _class_upper(edges), side="right")
    le_cur = np.where(pos > 0, cb[np.maximum(pos - 1, 0)], 0).astype(np.int64)
    le_ref = pos - le_cur
    ref = np.diff(np.concatenate([[0], le_ref, [n_ref]]))
    cur = np.diff(np.concatenate([[0], le_cur, [n_cur]]))
    return ref, cur


def _row_statistics(
    name: str, row: np.ndarray, cb: np.ndarray, d: np.ndarray, valid: int, lengths: tuple[int, int], psi_bins: int, js_bins: int
) -> FeatureStatistics:
    n_cur = int(cb[valid - 1]) if valid else 0
    n_ref = valid - n_cur
    stats = FeatureStatistics(name, n_ref, n_cur, missing_reference=lengths[0] - n_ref, missing_current=lengths[1] - n_cur)
    if n_ref == 0 or n_cur == 0:
        return stats

    # KS: d holds n_ref * (F_ref - F_cur) in float32 (0 inside runs of ties); the two extremes are recomputed exactly.
    dv = d[:valid]
    bits = row.view(np.int32)
    ks = 0.0
    for i in (int(np.argmax(dv)), int(np.argmin(dv))):
        if i < valid - 1 and (bits[i] | 1) == (bits[i + 1] | 1):
            continue  # inside a run of ties (its 0 is a placeholder): the extreme is 0
        c = int(cb[i])
        ks = max(ks, abs((i + 1 - c) / n_ref - c / n_cur))
    stats.ks_statistic = ks
    stats.ks_p_value = float(ks_p_value(ks, n_ref, n_cur))

    # PSI on reference-quantile bins (fewer bins when quantiles coincide).
    ranks = np.maximum(np.ceil(np.arange(1, psi_bins) * n_ref / psi_bins).astype(np.int64), 1)
    edges = np.unique(_class_value(row[_rank_positions(cb, valid, ranks)]))
    ref, cur = _bin_counts(row, cb, valid, edges, n_ref, n_cur)
    stats.psi = psi(ref, cur)
    stats.psi_edges = [float(v) for v in edges]
    stats.psi_reference = [float(v) for v in ref / n_ref]
    stats.psi_current = [float(v) for v in cur / n_cur]

    # Jensen-Shannon on shared equal-width bins over the pooled finite 0.1 %-99.9 % range
    # (infinities were clipped to the float32 limits before tagging).
    first = int(np.searchsorted(row[:valid], _UPPER_NEG_MAX, side="right"))
    last = int(np.searchsorted(row[:valid], _LOWER_POS_MAX, side="left")) - 1
    if last < first:
        return stats
    span = last - first
    lo, hi = (float(v) for v in _class_value(row[[first + int(0.001 * span), first + math.ceil(0.999 * span)]]))
    if hi > lo:
        display = np.linspace(lo, hi, js_bins + 1)
        edges = np.unique(_class_value(display[1:-1]))
        if len(edges) != js_bins - 1:  # neighbouring edges equal at float32 precision
            display = np.concatenate([[lo], edges, [hi]])
    else:
        display = np.array([lo - 0.5, lo, lo + 0.5])
        edges = np.array([lo])
    ref, cur = _bin_counts(row, cb, valid, edges, n_ref, n_cur)
    stats.js_distance = jensen_shannon_distance(ref, cur)
    stats.histogram = Histogram(edges=[float(v) for v in display], reference=[int(v) for v in ref], current=[int(v) for v in cur])
    return stats


_RAMPS: dict[int, np.ndarray] = {}


def _ramp(total: int) -> np.ndarray:
    """1, 2, ..., total as float32 (cached: every chunk of one call has the same width)."""
    r = _RAMPS.get(total)
    if r is None:
        r = np.arange(1, total + 1, dtype=np.float32)
        _RAMPS.clear()
        _RAMPS[total] = r
    return r


class _Scratch:
    """Work arrays of one thread, reused across its chunks (fresh pages cost as much as a pass)."""

    def __init__(self, rows: int, total: int):
        self.values = np.empty((rows, total), dtype=np.float32)
        self.work = np.empty((rows, total), dtype=np.int32)
        self.d = np.empty((rows, total), dtype=np.float32)
        self.ties = np.empty((rows, max(total - 1, 0)), dtype=bool)


def _chunk_statistics(
    names: Sequence[str], reference: Any, current: Any, n_ref_max: int, n_cur_max: int, psi_bins: int, js_bins: int, scratch: _Scratch
) -> list[FeatureStatistics]:
    rows = len(names)
    total = n_ref_max + n_cur_max
    if total == 0:
        return [FeatureStatistics(name, 0, 0) for name in names]
    values = scratch.values[:rows]
    lengths = [
        (_fill(values[j, :n_ref_max], _column(reference, name)), _fill(values[j, n_ref_max:], _column(current, name)))
        for j, name in enumerate(names)
    ]
    np.clip(values, -_FLT_MAX, _FLT_MAX, out=values)  # +-inf would become NaN once tagged; NaN stays NaN
    bits = values.view(np.int32)
    bits[:, :n_ref_max] &= _CLEAR_SIDE
    bits[:, n_ref_max:] |= np.int32(1)
    values.sort(axis=1)  # NaN last

    work, ties = scratch.work[:rows], scratch.ties[:rows]
    np.bitwise_or(bits, np.int32(1), out=work)
    np.equal(work[:, 1:], work[:, :-1], out=ties)  # same value as the next element: not a run end
    cb = work  # cumulative count of current-side values
    np.bitwise_and(bits, np.int32(1), out=cb)
    np.cumsum(cb, axis=1, dtype=np.int32, out=cb)

    valid = [int(np.searchsorted(values[j], np.float32(np.nan), side="left")) for j in range(rows)]
    n_cur = np.array([cb[j, v - 1] if v else 0 for j, v in enumerate(valid)], dtype=np.float64)
    n_ref = np.array(valid, dtype=np.float64) - n_cur
    # d = n_ref * (F_ref - F_cur) = (i + 1) - cb * (1 + n_ref / n_cur)
    scale = (1.0 + n_ref / np.maximum(n_cur, 1.0)).astype(np.float32)
    d = scratch.d[:rows]
    np.multiply(cb, scale[:, None], out=d, dtype=np.float32, casting="unsafe")
    np.subtract(_ramp(total), d, out=d)
    if ties.any():  # continuous features usually have none
        np.copyto(d[:, :-1], np.float32(0.0), where=ties)
    return [_row_statistics(name, values[j], cb[j], d[j], valid[j], lengths[j], psi_bins, js_bins) for j, name in enumerate(names)]


def _length(table: Any, name: str) -> int:
    col = _column(table, name)
    return 0 if col is None else len(col)


def feature_statistics(
    reference: Mapping[str, Any] | Any,
    current: Mapping[str, Any] | Any,
    *,
    features: Sequence[str] | None = None,
    psi_bins: int = 10,
    js_bins: int = 20,
    chunk: int = 1,
    workers: int = 1,
) -> list[FeatureStatistics]:
    """KS, PSI and Jensen-Shannon of every numeric feature, reference against current.

    Args:
        reference: feature name -> values (a dict of arrays or a pandas DataFrame); NaN is missing.
        current: the same for the current window.
        features: the features to compare (default: :func:`feature_names`).
        psi_bins: PSI bins (reference deciles by default; fewer when the reference has ties).
        js_bins: equal-width Jensen-Shannon / histogram bins.
        chunk: features processed together as rows of one 2-D array (1 is fastest when memory bandwidth is the limit).
        workers: threads over chunks.

    Returns:
        One :class:`FeatureStatistics` per feature, in order.
    """
    names = list(features) if features is not None else feature_names(reference, current)
    if not names:
        return []
    n_ref_max = max(_length(reference, n) for n in names)
    n_cur_max = max(_length(current, n) for n in names)
    chunk = max(1, int(chunk))
    groups = [names[i : i + chunk] for i in range(0, len(names), chunk)]

    local = threading.local()

    def run(group: Sequence[str]) -> list[FeatureStatistics]:
        if not hasattr(local, "scratch"):
            local.scratch = _Scratch(chunk, n_ref_max + n_cur_max)
        return _chunk_statistics(group, reference, current, n_ref_max, n_cur_max, psi_bins, js_bins, local.scratch)

    if workers > 1 and len(groups) > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            parts = list(pool.map(run, groups))
    else:
        parts = [run(g) for g in groups]
    return [s for part in parts for s in part]

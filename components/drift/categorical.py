"""Prediction bias: the predicted class mix against the training class mix.

Two numbers per comparison, as in Vertex AI Model Monitoring and TFDV:

- L-infinity distance: the largest absolute difference of one class's share
  between reference and current (0 = same mix, 1 = disjoint).
- Pearson's chi-square test of homogeneity on the 2 x K table of counts
  (classes seen on neither side dropped; no continuity correction), i.e.
  ``scipy.stats.chi2_contingency(table, correction=False)``. A homogeneity
  test rather than a goodness-of-fit test against the reference shares,
  because the reference counts are a sample too, and because a class the
  reference never predicted would make a goodness-of-fit statistic infinite.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from scipy.stats import chi2 as chi2_distribution

__all__ = ["ClassMix", "class_counts", "class_mix_statistics"]


@dataclass
class ClassMix:
    """Class counts of both sides and their comparison.

    Attributes:
        classes: class names (reference's order, then classes only the current side has).
        reference: reference count per class.
        current: current count per class.
        linf: L-infinity distance of the two shares (NaN when a side is empty).
        chi2: Pearson chi-square statistic.
        dof: its degrees of freedom.
        p_value: chi-square p-value (NaN when a side is empty).
    """

    classes: list[str]
    reference: list[int]
    current: list[int]
    linf: float
    chi2: float
    dof: int
    p_value: float

    @property
    def n_reference(self) -> int:
        """Reference total."""
        return int(sum(self.reference))

    @property
    def n_current(self) -> int:
        """Current total."""
        return int(sum(self.current))


def class_counts(values: Mapping[str, int] | Iterable[object]) -> dict[str, int]:
    """Counts per class from a mapping of counts or a sequence of labels.

    Args:
        values: ``{class: count}`` or one label per prediction (str or int; None is skipped).

    Returns:
        ``{class name: count}`` in first-seen order.

    Raises:
        ValueError: a count is negative.
    """
    if isinstance(values, Mapping):
        out = {str(k): int(v) for k, v in values.items()}
    else:
        out = {str(k): int(v) for k, v in Counter(v for v in values if v is not None).items()}
    bad = [k for k, v in out.items() if v < 0]
    if bad:
        raise ValueError(f"negative class counts for {bad}")
    return out


def class_mix_statistics(reference: Mapping[str, int] | Iterable[object], current: Mapping[str, int] | Iterable[object]) -> ClassMix:
    """Compares two class mixes: L-infinity distance and chi-square homogeneity test.

    Args:
        reference: training (or reference-window) class counts or labels.
        current: production class counts or predicted labels.

    Returns:
        The comparison.
    """
    ref = class_counts(reference)
    cur = class_counts(current)
    classes = list(ref) + [c for c in cur if c not in ref]
    r = np.array([ref.get(c, 0) for c in classes], dtype=np.float64)
    c = np.array([cur.get(c, 0) for c in classes], dtype=np.float64)
    n_r, n_c = float(r.sum()), float(c.sum())
    if n_r <= 0 or n_c <= 0:
        return ClassMix(classes, [int(v) for v in r], [int(v) for v in c], math.nan, math.nan, 0, math.nan)
    linf = float(np.max(np.abs(r / n_r - c / n_c)))
    seen = (r + c) > 0
    table = np.stack([r[seen], c[seen]])
    dof = int(table.shape[1] - 1)
    if dof < 1:
        stat, p = 0.0, 1.0
    else:
        expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
        stat = float(np.sum((table - expected) ** 2 / expected))
        p = float(chi2_distribution.sf(stat, dof))
    return ClassMix(classes, [int(v) for v in r], [int(v) for v in c], linf, stat, dof, p)

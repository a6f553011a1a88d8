"""The drift report's model: every check's verdict and the data behind its plots (written by :mod:`.report`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from components.alert.model import TimeWindow
from components.core.clock import utc_now

from .config import CheckStatus, DriftConfig

__all__ = ["CheckResult", "ClassMixData", "DriftReport", "HistogramData", "MMDSummary"]


class CheckResult(BaseModel):
    """One check of one feature.

    Attributes:
        name: ``prediction_mix``, ``category_mix``, ``psi``, ``ks``, ``js`` or ``embedding_mmd``.
        feature: the feature (``predicted_class`` for the class mix, ``embedding`` for MMD).
        statistic: what ``value`` is: ``linf``, ``psi``, ``ks_d``, ``js_distance`` or ``mmd2``.
        value: the effect size (None when there was not enough data).
        threshold: fires above it.
        clear_threshold: once firing, clears below it.
        p_value: the test's p-value (None for checks without a test).
        alpha: significance level the p-value must be below to fire.
        status: ok, drift or not_enough_data.
        previous_status: the status the hysteresis started from (None: no previous report).
        n_reference: reference values used.
        n_current: current values used.
        details: extra numbers (chi-square statistic, missing values, bandwidth...).
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    feature: str
    statistic: str
    value: float | None
    threshold: float
    clear_threshold: float
    p_value: float | None = None
    alpha: float | None = None
    status: CheckStatus
    previous_status: CheckStatus | None = None
    n_reference: int
    n_current: int
    details: dict[str, Any] = Field(default_factory=dict)

    @property
    def key(self) -> str:
        """``name/feature``: the check's identity across reports."""
        return f"{self.name}/{self.feature}"


class HistogramData(BaseModel):
    """Shared-bin histogram of one numeric feature (counts per side).

    Attributes:
        edges: ``bins + 1`` edges; the outer bins also hold values beyond them.
        reference: reference count per bin.
        current: current count per bin.
    """

    edges: list[float]
    reference: list[int]
    current: list[int]


class ClassMixData(BaseModel):
    """Counts per class on both sides.

    Attributes:
        classes: class names.
        reference: reference count per class.
        current: current count per class.
    """

    classes: list[str]
    reference: list[int]
    current: list[int]


class MMDSummary(BaseModel):
    """The embedding test and its permutation distribution.

    Attributes:
        mmd2: observed unbiased MMD².
        p_value: permutation p-value.
        bandwidth: RBF σ (median heuristic).
        permutations: permutations drawn.
        null: MMD² of each permutation.
    """

    mmd2: float
    p_value: float
    bandwidth: float
    permutations: int
    null: list[float] = Field(default_factory=list)


class DriftReport(BaseModel):
    """Drift of production data against training data.

    Attributes:
        format_version: version of this layout.
        model: the model monitored.
        created_at: when the report was made.
        window: the production window compared.
        status: ``drift`` if any check drifts, else ``ok`` if any check ran, else ``not_enough_data``.
        checks: every check.
        config: the thresholds used.
        class_mix: class counts (when predictions were compared).
        histograms: numeric feature -> shared-bin histogram.
        categories: non-numeric feature -> category counts.
        mmd: the embedding test (when embeddings were compared).
        timings: seconds per part (``prediction``, ``features``, ``embedding``).
    """

    model_config = ConfigDict(extra="forbid")

    format_version: int = 1
    model: str = ""
    created_at: datetime = Field(default_factory=utc_now)
    window: TimeWindow | None = None
    status: CheckStatus
    checks: list[CheckResult] = Field(default_factory=list)
    config: DriftConfig = Field(default_factory=DriftConfig)
    class_mix: ClassMixData | None = None
    histograms: dict[str, HistogramData] = Field(default_factory=dict)
    categories: dict[str, ClassMixData] = Field(default_factory=dict)
    mmd: MMDSummary | None = None
    timings: dict[str, float] = Field(default_factory=dict)

    def statuses(self) -> dict[str, CheckStatus]:
        """Check key -> status (what the next report's hysteresis starts from).

        Returns:
            The mapping.
        """
        return {c.key: c.status for c in self.checks}

    @property
    def drifted(self) -> list[CheckResult]:
        """The checks whose status is ``drift``."""
        return [c for c in self.checks if c.status == "drift"]

    def drifted_features(self) -> list[str]:
        """Features with at least one drifting check, in report order.

        Returns:
            Feature names.
        """
        return list(dict.fromkeys(c.feature for c in self.drifted))

"""Drift thresholds and minimum sample sizes (the spec's ``monitoring.drift``); the hysteresis rule is applied by
:func:`components.drift.config.decide`.

Defaults follow Vertex AI Model Monitoring where it has one (0.3 for the
L-infinity distance of categorical features and for Jensen-Shannon on
numeric ones) and common practice elsewhere (PSI 0.2 = "significant shift").

Statistical tests alone flag trivial differences once samples are large, so
a check with a test fires only when **both** the effect size exceeds its
threshold **and** the p-value is below its significance level:

===============  ================================  ===========  =============
check            effect size (value)               threshold    p-value below
===============  ================================  ===========  =============
prediction_mix   L-infinity of class shares        0.3          0.01 (chi²)
category_mix     the same, non-numeric features    0.3          0.01 (chi²)
psi              population stability index        0.2          —
ks               Kolmogorov-Smirnov D              0.1          0.01
js               Jensen-Shannon distance, base 2   0.3          —
embedding_mmd    unbiased MMD² (RBF, median σ)     0.0          0.01 (perm.)
===============  ================================  ===========  =============

Hysteresis (:func:`decide`): a check that was ``ok`` fires when the rule
above holds; a check that was ``drift`` stays so until its value falls
below ``clear_fraction x threshold`` or its p-value rises above
``alpha / clear_fraction``. Fewer than ``min_samples`` values on either side
gives ``not_enough_data``, never ``drift``.
"""

from __future__ import annotations

import math
import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["CheckStatus", "DriftConfig", "NumericThresholds"]

CheckStatus = Literal["ok", "drift", "not_enough_data"]


class NumericThresholds(BaseModel):
    """Thresholds of one numeric feature's checks.

    Attributes:
        psi: population stability index threshold.
        js_distance: Jensen-Shannon distance threshold (base 2, 0..1).
        ks_statistic: Kolmogorov-Smirnov D threshold (the effect size).
        ks_p_value: KS significance level.
    """

    model_config = ConfigDict(extra="forbid")

    psi: float = Field(0.2, gt=0)
    js_distance: float = Field(0.3, gt=0, le=1)
    ks_statistic: float = Field(0.1, gt=0, le=1)
    ks_p_value: float = Field(0.01, gt=0, lt=1)


class DriftConfig(BaseModel):
    """Everything the drift checks need besides the data.

    Attributes:
        min_samples: fewest values per side for a check to run.
        clear_fraction: a firing check clears below this fraction of its threshold.
        prediction_linf: L-infinity threshold of the predicted class mix.
        prediction_p_value: chi-square significance level of the class mix.
        categorical_linf: L-infinity threshold of a non-numeric feature's category mix.
        categorical_p_value: chi-square significance level of a category mix.
        numeric: default thresholds of every numeric feature.
        feature_thresholds: per-feature overrides (feature name -> thresholds).
        psi_bins: reference-quantile bins of PSI.
        js_bins: shared equal-width bins of Jensen-Shannon (and of the histograms).
        mmd2_threshold: MMD² effect size above which embeddings may drift.
        mmd_p_value: permutation-test significance level.
        mmd_permutations: permutations of the MMD test (the smallest p-value is
            ``1 / (permutations + 1)``, so it must be below ``mmd_p_value``: 100 for 0.01).
        mmd_max_samples: embeddings per side (seeded subsample above it).
        seed: seed of subsampling and permutations.
        workers: threads for the numeric checks (0: up to 4, one per CPU).
    """

    model_config = ConfigDict(extra="forbid")

    min_samples: int = Field(50, ge=2)
    clear_fraction: float = Field(0.8, gt=0, le=1)
    prediction_linf: float = Field(0.3, gt=0, le=1)
    prediction_p_value: float = Field(0.01, gt=0, lt=1)
    categorical_linf: float = Field(0.3, gt=0, le=1)
    categorical_p_value: float = Field(0.01, gt=0, lt=1)
    numeric: NumericThresholds = Field(default_factory=NumericThresholds)
    feature_thresholds: dict[str, NumericThresholds] = Field(default_factory=dict)
    psi_bins: int = Field(10, ge=2, le=1000)
    js_bins: int = Field(20, ge=2, le=1000)
    mmd2_threshold: float = Field(0.0, ge=0)
    mmd_p_value: float = Field(0.01, gt=0, lt=1)
    mmd_permutations: int = Field(100, ge=1, le=100_000)
    mmd_max_samples: int = Field(2000, ge=2)
    seed: int = 0
    workers: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _reachable_p_value(self) -> DriftConfig:
        smallest = 1.0 / (self.mmd_permutations + 1)
        if not smallest < self.mmd_p_value:
            need = math.floor(1.0 / self.mmd_p_value)
            raise ValueError(
                f"mmd_permutations={self.mmd_permutations} can never reach p < mmd_p_value={self.mmd_p_value} "
                f"(smallest p-value is 1/{self.mmd_permutations + 1}); use at least {need} permutations"
            )
        return self

    def thresholds_for(self, feature: str) -> NumericThresholds:
        """The thresholds of one numeric feature.

        Args:
            feature: the feature name.

        Returns:
            Its override, or the defaults.
        """
        return self.feature_thresholds.get(feature, self.numeric)

    def worker_count(self) -> int:
        """Threads for the numeric checks.

        Returns:
            ``workers``, or up to 4 (one per CPU) when it is 0.
        """
        return self.workers or max(1, min(4, os.cpu_count() or 1))

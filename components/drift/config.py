"""The hysteresis rule of drift checks (:func:`decide`); the thresholds are the spec's
:class:`~components.core.drift_config.DriftConfig` (re-exported here with its types).

See :mod:`components.core.drift_config` for the checks, their thresholds and the rule.
"""

from __future__ import annotations

import math

from components.core.drift_config import CheckStatus, DriftConfig, NumericThresholds

__all__ = ["CheckStatus", "DriftConfig", "NumericThresholds", "decide"]


def decide(
    value: float | None,
    threshold: float,
    *,
    p_value: float | None = None,
    alpha: float | None = None,
    previous: str | None = None,
    clear_fraction: float = 0.8,
) -> CheckStatus:
    """The status of one check, with hysteresis.

    Args:
        value: the effect size (None or NaN: not computable, i.e. not enough data).
        threshold: fires above it.
        p_value: the test's p-value, when the check has a test.
        alpha: significance level the p-value must be below to fire.
        previous: the check's status in the previous report (``drift`` keeps it firing
            until it clears; anything else is treated as ``ok``).
        clear_fraction: a firing check clears below ``clear_fraction x threshold``, or
            when its p-value exceeds ``alpha / clear_fraction``.

    Returns:
        ``ok``, ``drift`` or ``not_enough_data``.
    """
    if value is None or math.isnan(value):
        return "not_enough_data"
    tested = p_value is not None and alpha is not None and not math.isnan(p_value)
    if previous == "drift":
        cleared = value < clear_fraction * threshold
        if tested:
            assert p_value is not None and alpha is not None
            cleared = cleared or p_value > min(1.0, alpha / clear_fraction)
        return "ok" if cleared else "drift"
    fires = value > threshold
    if tested:
        assert p_value is not None and alpha is not None
        fires = fires and p_value < alpha
    return "drift" if fires else "ok"

"""Live metrics: the production model on labelled production images, against the evaluation it was blessed on.

Modules: :mod:`.stats` (Wilson, clustered Wilson and bootstrap intervals),
:mod:`.measure` (the evaluate component's metrics on the random share of the
labels, verdicts, degradation alerts), :mod:`.core` (the pipeline step) and
:mod:`.component` (its KFP wrapper). Importing this package imports neither
kfp, Feast nor TensorFlow.
"""

from .measure import DEFAULT_METRICS, LiveMetricResult, LiveMetricsReport, default_metrics, degradation_alerts, measure
from .stats import Interval, bootstrap_interval, clustered_wilson, wilson_interval

__all__ = [
    "DEFAULT_METRICS",
    "Interval",
    "LiveMetricResult",
    "LiveMetricsReport",
    "bootstrap_interval",
    "clustered_wilson",
    "default_metrics",
    "degradation_alerts",
    "measure",
    "wilson_interval",
]

"""The drift component: production data against training data (class mix, image statistics, embeddings).

Modules: :mod:`.core` (:func:`check_drift` and the three check families),
:mod:`.config` (thresholds, minimum samples, hysteresis), :mod:`.numeric`
(vectorised KS / PSI / Jensen-Shannon), :mod:`.categorical` (L-infinity and
chi-square of the class mix), :mod:`.mmd` (MMD² permutation test),
:mod:`.report` (the JSON report, plots and HTML page) and :mod:`.alerts`
(report -> alerts). Importing this package imports neither kfp nor matplotlib.
"""

from .alerts import drift_alerts
from .config import CheckStatus, DriftConfig, NumericThresholds, decide
from .core import DriftInputs, check_drift, embedding_check, feature_checks, overall_status, prediction_check
from .report import CheckResult, DriftReport, DriftReportFiles, load_drift_report, write_drift_report

__all__ = [
    "CheckResult",
    "CheckStatus",
    "DriftConfig",
    "DriftInputs",
    "DriftReport",
    "DriftReportFiles",
    "NumericThresholds",
    "check_drift",
    "decide",
    "drift_alerts",
    "embedding_check",
    "feature_checks",
    "load_drift_report",
    "overall_status",
    "prediction_check",
    "write_drift_report",
]

"""The continuous-evaluation loop as plain Python: predict, sample for labelling, drift, alerts.

::

    from cvpipe import PredictionLog, init_feature_repo
    from cvpipe.monitoring import SamplingConfig, check_drift, predict_images, sample_window

    log = PredictionLog(init_feature_repo("runs/prediction_log"))
    predict_images("shapes@champion", "incoming/", 16, registry=registry, log=log)
    batch = sample_window(log, start, end, "shapes", "detection", label_map, SamplingConfig(per_class=12))

The same functions the continuous-evaluation pipeline's components call
(docs/prediction-log-and-labelling.md, docs/drift-and-alerts.md).
"""

from components.alert import Alert, AlertConfig, AlertDispatcher, AlertLog, DispatchResult, Incident, Severity
from components.alert.incident import CAUSES, group_incidents, incident_text
from components.drift import (
    DriftConfig,
    DriftInputs,
    DriftReport,
    check_drift,
    drift_alerts,
    load_drift_report,
    write_drift_report,
)
from components.predict.core import PredictResult, predict_batch, predict_images
from components.sample.core import LabellingBatch, SamplingConfig, sample_window, write_batch
from components.sample.labelstudio import LabelImport, LabelStudioClient, import_export, label_config, to_tasks
from components.sample.simulate import simulate_labels
from components.trigger.state import TriggerState

__all__ = [
    "CAUSES",
    "Alert",
    "AlertConfig",
    "AlertDispatcher",
    "AlertLog",
    "DispatchResult",
    "DriftConfig",
    "DriftInputs",
    "DriftReport",
    "Incident",
    "LabelImport",
    "LabelStudioClient",
    "LabellingBatch",
    "PredictResult",
    "SamplingConfig",
    "Severity",
    "TriggerState",
    "check_drift",
    "drift_alerts",
    "group_incidents",
    "import_export",
    "incident_text",
    "label_config",
    "load_drift_report",
    "predict_batch",
    "predict_images",
    "sample_window",
    "simulate_labels",
    "to_tasks",
    "write_batch",
    "write_drift_report",
]

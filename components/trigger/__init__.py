"""The retraining trigger: a drift or degradation alert starts the training pipeline on the data plus the new labels.

Modules: :mod:`.core` (the decision and the step), :mod:`.state` (cooldowns and
the run in flight, in a locked state file), :mod:`.dataset` (training data plus
labelled images as COCO), :mod:`.launch` (starting and asking after a run through the
:class:`~components.core.runs.Runner` it is handed), :mod:`.retrain` (recording
a finished run) and :mod:`.component` (the KFP wrapper). Importing this package imports neither kfp nor TensorFlow.
"""

from .core import TriggerResult, alert_kind, load_alerts, retrain_dir, run
from .dataset import MergedDataset, merge_datasets
from .state import TERMINAL, RetrainRun, TriggerState

__all__ = [
    "TERMINAL",
    "MergedDataset",
    "RetrainRun",
    "TriggerResult",
    "TriggerState",
    "alert_kind",
    "load_alerts",
    "merge_datasets",
    "retrain_dir",
    "run",
]

"""KFP wrapper of the retraining trigger (the work is in :mod:`components.trigger.core`)."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Output

from components.core.kfp_support import CVPIPE_IMAGE

__all__ = ["trigger"]


@dsl.component(base_image=CVPIPE_IMAGE, install_kfp_package=False)
def trigger(spec: dict, run_id: str, alerts: Input[Artifact], labelled: Input[Dataset], decision: Output[Artifact]) -> None:
    """Starts the training pipeline on the data plus the newly labelled images when a drift or degradation alert fires.

    At most one retraining per model is in flight, and an alert that started one
    does not start another within ``monitoring.retrain.cooldown``.

    Args:
        spec: the whole spec of the monitored model's training pipeline (the retraining runs a copy of it with
            the new data; its ``monitoring.retrain`` holds the settings), (:func:`~components.core.params.spec_parameter`).
        run_id: the pipeline run id (groups lineage; ``dsl.PIPELINE_JOB_NAME_PLACEHOLDER`` in a pipeline).
        alerts: the alert step's output (``alerts.json``).
        labelled: the import-labels step's output (every labelled image and its artifacts).
        decision: output: directory with ``trigger.json`` (decision, run, dataset, derived spec).
    """
    from pathlib import Path

    from components.core.step import StepContext, output_dir
    from components.trigger.core import run

    ctx = StepContext.for_spec("trigger", run_id, spec)
    result = run(ctx, Path(alerts.path), output_dir(decision.path), labelled_dir=Path(labelled.path))
    decision.metadata["triggered"] = result.triggered
    decision.metadata["reason"] = result.reason
    decision.metadata["trigger_id"] = result.trigger_id or ""

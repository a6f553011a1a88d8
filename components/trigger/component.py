"""KFP wrapper of the retraining trigger (the work is in :mod:`components.trigger.core`)."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Output

from components.core.kfp_support import CVPIPE_IMAGE

__all__ = ["trigger"]


@dsl.component(base_image=CVPIPE_IMAGE, install_kfp_package=False)
def trigger(spec_json: str, run_id: str, alerts: Input[Artifact], labelled: Input[Dataset], decision: Output[Artifact]) -> None:
    """Starts the training pipeline on the data plus the newly labelled images when a drift or degradation alert fires.

    At most one retraining per model is in flight, and an alert that started one
    does not start another within ``monitoring.retrain.cooldown``.

    Args:
        spec_json: the pipeline spec as JSON.
        run_id: the pipeline run id (groups lineage).
        alerts: the alert step's output (``alerts.json``).
        labelled: the import-labels step's output (every labelled image and its artifacts).
        decision: output: directory with ``trigger.json`` (decision, run, dataset, derived spec).
    """
    from pathlib import Path

    from components.core.step import StepContext, output_dir
    from components.trigger.core import run

    ctx = StepContext.from_json(spec_json, run_id, "trigger")
    result = run(ctx, Path(alerts.path), output_dir(decision.path), labelled_dir=Path(labelled.path))
    decision.metadata["triggered"] = result.triggered
    decision.metadata["reason"] = result.reason
    decision.metadata["trigger_id"] = result.trigger_id or ""

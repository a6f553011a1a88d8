"""KFP wrapper of the alert step (the work is in :mod:`components.alert.step`)."""

from kfp import dsl
from kfp.dsl import Artifact, Input, Output

from components.core.kfp_support import CVPIPE_IMAGE

__all__ = ["alert"]


@dsl.component(base_image=CVPIPE_IMAGE, install_kfp_package=False)
def alert(
    spec_json: str,
    run_id: str,
    drift_report: Input[Artifact],
    live_evaluation: Input[Artifact],
    alerts: Output[Artifact],
    notify: bool = False,
) -> None:
    """Groups what drift and live metrics found into one incident per model and cause, and records them.

    Args:
        spec_json: the pipeline spec as JSON.
        run_id: the pipeline run id (groups lineage).
        drift_report: the drift step's output (its ``alerts.json``).
        live_evaluation: the live-metrics step's output (its ``alerts.json``).
        alerts: output: directory with ``alerts.json`` (each incident, its findings and its Alert artifact id).
        notify: dispatch the incidents here (when no trigger step follows to dispatch them with its decision).
    """
    from pathlib import Path

    from components.alert.step import run
    from components.core.step import ArtifactUris, StepContext, output_dir

    ctx = StepContext.from_json(spec_json, run_id, "alert")
    result = run(
        ctx,
        [Path(drift_report.path), Path(live_evaluation.path)],
        output_dir(alerts.path),
        uris=ArtifactUris(drift_report=drift_report.uri, live_evaluation=live_evaluation.uri),
        notify=notify,
    )
    alerts.metadata["findings"] = len(result.findings)
    alerts.metadata["firing"] = sum(1 for a in result.alerts if a.status == "firing")
    alerts.metadata["notified"] = len(result.dispatch.notified)

"""KFP wrapper of the alert step (the work is in :mod:`components.alert.step`)."""

from kfp import dsl
from kfp.dsl import Artifact, Input, Output

from components.core.kfp_support import CVPIPE_IMAGE

__all__ = ["alert"]


@dsl.component(base_image=CVPIPE_IMAGE, install_kfp_package=False)
def alert(
    context: dict,
    run_id: str,
    monitoring: dict,
    drift_report: Input[Artifact],
    live_evaluation: Input[Artifact],
    alerts: Output[Artifact],
    notify: bool = False,
) -> None:
    """Groups what drift and live metrics found into one incident per model and cause, and records them.

    Args:
        context: the pipeline context (``PipelineContext``: ``name``, ``task``, ``runtime``, ``registry``, ``tracking``).
        run_id: the pipeline run id (groups lineage; ``dsl.PIPELINE_JOB_NAME_PLACEHOLDER`` in a pipeline).
        monitoring: the ``monitoring`` section (:class:`~components.core.spec.MonitoringSpec`).
        drift_report: the drift step's output (its ``alerts.json``).
        live_evaluation: the live-metrics step's output (its ``alerts.json``).
        alerts: output: directory with ``alerts.json`` (each incident, its findings and its Alert artifact id).
        notify: dispatch the incidents here (when no trigger step follows to dispatch them with its decision).
    """
    from pathlib import Path

    from components.alert.step import run
    from components.core.step import ArtifactUris, StepContext, output_dir

    ctx = StepContext.for_component("alert", run_id, context, monitoring=monitoring)
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

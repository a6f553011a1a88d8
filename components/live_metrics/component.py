"""KFP wrapper of the live-metrics step (the work is in :mod:`components.live_metrics.core`)."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Output

from components.core.kfp_support import CVPIPE_IMAGE

__all__ = ["live_metrics"]


@dsl.component(base_image=CVPIPE_IMAGE, install_kfp_package=False)
def live_metrics(
    context: dict,
    run_id: str,
    monitoring: dict,
    window: Input[Dataset],
    labelled: Input[Dataset],
    evaluation: Output[Artifact],
    metrics: Output[Metrics],
    report: Output[HTML],
    evaluate: dict = {},
) -> None:
    """Measures the production model on labelled production images and compares it with its blessed evaluation.

    Only the uniformly sampled share of the labels is used; a metric is degraded
    only when its confidence interval lies wholly below ``blessed - max_drop``.

    Args:
        context: the pipeline context (``PipelineContext``: ``name``, ``task``, ``runtime``, ``registry``, ``tracking``).
        run_id: the pipeline run id (groups lineage; ``dsl.PIPELINE_JOB_NAME_PLACEHOLDER`` in a pipeline).
        monitoring: the ``monitoring`` section (:class:`~components.core.spec.MonitoringSpec`).
        window: the read-window step's output.
        labelled: the label import's output (its labels are in the prediction log by now).
        evaluation: output: directory with ``live_metrics.json``, ``live_metrics.html`` and ``alerts.json``.
        metrics: output: the live estimates and their bounds.
        report: output: the HTML page.
        evaluate: the ``evaluate`` section (its IoU and score thresholds when the model's evaluation has none).
    """
    import shutil
    from pathlib import Path

    from components.core.step import ArtifactUris, StepContext, output_dir
    from components.live_metrics.core import REPORT_HTML, run

    ctx = StepContext.for_component("live_metrics", run_id, context, monitoring=monitoring, evaluate=evaluate)
    result = run(ctx, Path(window.path), output_dir(evaluation.path), uris=ArtifactUris(window=window.uri, evaluation=evaluation.uri))
    for name, value in result.scalars.items():
        metrics.log_metric(name, value)
    shutil.copyfile(Path(evaluation.path) / REPORT_HTML, report.path)
    evaluation.metadata["status"] = result.report.status
    evaluation.metadata["labelled"] = result.report.labelled
    evaluation.metadata["degraded"] = [m.metric for m in result.report.degraded]

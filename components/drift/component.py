"""KFP wrapper of the drift step (the work is in :mod:`components.drift.step`)."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Output

from components.core.kfp_support import CVPIPE_IMAGE

__all__ = ["drift"]


@dsl.component(base_image=CVPIPE_IMAGE, install_kfp_package=False)
def drift(
    context: dict,
    run_id: str,
    monitoring: dict,
    window: Input[Dataset],
    report: Output[Artifact],
    metrics: Output[Metrics],
    page: Output[HTML],
) -> None:
    """Compares the window's predictions, image statistics and embeddings with the production model's training data.

    Args:
        context: the pipeline context (``PipelineContext``: ``name``, ``task``, ``runtime``, ``registry``, ``tracking``).
        run_id: the pipeline run id (groups lineage; ``dsl.PIPELINE_JOB_NAME_PLACEHOLDER`` in a pipeline).
        monitoring: the ``monitoring`` section (:class:`~components.core.spec.MonitoringSpec`).
        window: the read-window step's output.
        report: output: directory with ``drift_report.json``, ``drift_report.html``, ``plots/`` and ``alerts.json``.
        metrics: output: each check's value (``<check>/<feature>``).
        page: output: the HTML report.
    """
    import shutil
    from pathlib import Path

    from components.core.step import ArtifactUris, StepContext, output_dir
    from components.drift.report import REPORT_HTML
    from components.drift.step import run

    ctx = StepContext.for_component("drift", run_id, context, monitoring=monitoring)
    result = run(ctx, Path(window.path), output_dir(report.path), uris=ArtifactUris(window=window.uri, report=report.uri))
    for c in result.report.checks:
        if c.value is not None:
            metrics.log_metric(c.key.replace("/", "."), c.value)
    shutil.copyfile(Path(report.path) / REPORT_HTML, page.path)
    report.metadata["status"] = result.report.status
    report.metadata["drifted"] = result.report.drifted_features()

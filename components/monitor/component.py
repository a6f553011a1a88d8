"""KFP wrappers of the continuous-evaluation steps around the prediction log.

``read_window`` (:mod:`components.monitor.window`), ``sample`` (:mod:`components.sample.step`)
and ``import_labels`` (:mod:`components.monitor.labels`).
"""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Output

from components.core.kfp_support import CVPIPE_IMAGE

__all__ = ["import_labels", "read_window", "sample"]


@dsl.component(base_image=CVPIPE_IMAGE, install_kfp_package=False)
def read_window(context: dict, run_id: str, monitoring: dict, window: Output[Dataset]) -> None:
    """Reads the last ``monitoring.window`` of the production model's predictions from the prediction log.

    Args:
        context: the pipeline context (``PipelineContext``: ``name``, ``task``, ``runtime``, ``registry``, ``tracking``).
        run_id: the pipeline run id (groups lineage; ``dsl.PIPELINE_JOB_NAME_PLACEHOLDER`` in a pipeline).
        monitoring: the ``monitoring`` section (:class:`~components.core.spec.MonitoringSpec`).
        window: output: directory with ``window.json`` (bounds, model version, counts) and ``predictions.parquet``.
    """
    from components.core.step import ArtifactUris, StepContext, output_dir
    from components.monitor.window import run

    ctx = StepContext.for_component("read_window", run_id, context, monitoring=monitoring)
    result = run(ctx, output_dir(window.path), uris=ArtifactUris(window=window.uri))
    window.metadata["rows"] = len(result.rows)
    window.metadata["start"] = result.window.start.isoformat()
    window.metadata["end"] = result.window.end.isoformat()
    window.metadata["model"] = f"{result.model_name}:{result.model_version}"


@dsl.component(base_image=CVPIPE_IMAGE, install_kfp_package=False)
def sample(context: dict, run_id: str, monitoring: dict, window: Input[Dataset], batch: Output[Artifact]) -> None:
    """Draws a labelling batch from the window (random, per-class and uncertain strata) as Label Studio tasks.

    Args:
        context: the pipeline context (``PipelineContext``: ``name``, ``task``, ``runtime``, ``registry``, ``tracking``).
        run_id: the pipeline run id (groups lineage; ``dsl.PIPELINE_JOB_NAME_PLACEHOLDER`` in a pipeline).
        monitoring: the ``monitoring`` section (:class:`~components.core.spec.MonitoringSpec`).
        window: the read-window step's output (its bounds are the batch's window).
        batch: output: directory with ``batch.json``, ``tasks.json``, ``label_config.xml`` and ``predictions_coco.json``.
    """
    from pathlib import Path

    from components.core.step import ArtifactUris, StepContext, output_dir
    from components.sample.step import run

    ctx = StepContext.for_component("sample", run_id, context, monitoring=monitoring)
    result = run(ctx, Path(window.path), output_dir(batch.path), uris=ArtifactUris(batch=batch.uri))
    batch.metadata["batch_id"] = result.batch.batch_id
    batch.metadata["items"] = len(result.batch.items)
    batch.metadata.update({f"{k}_items": v for k, v in result.batch.counts().items()})


@dsl.component(base_image=CVPIPE_IMAGE, install_kfp_package=False)
def import_labels(context: dict, run_id: str, monitoring: dict, window: Input[Dataset], labelled: Output[Dataset]) -> None:
    """Imports the Label Studio exports waiting in ``monitoring.labels`` into the prediction log as ground truth.

    Args:
        context: the pipeline context (``PipelineContext``: ``name``, ``task``, ``runtime``, ``registry``, ``tracking``).
        run_id: the pipeline run id (groups lineage; ``dsl.PIPELINE_JOB_NAME_PLACEHOLDER`` in a pipeline).
        monitoring: the ``monitoring`` section (:class:`~components.core.spec.MonitoringSpec`).
        window: the read-window step's output (orders the step after it).
        labelled: output: directory with ``manifest.json`` (every image labelled so far) and ``labelled.json``.
    """
    from components.core.step import StepContext, output_dir
    from components.monitor.labels import run

    ctx = StepContext.for_component("import_labels", run_id, context, monitoring=monitoring)
    result = run(ctx, output_dir(labelled.path))
    labelled.metadata["images"] = len(result.manifest.images) if result.manifest else 0
    labelled.metadata["imported_now"] = len(result.imported_now)
    labelled.metadata["failed"] = len(result.failed)
    labelled.metadata["window_rows"] = int(window.metadata.get("rows", 0))

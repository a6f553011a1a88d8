"""KFP wrapper of the evaluate component (the work is in :mod:`components.evaluate.core`)."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from components.core.kfp_support import CVPIPE_IMAGE

__all__ = ["evaluate"]


@dsl.component(base_image=CVPIPE_IMAGE, install_kfp_package=False)
def evaluate(
    context: dict,
    run_id: str,
    model: Input[Model],
    examples: Input[Dataset],
    evaluation: Output[Artifact],
    blessing: Output[Artifact],
    metrics: Output[Metrics],
    classification_metrics: Output[ClassificationMetrics],
    report: Output[HTML],
    evaluate: dict = {},
) -> None:
    """Evaluates the model on the test split against its thresholds and the latest blessed version (the baseline).

    Computes COCO mAP (detection), mean IoU (segmentation) or accuracy/F1
    (classification) overall, per class and per slice, for the model and the
    baseline on the same images, and blesses the model only when every
    threshold of ``evaluate`` holds (none configured: not blessed).

    Args:
        context: the pipeline context (``PipelineContext``: ``name``, ``task``, ``runtime``, ``registry``, ``tracking``).
        run_id: the pipeline run id (groups lineage; ``dsl.PIPELINE_JOB_NAME_PLACEHOLDER`` in a pipeline).
        model: the trained model directory.
        examples: the examples directory (its ``test`` split is evaluated).
        evaluation: output: directory with ``evaluation.json`` (and ``tfma/`` when a TFMA config is set).
        blessing: output: directory with ``blessing.json`` (read by push).
        metrics: output: scalar metrics.
        classification_metrics: output: the confusion matrix.
        report: output: the self-contained HTML report.
        evaluate: the ``evaluate`` section (:class:`~components.core.spec.EvaluateSpec`): thresholds, slices, IoU.
    """
    from pathlib import Path

    from components.core.step import ArtifactUris, StepContext, output_dir
    from components.evaluate.core import run

    ctx = StepContext.for_component("evaluate", run_id, context, evaluate=evaluate)
    result = run(
        ctx,
        Path(model.path),
        Path(examples.path),
        output_dir(evaluation.path),
        output_dir(blessing.path),
        Path(report.path),
        uris=ArtifactUris(model=model.uri, examples=examples.uri, evaluation=evaluation.uri, blessing=blessing.uri),
    )
    for name, value in result.scalars.items():
        metrics.log_metric(name, value)
    categories, matrix = result.confusion
    if categories:
        classification_metrics.log_confusion_matrix(categories, matrix)
    evaluation.metadata["task"] = result.candidate.task
    evaluation.metadata["num_images"] = result.candidate.num_images
    blessing.metadata["blessed"] = result.blessing.blessed
    blessing.metadata["baseline_id"] = result.blessing.baseline_id or ""
    blessing.metadata["reasons"] = result.blessing.reasons

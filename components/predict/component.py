"""KFP wrapper of batch prediction (the work is in :mod:`components.predict.core`)."""

from kfp import dsl
from kfp.dsl import Artifact, Output

from components.core.kfp_support import CVPIPE_IMAGE

__all__ = ["predict_batch"]


@dsl.component(base_image=CVPIPE_IMAGE, install_kfp_package=False)
def predict_batch(
    context: dict,
    run_id: str,
    model_ref: str,
    images: str,
    feature_repo: str,
    prediction_log: Output[Artifact],
    batch_size: int = 16,
) -> None:
    """Predicts on a folder or manifest of images with a registry model and appends the predictions to the prediction log.

    Args:
        context: the pipeline context (``PipelineContext``; its ``registry`` resolves ``model_ref``).
        run_id: the pipeline run id (groups lineage; ``dsl.PIPELINE_JOB_NAME_PLACEHOLDER`` in a pipeline).
        model_ref: the model, ``name@alias`` or ``name:version``.
        images: a folder of images or a manifest JSON file.
        feature_repo: the Feast repository of the prediction log (created when missing).
        prediction_log: output: directory with ``predict.json`` (rows, part files, time range)
            and, when images were rejected, ``quarantine.json``.
        batch_size: images per model call.
    """
    from pathlib import Path

    from components.core.step import ArtifactUris, StepContext, output_dir
    from components.predict.core import run

    ctx = StepContext.for_component("predict_batch", run_id, context)
    result = run(
        ctx,
        model_ref,
        images,
        Path(feature_repo),
        output_dir(prediction_log.path),
        uris=ArtifactUris(prediction_log=prediction_log.uri, images=images),
        batch_size=batch_size,
    )
    prediction_log.metadata["model_name"] = result.model_name
    prediction_log.metadata["model_version"] = result.model_version
    prediction_log.metadata["rows"] = len(result.rows)
    prediction_log.metadata["rejected"] = len(result.quarantine)
    prediction_log.metadata["feature_repo"] = feature_repo

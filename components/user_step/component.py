"""The generic KFP tasks that run a user's ``@cvpipe.step`` function, one per built-in step it can follow.

KFP components have fixed signatures (and kfp.local needs every declared input
given), so each point of the training pipeline has its own component taking
exactly that point's artifacts (:data:`components.user_step.api.ARTIFACTS_AFTER`).
The pipeline builder gives each use the user step's name as its task and
component name. The body imports the function by its ``package.module:function``
path inside the task, so that package must be installed in the image.
"""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model, Output

from components.core.kfp_support import CVPIPE_IMAGE

__all__ = [
    "USER_STEP_COMPONENTS",
    "user_step_after_evaluate",
    "user_step_after_ingest",
    "user_step_after_train",
    "user_step_after_transform",
    "user_step_after_validate",
]


@dsl.component(base_image=CVPIPE_IMAGE, install_kfp_package=False)
def user_step_after_ingest(
    context: dict,
    run_id: str,
    step: dict,
    manifest: Input[Dataset],
    label_map: Input[Artifact],
    quarantine: Input[Artifact],
    output: Output[Artifact],
) -> None:
    """Runs the user step ``step`` (a ``@cvpipe.step`` function) on ingest's artifacts.

    Args:
        context: the pipeline context (``PipelineContext``: ``name``, ``task``, ``runtime``, ``registry``, ``tracking``).
        run_id: the pipeline run id (groups lineage; ``dsl.PIPELINE_JOB_NAME_PLACEHOLDER`` in a pipeline).
        step: the user step (an entry of the spec's ``steps``: name, function, params).
        manifest: input: directory with ``manifest.json``.
        label_map: input: directory with ``label_map.json``.
        quarantine: input: ingest's quarantine report directory.
        output: output: directory with ``step.json`` (outcome, veto reason, returned values) and the function's own files.
    """
    from components.user_step.core import run_task

    run_task(context, run_id, step, {"manifest": manifest, "label_map": label_map, "quarantine": quarantine}, output)


@dsl.component(base_image=CVPIPE_IMAGE, install_kfp_package=False)
def user_step_after_validate(
    context: dict,
    run_id: str,
    step: dict,
    manifest: Input[Dataset],
    label_map: Input[Artifact],
    statistics: Input[Artifact],
    schema: Input[Artifact],
    anomalies: Input[Artifact],
    output: Output[Artifact],
) -> None:
    """Runs the user step ``step`` (a ``@cvpipe.step`` function) on validate's artifacts.

    Args:
        context: the pipeline context (``PipelineContext``: ``name``, ``task``, ``runtime``, ``registry``, ``tracking``).
        run_id: the pipeline run id (groups lineage; ``dsl.PIPELINE_JOB_NAME_PLACEHOLDER`` in a pipeline).
        step: the user step (an entry of the spec's ``steps``: name, function, params).
        manifest: input: directory with the validated ``manifest.json`` (quarantined items removed).
        label_map: input: directory with ``label_map.json``.
        statistics: input: TFDV statistics directory.
        schema: input: directory with ``schema.pbtxt``.
        anomalies: input: directory with ``anomalies.json`` and ``summary.md``.
        output: output: directory with ``step.json`` (outcome, veto reason, returned values) and the function's own files.
    """
    from components.user_step.core import run_task

    run_task(
        context,
        run_id,
        step,
        {"manifest": manifest, "label_map": label_map, "statistics": statistics, "schema": schema, "anomalies": anomalies},
        output,
    )


@dsl.component(base_image=CVPIPE_IMAGE, install_kfp_package=False)
def user_step_after_transform(
    context: dict,
    run_id: str,
    step: dict,
    examples: Input[Dataset],
    label_map: Input[Artifact],
    output: Output[Artifact],
) -> None:
    """Runs the user step ``step`` (a ``@cvpipe.step`` function) on transform's artifacts.

    Args:
        context: the pipeline context (``PipelineContext``: ``name``, ``task``, ``runtime``, ``registry``, ``tracking``).
        run_id: the pipeline run id (groups lineage; ``dsl.PIPELINE_JOB_NAME_PLACEHOLDER`` in a pipeline).
        step: the user step (an entry of the spec's ``steps``: name, function, params).
        examples: input: directory with the TFRecord shards and ``examples.json``.
        label_map: input: directory with ``label_map.json``.
        output: output: directory with ``step.json`` (outcome, veto reason, returned values) and the function's own files.
    """
    from components.user_step.core import run_task

    run_task(context, run_id, step, {"examples": examples, "label_map": label_map}, output)


@dsl.component(base_image=CVPIPE_IMAGE, install_kfp_package=False)
def user_step_after_train(
    context: dict,
    run_id: str,
    step: dict,
    model: Input[Model],
    examples: Input[Dataset],
    label_map: Input[Artifact],
    output: Output[Artifact],
) -> None:
    """Runs the user step ``step`` (a ``@cvpipe.step`` function) on train's artifacts.

    Args:
        context: the pipeline context (``PipelineContext``: ``name``, ``task``, ``runtime``, ``registry``, ``tracking``).
        run_id: the pipeline run id (groups lineage; ``dsl.PIPELINE_JOB_NAME_PLACEHOLDER`` in a pipeline).
        step: the user step (an entry of the spec's ``steps``: name, function, params).
        model: input: the trained model directory (SavedModel, label map, model info).
        examples: input: the TFRecords it was trained on.
        label_map: input: directory with ``label_map.json``.
        output: output: directory with ``step.json`` (outcome, veto reason, returned values) and the function's own files.
    """
    from components.user_step.core import run_task

    run_task(context, run_id, step, {"model": model, "examples": examples, "label_map": label_map}, output)


@dsl.component(base_image=CVPIPE_IMAGE, install_kfp_package=False)
def user_step_after_evaluate(
    context: dict,
    run_id: str,
    step: dict,
    model: Input[Model],
    evaluation: Input[Artifact],
    blessing: Input[Artifact],
    examples: Input[Dataset],
    output: Output[Artifact],
) -> None:
    """Runs the user step ``step`` (a ``@cvpipe.step`` function) on evaluate's artifacts, before push.

    Args:
        context: the pipeline context (``PipelineContext``: ``name``, ``task``, ``runtime``, ``registry``, ``tracking``).
        run_id: the pipeline run id (groups lineage; ``dsl.PIPELINE_JOB_NAME_PLACEHOLDER`` in a pipeline).
        step: the user step (an entry of the spec's ``steps``: name, function, params).
        model: input: the trained model directory.
        evaluation: input: directory with the evaluation's metrics.
        blessing: input: directory with ``blessing.json``.
        examples: input: the TFRecords it was evaluated on.
        output: output: directory with ``step.json`` (outcome, veto reason, returned values) and the function's own files.
    """
    from components.user_step.core import run_task

    run_task(context, run_id, step, {"model": model, "evaluation": evaluation, "blessing": blessing, "examples": examples}, output)


USER_STEP_COMPONENTS = {
    "ingest": user_step_after_ingest,
    "validate": user_step_after_validate,
    "transform": user_step_after_transform,
    "train": user_step_after_train,
    "evaluate": user_step_after_evaluate,
}
"""The generic user-step component for each built-in step a user step can follow."""

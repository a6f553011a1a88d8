"""KFP wrapper of the push component (the work is in :mod:`components.push.core`)."""

from typing import Optional

from kfp import dsl
from kfp.dsl import Artifact, Input, Model, Output

from components.core.kfp_support import CVPIPE_IMAGE

__all__ = ["push"]


@dsl.component(base_image=CVPIPE_IMAGE, install_kfp_package=False)
def push(
    context: dict,
    run_id: str,
    model: Input[Model],
    blessing: Input[Artifact],
    pushed: Output[Artifact],
    monitoring: Optional[dict] = None,
) -> None:
    """Registers the model when the evaluation blessed it and moves ``context.registry.alias`` to the new version.

    A model that is not blessed is not registered: the step records why and
    succeeds. Pushing the same model again finds its existing version.

    Args:
        context: the pipeline context (``PipelineContext``: ``name``, ``task``, ``runtime``, ``registry``, ``tracking``).
        run_id: the pipeline run id (groups lineage; ``dsl.PIPELINE_JOB_NAME_PLACEHOLDER`` in a pipeline).
        model: input: the trained model directory.
        blessing: input: the evaluation's blessing directory (``blessing.json``).
        pushed: output: directory with ``push.json`` (the outcome: version and aliases, or reasons).
        monitoring: the ``monitoring`` section, if any (its alerting announces the alias move to on-call).
    """
    from pathlib import Path

    from components.core.step import ArtifactUris, StepContext, output_dir
    from components.push.core import run

    ctx = StepContext.for_component("push", run_id, context, monitoring=monitoring)
    result = run(
        ctx,
        Path(model.path),
        Path(blessing.path),
        output_dir(pushed.path),
        uris=ArtifactUris(model=model.uri, blessing=blessing.uri, pushed=pushed.uri),
    )
    pushed.metadata["pushed"] = result.pushed
    pushed.metadata["model_name"] = result.model_name
    if result.version is not None:
        pushed.metadata["version"] = result.version.version
        pushed.metadata["aliases"] = list(result.version.aliases)
    else:
        pushed.metadata["reasons"] = result.reasons

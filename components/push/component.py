"""KFP wrapper of the push component (the work is in :mod:`components.push.core`)."""

from kfp import dsl
from kfp.dsl import Artifact, Input, Model, Output

from components.core.kfp_support import CVPIPE_IMAGE

__all__ = ["push"]


@dsl.component(base_image=CVPIPE_IMAGE, install_kfp_package=False)
def push(spec_json: str, run_id: str, model: Input[Model], blessing: Input[Artifact], pushed: Output[Artifact]) -> None:
    """Registers the model when the evaluation blessed it and moves the spec's alias to the new version.

    A model that is not blessed is not registered: the step records why and
    succeeds. Pushing the same model again finds its existing version.

    Args:
        spec_json: the pipeline spec as JSON.
        run_id: the pipeline run id (groups lineage).
        model: input: the trained model directory.
        blessing: input: the evaluation's blessing directory (``blessing.json``).
        pushed: output: directory with ``push.json`` (the outcome: version and aliases, or reasons).
    """
    from pathlib import Path

    from components.core.step import ArtifactUris, StepContext, output_dir
    from components.push.core import run

    ctx = StepContext.from_json(spec_json, run_id, "push")
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

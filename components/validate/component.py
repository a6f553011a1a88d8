"""KFP wrapper of the validate component (the work is in :mod:`components.validate.core`).

``report`` is an HTML artifact: the Kubeflow and Vertex AI consoles render
the object *at the artifact's URI*, so the page is written to ``report.path``
itself (kfp 2.13's executor creates its parent directory), not into a
directory. The Markdown summary lives in the anomalies directory.
"""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Output

from components.core.kfp_support import CVPIPE_IMAGE

__all__ = ["validate"]


@dsl.component(base_image=CVPIPE_IMAGE, install_kfp_package=False)
def validate(
    context: dict,
    run_id: str,
    manifest: Input[Dataset],
    label_map: Input[Artifact],
    validated: Output[Dataset],
    statistics: Output[Artifact],
    schema: Output[Artifact],
    anomalies: Output[Artifact],
    report: Output[HTML],
    quarantine: Output[Artifact],
    validation: dict = {},
) -> None:
    """Validates a dataset version: TFDV statistics, schema and drift, plus image and annotation checks.

    Each anomaly kind fails the run, warns, or quarantines the item
    (``validation.policy``); the step fails only after every output is written.

    Args:
        context: the pipeline context (``PipelineContext``: ``name``, ``task``, ``runtime``, ``registry``, ``tracking``).
        run_id: the pipeline run id (groups lineage; ``dsl.PIPELINE_JOB_NAME_PLACEHOLDER`` in a pipeline).
        manifest: input: directory with ``manifest.json``.
        label_map: input: directory with ``label_map.json``.
        validated: output: directory with ``manifest.json``, the input minus quarantined items.
        statistics: output: directory with ``Split-images/FeatureStats.pb`` and ``Split-objects/FeatureStats.pb``.
        schema: output: directory with ``schema.pbtxt`` (versioned in lineage).
        anomalies: output: directory with ``anomalies.json``, ``summary.md`` and TFDV anomalies text protos.
        report: output: the HTML report (statistics view, TFDV anomalies, problems by file).
        quarantine: output: directory with ``quarantine.json`` and ``quarantine.csv``.
        validation: the ``validation`` section (:class:`~components.core.spec.ValidationSpec`): policies, schema file, drift bounds.
    """
    from pathlib import Path

    from components.core.step import ArtifactUris, StepContext
    from components.validate.core import ValidateOutputs, run

    ctx = StepContext.for_component("validate", run_id, context, validation=validation)
    result = run(
        ctx,
        manifest.path,
        label_map.path,
        ValidateOutputs(
            validated=Path(validated.path),
            statistics=Path(statistics.path),
            schema=Path(schema.path),
            anomalies=Path(anomalies.path),
            report=Path(report.path),
            quarantine=Path(quarantine.path),
        ),
        uris=ArtifactUris(
            manifest=manifest.uri,
            label_map=label_map.uri,
            validated=validated.uri,
            statistics=statistics.uri,
            schema=schema.uri,
            anomalies=anomalies.uri,
            report=report.uri,
            quarantine=quarantine.uri,
        ),
    )
    validated.metadata["images"] = result.images_validated
    schema.metadata["version"] = result.schema_version
    anomalies.metadata["counts"] = result.counts
    quarantine.metadata["rejected"] = result.quarantined

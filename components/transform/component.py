"""KFP wrapper of the transform step (the logic lives in :mod:`components.transform.core`)."""

# no ``from __future__ import annotations``: KFP reads the parameter annotations as types
from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Output

from components.core.kfp_support import CVPIPE_IMAGE

__all__ = ["transform"]


@dsl.component(base_image=CVPIPE_IMAGE, install_kfp_package=False)
def transform(
    context: dict,
    run_id: str,
    data: dict,
    manifest: Input[Dataset],
    label_map: Input[Artifact],
    examples: Output[Dataset],
    quarantine: Output[Artifact],
    transform: dict = {},
    validation: dict = {},
) -> None:
    """Writes the validated manifest's images as sharded TFRecords per split.

    Takes ingest's manifest or validate's validated one; lineage links the
    examples to the statistics and schema the manifest was validated with, when
    it was. Splits by content hash (presets respected), optionally balances classes in
    train, converts to RGB only where needed (upright RGB JPEGs are copied
    byte for byte), optionally resizes, and writes GZIP or plain shards plus
    ``examples.json``. Images that cannot be decoded go to the quarantine report.

    Args:
        context: the pipeline context (``PipelineContext``: ``name``, ``task``, ``runtime``, ``registry``, ``tracking``).
        run_id: the pipeline run id (groups lineage; ``dsl.PIPELINE_JOB_NAME_PLACEHOLDER`` in a pipeline).
        data: the ``data`` section (its quarantine limits apply to the images transform rejects).
        manifest: directory with the validated ``manifest.json``.
        label_map: directory with ``label_map.json``.
        examples: output directory: shards and ``examples.json``.
        quarantine: output directory: ``quarantine.json`` and ``quarantine.csv``.
        transform: the ``transform`` section (:class:`~components.core.spec.TransformSpec`): split, image size, shards.
        validation: the ``validation`` section (its ``max_pixels`` bounds the images decoded).
    """
    from components.core.step import StepContext, output_dir
    from components.transform.core import TransformUris, run

    result = run(
        StepContext.for_component("transform", run_id, context, data=data, transform=transform, validation=validation),
        manifest_path=f"{manifest.path}/manifest.json",
        label_map_path=f"{label_map.path}/label_map.json",
        examples_dir=output_dir(examples.path),
        quarantine_dir=output_dir(quarantine.path),
        uris=TransformUris(
            manifest=manifest.uri,
            label_map=label_map.uri,
            examples=examples.uri,
            quarantine=quarantine.uri,
        ),
    )
    examples.metadata.update(result.metadata())
    quarantine.metadata.update({"stage": "transform", "items": len(result.quarantine), "total": result.quarantine.total})

"""KFP wrapper of the transform step (the logic lives in :mod:`components.transform.core`)."""

# no ``from __future__ import annotations``: KFP reads the parameter annotations as types
from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Output

from components.core.kfp_support import CVPIPE_IMAGE

__all__ = ["transform"]


@dsl.component(base_image=CVPIPE_IMAGE, install_kfp_package=False)
def transform(
    spec_json: str,
    run_id: str,
    manifest: Input[Dataset],
    label_map: Input[Artifact],
    statistics: Input[Artifact],
    schema: Input[Artifact],
    examples: Output[Dataset],
    quarantine: Output[Artifact],
) -> None:
    """Writes the validated manifest's images as sharded TFRecords per split.

    Splits by content hash (presets respected), optionally balances classes in
    train, converts to RGB only where needed (upright RGB JPEGs are copied
    byte for byte), optionally resizes, and writes GZIP or plain shards plus
    ``examples.json``. Images that cannot be decoded go to the quarantine report.

    Args:
        spec_json: the pipeline spec as JSON.
        run_id: the pipeline run id.
        manifest: directory with the validated ``manifest.json``.
        label_map: directory with ``label_map.json``.
        statistics: the TFDV statistics the manifest was validated with (lineage only).
        schema: the schema it was validated against (lineage only).
        examples: output directory: shards and ``examples.json``.
        quarantine: output directory: ``quarantine.json`` and ``quarantine.csv``.
    """
    from components.core.step import StepContext, output_dir
    from components.transform.core import TransformUris, run

    result = run(
        StepContext.from_json(spec_json, run_id, "transform"),
        manifest_path=f"{manifest.path}/manifest.json",
        label_map_path=f"{label_map.path}/label_map.json",
        examples_dir=output_dir(examples.path),
        quarantine_dir=output_dir(quarantine.path),
        uris=TransformUris(
            manifest=manifest.uri,
            label_map=label_map.uri,
            examples=examples.uri,
            quarantine=quarantine.uri,
            statistics=statistics.uri,
            schema=schema.uri,
        ),
    )
    examples.metadata.update(result.metadata())
    quarantine.metadata.update({"stage": "transform", "items": len(result.quarantine), "total": result.quarantine.total})

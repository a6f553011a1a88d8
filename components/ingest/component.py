"""KFP wrapper of the ingest component (the work is in :mod:`components.ingest.core`)."""

from typing import Optional

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Output

from components.core.kfp_support import CVPIPE_IMAGE

__all__ = ["ingest"]


@dsl.component(base_image=CVPIPE_IMAGE, install_kfp_package=False)
def ingest(
    context: dict,
    run_id: str,
    data: dict,
    manifest: Output[Dataset],
    label_map: Output[Artifact],
    quarantine: Output[Artifact],
    validation: dict = {},
    monitoring: Optional[dict] = None,
) -> None:
    """Reads an annotated dataset (COCO, Pascal VOC, YOLO, Ground Truth, class folders) into a canonical manifest.

    Rejected images and annotations go to the quarantine report with reasons; the
    step fails only when more images are rejected than ``data`` allows.

    Args:
        context: the pipeline context (``PipelineContext``: ``name``, ``task``, ``runtime``, ``registry``, ``tracking``).
        run_id: the pipeline run id (groups lineage; ``dsl.PIPELINE_JOB_NAME_PLACEHOLDER`` in a pipeline).
        data: the ``data`` section (:class:`~components.core.spec.DataSpec`): source, format, quarantine limits.
        manifest: output: directory with ``manifest.json``.
        label_map: output: directory with ``label_map.json`` (stable ids, versioned).
        quarantine: output: directory with ``quarantine.json`` and ``quarantine.csv``.
        validation: the ``validation`` section (its ``max_pixels`` bounds the images read).
        monitoring: the ``monitoring`` section, if any (its folders are never read as data).
    """
    from components.core.step import ArtifactUris, StepContext, output_dir
    from components.ingest.core import run

    ctx = StepContext.for_component("ingest", run_id, context, data=data, validation=validation, monitoring=monitoring)
    result = run(
        ctx,
        output_dir(manifest.path),
        output_dir(label_map.path),
        output_dir(quarantine.path),
        uris=ArtifactUris(manifest=manifest.uri, label_map=label_map.uri, quarantine=quarantine.uri),
    )
    manifest.metadata["images"] = len(result.manifest)
    manifest.metadata["format"] = result.manifest.format
    manifest.metadata["task"] = result.manifest.task
    manifest.metadata["sha256"] = result.artifacts["manifest"].properties.get("sha256", "")
    label_map.metadata["version"] = result.label_map.version
    label_map.metadata["num_classes"] = result.label_map.num_classes
    label_map.metadata["classes"] = result.label_map.names
    quarantine.metadata["rejected"] = len(result.quarantine)
    quarantine.metadata["rejected_images"] = result.quarantine.rejected_images
    quarantine.metadata["total"] = result.quarantine.total

"""KFP wrapper of the ingest component (the work is in :mod:`components.ingest.core`)."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Output

from components.core.kfp_support import CVPIPE_IMAGE

__all__ = ["ingest"]


@dsl.component(base_image=CVPIPE_IMAGE, install_kfp_package=False)
def ingest(spec_json: str, run_id: str, manifest: Output[Dataset], label_map: Output[Artifact], quarantine: Output[Artifact]) -> None:
    """Reads the spec's annotated dataset (COCO, Pascal VOC, YOLO, Ground Truth, class folders) into a canonical manifest.

    Rejected images and annotations go to the quarantine report with reasons; the
    step fails only when more images are rejected than ``data`` allows.

    Args:
        spec_json: the pipeline spec as JSON.
        run_id: the pipeline run id (groups lineage).
        manifest: output: directory with ``manifest.json``.
        label_map: output: directory with ``label_map.json`` (stable ids, versioned).
        quarantine: output: directory with ``quarantine.json`` and ``quarantine.csv``.
    """
    from components.core.step import ArtifactUris, StepContext, output_dir
    from components.ingest.core import run

    ctx = StepContext.from_json(spec_json, run_id, "ingest")
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

"""KFP wrappers of labelling-batch sampling and label import (the work is in :mod:`components.sample.core`).

The continuous-evaluation pipeline has its own ``sample`` and ``import_labels``
tasks (:mod:`components.monitor.component`) that take their window from the
read-window step; these two stand alone, with the feature repository and the
window as parameters.
"""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Output

from components.core.kfp_support import CVPIPE_IMAGE

__all__ = ["label_import", "sample_batch"]


@dsl.component(base_image=CVPIPE_IMAGE, install_kfp_package=False)
def sample_batch(
    spec_json: str,
    run_id: str,
    model_ref: str,
    feature_repo: str,
    batch: Output[Artifact],
    window_hours: float = 24.0,
    window_end: str = "",
) -> None:
    """Draws a labelling batch (random, per-class and least-confident strata) from a window of the prediction log.

    Args:
        spec_json: the pipeline spec as JSON (``monitoring.sampling`` configures the draw when present).
        run_id: the pipeline run id (groups lineage).
        model_ref: the production model, ``name@alias``: its predictions, label map and task.
        feature_repo: the Feast repository of the prediction log.
        batch: output: directory with ``batch.json``, ``tasks.json`` (Label Studio tasks with
            pre-annotations), ``label_config.xml`` and ``predictions_coco.json``.
        window_hours: the window's length in hours.
        window_end: the window's end, ISO 8601 (default: now).
    """
    from datetime import datetime, timedelta
    from pathlib import Path

    from components.core.step import StepContext, output_dir
    from components.sample.core import run

    ctx = StepContext.from_json(spec_json, run_id, "sample")
    result = run(
        ctx,
        Path(feature_repo),
        model_ref,
        output_dir(batch.path),
        window_end=datetime.fromisoformat(window_end) if window_end else None,
        window=timedelta(hours=window_hours),
        uris={"batch": batch.uri},
    )
    batch.metadata["batch_id"] = result.batch.batch_id
    batch.metadata["items"] = len(result.batch.items)
    batch.metadata.update({f"{k}_items": v for k, v in result.batch.counts().items()})


@dsl.component(base_image=CVPIPE_IMAGE, install_kfp_package=False)
def label_import(
    spec_json: str,
    run_id: str,
    export: str,
    feature_repo: str,
    batch: Input[Artifact],
    manifest: Output[Dataset],
    quarantine: Output[Artifact],
) -> None:
    """Imports a Label Studio JSON export of a batch as ground truth: labels into the prediction log, a manifest, a quarantine report.

    Args:
        spec_json: the pipeline spec as JSON.
        run_id: the pipeline run id (groups lineage).
        export: the Label Studio JSON export file.
        feature_repo: the Feast repository of the prediction log.
        batch: input: the labelling batch directory (``batch.json``).
        manifest: output: ``manifest.json`` and ``labelled_coco.json`` of the labelled images.
        quarantine: output: ``quarantine.json`` / ``quarantine.csv`` and ``unlabelled.json``.
    """
    from pathlib import Path

    from components.core.step import StepContext, output_dir
    from components.sample.core import run_import

    ctx = StepContext.from_json(spec_json, run_id, "import_labels")
    result = run_import(
        ctx,
        Path(export),
        Path(batch.path),
        Path(feature_repo),
        output_dir(manifest.path),
        output_dir(quarantine.path),
        uris={"export": export, "batch": batch.uri, "manifest": manifest.uri, "quarantine": quarantine.uri},
    )
    manifest.metadata["images"] = len(result.labels.manifest.images)
    quarantine.metadata["items"] = len(result.labels.quarantine)
    quarantine.metadata["unlabelled"] = len(result.labels.unlabelled)

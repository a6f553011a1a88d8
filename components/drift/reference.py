"""The drift reference: what the production model's training data looks like as prediction-log rows.

Drift compares the production window with the data the model was trained on.
To compare like with like, the reference is a seeded sample of the model's
training images (the manifest its training run validated, found upstream of
the model in lineage) passed through the same code that logs production
predictions (:meth:`components.predict.core.ServedModel.rows`): image
statistics (brightness and contrast of the BT.601 luminance, width, height),
the model's predicted class and its embedding are computed exactly as for a
production request. The rows are cached per model version and sample size
under ``<runtime.root>/<pipeline>/reference/``, so the model runs on the
training sample once per version, not once per evaluation.

The ``ExampleStatistics`` artifact of that training run (TFDV statistics over
all images) is the reference's lineage input; its histograms are what the
sample stands for.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from components.core.errors import DataError
from components.core.io import atomic_path
from components.core.lineage import ArtifactRef, LineageStore
from components.monitor.production import BlessedModel, training_manifest, upstream_of_kind

from .core import DriftInputs

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["FEATURES", "NO_PREDICTION", "Reference", "build_reference", "drift_inputs"]

FEATURES: tuple[str, ...] = ("brightness", "contrast", "width", "height")
"""Image statistics compared by the drift checks (columns of the prediction log)."""
NO_PREDICTION = "(none)"
"""The class-mix category of an image the model predicted nothing for."""


@dataclass
class Reference:
    """The drift reference of one model version.

    Attributes:
        rows: prediction-log columns (``predicted_class_name``, :data:`FEATURES`, ``embedding``) per sampled image.
        path: the cached parquet file.
        statistics: the training run's ``ExampleStatistics`` artifact, if lineage has one.
        manifest: the validated training manifest sampled from.
        cached: whether the rows came from the cache.
    """

    rows: pd.DataFrame
    path: Path
    statistics: ArtifactRef | None
    manifest: ArtifactRef | None
    cached: bool


def drift_inputs(rows: pd.DataFrame) -> DriftInputs:
    """One side of the drift comparison from prediction-log rows.

    Args:
        rows: rows with ``predicted_class_name``, the :data:`FEATURES` columns and ``embedding``.

    Returns:
        Predicted class per image (:data:`NO_PREDICTION` for none), the image statistics, and the
        embeddings when every row has one of the same length.
    """
    import pandas as pd

    names = [str(v) if isinstance(v, str) and v else NO_PREDICTION for v in rows.get("predicted_class_name", pd.Series(dtype=object))]
    features = pd.DataFrame({f: pd.to_numeric(rows[f], errors="coerce").astype("float64") for f in FEATURES if f in rows})
    embeddings = None
    if "embedding" in rows and len(rows):
        vectors = [np.asarray(v if v is not None else [], dtype=np.float32) for v in rows["embedding"]]
        sizes = {len(v) for v in vectors}
        if len(sizes) == 1 and 0 not in sizes:
            embeddings = np.vstack(vectors)
    return DriftInputs(predictions=names, features=features, embeddings=embeddings)


def build_reference(
    store: LineageStore,
    production: BlessedModel,
    samples: int,
    cache_dir: str | os.PathLike[str],
    seed: int = 0,
    batch_size: int = 16,
) -> Reference:
    """The reference rows of the production model (from the cache, or computed and cached).

    Args:
        store: the lineage store.
        production: the production model (see :func:`~components.monitor.production.blessed_model`).
        samples: training images to sample.
        cache_dir: where reference files are cached.
        seed: sampling seed.
        batch_size: images per model call.

    Returns:
        The reference.

    Raises:
        DataError: lineage holds no readable training manifest for the model, or no image of it can be read.
    """
    import pandas as pd

    v = production.version
    stats = upstream_of_kind(store, v.artifact_id, "ExampleStatistics")
    found = training_manifest(store, v.artifact_id, producer="validate")
    digest = (v.digest or str(v.artifact_id))[:12]
    path = Path(cache_dir) / f"{v.model_name}-v{v.version}-{digest}-n{samples}-s{seed}.parquet"
    if path.is_file():
        return Reference(pd.read_parquet(path), path, stats[0] if stats else None, found[1] if found else None, True)
    if found is None:
        raise DataError(
            f"{v.ref}: lineage holds no readable training manifest upstream of model artifact {v.artifact_id}; no drift reference"
        )
    manifest, manifest_ref = found
    rng = np.random.default_rng(seed)
    records = list(manifest.images)
    pick = sorted(rng.choice(len(records), size=min(samples, len(records)), replace=False).tolist()) if records else []
    images: list[bytes] = []
    uris: list[str] = []
    for i in pick:
        p = manifest.image_path(records[i])
        try:
            images.append(p.read_bytes())
            uris.append(str(p))
        except OSError:
            continue
    if not images:
        raise DataError(f"{v.ref}: none of the {len(pick)} sampled training images can be read; no drift reference")
    from components.core.predictor import Predictor
    from components.predict.core import ServedModel

    served = ServedModel(Predictor.load(v.model_dir), v.model_name, v.version)
    rows = [
        r
        for r in served.rows(images, uris, batch_size=batch_size, request_ids=[f"reference-{k}" for k in range(len(images))])
        if r is not None
    ]
    keep = ["predicted_class_name", *FEATURES, "embedding"]
    frame = pd.DataFrame([{k: getattr(r, k) for k in keep} for r in rows], columns=keep)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)
    return Reference(frame, path, stats[0] if stats else None, manifest_ref, False)

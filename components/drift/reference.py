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
sample stands for. Where the training images cannot be read (a cluster task
that does not see the training bucket), the reference falls back to those
statistics alone (:func:`reference_from_statistics`): the image statistics
are rebuilt from TFDV's quantile histograms, and the class mix and embedding
checks, which need the model's outputs on training images, are skipped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from components.core.errors import DataError
from components.core.io import atomic_path
from components.core.lineage import ArtifactRef, LineageStore
from components.monitor.production import BlessedModel, training_manifest, upstream_of_kind

from .core import DriftInputs

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["FEATURES", "NO_PREDICTION", "Reference", "build_reference", "drift_inputs", "reference_from_statistics"]

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
        source: ``sample`` (training images through the model) or ``statistics`` (TFDV histograms only).
    """

    rows: pd.DataFrame
    path: Path
    statistics: ArtifactRef | None
    manifest: ArtifactRef | None
    cached: bool
    source: str = "sample"


def drift_inputs(rows: pd.DataFrame) -> DriftInputs:
    """One side of the drift comparison from prediction-log rows.

    Args:
        rows: rows with ``predicted_class_name``, the :data:`FEATURES` columns and ``embedding``.

    Returns:
        Predicted class per image (:data:`NO_PREDICTION` for none; None without the column), the
        image statistics, and the embeddings when every row has one of the same length.
    """
    import pandas as pd

    names = (
        [str(v) if isinstance(v, str) and v else NO_PREDICTION for v in rows["predicted_class_name"]]
        if "predicted_class_name" in rows
        else None
    )
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
        from components.core.parquet import read_frame

        return Reference(read_frame(path), path, stats[0] if stats else None, found[1] if found else None, True)
    if found is None:
        if stats:
            return _statistics_reference(stats[0], path, v.ref)
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
        if stats:
            return _statistics_reference(stats[0], path, v.ref)
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


_SCALE = {"brightness": 1 / 255.0, "contrast": 1 / 255.0}  # validate's statistics are 0..255; the prediction log's 0..1


def reference_from_statistics(statistics: Any) -> pd.DataFrame:
    """Image statistics rebuilt from the TFDV statistics of the training images.

    Each numeric feature of :data:`FEATURES` becomes values spread evenly inside
    the buckets of its quantile histogram (as many per bucket as it counts), in
    the prediction log's units (brightness and contrast in 0..1).

    Args:
        statistics: the ``images`` table's ``DatasetFeatureStatisticsList`` (validate's output).

    Returns:
        One column per feature found (rows: the training images).
    """
    import pandas as pd

    columns: dict[str, np.ndarray] = {}
    for feature in statistics.datasets[0].features:
        name = feature.path.step[0] if feature.path.step else feature.name
        if name not in FEATURES or feature.WhichOneof("stats") != "num_stats":
            continue
        quantiles = [h for h in feature.num_stats.histograms if h.type == 1]  # QUANTILES
        if not quantiles:
            continue
        buckets = quantiles[0].buckets
        counts = np.asarray([b.sample_count for b in buckets], dtype=np.float64)
        whole = np.diff(np.round(np.concatenate([[0.0], np.cumsum(counts)]))).astype(int)  # integer counts, same total
        values = [
            b.low_value + (np.arange(k) + 0.5) / k * (b.high_value - b.low_value) for b, k in zip(buckets, whole, strict=True) if k > 0
        ]
        columns[name] = np.concatenate(values) * _SCALE.get(name, 1.0) if values else np.zeros(0)
    n = max((len(c) for c in columns.values()), default=0)
    return pd.DataFrame({k: np.pad(c.astype(np.float64), (0, n - len(c)), constant_values=np.nan) for k, c in columns.items()})


def _statistics_reference(stats_ref: ArtifactRef, path: Path, ref: str) -> Reference:
    from components.validate.stats import load_statistics

    tables = load_statistics(stats_ref.uri)
    if "images" not in tables:
        raise DataError(f"{ref}: the training images cannot be read and {stats_ref.uri} holds no image statistics; no drift reference")
    return Reference(reference_from_statistics(tables["images"]), path, stats_ref, None, False, source="statistics")

"""Sampling logged predictions for human labelling.

From a time window of the prediction log, :func:`select_items` picks a
labelling batch, one image at most once (by ``image_sha256``, the latest
prediction of an image standing for it), in this order:

1. ``random``: ``round(random_share x max_items)`` images drawn uniformly
   (seeded) from every image of the window. It is drawn first and from
   everything, so it stays an unbiased sample of production: live metrics use
   only this share. An image drawn here keeps the ``random`` stratum even when it
   would also qualify below.
2. ``class``: per predicted class (0 = nothing predicted is a class of its own),
   images until the batch holds ``per_class`` of that class (counting the random
   ones), rarest class first, round-robin so that a cap hits every class alike.
3. ``uncertain``: the ``uncertain`` images with the lowest ``top_score``.

The batch never exceeds ``max_items``. Images without an ``image_uri`` cannot be
shown to a person and are left out (counted in ``unlabellable``). With
``exclude`` (the images already labelled), the class and uncertain strata skip
images people have labelled before; the random draw does not, to stay uniform.

:func:`write_batch` writes the batch (``batch.json``), Label Studio tasks with
the model's predictions as pre-annotations (``tasks.json``), the Label Studio
labelling config (``label_config.xml``) and a COCO file of the batch with the
predictions as annotations (``predictions_coco.json``). :func:`run` is the
pipeline step (lineage kind ``LabellingBatch``); :func:`run_import` imports a
Label Studio export as ground truth (see :mod:`components.sample.labelstudio`).
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from components.core.clock import utc
from components.core.io import atomic_write_json, atomic_write_text, read_json
from components.core.labelmap import LabelMap
from components.core.lineage import ArtifactRef, NewArtifact
from components.core.log import get_logger
from components.core.logged_image import logged_image_problem
from components.core.manifest import Task
from components.core.prediction_log import PredictionLogReader
from components.core.step import ArtifactUris, StepContext

from .batch import (
    BATCH_FILE,
    COCO_FILE,
    LABEL_CONFIG_FILE,
    STRATA,
    TASKS_FILE,
    LabellingBatch,
    SampledItem,
    SamplingConfig,
    Stratum,
    new_batch_id,
)

if TYPE_CHECKING:
    import pandas as pd

    from .labelstudio import LabelImport

__all__ = [
    "BATCH_FILE",
    "COCO_FILE",
    "LABEL_CONFIG_FILE",
    "STRATA",
    "TASKS_FILE",
    "LabellingBatch",
    "SampledItem",
    "SamplingConfig",
    "Stratum",
    "run",
    "run_import",
    "sample_window",
    "sampling_config",
    "select_items",
    "write_batch",
]

STAGE = "sample"


def _latest_per_image(df: pd.DataFrame) -> pd.DataFrame:
    out = df.sort_values(["event_timestamp", "request_id"]).drop_duplicates("image_sha256", keep="last")
    return out.sort_values(["event_timestamp", "request_id"]).reset_index(drop=True)


def select_items(df: pd.DataFrame, config: SamplingConfig, exclude: Iterable[str] = ()) -> tuple[list[tuple[int, Stratum]], dict[str, int]]:
    """Picks the rows of a labelling batch from a window of predictions.

    Args:
        df: the window (:meth:`~components.core.prediction_log.PredictionLogReader.read_window` columns).
        config: sampling configuration.
        exclude: ``image_sha256`` of images already labelled (skipped by the class
            and uncertain strata, not by the random draw).

    Returns:
        ``(picks, stats)``: ``(row position in the de-duplicated frame, stratum)``
        in pick order, and ``images`` / ``unlabellable`` counts. The positions
        index :func:`dedupe_window`'s frame.
    """
    frame = dedupe_window(df)
    has_uri = frame["image_uri"].fillna("").astype(str).str.len() > 0
    stats = {"images": len(frame), "unlabellable": int((~has_uri).sum())}
    candidates = [i for i in range(len(frame)) if has_uri.iloc[i]]
    rng = np.random.default_rng(config.seed)
    cap = config.max_items
    picked: dict[int, Stratum] = {}
    order: list[tuple[int, Stratum]] = []

    def take(i: int, stratum: Stratum) -> None:
        picked[i] = stratum
        order.append((i, stratum))

    n_random = min(math.floor(config.random_share * cap + 0.5), len(candidates), cap)
    if n_random:
        for i in rng.choice(np.array(candidates), size=n_random, replace=False):
            take(int(i), "random")

    skip = set(exclude)
    eligible = [i for i in candidates if i not in picked and frame["image_sha256"].iloc[i] not in skip]
    classes = frame["predicted_class"].astype(int)
    by_class: dict[int, list[int]] = {}
    for i in eligible:
        by_class.setdefault(int(classes.iloc[i]), []).append(i)
    for pool in by_class.values():
        rng.shuffle(pool)
    have = Counter(int(classes.iloc[i]) for i in picked)
    window_counts = Counter(int(c) for c in classes.iloc[candidates])
    ranked = sorted(by_class, key=lambda c: (window_counts[c], c))  # rarest class first
    progress = True
    while progress and len(picked) < cap:
        progress = False
        for c in ranked:
            if len(picked) >= cap:
                break
            if have[c] < config.per_class and by_class[c]:
                take(by_class[c].pop(0), "class")
                have[c] += 1
                progress = True

    if config.uncertain and len(picked) < cap:
        rest = [i for i in eligible if i not in picked]
        rest.sort(key=lambda i: (float(frame["top_score"].iloc[i]), str(frame["request_id"].iloc[i])))
        for i in rest[: min(config.uncertain, cap - len(picked))]:
            take(i, "uncertain")
    return order, stats


def dedupe_window(df: pd.DataFrame) -> pd.DataFrame:
    """One row per image (its latest prediction), ordered by time.

    Args:
        df: the window.

    Returns:
        The de-duplicated frame, index 0..N-1.
    """
    return _latest_per_image(df)


def sample_window(
    log: PredictionLogReader,
    start: datetime,
    end: datetime,
    model_name: str,
    task: Task,
    label_map: LabelMap,
    config: SamplingConfig | None = None,
    *,
    exclude_labelled: bool = True,
    batch_id: str | None = None,
) -> LabellingBatch:
    """Draws a labelling batch from a window of the prediction log.

    Args:
        log: the prediction log.
        start: window start (inclusive).
        end: window end (exclusive).
        model_name: the model whose predictions are sampled.
        task: the model's task.
        label_map: the model's label map.
        config: sampling configuration (defaults when None).
        exclude_labelled: skip images already labelled in the class and uncertain strata.
        batch_id: the batch id (default: a fresh one).

    Returns:
        The batch.
    """
    cfg = config or SamplingConfig()
    df = log.read_window(start, end, model_name=model_name)
    exclude: set[str] = set(log.read_labels()["image_sha256"]) if exclude_labelled else set()
    picks, stats = select_items(df, cfg, exclude)
    frame = dedupe_window(df) if len(df) else df
    items = []
    quarantined: list[dict[str, str]] = []
    for i, stratum in picks:
        r = frame.iloc[i]
        problem = logged_image_problem(str(r["image_uri"]), str(r["image_sha256"]), missing_ok=True)
        if problem is not None:
            quarantined.append({"image_sha256": str(r["image_sha256"]), "image_uri": str(r["image_uri"]), "reason": problem})
            get_logger(STAGE).warning("not sent for labelling: %s", problem)
            continue
        items.append(
            SampledItem(
                stratum=stratum,
                request_id=str(r["request_id"]),
                image_sha256=str(r["image_sha256"]),
                image_uri=str(r["image_uri"]),
                width=int(r["width"]),
                height=int(r["height"]),
                model_name=str(r["model_name"]),
                model_version=int(r["model_version"]),
                event_timestamp=r["event_timestamp"].to_pydatetime(),
                predicted_class=int(r["predicted_class"]),
                predicted_class_name=str(r["predicted_class_name"] or ""),
                top_score=float(r["top_score"]),
                predictions=str(r["predictions"]),
            )
        )
    now = datetime.now(UTC)
    batch = LabellingBatch(
        batch_id=batch_id or new_batch_id(now),
        created=now,
        model_name=model_name,
        task=task,
        label_map=label_map,
        window_start=utc(start),
        window_end=utc(end),
        config=cfg,
        window_predictions=len(df),
        window_images=stats["images"],
        unlabellable=stats["unlabellable"],
        items=items,
        quarantined=quarantined,
    )
    get_logger(STAGE).info(
        "%s: %d of %d images in [%s, %s) selected (%s); %d without an image uri",
        batch.batch_id,
        len(items),
        stats["images"],
        batch.window_start.isoformat(),
        batch.window_end.isoformat(),
        ", ".join(f"{k}={v}" for k, v in batch.counts().items()),
        stats["unlabellable"],
    )
    return batch


def batch_coco(batch: LabellingBatch) -> dict[str, Any]:
    """A COCO document of the batch with the model's predictions as annotations (with ``score``).

    Args:
        batch: the batch.

    Returns:
        COCO ``info``, ``images`` (``file_name`` = the image uri, plus ``sha256``,
        ``request_id``, ``stratum``), ``categories``, ``annotations``.
    """
    from .labelstudio import prediction_regions

    images: list[dict[str, Any]] = []
    anns: list[dict[str, Any]] = []
    for n, item in enumerate(batch.items, start=1):
        images.append(
            {
                "id": n,
                "file_name": item.image_uri,
                "width": item.width,
                "height": item.height,
                "sha256": item.image_sha256,
                "request_id": item.request_id,
                "stratum": item.stratum,
            }
        )
        for region in prediction_regions(item, batch.task, min_score=0.0):
            x, y, w, h = region["bbox"]
            ann: dict[str, Any] = {
                "id": len(anns) + 1,
                "image_id": n,
                "category_id": region["class_id"],
                "bbox": [x, y, w, h],
                "area": region.get("area", w * h),
                "iscrowd": 0,
                "score": region["score"],
            }
            if region.get("polygons"):
                ann["segmentation"] = region["polygons"]
            anns.append(ann)
    return {
        "info": {
            "description": f"cvpipe labelling batch {batch.batch_id}: predictions of {batch.model_name}",
            "labelling_batch_id": batch.batch_id,
            "date_created": batch.created.isoformat(),
        },
        "images": images,
        "categories": [{"id": cid, "name": name} for cid, name in sorted(batch.label_map.classes.items())],
        "annotations": anns,
    }


def write_batch(
    batch: LabellingBatch, out_dir: str | os.PathLike[str], *, image_url: Any = None, min_score: float = 0.3
) -> dict[str, Path]:
    """Writes a batch directory: ``batch.json``, ``tasks.json``, ``label_config.xml``, ``predictions_coco.json``.

    Args:
        batch: the batch.
        out_dir: the directory.
        image_url: maps an image uri to the URL Label Studio loads (default:
            :func:`~components.sample.labelstudio.default_image_url`).
        min_score: detections below this score are left out of the pre-annotations.

    Returns:
        The files by name (``batch``, ``tasks``, ``label_config``, ``coco``).
    """
    from .labelstudio import label_config, to_tasks

    d = Path(out_dir)
    return {
        "batch": batch.save(d),
        "tasks": atomic_write_json(d / TASKS_FILE, to_tasks(batch, image_url=image_url, min_score=min_score)),
        "label_config": atomic_write_text(d / LABEL_CONFIG_FILE, label_config(batch.task, batch.label_map)),
        "coco": atomic_write_json(d / COCO_FILE, batch_coco(batch), indent=None),
    }


# -- pipeline steps --------------------------------------------------------------------------


@dataclass
class SampleResult:
    """What the sample step did.

    Attributes:
        batch: the labelling batch.
        files: the files written.
        artifacts: recorded lineage artifacts.
    """

    batch: LabellingBatch
    files: dict[str, Path]
    artifacts: dict[str, ArtifactRef] = field(default_factory=dict)


def sampling_config(spec: Any) -> SamplingConfig:
    """The sampling configuration of a pipeline spec: its ``monitoring.sampling`` when it has one.

    Args:
        spec: the pipeline spec (any object with an optional ``monitoring.sampling``).

    Returns:
        The configuration (:class:`SamplingConfig`'s defaults when the spec has none).
    """
    monitoring = getattr(spec, "monitoring", None)
    sampling = getattr(monitoring, "sampling", None) if monitoring is not None else None
    return SamplingConfig.model_validate(sampling) if sampling is not None else SamplingConfig()


def _log_inputs(ctx: StepContext, log: PredictionLogReader, batch: LabellingBatch, uri: str | None) -> list[ArtifactRef]:
    """The prediction-log artifacts a batch read.

    An explicit URI names it. Otherwise: the ``PredictionLog`` outputs of batch
    prediction steps on this repository, for this model, whose time range meets
    the window; failing those (online predictions have no step), the repository
    itself as an external input.
    """
    repo = str(log.repo_dir)
    if uri:
        return [ctx.input_artifact(uri, "PredictionLog", {"feature_repo": repo})]
    found = []
    for a in ctx.store.artifacts("PredictionLog", feature_repo=repo, model_name=batch.model_name):
        start, end = a.properties.get("start"), a.properties.get("end")
        if (
            start
            and end
            and datetime.fromisoformat(str(start)) < batch.window_end
            and datetime.fromisoformat(str(end)) >= batch.window_start
        ):
            found.append(a)
    return found or [ctx.input_artifact(repo, "PredictionLog", {"feature_repo": repo})]


def run(
    ctx: StepContext,
    log_repo: Path,
    model_ref: str,
    batch_dir: Path,
    window_end: datetime | None = None,
    window: timedelta = timedelta(hours=24),
    config: SamplingConfig | None = None,
    uris: ArtifactUris | Mapping[str, str] | None = None,
    registry: Any = None,
) -> SampleResult:
    """The sample step: draw a batch from ``[window_end - window, window_end)`` and write it.

    Args:
        ctx: the step context.
        log_repo: the Feast repository of the prediction log.
        model_ref: the production model (``name@alias``); its label map and task
            come from the registry, its name filters the log.
        batch_dir: output directory.
        window_end: end of the window (default: now).
        window: window length.
        config: sampling configuration (default: the spec's ``monitoring.sampling`` when
            it has one, else :class:`SamplingConfig`'s defaults).
        uris: artifact URIs by name (``batch``; ``prediction_log`` names the log artifact read,
            default: the batch prediction outputs whose time range meets the window).
        registry: the registry (default: the one the spec names).

    Returns:
        The result.
    """
    from components.core.predictor import MODEL_INFO_FILE
    from components.registry import get_registry

    u = ArtifactUris.of(uris)
    reg = registry if registry is not None else get_registry(ctx.spec.registry, ctx.store)
    version = reg.resolve(model_ref)
    label_map = LabelMap.load(version.model_dir / "label_map.json")
    task: Task = read_json(version.model_dir / MODEL_INFO_FILE)["task"]
    end = utc(window_end or datetime.now(UTC))
    cfg = config or sampling_config(ctx.spec)
    log = PredictionLogReader(log_repo)
    batch = sample_window(log, end - window, end, version.model_name, task, label_map, cfg)
    files = write_batch(batch, batch_dir)
    counts = batch.counts()
    props: dict[str, Any] = {
        "batch_id": batch.batch_id,
        "model_name": batch.model_name,
        "items": len(batch.items),
        **{f"{k}_items": v for k, v in counts.items()},
        "window_start": batch.window_start.isoformat(),
        "window_end": batch.window_end.isoformat(),
        "window_images": batch.window_images,
    }
    recorded = ctx.record(
        inputs={
            "prediction_log": _log_inputs(ctx, log, batch, u.get("prediction_log")),
            "model": ctx.store.get(version.pushed_id) if version.pushed_id else None,
        },
        outputs={"batch": NewArtifact("LabellingBatch", u.get("batch", str(batch_dir)), props)},
        properties={"batch_id": batch.batch_id, "items": len(batch.items)},
    )
    return SampleResult(batch=batch, files=files, artifacts=recorded)


@dataclass
class ImportResult:
    """What the label import step did.

    Attributes:
        labels: the import (labels, manifest, quarantine, unlabelled).
        files: the files written.
        artifacts: recorded lineage artifacts.
    """

    labels: LabelImport
    files: dict[str, Path]
    artifacts: dict[str, ArtifactRef] = field(default_factory=dict)


def run_import(
    ctx: StepContext,
    export_path: Path,
    batch_dir: Path,
    log_repo: Path,
    manifest_dir: Path,
    quarantine_dir: Path,
    uris: ArtifactUris | Mapping[str, str] | None = None,
) -> ImportResult:
    """The label import step: a Label Studio export -> labels in the log, a manifest, a quarantine report.

    Args:
        ctx: the step context.
        export_path: the Label Studio JSON export.
        batch_dir: the labelling batch directory (``batch.json``).
        log_repo: the Feast repository of the prediction log.
        manifest_dir: output: ``manifest.json`` and ``labelled_coco.json`` of the labelled images.
        quarantine_dir: output: ``quarantine.json`` / ``quarantine.csv`` and ``unlabelled.json``.
        uris: artifact URIs by name (``export``, ``batch``, ``manifest``, ``quarantine``, ``labels``).

    Returns:
        The result.
    """
    from components.predict.logs import PredictionLog  # the label writer

    from .labelstudio import import_export, read_export

    u = ArtifactUris.of(uris)
    batch = LabellingBatch.load(batch_dir)
    result = import_export(read_export(export_path), batch.task, batch.label_map, batch=batch, source=str(export_path))
    log = PredictionLog(log_repo)
    part = log.add_labels(result.labels)
    files = result.write(manifest_dir, quarantine_dir)
    n_q = len(result.quarantine)
    outputs: dict[str, NewArtifact | None] = {
        "manifest": NewArtifact(
            "Manifest", u.get("manifest", str(manifest_dir)), {"images": len(result.manifest.images), "task": batch.task}
        ),
        "quarantine": NewArtifact("QuarantineReport", u.get("quarantine", str(quarantine_dir)), {"items": n_q}),
        "labels": NewArtifact("PredictionLog", str(part), {"labels": len(result.labels), "batch_id": batch.batch_id}) if part else None,
    }
    recorded = ctx.record(
        inputs={
            "export": ctx.input_artifact(u.get("export", str(export_path)), "RawDataset"),
            "batch": ctx.input_artifact(u.get("batch", str(batch_dir)), "LabellingBatch", {"batch_id": batch.batch_id}),
        },
        outputs=outputs,
        properties={"batch_id": batch.batch_id, "labelled": len(result.labels), "quarantined": n_q, "unlabelled": len(result.unlabelled)},
    )
    get_logger("import_labels").info(
        "%s: %d labels imported, %d images quarantined, %d unlabelled",
        batch.batch_id,
        len(result.labels),
        result.quarantine.rejected_images,
        len(result.unlabelled),
    )
    return ImportResult(labels=result, files=files, artifacts=recorded)

"""Batch prediction with a registry model, logged to the prediction log.

:func:`predict_images` resolves a registry reference (``name@alias`` or
``name:version``), predicts on a folder of images or a manifest in batches and
turns every prediction into a :class:`~components.predict.logs.PredictionRow`:
the prediction as JSON, the top class and score, image statistics (mean and
standard deviation of luminance, the inputs of drift checks) and the model's
embedding. The rows go to a :class:`~components.predict.logs.PredictionLog`.
The HTTP server (:mod:`components.predict.server`) uses the same
:class:`ServedModel`, so batch and online predictions log identical rows.

An image that cannot be decoded is not predicted: it goes to the quarantine
report with the reason, and the run goes on.

:func:`run` is the pipeline step (``predict_batch``): it records one execution
with the registry version and the images as inputs and a ``PredictionLog``
artifact (plus the quarantine report when an image was rejected) as outputs.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from components.core.errors import DataError, ImageError
from components.core.images import decode_rgb
from components.core.io import atomic_write_json, sha256_bytes
from components.core.labelmap import LabelMap
from components.core.lineage import ArtifactRef, NewArtifact
from components.core.log import get_logger, progress
from components.core.manifest import Manifest, Task
from components.core.predictor import ImagePrediction, Predictor
from components.core.quarantine import QuarantineReport
from components.core.step import ArtifactUris, StepContext

from .logs import PredictionLog, PredictionRow

__all__ = [
    "IMAGE_EXTENSIONS",
    "PREDICT_FILE",
    "DecodedImage",
    "ImageSource",
    "PredictResult",
    "ServedModel",
    "image_statistics",
    "list_images",
    "mask_polygons",
    "predict_batch",
    "predict_images",
    "prediction_payload",
    "run",
]

STAGE = "predict"
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
"""File extensions :func:`list_images` picks up in a folder."""
PREDICT_FILE = "predict.json"
"""Summary the pipeline step writes into its output directory."""
LOG_FLUSH_ROWS = 1024
"""Rows buffered before a part file is written during a batch run."""

_LUMA = np.array([0.299, 0.587, 0.114], np.float64)  # ITU-R BT.601


@dataclass(frozen=True)
class ImageSource:
    """An image to predict on.

    Attributes:
        path: the file.
        uri: what the log records as ``image_uri`` (the absolute path).
        image_id: the manifest's image id, or the path relative to the folder.
    """

    path: Path
    uri: str
    image_id: str


@dataclass
class PredictResult:
    """What a batch prediction did.

    Attributes:
        rows: the logged predictions, in input order (rejected images left out).
        quarantine: images that could not be predicted, with reasons.
        parts: the prediction log part files written.
        model_name: the registry model name.
        model_version: the registry version.
        artifacts: recorded lineage artifacts (filled by :func:`run`).
    """

    rows: list[PredictionRow]
    quarantine: QuarantineReport
    parts: list[Path] = field(default_factory=list)
    model_name: str = ""
    model_version: int = 0
    artifacts: dict[str, ArtifactRef] = field(default_factory=dict)


def image_statistics(pixels: np.ndarray) -> tuple[float, float]:
    """Brightness and contrast of an RGB image: mean and standard deviation of luminance.

    Args:
        pixels: ``HxWx3`` uint8.

    Returns:
        ``(brightness, contrast)``, both in 0..1 (luminance by ITU-R BT.601 weights).
    """
    luma = pixels.astype(np.float64) @ _LUMA / 255.0
    return float(luma.mean()), float(luma.std())


def mask_polygons(mask: np.ndarray, tolerance: float = 1.0, max_points: int = 200) -> list[list[float]]:
    """Outer outlines of a binary mask as COCO polygons in pixels.

    Args:
        mask: ``HxW`` boolean (or 0/1) array.
        tolerance: Douglas-Peucker tolerance in pixels (fewer points for Label Studio).
        max_points: a longer outline is simplified further until it fits.

    Returns:
        ``[[x1, y1, x2, y2, ...], ...]``, one list per region (at least 3 points each).
    """
    from skimage.measure import approximate_polygon, find_contours

    padded = np.pad(np.asarray(mask, bool), 1).astype(np.float32)
    polygons: list[list[float]] = []
    for contour in find_contours(padded, 0.5):
        tol = tolerance
        poly = approximate_polygon(contour, tolerance=tol)
        while len(poly) > max_points:
            tol *= 2
            poly = approximate_polygon(contour, tolerance=tol)
        if len(poly) > 1 and np.allclose(poly[0], poly[-1]):
            poly = poly[:-1]
        if len(poly) < 3:
            continue
        h, w = mask.shape
        xs = np.clip(poly[:, 1] - 1 + 0.5, 0, w)  # back from the padding; contour runs between pixel centres
        ys = np.clip(poly[:, 0] - 1 + 0.5, 0, h)
        polygons.append([round(float(v), 2) for xy in zip(xs, ys, strict=True) for v in xy])
    return polygons


def _top(pred: ImagePrediction) -> tuple[int, float]:
    if len(pred.scores) == 0:
        return 0, 0.0
    i = int(np.argmax(pred.scores))
    return int(pred.class_ids[i]), float(pred.scores[i])


def prediction_payload(pred: ImagePrediction, task: Task, label_map: LabelMap) -> dict[str, Any]:
    """The ``predictions`` JSON object of a :class:`PredictionRow`.

    Args:
        pred: the model's prediction.
        task: the model's task.
        label_map: the model's label map.

    Returns:
        ``task``, ``width``, ``height``, ``class_ids``, ``scores``, ``boxes`` (pixels,
        ``[x, y, w, h]``); classification adds ``probabilities`` and ``label_ids``;
        segmentation adds ``polygons`` (per class region, COCO polygons in pixels).
    """
    out: dict[str, Any] = {
        "task": task,
        "width": int(pred.width),
        "height": int(pred.height),
        "class_ids": [int(c) for c in pred.class_ids],
        "scores": [round(float(s), 5) for s in pred.scores],
        "boxes": [[round(float(v), 2) for v in b] for b in pred.boxes],
    }
    if pred.probabilities is not None:
        out["probabilities"] = [round(float(p), 5) for p in pred.probabilities]
        out["label_ids"] = list(label_map.ids)
    if pred.mask is not None:
        out["polygons"] = [mask_polygons(pred.mask == cid) for cid in pred.class_ids]
    return out


class ServedModel:
    """A registry model version loaded for prediction and logging.

    Args:
        predictor: the loaded model.
        model_name: registry model name.
        model_version: registry version number.
    """

    def __init__(self, predictor: Predictor, model_name: str, model_version: int):
        self.predictor = predictor
        self.model_name = model_name
        self.model_version = int(model_version)

    @property
    def ref(self) -> str:
        """``name:version``."""
        return f"{self.model_name}:{self.model_version}"

    @classmethod
    def load(cls, model_ref: str, registry: Any) -> ServedModel:
        """Resolves a registry reference and loads the model.

        Args:
            model_ref: ``name@alias``, ``name:version`` or ``name``.
            registry: a :class:`~components.registry.Registry`.

        Returns:
            The loaded model.

        Raises:
            RegistryError: the reference names no version.
            EvaluationError: the version's directory holds no loadable model.
        """
        version = registry.resolve(model_ref)
        return cls(Predictor.load(version.model_dir), version.model_name, version.version)

    def rows(
        self,
        images: Sequence[bytes],
        uris: Sequence[str] | None = None,
        *,
        batch_size: int = 16,
        timestamp: datetime | None = None,
        request_ids: Sequence[str] | None = None,
        quarantine: QuarantineReport | None = None,
    ) -> list[PredictionRow | None]:
        """Predicts on encoded images and builds their log rows.

        Args:
            images: encoded images.
            uris: ``image_uri`` of each image (default: empty).
            batch_size: images per model call.
            timestamp: the rows' ``event_timestamp`` (default: now, UTC).
            request_ids: ids of the rows (default: random UUIDs).
            quarantine: where an undecodable image is reported (with its uri).

        Returns:
            One row per image, in order; None where the image could not be decoded.
        """
        when = timestamp or datetime.now(UTC)
        uris = list(uris) if uris is not None else [""] * len(images)
        ids = list(request_ids) if request_ids is not None else [uuid.uuid4().hex for _ in images]
        decoded: dict[int, DecodedImage] = {}
        for i, data in enumerate(images):
            try:
                decoded[i] = DecodedImage.decode(data)
            except ImageError as e:
                if quarantine is not None:
                    quarantine.add(uris[i] or f"<request {ids[i]}>", "undecodable_image", e.problem, image_id=uris[i] or ids[i])
        good = list(decoded)
        out: list[PredictionRow | None] = [None] * len(images)
        size = max(1, batch_size)
        for start in range(0, len(good), size):
            chunk = good[start : start + size]
            rows = self.predict_decoded([decoded[i] for i in chunk], [ids[i] for i in chunk], [uris[i] for i in chunk], when)
            for i, row in zip(chunk, rows, strict=True):
                out[i] = row
        return out

    def predict_decoded(
        self, images: Sequence[DecodedImage], request_ids: Sequence[str], uris: Sequence[str], timestamp: datetime | None = None
    ) -> list[PredictionRow]:
        """Predicts on decoded images in one model call and builds their log rows.

        Args:
            images: the decoded images (:meth:`DecodedImage.decode`).
            request_ids: the rows' ids, one per image.
            uris: the rows' ``image_uri``, one per image.
            timestamp: the rows' ``event_timestamp`` (default: now, UTC).

        Returns:
            One row per image, in order.
        """
        when = timestamp or datetime.now(UTC)
        preds = self.predictor.predict_pixels([d.pixels for d in images])
        p = self.predictor
        out: list[PredictionRow] = []
        for d, rid, uri, pred in zip(images, request_ids, uris, preds, strict=True):
            cid, score = _top(pred)
            out.append(
                PredictionRow(
                    event_timestamp=when,
                    request_id=rid,
                    model_name=self.model_name,
                    model_version=self.model_version,
                    image_sha256=d.sha256,
                    image_uri=uri,
                    width=pred.width,
                    height=pred.height,
                    brightness=d.brightness,
                    contrast=d.contrast,
                    predictions=json.dumps(prediction_payload(pred, p.task, p.label_map), separators=(",", ":")),
                    predicted_class=cid,
                    predicted_class_name=(p.label_map.name_of(cid) or "") if cid else "",
                    top_score=score,
                    num_detections=len(pred.class_ids),
                    embedding=[] if pred.embedding is None else [float(v) for v in pred.embedding],
                )
            )
        return out


@dataclass
class DecodedImage:
    """An encoded image decoded once for prediction and logging.

    Attributes:
        data: the encoded bytes.
        sha256: hex sha256 of ``data``.
        pixels: ``HxWx3`` uint8 RGB.
        brightness: mean luminance, 0..1.
        contrast: standard deviation of luminance, 0..1.
    """

    data: bytes
    sha256: str
    pixels: np.ndarray
    brightness: float
    contrast: float

    @classmethod
    def decode(cls, data: bytes, max_pixels: int | None = None) -> DecodedImage:
        """Decodes encoded image bytes.

        Args:
            data: the encoded image.
            max_pixels: largest width x height accepted (default: the decoder's guard).

        Returns:
            The decoded image.

        Raises:
            ImageError: the bytes are no decodable image, or it is too large.
        """
        pixels = decode_rgb(data) if max_pixels is None else decode_rgb(data, max_pixels=max_pixels)
        brightness, contrast = image_statistics(pixels)
        return cls(data=data, sha256=sha256_bytes(data), pixels=pixels, brightness=brightness, contrast=contrast)


def list_images(source: str | os.PathLike[str]) -> list[ImageSource]:
    """The images of a folder (recursively, by extension) or of a manifest JSON file.

    Args:
        source: a directory, or a manifest file written by :meth:`Manifest.save`.

    Returns:
        The images, sorted by path for a folder, in manifest order for a manifest.

    Raises:
        DataError: the source does not exist or is neither a folder nor a manifest.
    """
    p = Path(source)
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS and not f.name.startswith("."))
        return [ImageSource(path=f, uri=str(f.resolve()), image_id=f.relative_to(p).as_posix()) for f in files]
    if p.is_file():
        try:
            manifest = Manifest.load(p)
        except (OSError, ValueError) as e:
            raise DataError(f"{p}: not a manifest: {e}") from None
        out = []
        for r in manifest.images:
            f = manifest.image_path(r)
            out.append(ImageSource(path=f, uri=str(f.resolve()), image_id=r.image_id))
        return out
    raise DataError(f"{p}: no such folder or manifest")


def predict_images(
    model_ref: str,
    images: str | os.PathLike[str],
    batch_size: int = 16,
    *,
    registry: Any = None,
    model: ServedModel | None = None,
    log: PredictionLog | None = None,
    quarantine: QuarantineReport | None = None,
) -> list[PredictionRow]:
    """Predicts on a folder or manifest of images with a registry model and logs every prediction.

    Args:
        model_ref: ``name@alias`` (or ``name:version``) in ``registry``.
        images: a folder of images or a manifest JSON file.
        batch_size: images per model call.
        registry: the registry to resolve ``model_ref`` in (not needed when ``model`` is given).
        model: an already loaded model (then ``model_ref`` is only checked against it by name).
        log: the prediction log to append to (None: rows are only returned).
        quarantine: collects images that could not be read or decoded (default: a
            fresh report whose items are logged as warnings).

    Returns:
        One row per predicted image, in input order.

    Raises:
        DataError: ``images`` is neither a folder nor a manifest.
        RegistryError: ``model_ref`` names no version.
    """
    return predict_batch(model_ref, images, batch_size, registry=registry, model=model, log=log, quarantine=quarantine).rows


def predict_batch(
    model_ref: str,
    images: str | os.PathLike[str],
    batch_size: int = 16,
    *,
    registry: Any = None,
    model: ServedModel | None = None,
    log: PredictionLog | None = None,
    quarantine: QuarantineReport | None = None,
) -> PredictResult:
    """:func:`predict_images` returning the rows, the quarantine report and the part files written.

    Args:
        model_ref: ``name@alias`` (or ``name:version``) in ``registry``.
        images: a folder of images or a manifest JSON file.
        batch_size: images per model call.
        registry: the registry to resolve ``model_ref`` in.
        model: an already loaded model.
        log: the prediction log to append to.
        quarantine: collects images that could not be predicted.

    Returns:
        The result.
    """
    logger = get_logger(STAGE)
    if model is None:
        if registry is None:
            raise DataError("predict_images: give a registry to resolve the model reference in, or a loaded model")
        model = ServedModel.load(model_ref, registry)
    q = quarantine if quarantine is not None else QuarantineReport(stage=STAGE)
    own_report = quarantine is None
    sources = list_images(images)
    logger.info("%s: predicting on %d images from %s with %s", model_ref, len(sources), images, model.ref)
    size = max(1, int(batch_size))
    result = PredictResult(rows=[], quarantine=q, model_name=model.model_name, model_version=model.model_version)
    pending: list[PredictionRow] = []
    batches = [sources[i : i + size] for i in range(0, len(sources), size)]
    for batch in progress(batches, len(batches), f"predict: batches of {size}", logger):
        data: list[bytes] = []
        kept: list[ImageSource] = []
        for src in batch:
            q.total += 1
            try:
                data.append(src.path.read_bytes())
                kept.append(src)
            except OSError as e:
                q.add(src.uri, "missing_file", f"cannot read the image: {e.strerror or e}", image_id=src.image_id)
        rows = model.rows(data, [s.uri for s in kept], batch_size=size, quarantine=q)
        done = [r for r in rows if r is not None]
        result.rows.extend(done)
        pending.extend(done)
        if log is not None and len(pending) >= LOG_FLUSH_ROWS:
            result.parts.append(log.append(pending))
            pending = []
    if log is not None and pending:
        result.parts.append(log.append(pending))
    if own_report:
        for item in q.items:
            logger.warning("not predicted: %s: %s", item.file, item.reason)
    logger.info("%d predictions logged, %d images rejected", len(result.rows), len(q))
    return result


def run(
    ctx: StepContext,
    model_ref: str,
    images: str,
    log_repo: Path,
    output_dir: Path,
    uris: ArtifactUris | Mapping[str, str] | None = None,
    batch_size: int = 16,
    registry: Any = None,
) -> PredictResult:
    """The ``predict_batch`` step: predict, log, write ``predict.json`` and record lineage once.

    Args:
        ctx: the step context.
        model_ref: registry reference of the model (``name@alias``).
        images: a folder of images or a manifest file.
        log_repo: the Feast repository of the prediction log (made by
            :func:`~components.predict.logs.init_feature_repo` when it has no ``feature_store.yaml``).
        output_dir: the step's output directory (``predict.json``, ``quarantine.json``).
        uris: artifact URIs by name (``images``, ``prediction_log``); a missing one means the local path.
        batch_size: images per model call.
        registry: the registry (default: the one ``ctx.spec.registry`` names).

    Returns:
        The result, with the recorded artifacts.
    """
    from components.registry import get_registry

    from .logs import init_feature_repo

    u = ArtifactUris.of(uris)
    reg = registry if registry is not None else get_registry(ctx.spec.registry, ctx.store)
    version = reg.resolve(model_ref)
    model = ServedModel(Predictor.load(version.model_dir), version.model_name, version.version)
    if not (log_repo / "feature_store.yaml").is_file():
        init_feature_repo(log_repo)
    log = PredictionLog(log_repo)
    q = QuarantineReport(stage=STAGE)
    result = predict_batch(model_ref, images, batch_size, model=model, log=log, quarantine=q)
    output_dir.mkdir(parents=True, exist_ok=True)
    times = [r.event_timestamp for r in result.rows]
    summary = {
        "model_ref": model_ref,
        "model_name": version.model_name,
        "model_version": version.version,
        "images": str(images),
        "predictions": len(result.rows),
        "rejected": len(q),
        "feature_repo": str(log.repo_dir),
        "parts": [str(p) for p in result.parts],
        "start": min(times).isoformat() if times else None,
        "end": max(times).isoformat() if times else None,
    }
    atomic_write_json(output_dir / PREDICT_FILE, summary)
    q_path = q.write(output_dir) if len(q) else None
    images_kind = "Manifest" if Path(images).is_file() else "RawDataset"
    inputs: dict[str, ArtifactRef | None] = {
        "model": ctx.store.get(version.pushed_id) if version.pushed_id else None,
        "images": ctx.input_artifact(u.get("images", str(images)), images_kind),
    }
    props = {
        "model_name": version.model_name,
        "version": version.version,
        "rows": len(result.rows),
        "feature_repo": str(log.repo_dir),
        "parts": json.dumps(summary["parts"]),
        "start": summary["start"] or "",
        "end": summary["end"] or "",
    }
    outputs: dict[str, NewArtifact | None] = {
        "prediction_log": NewArtifact("PredictionLog", u.get("prediction_log", str(output_dir)), props),
        "quarantine": NewArtifact("QuarantineReport", str(q_path), {"items": len(q)}) if q_path else None,
    }
    result.artifacts = ctx.record(inputs, outputs, {"model_name": version.model_name, "predictions": len(result.rows), "rejected": len(q)})
    return result

"""One model's evaluation on the test split: overall metrics, per class, per slice.

:func:`evaluate_detection_set`, :func:`evaluate_classification_set` and
:func:`evaluate_segmentation_set` turn ground truth and predictions that are
already in memory into a :class:`ModelEvaluation`, the JSON-ready record the
component writes (``evaluation.json``), blesses and renders. They never read
files or run models; :mod:`components.evaluate.core` does that.

Metric names (the names thresholds use):

- detection: ``map``, ``map_50``, ``map_75``, ``map_small``, ``map_medium``,
  ``map_large``, ``mar_1``, ``mar_10``, ``mar_100``, ``mar_small``,
  ``mar_medium``, ``mar_large`` (COCO), and ``precision``, ``recall``, ``f1``,
  ``f1_macro`` at the spec's IoU and score thresholds; per class ``ap``,
  ``ap_50``, ``ap_75``, ``ar_100``, ``precision``, ``recall``, ``f1``, ``support``.
- classification: ``accuracy``, ``top_5_accuracy``, ``precision_micro``,
  ``recall_micro``, ``f1_micro``, ``precision_macro``, ``recall_macro``,
  ``f1_macro``; per class ``precision``, ``recall``, ``f1``, ``support``.
- segmentation: ``mean_iou``, ``pixel_accuracy``, ``mean_accuracy``, ``fw_iou``;
  per class ``iou``, ``accuracy``, ``support``.

Undefined values (a COCO ``-1``, a class never seen) are None.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from components.core.errors import EvaluationError
from components.core.labelmap import LabelMap
from components.core.manifest import Task

from .metrics_classification import classification_metrics
from .metrics_detection import Detections, GroundTruth, evaluate_detection
from .metrics_segmentation import SegmentationAccumulator
from .slicing import ImageMeta, slice_images

__all__ = [
    "ModelEvaluation",
    "SliceMetrics",
    "check_image_ids",
    "evaluate_classification_set",
    "evaluate_detection_set",
    "evaluate_segmentation_set",
]


def _clean(v: Any) -> float | None:
    if v is None:
        return None
    f = float(v)
    return None if math.isnan(f) or math.isinf(f) else f


def _clean_coco(v: Any) -> float | None:
    f = _clean(v)
    return None if f is None or f == -1.0 else f


class SliceMetrics(BaseModel):
    """Metrics of one slice.

    Attributes:
        feature: slice feature (``class``, ``image_size``, ``split``, a source key).
        value: the feature's value.
        num_images: images in the slice (for ``class``: images where the class is in the ground truth).
        metrics: metric name -> value (None: undefined).
    """

    feature: str
    value: str
    num_images: int
    metrics: dict[str, float | None]

    @property
    def name(self) -> str:
        """``feature=value``."""
        return f"{self.feature}={self.value}"


class ModelEvaluation(BaseModel):
    """One model's evaluation.

    Attributes:
        task: the task.
        num_images: test images.
        metrics: overall metric name -> value (None: undefined).
        per_class: class name -> metric name -> value.
        slices: per-class and per-slice metrics.
        confusion_labels: row/column labels of the confusion matrix.
        confusion_matrix: rows true, columns predicted.
        pr_curves: detection only: ``recall`` points and precision per class name
            and ``mean`` at IoU 0.5.
        extra: task-specific detail (COCO's 12 raw stats...).
    """

    task: Task
    num_images: int
    metrics: dict[str, float | None]
    per_class: dict[str, dict[str, float | None]] = Field(default_factory=dict)
    slices: list[SliceMetrics] = Field(default_factory=list)
    confusion_labels: list[str] = Field(default_factory=list)
    confusion_matrix: list[list[int]] = Field(default_factory=list)
    pr_curves: dict[str, list[float]] | None = None
    extra: dict[str, Any] = Field(default_factory=dict)

    def value(self, metric: str) -> float | None:
        """A metric by name; ``name@feature=value`` reads a slice.

        Args:
            metric: the name.

        Returns:
            The value, or None when it is undefined.

        Raises:
            KeyError: no such metric or slice.
        """
        if "@" not in metric:
            if metric not in self.metrics:
                raise KeyError(metric)
            return self.metrics[metric]
        name, where = metric.split("@", 1)
        feature, _, value = where.partition("=")
        for s in self.slices:
            if s.feature == feature and s.value == value:
                if name not in s.metrics:
                    raise KeyError(metric)
                return s.metrics[name]
        raise KeyError(metric)

    def flat(self) -> dict[str, float | None]:
        """Every metric, sliced ones as ``name@feature=value``."""
        out = dict(self.metrics)
        for s in self.slices:
            for k, v in s.metrics.items():
                out[f"{k}@{s.name}"] = v
        return out


def check_image_ids(metas: Sequence[ImageMeta]) -> None:
    """Raises when the test split is empty or an image id repeats.

    Args:
        metas: the test images.

    Raises:
        EvaluationError: no images, or duplicated image ids.
    """
    if not metas:
        raise EvaluationError("nothing to evaluate: the test split has no images")
    seen: set[str] = set()
    dups: list[str] = []
    for m in metas:
        if m.image_id in seen:
            dups.append(m.image_id)
        seen.add(m.image_id)
    if dups:
        raise EvaluationError(f"duplicated image ids in the test split: {', '.join(sorted(set(dups))[:10])}")


def _class_name(label_map: LabelMap, cid: int) -> str:
    return label_map.name_of(cid) or ("background" if cid == 0 else str(cid))


def _class_slices(per_class: dict[str, dict[str, float | None]], counts: dict[str, int]) -> list[SliceMetrics]:
    return [SliceMetrics(feature="class", value=name, num_images=counts.get(name, 0), metrics=m) for name, m in per_class.items()]


def evaluate_detection_set(
    gt: GroundTruth,
    dt: Detections,
    metas: Sequence[ImageMeta],
    label_map: LabelMap,
    *,
    slices: Sequence[str] = (),
    iou_threshold: float = 0.5,
    score_threshold: float = 0.3,
) -> ModelEvaluation:
    """Evaluates detections overall, per class, per image size and per user slice.

    Args:
        gt: ground truth (``image_id`` = the metas' ids).
        dt: detections.
        metas: the test images.
        label_map: the classes (every id is evaluated).
        slices: user slice features.
        iou_threshold: IoU of the confusion matrix, precision, recall and F1.
        score_threshold: lowest score counted in the confusion matrix, precision, recall and F1.

    Returns:
        The evaluation.

    Raises:
        EvaluationError: see :func:`~components.evaluate.metrics_detection.evaluate_detection`.
    """
    check_image_ids(metas)
    ids = np.array([m.image_id for m in metas], dtype=str)
    cats = label_map.ids
    kw: dict[str, Any] = {"category_ids": cats, "iou_threshold": iou_threshold, "score_threshold": score_threshold}
    gt = GroundTruth(gt.image_id.astype(str), gt.category_id, gt.bbox, gt.area, gt.iscrowd)
    dt = Detections(dt.image_id.astype(str), dt.category_id, dt.bbox, dt.score)
    res = evaluate_detection(gt, dt, image_ids=ids, **kw)

    def scalars(r: Any) -> dict[str, float | None]:
        return {k: _clean_coco(v) for k, v in r.metrics.items()}

    per_class = {
        _class_name(label_map, c): {k: (_clean_coco(v) if k.startswith(("ap", "ar")) else _clean(v)) for k, v in d.items()}
        for c, d in res.per_class.items()
    }
    img_counts: dict[str, int] = {}
    for c in cats:
        sel = (gt.category_id == c) & ~gt.iscrowd
        img_counts[_class_name(label_map, c)] = len(np.unique(gt.image_id[sel]))
    out_slices = _class_slices(per_class, img_counts)
    for (feature, value), idx in slice_images(metas, ["image_size", *slices]).items():
        sub = ids[idx]
        r = evaluate_detection(gt.select(np.isin(gt.image_id, sub)), dt.select(np.isin(dt.image_id, sub)), image_ids=sub, **kw)
        out_slices.append(SliceMetrics(feature=feature, value=value, num_images=len(idx), metrics=scalars(r)))
    rec, mean = res.pr_curve(None)
    curves = {"recall": [float(x) for x in rec], "mean": [float(x) for x in mean]}
    for c in res.category_ids:
        curves[_class_name(label_map, c)] = [float(x) for x in res.pr_curve(c)[1]]
    return ModelEvaluation(
        task="detection",
        num_images=len(metas),
        metrics=scalars(res),
        per_class=per_class,
        slices=out_slices,
        confusion_labels=["background", *(_class_name(label_map, c) for c in res.category_ids)],
        confusion_matrix=res.confusion_matrix.astype(int).tolist(),
        pr_curves=curves,
        extra={"coco_stats": [float(x) for x in res.stats], "iou_threshold": iou_threshold, "score_threshold": score_threshold},
    )


def evaluate_classification_set(
    y_true: Sequence[int] | np.ndarray,
    scores: np.ndarray,
    metas: Sequence[ImageMeta],
    label_map: LabelMap,
    *,
    slices: Sequence[str] = (),
) -> ModelEvaluation:
    """Evaluates a classifier overall, per class, per image size and per user slice.

    Args:
        y_true: ``[N]`` true class ids, aligned with ``metas``.
        scores: ``[N, C]`` probabilities, columns in ``label_map.ids`` order.
        metas: the test images.
        label_map: the classes.
        slices: user slice features.

    Returns:
        The evaluation.

    Raises:
        EvaluationError: see :func:`~components.evaluate.metrics_classification.classification_metrics`.
    """
    check_image_ids(metas)
    y = np.asarray(y_true, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    if len(y) != len(metas):
        raise EvaluationError(f"{len(y)} labels for {len(metas)} images")
    res = classification_metrics(y, s, label_map.ids)
    per_class = {_class_name(label_map, c): {k: _clean(v) for k, v in d.items()} for c, d in res.per_class.items()}
    counts = {_class_name(label_map, c): int((y == c).sum()) for c in label_map.ids}
    out_slices = _class_slices(per_class, counts)
    for (feature, value), idx in slice_images(metas, ["image_size", *slices]).items():
        r = classification_metrics(y[idx], s[idx], label_map.ids)
        out_slices.append(
            SliceMetrics(feature=feature, value=value, num_images=len(idx), metrics={k: _clean(v) for k, v in r.metrics.items()})
        )
    return ModelEvaluation(
        task="classification",
        num_images=len(metas),
        metrics={k: _clean(v) for k, v in res.metrics.items()},
        per_class=per_class,
        slices=out_slices,
        confusion_labels=[_class_name(label_map, c) for c in res.class_ids],
        confusion_matrix=res.confusion_matrix.astype(int).tolist(),
        extra={"predicted": [int(p) for p in res.predicted]},
    )


def evaluate_segmentation_set(
    acc: SegmentationAccumulator, metas: Sequence[ImageMeta], label_map: LabelMap, *, slices: Sequence[str] = ()
) -> ModelEvaluation:
    """Evaluates a segmentation model overall, per class, per image size and per user slice.

    Args:
        acc: the accumulator every test image was added to (ids = the metas' ids).
        metas: the test images.
        label_map: the classes (background 0 is named ``background``).
        slices: user slice features.

    Returns:
        The evaluation.

    Raises:
        EvaluationError: no images, duplicated ids, or no labelled pixel.
    """
    check_image_ids(metas)
    res = acc.result([m.image_id for m in metas])
    per_class = {_class_name(label_map, c): {k: _clean(v) for k, v in d.items()} for c, d in res.per_class.items()}
    counts: dict[str, int] = {}
    for meta in metas:
        cm = acc.confusion([meta.image_id])
        for i, c in enumerate(acc.class_ids):
            if cm[i].sum() > 0:
                counts[_class_name(label_map, c)] = counts.get(_class_name(label_map, c), 0) + 1
    out_slices = _class_slices(per_class, counts)
    for (feature, value), idx in slice_images(metas, ["image_size", *slices]).items():
        try:
            r = acc.result([metas[i].image_id for i in idx])
            m = {k: _clean(v) for k, v in r.metrics.items()}
        except EvaluationError:  # every pixel of the slice ignored
            m = dict.fromkeys(res.metrics)
        out_slices.append(SliceMetrics(feature=feature, value=value, num_images=len(idx), metrics=m))
    return ModelEvaluation(
        task="segmentation",
        num_images=len(metas),
        metrics={k: _clean(v) for k, v in res.metrics.items()},
        per_class=per_class,
        slices=out_slices,
        confusion_labels=[_class_name(label_map, c) for c in res.class_ids],
        confusion_matrix=res.confusion_matrix.astype(int).tolist(),
    )

"""Semantic-segmentation metrics from a dataset-level confusion matrix.

Pixels are counted image by image into one ``C x C`` confusion matrix (rows:
true class, columns: predicted class) over the evaluated classes, background
(id 0) included; pixels whose true value is ``ignore_index`` (255 by default)
are left out. From the matrix:

- per-class IoU = TP / (TP + FP + FN), for classes present (in the ground truth
  or the predictions; a class with neither has no IoU and is left out of means);
- ``mean_iou``: mean of per-class IoU over the classes present;
- ``pixel_accuracy``: correctly labelled pixels / labelled pixels;
- ``mean_accuracy``: mean over classes with ground-truth pixels of TP / (TP + FN);
- ``fw_iou``: IoU weighted by each class's share of ground-truth pixels.

The accumulator keeps one small matrix per image, so metrics of any subset of
images (a slice) are a sum away.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from components.core.errors import EvaluationError

__all__ = ["SegmentationAccumulator", "SegmentationMetrics", "segmentation_metrics"]


@dataclass
class SegmentationMetrics:
    """Metrics of one confusion matrix.

    Attributes:
        metrics: ``mean_iou``, ``pixel_accuracy``, ``mean_accuracy``, ``fw_iou``.
        class_ids: the classes, in matrix order (background 0 first).
        per_class: class id -> ``iou`` and ``accuracy`` (NaN when undefined) and ``support`` (true pixels).
        confusion_matrix: ``[C, C]`` pixel counts, rows true, columns predicted.
    """

    metrics: dict[str, float]
    class_ids: list[int]
    per_class: dict[int, dict[str, float]]
    confusion_matrix: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (NaN becomes None)."""

        def clean(v: float) -> float | None:
            return None if np.isnan(v) else float(v)

        return {
            "metrics": {k: clean(v) for k, v in self.metrics.items()},
            "class_ids": list(self.class_ids),
            "per_class": {str(k): {m: clean(v) for m, v in d.items()} for k, d in self.per_class.items()},
            "confusion_matrix": self.confusion_matrix.astype(int).tolist(),
        }


def segmentation_metrics(confusion: np.ndarray, class_ids: Sequence[int]) -> SegmentationMetrics:
    """Computes segmentation metrics from a confusion matrix.

    Args:
        confusion: ``[C, C]`` pixel counts, rows true, columns predicted.
        class_ids: the class id of each row/column.

    Returns:
        The metrics.

    Raises:
        EvaluationError: the matrix counts no pixel.
    """
    cm = np.asarray(confusion, dtype=np.float64)
    total = cm.sum()
    if total <= 0:
        raise EvaluationError("no labelled pixels to evaluate (every pixel is ignored, or there are no images)")
    tp = np.diag(cm)
    true = cm.sum(axis=1)
    pred = cm.sum(axis=0)
    union = true + pred - tp
    present = union > 0
    iou = np.full(len(tp), np.nan)
    np.divide(tp, union, out=iou, where=present)
    acc = np.full(len(tp), np.nan)
    np.divide(tp, true, out=acc, where=true > 0)
    freq = true / total
    metrics = {
        "mean_iou": float(iou[present].mean()),
        "pixel_accuracy": float(tp.sum() / total),
        "mean_accuracy": float(acc[true > 0].mean()) if (true > 0).any() else float("nan"),
        "fw_iou": float((freq[present] * iou[present]).sum()),
    }
    per_class = {int(c): {"iou": float(iou[i]), "accuracy": float(acc[i]), "support": float(true[i])} for i, c in enumerate(class_ids)}
    return SegmentationMetrics(
        metrics=metrics, class_ids=[int(c) for c in class_ids], per_class=per_class, confusion_matrix=cm.astype(np.int64)
    )


class SegmentationAccumulator:
    """Counts pixels image by image into confusion matrices.

    Args:
        class_ids: the evaluated class ids, background (0) included; any other
            true value than these and ``ignore_index`` is an error, as is any
            predicted value outside them.
        ignore_index: true value of pixels left out.
    """

    def __init__(self, class_ids: Iterable[int], ignore_index: int | None = 255):
        self.class_ids = sorted({int(c) for c in class_ids})
        if not self.class_ids:
            raise EvaluationError("no classes to evaluate")
        if ignore_index is not None and ignore_index in self.class_ids:
            raise EvaluationError(f"ignore index {ignore_index} is also a class id")
        self.ignore_index = ignore_index
        size = max(max(self.class_ids), ignore_index or 0) + 1
        self._lut = np.full(max(size, 256), -1, dtype=np.int64)
        self._lut[self.class_ids] = np.arange(len(self.class_ids))
        self._per_image: dict[str, np.ndarray] = {}

    @property
    def num_classes(self) -> int:
        """Number of classes (matrix size)."""
        return len(self.class_ids)

    def add(self, image_id: str, true: np.ndarray, pred: np.ndarray) -> np.ndarray:
        """Counts one image.

        Args:
            image_id: the image (each image is added once).
            true: ``[H, W]`` true class ids.
            pred: ``[H, W]`` predicted class ids.

        Returns:
            This image's ``[C, C]`` matrix.

        Raises:
            EvaluationError: shapes differ, unknown class values, or the image was already added.
        """
        t = np.asarray(true)
        p = np.asarray(pred)
        if t.shape != p.shape or t.ndim != 2:
            raise EvaluationError(f"image {image_id!r}: prediction mask {p.shape} does not match ground truth {t.shape}")
        if image_id in self._per_image:
            raise EvaluationError(f"duplicated image id {image_id!r}")
        if t.size and (t.min() < 0 or p.min() < 0 or t.max() >= len(self._lut) or p.max() >= len(self._lut)):
            raise EvaluationError(f"image {image_id!r}: class values outside 0..{len(self._lut) - 1}")
        keep = t != self.ignore_index if self.ignore_index is not None else np.ones(t.shape, dtype=bool)
        ti = self._lut[t[keep].astype(np.int64)]
        pi = self._lut[p[keep].astype(np.int64)]
        if (ti < 0).any():
            bad = sorted(set(np.unique(t[keep][ti < 0]).tolist()))
            raise EvaluationError(f"image {image_id!r}: ground truth has unknown class ids {bad[:10]}")
        if (pi < 0).any():
            bad = sorted(set(np.unique(p[keep][pi < 0]).tolist()))
            raise EvaluationError(f"image {image_id!r}: prediction has unknown class ids {bad[:10]}")
        c = self.num_classes
        cm = np.bincount(ti * c + pi, minlength=c * c).reshape(c, c)
        self._per_image[image_id] = cm
        return cm

    def confusion(self, image_ids: Iterable[str] | None = None) -> np.ndarray:
        """The summed matrix of some images (all by default)."""
        c = self.num_classes
        ids = self._per_image.keys() if image_ids is None else image_ids
        out = np.zeros((c, c), dtype=np.int64)
        for i in ids:
            out += self._per_image[i]
        return out

    def result(self, image_ids: Iterable[str] | None = None) -> SegmentationMetrics:
        """Metrics of some images (all by default)."""
        return segmentation_metrics(self.confusion(image_ids), self.class_ids)

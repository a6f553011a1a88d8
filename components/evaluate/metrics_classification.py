"""Image-classification metrics: top-k accuracy, precision/recall/F1, confusion matrix.

Single-label (:func:`classification_metrics`): the prediction is the class of
highest probability (ties: the lower class index); top-k counts an image as
right when its true class is among the ``k`` highest-scored classes (ties
broken the same way), with ``k = min(5, C)`` for ``top_5_accuracy``.
Per class, precision = TP / predicted, recall = TP / true, F1 their harmonic
mean (0 where undefined). Macro averages run over the classes present in the
ground truth or the predictions (as scikit-learn does by default); micro
averages pool all images, so for single-label data micro precision = micro
recall = micro F1 = accuracy.

Multi-label (:func:`multilabel_metrics`): each class is a binary decision at
``threshold``; micro F1 pools TP/FP/FN over classes, macro F1 averages per-class
F1 over classes present, samples F1 averages per-image F1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from components.core.errors import EvaluationError

__all__ = ["ClassificationMetrics", "classification_metrics", "multilabel_metrics"]


@dataclass
class ClassificationMetrics:
    """Result of :func:`classification_metrics`.

    Attributes:
        metrics: ``accuracy``, ``top_5_accuracy``, ``precision_micro``, ``recall_micro``,
            ``f1_micro``, ``precision_macro``, ``recall_macro``, ``f1_macro``.
        class_ids: classes in matrix order.
        per_class: class id -> ``precision``, ``recall``, ``f1``, ``support``.
        confusion_matrix: ``[C, C]`` image counts, rows true, columns predicted.
        predicted: ``[N]`` predicted class id per image.
    """

    metrics: dict[str, float]
    class_ids: list[int]
    per_class: dict[int, dict[str, float]]
    confusion_matrix: np.ndarray
    predicted: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "metrics": dict(self.metrics),
            "class_ids": list(self.class_ids),
            "per_class": {str(k): dict(v) for k, v in self.per_class.items()},
            "confusion_matrix": self.confusion_matrix.astype(int).tolist(),
        }


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros(np.shape(a), dtype=np.float64), where=np.asarray(b) > 0)


def _prf(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p = _safe_div(tp, tp + fp)
    r = _safe_div(tp, tp + fn)
    f = _safe_div(2 * p * r, p + r)
    return p, r, f


def classification_metrics(y_true: Sequence[int] | np.ndarray, scores: np.ndarray, class_ids: Sequence[int]) -> ClassificationMetrics:
    """Single-label classification metrics.

    Args:
        y_true: ``[N]`` true class ids.
        scores: ``[N, C]`` class probabilities (or logits), columns ordered as ``class_ids``.
        class_ids: the class ids.

    Returns:
        The metrics.

    Raises:
        EvaluationError: no images, a shape mismatch, NaN scores, or unknown true classes.
    """
    ids = np.asarray(list(class_ids), dtype=np.int64)
    y = np.asarray(y_true, dtype=np.int64).reshape(-1)
    s = np.asarray(scores, dtype=np.float64)
    n, c = len(y), len(ids)
    if n == 0:
        raise EvaluationError("nothing to evaluate: no images (is the test split empty?)")
    if s.shape != (n, c):
        raise EvaluationError(f"scores have shape {s.shape}, expected {(n, c)} (images x classes)")
    if not np.isfinite(s).all():
        raise EvaluationError(f"{int((~np.isfinite(s).all(axis=1)).sum())} predictions have NaN or infinite scores")
    order = np.argsort(ids)
    pos = np.searchsorted(ids[order], y)
    pos = np.minimum(pos, c - 1)
    known = ids[order][pos] == y
    if not known.all():
        raise EvaluationError(f"ground truth has unknown class ids {sorted(set(y[~known].tolist()))[:10]}")
    t = order[pos]  # column index of the true class
    ranked = np.argsort(-s, axis=1, kind="stable")
    pred = ranked[:, 0]
    k = min(5, c)
    top_k = (ranked[:, :k] == t[:, None]).any(axis=1)
    cm = np.bincount(t * c + pred, minlength=c * c).reshape(c, c)
    tp = np.diag(cm).astype(np.float64)
    true = cm.sum(axis=1).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    p, r, f = _prf(tp, predicted - tp, true - tp)
    present = (true > 0) | (predicted > 0)
    acc = float(tp.sum() / n)
    metrics = {
        "accuracy": acc,
        "top_5_accuracy": float(top_k.mean()),
        "precision_micro": acc,
        "recall_micro": acc,
        "f1_micro": acc,
        "precision_macro": float(p[present].mean()),
        "recall_macro": float(r[present].mean()),
        "f1_macro": float(f[present].mean()),
    }
    per_class = {
        int(ids[i]): {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": float(true[i])} for i in range(c)
    }
    return ClassificationMetrics(
        metrics=metrics, class_ids=[int(i) for i in ids], per_class=per_class, confusion_matrix=cm, predicted=ids[pred]
    )


def multilabel_metrics(y_true: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Multi-label F1 (micro, macro, samples), precision and recall.

    Args:
        y_true: ``[N, C]`` 0/1 true labels.
        scores: ``[N, C]`` per-class probabilities.
        threshold: a class is predicted when its score is >= threshold.

    Returns:
        ``f1_micro``, ``f1_macro``, ``f1_samples``, ``precision_micro``, ``recall_micro``,
        ``subset_accuracy`` (every label of an image right).

    Raises:
        EvaluationError: no images, a shape mismatch or NaN scores.
    """
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 2 or y.shape[0] == 0:
        raise EvaluationError("nothing to evaluate: no images (is the test split empty?)")
    if s.shape != y.shape:
        raise EvaluationError(f"scores have shape {s.shape}, labels {y.shape}")
    if not np.isfinite(s).all():
        raise EvaluationError("some predictions have NaN or infinite scores")
    pred = s >= threshold
    tp = (y & pred).sum(axis=0).astype(np.float64)
    fp = (~y & pred).sum(axis=0).astype(np.float64)
    fn = (y & ~pred).sum(axis=0).astype(np.float64)
    _, _, f = _prf(tp, fp, fn)
    present = (tp + fp + fn) > 0
    mp = float(_safe_div(np.array(tp.sum()), np.array(tp.sum() + fp.sum())))
    mr = float(_safe_div(np.array(tp.sum()), np.array(tp.sum() + fn.sum())))
    tpi = (y & pred).sum(axis=1).astype(np.float64)
    denom = y.sum(axis=1) + pred.sum(axis=1)
    # an image with no true and no predicted label is perfectly right
    f_img = np.where(denom > 0, _safe_div(2 * tpi, denom.astype(np.float64)), 1.0)
    return {
        "f1_micro": float(_safe_div(np.array(2 * mp * mr), np.array(mp + mr))),
        "f1_macro": float(f[present].mean()) if present.any() else 0.0,
        "f1_samples": float(f_img.mean()),
        "precision_micro": mp,
        "recall_micro": mr,
        "subset_accuracy": float((y == pred).all(axis=1).mean()),
    }

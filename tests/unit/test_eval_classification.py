"""Classification metrics against hand-computed cases (no scikit-learn)."""

from __future__ import annotations

import numpy as np
import pytest

from components.core.errors import EvaluationError
from components.evaluate.metrics_classification import classification_metrics, multilabel_metrics


def test_single_label_metrics_by_hand() -> None:
    # classes 10, 20, 30 (ids need not be 0-based); 6 images
    y = [10, 10, 20, 20, 30, 30]
    s = np.array(
        [
            [0.7, 0.2, 0.1],  # 10 -> 10
            [0.2, 0.5, 0.3],  # 10 -> 20 (true class 3rd)
            [0.1, 0.8, 0.1],  # 20 -> 20
            [0.6, 0.3, 0.1],  # 20 -> 10 (true class 2nd)
            [0.1, 0.1, 0.8],  # 30 -> 30
            [0.4, 0.4, 0.2],  # 30 -> 10 (tie 10/20: the lower index wins)
        ]
    )
    m = classification_metrics(y, s, [10, 20, 30])
    assert m.confusion_matrix.tolist() == [[1, 1, 0], [1, 1, 0], [1, 0, 1]]
    assert m.predicted.tolist() == [10, 20, 20, 10, 30, 10]
    assert m.metrics["accuracy"] == pytest.approx(3 / 6)
    assert m.metrics["f1_micro"] == pytest.approx(3 / 6)
    # per class: 10: P 1/3 R 1/2; 20: P 1/2 R 1/2; 30: P 1 R 1/2
    p = [1 / 3, 1 / 2, 1.0]
    r = [1 / 2, 1 / 2, 1 / 2]
    f = [2 * a * b / (a + b) for a, b in zip(p, r, strict=True)]
    assert [m.per_class[c]["precision"] for c in (10, 20, 30)] == pytest.approx(p)
    assert [m.per_class[c]["recall"] for c in (10, 20, 30)] == pytest.approx(r)
    assert m.metrics["precision_macro"] == pytest.approx(np.mean(p))
    assert m.metrics["f1_macro"] == pytest.approx(np.mean(f))
    assert m.per_class[30]["support"] == 2
    # 3 classes: top-5 means top-3, always right
    assert m.metrics["top_5_accuracy"] == 1.0


def test_top_5_and_macro_over_present_classes() -> None:
    c = 7
    s = np.tile(np.linspace(0.7, 0.1, c), (3, 1))  # class order by score: 0,1,...,6
    y = [0, 4, 5]  # ranks 1, 5, 6
    m = classification_metrics(y, s, list(range(c)))
    assert m.metrics["accuracy"] == pytest.approx(1 / 3)
    assert m.metrics["top_5_accuracy"] == pytest.approx(2 / 3)
    # present: 0 (true+pred), 4, 5 (true); classes 1, 2, 3, 6 appear nowhere and are left out
    assert m.metrics["recall_macro"] == pytest.approx((1.0 + 0 + 0) / 3)
    assert m.metrics["precision_macro"] == pytest.approx((1 / 3 + 0 + 0) / 3)


def test_multilabel_f1_by_hand() -> None:
    y = np.array([[1, 0, 1], [0, 1, 0], [0, 0, 0]])
    s = np.array([[0.9, 0.6, 0.2], [0.1, 0.7, 0.1], [0.1, 0.2, 0.3]])
    m = multilabel_metrics(y, s, threshold=0.5)
    # tp 2 (img0 c0, img1 c1), fp 1 (img0 c1), fn 1 (img0 c2)
    assert m["precision_micro"] == pytest.approx(2 / 3)
    assert m["recall_micro"] == pytest.approx(2 / 3)
    assert m["f1_micro"] == pytest.approx(2 / 3)
    # per class F1: c0 1.0, c1 2/3, c2 0.0
    assert m["f1_macro"] == pytest.approx((1 + 2 / 3 + 0) / 3)
    # per image F1: img0 2*1/(2+2)=0.5, img1 1.0, img2 nothing true or predicted = 1.0
    assert m["f1_samples"] == pytest.approx((0.5 + 1 + 1) / 3)
    assert m["subset_accuracy"] == pytest.approx(2 / 3)


def test_bad_inputs_raise_evaluation_error() -> None:
    with pytest.raises(EvaluationError, match="no images"):
        classification_metrics([], np.zeros((0, 2)), [1, 2])
    with pytest.raises(EvaluationError, match="shape"):
        classification_metrics([1], np.zeros((1, 3)), [1, 2])
    with pytest.raises(EvaluationError, match="NaN"):
        classification_metrics([1], np.array([[np.nan, 0.5]]), [1, 2])
    with pytest.raises(EvaluationError, match="unknown class ids \\[9\\]"):
        classification_metrics([9], np.array([[0.5, 0.5]]), [1, 2])

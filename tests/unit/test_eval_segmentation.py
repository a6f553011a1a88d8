"""Segmentation metrics against hand-computed confusion matrices."""

from __future__ import annotations

import numpy as np
import pytest

from components.core.errors import EvaluationError
from components.evaluate.metrics_segmentation import SegmentationAccumulator, segmentation_metrics


def test_two_images_accumulate_into_one_matrix_with_ignored_pixels() -> None:
    acc = SegmentationAccumulator([0, 1, 2])
    t1 = np.array([[0, 0, 1], [1, 1, 255], [2, 2, 2]], np.uint8)
    p1 = np.array([[0, 1, 1], [1, 0, 2], [2, 2, 0]], np.uint8)  # the ignored pixel's prediction does not count
    t2 = np.array([[1, 1], [0, 255]], np.uint8)
    p2 = np.array([[1, 1], [0, 1]], np.uint8)
    acc.add("a", t1, p1)
    acc.add("b", t2, p2)
    cm = acc.confusion()
    # rows true 0,1,2; columns predicted
    assert cm.tolist() == [[2, 1, 0], [1, 4, 0], [1, 0, 2]]
    m = acc.result()
    # IoU: 0: 2/(3+4-2)=0.4; 1: 4/(5+5-4)=2/3; 2: 2/(3+2-2)=2/3
    assert m.per_class[0]["iou"] == pytest.approx(0.4)
    assert m.per_class[1]["iou"] == pytest.approx(2 / 3)
    assert m.per_class[2]["iou"] == pytest.approx(2 / 3)
    assert m.metrics["mean_iou"] == pytest.approx((0.4 + 2 / 3 + 2 / 3) / 3)
    assert m.metrics["pixel_accuracy"] == pytest.approx(8 / 11)
    assert m.metrics["mean_accuracy"] == pytest.approx((2 / 3 + 4 / 5 + 2 / 3) / 3)
    assert m.metrics["fw_iou"] == pytest.approx(3 / 11 * 0.4 + 5 / 11 * 2 / 3 + 3 / 11 * 2 / 3)
    # a subset of images is a slice
    assert acc.confusion(["b"]).tolist() == [[1, 0, 0], [0, 2, 0], [0, 0, 0]]


def test_mean_iou_is_over_classes_present_only() -> None:
    m = segmentation_metrics(np.array([[5, 0, 0], [0, 3, 1], [0, 0, 0]]), [0, 1, 7])
    # class 7 appears as a prediction (1 pixel): present with IoU 0; a class in neither would be left out
    assert m.per_class[7]["iou"] == 0.0
    assert m.metrics["mean_iou"] == pytest.approx((1.0 + 3 / 4 + 0.0) / 3)
    m2 = segmentation_metrics(np.array([[5, 0, 0], [0, 3, 0], [0, 0, 0]]), [0, 1, 7])
    assert np.isnan(m2.per_class[7]["iou"])
    assert m2.metrics["mean_iou"] == pytest.approx(1.0)
    assert m2.metrics["mean_accuracy"] == pytest.approx(1.0)


def test_bad_masks_raise_evaluation_error() -> None:
    acc = SegmentationAccumulator([0, 1])
    with pytest.raises(EvaluationError, match="does not match ground truth"):
        acc.add("a", np.zeros((2, 2), np.uint8), np.zeros((3, 2), np.uint8))
    with pytest.raises(EvaluationError, match="prediction has unknown class ids \\[5\\]"):
        acc.add("a", np.zeros((2, 2), np.uint8), np.full((2, 2), 5, np.uint8))
    with pytest.raises(EvaluationError, match="ground truth has unknown class ids \\[3\\]"):
        acc.add("a", np.full((2, 2), 3, np.uint8), np.zeros((2, 2), np.uint8))
    acc.add("a", np.zeros((2, 2), np.uint8), np.zeros((2, 2), np.uint8))
    with pytest.raises(EvaluationError, match="duplicated image id"):
        acc.add("a", np.zeros((2, 2), np.uint8), np.zeros((2, 2), np.uint8))
    with pytest.raises(EvaluationError, match="no labelled pixels"):
        SegmentationAccumulator([0, 1]).result()

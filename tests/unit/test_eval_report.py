"""Slices, one model's evaluation record, the prediction set, the HTML report and the KFP metrics content."""

from __future__ import annotations

import base64
import re

import numpy as np
import pytest

from components.core.errors import EvaluationError
from components.core.labelmap import LabelMap
from components.core.predictor import ImagePrediction
from components.core.spec import EvaluateSpec, MetricThreshold
from components.evaluate.blessing import bless
from components.evaluate.core import PredictionSet, evaluate_predictions
from components.evaluate.evaluation import check_image_ids, evaluate_classification_set, evaluate_detection_set
from components.evaluate.metrics_detection import Detections, GroundTruth, evaluate_detection
from components.evaluate.report import ReportSample, kfp_confusion, kfp_scalars, render_report
from components.evaluate.slicing import ImageMeta, image_size_bucket, slice_images

LM = LabelMap.from_names(["cat", "dog"])


def _metas() -> list[ImageMeta]:
    return [
        ImageMeta("a", 100, 100, split="train", source={"camera": "north"}),
        ImageMeta("b", 1000, 800, split="test", source={"camera": "south"}),
        ImageMeta("c", 120, 90, source={"camera": "south"}),
        ImageMeta("d", 1920, 1080),
    ]


def test_slices_group_images_by_size_split_and_source() -> None:
    assert image_size_bucket(256, 256) == "small" and image_size_bucket(257, 256) == "medium" and image_size_bucket(2000, 2000) == "large"
    groups = slice_images(_metas(), ["image_size", "split", "source.camera", "class"])
    assert groups == {
        ("image_size", "large"): [1, 3],
        ("image_size", "small"): [0, 2],
        ("split", "test"): [1],
        ("split", "train"): [0],
        ("source.camera", "north"): [0],
        ("source.camera", "south"): [1, 2],
    }


def _detection_data() -> tuple[GroundTruth, Detections]:
    gt = GroundTruth.from_arrays(
        ["a", "a", "b", "c", "d"], [1, 2, 1, 2, 1], [[0, 0, 20, 20], [30, 30, 40, 40], [10, 10, 200, 100], [5, 5, 30, 30], [0, 0, 50, 50]]
    )
    dt = Detections.from_arrays(
        ["a", "a", "b", "c", "c", "d"],
        [1, 2, 1, 2, 1, 2],
        [[1, 1, 20, 20], [30, 30, 38, 40], [10, 12, 200, 100], [50, 50, 30, 30], [5, 5, 30, 30], [0, 0, 50, 50]],
        [0.9, 0.8, 0.7, 0.6, 0.5, 0.4],
    )
    return gt, dt


def test_detection_set_slices_equal_evaluating_the_subset() -> None:
    gt, dt = _detection_data()
    ev = evaluate_detection_set(gt, dt, _metas(), LM, slices=["source.camera"])
    south = next(s for s in ev.slices if s.name == "source.camera=south")
    assert south.num_images == 2
    sub = np.array(["b", "c"])
    direct = evaluate_detection(
        gt.select(np.isin(gt.image_id, sub)), dt.select(np.isin(dt.image_id, sub)), image_ids=sub, category_ids=[1, 2]
    )
    assert south.metrics["map"] == pytest.approx(direct.metrics["map"])
    assert ev.value("map@source.camera=south") == south.metrics["map"]
    assert {s.name for s in ev.slices} >= {"class=cat", "class=dog", "image_size=small", "image_size=large", "source.camera=north"}
    assert ev.per_class["cat"]["support"] == 3.0
    assert ev.confusion_labels == ["background", "cat", "dog"]
    assert set(ev.pr_curves or {}) == {"recall", "mean", "cat", "dog"}
    # COCO's -1 (no small objects of a range...) becomes None, never a number
    assert all(v is None or v >= 0 for v in ev.metrics.values())


def test_image_id_checks() -> None:
    with pytest.raises(EvaluationError, match="test split has no images"):
        check_image_ids([])
    with pytest.raises(EvaluationError, match="duplicated image ids in the test split: a"):
        check_image_ids([ImageMeta("a", 1, 1), ImageMeta("a", 2, 2)])


def test_prediction_set_converts_records_and_reorders_classes() -> None:
    preds = PredictionSet(task="detection", label_map=LM, models=["candidate"])
    rec = {
        "source_id": b"img1",
        "height": 100,
        "width": 200,
        "image": np.zeros((100, 200, 3), np.uint8),
        "boxes": np.array([[0.1, 0.2, 0.5, 0.7]], np.float32),  # ymin, xmin, ymax, xmax
        "labels": np.array([2]),
        "is_crowd": np.array([False]),
        "area": np.array([4000.0], np.float32),
    }
    p = ImagePrediction(boxes=np.array([[40, 10, 100, 40]], np.float32), scores=np.array([0.8], np.float32), class_ids=np.array([2]))
    preds.add(rec, {"candidate": p})
    gt = preds.ground_truth()
    assert np.allclose(gt.bbox, [[40.0, 10.0, 100.0, 40.0]], atol=1e-4)
    assert gt.image_id.tolist() == ["img1"]
    ev = evaluate_predictions(preds, "candidate", EvaluateSpec())
    assert ev.metrics["map"] == pytest.approx(1.0)
    assert preds.report_samples[0].true_labels == ["dog"]

    # a model trained on an older label map (ids 1, 2) evaluated on examples with ids 1, 2, 3
    lm3 = LM.extended(["bird"])
    cls = PredictionSet(task="classification", label_map=lm3, models=["baseline"], model_label_maps={"baseline": LM})
    cls.add(
        {"source_id": b"x", "height": 4, "width": 4, "image": np.zeros((4, 4, 3), np.uint8), "label": 2},
        {"baseline": ImagePrediction(probabilities=np.array([0.3, 0.7]), class_ids=np.array([2]), scores=np.array([0.7]))},
    )
    assert cls.probabilities("baseline").tolist() == [[0.3, 0.7, 0.0]]
    bad = PredictionSet(task="classification", label_map=LM, models=["m"])
    with pytest.raises(EvaluationError, match="3 probabilities for 2 classes"):
        bad.add(
            {"source_id": b"x", "height": 4, "width": 4, "image": np.zeros((4, 4, 3), np.uint8), "label": 1},
            {"m": ImagePrediction(probabilities=np.ones(3))},
        )


def test_report_is_self_contained_and_shows_failures() -> None:
    gt, dt = _detection_data()
    cand = evaluate_detection_set(gt, dt, _metas(), LM)
    base = evaluate_detection_set(gt, dt.select(np.array([True, False, True, True, False, True])), _metas(), LM)
    blessing = bless(cand, [MetricThreshold(metric="map_50", lower=0.99), MetricThreshold(metric="map", lower=0.1)], base, "det:1")
    samples = [
        ReportSample(
            "a", np.full((100, 100, 3), 200, np.uint8), np.array([[0, 0, 20, 20]]), ["cat"], np.array([[1, 1, 20, 20]]), ["cat"], [0.9]
        ),
        ReportSample("seg", np.zeros((8, 8, 3), np.uint8), true_mask=np.eye(8, dtype=np.uint8), pred_mask=np.zeros((8, 8), np.uint8)),
    ]
    html = render_report(cand, blessing, baseline=base, samples=samples, title="demo <run>")
    assert "NOT BLESSED" in html and "FAIL" in html and "demo &lt;run&gt;" in html
    assert "Confusion matrix" in html and "Precision-recall" in html
    assert "source.camera" not in html  # no user slice configured
    assert "image_size=small" in html and "<td>dog</td>" in html
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(images) == 4  # PR curves, confusion matrix, two samples
    assert all(base64.b64decode(b)[:8] == b"\x89PNG\r\n\x1a\n" for b in images)
    assert not re.search(r'(src|href)="(http|//)', html)

    scalars = kfp_scalars(cand, blessing)
    assert scalars["blessed"] == 0.0 and scalars["num_images"] == 4.0 and "map" in scalars
    assert all(isinstance(v, float) for v in scalars.values())
    cats, matrix = kfp_confusion(cand)
    assert cats == ["background", "cat", "dog"] and len(matrix) == 3 and all(len(r) == 3 for r in matrix)


def test_classification_set_slices() -> None:
    metas = _metas()
    y = [1, 2, 2, 1]
    s = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    ev = evaluate_classification_set(y, s, metas, LM, slices=["split"])
    assert ev.metrics["accuracy"] == pytest.approx(0.5)
    assert ev.value("accuracy@image_size=small") == pytest.approx(0.5)  # images a (right), c (wrong)
    assert ev.value("accuracy@split=train") == 1.0
    assert ev.value("recall@class=dog") == pytest.approx(0.5)
    with pytest.raises(KeyError):
        ev.value("accuracy@split=validation")

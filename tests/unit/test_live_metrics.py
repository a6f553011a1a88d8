"""Live metrics: interval statistics against scipy, the evaluate component's numbers, and when a drop is an alarm.

Labelled production rows are generated with a known true hit rate: each true
object is detected (with a slightly shifted box) with probability ``hit``, and
an image gets a false positive with probability ``fp``; so recall is ``hit``
in expectation.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from components.core.labelmap import LabelMap
from components.core.spec import LiveMetricSpec
from components.evaluate.evaluation import ModelEvaluation, evaluate_classification_set, evaluate_detection_set
from components.evaluate.metrics_detection import Detections, GroundTruth
from components.evaluate.slicing import ImageMeta
from components.live_metrics import (
    bootstrap_interval,
    clustered_wilson,
    degradation_alerts,
    measure,
    wilson_interval,
)

LABELS = LabelMap.from_names(["cat", "dog"])
BLESSED = ModelEvaluation(task="detection", num_images=500, metrics={"precision": 0.9, "recall": 0.9, "map_50": 0.88})


def detection_rows(n: int, hit: float, fp: float = 0.1, seed: int = 0, stratum: str = "random", start: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        objs, boxes, scores, classes = [], [], [], []
        for _ in range(int(rng.integers(1, 4))):
            c = int(rng.integers(1, 3))
            x, y = (float(v) for v in rng.uniform(0, 120, 2))
            w, h = (float(v) for v in rng.uniform(20, 60, 2))
            objs.append({"class_id": c, "bbox": [x, y, w, h]})
            if rng.random() < hit:
                boxes.append([x + 1.0, y + 1.0, w, h])
                scores.append(float(rng.uniform(0.5, 1.0)))
                classes.append(c)
        if rng.random() < fp:
            boxes.append([185.0, 185.0, 10.0, 10.0])
            scores.append(0.6)
            classes.append(1)
        rows.append(
            {
                "request_id": f"r{start + i}",
                "width": 200,
                "height": 200,
                "stratum": stratum,
                "predictions": json.dumps({"task": "detection", "boxes": boxes, "scores": scores, "class_ids": classes}),
                "ground_truth": json.dumps({"task": "detection", "width": 200, "height": 200, "objects": objs}),
            }
        )
    return pd.DataFrame(rows)


def by_metric(report):
    return {m.metric: m for m in report.metrics}


@pytest.mark.parametrize(("k", "n"), [(0, 10), (3, 12), (12, 12), (57, 80), (400, 1000)])
def test_wilson_matches_scipy(k: int, n: int) -> None:
    ref = sps.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    iv = wilson_interval(k, n, 0.95)
    assert iv.estimate == pytest.approx(k / n)
    assert iv.lower == pytest.approx(ref.low, abs=1e-12) and iv.upper == pytest.approx(ref.high, abs=1e-12)


def test_clustered_wilson_widens_only_for_clustered_outcomes() -> None:
    rng = np.random.default_rng(1)
    # independent boxes, four per image: about as wide as plain Wilson
    m = np.full(200, 4)
    y = rng.binomial(4, 0.7, size=200)
    iv = clustered_wilson(y, m)
    plain = wilson_interval(y.sum(), m.sum())
    assert iv.design_effect == pytest.approx(1.0, abs=0.35)
    assert iv.upper - iv.lower == pytest.approx(plain.upper - plain.lower, rel=0.2)
    # all-or-nothing images: the information is in the 200 images, not the 800 boxes
    y_all = rng.binomial(1, 0.7, size=200) * 4
    clustered = clustered_wilson(y_all, m)
    assert clustered.design_effect == pytest.approx(4.0, rel=0.15)
    assert clustered.effective_trials == pytest.approx(200, rel=0.15)
    assert clustered.upper - clustered.lower > 1.7 * (
        wilson_interval(y_all.sum(), m.sum()).upper - wilson_interval(y_all.sum(), m.sum()).lower
    )
    assert clustered_wilson(np.zeros(3), np.zeros(3)).estimate is None


def test_bootstrap_interval_covers_the_mean_and_drops_undefined_replicates() -> None:
    values = np.random.default_rng(2).normal(5.0, 1.0, 300)
    iv = bootstrap_interval(lambda idx: float(values[idx].mean()), len(values), replicates=300, seed=0)
    assert iv.lower < 5.0 < iv.upper and iv.upper - iv.lower < 0.4
    undefined = bootstrap_interval(lambda idx: None if 0 in idx else 1.0, 3, replicates=50)
    assert undefined.estimate is None and undefined.lower is None


def test_point_estimates_are_the_evaluate_components_numbers() -> None:
    frame = detection_rows(80, hit=0.7)
    report = measure(
        frame,
        "detection",
        LABELS,
        [LiveMetricSpec(metric="precision"), LiveMetricSpec(metric="map_50"), LiveMetricSpec(metric="recall@class=dog")],
        BLESSED,
        min_labelled=0,
        bootstrap=20,
    )
    gt_rows, dt_rows, metas = [], [], []
    for i, r in frame.iterrows():
        p, t = json.loads(r["predictions"]), json.loads(r["ground_truth"])
        metas.append(ImageMeta(image_id=str(i), width=200, height=200))
        gt_rows += [(str(i), o["class_id"], o["bbox"]) for o in t["objects"]]
        dt_rows += [(str(i), c, b, s) for c, b, s in zip(p["class_ids"], p["boxes"], p["scores"], strict=True)]
    gt = GroundTruth.from_arrays([g[0] for g in gt_rows], [g[1] for g in gt_rows], [g[2] for g in gt_rows])
    dt = Detections.from_arrays([d[0] for d in dt_rows], [d[1] for d in dt_rows], [d[2] for d in dt_rows], [d[3] for d in dt_rows])
    reference = evaluate_detection_set(gt, dt, metas, LABELS, iou_threshold=0.5, score_threshold=0.3)
    got = by_metric(report)
    assert got["precision"].estimate == pytest.approx(reference.metrics["precision"])
    assert got["map_50"].estimate == pytest.approx(reference.metrics["map_50"])
    assert got["recall@class=dog"].estimate == pytest.approx(reference.per_class["dog"]["recall"])
    assert report.evaluation is not None and report.evaluation.metrics["map"] == pytest.approx(reference.metrics["map"])


def test_a_real_drop_with_enough_labels_is_a_degradation() -> None:
    report = measure(detection_rows(400, hit=0.72, seed=3), "detection", LABELS, [], BLESSED, bootstrap=100)
    got = by_metric(report)
    assert report.status == "degraded"
    assert got["recall"].status == "degraded" and got["recall"].upper < 0.8
    assert got["recall"].method == "wilson_clustered" and got["recall"].design_effect >= 1.0
    alerts = degradation_alerts(report)
    firing = [a for a in alerts if a.status == "firing"]
    assert {a.dedup_key for a in firing} >= {"/".join(["cvpipe", "model", "live", "recall"])}
    assert all(a.labels["kind"] == "degradation" for a in alerts)


def test_twelve_labelled_images_never_raise_a_confident_alarm() -> None:
    few = detection_rows(12, hit=0.72, seed=3)
    # the interval alone: the same drop on twelve images is at most inconclusive
    report = measure(few, "detection", LABELS, [], BLESSED, min_labelled=0, bootstrap=100)
    assert {m.status for m in report.metrics} <= {"inconclusive", "ok"}
    assert all(m.upper is not None and m.upper >= m.bound for m in report.metrics)
    assert [a for a in degradation_alerts(report) if a.status == "firing"] == []
    # and the default minimum of labelled images says so outright
    default = measure(few, "detection", LABELS, [], BLESSED)
    assert {m.status for m in default.metrics} == {"not_enough_data"}
    assert degradation_alerts(default) == []


def test_only_the_random_share_is_measured() -> None:
    good = detection_rows(60, hit=0.95, fp=0.0, seed=4)
    hard = detection_rows(200, hit=0.2, seed=5, stratum="uncertain", start=1000)
    report = measure(pd.concat([good, hard]), "detection", LABELS, [LiveMetricSpec(metric="recall", max_drop=0.1)], BLESSED)
    recall = by_metric(report)["recall"]
    assert report.strata == {"random": 60, "uncertain": 200}
    assert recall.images == 60 and recall.status == "ok"
    assert recall.all_labelled is not None and recall.all_labelled < 0.5  # the biased estimate, reported but not alerted on
    assert [a.status for a in degradation_alerts(report)] == ["resolved"]


def test_classification_accuracy_uses_plain_wilson_and_matches_evaluate() -> None:
    rng = np.random.default_rng(6)
    rows, truth, probs = [], [], []
    for i in range(150):
        y = int(rng.integers(1, 3))
        right = rng.random() < 0.6
        p = [0.8, 0.2] if (y == 1) == right else [0.2, 0.8]
        truth.append(y)
        probs.append(p)
        rows.append(
            {
                "request_id": f"c{i}",
                "width": 64,
                "height": 64,
                "stratum": "random",
                "predictions": json.dumps(
                    {"task": "classification", "probabilities": p, "label_ids": [1, 2], "class_ids": [1], "scores": [0.8]}
                ),
                "ground_truth": json.dumps({"task": "classification", "width": 64, "height": 64, "class_id": y}),
            }
        )
    blessed = ModelEvaluation(task="classification", num_images=500, metrics={"accuracy": 0.92})
    report = measure(pd.DataFrame(rows), "classification", LABELS, [], blessed)
    acc = by_metric(report)["accuracy"]
    metas = [ImageMeta(image_id=str(i), width=64, height=64) for i in range(150)]
    expected = evaluate_classification_set(np.asarray(truth), np.asarray(probs), metas, LABELS).metrics["accuracy"]
    assert acc.estimate == pytest.approx(expected)
    assert acc.method == "wilson" and acc.trials == 150
    ref = sps.binomtest(round(expected * 150), 150).proportion_ci(method="wilson")
    assert acc.upper == pytest.approx(ref.high) and acc.status == "degraded"


def test_no_baseline_and_no_labels_raise_nothing() -> None:
    frame = detection_rows(50, hit=0.3, seed=7)
    no_baseline = measure(
        frame, "detection", LABELS, [LiveMetricSpec(metric="precision")], ModelEvaluation(task="detection", num_images=0, metrics={})
    )
    assert by_metric(no_baseline)["precision"].status == "no_baseline"
    empty = measure(frame.iloc[0:0], "detection", LABELS, [], BLESSED)
    assert empty.labelled == 0 and {m.status for m in empty.metrics} == {"not_enough_data"}
    assert degradation_alerts(no_baseline) == [] and degradation_alerts(empty) == []


def test_an_image_predicted_twice_counts_once_with_its_latest_prediction() -> None:
    latest = detection_rows(31, hit=0.9, seed=5)
    latest["image_sha256"] = [f"{i:064x}" for i in range(31)]
    latest["model_version"] = "3"
    latest["event_timestamp"] = pd.Timestamp("2026-12-01T12:00:00Z")
    earlier = detection_rows(19, hit=0.1, seed=6)  # the server predicted 19 of them before, badly
    earlier["ground_truth"] = latest["ground_truth"].iloc[:19].to_numpy()
    earlier["image_sha256"] = latest["image_sha256"].iloc[:19].to_numpy()
    earlier["model_version"] = "3"
    earlier["event_timestamp"] = pd.Timestamp("2026-12-01T11:00:00Z")
    both = pd.concat([latest, earlier], ignore_index=True)
    wanted = [LiveMetricSpec(metric="recall")]
    report = measure(both, "detection", LABELS, wanted, BLESSED, min_labelled=0, bootstrap=20)
    alone = measure(latest, "detection", LABELS, wanted, BLESSED, min_labelled=0, bootstrap=20)
    assert report.labelled == 31 and report.strata == {"random": 31}
    assert by_metric(report)["recall"].estimate == pytest.approx(by_metric(alone)["recall"].estimate)

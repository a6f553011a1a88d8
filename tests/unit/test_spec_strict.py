"""Strict spec validation: metric names per task, metric ranges, bound order, policy kinds, local paths."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from components.core.errors import SpecError
from components.core.spec import check_local_paths, load_spec, parse_spec


def _spec(task: str = "detection", **sections: object) -> dict:
    return {
        "name": "demo",
        "task": task,
        "data": {"source": "gs://bucket/a.json" if task != "classification" else "gs://b/folders"},
        **sections,
    }


def _problems(data: dict) -> dict[str, str]:
    with pytest.raises(SpecError) as err:
        parse_spec(data)
    return dict(err.value.problems)


def test_threshold_metric_must_exist_for_the_task_with_the_closest_name() -> None:
    problems = _problems(
        _spec(
            evaluate={
                "thresholds": [
                    {"metric": "mAP50", "lower": 0.5},
                    {"metric": "accuracy", "lower": 0.5},  # a classification metric
                    {"metric": "map_50", "lower": 0.5},  # fine
                    {"metric": "ap_50@class=cat", "lower": 0.3},  # a per-class slice metric: fine
                    {"metric": "recal@class=cat", "lower": 0.3},
                ]
            }
        )
    )
    assert problems["evaluate.thresholds.0.metric"] == "unknown detection metric 'mAP50'; did you mean 'map_50'?"
    assert problems["evaluate.thresholds.1.metric"].startswith("unknown detection metric 'accuracy'")
    assert problems["evaluate.thresholds.4.metric"] == "unknown detection metric 'recal' (in 'recal@class=cat'); did you mean 'recall'?"
    assert len(problems) == 3
    cls = _problems(_spec("classification", evaluate={"thresholds": [{"metric": "accuracy_top7", "lower": 0.5}]}))
    assert "did you mean 'accuracy'" in cls["evaluate.thresholds.0.metric"] or "top_5_accuracy" in cls["evaluate.thresholds.0.metric"]
    seg = _problems(_spec("segmentation", evaluate={"thresholds": [{"metric": "miou", "lower": 0.5}]}))
    assert "unknown segmentation metric 'miou'" in seg["evaluate.thresholds.0.metric"]


def test_bounds_must_be_in_range_and_ordered() -> None:
    problems = _problems(
        _spec(
            evaluate={
                "thresholds": [
                    {"metric": "map", "lower": 1.5},
                    {"metric": "map_50", "upper": -0.1},
                    {"metric": "recall", "lower": 0.8, "upper": 0.2},
                    {"metric": "support@class=cat", "lower": 10},  # a count: no upper range
                ]
            }
        )
    )
    assert problems["evaluate.thresholds.0.lower"] == "1.5 is outside the range of map (0 to 1)"
    assert problems["evaluate.thresholds.1.upper"] == "-0.1 is outside the range of map_50 (0 to 1)"
    assert problems["evaluate.thresholds.2"] == "lower 0.8 is greater than upper 0.2: no value can pass"
    assert len(problems) == 3


def test_unknown_policy_kinds_are_errors_with_the_closest_kind() -> None:
    problems = _problems(_spec(validation={"policy": {"undecodeable": "fail", "color_mode": "warn"}}))
    assert problems == {"validation.policy.undecodeable": "unknown anomaly kind 'undecodeable'; did you mean 'undecodable'?"}


def test_validate_spec_checks_local_paths_but_not_remote_ones(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: demo\ntask: detection\ndata: {source: data/annotations.json, label_map: lm.json}\n")
    assert check_local_paths(load_spec(spec)) == [
        ("data.source", f"{tmp_path / 'data' / 'annotations.json'} does not exist"),
        ("data.label_map", f"{tmp_path / 'lm.json'} does not exist"),
    ]
    r = subprocess.run([sys.executable, "-m", "pipelines.cli", "validate-spec", str(spec)], capture_output=True, text=True)
    assert r.returncode == 1 and "data.source:" in r.stderr and "does not exist" in r.stderr
    spec.write_text("name: demo\ntask: detection\ndata: {source: gs://bucket/annotations.json}\n")
    assert check_local_paths(load_spec(spec)) == []
    spec.write_text(
        "name: demo\ntask: detection\ndata: {source: s3://bucket/annotations.json}\nevaluate: {thresholds: [{metric: mAP50, lower: 2}]}\n"
    )
    r = subprocess.run([sys.executable, "-m", "pipelines.cli", "validate-spec", str(spec)], capture_output=True, text=True)
    assert r.returncode == 1
    assert "evaluate.thresholds.0.metric: unknown detection metric 'mAP50'; did you mean 'map_50'?" in r.stderr
    assert "Traceback" not in r.stderr


def test_the_catalog_names_what_validate_reports() -> None:
    from components.core.catalog import VALIDATION_KINDS
    from components.validate.core import KINDS

    assert set(KINDS) == VALIDATION_KINDS


def test_the_catalog_names_what_evaluate_computes() -> None:
    import numpy as np

    from components.core.catalog import METRICS, PER_CLASS_METRICS
    from components.evaluate.metrics_classification import classification_metrics
    from components.evaluate.metrics_detection import Detections, GroundTruth, evaluate_detection

    det = evaluate_detection(
        GroundTruth.from_arrays(["a"], [1], [[0, 0, 10, 10]]), Detections.from_arrays(["a"], [1], [[0, 0, 10, 10]], [0.9])
    )
    assert set(det.metrics) == METRICS["detection"] and set(det.per_class[1]) == PER_CLASS_METRICS["detection"]
    cls = classification_metrics([1, 2], np.array([[0.9, 0.1], [0.2, 0.8]]), [1, 2])
    assert set(cls.metrics) == METRICS["classification"]

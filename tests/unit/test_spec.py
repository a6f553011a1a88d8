from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from components.core.errors import SpecError
from components.core.spec import PipelineSpec, dump_spec, load_spec, parse_spec

THREE_LINES = "name: demo\ntask: detection\ndata: {source: data/annotations.json}\n"


def test_three_line_spec_is_complete(tmp_path: Path) -> None:
    p = tmp_path / "spec.yaml"
    p.write_text(THREE_LINES)
    spec = load_spec(p)
    assert spec.data.format == "coco"
    assert spec.data.source == str(tmp_path / "data" / "annotations.json")  # resolved against the spec's folder
    assert spec.transform.split.train == 0.8
    assert spec.train.accelerator.type == "cpu"
    assert spec.registry.backend == "local"
    assert spec.model_name == "demo"
    # round trip through YAML keeps everything
    assert PipelineSpec.model_validate(yaml.safe_load(dump_spec(spec))) == spec


def test_every_problem_reported_with_key_path() -> None:
    with pytest.raises(SpecError) as err:
        parse_spec(
            {
                "name": "Bad_Name",
                "task": "detection",
                "data": {"source": "a.json"},
                "train": {"accelerator": {"count": 0}, "epochs": 0, "learning_rat": 0.1},
                "transform": {"split": {"train": 0.5}},
                "evaluate": {"thresholds": [{"metric": "map", "change": {"direction": "up"}}]},
                "schedule": {"cron": "every day"},
            }
        )
    problems = dict(err.value.problems)
    assert problems["train.accelerator.count"] == "must be >= 1"
    assert problems["train.epochs"] == "must be >= 1"
    assert problems["train.learning_rat"] == "unknown key"
    assert "add up to 1" in problems["transform.split"]
    assert "name" in problems
    assert "evaluate.thresholds.0.change.direction" in problems
    assert "not a valid cron expression" in problems["schedule.cron"]
    assert len(err.value.problems) == 7


def test_missing_required_keys() -> None:
    with pytest.raises(SpecError) as err:
        parse_spec({"task": "detection"})
    assert dict(err.value.problems) == {"name": "is required", "data": "is required"}


@pytest.mark.parametrize(
    ("source", "fmt"),
    [("x/ann.json", "coco"), ("x/data.yaml", "yolo"), ("x/output.manifest", "groundtruth"), ("x/folders", "folders")],
)
def test_format_inferred(source: str, fmt: str) -> None:
    assert parse_spec({"name": "a", "task": "detection", "data": {"source": source}}).data.format == fmt


def test_accelerator_kind_defaults() -> None:
    gpu = parse_spec(
        {"name": "a", "task": "detection", "data": {"source": "a.json"}, "train": {"accelerator": {"type": "gpu", "count": 2}}}
    )
    assert gpu.train.accelerator.kind == "NVIDIA_TESLA_T4"
    tpu = parse_spec({"name": "a", "task": "detection", "data": {"source": "a.json"}, "train": {"accelerator": {"type": "tpu"}}})
    assert tpu.train.accelerator.kind.startswith("TPU")


def test_not_yaml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(bad)
    with pytest.raises(SpecError, match="cannot read spec file"):
        load_spec(tmp_path / "missing.yaml")
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(SpecError, match="mapping"):
        load_spec(listy)


def test_python_spec_equals_yaml_spec(tmp_path: Path) -> None:
    from components.core.spec import DataSpec, EvaluateSpec, MetricThreshold, TrainSpec

    py = PipelineSpec(
        name="demo",
        task="detection",
        data=DataSpec(source="data/annotations.json"),
        train=TrainSpec(epochs=3),
        evaluate=EvaluateSpec(thresholds=[MetricThreshold(metric="map_50", lower=0.2)]),
    )
    text = "name: demo\ntask: detection\ndata: {source: data/annotations.json}\ntrain: {epochs: 3}\nevaluate: {thresholds: [{metric: map_50, lower: 0.2}]}\n"
    assert parse_spec(yaml.safe_load(text)) == py


def test_cli_validate_spec_reports_key_paths(tmp_path: Path) -> None:
    p = tmp_path / "spec.yaml"
    p.write_text(THREE_LINES + "train:\n  accelerator: {type: gpu, count: 0}\n")
    r = subprocess.run([sys.executable, "-m", "pipelines.cli", "validate-spec", str(p)], capture_output=True, text=True)
    assert r.returncode == 1
    assert "train.accelerator.count: must be >= 1" in r.stderr
    assert "Traceback" not in r.stderr
    p.write_text(THREE_LINES)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "annotations.json").write_text("{}")
    r = subprocess.run([sys.executable, "-m", "pipelines.cli", "validate-spec", str(p)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "valid detection pipeline 'demo'" in r.stdout
    assert f"data: {tmp_path / 'data' / 'annotations.json'} read as coco (inferred)" in r.stdout

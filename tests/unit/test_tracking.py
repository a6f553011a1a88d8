"""MLflow experiment tracking against a real MLflow tracking server; a server that is down never fails a run."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest

from components.core.spec import PipelineSpec, parse_spec
from components.core.tracking import RUN_ID_TAG, log_evaluation, log_training, tracking_run


def _spec(uri: str, experiment: str | None = "cvpipe-tests") -> PipelineSpec:
    return parse_spec(
        {
            "name": "demo",
            "task": "detection",
            "data": {"source": "data/annotations.json"},
            "train": {"epochs": 3, "batch_size": 4},
            "tracking": {"mlflow": {"tracking_uri": uri, "experiment": experiment}},
        }
    )


HISTORY = [
    {"epoch": 1, "loss": 2.0, "val_loss": 2.5, "val_map_50": 0.1},
    {"epoch": 2, "loss": 1.2, "val_loss": 1.6, "val_map_50": 0.3},
    {"epoch": 3, "loss": 0.8, "val_loss": float("nan"), "val_map_50": 0.4},
]


def test_training_and_evaluation_are_logged_to_one_run(mlflow_uri: str, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    spec = _spec(mlflow_uri)
    plot = tmp_path / "loss.png"
    plot.write_bytes(b"\x89PNG fake plot bytes")
    run = log_training(
        spec,
        "run-42",
        params={"train": spec.train.model_dump(mode="json"), "strategy": "CPU", "precision": "float32"},
        history=HISTORY,
        artifacts=[plot],
        summary={"best_val_loss": 1.6},
    )
    assert run is not None
    client = MlflowClient(tracking_uri=mlflow_uri)
    got = client.get_run(run)
    assert got.data.tags[RUN_ID_TAG] == "run-42" and got.info.run_name == "run-42"
    assert got.data.params["train.epochs"] == "3" and got.data.params["precision"] == "float32"
    assert [(m.step, m.value) for m in client.get_metric_history(run, "loss")] == [(1, 2.0), (2, 1.2), (3, 0.8)]
    assert [m.step for m in client.get_metric_history(run, "val_loss")] == [1, 2]  # NaN is not logged
    assert [m.value for m in client.get_metric_history(run, "val_map_50")] == [0.1, 0.3, 0.4]
    assert got.data.metrics["final_best_val_loss"] == 1.6
    assert [a.path for a in client.list_artifacts(run, "training")] == ["training/loss.png"]
    assert client.get_experiment(got.info.experiment_id).name == "cvpipe-tests"
    # evaluation lands in the same run, found by its cvpipe run id
    assert log_evaluation(spec, "run-42", {"map_50": 0.71, "map": None}, blessed=True) == run
    got = client.get_run(run)
    assert got.data.metrics["eval_map_50"] == 0.71 and "eval_map" not in got.data.metrics
    assert got.data.tags["cvpipe.blessed"] == "true"
    assert tracking_run(spec, "run-42") == run and tracking_run(spec, "other") is None
    # a retried step logs into the same run, not a new one
    assert log_training(spec, "run-42", params={}, history=HISTORY[:1]) == run


def test_no_tracking_section_logs_nothing() -> None:
    spec = parse_spec({"name": "demo", "task": "detection", "data": {"source": "data/annotations.json"}})
    assert spec.tracking.mlflow is None
    assert log_training(spec, "r", params={}, history=HISTORY) is None
    assert log_evaluation(spec, "r", {"map": 0.5}, blessed=True) is None


def test_a_server_that_is_down_never_fails_the_run(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with caplog.at_level(logging.WARNING):
        for uri in (f"http://127.0.0.1:{port}", f"http://ops:pw-secret@127.0.0.1:{port}"):
            spec = _spec(uri)
            assert log_training(spec, "r", params={"a": 1}, history=HISTORY) is None
            assert log_evaluation(spec, "r", {"map": 0.5}, blessed=True) is None
    messages = [r.getMessage() for r in caplog.records]
    assert sum("not reachable" in m for m in messages) == 4
    assert not any("pw-secret" in m for m in messages)

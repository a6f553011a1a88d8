"""A kfp.local training run with the MLflow registry backend and MLflow tracking, against a real MLflow server.

The push lands in MLflow's Model Registry (version, alias, metrics and cvpipe
tags, the model's files as artifacts) and the training run shows its
per-epoch losses and final evaluation metrics, tagged with the cvpipe run id.
Same small data and budget as the other local training tests.
"""

from __future__ import annotations

import json

import pytest
import yaml

from components.core.spec import load_spec
from components.core.tracking import RUN_ID_TAG
from pipelines.demo import DEMO_SPEC, synth
from pipelines.runners.local import run_local

pytestmark = pytest.mark.local


def test_push_and_tracking_land_in_mlflow(mlflow_uri: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("mlflow-run")
    synth(root / "data", num_images=48, seed=3)
    spec_data = json.loads(json.dumps(DEMO_SPEC))
    spec_data["validation"]["min_examples_per_class"] = 2
    spec_data["train"] = {"epochs": 2, "batch_size": 8, "image_size": [64, 64], "early_stopping_patience": 2}
    spec_data["evaluate"] = {"thresholds": [{"metric": "map_50", "lower": 0.0}]}
    spec_data["registry"] = {"backend": "mlflow", "tracking_uri": mlflow_uri}
    spec_data["tracking"] = {"mlflow": {"tracking_uri": mlflow_uri, "experiment": "cvpipe-local-test"}}
    (root / "spec.yaml").write_text(yaml.safe_dump(spec_data))
    spec = load_spec(root / "spec.yaml")
    summary = run_local(spec)
    assert summary.succeeded, summary

    client = MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)
    name = spec.model_name
    assert client.get_registered_model(name).aliases == {"champion": "1"}
    [mv] = client.search_model_versions(f"name='{name}'")
    tags = mv.tags
    assert mv.version == "1" and tags["cvpipe.blessed"] == "true" and tags["cvpipe.run_id"] == summary.run_id
    metrics = json.loads(tags["cvpipe.metrics"])
    assert "map_50" in metrics and float(tags["metric.map_50"]) == pytest.approx(metrics["map_50"], rel=1e-5)
    assert tags["cvpipe.dataset"].startswith("Manifest #") and tags["cvpipe.label_map"].startswith("version ")
    files = {a.path for a in client.list_artifacts(mv.run_id, "model/saved_model")}
    assert "model/saved_model/saved_model.pb" in files
    # the pushed version is what cvpipe's registry resolves
    pushed = summary.artifact("PushedModel")
    assert pushed is not None and pushed.uri == f"models:/{name}/1" and pushed.properties["backend"] == "mlflow"

    exp = client.get_experiment_by_name("cvpipe-local-test")
    [run] = client.search_runs([exp.experiment_id], f"tags.`{RUN_ID_TAG}` = '{summary.run_id}'")
    losses = client.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in losses] == [1, 2]
    assert len(client.get_metric_history(run.info.run_id, "val_loss")) == 2
    assert run.data.params["train.epochs"] == "2" and "precision" in run.data.params and "strategy" in run.data.params
    assert "eval_map_50" in run.data.metrics and run.data.tags["cvpipe.blessed"] == "true"
    assert "training/loss.png" in {a.path for a in client.list_artifacts(run.info.run_id, "training")}

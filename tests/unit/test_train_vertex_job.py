"""``train.workers: 2`` with ``train.vertex_job``: the train step submits a Vertex AI custom job and waits for it.

The real ``google-cloud-aiplatform`` client talks REST to the project's local Vertex AI server
(:class:`fakes.vertex_server.FakeVertexServer`), which checks the CustomJob as the real API
does, records it, and runs its replicas as local processes with the ``TF_CONFIG`` Vertex AI
gives them: the chief (pool 0) and a worker (pool 1) train cvpipe's model in sync, and the chief
exports it and records lineage under the task's URIs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fakes.vertex_server import TOKEN, FakeVertexServer
from train_testdata import make_examples

from components.core.errors import SpecError, TrainingError
from components.core.spec import parse_spec
from components.core.step import StepContext

pytest.importorskip("tensorflow")
pytest.importorskip("google.cloud.aiplatform")

REPO = Path(__file__).resolve().parents[2]
IMAGE = "europe-docker.pkg.dev/acme/cvpipe/cvpipe:1.0"
TOKEN_ENV = "CVPIPE_TEST_VERTEX_TOKEN"
REPLICA_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(REPO)}


def spec_dict(tmp_path: Path, endpoint: str, **train: Any) -> dict[str, Any]:
    vertex_job = {
        "project": "acme",
        "region": "europe-west4",
        "staging_bucket": "gs://acme-staging/cvpipe",
        "image": IMAGE,
        "machine_type": "n1-standard-4",
        "api_endpoint": endpoint,
        "token_env": TOKEN_ENV,
    }
    return {
        "name": "vertex-workers",
        "task": "detection",
        "data": {"source": str(tmp_path / "annotations.json")},
        "train": {
            "epochs": 2,
            "batch_size": 4,
            "image_size": [64, 64],
            "learning_rate": 0.003,
            "workers": 2,
            "vertex_job": vertex_job,
            **train,
        },
        "registry": {"root": str(tmp_path / "registry")},
        "runtime": {"root": str(tmp_path / "runs"), "metadata": {"url": f"sqlite:///{tmp_path / 'mlmd.sqlite'}"}},
    }


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with FakeVertexServer(jobs_dir=tmp_path / "jobs", replica_env=REPLICA_ENV) as s:
        yield s


def test_the_train_step_runs_its_workers_as_a_vertex_custom_job(tmp_path: Path, server: FakeVertexServer) -> None:
    from components.train.core import run

    examples, label_map = make_examples(tmp_path, "detection", num_images=24, image_size=64)
    out = tmp_path / "out"
    ctx = StepContext(spec=parse_spec(spec_dict(tmp_path, server.endpoint)), run_id="run-1", component="train")
    model_uri = "gs://acme-pipelines/vertex-workers/run-1/train/model"
    result = run(ctx, examples, label_map, out / "model", out / "report", out / "hparams", uris={"model": model_uri})

    # the one CustomJob the step submitted: the chief pool, then one worker, both running the train step
    (create,) = server.calls("POST", "/customJobs")
    assert create.path == "/v1/projects/acme/locations/europe-west4/customJobs"
    assert create.authorization == f"Bearer {TOKEN}"
    job = create.body
    pools = job["jobSpec"]["workerPoolSpecs"]
    assert [int(p["replicaCount"]) for p in pools] == [1, 1]
    for p in pools:
        assert p["machineSpec"]["machineType"] == "n1-standard-4"
        assert p["containerSpec"]["imageUri"] == IMAGE and p["containerSpec"]["command"] == ["python"]
        assert p["containerSpec"]["args"][:2] == ["-m", "components.train.worker"]
        payload = json.loads(p["containerSpec"]["args"][2])
        assert payload["model_dir"] == str(out / "model") and payload["uris"] == {"model": model_uri}
    assert job["jobSpec"]["baseOutputDirectory"]["outputUriPrefix"].startswith("gs://acme-staging/cvpipe")
    assert job["labels"] == {"cvpipe-pipeline": "vertex-workers", "cvpipe-run": "run-1", "cvpipe-step": "train"}
    name = next(iter(server.jobs))
    assert server.jobs[name]["state"] == "JOB_STATE_SUCCEEDED"
    assert server.calls("GET", "/customJobs/")  # the client waited for it

    # the replicas trained in sync; only the chief wrote the model, and it recorded lineage under the task's URI
    assert result.strategy.startswith("MultiWorkerMirroredStrategy over 2 workers on CPU"), result.strategy
    assert result.epochs_run == 2 and result.task == "detection"
    report = json.loads((out / "model" / "training_report.json").read_text())
    assert report["workers"] == 2 and report["replicas_in_sync"] == 2
    assert [p.parent for p in tmp_path.rglob("saved_model.pb")] == [out / "model" / "saved_model"]
    logs = tmp_path / "jobs" / name.rsplit("/", 1)[-1]
    assert "this process is chief 0, the chief" in (logs / "workerpool0-0.log").read_text()
    assert "this process is worker 0, a worker" in (logs / "workerpool1-0.log").read_text()
    model = ctx.store.find_by_uri(model_uri, "Model")
    assert model is not None and model.properties["epochs"] == 2
    assert result.artifacts["model"] == model and result.artifacts["report"].kind == "Report"


def test_a_failed_replica_fails_the_step_with_vertex_ais_message(tmp_path: Path, server: FakeVertexServer) -> None:
    from components.train.core import run

    examples, _ = make_examples(tmp_path, "detection", num_images=8, image_size=32)
    ctx = StepContext(spec=parse_spec(spec_dict(tmp_path, server.endpoint)), run_id="run-2", component="train")
    out = tmp_path / "out"
    with pytest.raises(TrainingError, match=r"ended JOB_STATE_FAILED: The replica workerpool[01]-0 exited with a non-zero status of 1"):
        run(ctx, examples, tmp_path / "missing" / "label_map.json", out / "model", out / "report", out / "hparams")
    (job,) = server.jobs.values()
    assert job["state"] == "JOB_STATE_FAILED"


def test_the_fake_refuses_what_vertex_ai_refuses_and_the_spec_is_checked(tmp_path: Path, server: FakeVertexServer) -> None:
    from google.api_core.exceptions import BadRequest
    from google.cloud import aiplatform
    from google.cloud.aiplatform import initializer

    from components.train.multiworker import vertex_worker_pool_specs

    pools = vertex_worker_pool_specs(3, IMAGE, ["-m", "components.train.worker", "{}"])
    pools[0]["replica_count"] = 2  # the primary pool must have one replica
    saved = dict(vars(initializer.global_config))
    aiplatform.init(project="acme", location="europe-west4", api_transport="rest", api_endpoint=server.endpoint)
    try:
        job = aiplatform.CustomJob(
            display_name="bad", worker_pool_specs=pools, staging_bucket="gs://acme-staging", credentials=server.credentials()
        )
        with pytest.raises(BadRequest, match="replica_count must be 1"):
            job.run(sync=True)
    finally:
        vars(initializer.global_config).clear()
        vars(initializer.global_config).update(saved)
    assert server.calls("POST", "/customJobs") and not server.jobs

    base = spec_dict(tmp_path, server.endpoint)
    for change, words in (
        ({"workers": 1}, "set train.workers to 2 or more"),
        ({"vertex_job": {**base["train"]["vertex_job"], "staging_bucket": "/tmp/x"}}, "staging_bucket"),
        ({"vertex_job": {**base["train"]["vertex_job"], "accelerator_type": "NVIDIA_TESLA_T4"}}, "accelerator_count"),
    ):
        with pytest.raises(SpecError, match=words):
            parse_spec({**base, "train": {**base["train"], **change}})

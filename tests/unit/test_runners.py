"""One Runner protocol: local (kfp.local in a process of its own), Kubeflow and Vertex AI, found through entry points."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fakes.kfp_server import FakeKfpServer
from fakes.vertex_pipelines_server import FakeVertexPipelinesServer

from components.core.errors import PipelineRunError
from components.core.runs import Runner, pid_alive, runner_for
from components.core.spec import PipelineSpec, load_spec
from pipelines.runners.kubeflow import KubeflowConnection, KubeflowRunner
from pipelines.runners.local import LocalRunner
from pipelines.runners.vertex import VertexRunner, load_settings

REPO = Path(__file__).resolve().parents[2]
SETTINGS = REPO / "infra" / "vertex" / "settings.yaml"
TOKEN = "runner-token"


def _spec(tmp_path: Path, **extra: object) -> PipelineSpec:
    (tmp_path / "data").mkdir(exist_ok=True)
    doc = {"name": "shapes", "task": "detection", "data": {"source": "data/annotations.json"}, **extra}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(doc))
    return load_spec(tmp_path / "spec.yaml")


def test_runner_for_builds_the_runner_the_spec_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plain = _spec(tmp_path)
    local = runner_for(plain)
    assert isinstance(local, LocalRunner) and isinstance(local, Runner)
    assert local.runs_dir == Path(plain.runtime.root) / "local-runs"
    monkeypatch.setenv("KFP_TOKEN_FOR_TEST", "t0k")
    retrain = {"target": "kubeflow", "host": "http://127.0.0.1:9", "namespace": "ml", "token_env": "KFP_TOKEN_FOR_TEST"}
    kfp = runner_for(_spec(tmp_path, monitoring={"retrain": retrain}))
    assert isinstance(kfp, KubeflowRunner) and isinstance(kfp, Runner)
    assert kfp.connection == KubeflowConnection(host="http://127.0.0.1:9", namespace="ml", token="t0k")
    vx_retrain = {"target": "vertex", "project": "p", "region": "europe-west4", "settings": str(SETTINGS)}
    vx = runner_for(_spec(tmp_path, monitoring={"retrain": vx_retrain}))
    assert isinstance(vx, VertexRunner) and isinstance(vx, Runner)
    assert (vx.project, vx.region, vx.settings) == ("p", "europe-west4", load_settings(SETTINGS))
    with pytest.raises(PipelineRunError, match="no runner for target 'slurm'"):
        runner_for(plain, target="slurm")


@pytest.fixture
def kfp() -> Iterator[FakeKfpServer]:
    with FakeKfpServer(token=TOKEN, states=["RUNNING"]) as s:
        yield s


def test_kubeflow_runner_submits_lists_cancels_and_waits(kfp: FakeKfpServer, tmp_path: Path) -> None:
    runner = KubeflowRunner(KubeflowConnection(host=kfp.url, token=TOKEN), experiment="nightly", sleep=lambda s: None)
    run = runner.submit(_spec(tmp_path), until="ingest", run_name="shapes-1")
    assert run.target == "kubeflow" and run.name == "shapes-1" and run.details["experiment"] == "nightly"
    assert runner.get(run.run_id).state == "RUNNING"
    assert [r.run_id for r in runner.list()] == [run.run_id]
    cancelling = runner.cancel(run.run_id)
    assert cancelling.state in ("CANCELLING", "CANCELLED")
    assert [r.path for r in kfp.requests if r.method == "POST" and r.path.endswith(":terminate")] == [
        f"/apis/v2beta1/runs/{run.run_id}:terminate"
    ]
    seen: list[str] = []
    finished = runner.wait(run.run_id, poll=0, on_change=lambda r: seen.append(r.state))
    assert finished.state == "CANCELLED" and not finished.succeeded and seen[-1] == "CANCELLED"


def test_vertex_runner_submits_a_job_and_cancels_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with FakeVertexPipelinesServer(token=None, states=["RUNNING"]) as vertex:  # cvpipe sends anonymous credentials to http
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", vertex.endpoint)
        runner = VertexRunner(
            settings=load_settings(SETTINGS),
            api_endpoint=vertex.endpoint,
            pipeline_root="gs://runner-test-root/pipeline-root",
            labels={"env": "test"},
            sleep=lambda s: None,
        )
        run = runner.submit(_spec(tmp_path), until="ingest", run_name="shapes-42")
        assert (run.target, run.run_id) == ("vertex", "shapes-42")
        [create] = vertex.calls("POST", "/pipelineJobs")
        assert create.body["labels"]["env"] == "test" and create.body["runtimeConfig"]["gcsOutputDirectory"].startswith(
            "gs://runner-test-root"
        )
        assert [r.run_id for r in runner.list(pipeline="shapes")] == ["shapes-42"]
        runner.cancel("shapes-42")
        assert vertex.calls("POST", ":cancel")
        assert runner.wait("shapes-42", poll=0).state == "CANCELLED"


def test_local_runner_runs_in_a_process_of_its_own(tmp_path: Path) -> None:
    spec = _spec(tmp_path)  # data/annotations.json does not exist: ingest fails with a clear message
    runner = LocalRunner(tmp_path / "local-runs", base_dir=tmp_path)
    with pytest.raises(PipelineRunError, match="no pipeline parameters"):
        runner.submit(spec, parameters={"spec_json": "{}"})
    run = runner.submit(spec, until="ingest", run_name="shapes-local-1")
    assert (run.target, run.run_id, run.state) == ("local", "shapes-local-1", "RUNNING")
    assert pid_alive(int(run.details["pid"]), "shapes-local-1")
    with pytest.raises(PipelineRunError, match="exists already"):
        runner.submit(spec, run_name="shapes-local-1")
    finished = runner.wait(run.run_id)
    assert finished.state == "FAILED" and "pipeline shapes run" in (finished.error or "")
    assert "annotations.json" in Path(finished.url).read_text()  # the process's log names the missing file
    # another runner over the same folder (another process, later) reads the same record
    again = LocalRunner(tmp_path / "local-runs", sleep=lambda s: None).wait(run.run_id, poll=0)
    assert again.state == "FAILED" and again.error == finished.error
    assert [r.run_id for r in runner.list(pipeline="shapes")] == ["shapes-local-1"]
    assert runner.cancel(run.run_id).state == "FAILED"  # a finished run keeps its state
    with pytest.raises(PipelineRunError, match="no local run"):
        runner.get("ghost")
    with pytest.raises(PipelineRunError, match="cvpipe scheduler"):
        runner.schedule(spec)


def test_local_runner_cancels_a_running_run(tmp_path: Path) -> None:
    runner = LocalRunner(tmp_path / "local-runs", base_dir=tmp_path)
    run = runner.submit(_spec(tmp_path), until="ingest")
    pid = int(run.details["pid"])
    os.kill(pid, signal.SIGSTOP)  # it cannot finish (or report) before it is cancelled
    cancelled = runner.cancel(run.run_id)
    assert cancelled.state == "CANCELLED" and not pid_alive(pid)
    assert runner.wait(run.run_id).state == "CANCELLED"

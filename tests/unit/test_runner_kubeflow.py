"""Kubeflow runner: the real ``kfp.Client`` against a local server that speaks the KFP v2beta1 REST API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fakes.http import refusing_url
from fakes.kfp_server import FakeKfpServer

from components.core.errors import PipelineRunError
from components.core.spec import PipelineSpec, load_spec
from pipelines.compiler import compile_to_text, compiled_parameters
from pipelines.runners.kubeflow import KubeflowConnection, KubeflowRunner, get_run, list_runs, submit_kubeflow, wait_run

TOKEN = "test-token-123"
UNTIL = "transform"  # the steps whose components every checkout has; the DAG is built the same way for all


def _write_spec(tmp_path: Path, **runtime: object) -> Path:
    """A spec as a user keeps it beside their data: relative data path, as `cvpipe run` takes it."""
    spec = {
        "name": "shapes-detector",
        "task": "detection",
        "data": {"source": "data/annotations.json"},
        "train": {"epochs": 3},
        "runtime": {
            "image": "europe-docker.pkg.dev/acme/cvpipe/cvpipe:0.1.0",
            "pipeline_root": "minio://mlpipeline/v2/artifacts",
            "metadata": {"url": "mysql://mlmd@metadata-db.kubeflow:3306/mlmd"},
            **runtime,
        },
    }
    (tmp_path / "data").mkdir(exist_ok=True)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture
def server() -> Iterator[FakeKfpServer]:
    with FakeKfpServer(token=TOKEN) as s:
        yield s


@pytest.fixture
def spec(tmp_path: Path) -> PipelineSpec:
    return load_spec(_write_spec(tmp_path))


def _conn(server: FakeKfpServer) -> KubeflowConnection:
    return KubeflowConnection(host=server.url, token=TOKEN)


def test_submit_uploads_pipeline_creates_experiment_and_run(server: FakeKfpServer, spec: PipelineSpec) -> None:
    run = submit_kubeflow(spec, server.url, token=TOKEN, until=UNTIL, run_name="first-run", service_account="pipeline-runner")

    # every call carried the token
    assert server.requests and all(r.authorization == f"Bearer {TOKEN}" for r in server.requests)
    [upload] = server.calls("POST", "/pipelines/upload")
    assert upload.query["name"] == "shapes-detector"
    assert upload.query["description"] == "cvpipe detection training pipeline"
    sent = upload.body["uploadfile"]
    assert sent["filename"].endswith(".yaml")
    assert sent["content"].decode() == compile_to_text(spec, until=UNTIL)  # exactly what `cvpipe compile` writes

    [create_exp] = server.calls("POST", "/experiments")
    assert create_exp.body["display_name"] == "shapes-detector"
    [create_run] = server.calls("POST", "/runs")
    [pipeline] = server.pipelines.values()
    [version] = server.versions[pipeline["pipeline_id"]]
    [experiment] = server.experiments.values()
    assert create_run.body == {
        "experiment_id": experiment["experiment_id"],
        "display_name": "first-run",
        "pipeline_version_reference": {"pipeline_id": pipeline["pipeline_id"], "pipeline_version_id": version["pipeline_version_id"]},
        "runtime_config": {"pipeline_root": "minio://mlpipeline/v2/artifacts", "parameters": {}},
        "service_account": "pipeline-runner",
    }
    assert run.target == "kubeflow" and run.state == "PENDING" and run.name == "first-run"
    assert run.run_id in server.runs
    assert run.url == f"{server.url}/#/runs/details/{run.run_id}"
    assert run.details["pipeline_id"] == pipeline["pipeline_id"]
    assert run.details["version_id"] == version["pipeline_version_id"]
    assert run.details["experiment"] == "shapes-detector"


def test_spec_travels_unchanged_as_the_pipeline_parameter_default(server: FakeKfpServer, tmp_path: Path) -> None:
    path = _write_spec(tmp_path)
    local = load_spec(path)  # what `cvpipe run spec.yaml` runs
    submit_kubeflow(load_spec(path), server.url, token=TOKEN, until=UNTIL)
    [pipeline] = server.pipelines.values()
    [version] = server.versions[pipeline["pipeline_id"]]
    parameters = version["pipeline_spec"]["root"]["inputDefinitions"]["parameters"]
    assert {k: v["defaultValue"] for k, v in parameters.items()} == compiled_parameters(local, until=UNTIL)
    executors = version["pipeline_spec"]["deploymentSpec"]["executors"]
    assert {e["container"]["image"] for e in executors.values()} == {"europe-docker.pkg.dev/acme/cvpipe/cvpipe:0.1.0"}


def test_resubmitting_adds_a_version_only_when_the_pipeline_changed(server: FakeKfpServer, tmp_path: Path) -> None:
    spec = load_spec(_write_spec(tmp_path))
    first = submit_kubeflow(spec, server.url, token=TOKEN, until=UNTIL)
    second = submit_kubeflow(spec, server.url, token=TOKEN, until=UNTIL)
    third = submit_kubeflow(spec, server.url, token=TOKEN, until=UNTIL)
    assert len(server.calls("POST", "/pipelines/upload_version")) == 1  # the second submit; the third reuses it
    [pid] = server.versions
    versions = server.versions[pid]
    assert versions[0]["display_name"] == "shapes-detector"
    assert versions[1]["display_name"].startswith("shapes-detector-") and len(versions[1]["display_name"]) == len("shapes-detector-") + 12
    assert second.details["version_id"] == third.details["version_id"] != first.details["version_id"]
    assert len(server.calls("POST", "/experiments")) == 1  # got, not created, after the first time
    assert len({first.run_id, second.run_id, third.run_id}) == 3

    changed = load_spec(_write_spec(tmp_path, image="europe-docker.pkg.dev/acme/cvpipe/cvpipe:0.2.0"))
    fourth = submit_kubeflow(changed, server.url, token=TOKEN, until=UNTIL)
    assert len(server.versions[pid]) == 3 and fourth.details["version_id"] == server.versions[pid][-1]["pipeline_version_id"]
    [_, _, newest_upload] = [r for r in server.calls("POST") if "upload" in r.path]
    assert b"cvpipe:0.2.0" in newest_upload.body["uploadfile"]["content"]


def test_experiment_and_pipeline_name_are_used(server: FakeKfpServer, spec: PipelineSpec) -> None:
    submit_kubeflow(spec, server.url, token=TOKEN, experiment="nightly", pipeline_name="detector-prod", until=UNTIL)
    assert [p["display_name"] for p in server.pipelines.values()] == ["detector-prod"]
    assert [e["display_name"] for e in server.experiments.values()] == ["nightly"]
    runs = list_runs(_conn(server), experiment="nightly")
    assert len(runs) == 1 and runs[0].details["experiment_id"] == next(iter(server.experiments))


def test_wait_follows_the_run_to_success(server: FakeKfpServer, spec: PipelineSpec) -> None:
    run = submit_kubeflow(spec, _conn(server), until=UNTIL)
    seen: list[str] = []
    done = wait_run(run.run_id, _conn(server), poll=0.0, on_change=lambda r: seen.append(r.state), sleep=lambda s: None)
    assert done.succeeded and done.done and seen == ["PENDING", "RUNNING", "SUCCEEDED"]
    assert get_run(run.run_id, _conn(server)).state == "SUCCEEDED"


def test_wait_reports_a_failed_run_with_its_error(server: FakeKfpServer, spec: PipelineSpec) -> None:
    run = submit_kubeflow(spec, _conn(server), until=UNTIL)
    server.script(run.run_id, ["RUNNING", "FAILED"], error="task train failed: OOMKilled")
    done = wait_run(run.run_id, _conn(server), poll=0.0, sleep=lambda s: None)
    assert done.state == "FAILED" and not done.succeeded and done.error == "task train failed: OOMKilled"


def test_wait_gives_up_after_the_timeout(server: FakeKfpServer, spec: PipelineSpec) -> None:
    run = submit_kubeflow(spec, _conn(server), until=UNTIL)
    server.script(run.run_id, ["RUNNING"])
    polls: list[float] = []
    with pytest.raises(PipelineRunError, match=r"still RUNNING after 5s"):
        wait_run(run.run_id, _conn(server), timeout=5, poll=10, sleep=polls.append)
    assert polls == []  # the next poll would come after the deadline


def test_cancelled_runs_are_finished_too(server: FakeKfpServer) -> None:
    rid = server.add_run("old-run", state="CANCELED")
    done = wait_run(rid, _conn(server), poll=0.0, sleep=lambda s: None)
    assert done.state == "CANCELLED" and done.done and not done.succeeded


def _task(server: FakeKfpServer, run_id: str, name: str) -> dict[str, object]:
    [task] = [t for t in server.runs[run_id].body["run_details"]["task_details"] if t["display_name"] == name]
    return task


def test_get_reports_each_step_with_its_state_times_and_error(server: FakeKfpServer) -> None:
    """The run's task details become its steps: KFP's entrypoint, root, drivers are left out; times and errors kept."""
    runner = KubeflowRunner(_conn(server))
    rid = server.add_run("shelf-run", state="RUNNING")
    assert runner.get(rid).steps == []  # no task reported yet

    server.script_tasks(rid, [("ingest", "SUCCEEDED", None), ("validate", "RUNNING", None)])
    running = runner.get(rid)
    assert server.calls("GET", f"/runs/{rid}")[-1].authorization == f"Bearer {TOKEN}"
    assert [(s.name, s.state) for s in running.steps] == [("ingest", "SUCCEEDED"), ("validate", "RUNNING")]
    ingest, validate = running.steps
    assert (ingest.started, ingest.ended) == (_task(server, rid, "ingest")["start_time"], _task(server, rid, "ingest")["end_time"])
    assert ingest.duration_s == 1.0 and ingest.error is None
    assert validate.started == _task(server, rid, "validate")["start_time"]
    assert validate.ended == "" and validate.duration_s is None  # KFP's unset end time (1970-01-01) is no end

    server.script_tasks(rid, [("ingest", "SUCCEEDED", None), ("validate", "FAILED", "validate: 3 images are missing <b>")])
    server.script(rid, ["FAILED"])
    failed = runner.get(rid)
    assert failed.state == "FAILED"
    assert [(s.name, s.state, s.raw_state, s.error) for s in failed.steps] == [
        ("ingest", "SUCCEEDED", "SUCCEEDED", None),
        ("validate", "FAILED", "FAILED", "validate: 3 images are missing <b>"),
    ]
    assert failed.to_dict()["steps"][1]["duration_s"] == 1.0


def test_a_task_whose_driver_failed_is_listed_with_the_drivers_error(server: FakeKfpServer) -> None:
    """A driver that fails (inputs, caching) stops its task before KFP creates it: the step still shows, failed."""
    rid = server.add_run("shelf-run", state="FAILED")
    server.script_tasks(rid, [("ingest", "SUCCEEDED", None), ("validate", "FAILED", None)])
    details = server.runs[rid].body["run_details"]["task_details"]
    details.remove(_task(server, rid, "validate"))
    _task(server, rid, "validate-driver").update(state="FAILED", error={"code": 2, "message": "failed to resolve inputs"})
    steps = KubeflowRunner(_conn(server)).get(rid).steps
    assert [(s.name, s.state, s.error) for s in steps] == [
        ("ingest", "SUCCEEDED", None),
        ("validate", "FAILED", "failed to resolve inputs"),
    ]


def test_list_runs_newest_first(server: FakeKfpServer) -> None:
    ids = [server.add_run(f"run-{i}") for i in range(3)]
    runs = list_runs(_conn(server), limit=2)
    assert [r.run_id for r in runs] == [ids[2], ids[1]]
    [listing] = server.calls("GET", "/runs")[-1:]
    assert listing.query["sort_by"] == "created_at desc" and listing.query["page_size"] == "2"


def test_wrong_token_fails_at_once_with_the_servers_answer(server: FakeKfpServer, spec: PipelineSpec) -> None:
    with pytest.raises(PipelineRunError, match=r"HTTP 401.*bearer token"):
        submit_kubeflow(spec, server.url, token="wrong", until=UNTIL)
    assert len(server.requests) == 1  # one health check, no retries
    assert not server.pipelines and not server.runs


def test_unknown_run_and_experiment(server: FakeKfpServer) -> None:
    with pytest.raises(PipelineRunError, match=r"getting run nope failed: HTTP 404"):
        get_run("nope", _conn(server))
    with pytest.raises(PipelineRunError, match="no experiment named 'ghost'"):
        list_runs(_conn(server), experiment="ghost")


def test_unreachable_server() -> None:
    with refusing_url() as url, pytest.raises(PipelineRunError, match=r"reaching http://127\.0\.0\.1"):
        get_run("x", url)


def test_multi_user_needs_a_namespace_and_uses_it(spec: PipelineSpec) -> None:
    with FakeKfpServer(token=TOKEN, multi_user=True) as server:
        with pytest.raises(PipelineRunError, match="multi-user"):
            submit_kubeflow(spec, server.url, token=TOKEN, until=UNTIL)
        submit_kubeflow(spec, server.url, token=TOKEN, namespace="team-vision", until=UNTIL)
        [upload] = server.calls("POST", "/pipelines/upload")
        assert upload.query["namespace"] == "team-vision"
        [exp] = server.calls("POST", "/experiments")
        assert exp.body["namespace"] == "team-vision"
        [listed] = server.calls("GET", "/experiments")
        assert listed.query["namespace"] == "team-vision"
        assert json.loads(listed.query["filter"])["predicates"][0]["stringValue"] == "shapes-detector"

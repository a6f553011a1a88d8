"""``cvpipe submit`` and ``cvpipe runs show|wait|list --target``: the commands against the local KFP and Vertex servers."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner, Result
from fakes.kfp_server import FakeKfpServer
from fakes.vertex_pipelines_server import FakeVertexPipelinesServer

from components.core.lineage import LineageStore, NewArtifact
from pipelines.cli import cli

REPO = Path(__file__).resolve().parents[2]
SETTINGS = REPO / "infra" / "vertex" / "settings.yaml"
TOKEN = "cli-token"
_buckets = itertools.count()


@pytest.fixture
def cvpipe() -> click.Group:
    """The ``cvpipe`` command line."""
    return cli


@pytest.fixture
def kfp() -> Iterator[FakeKfpServer]:
    with FakeKfpServer(token=TOKEN) as s:
        yield s


@pytest.fixture
def vertex(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeVertexPipelinesServer]:
    # the CLI takes no credentials: cvpipe sends anonymous ones to a plain-http endpoint
    with FakeVertexPipelinesServer(token=None) as s:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", s.endpoint)
        yield s


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    """The spec a user runs locally with `cvpipe run spec.yaml` (relative data path, default SQLite lineage)."""
    (tmp_path / "data").mkdir()
    path = tmp_path / "spec.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "shapes-detector",
                "task": "detection",
                "data": {"source": "data/annotations.json"},
                "runtime": {"image": "europe-west4-docker.pkg.dev/acme-ml/cvpipe/cvpipe:0.1.0"},
            }
        )
    )
    return path


def _run(group: click.Group, *args: str | Path) -> Result:
    return CliRunner().invoke(group, [str(a) for a in args], catch_exceptions=False)


def _kfp_args(server: FakeKfpServer) -> list[str]:
    return ["--target", "kubeflow", "--host", server.url, "--token", TOKEN]


def _vertex_args(server: FakeVertexPipelinesServer) -> list[str]:
    return ["--target", "vertex", "--settings", str(SETTINGS), "--api-endpoint", server.endpoint]


def test_run_commands_are_registered(cvpipe: click.Group) -> None:
    runs = cvpipe.commands["runs"]
    assert isinstance(runs, click.Group) and set(runs.commands) == {"list", "show", "wait", "cancel"}
    assert "submit" in cvpipe.commands
    assert "target" in {p.name for p in runs.commands["list"].params}


def test_submit_kubeflow(cvpipe: click.Group, kfp: FakeKfpServer, spec_file: Path) -> None:
    result = _run(cvpipe, "submit", spec_file, *_kfp_args(kfp), "--experiment", "nightly", "--until", "transform", "--json")
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)
    assert run["target"] == "kubeflow" and run["state"] == "PENDING" and run["run_id"] in kfp.runs
    assert run["details"]["experiment"] == "nightly"
    # the local-only parts of the spec are pointed out, not changed
    assert "data.source:" in result.stderr and "runtime.metadata.url: SQLite" in result.stderr
    [create] = kfp.calls("POST", "/runs")
    assert create.body["display_name"].startswith("shapes-detector-")
    assert all(r.authorization == f"Bearer {TOKEN}" for r in kfp.requests)


def test_submit_strict_refuses_local_paths(cvpipe: click.Group, kfp: FakeKfpServer, spec_file: Path) -> None:
    result = _run(cvpipe, "submit", spec_file, *_kfp_args(kfp), "--strict")
    assert result.exit_code == 1 and "portability problem(s)" in result.stderr
    assert kfp.requests == []


def test_submit_wait_exit_status_follows_the_run(cvpipe: click.Group, spec_file: Path) -> None:
    with FakeKfpServer(token=TOKEN) as ok:
        result = _run(cvpipe, "submit", spec_file, *_kfp_args(ok), "--until", "transform", "--wait", "--poll", "0")
        assert result.exit_code == 0, result.output
        assert "finished kubeflow run" in result.stdout and "SUCCEEDED" in result.stdout
        assert "RUNNING" in result.stderr  # state changes are reported while waiting
    with FakeKfpServer(token=TOKEN, states=["RUNNING", "FAILED"]) as bad:
        result = _run(cvpipe, "submit", spec_file, *_kfp_args(bad), "--until", "transform", "--wait", "--poll", "0")
        assert result.exit_code == 1 and "FAILED" in result.stdout


def test_submit_vertex_with_the_settings_file(cvpipe: click.Group, vertex: FakeVertexPipelinesServer, spec_file: Path) -> None:
    root = f"gs://cli-root-{next(_buckets)}/pipeline-root"
    result = _run(
        cvpipe, "submit", spec_file, *_vertex_args(vertex), "--pipeline-root", root, "--label", "env=test", "--until", "transform", "--json"
    )
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)
    [create] = vertex.calls("POST", "/pipelineJobs")
    assert create.path == "/v1/projects/acme-ml/locations/europe-west4/pipelineJobs"  # project and region from the settings
    body = create.body
    assert body["serviceAccount"] == "cvpipe-pipelines@acme-ml.iam.gserviceaccount.com"
    assert body["runtimeConfig"]["gcsOutputDirectory"] == root  # the flag wins over the settings
    assert body["labels"] == {
        "team": "vision",
        "cost-center": "ml-platform",
        "env": "test",
        "cvpipe-pipeline": "shapes-detector",
        "cvpipe-task": "detection",
    }
    executors = body["pipelineSpec"]["deploymentSpec"]["executors"]
    assert executors["exec-transform"]["container"]["resources"]["cpuLimit"] == 16.0  # settings: transform on e2-standard-16
    assert run["run_id"] == create.query["pipelineJobId"] and run["state"] == "PENDING"
    assert body["network"] == "projects/123456789012/global/networks/ml-vpc"
    # the spec kept the default SQLite lineage file: the settings' MySQL store replaces it; its own image stays
    default = body["pipelineSpec"]["root"]["inputDefinitions"]["parameters"]["context"]["defaultValue"]
    assert default["runtime"]["metadata"]["url"] == "mysql://cvpipe@10.20.0.3:3306/mlmd"
    assert default["runtime"]["image"] == "europe-west4-docker.pkg.dev/acme-ml/cvpipe/cvpipe:0.1.0"
    assert yaml.safe_load(spec_file.read_text())["runtime"] == {"image": "europe-west4-docker.pkg.dev/acme-ml/cvpipe/cvpipe:0.1.0"}


def test_submit_vertex_needs_a_project(cvpipe: click.Group, vertex: FakeVertexPipelinesServer, spec_file: Path) -> None:
    result = _run(cvpipe, "submit", spec_file, "--target", "vertex", "--region", "europe-west4", "--api-endpoint", vertex.endpoint)
    assert result.exit_code == 1 and "Vertex AI needs a project" in result.stderr
    bad = _run(cvpipe, "submit", spec_file, *_vertex_args(vertex), "--label", "novalue")
    assert bad.exit_code == 2 and "KEY=VALUE" in bad.output


def test_runs_show_wait_list_kubeflow(cvpipe: click.Group, kfp: FakeKfpServer) -> None:
    ok = kfp.add_run("nightly-1")
    failed = kfp.add_run("nightly-2", state="FAILED")
    kfp.script(failed, ["FAILED"], error="step train: exit code 137")
    stuck = kfp.add_run("nightly-3", state="RUNNING")

    shown = _run(cvpipe, "runs", "show", ok, *_kfp_args(kfp))
    assert shown.exit_code == 0 and f"kubeflow run {ok} (nightly-1): SUCCEEDED" in shown.stdout
    as_json = json.loads(_run(cvpipe, "runs", "show", failed, *_kfp_args(kfp), "--json").stdout)
    assert as_json["state"] == "FAILED" and as_json["error"] == "step train: exit code 137"
    assert as_json["steps"] == []  # the server reports no task of this run

    kfp.script_tasks(failed, [("ingest", "SUCCEEDED", None), ("train", "FAILED", "exit code 137"), ("evaluate", "PENDING", None)])
    tasks = {t["display_name"]: t for t in kfp.runs[failed].body["run_details"]["task_details"]}
    with_steps = _run(cvpipe, "runs", "show", failed, *_kfp_args(kfp))
    started = {name: tasks[name]["start_time"].replace("T", " ").replace("Z", "") for name in ("ingest", "train")}
    assert with_steps.stdout.split("  steps:\n")[1].splitlines() == [
        f"    ingest    SUCCEEDED   {started['ingest']}  1 s",
        f"    train     FAILED      {started['train']}  1 s  error: exit code 137",
        "    evaluate  PENDING     -                    -",
    ]
    steps_json = json.loads(_run(cvpipe, "runs", "show", failed, *_kfp_args(kfp), "--json").stdout)["steps"]
    assert [(s["name"], s["state"], s["duration_s"], s["error"]) for s in steps_json] == [
        ("ingest", "SUCCEEDED", 1.0, None),
        ("train", "FAILED", 1.0, "exit code 137"),
        ("evaluate", "PENDING", None, None),
    ]

    assert _run(cvpipe, "runs", "wait", ok, *_kfp_args(kfp), "--poll", "0").exit_code == 0
    waited = _run(cvpipe, "runs", "wait", failed, *_kfp_args(kfp), "--poll", "0")
    assert waited.exit_code == 1 and "exit code 137" in waited.stdout
    timed_out = _run(cvpipe, "runs", "wait", stuck, *_kfp_args(kfp), "--timeout", "0", "--poll", "5")
    assert timed_out.exit_code == 2 and "still RUNNING" in timed_out.stderr

    listed = _run(cvpipe, "runs", "list", *_kfp_args(kfp), "--json")
    assert listed.exit_code == 0
    assert [r["name"] for r in json.loads(listed.stdout)] == ["nightly-3", "nightly-2", "nightly-1"]
    table = _run(cvpipe, "runs", "list", *_kfp_args(kfp), "--limit", "1")
    assert "nightly-3" in table.stdout and "nightly-1" not in table.stdout


def test_runs_show_wait_list_vertex(cvpipe: click.Group, vertex: FakeVertexPipelinesServer, spec_file: Path) -> None:
    root = f"gs://cli-root-{next(_buckets)}/pipeline-root"
    submitted = _run(
        cvpipe, "submit", spec_file, *_vertex_args(vertex), "--pipeline-root", root, "--job-id", "shapes-7", "--until", "transform"
    )
    assert submitted.exit_code == 0, submitted.output
    flags = ["--target", "vertex", "--project", "acme-ml", "--region", "europe-west4", "--api-endpoint", vertex.endpoint]
    shown = _run(cvpipe, "runs", "show", "shapes-7", *flags)
    assert shown.exit_code == 0 and "vertex run shapes-7 (shapes-detector): PENDING" in shown.stdout
    waited = _run(cvpipe, "runs", "wait", "shapes-7", *flags, "--poll", "0")
    assert waited.exit_code == 0 and "SUCCEEDED" in waited.stdout
    listed = json.loads(_run(cvpipe, "runs", "list", *_vertex_args(vertex), "--pipeline", "shapes-detector", "--json").stdout)
    assert [r["run_id"] for r in listed] == ["shapes-7"]
    assert vertex.calls("GET", "/pipelineJobs")[-1].query["filter"] == 'pipeline_name="shapes-detector"'
    missing = _run(cvpipe, "runs", "show", "ghost", *flags)
    assert missing.exit_code == 1 and "getting pipeline job ghost failed" in missing.stderr


def test_runs_list_stays_local_by_default(cvpipe: click.Group, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'mlmd.sqlite'}"
    store = LineageStore(url)
    src = store.put_artifact("RawDataset", "/data/a.json")
    store.record_execution(
        "ingest", pipeline="p", run_id="local-run-1", inputs={"source": src}, outputs={"m": NewArtifact("Manifest", "/m")}
    )
    local = _run(cvpipe, "runs", "list", "--metadata", url)
    assert local.exit_code == 0 and "local-run-1" in local.stdout and "ingest" in local.stdout
    assert _run(cvpipe, "runs", "list", "--metadata", url, "--target", "local").stdout == local.stdout
    missing_host = _run(cvpipe, "runs", "list", "--target", "kubeflow")
    assert missing_host.exit_code == 2 and "needs --host" in missing_host.output


def test_kubeflow_token_from_env_or_file_reaches_the_server_and_a_token_flag_is_warned_about(
    cvpipe: click.Group, kfp: FakeKfpServer, tmp_path: Path
) -> None:
    run_id = kfp.add_run("nightly-token")
    secret = tmp_path / "token"
    secret.write_text(TOKEN + "\n")  # a mounted secret usually ends with a newline
    by_file = _run(cvpipe, "runs", "show", run_id, "--target", "kubeflow", "--host", kfp.url, "--token-file", secret)
    assert by_file.exit_code == 0, by_file.output
    assert "visible to other users" not in by_file.stderr
    by_env = CliRunner(env={"CVPIPE_KFP_TOKEN": TOKEN}).invoke(
        cvpipe, ["runs", "show", run_id, "--target", "kubeflow", "--host", kfp.url], catch_exceptions=False
    )
    assert by_env.exit_code == 0 and "visible to other users" not in by_env.stderr
    by_flag = _run(cvpipe, "runs", "show", run_id, *_kfp_args(kfp))
    assert by_flag.exit_code == 0 and "--token on the command line is visible to other users" in by_flag.stderr
    assert TOKEN not in by_flag.stderr + by_flag.stdout
    assert kfp.requests and {r.authorization for r in kfp.requests} == {f"Bearer {TOKEN}"}
    wrong = _run(cvpipe, "runs", "show", run_id, "--target", "kubeflow", "--host", kfp.url, "--token", "nope")
    assert wrong.exit_code == 1 and "nope" not in wrong.stderr

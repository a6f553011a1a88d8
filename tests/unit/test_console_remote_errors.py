"""A remote target that cannot be reached is said so, never reported as a missing run.

The console is served over HTTP on 127.0.0.1 (uvicorn in a thread) for a spec
whose ``monitoring.retrain`` names Kubeflow, pointed either at a port that
refuses every connection (:func:`fakes.http.refusing_url`: bound, never
listened on, so no other process can take it meanwhile) or at the fake KFP API
server answering 500. A run page then answers 502 naming the target, its
endpoint and the reason, and says the run may still exist; the runs list still
shows the local runs with a notice for the target; a run a reachable server
does not know stays 404. ``cvpipe runs show|list`` print one ``error:`` line
and exit 1. The same holds for a spec whose ``monitoring.retrain`` names Vertex
AI, through the real ``google-cloud-aiplatform`` client against the refusing
port or the fake Vertex AI Pipelines server: its reads give up after
``read_timeout_s`` (10 s by default) instead of the library's two minutes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml
from fakes.ce_world import spec_data
from fakes.console_world import serve_console
from fakes.http import refusing_url
from fakes.kfp_server import FakeKfpServer
from fakes.vertex_pipelines_server import FakeVertexPipelinesServer

from components.core.lineage import LineageStore
from components.core.spec import PipelineSpec, parse_spec

REPO = Path(__file__).resolve().parents[2]
LOCAL_RUN = "shelf-local-20261205"


def _spec(tmp_path: Path, host: str) -> PipelineSpec:
    return _recorded(parse_spec(spec_data(tmp_path, retrain={"target": "kubeflow", "host": host})))


def _vertex_spec(tmp_path: Path, endpoint: str, **settings: object) -> PipelineSpec:
    """A spec retraining on Vertex AI at ``endpoint``, with a settings file of ``settings`` when given."""
    retrain: dict[str, object] = {"target": "vertex", "project": "acme-ml", "region": "europe-west4", "api_endpoint": endpoint}
    if settings:
        path = tmp_path / "vertex-settings.yaml"
        path.write_text(yaml.safe_dump(settings))
        retrain["settings"] = str(path)
    return _recorded(parse_spec(spec_data(tmp_path, retrain=retrain)))


def _recorded(spec: PipelineSpec) -> PipelineSpec:
    store = LineageStore(spec.runtime.metadata.url)
    store.record_execution("ingest", pipeline=spec.name, run_id=LOCAL_RUN, properties={"duration_s": 1.0})
    return spec


def _cli_error(argv: list[str], timeout: float, env: dict[str, str] | None = None) -> str:
    """Runs ``cvpipe *argv``, asserts it failed with exit 1, no traceback, nothing on stdout and one line on stderr, and returns that line.

    Python's warning lines on stderr do not count.
    """
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *argv], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )
    lines = [line for line in done.stderr.splitlines() if line.strip() and "Warning" not in line and "warnings.warn" not in line]
    assert done.returncode == 1, (argv, done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert len(lines) == 1, (argv, done.stderr)
    return lines[0]


def _text(html: str) -> str:
    import re

    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace("&#39;", "'")


def _from(html: str, element_id: str) -> str:
    """The text of a page from the element with this id to the end."""
    return _text(html.split(f'id="{element_id}"')[1])


def _notice(html: str) -> str:
    """The runs list's notice about a target it could not read."""
    return _text(html.split('id="remote-error"')[1].split("</p>")[0])


def test_unreachable_cluster_is_a_bad_gateway_not_a_missing_run(tmp_path: Path) -> None:
    with refusing_url() as url, serve_console(_spec(tmp_path, url)) as console:
        page = requests.get(f"{console}/runs/remote/kubeflow/3f9c-run", timeout=60)
        runs = requests.get(f"{console}/runs", timeout=60)
    assert page.status_code == 502, (page.status_code, page.text[:500])
    said = _from(page.text, "remote-unavailable")
    assert "kubeflow" in said and url in said and "connection refused" in said and "may still exist" in said
    assert "not found" not in page.text.lower()
    assert runs.status_code == 200
    assert LOCAL_RUN in runs.text.split("<h2>kubeflow runs</h2>")[0]  # the local runs are listed
    notice = _notice(runs.text)
    assert "kubeflow" in runs.text and url in notice and "connection refused" in notice


def test_a_server_error_is_a_bad_gateway_and_a_missing_run_stays_404(tmp_path: Path) -> None:
    with FakeKfpServer() as kfp:
        run_id, url = kfp.add_run("shelf-retrain-3", state="RUNNING"), kfp.url
        with serve_console(_spec(tmp_path, url)) as console:
            missing = requests.get(f"{console}/runs/remote/kubeflow/no-such-run", timeout=60)
            kfp.fail(500, "etcd: request timed out", path_contains="/runs")
            page = requests.get(f"{console}/runs/remote/kubeflow/{run_id}", timeout=60)
            runs = requests.get(f"{console}/runs", timeout=60)
        asked = kfp.calls("GET", f"/runs/{run_id}")
    assert missing.status_code == 404 and "no-such-run" in missing.text  # the cluster answered: it has no such run
    assert asked, "the console never asked the API server for the run"
    assert page.status_code == 502, (page.status_code, page.text[:500])
    said = _from(page.text, "remote-unavailable")
    assert url in said and "HTTP 500" in said and "etcd: request timed out" in said and "may still exist" in said
    assert runs.status_code == 200 and LOCAL_RUN in runs.text
    notice = _notice(runs.text)
    assert url in notice and "HTTP 500" in notice


def test_cli_says_in_one_line_which_target_cannot_be_reached() -> None:
    with refusing_url() as url:
        for argv in (["runs", "show", "3f9c-run"], ["runs", "list"]):
            line = _cli_error([*argv, "--target", "kubeflow", "--host", url], timeout=300)
            assert line.startswith("error: Kubeflow Pipelines") and url in line and "connection refused" in line, line


@pytest.mark.timeout(60)  # the client library alone retried for about 105 s per read
def test_unreachable_vertex_is_a_bad_gateway_in_seconds(tmp_path: Path) -> None:
    with refusing_url() as url, serve_console(_vertex_spec(tmp_path, url)) as console:  # the default read deadline
        page = requests.get(f"{console}/runs/remote/vertex/shelf-retrain-1", timeout=50)
        runs = requests.get(f"{console}/runs", timeout=50)
    assert page.status_code == 502, (page.status_code, page.text[:500])
    said = _from(page.text, "remote-unavailable")
    assert "vertex" in said and url in said and "connection refused" in said and "may still exist" in said
    assert "not found" not in page.text.lower()
    assert runs.status_code == 200 and LOCAL_RUN in runs.text
    notice = _notice(runs.text)
    assert url in notice and "connection refused" in notice


@pytest.mark.timeout(60)
def test_a_vertex_server_error_is_a_bad_gateway_and_a_missing_job_stays_404(tmp_path: Path) -> None:
    with FakeVertexPipelinesServer(token=None) as server:  # the console sends an http:// endpoint no credentials
        endpoint = server.endpoint
        with serve_console(_vertex_spec(tmp_path, endpoint, read_timeout_s=3)) as console:
            missing = requests.get(f"{console}/runs/remote/vertex/no-such-job", timeout=50)
            server.fail(500, "backend error", path_contains="/pipelineJobs")
            page = requests.get(f"{console}/runs/remote/vertex/shelf-retrain-1", timeout=50)
            runs = requests.get(f"{console}/runs", timeout=50)
        asked = server.calls("GET", "/pipelineJobs/shelf-retrain-1")
    assert missing.status_code == 404 and "no-such-job" in missing.text  # Vertex AI answered: it has no such job
    assert len(asked) > 1, "a 5xx is retried within the read deadline"
    assert page.status_code == 502, (page.status_code, page.text[:500])
    said = _from(page.text, "remote-unavailable")
    assert endpoint in said and "backend error" in said and "may still exist" in said
    assert runs.status_code == 200 and LOCAL_RUN in runs.text
    notice = _notice(runs.text)
    assert endpoint in notice and "backend error" in notice


@pytest.mark.timeout(150)  # two CLI processes, each one read under the default 10 s deadline
def test_cli_says_in_one_line_that_vertex_cannot_be_reached() -> None:
    with refusing_url() as url:
        where = ["--target", "vertex", "--project", "acme-ml", "--region", "europe-west4", "--api-endpoint", url]
        for argv in (["runs", "show", "shelf-retrain-1"], ["runs", "list"]):
            # PYTHONWARNINGS: the library's import-time warnings
            line = _cli_error([*argv, *where], timeout=70, env={**os.environ, "PYTHONWARNINGS": "ignore"})
            assert line.startswith("error: Vertex AI Pipelines") and url in line and "connection refused" in line, line


def test_vertex_no_answer_and_5xx_are_unavailable_but_its_answers_are_not() -> None:
    """What Vertex AI's client raises, classified (a real refused connection)."""
    from google.api_core import exceptions as g

    from pipelines.runners.vertex import _unavailable

    with refusing_url() as url:
        try:
            requests.get(url, timeout=30)
        except requests.ConnectionError as e:
            refused: BaseException = e
    assert _unavailable(refused) == ("connection refused", False)
    assert _unavailable(g.RetryError("Timeout of 120.0s exceeded", cause=refused)) == ("connection refused (gave up after retrying)", False)
    assert _unavailable(g.RetryError("Timeout of 120.0s exceeded", cause=None)) == ("no answer in time", True)
    reason, timed_out = _unavailable(g.InternalServerError("backend error")) or ("", True)
    assert "backend error" in reason and not timed_out
    assert _unavailable(g.NotFound("pipeline job x not found")) is None  # an answer: the job does not exist
    assert _unavailable(g.PermissionDenied("no access")) is None


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_are_a_403_that_says_so_not_a_missing_run(tmp_path: Path, status: int) -> None:
    """Kubeflow answering 401/403 (an expired or unauthorised token): the console says the credentials were refused."""
    with FakeKfpServer() as kfp:
        run_id, url = kfp.add_run("shelf-retrain-4", state="RUNNING"), kfp.url
        with serve_console(_spec(tmp_path, url)) as console:
            kfp.fail(status, "token expired", path_contains="/runs")
            page = requests.get(f"{console}/runs/remote/kubeflow/{run_id}", timeout=60)
            runs = requests.get(f"{console}/runs", timeout=60)
        asked = kfp.calls("GET", f"/runs/{run_id}")
    assert asked, "the console never asked the API server for the run"
    assert page.status_code == 403, (page.status_code, page.text[:500])
    said = _from(page.text, "remote-refused")
    assert "kubeflow" in said and url in said and f"HTTP {status}" in said and "token expired" in said and "may still exist" in said
    assert "not found" not in page.text.lower()
    assert runs.status_code == 200 and LOCAL_RUN in runs.text
    notice = _notice(runs.text)
    assert url in notice and "refused the console's credentials" in notice


@pytest.mark.timeout(60)
def test_vertex_refusing_the_credentials_is_a_403(tmp_path: Path) -> None:
    with FakeVertexPipelinesServer(token=None) as server:
        endpoint = server.endpoint
        with serve_console(_vertex_spec(tmp_path, endpoint, read_timeout_s=3)) as console:
            server.fail(403, "caller lacks aiplatform.pipelineJobs.get", path_contains="/pipelineJobs")
            page = requests.get(f"{console}/runs/remote/vertex/shelf-retrain-1", timeout=50)
        asked = server.calls("GET", "/pipelineJobs/shelf-retrain-1")
    assert len(asked) == 1, "a refusal is an answer: it is not retried"
    assert page.status_code == 403, (page.status_code, page.text[:500])
    said = _from(page.text, "remote-refused")
    assert "vertex" in said and endpoint in said and "aiplatform.pipelineJobs.get" in said and "may still exist" in said

"""Recurring runs: Kubeflow recurring runs and Vertex AI schedules through the real clients, and the embedded scheduler.

The cluster APIs are local HTTP servers on 127.0.0.1 (tests/fakes/schedule_servers.py)
spoken to by ``kfp.Client`` and ``google-cloud-aiplatform`` over REST. The
embedded scheduler runs the real continuous-evaluation pipeline with
kfp.local; here its model is missing from the registry, so the run fails
fast and the scheduler's bookkeeping of a failed run is what is checked
(a successful scheduled run is in tests/local/test_continuous_eval_local.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from fakes.schedule_servers import FakeKfpScheduleServer, FakeVertexScheduleServer

from components.core.errors import SpecError
from components.core.spec import load_spec
from pipelines.cli.schedule import schedule_cmd, scheduler_cmd
from pipelines.schedule import kfp_cron, schedule_kubeflow, schedule_vertex, vertex_cron

SPEC = Path(__file__).parents[1] / "compile" / "specs" / "monitored.yaml"


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    data = yaml.safe_load(SPEC.read_text())
    data["schedule"] = {"cron": "30 6 * * 1-5", "timezone": "Europe/Berlin"}
    data["runtime"] = {"root": str(tmp_path / "runs"), "metadata": {"url": f"sqlite:///{tmp_path / 'mlmd.sqlite'}"}}
    data["registry"] = {"root": str(tmp_path / "registry")}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_cron_forms() -> None:
    assert kfp_cron("*/15 * * * 1-5") == "0 */15 * * * 1-5"
    assert vertex_cron("0 6 * * *", "UTC") == "0 6 * * *"
    assert vertex_cron("0 6 * * *", "Europe/Berlin") == "TZ=Europe/Berlin 0 6 * * *"


def test_kubeflow_recurring_run_of_the_continuous_eval_pipeline(spec_file: Path) -> None:
    spec = load_spec(spec_file)
    with FakeKfpScheduleServer(token="t0k") as server:
        result = CliRunner().invoke(
            schedule_cmd, [str(spec_file), "--target", "kubeflow", "--host", server.url, "--token", "t0k", "--json"]
        )
        assert result.exit_code == 0, result.output
        first = json.loads(result.output[result.output.index("{") :])
        assert first["pipeline"] == "continuous-eval" and first["cron"] == "0 30 6 * * 1-5"
        assert any("time zone" in w for w in first["warnings"])
        [run] = server.recurring.values()
        assert run["recurring_run_id"] == first["schedule_id"] and run["status"] == "ENABLED"
        assert run["trigger"]["cron_schedule"]["cron"] == "0 30 6 * * 1-5"
        assert run["no_catchup"] is True and int(run["max_concurrency"]) == 1
        ref = run["pipeline_version_reference"]
        [pipeline] = [p for p in server.pipelines.values() if p["pipeline_id"] == ref["pipeline_id"]]
        assert pipeline["display_name"] == "shelf-detector-continuous-eval"
        version = next(v for v in server.versions[ref["pipeline_id"]] if v["pipeline_version_id"] == ref["pipeline_version_id"])
        assert set(version["pipeline_spec"]["root"]["dag"]["tasks"]) >= {"read-window", "drift", "alert", "trigger"}
        assert server.experiments[run["experiment_id"]]["display_name"] == spec.name
        assert {r.authorization for r in server.requests} == {"Bearer t0k"}
        # scheduling again replaces the recurring run instead of adding a second one
        again = schedule_kubeflow(spec, server.url, token="t0k")
        assert again.replaced == [first["schedule_id"]] and list(server.recurring) == [again.schedule_id]
        # the training pipeline can be scheduled too, under its own name
        training = schedule_kubeflow(spec, server.url, token="t0k", pipeline="training", cron="0 2 * * 0")
        assert training.name == "shelf-detector" and training.cron == "0 0 2 * * 0" and len(server.recurring) == 2


def test_vertex_schedule_of_the_continuous_eval_pipeline(spec_file: Path) -> None:
    spec = load_spec(spec_file)
    # through the CLI, without credentials: cvpipe sends anonymous ones to a plain-http endpoint
    with FakeVertexScheduleServer(token=None) as server:
        args = [str(spec_file), "--target", "vertex", "--project", "acme-ml", "--region", "europe-west4"]
        args += ["--api-endpoint", server.endpoint, "--pipeline-root", "gs://acme-ml/pipeline-root", "--service-account", "ce@acme-ml.iam"]
        result = CliRunner().invoke(schedule_cmd, args)
        assert result.exit_code == 0, result.output
        assert "scheduled continuous-eval pipeline on vertex" in result.output
        [sched] = server.schedules.values()
        assert sched["cron"] == "TZ=Europe/Berlin 30 6 * * 1-5" and sched["displayName"] == "shelf-detector-continuous-eval"
        assert int(sched["maxConcurrentRunCount"]) == 1
        job = sched["createPipelineJobRequest"]["pipelineJob"]
        assert job["pipelineSpec"]["pipelineInfo"]["name"] == "shelf-detector-continuous-eval"
        assert job["runtimeConfig"]["gcsOutputDirectory"] == "gs://acme-ml/pipeline-root"
        assert job["serviceAccount"] == "ce@acme-ml.iam" and job["labels"]["cvpipe-kind"] == "continuous-eval"
        again = schedule_vertex(spec, "acme-ml", "europe-west4", api_endpoint=server.endpoint, pipeline_root="gs://acme-ml/pipeline-root")
        assert again.replaced == [sched["name"]] and list(server.schedules) == [again.schedule_id]
        assert [r.method for r in server.calls(contains="/schedules")].count("DELETE") == 1


def test_schedule_needs_a_cron_and_a_monitoring_section(tmp_path: Path) -> None:
    plain = {"name": "plain", "task": "detection", "data": {"source": "a.json"}}
    (tmp_path / "plain.yaml").write_text(yaml.safe_dump(plain))
    with pytest.raises(SpecError, match="schedule"):
        schedule_kubeflow(load_spec(tmp_path / "plain.yaml"), "http://127.0.0.1:9")
    with pytest.raises(SpecError, match="monitoring"):
        schedule_kubeflow(load_spec(tmp_path / "plain.yaml"), "http://127.0.0.1:9", pipeline="continuous-eval", cron="0 * * * *")
    result = CliRunner().invoke(schedule_cmd, [str(tmp_path / "plain.yaml"), "--target", "kubeflow"])
    assert result.exit_code != 0 and "--host" in result.output


def test_embedded_scheduler_registers_runs_when_due_and_records_a_failed_run(spec_file: Path) -> None:
    runner = CliRunner()

    def tick(now: str) -> object:
        return runner.invoke(scheduler_cmd, [str(spec_file), "--once", "--now", now])

    first = tick("2026-11-23T05:00:00+00:00")  # Monday 06:00 in Berlin
    assert first.exit_code == 0, first.output
    assert "next run 2026-11-23T05:30:00+00:00" in first.output and "0 run(s)" in first.output
    state_file = Path(load_spec(spec_file).runtime.root) / "scheduler.json"
    entry = json.loads(state_file.read_text())["entries"]["shelf-detector:continuous-eval"]
    assert entry["last_fire"] == "2026-11-20T05:30:00+00:00"  # the Friday before: nothing is replayed
    assert "0 run(s)" in tick("2026-11-23T05:29:00+00:00").output
    due = tick("2026-11-23T05:31:00+00:00")  # the pipeline runs for real; its production model does not exist
    assert due.exit_code == 1 and "1 run(s), 1 failed" in due.output
    entry = json.loads(state_file.read_text())["entries"]["shelf-detector:continuous-eval"]
    assert entry["last_fire"] == "2026-11-23T05:30:00+00:00" and entry["last_status"] == "failed"
    assert "shelf-detector-continuous-eval" in entry["last_error"] and "failed after no step" in entry["last_error"]
    assert "0 run(s)" in tick("2026-11-23T06:10:00+00:00").output

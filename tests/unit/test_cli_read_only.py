"""Read-only commands never create a metadata store; they say where they looked and how to point at the right one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _cvpipe(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k != "CVPIPE_METADATA"}
    full.update({"PYTHONPATH": str(REPO), **(env or {})})
    return subprocess.run([sys.executable, "-m", "pipelines.cli", *args], cwd=cwd, capture_output=True, text=True, env=full, timeout=300)


@pytest.mark.parametrize("command", [["runs", "list"], ["lineage", "demo:1"]])
def test_a_read_only_command_in_another_folder_creates_nothing(tmp_path: Path, command: list[str]) -> None:
    r = _cvpipe(tmp_path, *command)
    assert r.returncode == 1, r.stdout + r.stderr
    looked = tmp_path / "runs" / "mlmd.sqlite"
    assert f"no ML Metadata store at {looked}" in r.stderr
    assert "--spec" in r.stderr and "--metadata" in r.stderr and "CVPIPE_METADATA" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "runs").exists()  # nothing created


def test_models_list_with_a_spec_whose_store_does_not_exist_creates_nothing(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: demo\ntask: detection\ndata: {source: data/annotations.json}\n")
    r = _cvpipe(tmp_path, "models", "list", "--spec", str(spec))
    assert r.returncode == 1 and f"no ML Metadata store at {tmp_path / 'runs' / 'mlmd.sqlite'}" in r.stderr
    assert not (tmp_path / "runs").exists()


def test_the_environment_variable_points_at_the_store(tmp_path: Path) -> None:
    from components.core.lineage import LineageStore

    db = tmp_path / "elsewhere" / "mlmd.sqlite"
    LineageStore(f"sqlite:///{db}")  # a store that exists (a run created it)
    r = _cvpipe(tmp_path, "runs", "list", env={"CVPIPE_METADATA": f"sqlite:///{db}"})
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "runs").exists()


def test_runs_list_shows_status_start_duration_and_outcome(tmp_path: Path) -> None:
    import json

    from components.core.lineage import LineageStore, NewArtifact

    db = tmp_path / "mlmd.sqlite"
    store = LineageStore(f"sqlite:///{db}")
    steps = ["ingest", "validate", "transform", "train", "evaluate"]

    def run(run_id: str, done: list[str], push: dict | None = None, failed: str | None = None) -> None:
        for c in done:
            store.record_execution(c, pipeline="demo", run_id=run_id, properties={"duration_s": 1.5})
        if failed:
            store.record_execution(failed, pipeline="demo", run_id=run_id, properties={"duration_s": 0.5}, succeeded=False)
        if push is not None:
            out = {"pushed": NewArtifact("PushedModel", str(tmp_path / run_id / "push"), push)}
            store.record_execution("push", pipeline="demo", run_id=run_id, outputs=out, properties={"duration_s": 0.2})

    run("demo-pushed", steps, {"pushed": True, "ref": "demo:1", "version": 1})
    reasons = [
        "default blessing (the spec states no change threshold): not worse than the champion on map demo:1",
        "map = 0.1 vs baseline 0.5: needs >= baseline - 0 (= 0.5)",
        "not blessed: 1 of 1 checked thresholds failed",
    ]
    run("demo-refused", steps, {"pushed": False, "reasons": json.dumps(reasons)})
    run("demo-failed", steps[:2], failed="transform")
    run("demo-running", steps[:3])
    r = _cvpipe(tmp_path, "runs", "list", "--metadata", f"sqlite:///{db}")
    assert r.returncode == 0, r.stderr
    text = r.stdout
    for header in ("status", "started", "duration", "outcome"):
        assert header in text
    row = {
        name: next(line for line in text.splitlines() if name in line)
        for name in ("demo-pushed", "demo-refused", "demo-failed", "demo-running")
    }
    assert "succeeded" in row["demo-pushed"] and "pushed demo:1" in row["demo-pushed"]
    assert "succeeded" in row["demo-refused"] and "not pushed: map = 0.1" in row["demo-refused"]
    assert "failed" in row["demo-failed"] and "transform" in row["demo-failed"]
    assert "incomplete" in row["demo-running"] and "3 steps" in row["demo-running"]
    started = next(line for line in text.splitlines() if "demo-pushed" in line)
    assert any(ch.isdigit() for ch in started.split("demo-pushed")[1])
    as_json = _cvpipe(tmp_path, "runs", "list", "--metadata", f"sqlite:///{db}", "--json")
    runs = {x["run_id"]: x for x in json.loads(as_json.stdout)}
    assert runs["demo-pushed"]["outcome"] == "pushed demo:1" and runs["demo-pushed"]["status"] == "succeeded"
    assert runs["demo-pushed"]["duration_s"] >= 0 and runs["demo-pushed"]["started"].endswith("Z")
    assert runs["demo-running"]["status"] == "incomplete"

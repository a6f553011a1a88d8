"""kfp.local runs of the continuous-evaluation pipeline, started by the embedded scheduler and by ``cvpipe ce run``.

The world (tests/fakes/ce_world.py) has a blessed tiny model in production and
its full training lineage; production traffic is darker than training. The
first run (the scheduler's) finds the drift and alerts but has no labels to
retrain with; after simulated people label its batch, the second run imports
the labels and its trigger starts a real local retraining run, whose ingest
step reads the trigger's dataset: lineage then links the retraining to the
alerts and the labelling batch. The retraining process is ended (by its
process-group id) once its ingest is recorded; training itself is tested elsewhere.

The world and the scheduler's run are one module-scoped fixture; each test
finds the runs it asserts on by id (the scheduler's from its state file, the
labelled rerun's as the one it added), so the tests pass in any order and alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from fakes.ce_world import build_world

from components.alert.dispatcher import AlertLog
from components.core.spec import dump_spec, load_spec
from components.trigger.state import TriggerState, pid_alive
from pipelines.cli.schedule import ce_group, scheduler_cmd

pytestmark = pytest.mark.local


@pytest.fixture(scope="module")
def scheduled(tmp_path_factory):
    world = build_world(tmp_path_factory.mktemp("ce-local"))
    prod = world.images("prod", 60, seed=11, brightness=0.45)
    world.log_traffic(prod)
    spec_path = world.root / "spec.yaml"
    spec_path.write_text(dump_spec(world.spec))
    runner = CliRunner()
    registered = runner.invoke(scheduler_cmd, [str(spec_path), "--once", "--now", "2026-11-22T09:30:00+00:00"])
    assert registered.exit_code == 0, registered.output
    ran = runner.invoke(scheduler_cmd, [str(spec_path), "--once", "--now", "2026-11-22T10:00:30+00:00"])
    assert ran.exit_code == 0, ran.output
    state = json.loads((Path(world.spec.runtime.root) / "scheduler.json").read_text())["entries"]["shelf:continuous-eval"]
    # the incident log as the scheduler's run left it: the labelled rerun adds follow-ups to the same incidents
    logged = list(log_of(world).alerts())
    return world, prod, spec_path, ran, state, logged


def log_of(world) -> AlertLog:
    return AlertLog(world.spec.monitoring.alert_config(world.spec.runtime.root).log_path)


def _runs(world, suffix: str) -> list[str]:
    return [r for r in world.store.run_ids(world.spec.name) if r.startswith(f"{world.spec.name}-{suffix}")]


def test_the_scheduler_runs_the_pipeline_which_alerts_on_drift(scheduled) -> None:
    world, _, _, ran, state, logged = scheduled
    assert "1 run(s), 0 failed" in ran.output
    assert state["last_status"] == "succeeded" and state["last_fire"] == "2026-11-22T10:00:00+00:00"
    run_id = state["last_run_id"]
    assert run_id in _runs(world, "continuous-eval")
    steps = {e["component"]: e for e in world.store.executions(run_id=run_id)}
    assert {"read_window", "sample", "live_metrics", "drift", "alert", "trigger"} <= set(steps)
    assert all(e["state"] == "COMPLETE" for e in steps.values())
    assert steps["drift"]["properties"]["status"] == "drift"
    assert steps["trigger"]["properties"]["triggered"] is False
    assert "no labelled image" in steps["trigger"]["properties"]["reason"]
    incidents = {a.dedup_key: a for _, a in logged}  # the latest entry of each incident as of the scheduler's run
    assert "cvpipe/shelf/input_drift" in incidents  # one incident for the brightness shift, its checks as findings
    dark = incidents["cvpipe/shelf/input_drift"]
    assert "brightness" in {f["feature"] for f in dark.findings} and dark.version and dark.incident_id
    assert dark.action.startswith("no retraining started: no labelled image")
    batches = [a for a in world.store.artifacts_of_run(run_id) if a.kind == "LabellingBatch"]
    assert len(batches) == 1 and batches[0].properties["random_items"] == 24


def test_labels_then_one_local_retraining_linked_to_alerts_and_batch(scheduled) -> None:
    from components.sample.core import LabellingBatch
    from components.sample.simulate import simulate_labels

    world, prod, spec_path, _, state, _ = scheduled
    first = state["last_run_id"]
    before = set(_runs(world, "continuous-eval"))
    [batch_ref] = [a for a in world.store.artifacts_of_run(first) if a.kind == "LabellingBatch"]
    batch = LabellingBatch.load(batch_ref.uri)
    labels = Path(world.spec.monitoring.labels)
    labels.mkdir(parents=True, exist_ok=True)
    (labels / f"{batch.batch_id}.json").write_text(json.dumps(simulate_labels(batch, prod)))
    state_path = Path(world.spec.runtime.root) / world.spec.name / "retrain" / "state.json"
    pid = None
    try:
        result = CliRunner().invoke(ce_group, ["run", str(spec_path)])
        assert result.exit_code == 0, result.output
        second = [r for r in _runs(world, "continuous-eval") if r not in before]
        assert len(second) == 1
        steps = {e["component"]: e for e in world.store.executions(run_id=second[0])}
        assert steps["trigger"]["properties"]["triggered"] is True, steps["trigger"]["properties"]["reason"]
        assert steps["live_metrics"]["properties"]["labelled"] == len(batch.items)
        [retrain] = TriggerState(state_path).load().runs
        pid = retrain.pid
        assert retrain.target == "local" and pid is not None and retrain.state == "RUNNING"
        dataset = world.store.get(retrain.dataset_artifact_id)
        # the retraining warm-starts from the production model (monitoring.retrain.warm_start, the default)
        derived = load_spec(state_path.parent / retrain.trigger_id / "spec.yaml")
        assert derived.train.parent == f"{world.spec.model_name}:1", derived.train.parent
        assert derived.data.source == dataset.uri
        assert dataset.kind == "RawDataset" and dataset.properties["added"] == len(batch.items)
        # the retraining run's ingest reads the trigger's dataset: wait for it to be recorded
        ingest = None
        for _ in range(150):
            ingest = next((a for a in world.store.downstream_ids(dataset.id)), None)
            if ingest is not None or not pid_alive(pid, retrain.trigger_id):
                break
            time.sleep(2)
        assert ingest is not None, Path(retrain.details["url"]).read_text()[-3000:]  # the LocalRunner run's log
        manifest = world.store.get(ingest)
        graph = world.store.upstream(manifest.id)
        assert graph.root.execution is not None and graph.root.execution[1] == "ingest"
        assert not str(graph.root.execution[2]["run_id"]).startswith("shelf-continuous-eval")  # the retraining run
        source = dict(graph.root.inputs)["source"]
        assert source.artifact.id == dataset.id and source.execution is not None and source.execution[1] == "trigger"
        causes = {path: node.artifact.kind for path, node in source.inputs}
        assert causes["alert"] == "Alert" and causes["labelling_batch"] == "LabellingBatch" and causes["model"] == "PushedModel"
        assert json.loads(dataset.properties["alerts"]) and "cvpipe/shelf/input_drift" in json.loads(dataset.properties["alerts"])
        # on-call heard that a retraining started, on the same incident
        updates = [a for _, a in log_of(world).alerts() if a.update and a.dedup_key == "cvpipe/shelf/input_drift"]
        assert updates and updates[-1].update.startswith(f"retraining {retrain.trigger_id} started")
    finally:
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)

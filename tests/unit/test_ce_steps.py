"""The continuous-evaluation steps in-process, on a real world: registry, lineage, Feast log, Label Studio round trip.

One world (tests/fakes/ce_world.py: real ingest/validate/transform/evaluate/push
of a tiny real SavedModel) serves the module. Production traffic is darker
than training (brightness x0.5) and logged by the real batch predictor; people
are stood in for by ``simulate_labels`` (true labels in Label Studio's export
format). Retraining targets the fake Kubeflow Pipelines server (real
``kfp.Client`` over HTTP on 127.0.0.1), so nothing trains here.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from fakes.ce_world import build_world
from fakes.kfp_server import FakeKfpServer

from components.alert.dispatcher import AlertLog
from components.core.clock import utc_now
from components.core.spec import PipelineSpec
from components.core.step import StepContext
from components.trigger.state import TriggerState


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(tmp_path_factory.mktemp("ce"))


def _ctx(world, run_id: str, component: str, spec: PipelineSpec | None = None) -> StepContext:
    return StepContext(spec=spec or world.spec, run_id=run_id, component=component, _store=world.store)


@pytest.fixture(scope="module")
def evaluated(world):
    """Dark traffic logged, one evaluation run step by step: window, sample, labels, import, live metrics, drift, alert."""
    from components.alert.step import run as alert_step
    from components.drift.step import run as drift_step
    from components.live_metrics.core import run as live_step
    from components.monitor.labels import run as import_step
    from components.monitor.window import run as window_step
    from components.sample.core import LabellingBatch
    from components.sample.core import run as sample_step
    from components.sample.simulate import simulate_labels

    prod = world.images("prod", 60, seed=11, brightness=0.45)
    world.log_traffic(prod)
    run = "ce-1"
    out = world.root / run
    mon = world.spec.monitoring
    win = window_step(_ctx(world, run, "read_window"), out / "window")
    smp = sample_step(
        _ctx(world, run, "sample"),
        world.log_dir,
        "shelf@champion",
        out / "batch",
        window_end=win.window.end,
        window=win.window.end - win.window.start,
    )
    export = simulate_labels(LabellingBatch.load(out / "batch"), prod)
    labels_dir = Path(mon.labels)
    labels_dir.mkdir(parents=True, exist_ok=True)
    (labels_dir / "export-1.json").write_text(json.dumps(export))
    imp = import_step(_ctx(world, run, "import_labels"), out / "labelled")
    live = live_step(_ctx(world, run, "live_metrics"), out / "window", out / "live")
    drift = drift_step(_ctx(world, run, "drift"), out / "window", out / "drift", plots=False)
    alerts = alert_step(_ctx(world, run, "alert"), [out / "drift", out / "live"], out / "alerts")
    # the incident log as this evaluation left it: later tests (the retraining trigger) add follow-ups to it
    logged = list(AlertLog(world.spec.monitoring.alert_config(world.spec.runtime.root).log_path).alerts())
    return {
        "prod": prod,
        "window": win,
        "batch": smp.batch,
        "import": imp,
        "live": live,
        "drift": drift,
        "alerts": alerts,
        "logged": logged,
        "out": out,
    }


def test_window_holds_the_production_versions_predictions(world, evaluated) -> None:
    win = evaluated["window"]
    assert len(win.rows) == 60 and set(win.rows["model_version"]) == {1}
    assert win.window.end - win.window.start == timedelta(hours=24)
    recorded = win.artifacts["window"]
    assert recorded.kind == "PredictionLog" and recorded.properties["rows"] == 60
    upstream = {a.kind for a in world.store.upstream(recorded.id).artifacts()}
    assert "PushedModel" in upstream


def test_labels_are_imported_once_and_only_the_random_share_is_measured(world, evaluated) -> None:
    from components.monitor.labels import run as import_step

    batch, imp, live = evaluated["batch"], evaluated["import"], evaluated["live"]
    assert imp.manifest is not None and len(imp.manifest.images) == len(batch.items)
    assert len(imp.imported_now) == 1 and imp.batches
    report = live.report
    assert report.labelled == len(batch.items)
    assert report.strata["random"] == batch.counts()["random"] == 24
    measured = {m.metric: m for m in report.metrics}
    assert set(measured) == {"precision", "recall", "map_50"}
    assert all(m.images == 24 for m in measured.values())
    assert measured["precision"].method == "wilson_clustered" and measured["map_50"].method == "bootstrap"
    assert measured["precision"].blessed == pytest.approx(world.artifacts["pushed"].version.metrics["precision"])
    again = import_step(_ctx(world, "ce-1b", "import_labels"), evaluated["out"] / "labelled-again")
    assert again.imported_now == [] and again.manifest is not None and len(again.manifest.images) == len(batch.items)
    lineage = world.store.upstream(live.artifacts["evaluation"].id)
    kinds = {path: node.artifact.kind for path, node in lineage.root.inputs}
    assert kinds["labelling_batch"] == "LabellingBatch" and kinds["blessed_evaluation"] == "ModelEvaluation"


def test_dark_traffic_drifts_and_the_alert_is_logged_once(world, evaluated) -> None:
    from components.alert.step import run as alert_step
    from components.monitor.production import blessed_model

    report = evaluated["drift"].report
    assert report.status == "drift"
    assert "brightness" in report.drifted_features()
    assert report.checks and all(c.n_reference == 48 for c in report.checks if c.feature == "brightness")
    result = evaluated["alerts"]
    firing = [a for a in result.alerts if a.status == "firing"]
    # one incident per cause, however many checks fired; the checks are its findings
    assert len(result.findings) > len(firing) >= 1 and len({a.cause for a in firing}) == len(firing)
    assert firing and all(a.labels["kind"] == "drift" for a in firing)
    inputs = next(a for a in firing if a.cause == "input_drift")
    assert inputs.dedup_key == "cvpipe/shelf/input_drift" and inputs.version == str(blessed_model(world.spec, world.store).version.version)
    assert {f["feature"] for f in inputs.findings} >= {"brightness"} and inputs.runbook_url.endswith("#input-drift")
    brightness = next(f for f in inputs.findings if f["feature"] == "brightness")
    assert brightness["change"].startswith("mean ") and "down" in brightness["change"]  # dark traffic
    logged = [a.dedup_key for _, a in evaluated["logged"] if a.cause != "alias"]  # the push announced champion's move
    assert sorted(logged) == sorted(a.dedup_key for a in result.dispatch.notified)
    assert all(a.incident_id for a in result.dispatch.notified)
    # the same evaluation again: still firing, not sent again (whatever other tests have logged since)
    log = AlertLog(world.spec.monitoring.alert_config(world.spec.runtime.root).log_path)
    before = len(list(log.alerts()))
    again = alert_step(_ctx(world, "ce-2", "alert"), [evaluated["out"] / "drift", evaluated["out"] / "live"], evaluated["out"] / "alerts2")
    assert again.dispatch.notified == []
    assert sorted(a.dedup_key for a in again.dispatch.suppressed if a.status == "firing") == sorted(a.dedup_key for a in firing)
    assert len(list(AlertLog(log.path).alerts())) == before
    written = json.loads((evaluated["out"] / "alerts2" / "alerts.json").read_text())
    assert all(e["artifact_id"] for e in written["alerts"] if e["alert"]["status"] == "firing")
    assert {e["notified"] for e in written["alerts"]} == {False}


def test_statistics_only_reference_still_sees_the_dark_traffic(world, evaluated) -> None:
    import numpy as np

    from components.drift import DriftConfig, check_drift
    from components.drift.reference import drift_inputs, reference_from_statistics
    from components.monitor.production import upstream_of_kind
    from components.validate.stats import load_statistics

    [stats] = upstream_of_kind(world.store, world.artifacts["model"].id, "ExampleStatistics")
    frame = reference_from_statistics(load_statistics(stats.uri)["images"])
    assert len(frame) == 48 and set(frame.columns) == {"brightness", "contrast", "width", "height"}
    sampled = evaluated["drift"].reference_path
    import pandas as pd

    exact = pd.read_parquet(sampled)  # the same 48 training images through the prediction-log code
    assert float(np.median(frame["brightness"])) == pytest.approx(float(np.median(exact["brightness"])), abs=0.01)
    assert set(frame["width"]) == {48.0} and set(frame["height"]) == {40.0}
    inputs = drift_inputs(frame)
    assert inputs.predictions is None and inputs.embeddings is None
    report = check_drift(inputs, drift_inputs(evaluated["window"].rows), DriftConfig(min_samples=20))
    assert "brightness" in report.drifted_features()


def test_a_storm_of_alerts_starts_one_retraining_linked_to_alert_and_batch(world, evaluated) -> None:
    from components.ingest.core import read_source
    from components.trigger.core import run as trigger

    data = world.spec.model_dump(mode="json")
    with FakeKfpServer(states=["PENDING", "RUNNING"]) as kfp:
        data["monitoring"]["retrain"] = {"target": "kubeflow", "host": kfp.url, "cooldown": "24h"}
        spec = PipelineSpec.model_validate(data)
        out = evaluated["out"]
        now = utc_now()
        first = trigger(_ctx(world, "ce-1", "trigger", spec), out / "alerts", out / "trigger-1", labelled_dir=out / "labelled", now=now)
        assert first.triggered, first.reason
        assert len(first.alerts) >= 2  # several drift checks fired: one retraining
        assert first.run is not None and first.run.target == "kubeflow" and first.run.run_id in kfp.runs
        # the derived spec trains on the training data plus the newly labelled images
        derived = yaml_spec(first.spec_path)
        assert derived.data.source == first.artifacts["dataset"].uri
        merged = read_source(derived.data, "detection", None)
        assert len(merged.manifest) == 48 + len(evaluated["batch"].items)
        submitted = kfp.calls("POST", "/runs")
        assert len(submitted) == 1
        # lineage: trigger <- alerts, labelling batch, labelled manifest, production model
        graph = world.store.upstream(first.artifacts["dataset"].id)
        assert graph.root.execution is not None and graph.root.execution[1] == "trigger"
        inputs = [(path, node.artifact.kind) for path, node in graph.root.inputs]
        assert ("labelling_batch", "LabellingBatch") in inputs and ("model", "PushedModel") in inputs
        assert sum(1 for path, kind in inputs if path == "alert" and kind == "Alert") == len(first.alerts)
        # a second evaluation while the run is in flight starts nothing
        second = trigger(_ctx(world, "ce-2", "trigger", spec), out / "alerts", out / "trigger-2", labelled_dir=out / "labelled", now=now)
        assert not second.triggered and "still in flight" in second.reason
        # the run finishes; the alerts still cool down
        kfp.script(first.run.run_id, ["SUCCEEDED"])
        third = trigger(
            _ctx(world, "ce-3", "trigger", spec),
            out / "alerts",
            out / "trigger-3",
            labelled_dir=out / "labelled",
            now=now + timedelta(hours=1),
        )
        assert not third.triggered and "less than 24h ago" in third.reason
        state = TriggerState(Path(spec.runtime.root) / spec.name / "retrain" / "state.json").load()
        assert [r.state for r in state.runs] == ["SUCCEEDED"]
        assert world.store.get(first.artifacts["dataset"].id).properties["retrain_state"] == "SUCCEEDED"
        assert len(kfp.calls("POST", "/runs")) == 1


def test_retraining_on_vertex_ai_is_one_pipeline_job_until_it_finishes(world, evaluated, monkeypatch, tmp_path) -> None:
    from fakes.vertex_pipelines_server import FakeVertexPipelinesServer

    from components.trigger.core import run as trigger

    data = world.spec.model_dump(mode="json")
    data["name"] = "shelf-vx"  # its own trigger state; same registry model
    data["registry"]["model_name"] = "shelf"
    # the trigger gives no credentials: cvpipe sends anonymous ones to a plain-http endpoint
    with FakeVertexPipelinesServer(states=["PENDING", "RUNNING"], token=None) as vertex:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", vertex.endpoint)
        data["monitoring"]["retrain"] = {
            "target": "vertex",
            "project": "acme-ml",
            "region": "europe-west4",
            "pipeline_root": "gs://cvpipe-retrain-a/root",
            "api_endpoint": vertex.endpoint,
            "service_account": "retrain@acme-ml.iam.gserviceaccount.com",
        }
        spec = PipelineSpec.model_validate(data)
        out = evaluated["out"]
        now = utc_now()
        first = trigger(_ctx(world, "vx-1", "trigger", spec), out / "alerts", tmp_path / "t1", labelled_dir=out / "labelled", now=now)
        assert first.triggered and first.run is not None and first.run.target == "vertex"
        [job] = vertex.jobs.values()
        assert job.body["name"].endswith(first.run.run_id) and job.body["serviceAccount"].startswith("retrain@")
        params = job.body["runtimeConfig"].get("parameterValues", {})
        default = job.body["pipelineSpec"]["root"]["inputDefinitions"]["parameters"]["data"]["defaultValue"]
        assert params.get("data", default)["source"] == first.artifacts["dataset"].uri
        blocked = trigger(
            _ctx(world, "vx-2", "trigger", spec),
            out / "alerts",
            tmp_path / "t2",
            labelled_dir=out / "labelled",
            now=now + timedelta(days=2),
        )
        assert not blocked.triggered and "still in flight" in blocked.reason
        vertex.script(first.run.run_id, ["FAILED"], error="out of quota")
        after = trigger(
            _ctx(world, "vx-3", "trigger", spec),
            out / "alerts",
            tmp_path / "t3",
            labelled_dir=out / "labelled",
            now=now + timedelta(hours=2),
        )
        # the failed job no longer blocks (its state is now in lineage); what holds now is the cooldown
        assert not after.triggered and "less than 24h ago" in after.reason
        assert world.store.get(first.artifacts["dataset"].id).properties["retrain_state"] == "FAILED"
        assert len(vertex.jobs) == 1


def yaml_spec(path) -> PipelineSpec:
    from components.core.spec import load_spec

    return load_spec(path)

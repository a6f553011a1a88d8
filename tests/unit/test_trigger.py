"""The retraining trigger's parts: the monitoring spec, its state file, the merged dataset, the retraining process's report."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from unit.predict_testdata import make_images

from components.alert.model import Alert
from components.core.errors import SpecError
from components.core.labelmap import LabelMap
from components.core.lineage import LineageStore
from components.core.spec import DataSpec, load_spec, parse_duration, parse_spec
from components.ingest.core import read_source
from components.trigger import RetrainRun, TriggerState, alert_kind, merge_datasets
from components.trigger.retrain import finish
from components.trigger.state import pid_alive

LABELS = LabelMap.from_names(["circle", "square", "star"])
T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def _spec(**monitoring):
    return {"name": "shelf", "task": "detection", "data": {"source": "data/annotations.json"}, "monitoring": monitoring}


def test_monitoring_section_defaults_paths_and_problems(tmp_path: Path) -> None:
    assert parse_spec({"name": "x", "task": "detection", "data": {"source": "a.json"}}).monitoring is None
    spec = parse_spec(_spec())
    mon = spec.monitoring
    assert mon is not None and mon.window_delta == timedelta(hours=24) and mon.retrain.on == ["drift", "degradation"]
    assert mon.drift_config().min_samples == 50 and mon.alert_config("/r").log == "/r/alerts/alerts.jsonl"
    with pytest.raises(SpecError) as err:
        parse_spec(
            _spec(
                window="soon",
                drift={"min_samples": 1},
                alerts={"sinks": [{"type": "pagerduty", "routing_key": "secret"}]},
                retrain={"target": "vertex"},
                live_metrics=[{"metric": "precision", "max_drop": 2}],
            )
        )
    paths = dict(err.value.problems)
    assert "not a duration" in paths["monitoring.window"]
    assert "min_samples" in paths["monitoring.drift"]
    assert "routing_key_env" in paths["monitoring.alerts"]
    assert "project and region" in paths["monitoring.retrain"]
    assert paths["monitoring.live_metrics.0.max_drop"].startswith("must be <= 1")
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(_spec(prediction_log="feast", labels="exports")))
    loaded = load_spec(tmp_path / "spec.yaml")
    assert loaded.monitoring is not None and loaded.monitoring.prediction_log == str(tmp_path / "feast")
    assert loaded.monitoring.labels == str(tmp_path / "exports")
    assert parse_duration("1d2h30m") == timedelta(days=1, hours=2, minutes=30)


def test_alert_kinds() -> None:
    drift = Alert(name="FeatureDrift", summary="s", dedup_key="cvpipe/m/drift/ks/brightness")
    live = Alert(name="LiveMetricDegraded", summary="s", labels={"kind": "degradation"})
    other = Alert(name="DiskFull", summary="s")
    assert [alert_kind(a) for a in (drift, live, other)] == ["drift", "degradation", None]


def test_state_cooldown_in_flight_and_lock(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    with TriggerState(path).locked() as st:
        st.keys["k"] = {"last_trigger_at": T0.isoformat(), "trigger_id": "t1"}
        st.runs.append(RetrainRun(trigger_id="t1", target="kubeflow", started_at=T0.isoformat(), run_id="r1"))
    st = TriggerState(path).load()
    assert st.cooling("k", T0 + timedelta(hours=23), 24 * 3600) and not st.cooling("k", T0 + timedelta(hours=25), 24 * 3600)
    assert not st.cooling("other", T0, 24 * 3600)
    assert st.in_flight() is not None  # nobody can tell: a RUNNING run keeps blocking
    assert st.in_flight(lambda r: "RUNNING").trigger_id == "t1"
    assert st.in_flight(lambda r: "SUCCEEDED") is None and st.runs[0].state == "SUCCEEDED"


def test_pid_check_recognises_the_retraining_process() -> None:
    code = "import time; print('ready', flush=True); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code, "trigger-abc"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        assert pid_alive(proc.pid, "trigger-abc") and not pid_alive(proc.pid, "trigger-xyz")
    finally:
        proc.terminate()
        proc.wait()
    assert not pid_alive(proc.pid, "trigger-abc")


def test_merged_dataset_reads_back_through_ingest(tmp_path: Path) -> None:
    base = make_images(tmp_path / "train", 10, LABELS, seed=1)
    labelled = make_images(tmp_path / "prod", 6, LABELS, seed=2, brightness=0.5)
    # a production image that is also in the training data gets its newer human label
    dup = base.images[0].model_copy(deep=True)
    dup.path = str(base.image_path(base.images[0]))
    dup.objects = dup.objects[:1]
    dup.objects[0].class_id = 3
    labelled.images.append(dup)
    merged = merge_datasets(base, labelled, tmp_path / "merged")
    assert (merged.images, merged.base_images, merged.added, merged.relabelled) == (16, 10, 6, 1)
    result = read_source(DataSpec(source=str(merged.annotations)), "detection", None)
    assert len(result.manifest) == 16 and len(result.quarantine) == 0
    assert result.label_map.names == ["circle", "square", "star"]
    by_sha = {r.sha256: r for r in result.manifest.images}
    assert [o.class_id for o in by_sha[dup.sha256].objects] == [3]
    assert sum(len(r.objects) for r in result.manifest.images) == sum(len(r.objects) for r in base.images[1:]) + sum(
        len(r.objects) for r in labelled.images
    )
    # a new class in the labels is appended after the existing ids
    extra = make_images(tmp_path / "extra", 2, LabelMap.from_names(["triangle"]), seed=3)
    grown = merge_datasets(base, extra, tmp_path / "merged2")
    cats = json.loads(grown.annotations.read_text())["categories"]
    assert [(c["id"], c["name"]) for c in cats] == [(1, "circle"), (2, "square"), (3, "star"), (4, "triangle")]


def test_retraining_process_reports_to_state_and_lineage(tmp_path: Path) -> None:
    store = LineageStore(f"sqlite:///{tmp_path / 'mlmd.sqlite'}")
    art = store.put_artifact("RawDataset", str(tmp_path / "data.json"), {"retrain_state": "RUNNING"})
    with TriggerState(tmp_path / "state.json").locked() as st:
        st.runs.append(RetrainRun(trigger_id="t1", target="local", started_at=T0.isoformat(), pid=1, dataset_artifact_id=art.id))
    run = finish(tmp_path / "state.json", "t1", "FAILED", run_id="r9", error="ingest failed", store=store, artifact_id=art.id)
    assert run is not None and run.state == "FAILED" and run.run_id == "r9" and run.finished_at
    assert TriggerState(tmp_path / "state.json").load().runs[0].error == "ingest failed"
    props = store.get(art.id).properties
    assert props["retrain_state"] == "FAILED" and props["retrain_run_id"] == "r9"

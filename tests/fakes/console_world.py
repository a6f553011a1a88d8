"""A store for the console's tests: two model versions (a fork), an incident that started the retraining, its lineage.

Built with the project's own steps on top of :func:`fakes.ce_world.build_world`
(real ingest, validate, transform, evaluate and push of a tiny real model):

1. drift findings go through the real alert step, which records the
   ``Alert`` artifact and notifies the incident into the spec's incident log
   (with the console link, ``monitoring.alerts.console_url``); production
   traffic goes through the real batch predictor into the prediction log,
   and the real window, sample and label-import steps make a labelling batch
   and import its (simulated) labels;
2. a ``trigger`` execution records the retraining's dataset (a ``RawDataset``)
   made from the alert and the labelling batch, as the retraining trigger does;
3. the retraining run ingests that dataset and transforms it (real steps),
   a second tiny model is recorded as warm-started from version 1, and the
   real evaluate and push steps make it version 2 (it takes ``champion``);
4. the incident gets its follow-up through the dispatcher, as the trigger's
   follow-up sends it;
5. two drift reports (the real checks, the second window brighter), as two
   continuous-evaluation runs record them;
6. one more label map version holds a class named ``<script>...`` (text
   that must be shown as text), and a quarantined item says the same.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from services.processes import free_port
from unit.predict_testdata import make_tiny_model

from components.core.lineage import LineageStore, NewArtifact
from components.core.spec import PipelineSpec, parse_spec
from components.core.step import StepContext
from fakes.ce_world import LABELS, build_world, spec_data

__all__ = ["EVIL", "ConsoleWorld", "build_console_world", "serve_console"]

EVIL = "<script>window.__pwned=1</script>"
"""A class name and quarantine reason that a page must show as text."""


@dataclass
class ConsoleWorld:
    """What :func:`build_console_world` made.

    Attributes:
        root: its directory.
        spec_path: the spec file (``cvpipe ui --spec``).
        spec: the spec.
        incident_id: the incident that started the retraining.
        console_url: the console base URL the incident links to.
        alert_id: the incident's ``Alert`` artifact.
        batch_id: the labelling batch's artifact (its labels imported).
        v1_model: version 1's ``Model`` artifact id.
        v2_model: version 2's ``Model`` artifact id.
    """

    root: Path
    spec_path: Path
    spec: PipelineSpec
    incident_id: str
    console_url: str
    alert_id: int
    batch_id: int
    v1_model: int
    v2_model: int


LABEL_STUDIO_URL = "http://labelstudio.example:8080"
"""Where the world's labelling batch is recorded as sent (nothing is contacted there)."""


def build_console_world(root: Path, console_url: str, metadata_url: str | None = None) -> ConsoleWorld:
    """Builds the store (about 40 s: validation's TFDV statistics are most of it).

    Args:
        root: the directory (created).
        console_url: the console base the incident log links to.
        metadata_url: the ML Metadata store (default: SQLite under ``root``; a ``mysql://`` URL
            takes its password from ``$CVPIPE_MLMD_PASSWORD``, as a deployment gives it).

    Returns:
        The world.
    """
    from components.alert.dispatcher import AlertDispatcher
    from components.alert.files import write_alert_file
    from components.alert.model import Alert, TimeWindow
    from components.alert.step import run as alert_step
    from components.core.clock import utc_now
    from components.evaluate.core import run as evaluate
    from components.ingest.core import run as ingest
    from components.push.core import run as push
    from components.transform.core import run as transform

    data = spec_data(root, alerts={"console_url": console_url})
    if metadata_url is not None:
        data["runtime"]["metadata"] = {"url": metadata_url}
    # the retrained tiny model may score below the champion: allow it, so it is blessed against its baseline
    data["evaluate"]["thresholds"].append({"metric": "map", "change": {"direction": "higher_is_better", "absolute": 1.0}})
    world = build_world(root, spec=data)
    spec_path = root / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(data))
    spec = parse_spec(data)
    store: LineageStore = world.store

    # 1. drift findings -> the real alert step: an Alert artifact and an incident in the log
    now = utc_now()
    finding = Alert(
        name="InputDrift",
        severity="warning",
        summary="brightness drifted",
        model=spec.model_name,
        version="1",
        alias="champion",
        metric="psi/brightness",
        value=7.1,
        threshold=0.2,
        labels={"check": "psi", "feature": "brightness"},
        window=TimeWindow(start=now.replace(hour=0, minute=0), end=now),
        findings=[
            {
                "check": "psi",
                "feature": "brightness",
                "change": "mean 0.42 -> 0.21 (-51%)",
                "statistic": "psi",
                "value": 7.1,
                "threshold": 0.2,
            }
        ],
    )
    ce_run = "shelf-ce-1"
    ce_dir = root / "runs" / spec.name / ce_run

    def ctx(component: str, run_id: str) -> StepContext:
        return StepContext(spec=spec, run_id=run_id, component=component, _store=store)

    write_alert_file(ce_dir / "drift", [finding], "drift")
    alerted = alert_step(ctx("alert", ce_run), [ce_dir / "drift"], ce_dir / "alert", notify=False)
    [(key, alert_artifact)] = alerted.recorded.items()

    # production traffic through the real batch predictor, a window and a labelling batch (real steps), labels imported
    from components.monitor.labels import run as import_step
    from components.monitor.window import run as window_step
    from components.sample.core import LabellingBatch
    from components.sample.core import run as sample_step
    from components.sample.simulate import simulate_labels

    prod = world.images("prod", 24, seed=11, brightness=0.6)
    world.log_traffic(prod)
    win = window_step(ctx("read_window", ce_run), ce_dir / "window")
    sampled = sample_step(
        ctx("sample", ce_run),
        world.log_dir,
        f"{spec.model_name}@champion",
        ce_dir / "batch",
        window_end=win.window.end,
        window=win.window.end - win.window.start,
    )
    # sent to Label Studio and annotated there, as `cvpipe label push/pull --spec` records it
    from components.sample.queue import find_batch, mark_annotated, mark_sent

    sent = mark_sent(store, find_batch(store, ce_dir / "batch"), LABEL_STUDIO_URL, 7, len(sampled.batch.items))
    assert mark_annotated(store, LABEL_STUDIO_URL, 7, len(sampled.batch.items)) is not None, sent
    labels_dir = Path(spec.monitoring.labels)  # type: ignore[union-attr, arg-type]
    labels_dir.mkdir(parents=True, exist_ok=True)
    (labels_dir / "export-1.json").write_text(json.dumps(simulate_labels(LabellingBatch.load(ce_dir / "batch"), prod)))
    import_step(ctx("import_labels", ce_run), ce_dir / "labelled")

    # 2. the trigger's record: the retraining's dataset, made from the alert and the labelling batch
    annotations = str((root / "data" / "annotations.json").resolve())
    store.record_execution(
        "trigger",
        pipeline=spec.name,
        run_id=ce_run,
        inputs={"alerts": [alert_artifact], "labelling_batch": sampled.artifacts["batch"]},
        outputs={"dataset": NewArtifact("RawDataset", annotations, {"format": "coco", "pipeline": spec.name, "trigger_id": "t1"})},
        properties={"triggered": True, "trigger_id": "t1"},
    )
    from components.alert.step import notify_incidents

    notify_incidents(ctx("trigger", ce_run), ce_dir / "alert", {key: "retraining t1 started (local run shelf-train-2)"})

    # 3. the retraining run: real ingest and transform of that dataset, a model warm-started from version 1
    run_id = "shelf-train-2"
    out = root / "runs" / spec.name / run_id
    ingest(ctx("ingest", run_id), out / "manifest", out / "label_map", out / "quarantine", {})
    transform(ctx("transform", run_id), out / "manifest", out / "label_map", out / "examples", out / "transform_quarantine", {})
    examples = store.find_by_uri(str(out / "examples"), "Examples")
    model_dir = make_tiny_model(out / "model", "detection", LABELS, seed=1, model_name=spec.name)
    v1_model = world.artifacts["model"]
    trained = store.record_execution(
        "train",
        pipeline=spec.name,
        run_id=run_id,
        inputs={"examples": examples, "parent_model": v1_model},
        outputs={"model": NewArtifact("Model", str(model_dir), {"model_name": spec.name, "pipeline": spec.name, "run_id": run_id})},
    )
    ev = evaluate(ctx("evaluate", run_id), model_dir, out / "examples", out / "evaluation", out / "blessing", out / "report.html")
    assert ev.blessing.blessed, ev.blessing.reasons
    push(ctx("push", run_id), model_dir, out / "blessing", out / "pushed", {})

    # 4. the follow-up the trigger sends when the retraining ended
    dispatcher = AlertDispatcher(spec.monitoring.alert_config(spec.runtime.root))  # type: ignore[union-attr]
    incident = dispatcher.find(key)
    dispatcher.dispatch(
        [incident.alert.model_copy(update={"update": "retraining t1 (local run shelf-train-2) succeeded: shelf pushed as version 2"})]
    )

    # 5. two continuous-evaluation windows' drift reports (real checks and report files), the second brighter
    import numpy as np

    from components.drift import DriftInputs, check_drift, write_drift_report

    rng = np.random.default_rng(0)
    reference = DriftInputs(predictions={"circle": 40, "square": 40, "star": 40}, features={"brightness": rng.normal(0.4, 0.1, 400)})
    previous = None
    for n, (shift, mix) in enumerate(((0.0, {"circle": 40, "square": 41, "star": 39}), (0.2, {"circle": 90, "square": 20, "star": 10}))):
        current = DriftInputs(predictions=mix, features={"brightness": rng.normal(0.4 + shift, 0.1, 300)})
        report = check_drift(reference, current, previous=previous, model=spec.model_name)
        previous = report
        run = f"shelf-ce-drift-{n + 1}"
        files = write_drift_report(report, root / "runs" / spec.name / run / "drift", plots=False)
        store.record_execution(
            "drift",
            pipeline=spec.name,
            run_id=run,
            outputs={
                "report": NewArtifact(
                    "DriftReport", str(files.json.parent), {"status": report.status, "model_name": spec.model_name, "pipeline": spec.name}
                )
            },
        )

    # 6. text that must stay text: a class name and a quarantine reason
    classes: dict[str, Any] = {str(k): v for k, v in LABELS.classes.items()}
    classes[str(len(classes) + 1)] = EVIL
    store.put_artifact("LabelMap", str(root / "evil_label_map"), {"version": 2, "classes": json.dumps(classes), "pipeline": spec.name})
    qdir = root / "runs" / spec.name / run_id / "evil_quarantine"
    qdir.mkdir(parents=True)
    (qdir / "quarantine.json").write_text(
        json.dumps(
            {
                "stage": "ingest",
                "total": 1,
                "items": [{"file": "x.png", "kind": "unknown_class", "reason": f"class {EVIL} is not in the label map", "stage": "ingest"}],
            }
        )
    )
    store.put_artifact("QuarantineReport", str(qdir), {"stage": "ingest", "items": 1})
    return ConsoleWorld(
        root=root,
        spec_path=spec_path,
        spec=spec,
        incident_id=incident.incident_id,
        console_url=console_url,
        alert_id=alert_artifact.id,
        batch_id=sampled.artifacts["batch"].id,
        v1_model=v1_model.id,
        v2_model=trained["model"].id,
    )


@contextmanager
def serve_console(spec: PipelineSpec) -> Iterator[str]:
    """The console over the spec's store (no registry, no spec file), served on 127.0.0.1 in a thread: its base URL."""
    import uvicorn

    from pipelines.console.app import create_app
    from pipelines.console.data import ConsoleData

    data = ConsoleData(LineageStore(spec.runtime.metadata.url), None, spec, None)
    server = uvicorn.Server(uvicorn.Config(create_app(data), host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(600):  # readiness: the server sets `started` once it listens
            if server.started or not thread.is_alive():
                break
            thread.join(0.1)
        assert server.started, "the console did not start"
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(30)

"""The continuous-evaluation demo: shifted production traffic -> labels -> drift -> one alert -> one retraining.

:func:`run_ce_demo` runs after the training demo (``cvpipe demo``) has pushed
``demo-detector@champion``. In the same directory it

1. adds a ``monitoring`` section to ``spec.yaml`` and renders the Feast
   prediction log (``runs/prediction_log``);
2. generates a held-back production set that is *shifted*: half as bright
   (exposure x0.5) and with a new class mix (mostly circles, few stars), and
   sends it as production traffic to ``cvpipe serve demo-detector@champion``
   (a real server process on 127.0.0.1), which logs every prediction;
3. runs the continuous-evaluation pipeline (kfp.local): the window is read,
   a labelling batch is sampled, drift is detected (brightness, contrast,
   class mix, embeddings) and grouped into one incident per cause (input,
   prediction-mix, embedding drift), notified with the model version, what
   changed in words and the runbook section; with no labels yet, the trigger
   has nothing to add and does not retrain, and each incident says so;
4. stands in for people: :func:`cvpipe.monitoring.simulate_labels`
   answers the batch with the production set's true labels, as a Label Studio
   export in ``labels/``;
5. runs the pipeline again: the labels are imported, live metrics are measured
   on the uniformly sampled share, the incidents still fire (no repeat page
   within the cooldown), and the trigger starts exactly one retraining run on
   the training data plus the labelled images: each incident gets an update
   with the retraining's id; the demo waits for the run, whose end is another
   update (pushed as version N, which alias moved), and the push announces
   the alias move.

Nothing is downloaded; everything stays under the demo directory.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cvpipe import CvpipeError, RegistryError

__all__ = ["CE_MONITORING", "SHIFT", "CeDemoResult", "TrafficResult", "run_ce_demo", "serve_traffic"]

CE_MONITORING: dict[str, Any] = {
    "window": "24h",
    "model_alias": "champion",
    "prediction_log": "runs/prediction_log",
    "labels": "labels",
    "reference_samples": 120,
    "drift": {"min_samples": 30},
    "min_labelled": 20,
    "sampling": {"per_class": 4, "uncertain": 6, "random_share": 0.6, "max_items": 60},
    # each incident links its page in the console that `cvpipe ui --spec demo/spec.yaml` serves
    "alerts": {"log": "alerts/alerts.jsonl", "cooldown_s": 3600, "console_url": "http://127.0.0.1:8050"},
    "retrain": {"target": "local", "wait": True, "cooldown": "24h"},
}
"""The demo spec's ``monitoring`` section (paths relative to the demo directory)."""

SHIFT: dict[str, Any] = {
    "num_images": 120,
    "seed": 7,
    "brightness": 0.5,
    "class_weights": {"circle": 6.0, "square": 1.0, "triangle": 1.0, "star": 0.2},
}
"""The held-back production set: half as bright, mostly circles."""


@dataclass
class CeDemoResult:
    """What the demo did.

    Attributes:
        spec_path: the spec with its monitoring section.
        predictions: predictions logged.
        runs: the two continuous-evaluation run summaries.
        export: the Label Studio export written for the first batch.
        trigger: the second run's trigger decision (``trigger.json``).
        alerts_logged: notifications in the incident log after both runs.
        retraining: the retraining run as the trigger state records it.
        incidents: the incidents of the shifted set (one per cause), as the log knows them.
    """

    spec_path: Path
    predictions: int = 0
    runs: list[Any] = field(default_factory=list)
    export: Path | None = None
    trigger: dict[str, Any] = field(default_factory=dict)
    alerts_logged: int = 0
    retraining: dict[str, Any] | None = None
    incidents: list[Any] = field(default_factory=list)


def _write_spec(directory: Path) -> Path:
    path = directory / "spec.yaml"
    if not path.is_file():
        raise CvpipeError(f"{path} does not exist: run `cvpipe demo --dir {directory}` first (it trains and pushes the model)")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["monitoring"] = CE_MONITORING
    data.setdefault("schedule", {"cron": "0 * * * *"})
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _step_dir(summary: Any, kind: str) -> Path | None:
    art = summary.artifact(kind)
    return Path(art.uri) if art is not None else None


@dataclass
class TrafficResult:
    """What :func:`serve_traffic` sent.

    Attributes:
        url: where the server listened.
        sent: images sent.
        answered: 2xx answers.
        p50_ms: median latency.
        exit_code: the server's exit status after SIGTERM.
    """

    url: str
    sent: int
    answered: int
    p50_ms: float
    exit_code: int


def serve_traffic(
    spec_path: Path, model_ref: str, images: list[Path], clients: int = 8, timeout_s: float = 600, log_file: Path | None = None
) -> TrafficResult:
    """Starts ``cvpipe serve`` as a process, posts each image to ``/v1/predict``, then stops it with SIGTERM.

    The server logs every answered prediction (its write-ahead log is rolled into the
    prediction log when it drains), and keeps the image bytes it received.

    Args:
        spec_path: the spec (registry, metadata store, ``monitoring.prediction_log``, ``serving``).
        model_ref: ``name@alias``.
        images: image files to send, one request each.
        clients: concurrent clients.
        timeout_s: how long the server may take to start.
        log_file: where the server's log (one access line per request) goes (default: this process's stderr).

    Returns:
        What was sent and answered.

    Raises:
        CvpipeError: the server did not start or exited with an error.
    """
    import re
    import signal
    import statistics
    import subprocess
    import sys
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    import requests

    cmd = [sys.executable, "-m", "pipelines.cli", "serve", model_ref, "--spec", str(spec_path), "--port", "0"]
    log_path = Path(log_file) if log_file is not None else None
    err = open(log_path, "ab") if log_path is not None else None  # noqa: SIM115 - the child writes it
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
    if err is not None:
        err.close()
    found: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            m = re.search(r"ready on (http://\S+)", line)
            if m:
                found.append(m.group(1))
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        if not ready.wait(timeout_s) or not found:
            raise CvpipeError(f"cvpipe serve {model_ref} did not start (exit status {proc.poll()})")
        url = found[0]

        def post(path: Path) -> float | None:
            start = time.perf_counter()
            r = requests.post(
                f"{url}/v1/predict", data=path.read_bytes(), headers={"Content-Type": "application/octet-stream"}, timeout=120
            )
            return time.perf_counter() - start if r.status_code == 200 else None

        with ThreadPoolExecutor(clients) as pool:
            latencies = list(pool.map(post, images))
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout_s)
    ok = [t for t in latencies if t is not None]
    if code not in (0, -signal.SIGTERM):
        raise CvpipeError(f"cvpipe serve {model_ref} exited with status {code}")
    return TrafficResult(url, len(images), len(ok), statistics.median(ok) * 1000 if ok else 0.0, code)


def run_ce_demo(directory: Path, echo: Callable[[str], Any] = print) -> CeDemoResult:
    """Runs the continuous-evaluation demo (after the training demo).

    Args:
        directory: the training demo's directory (``spec.yaml``, ``runs/``).
        echo: where to print.

    Returns:
        What it did.

    Raises:
        CvpipeError: the training demo has not run, or pushed no model.
    """
    from cvpipe import DataSpec, LineageStore, get_registry, init_feature_repo, load_spec, run_local
    from cvpipe.data import SynthConfig, read_source
    from cvpipe.data import generate_dataset as generate
    from cvpipe.monitoring import (
        CAUSES,
        AlertDispatcher,
        AlertLog,
        LabellingBatch,
        TriggerState,
        incident_text,
        simulate_labels,
    )

    from .render import render_summary

    directory = directory.resolve()
    spec_path = _write_spec(directory)
    spec = load_spec(spec_path)
    assert spec.monitoring is not None
    store = LineageStore.for_spec(spec.runtime.metadata, base_dir=spec.runtime.root)
    try:
        champion = get_registry(spec.registry, store).resolve(f"{spec.model_name}@{spec.monitoring.model_alias}")
    except RegistryError as e:
        raise CvpipeError(f"no model in production ({e}); the training demo must bless and push one first") from None
    result = CeDemoResult(spec_path=spec_path)
    echo(f"== continuous evaluation of {champion.ref} ({spec_path})")

    log_dir = spec.monitoring.log_dir(spec.runtime.root)
    if not (log_dir / "feature_store.yaml").is_file():
        init_feature_repo(log_dir)
    prod_dir = directory / "production"
    if not (prod_dir / "annotations.json").is_file():
        echo(
            f"generating {SHIFT['num_images']} held-back production images (brightness x{SHIFT['brightness']}, mostly circles) in {prod_dir}"
        )
        generate(SynthConfig(task="detection", image_size=(160, 160), **SHIFT), prod_dir)
    truth = read_source(DataSpec(source=str(prod_dir / "annotations.json")), "detection", None).manifest
    truth.save(prod_dir / "manifest.json")
    server_log = Path(spec.runtime.root) / "serve.log"
    server_log.parent.mkdir(parents=True, exist_ok=True)
    sent = serve_traffic(
        spec_path, f"{spec.model_name}@{spec.monitoring.model_alias}", [truth.image_path(r) for r in truth.images], log_file=server_log
    )
    result.predictions = sent.answered
    echo(
        f"served {sent.answered} of {sent.sent} production images over HTTP ({sent.url}/v1/predict, p50 {sent.p50_ms:.0f} ms) "
        f"with {champion.ref}; the server logged them to {log_dir} (its access log: {server_log})"
    )

    echo("== continuous evaluation, run 1: no labels yet")
    first = run_local(spec, pipeline="continuous-eval")
    result.runs.append(first)
    echo(render_summary(first))
    batch_dir = _step_dir(first, "LabellingBatch")
    if batch_dir is None:
        raise CvpipeError(f"run {first.run_id} drew no labelling batch")
    batch = LabellingBatch.load(batch_dir)
    export = simulate_labels(batch, truth)
    labels_dir = Path(spec.monitoring.labels or directory / "labels")
    labels_dir.mkdir(parents=True, exist_ok=True)
    result.export = labels_dir / f"{batch.batch_id}.json"
    result.export.write_text(json.dumps(export), encoding="utf-8")
    echo(f"people (simulated) labelled batch {batch.batch_id}: {len(export)} tasks -> {result.export}")

    echo("== continuous evaluation, run 2: labels imported; the incidents start one retraining (waiting for it)")
    second = run_local(spec, pipeline="continuous-eval")
    result.runs.append(second)
    echo(render_summary(second))
    decision = next((a for a in reversed(second.artifacts) if a.kind == "RawDataset" and a.properties.get("trigger_id")), None)
    trigger_dir = second.run_dir / "trigger"
    found = sorted(trigger_dir.rglob("trigger.json")) if trigger_dir.is_dir() else []
    if found:
        result.trigger = json.loads(found[-1].read_text(encoding="utf-8"))
    echo(f"trigger: {result.trigger.get('reason', 'no decision recorded')}")

    config = spec.monitoring.alert_config(spec.runtime.root)
    log = AlertLog(config.log_path)
    result.alerts_logged = len(log.alerts())
    dispatcher = AlertDispatcher(config)
    result.incidents = [i for i in dispatcher.incidents() if i.alert.cause in CAUSES]
    echo(
        f"incident log {log.path}: {len(result.incidents)} incident(s), one per cause, {result.alerts_logged} notifications "
        "(first page, retraining started, retraining ended; repeats within the cooldown are suppressed)"
    )
    for inc in result.incidents:
        echo(f"-- as on-call sees it (cvpipe alerts show {inc.incident_id} --spec {spec_path}):")
        echo(incident_text(inc.alert.model_copy(update={"status": inc.status})))
    for inc in dispatcher.incidents():
        if inc.alert.cause == "alias":
            echo(f"-- announced: {inc.alert.update}")
    state = TriggerState(Path(spec.runtime.root) / spec.name / "retrain" / "state.json").load()
    if state.runs:
        run = state.runs[-1]
        result.retraining = run.to_dict()
        echo(f"retraining {run.trigger_id}: {run.state} (run {run.run_id}); {len(state.runs)} retraining run(s) started in all")
    if decision is not None:
        echo(f"what started the retraining (the full graph: cvpipe lineage {decision.id} --spec {spec_path}):")
        echo(store.upstream(decision.id, max_depth=1).render())
        downstream = [store.get(i) for i in store.downstream_ids(decision.id)]
        model = next((a for a in reversed(downstream) if a.kind == "PushedModel"), None) or next(
            (a for a in reversed(downstream) if a.kind == "Model"), None
        )
        if model is not None:
            version = model.properties.get("version")
            echo(
                f"the retrained model {model.kind} #{model.id}{f' (version {version})' if version else ''} descends from it "
                f"(cvpipe lineage {model.id} --spec {spec_path})"
            )
    echo(f"== the console: cvpipe ui --spec {spec_path}   (then open http://127.0.0.1:8050/)")
    for inc in result.incidents[:1]:
        echo(f"   the demo's incident: {inc.alert.console_url or f'http://127.0.0.1:8050/incidents/{inc.incident_id}'}")
    return result

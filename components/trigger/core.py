"""The retraining trigger: a drift or degradation alert starts the training pipeline on the data plus the new labels.

:func:`run` reads the alerts the alert step evaluated and decides, under the
trigger state's lock (:mod:`.state`):

1. the alerts that qualify: firing, of a kind ``monitoring.retrain.on`` names
   (``drift``: the drift checks; ``degradation``: live metrics);
2. none is acted on while a retraining of the same model is still in flight
   (state file, checked against the process / Kubeflow / Vertex AI run and the
   dataset artifact's ``retrain_state`` in ML Metadata);
3. an alert key that started a retraining less than ``retrain.cooldown`` ago
   does not start another; one trigger covers every qualifying alert of the
   evaluation, so a storm of alerts starts one retraining;
4. there must be newly labelled images to add.

When it triggers, it merges the production model's training data with the
labelled images into a COCO dataset (:mod:`.dataset`), writes a derived spec
whose ``data.source`` is that dataset and whose ``train.parent`` is the
production version (``monitoring.retrain.warm_start``, on by default: the new
model warm-starts from the one it would replace), records one ``trigger`` execution
(inputs: the alerts, the labelling batch, the labelled manifest, the
production model and its training manifest; output: the dataset as a
``RawDataset``) and starts the run with the :class:`~components.core.runs.Runner`
it was handed, else the one the spec names (:mod:`.launch`). The retraining run's
ingest reads that very ``RawDataset`` URI, so in lineage the new model's
dataset is the trigger's output: model -> ... -> ingest -> RawDataset <-
trigger <- Alert, LabellingBatch.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from components.alert.files import ALERTS_FILE
from components.alert.model import Alert
from components.core.clock import utc_now
from components.core.errors import LineageError, PipelineRunError
from components.core.io import atomic_write_json, atomic_write_text, read_json
from components.core.lineage import ArtifactRef, LineageStore, NewArtifact
from components.core.log import get_logger
from components.core.manifest import Manifest
from components.core.quarantine import QuarantineReport
from components.core.runs import Runner, runner_for
from components.core.spec import PipelineSpec, RetrainSpec, dump_spec, parse_duration
from components.core.step import StepContext
from components.monitor.production import blessed_model, training_manifest

from .dataset import MergedDataset, merge_datasets
from .followup import announce_end, read_push
from .launch import launch, run_name, run_state
from .retrain import finish
from .state import TERMINAL, RetrainRun, TriggerState

__all__ = [
    "ALERTS_FILE",
    "TRIGGER_FILE",
    "TriggerResult",
    "alert_kind",
    "load_alerts",
    "retrain_dir",
    "run",
]

TRIGGER_FILE = "trigger.json"
"""The trigger's decision, in its output directory."""


@dataclass
class TriggerResult:
    """What the trigger decided and did.

    Attributes:
        triggered: whether a retraining was started.
        reason: why (or why not), in one sentence.
        trigger_id: the trigger's id when it triggered.
        alerts: the qualifying firing alerts.
        run: the retraining run started, or the one in flight that blocked this trigger.
        dataset: the merged dataset written.
        spec_path: the derived spec.
        artifacts: recorded output artifacts (``dataset``).
    """

    triggered: bool
    reason: str
    trigger_id: str | None = None
    alerts: list[Alert] = field(default_factory=list)
    run: RetrainRun | None = None
    dataset: MergedDataset | None = None
    spec_path: Path | None = None
    artifacts: dict[str, ArtifactRef] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "triggered": self.triggered,
            "reason": self.reason,
            "trigger_id": self.trigger_id,
            "alerts": [a.dedup_key for a in self.alerts],
            "run": self.run.to_dict() if self.run else None,
            "dataset": None if self.dataset is None else {**vars(self.dataset), "annotations": str(self.dataset.annotations)},
            "spec_path": str(self.spec_path) if self.spec_path else None,
            "artifacts": {k: v.id for k, v in self.artifacts.items()},
        }


def alert_kind(alert: Alert) -> str | None:
    """``degradation`` for a live-metric alert, ``drift`` for a drift check's, else None.

    Args:
        alert: the alert.

    Returns:
        The kind.
    """
    if alert.labels.get("kind") == "degradation" or alert.name == "LiveMetricDegraded":
        return "degradation"
    if alert.labels.get("kind") == "drift" or "/drift/" in alert.dedup_key or alert.name.endswith("Drift"):
        return "drift"
    return None


def load_alerts(path: str | os.PathLike[str]) -> list[tuple[Alert, int | None]]:
    """The alerts of the alert step's ``alerts.json``, with their MLMD artifact ids.

    Args:
        path: the file, or the directory holding it.

    Returns:
        ``(alert, artifact id or None)`` pairs.
    """
    p = Path(path)
    if p.is_dir():
        p = p / ALERTS_FILE
    if not p.is_file():
        return []
    doc = read_json(p)
    return [(Alert.model_validate(e["alert"]), e.get("artifact_id")) for e in doc.get("alerts", [])]


def retrain_dir(spec: PipelineSpec) -> Path:
    """Where a spec's trigger keeps its state, derived specs and merged datasets.

    Args:
        spec: the (path-resolved) spec.

    Returns:
        ``<runtime.root>/<name>/retrain``.
    """
    return Path(spec.runtime.root) / spec.name / "retrain"


def _check(run: RetrainRun, runner: Callable[[], Runner], store: LineageStore) -> str | None:
    """The run's state: the dataset artifact's ``retrain_state`` when terminal, else what the runner reports.

    A terminal state found on the target is written back to the artifact, so
    every reader of the metadata store sees the run finished, and the run's
    error and run folder go into its record (the follow-up reads them).
    """
    recorded = None
    if run.dataset_artifact_id is not None:
        try:
            recorded = store.get(run.dataset_artifact_id).properties.get("retrain_state")
        except LineageError:
            recorded = None
        if recorded in TERMINAL:
            return str(recorded)
    got = run_state(run, runner())
    if got is None:
        return None
    if got.state not in TERMINAL:
        return "RUNNING"
    run.error = run.error or got.error
    run.details.update(_finished_details(store, got.details))
    if run.dataset_artifact_id is not None and got.state != recorded:
        store.update_properties(run.dataset_artifact_id, {"retrain_state": got.state})
    return got.state


def _derived_spec(
    spec: PipelineSpec, annotations: Path, trigger_id: str, alerts: Sequence[Alert], parent: str | None = None
) -> PipelineSpec:
    """The retraining's spec: the merged dataset as its source and, when given, ``parent`` to warm-start from."""
    data = spec.model_dump(mode="json")
    data["data"].update({"source": str(annotations), "format": "coco", "images": None})
    if parent is not None:
        data["train"]["parent"] = parent
    causes = ", ".join(sorted({a.name for a in alerts}))
    data["description"] = f"retraining started by trigger {trigger_id} ({causes})"
    return PipelineSpec.model_validate(data)


def _new_images(base: Manifest, labelled: Manifest | None) -> int:
    if labelled is None:
        return 0
    known = {r.sha256 for r in base.images}
    return len({r.sha256 for r in labelled.images} - known)


def _launch(ctx: StepContext, runner: Runner, derived: PipelineSpec, run: RetrainRun) -> bool:
    """Starts the run; fills ``run`` (run id, pid of a local run, or FAILED with the error) and the artifact's ``retrain_state``."""
    assert run.dataset_artifact_id is not None
    try:
        run.run_id, run.pid, run.details = launch(runner, derived, run_name(ctx.spec, run.trigger_id))
    except Exception as e:  # a refused submission must not lose the trigger's record
        run.state, run.error = "FAILED", str(e)
        ctx.store.update_properties(run.dataset_artifact_id, {"retrain_state": "FAILED", "retrain_error": str(e)})
        return False
    ctx.store.update_properties(run.dataset_artifact_id, {"retrain_state": "RUNNING", "retrain_run_id": run.run_id or ""})
    return True


def _finished_details(store: LineageStore, details: dict[str, str]) -> dict[str, object]:
    """What a finished local retraining produced: its run folder and the pushed model, from lineage."""
    if not details.get("kfp_run_id"):
        return {}
    out: dict[str, object] = {"kfp_run_id": details["kfp_run_id"], "run_dir": details.get("kfp_run_dir", "")}
    pushed = next((a for a in reversed(store.artifacts_of_run(details["kfp_run_id"])) if a.kind == "PushedModel"), None)
    if pushed is not None:
        out.update({"pushed_id": pushed.id, "pushed": pushed.properties.get("pushed"), "version": pushed.properties.get("version")})
    return out


def _action(result: TriggerResult) -> str:
    if result.triggered and result.run is not None:
        if result.run.state == "FAILED":
            return f"retraining {result.trigger_id} could not be started: {result.run.error}"
        where = f"{result.run.target} run {result.run.run_id}" if result.run.run_id else f"{result.run.target} process {result.run.pid}"
        data = f" on {result.dataset.base_images} training + {result.dataset.added} newly labelled images" if result.dataset else ""
        return f"retraining {result.trigger_id} started ({where}){data}; a follow-up says how it ends"
    return f"no retraining started: {result.reason}"


def _notify(
    ctx: StepContext,
    alerts_path: Path,
    evaluated: Sequence[tuple[Alert, int | None]],
    qualifying: Sequence[tuple[Alert, int | None]],
    result: TriggerResult,
    retrain: RetrainSpec,
) -> None:
    """Notifies the alert step's incidents, each with what this trigger decided about it."""
    if not evaluated:
        return
    from components.alert.step import notify_incidents

    keys = {a.dedup_key for a, _ in qualifying}
    actions: dict[str, str] = {}
    for a, _ in evaluated:
        if a.dedup_key in keys:
            actions[a.dedup_key] = _action(result)
        elif not retrain.enabled:
            actions[a.dedup_key] = "no retraining: retraining is disabled (monitoring.retrain.enabled: false)"
        else:
            actions[a.dedup_key] = (
                f"no retraining: {alert_kind(a) or a.name} incidents do not start one (monitoring.retrain.on: {', '.join(retrain.on)})"
            )
    notify_incidents(ctx, alerts_path, actions, news=result.triggered)


def _unannounced(state_path: Path) -> list[str]:
    """Finished retraining runs whose end nobody has announced yet (a cluster run found finished)."""
    if not state_path.is_file():
        return []
    st = TriggerState(state_path).load()
    return [r.trigger_id for r in st.runs if r.state in TERMINAL and r.alert_keys and not r.details.get("announced")]


def run(
    ctx: StepContext,
    alerts_path: Path,
    out_dir: Path,
    *,
    labelled_dir: Path | None = None,
    now: datetime | None = None,
    runner: Runner | None = None,
) -> TriggerResult:
    """The trigger step: decide, merge the data, record lineage, start the retraining, notify the incidents.

    The incidents are notified even when deciding fails: on-call hears of the
    drift with ``the retraining trigger failed`` as what cvpipe did, and the
    step still fails with the error.

    Args:
        ctx: the step context (``spec.monitoring.retrain`` holds the settings).
        alerts_path: the alert step's ``alerts.json`` (or its directory).
        out_dir: output directory for ``trigger.json``.
        labelled_dir: the import-labels step's output (every labelled image and the
            Manifest / LabellingBatch artifacts they came from).
        now: the current time (default: now).
        runner: where retraining runs start and are asked after (default: the one
            ``monitoring.retrain.target`` names, :func:`~components.core.runs.runner_for`).

    Returns:
        The decision; ``run`` is the started run (or the one in flight that blocked it).
    """
    try:
        return _run(ctx, alerts_path, out_dir, labelled_dir=labelled_dir, now=now, runner=runner)
    except Exception as e:
        from components.alert.step import notify_incidents

        evaluated = load_alerts(alerts_path)
        text = f"no retraining started: the retraining trigger failed ({type(e).__name__}: {e})"
        try:
            notify_incidents(ctx, alerts_path, {a.dedup_key: text for a, _ in evaluated})
        except Exception as again:  # never hide the first error behind a second one
            ctx.log.error("the incidents could not be notified after the trigger failed: %s", again)
        raise


def _run(
    ctx: StepContext,
    alerts_path: Path,
    out_dir: Path,
    *,
    labelled_dir: Path | None = None,
    now: datetime | None = None,
    runner: Runner | None = None,
) -> TriggerResult:
    """The trigger step: decide, merge the data, record lineage, start the retraining.

    Args:
        ctx: the step context (``spec.monitoring.retrain`` holds the settings).
        alerts_path: the alert step's ``alerts.json`` (or its directory).
        out_dir: output directory for ``trigger.json``.
        labelled_dir: the import-labels step's output (every labelled image and the
            Manifest / LabellingBatch artifacts they came from).
        now: the current time (default: now).
        runner: where retraining runs start and are asked after (default: the one
            ``monitoring.retrain.target`` names, :func:`~components.core.runs.runner_for`).

    Returns:
        The decision; ``run`` is the started run (or the one in flight that blocked it).
    """
    from components.monitor.labels import load_labelled

    spec = ctx.spec
    retrain = spec.monitoring.retrain if spec.monitoring is not None else RetrainSpec(enabled=False)
    now = now or utc_now()
    evaluated = load_alerts(alerts_path)
    qualifying = [(a, aid) for a, aid in evaluated if a.status == "firing" and alert_kind(a) in retrain.on]
    result = TriggerResult(triggered=False, reason="", alerts=[a for a, _ in qualifying])
    labelled = load_labelled(labelled_dir) if labelled_dir is not None else None
    inputs: dict[str, Any] = {
        "alert": [ctx.store.get(aid) for _, aid in qualifying if aid is not None] or None,
        "labelling_batch": [ctx.store.get(i) for i in labelled.batches] if labelled else None,
        "labelled": [ctx.store.get(i) for i in labelled.manifests] if labelled else None,
    }
    outputs: dict[str, NewArtifact | None] = {}
    built: list[Runner] = [runner] if runner is not None else []

    def the_runner() -> Runner:
        if not built:
            built.append(runner_for(spec))
        return built[0]

    started = False
    out_dir.mkdir(parents=True, exist_ok=True)
    state_path = retrain_dir(spec) / "state.json"
    if not retrain.enabled:
        result.reason = "retraining is disabled (monitoring.retrain.enabled: false)"
    elif not qualifying:
        result.reason = f"no firing {' or '.join(retrain.on)} alert"
    else:
        with TriggerState(state_path).locked() as st:
            flying = st.in_flight(lambda r: _check(r, the_runner, ctx.store))
            cooldown = parse_duration(retrain.cooldown).total_seconds()
            fresh = [a for a, _ in qualifying if not st.cooling(a.dedup_key, now, cooldown)]
            prod = blessed_model(spec, ctx.store)
            base = training_manifest(ctx.store, prod.version.artifact_id)
            new = _new_images(base[0], labelled.manifest if labelled else None) if base is not None else 0
            if flying is not None:
                result.run = flying
                result.reason = f"retraining {flying.trigger_id} ({flying.target} run {flying.run_id or flying.pid}) is still in flight"
            elif not fresh:
                result.reason = f"every qualifying alert started a retraining less than {retrain.cooldown} ago"
            elif base is None:
                result.reason = f"the training data of {prod.version.ref} cannot be found in lineage"
            elif new == 0:
                result.reason = f"no labelled image beyond the training data of {prod.version.ref} to add"
            else:
                assert labelled is not None and labelled.manifest is not None
                trigger_id = f"{now.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:8]}"
                tdir = retrain_dir(spec) / trigger_id
                merged = merge_datasets(base[0], labelled.manifest, tdir / "data")
                if merged.quarantined:
                    report = QuarantineReport(stage="trigger")
                    for path, problem in merged.quarantined:
                        report.add(path, "image_mismatch", problem)
                        get_logger("trigger").warning("left out of the retraining dataset: %s", problem)
                    report.write(tdir)
                parent = prod.version.ref if retrain.warm_start else None
                derived = _derived_spec(spec, merged.annotations.resolve(), trigger_id, [a for a, _ in qualifying], parent)
                spec_path = atomic_write_text(tdir / "spec.yaml", dump_spec(derived))
                keys = [a.dedup_key for a, _ in qualifying]
                inputs.update({"model": ctx.store.get(prod.version.pushed_id), "base_manifest": base[1]})
                outputs["dataset"] = NewArtifact(
                    "RawDataset",
                    str(merged.annotations.resolve()),
                    {
                        "format": "coco",
                        "pipeline": spec.name,
                        "model_name": spec.model_name,
                        "trigger_id": trigger_id,
                        "images": merged.images,
                        "added": merged.added,
                        "quarantined": len(merged.quarantined),
                        "alerts": json.dumps(keys),
                        "target": retrain.target,
                        "retrain_state": "PENDING",
                    },
                )
                result.triggered, result.trigger_id, result.dataset, result.spec_path = True, trigger_id, merged, spec_path
                result.reason = (
                    f"{len(qualifying)} firing alert(s) ({', '.join(sorted({a.name for a, _ in qualifying}))}): retraining "
                    f"{spec.model_name} on {merged.base_images} training + {merged.added} newly labelled images"
                )
                # lineage first: the retraining run's ingest finds the dataset by its URI
                result.artifacts = ctx.record(inputs, outputs, {"triggered": True, "trigger_id": trigger_id, "reason": result.reason})
                launched = RetrainRun(
                    trigger_id=trigger_id,
                    target=retrain.target,
                    started_at=now.isoformat(),
                    dataset_artifact_id=result.artifacts["dataset"].id,
                    spec_path=str(spec_path),
                    alert_keys=keys,
                )
                started = _launch(ctx, the_runner(), derived, launched)
                if not started:
                    result.reason += f"; starting it failed: {launched.error}"
                else:
                    for k in keys:
                        st.keys[k] = {"last_trigger_at": now.isoformat(), "trigger_id": trigger_id}
                st.runs.append(launched)
                result.run = launched
    if retrain.enabled and not qualifying and state_path.is_file():
        # no alert asked, but a run started earlier may have ended since: its follow-up is due
        with TriggerState(state_path).locked() as st:
            st.in_flight(lambda r: _check(r, the_runner, ctx.store))
    if not result.triggered:
        result.artifacts = ctx.record(inputs, outputs, {"triggered": False, "reason": result.reason})
    _notify(ctx, alerts_path, evaluated, qualifying, result, retrain)
    for finished in _unannounced(state_path):
        announce_end(spec, state_path, finished)
    if started and retrain.wait and result.run is not None and result.run.run_id:
        assert result.trigger_id is not None
        ctx.log.info("waiting for retraining %s (%s run %s)", result.trigger_id, retrain.target, result.run.run_id)
        try:
            ended = the_runner().wait(result.run.run_id, timeout=None)
            state, error, details = ended.state, ended.error, _finished_details(ctx.store, ended.details)
        except PipelineRunError as e:
            state, error, details = "FAILED", str(e), {}
        result.run = finish(
            state_path,
            result.trigger_id,
            state,
            run_id=result.run.run_id,
            error=error,
            details=details,
            store=ctx.store,
            artifact_id=result.run.dataset_artifact_id,
        )
        announce_end(spec, state_path, result.trigger_id, read_push(str(details.get("run_dir") or "") or None))
    ctx.log.info("trigger: %s", result.reason)
    atomic_write_json(out_dir / TRIGGER_FILE, result.to_dict())
    return result

"""What the console shows, read from the stores cvpipe already keeps; no page reads a file a request names.

:class:`ConsoleData` opens, once, the metadata store and registry a spec
names (or a metadata URL alone) and the spec's incident log, and answers the
pages' questions with the project's own readers: the registry API (versions,
aliases, fork tree), lineage queries (:class:`~components.core.lineage.LineageStore`),
:func:`~pipelines.cli.runs.run_overview` for runs, the alert dispatcher for
incidents, and the JSON files the steps write beside their artifacts
(``blessing.json``, ``evaluation.json``, ``examples.json``, ``quarantine.json``,
``label_map.json``, ``manifest.json``).

Files are only ever found from an artifact the store knows:
:meth:`ConsoleData.artifact_files` lists the files under an artifact's URI
and a request picks one of those names; nothing a request carries is joined
onto a path.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.core.errors import AlertError, CvpipeError, LineageError, RegistryError
from components.core.lineage import ArtifactRef, LineageStore

if TYPE_CHECKING:
    from components.alert.dispatcher import AlertDispatcher, Incident
    from components.core.spec import PipelineSpec
    from components.registry.base import ModelVersion, Registry

__all__ = ["ConsoleData", "IncidentView", "TimelineEntry", "VersionRow", "when"]

CE_COMPONENTS = frozenset({"read_window", "sample", "import_labels", "live_metrics", "drift", "alert", "trigger", "predict_batch"})
"""Execution names that make a run a continuous-evaluation run."""

MAX_FILES = 2000
"""At most this many files are listed (and so servable) under one artifact."""


def when(ms: int | float | None) -> str:
    """A time in milliseconds since the epoch as ``YYYY-MM-DD HH:MM`` UTC ("" for none)."""
    if not ms:
        return ""
    return datetime.fromtimestamp(float(ms) / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")


def _json(value: Any, default: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return default
    return default if value is None else value


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _local_path(uri: str) -> Path | None:
    """The local file or directory an artifact URI names (``/gcs/...`` and ``gs://`` are not local)."""
    if not uri or ("://" in uri and not uri.startswith("file://")):
        return None
    path = Path(uri.removeprefix("file://").split("#", 1)[0])
    return path if path.is_absolute() else None


def _is_html(path: Path) -> bool:
    """Whether a file is an HTML page (KFP's HTML outputs are files named after the output, without a suffix)."""
    if path.suffix in (".html", ".htm"):
        return True
    if path.suffix:
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(256).lstrip().lower()
    except OSError:
        return False
    return head.startswith((b"<!doctype html", b"<html"))


@dataclass
class VersionRow:
    """One registry version as the model page shows it.

    Attributes:
        version: the registry version.
        blessing: the step's ``blessing.json`` (thresholds, reasons), when found.
        parent: the version it was warm-started from (``name:version``), or a Model id.
        dataset: the dataset it was trained on, in words.
        run_id: the training run.
        evaluation: the ``ModelEvaluation`` artifact of its evaluation, when found.
    """

    version: ModelVersion
    blessing: dict[str, Any] | None = None
    parent: str = ""
    dataset: str = ""
    dataset_id: int | None = None
    run_id: str = ""
    evaluation: ArtifactRef | None = None


@dataclass
class TimelineEntry:
    """One line of an incident's timeline.

    Attributes:
        at: when (ISO 8601, as logged).
        what: fired, reminded, escalated, update, resolved, notified, acknowledged, silenced...
        text: what happened, in words.
        by: who did it (people's actions), else "".
    """

    at: str
    what: str
    text: str
    by: str = ""


@dataclass
class IncidentView:
    """An incident with its timeline, for the incidents pages.

    Attributes:
        incident: the dispatcher's incident.
        timeline: everything that happened to it, oldest first.
    """

    incident: Incident
    timeline: list[TimelineEntry] = field(default_factory=list)


_REASON_WORDS = {"new": "fired", "repeat": "reminded", "escalation": "escalated", "resolve": "resolved", "update": "update"}


class ConsoleData:
    """The console's view of one cvpipe installation.

    Args:
        store: the lineage store.
        registry: the model registry (None when no version was ever pushed to a known registry).
        spec: the spec (None with ``--metadata`` alone).
        dispatcher: the incident log's dispatcher (None without a spec's monitoring section).
    """

    def __init__(self, store: LineageStore, registry: Registry | None, spec: PipelineSpec | None, dispatcher: AlertDispatcher | None):
        self.store = store
        self.registry = registry
        self.spec = spec
        self.dispatcher = dispatcher

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, spec: PipelineSpec | None = None, metadata: str | None = None, base_dir: str | None = None) -> ConsoleData:
        """Opens what a spec (or a metadata URL alone) names; creates nothing.

        Args:
            spec: the spec (its metadata store, registry and incident log).
            metadata: a metadata URL, without a spec: the registry is the local one the store's versions name.
            base_dir: directory a relative SQLite path in ``metadata`` is resolved against.

        Returns:
            The console data.

        Raises:
            CvpipeError: neither given, or the store does not exist.
        """
        from components.registry import LocalRegistry, get_registry

        if spec is not None:
            store = LineageStore.for_spec(spec.runtime.metadata, base_dir=spec.runtime.root, create=False)
            registry: Registry | None = get_registry(spec.registry, store)
            dispatcher = None
            if spec.monitoring is not None:
                from components.alert.dispatcher import AlertDispatcher

                dispatcher = AlertDispatcher(spec.monitoring.alert_config(spec.runtime.root))
            return cls(store, registry, spec, dispatcher)
        if not metadata:
            raise CvpipeError("the console needs --spec SPEC or --metadata URL")
        store = LineageStore(metadata, base_dir=base_dir, create=False)
        locations = [
            str(a.properties.get("registry"))
            for a in store.artifacts("PushedModel", pushed=True, backend="local")
            if a.properties.get("registry")
        ]
        registry = LocalRegistry(locations[-1], store) if locations else None
        return cls(store, registry, None, None)

    # ------------------------------------------------------------------ models
    def models(self) -> list[str]:
        """Registered model names."""
        return self.registry.models() if self.registry is not None else []

    def _registry(self) -> Registry:
        if self.registry is None:
            raise RegistryError("no model registry: nothing has been pushed to a registry this store knows")
        return self.registry

    def versions(self, model_name: str) -> list[ModelVersion]:
        """Every version of a model, archived ones too, oldest first."""
        return self._registry().versions(model_name, include_archived=True)

    def version_row(self, v: ModelVersion, by_model: dict[int, ModelVersion] | None = None) -> VersionRow:
        """A version with its blessing, parent, dataset, run and evaluation.

        Args:
            v: the version.
            by_model: registered versions by their ``Model`` artifact id (to name the parent).

        Returns:
            The row.
        """
        from components.registry.tree import training_inputs

        row = VersionRow(version=v)
        try:
            parent, dataset, run_id = training_inputs(self.store, v.artifact_id)
        except LineageError:
            parent, dataset, run_id = None, None, None
        if parent is not None:
            found = (by_model or {}).get(parent)
            row.parent = found.ref if found is not None else f"Model #{parent}"
        if dataset is not None:
            row.dataset = dataset.describe()
            shown = dataset.examples or dataset.manifest
            row.dataset_id = shown.id if shown is not None else None
        row.run_id = run_id or ""
        if v.blessing_id is not None:
            try:
                blessing = self.store.get(v.blessing_id)
            except LineageError:
                blessing = None
            if blessing is not None:
                path = _local_path(blessing.uri)
                row.blessing = _read_json(path / "blessing.json") if path is not None else None
                row.evaluation = self._evaluation_beside(blessing)
        return row

    def _evaluation_beside(self, blessing: ArtifactRef) -> ArtifactRef | None:
        """The ``ModelEvaluation`` written by the execution that wrote a blessing (same run, same model)."""
        run_id = None
        try:
            graph = self.store.upstream(blessing.id, max_depth=1)
        except LineageError:
            return None
        if graph.root.execution is None:
            return None
        eid, _, props = graph.root.execution
        run_id = props.get("run_id")
        if not run_id:
            return None
        for a in self.store.artifacts_of_run(str(run_id)):
            if a.kind != "ModelEvaluation":
                continue
            up = self.store.upstream(a.id, max_depth=1).root.execution
            if up is not None and up[0] == eid:
                return a
        return None

    def version_rows(self, model_name: str) -> list[VersionRow]:
        """Rows of every version of a model, oldest first."""
        versions = self.versions(model_name)
        by_model = {v.artifact_id: v for n in self.models() for v in self.versions(n)}
        return [self.version_row(v, by_model) for v in versions]

    def refused_pushes(self, model_name: str) -> list[tuple[ArtifactRef, str]]:
        """Push records of models that were not pushed (not blessed), oldest first, with the run that refused them."""
        out = []
        for a in self.store.artifacts("PushedModel", pushed=False, model_name=model_name):
            produced = self.store.upstream(a.id, max_depth=1).root.execution  # the push that refused it
            out.append((a, str(a.properties.get("run_id") or (produced[2].get("run_id", "") if produced else ""))))
        return out

    def evaluation_json(self, evaluation: ArtifactRef | None) -> dict[str, Any]:
        """The ``evaluation.json`` of an evaluation (``{}`` when not found)."""
        if evaluation is None:
            return {}
        path = _local_path(evaluation.uri)
        data = _read_json(path / "evaluation.json") if path is not None else None
        return data if isinstance(data, dict) else {}

    def alias_history(self, model_name: str) -> list[tuple[Any, dict[str, Any] | None]]:
        """Alias events, newest first, each with the console action that made it (who, when), if one did."""
        events = self._registry().alias_history(model_name)
        actions = {
            int(e["properties"]["alias_seq"]): e
            for e in self.store.executions(component="console_action")
            if e["properties"].get("model_name") == model_name and isinstance(e["properties"].get("alias_seq"), int)
        }
        return [(e, actions.get(e.seq)) for e in reversed(events)]

    def console_actions(self) -> list[dict[str, Any]]:
        """Every action taken in the console, newest first."""
        return list(reversed(self.store.executions(component="console_action")))

    # ------------------------------------------------------------------ runs
    def runs(self, limit: int = 50) -> list[dict[str, Any]]:
        """Local runs in the metadata store, newest first, with their kind (training or continuous-eval)."""
        from ..cli.runs import run_overview

        out = []
        for run_id in reversed(self.store.run_ids()[-limit:]):
            if run_id.startswith("console-"):
                continue
            row = run_overview(self.store, run_id)
            execs = self.store.executions(run_id=run_id)
            row["kind"] = "continuous-eval" if {e["component"] for e in execs} & CE_COMPONENTS else "training"
            row["pipeline"] = next((str(e["properties"]["pipeline"]) for e in execs if e["properties"].get("pipeline")), "")
            out.append(row)
        return out

    def remote_runs(self) -> tuple[str, list[Any], str]:
        """Runs on the orchestrator the spec's ``monitoring.retrain`` names, through the Runner protocol.

        Returns:
            ``(target, runs, error)``: the target, its newest runs, and why they could not be listed ("" when they
            could): for an orchestrator that cannot be reached, its endpoint and the reason (``connection refused``).
        """
        if self.spec is None or self.spec.monitoring is None or self.spec.monitoring.retrain.target == "local":
            return "", [], ""
        from components.core.errors import RemoteRefused, RemoteUnavailable
        from components.core.runs import runner_for

        target = self.spec.monitoring.retrain.target
        try:
            return target, runner_for(self.spec).list(pipeline=self.spec.name, limit=20), ""
        except RemoteUnavailable as e:
            return target, [], f"{e.endpoint} cannot be reached: {e.reason}"
        except RemoteRefused as e:
            return target, [], f"{e.endpoint} refused the console's credentials: {e.reason} (check the token or service account)"
        except Exception as e:  # a cluster that cannot be reached must not take the console down
            return target, [], f"{type(e).__name__}: {e}"

    def remote_target(self) -> str:
        """The orchestrator the spec's ``monitoring.retrain`` names ("" when there is none, or it is local)."""
        if self.spec is None or self.spec.monitoring is None or self.spec.monitoring.retrain.target == "local":
            return ""
        return self.spec.monitoring.retrain.target

    def remote_run(self, run_id: str) -> Any:
        """One run on that orchestrator with its steps (a :class:`~components.core.runs.SubmittedRun`), through the Runner protocol.

        Raises:
            RemoteUnavailable: the orchestrator cannot be reached or answered 5xx (the run may exist).
            RemoteRefused: the orchestrator refused the credentials (the run may exist).
            PipelineRunError: no such run (the orchestrator's answer is the message).
        """
        from components.core.errors import PipelineRunError
        from components.core.runs import runner_for

        target = self.remote_target()
        if self.spec is None or not target:
            raise PipelineRunError("no remote runs: the console's spec names no kubeflow or vertex target (monitoring.retrain.target)")
        return runner_for(self.spec, target).get(run_id)

    def outputs_of_run(self, run_id: str) -> list[ArtifactRef]:
        """Artifacts a run's own steps wrote (a run's context also holds what its steps read)."""
        out = []
        for a in self.store.artifacts_of_run(run_id):
            produced = self.store.upstream(a.id, max_depth=1).root.execution
            if produced is not None and produced[2].get("run_id") == run_id:
                out.append(a)
        return out

    def run_steps(self, run_id: str) -> list[dict[str, Any]]:
        """A run's executions, oldest first, each with its output artifacts' reports."""
        return self.store.executions(run_id=run_id)

    def reports_of(self, artifacts: Iterable[ArtifactRef]) -> list[tuple[ArtifactRef, str, str]]:
        """``(artifact, title, file name)`` of the artifacts that have an HTML report to show."""
        out = []
        for a in artifacts:
            name = self.report_file(a)
            if name is not None:
                produced = self.store.upstream(a.id, max_depth=1).root.execution
                title = produced[1] if produced is not None else str(a.properties.get("kind") or a.kind)  # the step's name
                out.append((a, title, name or "-"))
        return out

    # ------------------------------------------------------------------ files of known artifacts
    def artifact_files(self, artifact: ArtifactRef) -> dict[str, Path]:
        """Files an artifact holds, by their path relative to it (``""`` for a one-file artifact).

        The report of an evaluation (recorded as its ``report`` property) is listed as ``report.html``.

        Args:
            artifact: the artifact.

        Returns:
            Relative name -> file.
        """
        out: dict[str, Path] = {}
        root = _local_path(artifact.uri)
        if root is not None:
            if root.is_file():
                out[""] = root
            elif root.is_dir():
                for dirpath, _, names in os.walk(root):
                    for n in sorted(names):
                        p = Path(dirpath) / n
                        out[p.relative_to(root).as_posix()] = p
                        if len(out) >= MAX_FILES:
                            break
                    if len(out) >= MAX_FILES:
                        break
        report = artifact.properties.get("report")
        if isinstance(report, str):
            rp = _local_path(report)
            if rp is not None and rp.is_file():
                out["report.html"] = rp
        elif artifact.kind == "ModelEvaluation" and root is not None and root.name == "evaluation":
            # stores from before the report's path was recorded: the evaluate task's own HTML output
            # sits beside its evaluation output (KFP's layout: <task dir>/<output name>)
            for name in ("report.html", "report"):
                sibling = root.parent / name
                if sibling.is_file() and _is_html(sibling):
                    out["report.html"] = sibling
                    break
        return out

    def report_file(self, artifact: ArtifactRef) -> str | None:
        """The name (in :meth:`artifact_files`) of the artifact's HTML page, or None."""
        files = self.artifact_files(artifact)
        for name in ("report.html", "index.html", "drift_report.html", "report/index.html", "report/report.html", ""):
            if name in files and _is_html(files[name]):
                return name
        htmls = sorted(n for n in files if n.endswith(".html"))
        return htmls[0] if htmls else None

    # ------------------------------------------------------------------ data
    def datasets(self) -> list[dict[str, Any]]:
        """Dataset versions (``Examples``), newest first, with counts per class and split."""
        out = []
        for a in reversed(self.store.artifacts("Examples")):
            path = _local_path(a.uri)
            info = _read_json(path / "examples.json") if path is not None else None
            splits: dict[str, dict[str, Any]] = {}
            classes: list[str] = []
            if isinstance(info, dict):
                for split, s in (info.get("splits") or {}).items():
                    counts = dict(s.get("class_counts") or {})
                    splits[split] = {"images": s.get("images", s.get("records", 0)), "counts": counts}
                    classes.extend(c for c in counts if c not in classes)
            manifest = self.store.upstream(a.id, max_depth=1).root
            source = next((n.artifact for _, n in manifest.inputs if n.artifact.kind == "Manifest"), None)
            out.append({"artifact": a, "splits": splits, "classes": classes, "manifest": source})
        return out

    def quarantine(self, query: str = "") -> list[dict[str, Any]]:
        """Every quarantined item of every step, newest report first; ``query`` keeps items whose text contains it."""
        needle = query.strip().lower()
        out = []
        for a in reversed(self.store.artifacts("QuarantineReport")):
            path = _local_path(a.uri)
            data = _read_json(path / "quarantine.json" if path is not None and path.is_dir() else path) if path is not None else None
            if not isinstance(data, dict):
                continue
            for item in data.get("items") or []:
                text = " ".join(str(v) for v in item.values() if v is not None).lower()
                if needle and needle not in text:
                    continue
                out.append({"artifact": a, "run_id": a.properties.get("run_id", ""), **item})
        return out

    def label_maps(self) -> list[dict[str, Any]]:
        """Label map versions (one per distinct content), oldest first, each with its difference from the one before."""
        out: list[dict[str, Any]] = []
        previous: dict[str, str] | None = None
        for a in self.store.artifacts("LabelMap"):
            classes = {str(k): str(v) for k, v in (_json(a.properties.get("classes"), {}) or {}).items()}
            if previous is not None and classes == previous:
                continue
            diff: list[str] = []
            if previous is not None:
                for cid in sorted(set(previous) | set(classes), key=lambda x: (len(x), x)):
                    before, after = previous.get(cid), classes.get(cid)
                    if before is None:
                        diff.append(f"+ {cid}: {after}")
                    elif after is None:
                        diff.append(f"- {cid}: {before}")
                    elif before != after:
                        diff.append(f"~ {cid}: {before} -> {after}")
            out.append({"artifact": a, "version": a.properties.get("version"), "classes": classes, "diff": diff})
            previous = classes
        return out

    def manifest(self, artifact: ArtifactRef) -> Any:
        """The :class:`~components.core.manifest.Manifest` a ``Manifest`` artifact holds (None when unreadable)."""
        from components.core.manifest import Manifest

        if artifact.kind != "Manifest":
            return None
        path = _local_path(artifact.uri)
        if path is None:
            return None
        file = path / "manifest.json" if path.is_dir() else path
        try:
            return Manifest.load(file)
        except (OSError, ValueError, CvpipeError):
            return None

    def labels_imported(self, batch: ArtifactRef) -> int | None:
        """Labels imported for a labelling batch: the PredictionLog parts right below it (None when none yet)."""
        imported = None
        for did in self.store.downstream_ids(batch.id, limit=20):  # the import is right below the batch
            d = self.store.get(did)
            if d.kind == "PredictionLog" and isinstance(d.properties.get("labels"), int):
                imported = (imported or 0) + int(d.properties["labels"])
        return imported

    def labelling_batch(self, artifact: ArtifactRef) -> Any:
        """The :class:`~components.sample.batch.LabellingBatch` a ``LabellingBatch`` artifact holds (None when unreadable)."""
        from components.sample.batch import LabellingBatch

        path = _local_path(artifact.uri) if artifact.kind == "LabellingBatch" else None
        if path is None:
            return None
        try:
            return LabellingBatch.load(path)
        except (OSError, ValueError, CvpipeError):
            return None

    # ------------------------------------------------------------------ incidents
    def incidents(self) -> list[Incident]:
        """Every incident, newest first (none without an incident log)."""
        return self.dispatcher.incidents() if self.dispatcher is not None else []

    def incident(self, ref: str) -> IncidentView:
        """One incident (id, id prefix or dedup key) with its timeline.

        Raises:
            AlertError: no incident log, or no such incident.
        """
        if self.dispatcher is None:
            raise AlertError("no incident log: the console was started without a spec that has a monitoring section")
        inc = self.dispatcher.find(ref)
        timeline: list[TimelineEntry] = []
        alert_ids = set()
        for alert_id, reason, logged_at, alert in self.dispatcher.log.notifications():
            if alert.dedup_key != inc.key or (alert.incident_id and alert.incident_id != inc.incident_id):
                continue
            alert_ids.add(alert_id)
            what = "update" if alert.update else _REASON_WORDS.get(reason, reason)
            text = alert.update or alert.summary
            if reason == "new" and alert.action:
                text = f"{text}. {alert.action}" if not alert.update else text
            timeline.append(TimelineEntry(logged_at, what, text))
        for r in self.dispatcher.log.records():
            kind = r.get("record")
            if kind == "delivery" and r.get("id") in alert_ids:
                timeline.append(TimelineEntry(str(r.get("logged_at", "")), "notified", f"{r.get('sink')}: {r.get('status')}", ""))
            elif kind == "ack" and r.get("incident_id") == inc.incident_id:
                timeline.append(
                    TimelineEntry(str(r.get("logged_at", "")), "acknowledged", str(r.get("comment") or ""), str(r.get("by") or ""))
                )
        from components.alert.sinks import alertmanager_labels

        labels = alertmanager_labels(inc.alert)
        for s in self.dispatcher.log.silences():
            if s.matches(labels):
                until = s.ends_at.strftime("%Y-%m-%d %H:%M UTC")
                timeline.append(
                    TimelineEntry(s.starts_at.isoformat(timespec="milliseconds"), "silenced", f"until {until}: {s.comment}", s.created_by)
                )
        timeline.sort(key=lambda t: t.at)
        return IncidentView(inc, timeline)

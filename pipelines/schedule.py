"""Recurring runs of a spec's pipeline: on Kubeflow, on Vertex AI, or in-process for the embedded setup.

The schedule is the spec's ``schedule`` section (a five-field cron
expression and an IANA time zone); the pipeline is the continuous-evaluation
one when the spec has a ``monitoring`` section, else the training one
(``pipeline`` overrides).

* :func:`schedule_kubeflow`: uploads the compiled pipeline (as
  :func:`~pipelines.runners.kubeflow.submit_kubeflow` does: a version per
  compiled digest), gets or creates the experiment and creates a recurring
  run with ``kfp.Client.create_recurring_run`` (KFP's cron has a seconds
  field: ``0 <cron>``; at most one run at a time, no catch-up). A recurring
  run of the same name in the experiment is replaced.
* :func:`schedule_vertex`: builds the ``PipelineJob`` as
  :func:`~pipelines.runners.vertex.submit_vertex` does and calls
  ``PipelineJob.create_schedule`` (``TZ=<zone> <cron>``, one run at a time).
  An active schedule of the same display name is deleted first.
* :class:`Scheduler`: the embedded scheduler behind ``cvpipe scheduler``. Each
  due pipeline runs with ``run_local`` in this process, one after the other;
  the last scheduled time run per spec and pipeline is kept in
  ``<runtime.root>/scheduler.json``. A spec seen for the first time is due at
  its next scheduled time, not at once; missed times while the scheduler was
  down are not replayed: one run covers them (no catch-up, as the cluster
  schedules are created).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from components.core.errors import CvpipeError, PipelineRunError, SpecError
from components.core.io import atomic_write_json, read_json
from components.core.spec import PipelineSpec, load_spec

__all__ = [
    "STATE_FILE",
    "ScheduleResult",
    "Scheduler",
    "SchedulerEntry",
    "SchedulerRun",
    "kfp_cron",
    "schedule_kubeflow",
    "schedule_vertex",
    "scheduled_pipeline",
    "vertex_cron",
]

STATE_FILE = "scheduler.json"
"""The embedded scheduler's memory, under each spec's ``runtime.root``."""


@dataclass
class ScheduleResult:
    """A recurring run created on a cluster.

    Attributes:
        target: ``kubeflow`` or ``vertex``.
        schedule_id: the recurring run id (KFP) or schedule resource name (Vertex AI).
        name: its display name.
        cron: the cron expression sent.
        pipeline: ``training`` or ``continuous-eval``.
        state: what the service reports (``ENABLED``, ``ACTIVE``...).
        url: where to see it.
        replaced: ids of schedules of the same name that were removed.
        warnings: settings the target cannot honour as written.
        details: target-specific extras (pipeline and version ids, experiment...).
    """

    target: str
    schedule_id: str
    name: str
    cron: str
    pipeline: str
    state: str = ""
    url: str = ""
    replaced: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    details: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return dict(vars(self))


def scheduled_pipeline(spec: PipelineSpec, pipeline: str = "auto") -> str:
    """Which pipeline a schedule runs.

    Args:
        spec: the spec.
        pipeline: ``auto`` (continuous evaluation when the spec has ``monitoring``, else
            training), ``training`` or ``continuous-eval``.

    Returns:
        ``training`` or ``continuous-eval``.

    Raises:
        SpecError: continuous evaluation of a spec without ``monitoring``.
    """
    if pipeline == "auto":
        return "continuous-eval" if spec.monitoring is not None else "training"
    if pipeline == "continuous-eval" and spec.monitoring is None:
        raise SpecError([("monitoring", "is required to schedule the continuous-evaluation pipeline")])
    if pipeline not in ("training", "continuous-eval"):
        raise SpecError([("", f"unknown pipeline {pipeline!r}: use training, continuous-eval or auto")])
    return pipeline


def _cron(spec: PipelineSpec, cron: str | None) -> tuple[str, str]:
    if cron:
        from components.core.spec import ScheduleSpec

        s = ScheduleSpec(cron=cron, timezone=spec.schedule.timezone if spec.schedule else "UTC")
        return s.cron, s.timezone
    if spec.schedule is None:
        raise SpecError([("schedule", "is required to schedule recurring runs (schedule: {cron: '0 * * * *'})")])
    return spec.schedule.cron, spec.schedule.timezone


def kfp_cron(cron: str) -> str:
    """A five-field cron expression in KFP's six-field form (seconds first).

    Args:
        cron: ``minute hour day-of-month month day-of-week``.

    Returns:
        ``0 minute hour day-of-month month day-of-week``.
    """
    return f"0 {cron.strip()}"


def vertex_cron(cron: str, timezone: str) -> str:
    """A cron expression for a Vertex AI schedule, with its time zone prefix.

    Args:
        cron: the five-field expression.
        timezone: an IANA zone (UTC needs no prefix).

    Returns:
        ``TZ=<zone> <cron>`` (or the expression as is for UTC).
    """
    return cron.strip() if timezone in ("UTC", "Etc/UTC") else f"TZ={timezone} {cron.strip()}"


def _compile(spec: PipelineSpec, pipeline: str, directory: str) -> Path:
    from .compiler import compile_spec, pipeline_display_name

    return compile_spec(spec, Path(directory) / f"{pipeline_display_name(spec, pipeline)}.yaml", pipeline=pipeline)


def schedule_kubeflow(
    spec: PipelineSpec,
    host: Any,
    *,
    pipeline: str = "auto",
    cron: str | None = None,
    name: str | None = None,
    experiment: str | None = None,
    namespace: str | None = None,
    token: str | None = None,
    credentials: Any = None,
    service_account: str | None = None,
    enabled: bool = True,
) -> ScheduleResult:
    """Creates (or replaces) a recurring run of a spec's pipeline on Kubeflow Pipelines.

    Args:
        spec: the spec (``schedule.cron`` is the schedule unless ``cron`` is given).
        host: the KFP API endpoint, or a :class:`~pipelines.runners.kubeflow.KubeflowConnection`.
        pipeline: ``auto``, ``training`` or ``continuous-eval``.
        cron: a five-field cron expression overriding the spec's.
        name: the recurring run's display name (default: the pipeline's name).
        experiment: experiment (got or created; default: the spec's name).
        namespace: profile namespace (multi-user Kubeflow).
        token: bearer token.
        credentials: a ``kfp.client.TokenCredentialsBase``.
        service_account: Kubernetes service account of the runs' pods.
        enabled: create it enabled.

    Returns:
        The recurring run.

    Raises:
        SpecError: the spec has no schedule (and no ``cron`` was given), or no monitoring section
            for the continuous-evaluation pipeline.
        PipelineRunError: the server refused or cannot be reached.
    """
    from .compiler import pipeline_display_name
    from .runners.kubeflow import _call, _conn, _eq_filter, _upload

    which = scheduled_pipeline(spec, pipeline)
    expr, tz = _cron(spec, cron)
    conn = _conn(host, namespace=namespace, token=token, credentials=credentials)
    pname = pipeline_display_name(spec, which)
    display = name or pname
    warnings = []
    if tz not in ("UTC", "Etc/UTC"):
        warnings.append(f"schedule.timezone {tz}: Kubeflow evaluates cron expressions in the API server's time zone (usually UTC)")
    with tempfile.TemporaryDirectory(prefix="cvpipe-schedule-") as tmp:
        package = _compile(spec, which, tmp)
        digest = hashlib.sha256(package.read_bytes()).hexdigest()
        client = conn.client()
        description = f"cvpipe {which} pipeline of {spec.name}"
        pipeline_id, version_id = _upload(client, package, pname, description, conn.namespace, digest)
    exp = _call("getting or creating the experiment", client.create_experiment, experiment or spec.name, namespace=conn.namespace)
    found = _call(
        "listing recurring runs",
        client.list_recurring_runs,
        experiment_id=exp.experiment_id,
        filter=_eq_filter("display_name", display),
        page_size=100,
        namespace=conn.namespace,
    )
    replaced = []
    for old in found.recurring_runs or []:
        if old.display_name == display:
            _call(f"deleting recurring run {old.recurring_run_id}", client.delete_recurring_run, old.recurring_run_id)
            replaced.append(str(old.recurring_run_id))
    created = _call(
        "creating the recurring run",
        client.create_recurring_run,
        experiment_id=exp.experiment_id,
        job_name=display,
        description=description,
        cron_expression=kfp_cron(expr),
        max_concurrency=1,
        no_catchup=True,
        pipeline_id=pipeline_id,
        version_id=version_id,
        enabled=enabled,
        pipeline_root=spec.runtime.pipeline_root,
        service_account=service_account,
    )
    return ScheduleResult(
        target="kubeflow",
        schedule_id=str(created.recurring_run_id),
        name=display,
        cron=kfp_cron(expr),
        pipeline=which,
        state=str(created.status or created.mode or ""),
        url=f"{conn.ui}/#/recurringrun/details/{created.recurring_run_id}",
        replaced=replaced,
        warnings=warnings,
        details={"pipeline_id": pipeline_id, "version_id": version_id, "experiment_id": str(exp.experiment_id)},
    )


def schedule_vertex(
    spec: PipelineSpec,
    project: str | None = None,
    region: str | None = None,
    *,
    pipeline: str = "auto",
    cron: str | None = None,
    name: str | None = None,
    pipeline_root: str | None = None,
    service_account: str | None = None,
    api_endpoint: str | None = None,
    credentials: Any = None,
    settings: Any = None,
    network: str | None = None,
) -> ScheduleResult:
    """Creates (or replaces) a Vertex AI pipeline schedule of a spec's pipeline.

    Args:
        spec: the spec (``schedule.cron`` and ``schedule.timezone`` unless ``cron`` is given).
        project: Google Cloud project (default: ``settings.project``).
        region: Vertex AI region (default: ``settings.region``).
        pipeline: ``auto``, ``training`` or ``continuous-eval``.
        cron: a five-field cron expression overriding the spec's.
        name: the schedule's display name (default: the pipeline's name).
        pipeline_root: ``gs://`` pipeline root (default: the spec's gs:// root, else the settings').
        service_account: the service account the runs use.
        api_endpoint: Vertex AI endpoint.
        credentials: ``google.auth`` credentials.
        settings: a :class:`~pipelines.runners.vertex.VertexSettings` (machines, labels, image...).
        network: VPC network to peer with.

    Returns:
        The schedule.

    Raises:
        SpecError: no schedule, or no monitoring section for the continuous-evaluation pipeline.
        PipelineRunError: a required setting is missing, or Vertex AI refused.
    """
    from .compiler import pipeline_display_name
    from .runners.vertex import VertexSettings, _aiplatform, _need, _vertex, apply_settings

    which = scheduled_pipeline(spec, pipeline)
    expr, tz = _cron(spec, cron)
    s = settings or VertexSettings()
    project = _need(project or s.project, "project", "--project")
    region = _need(region or s.region, "region", "--region")
    spec_root = spec.runtime.pipeline_root if (spec.runtime.pipeline_root or "").startswith("gs://") else None
    root = _need(pipeline_root or spec_root or s.default_pipeline_root(), "gs:// pipeline root", "--pipeline-root")
    if not root.startswith("gs://"):
        raise PipelineRunError(f"Vertex AI needs a gs:// pipeline root, not {root}")
    effective = apply_settings(spec, settings)
    display = name or pipeline_display_name(spec, which)
    labels = {**s.labels, "cvpipe-pipeline": spec.name, "cvpipe-task": spec.task, "cvpipe-kind": which}
    expr_tz = vertex_cron(expr, tz)
    with tempfile.TemporaryDirectory(prefix="cvpipe-schedule-") as tmp:
        package = _compile(effective, which, tmp)
        with _aiplatform(project, region, api_endpoint or s.api_endpoint, credentials) as aip:
            job = _vertex(
                "building the pipeline job",
                lambda: aip.PipelineJob(
                    display_name=display,
                    template_path=str(package),
                    pipeline_root=root,
                    enable_caching=s.enable_caching,
                    labels=labels,
                    project=project,
                    location=region,
                ),
            )
            existing = _vertex(
                "listing schedules",
                lambda: aip.PipelineJobSchedule.list(filter=f'display_name="{display}"', project=project, location=region),
            )
            replaced = []
            for old in existing:
                if old.display_name == display:
                    _vertex(f"deleting schedule {old.resource_name}", old.delete)
                    replaced.append(str(old.resource_name))
            sched = _vertex(
                "creating the schedule",
                lambda: job.create_schedule(
                    cron=expr_tz,
                    display_name=display,
                    max_concurrent_run_count=1,
                    service_account=service_account or s.service_account,
                    network=network or s.network,
                ),
            )
            res = sched.gca_resource
            state = res.state.name if hasattr(res.state, "name") else str(res.state)
            return ScheduleResult(
                target="vertex",
                schedule_id=str(res.name),
                name=display,
                cron=expr_tz,
                pipeline=which,
                state=state,
                url=f"https://console.cloud.google.com/vertex-ai/pipelines/schedules/{str(res.name).rsplit('/', 1)[-1]}?project={project}",
                replaced=replaced,
                details={"project": project, "region": region, "pipeline_root": root},
            )


# -- the embedded scheduler ---------------------------------------------------------------


@dataclass
class SchedulerEntry:
    """One scheduled pipeline of the embedded scheduler.

    Attributes:
        spec_path: the spec file.
        spec: the spec.
        pipeline: ``training`` or ``continuous-eval``.
        cron: the five-field expression.
        timezone: its IANA zone.
    """

    spec_path: Path
    spec: PipelineSpec
    pipeline: str
    cron: str
    timezone: str

    @property
    def key(self) -> str:
        """``<spec name>:<pipeline>``: the entry's name in the state file."""
        return f"{self.spec.name}:{self.pipeline}"

    @property
    def state_path(self) -> Path:
        """``<runtime.root>/scheduler.json``."""
        return Path(self.spec.runtime.root) / STATE_FILE

    def previous_fire(self, now: datetime) -> datetime:
        """The latest scheduled time at or before ``now`` (UTC)."""
        from croniter import croniter

        local = now.astimezone(ZoneInfo(self.timezone)).replace(second=0, microsecond=0)
        if croniter.match(self.cron, local):
            return local.astimezone(UTC)
        return croniter(self.cron, local).get_prev(datetime).astimezone(UTC)

    def next_fire(self, after: datetime) -> datetime:
        """The first scheduled time strictly after ``after`` (UTC)."""
        from croniter import croniter

        return croniter(self.cron, after.astimezone(ZoneInfo(self.timezone))).get_next(datetime).astimezone(UTC)


@dataclass
class SchedulerRun:
    """One run the embedded scheduler started.

    Attributes:
        key: ``<spec name>:<pipeline>``.
        scheduled_for: the scheduled time it ran for.
        started_at: when it started.
        succeeded: whether the run succeeded.
        run_id: the run id (None when it did not start).
        error: the failure message.
    """

    key: str
    scheduled_for: datetime
    started_at: datetime
    succeeded: bool
    run_id: str | None = None
    error: str | None = None


def _load_entries(paths: Sequence[str | os.PathLike[str]], pipeline: str) -> list[SchedulerEntry]:
    files: list[Path] = []
    for p in map(Path, paths):
        files += sorted(f for f in p.iterdir() if f.suffix in (".yaml", ".yml")) if p.is_dir() else [p]
    out = []
    for f in files:
        spec = load_spec(f)
        if spec.schedule is None:
            continue
        out.append(SchedulerEntry(f, spec, scheduled_pipeline(spec, pipeline), spec.schedule.cron, spec.schedule.timezone))
    return out


class Scheduler:
    """Runs the pipelines of specs on their cron schedules, in this process, with ``run_local``.

    Args:
        specs: spec files, or directories of them (specs without ``schedule`` are skipped).
        pipeline: ``auto``, ``training`` or ``continuous-eval`` for every spec.
        clock: the current time (tests pass a fixed one).
        sleep: how to wait (tests pass a no-op).
        echo: where progress lines go.
        runner: runs one pipeline of a spec and returns its run id (default: ``run_local``).
    """

    def __init__(
        self,
        specs: Sequence[str | os.PathLike[str]],
        pipeline: str = "auto",
        *,
        clock: Callable[[], datetime] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        echo: Callable[[str], Any] = print,
        runner: Callable[[SchedulerEntry], str] | None = None,
    ):
        self.entries = _load_entries(specs, pipeline)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.sleep = sleep
        self.echo = echo
        self.runner = runner or self._run_local

    @staticmethod
    def _run_local(entry: SchedulerEntry) -> str:
        from .runners.local import run_local

        return run_local(entry.spec, pipeline=entry.pipeline).run_id

    @staticmethod
    def _read(path: Path) -> dict[str, Any]:
        if not path.is_file():
            return {"format_version": 1, "entries": {}}
        return dict(read_json(path))

    def state(self, entry: SchedulerEntry) -> dict[str, Any]:
        """The recorded state of one entry (``last_fire``, ``last_run_id``, ``last_status``...).

        Args:
            entry: the entry.

        Returns:
            Its state (empty before the first sighting).
        """
        return dict(self._read(entry.state_path).get("entries", {}).get(entry.key, {}))

    def _save(self, entry: SchedulerEntry, values: dict[str, Any]) -> None:
        data = self._read(entry.state_path)
        data.setdefault("entries", {}).setdefault(entry.key, {}).update(values)
        atomic_write_json(entry.state_path, data)

    def tick(self) -> list[SchedulerRun]:
        """Runs every entry that is due now, once each.

        Returns:
            The runs started.
        """
        runs = []
        for entry in self.entries:
            now = self.clock()
            st = self.state(entry)
            fire = entry.previous_fire(now)
            if "last_fire" not in st:
                self._save(
                    entry, {"spec": str(entry.spec_path), "cron": entry.cron, "timezone": entry.timezone, "last_fire": fire.isoformat()}
                )
                self.echo(f"{entry.key}: scheduled '{entry.cron}' ({entry.timezone}); next run {entry.next_fire(now).isoformat()}")
                continue
            if fire <= datetime.fromisoformat(str(st["last_fire"])):
                continue
            self.echo(f"{entry.key}: running for {fire.isoformat()}")
            started = self.clock()
            try:
                run_id: str | None = self.runner(entry)
                ok, error = True, None
            except CvpipeError as e:
                run_id, ok, error = None, False, str(e)
            run = SchedulerRun(entry.key, fire, started, ok, run_id, error)
            self._save(
                entry,
                {
                    "last_fire": fire.isoformat(),
                    "last_started_at": started.isoformat(),
                    "last_run_id": run_id,
                    "last_status": "succeeded" if ok else "failed",
                    "last_error": error,
                },
            )
            self.echo(
                f"{entry.key}: {'succeeded' if ok else 'failed'}{f' (run {run_id})' if run_id else ''}{f': {error}' if error else ''}"
            )
            runs.append(run)
        return runs

    def next_due(self) -> datetime | None:
        """The earliest next scheduled time over every entry (None without entries)."""
        now = self.clock()
        times = [e.next_fire(now) for e in self.entries]
        return min(times) if times else None

    def run(self, once: bool = False, until: datetime | None = None, max_wait_s: float = 60.0) -> list[SchedulerRun]:
        """Ticks until ``until`` (or once).

        Args:
            once: tick once and return.
            until: stop after this time (None: run until interrupted).
            max_wait_s: longest sleep between ticks (the specs are re-read only at start).

        Returns:
            Every run started.
        """
        runs: list[SchedulerRun] = []
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                runs += self.tick()
                now = self.clock()
                if once or (until is not None and now >= until):
                    break
                nxt = self.next_due()
                wait = max_wait_s if nxt is None else max(0.0, min(max_wait_s, (nxt - now).total_seconds()))
                if until is not None:
                    wait = max(0.0, min(wait, (until - now).total_seconds()))
                self.sleep(wait if wait > 0 else 0.5)
        return runs

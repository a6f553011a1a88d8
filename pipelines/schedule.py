"""Recurring runs of a spec's pipeline: on Kubeflow, on Vertex AI, or in-process for the embedded setup.

The schedule is the spec's ``schedule`` section (a five-field cron
expression and an IANA time zone); the pipeline is the continuous-evaluation
one when the spec has a ``monitoring`` section, else the training one
(``pipeline`` overrides).

* On a cluster, a :class:`~components.core.runs.Runner`'s ``schedule`` creates
  the recurring run: :meth:`~pipelines.runners.kubeflow.KubeflowRunner.schedule`
  (``kfp.Client.create_recurring_run``, KFP's cron with a seconds field, at
  most one run at a time, no catch-up) and
  :meth:`~pipelines.runners.vertex.VertexRunner.schedule`
  (``PipelineJob.create_schedule`` of the job the runner submits,
  ``TZ=<zone> <cron>``); a schedule of the same name is replaced.
  :func:`schedule_kubeflow` and :func:`schedule_vertex` are the same, as functions.
* :class:`Scheduler`: the embedded scheduler behind ``cvpipe scheduler``. Each
  due pipeline is submitted to a Runner (default: a
  :class:`~pipelines.runners.local.LocalRunner` running in this process), one
  after the other; the last scheduled time run per spec and pipeline is kept in
  ``<runtime.root>/scheduler.json``. A spec seen for the first time is due at
  its next scheduled time, not at once; missed times while the scheduler was
  down are not replayed: one run covers them (no catch-up, as the cluster
  schedules are created).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from components.core.errors import CvpipeError
from components.core.io import atomic_write_json, read_json
from components.core.runs import Runner, ScheduleResult
from components.core.spec import PipelineSpec, load_spec

from .runners.kubeflow import schedule_kubeflow
from .runners.remote import kfp_cron, scheduled_pipeline, vertex_cron
from .runners.vertex import schedule_vertex

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
    """Runs the pipelines of specs on their cron schedules, one after the other, through a Runner.

    Args:
        specs: spec files, or directories of them (specs without ``schedule`` are skipped).
        pipeline: ``auto``, ``training`` or ``continuous-eval`` for every spec.
        clock: the current time (tests pass a fixed one).
        sleep: how to wait (tests pass a no-op).
        echo: where progress lines go.
        runner: where the pipelines run (default: a :class:`~pipelines.runners.local.LocalRunner`
            running in this process, its records under each spec's ``<runtime.root>/local-runs``).
    """

    def __init__(
        self,
        specs: Sequence[str | os.PathLike[str]],
        pipeline: str = "auto",
        *,
        clock: Callable[[], datetime] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        echo: Callable[[str], Any] = print,
        runner: Runner | None = None,
    ):
        self.entries = _load_entries(specs, pipeline)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.sleep = sleep
        self.echo = echo
        self.runner = runner

    def _runner(self, entry: SchedulerEntry) -> Runner:
        if self.runner is not None:
            return self.runner
        from .runners.local import LocalRunner

        return LocalRunner(Path(entry.spec.runtime.root) / "local-runs", in_process=True)

    def _run(self, entry: SchedulerEntry) -> tuple[str, bool, str | None]:
        """Submits the entry's pipeline and waits for it: ``(run id, succeeded, error)``."""
        runner = self._runner(entry)
        run = runner.submit(entry.spec, pipeline=entry.pipeline)
        if not run.done:
            run = runner.wait(run.run_id, timeout=None)
        return run.details.get("kfp_run_id") or run.run_id, run.succeeded, run.error

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
            run_id: str | None
            try:
                run_id, ok, error = self._run(entry)
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

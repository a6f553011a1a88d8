"""Pipeline runs and the one :class:`Runner` protocol every orchestrator implements.

A runner starts a spec's pipeline somewhere and answers for its runs::

    Runner                 submit / get / list / wait / cancel / schedule
    ├── LocalRunner        kfp.local in a process of its own on this machine   (pipelines.runners.local)
    ├── KubeflowRunner     Kubeflow Pipelines, through kfp.Client               (pipelines.runners.kubeflow)
    └── VertexRunner       Vertex AI Pipelines, through aiplatform.PipelineJob  (pipelines.runners.vertex)

The implementations live in ``pipelines`` (they compile pipelines); this
module holds only what their callers share: :class:`SubmittedRun` (one
vocabulary of run states, :data:`STATES`, for every target),
:class:`ScheduleResult`, :func:`wait_until_done` and :func:`runner_for`,
which builds the runner a spec's ``monitoring.retrain`` section names.
Components that must start a pipeline (the retraining trigger) receive a
:class:`Runner`, or get one from :func:`runner_for`; they never import
``pipelines``. :func:`runner_for` finds the implementations through the
``cvpipe.runners`` entry points of the installed distribution.
"""

from __future__ import annotations

import builtins
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from .errors import PipelineRunError

if TYPE_CHECKING:
    from .spec import PipelineSpec

__all__ = [
    "RUNNER_ENTRY_POINTS",
    "STATES",
    "TERMINAL_STATES",
    "Runner",
    "ScheduleResult",
    "StepState",
    "SubmittedRun",
    "Target",
    "normalise_state",
    "pid_alive",
    "rfc3339",
    "runner_for",
    "wait_until_done",
]

Target = Literal["local", "kubeflow", "vertex"]

RUNNER_ENTRY_POINTS = "cvpipe.runners"
"""Entry-point group naming, per target, a factory ``(spec) -> Runner``."""

STATES: tuple[str, ...] = ("PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLING", "CANCELLED", "PAUSED", "SKIPPED", "UNKNOWN")
"""Run states of every target, in cvpipe's words."""

TERMINAL_STATES: frozenset[str] = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "SKIPPED"})
"""States a run never leaves."""

_ALIASES = {
    "QUEUED": "PENDING",
    "CANCELED": "CANCELLED",
    "CANCELING": "CANCELLING",
    "RUNTIME_STATE_UNSPECIFIED": "UNKNOWN",
    "UNSPECIFIED": "UNKNOWN",
    "ERROR": "FAILED",
    "STATE_UNSPECIFIED": "UNKNOWN",
    "CANCEL_PENDING": "CANCELLING",  # Vertex AI task state
    "NOT_TRIGGERED": "SKIPPED",  # Vertex AI task state: its upstream failed, or its condition was false
}


def normalise_state(raw: str | None) -> str:
    """Maps a Kubeflow or Vertex AI state name to one of :data:`STATES`.

    Args:
        raw: ``SUCCEEDED``, ``PIPELINE_STATE_RUNNING``, ``CANCELED``... (None: unknown).

    Returns:
        The cvpipe state.
    """
    if not raw:
        return "UNKNOWN"
    name = str(raw).upper().removeprefix("PIPELINE_STATE_")
    name = _ALIASES.get(name, name)
    return name if name in STATES else "UNKNOWN"


def rfc3339(value: Any) -> str:
    """A service's timestamp as RFC 3339 text in UTC, to the second (``2026-12-05T13:10:00Z``); "" when unset.

    Args:
        value: a ``datetime`` (naive ones are UTC), text as the service wrote it, or None.
    """
    if value is None or value == "":
        return ""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        if value.timestamp() <= 0:  # protobuf and KFP's "unset" time (1970-01-01)
            return ""
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def _parse_time(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


@dataclass
class StepState:
    """One step (pipeline task) of a remote run, as the orchestrator reports it.

    Filled by the Kubeflow and Vertex AI runners' ``get`` from the run's task
    details; cvpipe names each task after its step (``ingest``, ``validate``...).

    Attributes:
        name: the task's name (the step's name for cvpipe's own pipelines).
        state: one of :data:`STATES`.
        started: when it started (RFC 3339, UTC); "" when it has not.
        ended: when it finished (RFC 3339, UTC); "" while it runs.
        error: the task's error message, when the service gives one.
        raw_state: the service's own name for the state.
    """

    name: str
    state: str
    started: str = ""
    ended: str = ""
    error: str | None = None
    raw_state: str = ""

    @property
    def duration_s(self) -> float | None:
        """Seconds from start to end; None unless both are known."""
        start, end = _parse_time(self.started), _parse_time(self.ended)
        if start is None or end is None:
            return None
        return max(0.0, (end - start).total_seconds())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (with ``duration_s``)."""
        return {
            "name": self.name,
            "state": self.state,
            "started": self.started,
            "ended": self.ended,
            "duration_s": self.duration_s,
            "error": self.error,
            "raw_state": self.raw_state,
        }


@dataclass
class SubmittedRun:
    """A pipeline run started by a :class:`Runner`, as cvpipe reports it.

    Attributes:
        target: ``local``, ``kubeflow`` or ``vertex``.
        run_id: the id to give the runner's ``get``/``wait``/``cancel`` (local run id, KFP run id, Vertex pipeline job id).
        name: the run's display name.
        state: one of :data:`STATES`.
        url: where to look at it (a browser link, or the local run's log file).
        pipeline: the pipeline's name.
        created: creation time as the runner reports it (RFC 3339), if known.
        error: the error message of a failed run.
        details: target-specific extras (``raw_state``, ``resource_name``,
            ``pipeline_id``, ``version_id``, ``experiment_id``, ``pid``...).
        steps: the run's steps in the order the service lists them, from ``get``
            of the Kubeflow and Vertex AI runners (empty from ``list``, from the
            local runner, and while the service reports no tasks yet).
    """

    target: str
    run_id: str
    name: str
    state: str
    url: str = ""
    pipeline: str = ""
    created: str = ""
    error: str | None = None
    details: dict[str, str] = field(default_factory=dict)
    steps: list[StepState] = field(default_factory=list)

    @property
    def done(self) -> bool:
        """Whether the run reached a terminal state."""
        return self.state in TERMINAL_STATES

    @property
    def succeeded(self) -> bool:
        """Whether the run finished successfully."""
        return self.state == "SUCCEEDED"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "target": self.target,
            "run_id": self.run_id,
            "name": self.name,
            "state": self.state,
            "url": self.url,
            "pipeline": self.pipeline,
            "created": self.created,
            "error": self.error,
            "details": dict(self.details),
            "steps": [s.to_dict() for s in self.steps],
        }


@dataclass
class ScheduleResult:
    """A recurring run created by a :class:`Runner`.

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


@runtime_checkable
class Runner(Protocol):
    """Starts a spec's pipelines on one orchestrator and answers for their runs.

    Attributes:
        target: ``local``, ``kubeflow`` or ``vertex``.
    """

    target: str

    def submit(
        self,
        spec: PipelineSpec,
        *,
        pipeline: str = "training",
        until: str | None = None,
        run_name: str | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> SubmittedRun:
        """Starts a run of one of the spec's pipelines (``training`` or ``continuous-eval``) and returns at once."""
        ...

    def get(self, run_id: str) -> SubmittedRun:
        """The run's current state."""
        ...

    def list(self, *, pipeline: str | None = None, limit: int = 20) -> builtins.list[SubmittedRun]:
        """The newest runs (of one pipeline name, when given), newest first."""
        ...

    def wait(
        self,
        run_id: str,
        *,
        timeout: float | None = 3600.0,
        poll: float | None = None,
        on_change: Callable[[SubmittedRun], None] | None = None,
    ) -> SubmittedRun:
        """Waits until the run is finished; raises :class:`PipelineRunError` after ``timeout`` seconds."""
        ...

    def cancel(self, run_id: str) -> SubmittedRun:
        """Asks the run to stop; returns its state after asking."""
        ...

    def schedule(self, spec: PipelineSpec, *, pipeline: str = "auto", cron: str | None = None, name: str | None = None) -> ScheduleResult:
        """Creates (or replaces) a recurring run of the spec's pipeline on its ``schedule.cron``."""
        ...


def wait_until_done(
    fetch: Callable[[], SubmittedRun],
    timeout: float | None,
    poll: float,
    on_change: Callable[[SubmittedRun], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> SubmittedRun:
    """Polls a run until it reaches a terminal state.

    Args:
        fetch: returns the run's current state.
        timeout: seconds to wait at most (None: no limit).
        poll: seconds between polls.
        on_change: called with the run whenever its state changes (and first).
        sleep: the sleep function (tests pass a no-op).

    Returns:
        The finished run (whatever its final state: callers check ``succeeded``).

    Raises:
        PipelineRunError: the run is still not finished after ``timeout`` seconds.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    last_state: str | None = None
    while True:
        run = fetch()
        if run.state != last_state:
            last_state = run.state
            if on_change is not None:
                on_change(run)
        if run.done:
            return run
        if deadline is not None and time.monotonic() + poll > deadline:
            raise PipelineRunError(
                f"{run.target} run {run.run_id} is still {run.state} after {timeout:g}s; it keeps running: check it with `cvpipe runs show {run.run_id} --target {run.target}`"
            )
        sleep(poll)


def pid_alive(pid: int, marker: str | None = None) -> bool:
    """Whether a process is alive (and, given a marker, whether its command line contains it).

    Args:
        pid: the process id.
        marker: text its command line must contain (guards against a reused pid).

    Returns:
        True when it runs.
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if marker is None:
        return True
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return True  # no /proc: trust the pid
    if " <defunct>" in cmdline or not cmdline:
        return False
    return marker in cmdline


def runner_for(spec: PipelineSpec, target: str | None = None) -> Runner:
    """The runner a spec names for the pipelines it starts itself (``monitoring.retrain``).

    Args:
        spec: the (path-resolved) spec; ``monitoring.retrain`` holds the target and how to reach it.
        target: ``local``, ``kubeflow`` or ``vertex`` (default: ``monitoring.retrain.target``, else ``local``).

    Returns:
        The runner.

    Raises:
        PipelineRunError: no installed runner for the target (cvpipe is not installed as a distribution).
    """
    from importlib.metadata import entry_points

    if target is None:
        target = spec.monitoring.retrain.target if spec.monitoring is not None else "local"
    found = [ep for ep in entry_points(group=RUNNER_ENTRY_POINTS) if ep.name == target]
    if not found:
        raise PipelineRunError(
            f"no runner for target {target!r}: the {RUNNER_ENTRY_POINTS!r} entry points come with the installed cvpipe distribution (pip install -e .)"
        )
    factory: Callable[[PipelineSpec], Runner] = found[0].load()
    return factory(spec)

"""Run a pipeline on this machine with kfp.local (the embedded orchestrator).

Each task runs as a subprocess of the current Python environment
(``SubprocessRunner(use_venv=False)``): no container, no cluster, no pip at run
time. With ``runtime.local_runner: docker`` each task runs in the cvpipe image
instead (kfp.local's ``DockerRunner``, the spec's storage mounted as a cluster
would provide it: :mod:`pipelines.runners.docker`). A run's outputs stay under ``<runtime.root>/<pipeline>/<run id>/``,
one folder per task, and its lineage goes to the spec's MLMD store, from which
the run summary is built.

:func:`run_local` runs a pipeline in this process and returns when it is
done. :class:`LocalRunner` is the :class:`~components.core.runs.Runner` of
this machine: ``submit`` starts ``python -m pipelines.runners.local RUN_DIR``
in a session of its own (so the caller, a kfp.local task for instance, can
finish while it runs) and returns at once; ``RUN_DIR`` (under the runner's
``runs_dir``) holds the spec, ``run.json`` (what was started), ``run.log``
(the process's output) and, once it ends, ``result.json``.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import logging
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from components.core.errors import CvpipeError, PipelineRunError
from components.core.io import atomic_write_json, atomic_write_text, read_json
from components.core.lineage import ArtifactRef, LineageStore
from components.core.runs import ScheduleResult, SubmittedRun, pid_alive, wait_until_done
from components.core.spec import PipelineSpec, dump_spec, load_spec, resolve_paths
from components.user_step.api import veto_in_log

if TYPE_CHECKING:
    from .docker import ContainerTasks

__all__ = ["LocalRunner", "RunSummary", "find_veto", "main", "run_local"]


@dataclass
class RunSummary:
    """What one local run did.

    Attributes:
        run_id: the run id (KFP job name).
        run_dir: the folder holding the run's outputs.
        succeeded: whether every task succeeded.
        seconds: wall time.
        steps: per executed step: component, state, duration and properties.
        artifacts: artifacts the run recorded in MLMD.
        error: the failure message, if any.
        veto: when a user step vetoed the run: ``step``, ``after`` and ``reason``.
        in_image: for ``runtime.local_runner: docker``, the image id, mounts and containers
            the tasks ran with (:class:`~pipelines.runners.docker.ContainerTasks`); else None.
    """

    run_id: str
    run_dir: Path
    succeeded: bool
    seconds: float
    steps: list[dict[str, Any]] = field(default_factory=list)
    artifacts: list[ArtifactRef] = field(default_factory=list)
    error: str | None = None
    veto: dict[str, str] | None = None
    in_image: dict[str, Any] | None = None

    def artifact(self, kind: str) -> ArtifactRef | None:
        """The last artifact of a kind this run produced, or None."""
        found = [a for a in self.artifacts if a.kind == kind]
        return found[-1] if found else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "run_id": self.run_id,
            "run_dir": str(self.run_dir),
            "succeeded": self.succeeded,
            "seconds": round(self.seconds, 2),
            "error": self.error,
            "veto": self.veto,
            "steps": self.steps,
            "artifacts": [{"id": a.id, "kind": a.kind, "uri": a.uri, "properties": a.properties} for a in self.artifacts],
            **({"in_image": self.in_image} if self.in_image is not None else {}),
        }


def _new_dirs(root: Path, before: set[str], name: str) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(
        (p for p in root.iterdir() if p.is_dir() and p.name.startswith(name + "-") and p.name not in before),
        key=lambda p: p.stat().st_mtime,
    )


def run_local(
    spec: PipelineSpec, until: str | None = None, base_dir: str | os.PathLike[str] | None = None, pipeline: str = "training"
) -> RunSummary:
    """Runs the training (or continuous-evaluation) pipeline of a spec with kfp.local.

    Args:
        spec: the pipeline spec; relative paths are resolved against ``base_dir``.
        until: last step to run; None for the whole pipeline.
        base_dir: directory relative paths in the spec are resolved against (default: the working directory).
        pipeline: ``training`` or ``continuous-eval`` (the spec's ``monitoring`` section; its
            run folders go under ``<runtime.root>/<name>-continuous-eval/``).

    Returns:
        The run summary (also written to ``<run dir>/run.json``).

    Raises:
        PipelineRunError: a task failed; the message names the step and the run folder. When a
            user step vetoed the run, it names that step and gives its reason.
    """
    from kfp import local

    from ..compiler import build_pipeline, pipeline_display_name

    spec = resolve_paths(spec, base_dir or os.getcwd())
    name = pipeline_display_name(spec, pipeline)
    pipeline_root = Path(spec.runtime.root) / name
    pipeline_root.mkdir(parents=True, exist_ok=True)
    pipeline_func = build_pipeline(spec, pipeline, until=until)
    with contextlib.ExitStack() as stack:
        in_image: ContainerTasks | None = None
        if spec.runtime.local_runner == "docker":
            from .docker import container_tasks

            runner, in_image = stack.enter_context(container_tasks(spec))
        else:
            # Tasks are subprocesses; make anything that calls `python3` find this environment.
            bin_dir = str(Path(sys.executable).parent)
            if not os.environ.get("PATH", "").startswith(bin_dir + os.pathsep):
                os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
            # kfp.local warns that the cvpipe image is "non-Python"; the subprocess runner uses this environment by design.
            warnings.filterwarnings("ignore", message="You may be attemping to run a task", category=RuntimeWarning)
            runner = local.SubprocessRunner(use_venv=False)
        local.init(runner=runner, pipeline_root=str(pipeline_root), raise_on_error=True)
        before = {p.name for p in pipeline_root.iterdir()}
        start = time.monotonic()
        error: str | None = None
        watch = _VetoWatch(sys.stdout)  # kfp.local prints each task's log here: a component step's veto is in it
        try:
            with contextlib.redirect_stdout(watch):
                pipeline_func()
        except RuntimeError as e:
            error = str(e)
        seconds = time.monotonic() - start
    new = _new_dirs(pipeline_root, before, name)
    if not new:
        raise PipelineRunError(f"pipeline {name} did not start: {error or 'no run folder was created'}")
    run_dir = new[-1]
    run_id = run_dir.name
    store = LineageStore.for_spec(spec.runtime.metadata, base_dir=spec.runtime.root)
    if error is not None and watch.reason is not None:
        _record_component_veto(spec, run_id, error, watch.reason, store)
    steps = store.executions(run_id=run_id)
    veto = find_veto(steps)
    summary = RunSummary(
        run_id=run_id,
        run_dir=run_dir,
        succeeded=error is None,
        seconds=seconds,
        steps=steps,
        artifacts=store.artifacts_of_run(run_id),
        error=error,
        veto=veto,
        in_image=in_image.to_dict() if in_image is not None else None,
    )
    atomic_write_json(run_dir / "run.json", summary.to_dict())
    if error is not None and veto is not None:
        raise PipelineRunError(
            f"pipeline {name} run {run_id} was vetoed by step {veto['step']!r} (after {veto['after']}): {veto['reason']}; "
            f"nothing after it ran or was pushed; outputs so far are in {run_dir}"
        )
    if error is not None:
        done = [s["component"] for s in steps]
        raise PipelineRunError(
            f"pipeline {name} run {run_id} failed after {', '.join(done) or 'no step'}: {error}; "
            f"the failing step's log is printed above; outputs so far are in {run_dir}"
        )
    return summary


class _VetoWatch(io.TextIOBase):
    """Passes kfp.local's output on, keeping the reason of the last ``cvpipe.Veto`` a task's log showed."""

    def __init__(self, out: IO[str]):
        self.out = out
        self.reason: str | None = None
        self._buf = ""

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        self._buf += s
        *lines, self._buf = self._buf.split("\n")
        for line in lines:
            self.reason = veto_in_log(_ANSI.sub("", line)) or self.reason
        return self.out.write(s)

    def flush(self) -> None:
        self.out.flush()


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_FAILED_TASK = re.compile(r"Inner task failed: '([^']+)'")


def _record_component_veto(spec: PipelineSpec, run_id: str, error: str, reason: str, store: LineageStore) -> None:
    """Records the veto of the user component step that failed the run, when it is one (its lineage task never ran)."""
    from components.user_step.core import record_component_veto

    failed = _FAILED_TASK.search(_ANSI.sub("", error))
    step = next((s for s in spec.steps if failed and s.name == failed.group(1) and s.component is not None), None)
    if step is None or store.executions(run_id=run_id, component=step.name):
        return
    record_component_veto(spec, run_id, step.name, reason, store.artifacts_of_run(run_id))


def find_veto(executions: Sequence[dict[str, Any]]) -> dict[str, str] | None:
    """The user step that vetoed a run, from the run's executions (``LineageStore.executions``).

    Args:
        executions: the run's executions.

    Returns:
        ``step``, ``after`` and ``reason`` of the first vetoing step, or None.
    """
    for e in executions:
        props = e.get("properties") or {}
        if e.get("state") == "FAILED" and props.get("veto"):
            return {"step": str(e["component"]), "after": str(props.get("after") or ""), "reason": str(props["veto"])}
    return None


RUN_FILE = "run.json"
RESULT_FILE = "result.json"
LOG_FILE = "run.log"


class LocalRunner:
    """The :class:`~components.core.runs.Runner` of this machine: kfp.local runs in processes of their own.

    Args:
        runs_dir: where each submitted run gets its folder (``<runs_dir>/<run id>/``).
        base_dir: directory relative paths in submitted specs are resolved against (default: the working directory).
        in_process: run in this process instead (``submit`` returns when the run is done, its
            output on this process's terminal): what the embedded scheduler does.
        poll: seconds between checks in :meth:`wait` for a run this object did not start.
        sleep: how :meth:`wait` waits between checks (tests pass a no-op).
    """

    target = "local"

    def __init__(
        self,
        runs_dir: str | os.PathLike[str] = "runs/local-runs",
        *,
        base_dir: str | os.PathLike[str] | None = None,
        in_process: bool = False,
        poll: float = 2.0,
        sleep: Callable[[float], None] | None = None,
    ):
        self.runs_dir = Path(runs_dir)
        self.base_dir = base_dir
        self.in_process = in_process
        self.poll = poll
        self.sleep = sleep or time.sleep
        self._procs: dict[str, subprocess.Popen[bytes]] = {}

    def _dir(self, run_id: str) -> Path:
        return self.runs_dir / run_id

    def submit(
        self,
        spec: PipelineSpec,
        *,
        pipeline: str = "training",
        until: str | None = None,
        run_name: str | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> SubmittedRun:
        """Starts ``python -m pipelines.runners.local`` on the spec's pipeline and returns at once.

        Args:
            spec: the spec (relative paths are resolved against ``base_dir`` first).
            pipeline: ``training`` or ``continuous-eval``.
            until: last step to run.
            run_name: the run id (default: ``<pipeline name>-<UTC time>-<4 random hex digits>``).
            parameters: not supported locally (the spec is the parameter): must be empty.

        Returns:
            The run, ``RUNNING`` (finished when ``in_process``).

        Raises:
            PipelineRunError: parameters were given, or the run id is taken.
        """
        from ..compiler import pipeline_display_name

        if parameters:
            raise PipelineRunError("a local run takes no pipeline parameters: put them in the spec")
        resolved = resolve_paths(spec, self.base_dir or os.getcwd())
        name = pipeline_display_name(resolved, pipeline)
        run_id = run_name or f"{name}-{datetime.now(UTC).strftime('%Y%m%d%H%M%S')}-{secrets.token_hex(2)}"
        run_dir = self._dir(run_id)
        if (run_dir / RUN_FILE).exists():
            raise PipelineRunError(f"local run {run_id} exists already ({run_dir})")
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / "spec.yaml", dump_spec(resolved))
        record: dict[str, Any] = {
            "run_id": run_id,
            "name": name,
            "pipeline": pipeline,
            "until": until,
            "created": datetime.now(UTC).isoformat(),
            "pid": None,
        }
        atomic_write_json(run_dir / RUN_FILE, record)
        if self.in_process:
            _execute(run_dir)
            return self.get(run_id)
        env = dict(os.environ)
        # Inside a kfp.local task _KFP_RUNTIME is set, which strips kfp.dsl to the executor's needs;
        # the run compiles pipelines and needs all of it.
        env.pop("_KFP_RUNTIME", None)
        env.setdefault("PYTHONUNBUFFERED", "1")
        with open(run_dir / LOG_FILE, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "pipelines.runners.local", str(run_dir.resolve())],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
                env=env,
                cwd=str(run_dir),
            )
        self._procs[run_id] = proc
        record["pid"] = proc.pid
        atomic_write_json(run_dir / RUN_FILE, record)
        return self.get(run_id)

    def get(self, run_id: str) -> SubmittedRun:
        """The run's state: its ``result.json`` when it ended, else RUNNING while its process lives, else FAILED.

        Raises:
            PipelineRunError: no such run under ``runs_dir``.
        """
        run_dir = self._dir(run_id)
        if not (run_dir / RUN_FILE).is_file():
            raise PipelineRunError(f"no local run {run_id} in {self.runs_dir}")
        record = read_json(run_dir / RUN_FILE)
        run = SubmittedRun(
            target="local",
            run_id=run_id,
            name=str(record["name"]),
            state="PENDING",
            url=str(run_dir / LOG_FILE),
            pipeline=str(record["name"]),
            created=str(record.get("created") or ""),
            details={"pid": str(record.get("pid") or ""), "run_dir": str(run_dir)},
        )
        if (run_dir / RESULT_FILE).is_file():
            result = read_json(run_dir / RESULT_FILE)
            run.state, run.error = str(result["state"]), result.get("error")
            run.details.update({k: str(v) for k, v in (result.get("details") or {}).items()})
            return run
        proc = self._procs.get(run_id)
        pid = record.get("pid")
        if (proc is not None and proc.poll() is None) or (pid and pid_alive(int(pid), str(run_dir.resolve()))):
            run.state = "RUNNING"
        elif pid is not None:
            run.state = "FAILED"
            run.error = f"the run's process ended without reporting; see {run_dir / LOG_FILE}"
        return run

    def list(self, *, pipeline: str | None = None, limit: int = 20) -> builtins.list[SubmittedRun]:
        """The newest runs under ``runs_dir`` (of one pipeline name when given)."""
        if not self.runs_dir.is_dir():
            return []
        runs = [self.get(d.name) for d in self.runs_dir.iterdir() if (d / RUN_FILE).is_file()]
        runs = [r for r in runs if pipeline is None or r.pipeline == pipeline]
        return sorted(runs, key=lambda r: r.created, reverse=True)[:limit]

    def wait(
        self,
        run_id: str,
        *,
        timeout: float | None = 3600.0,
        poll: float | None = None,
        on_change: Callable[[SubmittedRun], None] | None = None,
    ) -> SubmittedRun:
        """Waits until the run ends: on its process when this object started it, else by polling ``get``.

        Raises:
            PipelineRunError: still running after ``timeout`` seconds.
        """
        proc = self._procs.get(run_id)
        if proc is not None:
            if on_change is not None:
                on_change(self.get(run_id))
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                raise PipelineRunError(
                    f"local run {run_id} is still RUNNING after {timeout:g}s; it keeps running (pid {proc.pid})"
                ) from None
            run = self.get(run_id)
            if on_change is not None:
                on_change(run)
            return run
        return wait_until_done(lambda: self.get(run_id), timeout, self.poll if poll is None else poll, on_change, self.sleep)

    def cancel(self, run_id: str) -> SubmittedRun:
        """Stops the run's process group (SIGTERM) and records it CANCELLED; a finished run keeps its state."""
        run = self.get(run_id)
        if run.done:
            return run
        pid = int(run.details.get("pid") or 0)
        if pid:
            try:
                os.killpg(pid, signal.SIGTERM)
                os.killpg(pid, signal.SIGCONT)  # a stopped process gets the SIGTERM only once it runs
            except ProcessLookupError:
                pass
            proc = self._procs.get(run_id)
            if proc is not None:
                proc.wait()
        if not (self._dir(run_id) / RESULT_FILE).is_file():
            atomic_write_json(self._dir(run_id) / RESULT_FILE, {"state": "CANCELLED", "error": "cancelled", "details": {}})
        return self.get(run_id)

    def schedule(self, spec: PipelineSpec, *, pipeline: str = "auto", cron: str | None = None, name: str | None = None) -> ScheduleResult:
        """Local pipelines are scheduled by the embedded scheduler, a process that must keep running.

        Raises:
            PipelineRunError: always; it names the command that runs the schedule (``cvpipe scheduler SPEC``).
        """
        raise PipelineRunError(
            f"this machine has no schedule service: run `cvpipe scheduler <spec of {spec.name}>`, which runs its pipeline "
            "on schedule.cron for as long as it runs"
        )


def _execute(run_dir: Path, log: logging.Logger | None = None) -> bool:
    """Runs the submitted run in ``run_dir`` and writes its ``result.json``; True when it succeeded."""
    record = read_json(run_dir / RUN_FILE)
    try:
        summary = run_local(load_spec(run_dir / "spec.yaml"), until=record.get("until"), pipeline=str(record["pipeline"]))
    except CvpipeError as e:
        atomic_write_json(run_dir / RESULT_FILE, {"state": "FAILED", "error": str(e), "details": {}})
        if log is not None:
            log.error("local run %s failed: %s", record["run_id"], e)
        return False
    details = {"kfp_run_id": summary.run_id, "kfp_run_dir": str(summary.run_dir)}
    atomic_write_json(run_dir / RESULT_FILE, {"state": "SUCCEEDED", "error": None, "details": details})
    if log is not None:
        log.info("local run %s finished: %s", record["run_id"], details)
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one submitted local run: ``python -m pipelines.runners.local RUN_DIR``.

    Args:
        argv: ``[RUN_DIR]`` (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0 when the run succeeded.
    """
    from components.core.log import configure_logging, get_logger

    configure_logging()
    run_dir = Path((sys.argv[1:] if argv is None else argv)[0])
    return 0 if _execute(run_dir, get_logger("local-run")) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Starting a retraining run and asking whether it is still running, through a :class:`~components.core.runs.Runner`.

The runner is the one the spec names (``monitoring.retrain.target``:
``local``, ``kubeflow`` or ``vertex``), built by ``pipelines`` and handed to
the trigger (:func:`components.core.runs.runner_for` when none is given), so
the trigger never imports ``pipelines``. A local run is a process of its own
(nothing inherited from the caller's pipes, so a kfp.local task that starts it
can finish while it runs); a Kubeflow or Vertex AI run is a pipeline run there.
"""

from __future__ import annotations

from typing import Any

from components.core.errors import PipelineRunError
from components.core.runs import Runner, SubmittedRun
from components.core.spec import PipelineSpec

from .state import RetrainRun

__all__ = ["launch", "run_name", "run_state"]


def run_name(spec: PipelineSpec, trigger_id: str) -> str:
    """The retraining run's name (run id of a local run, display name on Kubeflow, job id on Vertex AI).

    Args:
        spec: the monitored spec.
        trigger_id: the trigger.

    Returns:
        ``<spec name>-retrain-<trigger id>``.
    """
    return f"{spec.name}-retrain-{trigger_id}"


def launch(runner: Runner, derived: PipelineSpec, name: str) -> tuple[str, int | None, dict[str, Any]]:
    """Starts the derived spec's training pipeline.

    Args:
        runner: where it runs.
        derived: the derived spec (data plus the new labels).
        name: the run's name (:func:`run_name`).

    Returns:
        ``(run id, local process id or None, details)``.

    Raises:
        PipelineRunError: the target refused or cannot be reached.
    """
    run = runner.submit(derived, run_name=name)
    pid = run.details.get("pid")
    return run.run_id, int(pid) if pid else None, {"url": run.url, "state": run.state}


def run_state(run: RetrainRun, runner: Runner) -> SubmittedRun | None:
    """What the runner reports about a retraining run (None when it cannot be told right now).

    Args:
        run: the recorded run.
        runner: the runner it was started with.

    Returns:
        The run as the runner sees it (a run without an id is ``LOST``), or None when the
        target cannot be reached (the run keeps blocking).
    """
    if not run.run_id:
        return SubmittedRun(target=run.target, run_id="", name="", state="LOST", error="the run was never given an id")
    try:
        return runner.get(run.run_id)
    except PipelineRunError:
        return None

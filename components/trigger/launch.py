"""Starting a retraining run and asking whether it is still running: locally, on Kubeflow, on Vertex AI.

* ``local``: ``python -m components.trigger.retrain`` in a new session, its
  output in ``retrain.log`` beside the derived spec, nothing inherited from
  the caller's pipes (so a kfp.local task that starts it can finish while it
  runs). That process runs the training pipeline with ``run_local`` and, at
  the end, writes the outcome to the trigger state file and to the dataset
  artifact in ML Metadata (``retrain_state``).
* ``kubeflow``: :func:`pipelines.runners.kubeflow.submit_kubeflow` of the derived spec.
* ``vertex``: :func:`pipelines.runners.vertex.submit_vertex` of the derived spec.

The remote runners are imported only when used.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from components.core.errors import PipelineRunError
from components.core.spec import PipelineSpec, RetrainSpec

from .state import TERMINAL, RetrainRun, pid_alive

__all__ = ["LOG_FILE", "launch_local", "launch_remote", "remote_state"]

LOG_FILE = "retrain.log"
"""The local retraining process's output, beside the derived spec."""


def launch_local(
    spec_path: Path, state_path: Path, trigger_id: str, artifact_id: int | None, metadata_url: str, base_dir: str
) -> subprocess.Popen[bytes]:
    """Starts the local retraining process (detached from the caller's terminal and pipes).

    Args:
        spec_path: the derived spec (YAML).
        state_path: the trigger state file the process reports to.
        trigger_id: the trigger's id (on the command line, so the pid check can recognise the process).
        artifact_id: the dataset artifact whose ``retrain_state`` the process sets.
        metadata_url: the MLMD store URL (never with a password: the process reads it from the
            variable or file the derived spec names, and inherits this process's environment).
        base_dir: directory a relative SQLite path is resolved against.

    Returns:
        The process.
    """
    cmd = [
        sys.executable,
        "-m",
        "components.trigger.retrain",
        "--spec",
        str(spec_path),
        "--state",
        str(state_path),
        "--trigger-id",
        trigger_id,
        "--metadata",
        metadata_url,
        "--base-dir",
        base_dir,
    ]
    if artifact_id is not None:
        cmd += ["--artifact-id", str(artifact_id)]
    log = open(spec_path.parent / LOG_FILE, "ab")  # noqa: SIM115 - the child owns it
    try:
        env = dict(os.environ)
        # Inside a kfp.local task _KFP_RUNTIME is set, which strips kfp.dsl to the executor's needs;
        # the retraining process compiles pipelines and needs all of it.
        env.pop("_KFP_RUNTIME", None)
        env.setdefault("PYTHONUNBUFFERED", "1")
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            env=env,
            cwd=str(spec_path.parent),
        )
    finally:
        log.close()


def _token(retrain: RetrainSpec) -> str | None:
    return os.environ.get(retrain.token_env) if retrain.token_env else None


def launch_remote(spec: PipelineSpec, retrain: RetrainSpec, run_name: str) -> tuple[str, dict[str, Any]]:
    """Submits the derived spec's training pipeline to Kubeflow or Vertex AI.

    Args:
        spec: the derived spec.
        retrain: the retrain settings (target, host/namespace or project/region).
        run_name: display name / job id of the run.

    Returns:
        ``(run id, details)``.

    Raises:
        PipelineRunError: the target refused or cannot be reached.
    """
    if retrain.target == "kubeflow":
        from pipelines.runners.kubeflow import submit_kubeflow

        assert retrain.host is not None
        run = submit_kubeflow(
            spec,
            retrain.host,
            namespace=retrain.namespace,
            token=_token(retrain),
            run_name=run_name,
            service_account=retrain.service_account,
        )
        return run.run_id, {"host": retrain.host, "url": run.url, "state": run.state}
    if retrain.target == "vertex":
        from pipelines.runners.vertex import load_settings, submit_vertex

        settings = load_settings(retrain.settings) if retrain.settings else None
        run = submit_vertex(
            spec,
            project=retrain.project,
            region=retrain.region,
            pipeline_root=retrain.pipeline_root,
            service_account=retrain.service_account,
            api_endpoint=retrain.api_endpoint,
            settings=settings,
            job_id=run_name,
        )
        return run.run_id, {"project": retrain.project or "", "region": retrain.region or "", "url": run.url, "state": run.state}
    raise PipelineRunError(f"retrain target {retrain.target!r} is not a remote target")


def remote_state(run: RetrainRun, retrain: RetrainSpec) -> str | None:
    """The current state of a retraining run (None when it cannot be told right now).

    Args:
        run: the recorded run.
        retrain: the retrain settings (how to reach the target).

    Returns:
        A cvpipe run state (``RUNNING``, ``SUCCEEDED``...), ``LOST`` for a local process
        that is gone, or None when the target cannot be reached (the run keeps blocking).
    """
    if run.target == "local":
        return None if run.pid is not None and pid_alive(run.pid, run.trigger_id) else "LOST"
    if not run.run_id:
        return "LOST"
    try:
        if run.target == "kubeflow":
            from pipelines.runners.kubeflow import get_run

            assert retrain.host is not None
            got = get_run(run.run_id, retrain.host, namespace=retrain.namespace, token=_token(retrain))
        else:
            from pipelines.runners.vertex import get_run as vertex_get_run
            from pipelines.runners.vertex import load_settings

            settings = load_settings(retrain.settings) if retrain.settings else None
            got = vertex_get_run(run.run_id, retrain.project, retrain.region, api_endpoint=retrain.api_endpoint, settings=settings)
    except PipelineRunError:
        return None
    return got.state if got.state in TERMINAL else "RUNNING"

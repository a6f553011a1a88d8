"""Multi-worker training as a Vertex AI custom job: the train task submits it, waits, and reads the chief's outputs.

With ``train.workers: N`` and ``train.vertex_job`` set, :func:`components.train.core.run`
does not train in its own process. :func:`run_custom_job` submits one
``aiplatform.CustomJob`` whose worker pools
(:func:`~components.train.multiworker.vertex_worker_pool_specs`) are the chief
(one replica) and ``N - 1`` workers, every replica running ``python -m
components.train.worker`` with the train step's arguments in ``image``.
Vertex AI sets ``TF_CONFIG`` in each replica; the step reads its role from it
(:func:`~components.train.multiworker.task_role`): the chief trains, exports the
model, writes the report and records lineage exactly as the one-process step
does, the workers train in sync and write nothing. The task waits for the job
(``CustomJob.run``), fails with the job's own error when it fails, and returns
what the chief wrote. The task's inputs and outputs must be on storage every
replica sees at the same path: the ``/gcs/...`` paths of Vertex AI Pipelines.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from components.core.errors import TrainingError
from components.core.io import read_json
from components.core.log import get_logger
from components.core.predictor import MODEL_INFO_FILE
from components.core.spec import PipelineSpec

from .multiworker import vertex_worker_pool_specs

__all__ = ["REPORT_FILE", "custom_job_pools", "run_custom_job"]

REPORT_FILE = "training_report.json"
_log = get_logger("train")


def _label(value: str) -> str:
    return re.sub(r"[^a-z0-9_-]", "-", value.lower())[:63]


def custom_job_pools(spec: PipelineSpec, payload: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The job's worker pools: every replica runs the train step with ``payload`` (the step's arguments).

    Args:
        spec: the pipeline spec (``train.workers``, ``train.vertex_job``, ``runtime.image``).
        payload: what :mod:`components.train.worker` reads.

    Returns:
        ``worker_pool_specs`` for ``aiplatform.CustomJob``.

    Raises:
        TrainingError: ``train.vertex_job`` is not set.
    """
    job = spec.train.vertex_job
    if job is None:
        raise TrainingError("train.vertex_job is not set")
    args = ["-m", "components.train.worker", json.dumps(dict(payload), separators=(",", ":"))]
    return vertex_worker_pool_specs(
        spec.train.workers,
        job.image or spec.runtime.image,
        args,
        job.machine_type,
        job.accelerator_type,
        job.accelerator_count,
        command=("python",),
    )


def _credentials(token_env: str | None) -> Any:
    if not token_env:
        return None  # application default credentials
    token = os.environ.get(token_env, "").strip()
    if not token:
        raise TrainingError(f"train.vertex_job.token_env: the environment variable {token_env} holds no access token")
    from google.oauth2.credentials import Credentials

    return Credentials(token=token)


def run_custom_job(spec: PipelineSpec, run_id: str, payload: Mapping[str, Any], model_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Submits the training job, waits for it and reads what its chief wrote.

    Args:
        spec: the pipeline spec.
        run_id: the pipeline run id (a label of the job).
        payload: the train step's arguments for every replica (:mod:`components.train.worker`).
        model_dir: the model directory the chief writes (as this task sees it).

    Returns:
        ``(training report, model info)`` the chief wrote.

    Raises:
        TrainingError: Vertex AI refused the job, the job failed (its error is quoted), or it
            succeeded without the chief's outputs.
    """
    from google.cloud.aiplatform import initializer

    # aiplatform keeps its connection settings process-wide: set them for this job only
    config = initializer.global_config
    saved = dict(vars(config))
    try:
        name = _submit_and_wait(spec, run_id, payload)
    finally:
        vars(config).clear()
        vars(config).update(saved)
    _log.info("Vertex AI custom job %s succeeded", name)
    try:
        return read_json(model_dir / REPORT_FILE), read_json(model_dir / MODEL_INFO_FILE)
    except (OSError, ValueError) as e:
        raise TrainingError(
            f"Vertex AI custom job {name} succeeded but its chief wrote no readable {REPORT_FILE} and "
            f"{MODEL_INFO_FILE} in {model_dir} (do the replicas see the task's paths?): {e}"
        ) from None


def _submit_and_wait(spec: PipelineSpec, run_id: str, payload: Mapping[str, Any]) -> str:
    """Submits the job and waits for it; returns its resource name."""
    from google.api_core import exceptions as api_exceptions
    from google.cloud import aiplatform

    job_spec = spec.train.vertex_job
    assert job_spec is not None
    init: dict[str, Any] = {"project": job_spec.project, "location": job_spec.region, "api_transport": "rest"}
    if job_spec.api_endpoint:
        init["api_endpoint"] = job_spec.api_endpoint
    aiplatform.init(**init)
    display = f"{spec.name}-train-{spec.train.workers}-workers"[:128]
    job = aiplatform.CustomJob(
        display_name=display,
        worker_pool_specs=custom_job_pools(spec, payload),
        project=job_spec.project,
        location=job_spec.region,
        staging_bucket=job_spec.staging_bucket,
        credentials=_credentials(job_spec.token_env),
        labels={"cvpipe-pipeline": _label(spec.name), "cvpipe-run": _label(run_id) or "none", "cvpipe-step": "train"},
    )
    _log.info(
        "submitting Vertex AI custom job %s: %d replicas (the chief and %d workers) of %s on %s",
        display,
        spec.train.workers,
        spec.train.workers - 1,
        job_spec.image or spec.runtime.image,
        job_spec.machine_type,
    )
    try:
        job.run(service_account=job_spec.service_account, sync=True)
    except api_exceptions.GoogleAPICallError as e:
        raise TrainingError(f"Vertex AI refused the training job {display}: {e}") from None
    except RuntimeError:
        error = job.gca_resource.error.message if job.gca_resource.error else "no error message"
        raise TrainingError(f"Vertex AI custom job {job.resource_name} ended {job.state.name}: {error}") from None
    return str(job.resource_name)

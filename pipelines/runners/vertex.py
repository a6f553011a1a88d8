"""Run a spec's pipeline on Vertex AI Pipelines with ``google.cloud.aiplatform.PipelineJob``.

:func:`submit_vertex` compiles the spec (the YAML ``cvpipe compile``
writes) and submits it as a ``PipelineJob`` with the pipeline root, service
account, network and labels of the target project. Where those come from,
in order: the arguments, then the spec (``runtime.pipeline_root`` when it is
``gs://``), then a :class:`VertexSettings` file (``infra/vertex/settings.yaml``).

The settings also describe the project's machines: per-step machine types
(or CPU/memory) and the training accelerator. They fill what the spec leaves
unset and never override it, so one spec runs locally (kfp.local ignores
resources) and on Vertex AI without edits. Vertex AI Pipelines picks the
machine for each task from its CPU, memory and accelerator requests.

``google-cloud-aiplatform`` keeps its connection settings in a process-wide
``aiplatform.init`` configuration; every call here sets it for the duration
of the call only and puts the previous configuration back, so other users
of the library in the same process (the Vertex model registry) are not
affected. The REST transport is used. An ``http://`` API endpoint (a local
emulator or test server) gets anonymous credentials unless others are given.

Reads (getting and listing jobs, also inside :func:`cancel_run` and each poll
of :func:`wait_run`) give up after ``VertexSettings.read_timeout_s`` (10 s),
retries included, instead of the client library's two minutes, so an
endpoint that cannot be reached is reported in seconds
(:class:`~components.core.errors.RemoteUnavailable`). Submissions keep the
library's own retries.
"""

from __future__ import annotations

import builtins
import contextlib
import itertools
import os
import re
import secrets
import tempfile
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from components.core.errors import PipelineRunError, RemoteRefused, RemoteUnavailable, SpecError
from components.core.runs import StepState, rfc3339
from components.core.secrets import network_reason, redact_url
from components.core.spec import (
    METADATA_PASSWORD_ENV,
    AcceleratorSpec,
    MetadataSpec,
    PipelineSpec,
    ResourceSpec,
    RuntimeSpec,
    url_has_password,
)

from .remote import ScheduleResult, SubmittedRun, normalise_state, schedule_cron, scheduled_pipeline, vertex_cron, wait_until_done

__all__ = [
    "DEFAULT_READ_TIMEOUT_S",
    "MACHINE_TYPES",
    "MachineSettings",
    "VertexRunner",
    "VertexSettings",
    "apply_settings",
    "cancel_run",
    "get_run",
    "list_runs",
    "load_settings",
    "schedule_vertex",
    "submit_vertex",
    "wait_run",
]

MACHINE_TYPES: dict[str, tuple[int, str, str | None, int]] = {
    # name: (vCPUs, memory, accelerator, accelerator count)
    "e2-standard-4": (4, "16G", None, 0),
    "e2-standard-8": (8, "32G", None, 0),
    "e2-standard-16": (16, "64G", None, 0),
    "e2-highmem-8": (8, "64G", None, 0),
    "n1-standard-4": (4, "15G", None, 0),
    "n1-standard-8": (8, "30G", None, 0),
    "n1-standard-16": (16, "60G", None, 0),
    "n1-highmem-8": (8, "52G", None, 0),
    "n2-standard-8": (8, "32G", None, 0),
    "n2-standard-16": (16, "64G", None, 0),
    "g2-standard-4": (4, "16G", "NVIDIA_L4", 1),
    "g2-standard-8": (8, "32G", "NVIDIA_L4", 1),
    "g2-standard-24": (24, "96G", "NVIDIA_L4", 2),
    "a2-highgpu-1g": (12, "85G", "NVIDIA_TESLA_A100", 1),
    "a2-highgpu-2g": (24, "170G", "NVIDIA_TESLA_A100", 2),
}
"""Machine types settings may name, as the CPU, memory and accelerator requests that select them."""

_TRANSPORT = "rest"
DEFAULT_READ_TIMEOUT_S = 10.0
"""How long a read (get, list) may take, retries included, unless the settings say otherwise."""
_INIT_LOCK = threading.RLock()


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MachineSettings(_Model):
    """The machine of one step on Vertex AI.

    Attributes:
        machine_type: a name from :data:`MACHINE_TYPES` (sets CPU, memory and,
            for ``g2``/``a2``, the accelerator).
        cpu: CPU request (``"8"``); overrides the machine type's.
        memory: memory request (``"32G"``); overrides the machine type's.
        accelerator_type: accelerator (``NVIDIA_L4``, ``NVIDIA_TESLA_T4``,
            ``NVIDIA_TESLA_A100``, ``TPU_V5_LITEPOD``...); for the ``train`` step only.
        accelerator_count: how many.
    """

    machine_type: str | None = None
    cpu: str | None = None
    memory: str | None = None
    accelerator_type: str | None = None
    accelerator_count: int = Field(1, ge=1)

    @field_validator("machine_type")
    @classmethod
    def _known(cls, v: str | None) -> str | None:
        if v is not None and v not in MACHINE_TYPES:
            raise ValueError(f"unknown machine type {v!r}; known: {', '.join(MACHINE_TYPES)} (or give cpu and memory)")
        return v

    def resolved(self) -> tuple[str | None, str | None, str | None, int]:
        """``(cpu, memory, accelerator type, count)`` after expanding the machine type."""
        cpu, memory, acc, count = self.cpu, self.memory, self.accelerator_type, self.accelerator_count
        if self.machine_type:
            m_cpu, m_mem, m_acc, m_count = MACHINE_TYPES[self.machine_type]
            cpu = cpu or str(m_cpu)
            memory = memory or m_mem
            if acc is None and m_acc is not None:
                acc, count = m_acc, m_count
        return cpu, memory, acc, count


class VertexSettings(_Model):
    """A Google Cloud project's Vertex AI Pipelines settings (``infra/vertex/settings.yaml``).

    Attributes:
        project: project id.
        region: Vertex AI region (``europe-west4``...).
        service_account: the service account pipeline tasks run as.
        pipeline_root: ``gs://`` pipeline root (used when the spec's ``runtime.pipeline_root`` is not ``gs://``).
        staging_bucket: ``gs://`` staging bucket; ``<staging_bucket>/pipeline_root`` when no pipeline root is set.
        network: VPC network to peer with (``projects/<number>/global/networks/<name>``).
        api_endpoint: the Vertex AI API endpoint (default: the region's).
        image: component image (Artifact Registry) used when the spec keeps the default local tag.
        metadata_url: ML Metadata store of cluster runs (``mysql://user@host:port/db``), used when
            the spec keeps the default SQLite file (which a cluster task cannot share).
        labels: labels of every pipeline job.
        enable_caching: override the tasks' caching settings for every run (None: the spec's).
        read_timeout_s: seconds a read (get, list) may take at most, retries included; submissions are not bounded by it.
        machines: per step (``default``, ``ingest``, ``train``...): machine type or CPU/memory, and for ``train`` the accelerator.
    """

    project: str | None = None
    region: str | None = None
    service_account: str | None = None
    pipeline_root: str | None = None
    staging_bucket: str | None = None
    network: str | None = None
    api_endpoint: str | None = None
    image: str | None = None
    metadata_url: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    enable_caching: bool | None = None
    read_timeout_s: float = Field(DEFAULT_READ_TIMEOUT_S, gt=0)
    machines: dict[str, MachineSettings] = Field(default_factory=dict)

    @field_validator("metadata_url")
    @classmethod
    def _mysql(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith("mysql://"):
            raise ValueError("must be a mysql:// URL (a SQLite file is not shared between tasks)")
        if v is not None and url_has_password(v):
            raise ValueError(f"must not contain a password: task pods read it from ${METADATA_PASSWORD_ENV}")
        return v

    @field_validator("pipeline_root", "staging_bucket")
    @classmethod
    def _gcs(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith("gs://"):
            raise ValueError("must be a gs:// URI")
        return v

    def default_pipeline_root(self) -> str | None:
        """The settings' pipeline root: ``pipeline_root``, else ``<staging_bucket>/pipeline_root``."""
        if self.pipeline_root:
            return self.pipeline_root
        if self.staging_bucket:
            return self.staging_bucket.rstrip("/") + "/pipeline_root"
        return None


def load_settings(path: str | os.PathLike[str]) -> VertexSettings:
    """Reads a Vertex AI settings YAML file.

    Args:
        path: the file (``infra/vertex/settings.yaml``).

    Returns:
        The settings.

    Raises:
        SpecError: the file cannot be read or has invalid or unknown keys (each with its key path).
    """
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except OSError as e:
        raise SpecError([("", f"cannot read settings file: {e.strerror}")], str(p)) from None
    except yaml.YAMLError as e:
        raise SpecError([("", f"not valid YAML: {e}")], str(p)) from None
    if not isinstance(data, dict):
        raise SpecError([("", "settings must be a mapping of keys to values")], str(p))
    try:
        return VertexSettings.model_validate(data)
    except ValidationError as e:
        problems = [(".".join(str(x) for x in err["loc"]), str(err["msg"]).removeprefix("Value error, ")) for err in e.errors()]
        raise SpecError(problems, str(p)) from None


def apply_settings(spec: PipelineSpec, settings: VertexSettings | None) -> PipelineSpec:
    """The spec as it runs on Vertex AI: settings fill what the spec leaves unset (the spec always wins).

    * ``image`` replaces the default local image tag (a tag the spec names is kept);
    * ``metadata_url`` replaces the default SQLite metadata file (a URL the spec names is kept);
    * ``machines.<step>`` CPU/memory fill a step's resources where the spec has
      no value (for that step, or through its ``default``);
    * ``machines.train`` accelerator applies when the spec trains on ``cpu``;
    * with ``train.workers`` above 1 and no ``train.vertex_job``, ``train.vertex_job`` is
      filled from ``project``, ``region``, ``staging_bucket`` (else the pipeline root),
      ``service_account``, ``api_endpoint``, the image and ``machines.train`` (machine type and
      accelerator, which then go to the custom job's replicas, not to the train task, which only
      launches the job); without a project and region the train task starts its workers
      itself, inside its one machine.

    Args:
        spec: the spec.
        settings: the project's settings (None: the spec unchanged).

    Returns:
        A new spec (the given one is not modified).
    """
    if settings is None:
        return spec
    data = spec.model_dump(mode="json")
    runtime = data["runtime"]
    if settings.image and spec.runtime.image == RuntimeSpec.model_fields["image"].default:
        runtime["image"] = settings.image
    if settings.metadata_url and spec.runtime.metadata.url == MetadataSpec().url:
        runtime["metadata"]["url"] = settings.metadata_url
    resources: dict[str, dict[str, Any]] = runtime["resources"]
    blank = ResourceSpec().model_dump(mode="json")
    fallback = settings.machines.get("default")
    given = dict(resources)  # the spec's own entries: what settings never override
    for step in sorted(set(given) | set(settings.machines)):
        own = given.get(step) or (given.get("default") if step != "default" else None)
        entry = dict(own or blank)
        for machine in (settings.machines.get(step), fallback if step != "default" else None):
            if machine is None:
                continue
            cpu, memory, _, _ = machine.resolved()
            entry["cpu"] = entry.get("cpu") or cpu
            entry["memory"] = entry.get("memory") or memory
        resources[step] = entry
    train = settings.machines.get("train")
    staging = settings.staging_bucket or settings.default_pipeline_root()
    if spec.train.workers > 1 and spec.train.vertex_job is None and settings.project and settings.region and staging:
        job: dict[str, Any] = {
            "project": settings.project,
            "region": settings.region,
            "staging_bucket": staging,
            "image": runtime["image"],
            "service_account": settings.service_account,
            "api_endpoint": settings.api_endpoint,
        }
        if train is not None:
            if train.machine_type:
                job["machine_type"] = train.machine_type
            _, _, acc, count = train.resolved()
            if acc and not acc.upper().startswith("TPU"):
                job.update(accelerator_type=acc, accelerator_count=count)
        data["train"]["vertex_job"] = job
        train = None  # the replicas get the machine; the launching task needs no accelerator
    if train is not None and spec.train.accelerator.type == "cpu":
        _, _, acc, count = train.resolved()
        if acc:
            kind = "tpu" if acc.upper().startswith("TPU") else "gpu"
            data["train"]["accelerator"] = AcceleratorSpec(type=kind, kind=acc, count=count).model_dump(mode="json")
    return PipelineSpec.model_validate(data)


@contextlib.contextmanager
def _aiplatform(project: str, region: str, api_endpoint: str | None, credentials: Any) -> Iterator[Any]:
    """``aiplatform`` initialised for one call; the previous process-wide configuration is put back after."""
    from google.cloud import aiplatform
    from google.cloud.aiplatform import initializer

    if credentials is None and api_endpoint and api_endpoint.startswith("http://"):
        from google.auth.credentials import AnonymousCredentials

        credentials = AnonymousCredentials()
    with _INIT_LOCK:
        config = initializer.global_config
        saved = dict(vars(config))
        try:
            kwargs: dict[str, Any] = {"project": project, "location": region, "api_transport": _TRANSPORT}
            if api_endpoint:
                kwargs["api_endpoint"] = api_endpoint
            if credentials is not None:
                kwargs["credentials"] = credentials
            aiplatform.init(**kwargs)
            yield aiplatform
        finally:
            vars(config).clear()
            vars(config).update(saved)


def _describe(e: BaseException) -> str:
    message = getattr(e, "message", None)
    code = getattr(e, "code", None)
    if message:
        return f"{code.name if hasattr(code, 'name') else code} {message}".strip() if code else str(message)
    return f"{type(e).__name__}: {e}"


def _endpoint() -> str:
    """The Vertex AI endpoint ``aiplatform`` is configured with now (inside :func:`_aiplatform`), credentials removed."""
    from google.cloud.aiplatform import initializer

    config = initializer.global_config
    endpoint = getattr(config, "api_endpoint", None) or f"{config.location}-aiplatform.googleapis.com"
    return redact_url(str(endpoint))


def _unavailable(e: BaseException) -> tuple[str, bool] | None:
    """``(reason, timed out)`` when Vertex AI gave no answer or a 5xx one, else None (it answered: 404, 409...)."""
    from google.api_core import exceptions as gexc

    if isinstance(e, gexc.RetryError):  # retried until the deadline; the last failure says why
        cause = e.cause
        found = network_reason(cause) if cause is not None else None
        if found is not None:
            return f"{found[0]} (gave up after retrying)", found[1]
        if isinstance(cause, gexc.GoogleAPICallError):
            return f"{_describe(cause)} (gave up after retrying)", False
        return "no answer in time", True
    code = getattr(e, "code", None)
    if isinstance(e, gexc.GoogleAPICallError) and isinstance(code, int) and code >= 500:
        return _describe(e), False
    return network_reason(e)


def _vertex(what: str, fn: Callable[[], Any]) -> Any:
    """``fn()`` inside :func:`_aiplatform`; a failure becomes a PipelineRunError with Vertex AI's answer.

    Raises:
        RemoteUnavailable: no answer (connection refused, timeout) or a 5xx one.
        RemoteRefused: a 401 or 403 answer (the credentials are missing, expired or not allowed).
        PipelineRunError: any other error answer (404 for an unknown job, 409...).
    """
    from google.api_core import exceptions as gexc

    try:
        return fn()
    except PipelineRunError:
        raise
    except Exception as e:
        down = _unavailable(e)
        if down is not None:
            raise RemoteUnavailable("Vertex AI Pipelines", "vertex", _endpoint(), what, down[0], timeout=down[1]) from None
        # 401/403: Unauthorized/Forbidden over REST (Unauthenticated/PermissionDenied)
        if isinstance(e, gexc.GoogleAPICallError) and e.code in (401, 403):
            raise RemoteRefused("Vertex AI Pipelines", "vertex", _endpoint(), what, _describe(e)) from None
        raise PipelineRunError(f"Vertex AI Pipelines: {what} failed: {_describe(e)}") from None


def _read_options(seconds: float) -> dict[str, Any]:
    """``retry=`` and ``timeout=`` for a read: transient failures are retried until ``seconds`` have passed in all.

    The timeout is the deadline of every attempt, counted from the first one,
    so a server that accepts and never answers is bounded by it too.
    """
    from google.api_core import retry as gretry

    retry = gretry.Retry(predicate=gretry.if_transient_error, initial=0.25, maximum=2.0, multiplier=2.0, timeout=seconds)
    return {"retry": retry, "timeout": seconds}


def _pipeline_client(region: str) -> Any:
    """The pipeline service client ``aiplatform`` would use, with the configuration of :func:`_aiplatform`."""
    from google.cloud.aiplatform import initializer, utils

    return initializer.global_config.create_client(client_class=utils.PipelineJobClientWithOverride, location_override=region)


def _job_name(run_id: str, project: str, region: str) -> str:
    """The resource name of a job id (a resource name is returned as it is)."""
    return run_id if run_id.startswith("projects/") else f"projects/{project}/locations/{region}/pipelineJobs/{run_id}"


def _get_job(run_id: str, project: str, region: str, seconds: float) -> Any:
    """The ``PipelineJob`` resource of a job id or resource name, read with a bounded deadline.

    Raises:
        RemoteUnavailable: no answer within ``seconds`` or a 5xx one.
        PipelineRunError: any other error answer (404 for an unknown job...).
    """
    name = _job_name(run_id, project, region)
    # the client is made inside: creating it reads the credentials, which may fail
    return _vertex(f"getting pipeline job {run_id}", lambda: _pipeline_client(region).get_pipeline_job(name=name, **_read_options(seconds)))


LIST_PAGE_SIZE = 100
"""The most jobs one list call asks Vertex AI for (its own limit for ``ListPipelineJobs`` pages)."""


def _list_jobs(request: dict[str, Any], region: str, limit: int, seconds: float) -> list[Any]:
    """The ``PipelineJob`` resources of the newest ``limit`` jobs a list request finds, newest first.

    Vertex AI sorts (``order_by="create_time desc"``) and pages; only the
    pages that hold the first ``limit`` jobs are read, each with a bounded
    deadline, so a region with thousands of jobs costs one call, not a walk
    through all of them.
    """
    if limit <= 0:
        return []
    request = {**request, "order_by": "create_time desc", "page_size": min(limit, LIST_PAGE_SIZE)}

    def read() -> list[Any]:
        pages = _pipeline_client(region).list_pipeline_jobs(request=request, **_read_options(seconds))
        return list(itertools.islice(pages, limit))

    jobs: list[Any] = _vertex("listing pipeline jobs", read)
    return jobs


def _job_url(resource_name: str) -> str:
    """The Google Cloud console page of a job (the address ``aiplatform`` prints for it)."""
    fields = resource_name.split("/")
    if len(fields) != 6 or fields[0] != "projects" or fields[2] != "locations" or fields[4] != "pipelineJobs":
        return ""
    project, region, job_id = fields[1], fields[3], fields[5]
    return f"https://console.cloud.google.com/vertex-ai/locations/{region}/pipelines/runs/{job_id}?project={project}"


_VERTEX_GROUP = re.compile(r"^(condition|condition-branches|exit-handler|for-loop)-\d+$")
"""KFP's names for the DAG groups of ``dsl.If``, ``dsl.ExitHandler`` and ``dsl.ParallelFor``: no step of their own."""


def _vertex_steps(res: Any) -> list[StepState]:
    """The steps of a pipeline job from ``job_detail.task_details`` (empty until Vertex AI reports tasks).

    Left out: the job's root task (the one without a ``parent_task_id``, named
    after the pipeline) and the DAG groups of conditions, exit handlers and loops.
    """
    detail = getattr(res, "job_detail", None)
    tasks = list(getattr(detail, "task_details", None) or [])
    out: list[StepState] = []
    for t in tasks:
        name = str(t.task_name or "")
        if not name or not t.parent_task_id or _VERTEX_GROUP.match(name):
            continue
        raw = t.state.name if hasattr(t.state, "name") else str(t.state)
        error = t.error.message if t.error and t.error.message else None
        out.append(
            StepState(
                name=name,
                state=normalise_state(raw),
                started=rfc3339(t.start_time if "start_time" in t else None),
                ended=rfc3339(t.end_time if "end_time" in t else None),
                error=error,
                raw_state=raw,
            )
        )
    return out


def _to_run(res: Any, pipeline: str = "") -> SubmittedRun:
    """A :class:`SubmittedRun` of a ``PipelineJob`` resource (as the pipeline service returns it)."""
    name = str(res.name)
    fields = name.split("/")
    job_id = fields[-1] if fields else name
    raw = res.state.name if hasattr(res.state, "name") else str(res.state)
    url = _job_url(name)
    info = res.pipeline_spec.get("pipelineInfo", {}) if res.pipeline_spec else {}
    created = res.create_time.isoformat() if getattr(res, "create_time", None) else ""
    error = res.error.message if res.error and res.error.message else None
    return SubmittedRun(
        target="vertex",
        run_id=job_id,
        name=str(res.display_name),
        state=normalise_state(raw),
        url=url,
        pipeline=pipeline or str(info.get("name", "")),
        created=created,
        error=error,
        details={
            "raw_state": raw,
            "resource_name": name,
            "pipeline_root": str(res.runtime_config.gcs_output_directory or ""),
            "service_account": str(res.service_account or ""),
        },
        steps=_vertex_steps(res),
    )


def _need(value: str | None, what: str, flag: str) -> str:
    if not value:
        raise PipelineRunError(f"Vertex AI needs a {what}: pass {flag} or set it in the settings file (infra/vertex/settings.yaml)")
    return value


def _target(
    spec: PipelineSpec, settings: VertexSettings | None, project: str | None, region: str | None, pipeline_root: str | None
) -> tuple[VertexSettings, str, str, str]:
    """``(settings, project, region, gs:// pipeline root)``: arguments, then the spec's gs:// root, then the settings."""
    s = settings or VertexSettings()
    project = _need(project or s.project, "project", "--project")
    region = _need(region or s.region, "region", "--region")
    spec_root = spec.runtime.pipeline_root if (spec.runtime.pipeline_root or "").startswith("gs://") else None
    root = _need(pipeline_root or spec_root or s.default_pipeline_root(), "gs:// pipeline root", "--pipeline-root")
    if not root.startswith("gs://"):
        raise PipelineRunError(f"Vertex AI needs a gs:// pipeline root, not {root}")
    return s, project, region, root


def _job(
    aip: Any,
    package: Path,
    display_name: str,
    root: str,
    labels: dict[str, str],
    caching: bool | None,
    project: str,
    region: str,
    **extra: Any,
) -> Any:
    """The ``PipelineJob`` of a compiled package: what a submission runs and what a schedule creates runs from."""
    return _vertex(
        "building the pipeline job",
        lambda: aip.PipelineJob(
            display_name=display_name,
            template_path=str(package),
            **extra,
            pipeline_root=root,
            enable_caching=caching,
            labels=labels,
            project=project,
            location=region,
        ),
    )


def submit_vertex(
    spec: PipelineSpec,
    project: str | None = None,
    region: str | None = None,
    pipeline_root: str | None = None,
    service_account: str | None = None,
    api_endpoint: str | None = None,
    credentials: Any = None,
    *,
    settings: VertexSettings | None = None,
    job_id: str | None = None,
    network: str | None = None,
    labels: dict[str, str] | None = None,
    enable_caching: bool | None = None,
    until: str | None = None,
    parameters: dict[str, Any] | None = None,
    package_path: str | Path | None = None,
    pipeline: str = "training",
) -> SubmittedRun:
    """Compiles a spec and submits it as a Vertex AI PipelineJob.

    Args:
        spec: the pipeline spec (the same one ``cvpipe run`` runs locally).
        project: Google Cloud project (default: ``settings.project``).
        region: Vertex AI region (default: ``settings.region``).
        pipeline_root: ``gs://`` pipeline root; default: the spec's
            ``runtime.pipeline_root`` when it is ``gs://``, else the settings'.
        service_account: the service account the tasks run as (default: ``settings.service_account``).
        api_endpoint: Vertex AI endpoint (default: the settings', else the region's).
        credentials: ``google.auth`` credentials (default: application default credentials).
        settings: project settings (see :class:`VertexSettings`); they also fill
            machine and accelerator requests the spec leaves unset.
        job_id: the pipeline job id (default: ``<pipeline>-<UTC time>-<4 random hex digits>``, so
            two submissions in the same second do not collide).
        network: VPC network to peer with.
        labels: extra job labels (``cvpipe-pipeline`` and ``cvpipe-task`` are always set).
        enable_caching: override every task's caching (None: the spec's per-task settings).
        until: last step to include; None for the whole pipeline.
        parameters: pipeline parameters to override.
        package_path: an already compiled pipeline YAML to submit instead of compiling ``spec``.
        pipeline: ``training`` or ``continuous-eval``.

    Returns:
        The submitted job (usually ``PENDING``).

    Raises:
        PipelineRunError: a required setting is missing, or Vertex AI refused the job.
    """
    from ..compiler import compile_spec, pipeline_display_name

    s, project, region, root = _target(spec, settings, project, region, pipeline_root)
    effective = apply_settings(spec, settings)
    all_labels = {**s.labels, **(labels or {}), "cvpipe-pipeline": spec.name, "cvpipe-task": spec.task}
    caching = enable_caching if enable_caching is not None else s.enable_caching
    name = pipeline_display_name(spec, pipeline)
    job_id = job_id or f"{name}-{datetime.now(UTC).strftime('%Y%m%d%H%M%S')}-{secrets.token_hex(2)}"
    with tempfile.TemporaryDirectory(prefix="cvpipe-vertex-") as tmp:
        package = (
            Path(package_path) if package_path else compile_spec(effective, Path(tmp) / f"{name}.yaml", until=until, pipeline=pipeline)
        )
        with _aiplatform(project, region, api_endpoint or s.api_endpoint, credentials) as aip:
            job = _job(
                aip, package, name, root, all_labels, caching, project, region, job_id=job_id, parameter_values=dict(parameters or {})
            )
            _vertex(
                "submitting the pipeline job",
                lambda: job.submit(service_account=service_account or s.service_account, network=network or s.network),
            )
            return _to_run(job.gca_resource, pipeline=name)


def get_run(
    run_id: str,
    project: str | None = None,
    region: str | None = None,
    api_endpoint: str | None = None,
    credentials: Any = None,
    settings: VertexSettings | None = None,
) -> SubmittedRun:
    """The current state of a Vertex AI pipeline job.

    Args:
        run_id: the job id, or its full resource name.
        project: project (default: ``settings.project``).
        region: region (default: ``settings.region``).
        api_endpoint: Vertex AI endpoint.
        credentials: ``google.auth`` credentials.
        settings: project settings.

    Returns:
        The job.

    Raises:
        PipelineRunError: no such job, or Vertex AI cannot be reached.
    """
    s = settings or VertexSettings()
    project = _need(project or s.project, "project", "--project")
    region = _need(region or s.region, "region", "--region")
    with _aiplatform(project, region, api_endpoint or s.api_endpoint, credentials):
        return _to_run(_get_job(run_id, project, region, s.read_timeout_s))


def list_runs(
    project: str | None = None,
    region: str | None = None,
    pipeline: str | None = None,
    api_endpoint: str | None = None,
    credentials: Any = None,
    settings: VertexSettings | None = None,
    limit: int = 20,
) -> list[SubmittedRun]:
    """The newest pipeline jobs of a region, optionally of one pipeline.

    Args:
        project: project (default: ``settings.project``).
        region: region (default: ``settings.region``).
        pipeline: pipeline name (the spec's ``name``) to list.
        api_endpoint: Vertex AI endpoint.
        credentials: ``google.auth`` credentials.
        settings: project settings.
        limit: at most this many jobs, newest first.

    Returns:
        The jobs.

    Raises:
        PipelineRunError: Vertex AI cannot be reached or refused.
    """
    s = settings or VertexSettings()
    project = _need(project or s.project, "project", "--project")
    region = _need(region or s.region, "region", "--region")
    request: dict[str, Any] = {"parent": f"projects/{project}/locations/{region}"}
    if pipeline:
        request["filter"] = f'pipeline_name="{pipeline}"'
    with _aiplatform(project, region, api_endpoint or s.api_endpoint, credentials):
        return [_to_run(res) for res in _list_jobs(request, region, limit, s.read_timeout_s)]


def wait_run(
    run_id: str,
    project: str | None = None,
    region: str | None = None,
    timeout: float | None = 3600.0,
    poll: float = 30.0,
    api_endpoint: str | None = None,
    credentials: Any = None,
    settings: VertexSettings | None = None,
    on_change: Callable[[SubmittedRun], None] | None = None,
    sleep: Callable[[float], None] | None = None,
) -> SubmittedRun:
    """Waits until a Vertex AI pipeline job finishes.

    Args:
        run_id: the job id, or its full resource name.
        project: project (default: ``settings.project``).
        region: region (default: ``settings.region``).
        timeout: seconds to wait at most (None: no limit).
        poll: seconds between polls.
        api_endpoint: Vertex AI endpoint.
        credentials: ``google.auth`` credentials.
        settings: project settings.
        on_change: called with the job whenever its state changes.
        sleep: the sleep function (default ``time.sleep``).

    Returns:
        The finished job (check ``succeeded``).

    Raises:
        PipelineRunError: still running after ``timeout``, or Vertex AI cannot be reached.
    """
    import time

    return wait_until_done(
        lambda: get_run(run_id, project, region, api_endpoint, credentials, settings), timeout, poll, on_change, sleep or time.sleep
    )


def cancel_run(
    run_id: str,
    project: str | None = None,
    region: str | None = None,
    api_endpoint: str | None = None,
    credentials: Any = None,
    settings: VertexSettings | None = None,
) -> SubmittedRun:
    """Cancels a Vertex AI pipeline job and returns its state after asking.

    Args:
        run_id: the job id, or its full resource name.
        project: project (default: ``settings.project``).
        region: region (default: ``settings.region``).
        api_endpoint: Vertex AI endpoint.
        credentials: ``google.auth`` credentials.
        settings: project settings.

    Returns:
        The job (``CANCELLING`` or ``CANCELLED``; a finished job keeps its state).

    Raises:
        PipelineRunError: no such job, or Vertex AI cannot be reached or refused.
    """
    s = settings or VertexSettings()
    project = _need(project or s.project, "project", "--project")
    region = _need(region or s.region, "region", "--region")
    name = _job_name(run_id, project, region)
    with _aiplatform(project, region, api_endpoint or s.api_endpoint, credentials):
        _get_job(run_id, project, region, s.read_timeout_s)  # an unknown job is "not found", not a failed cancel
        _vertex(
            f"cancelling pipeline job {run_id}",
            lambda: _pipeline_client(region).cancel_pipeline_job(name=name, **_read_options(s.read_timeout_s)),
        )
        return _to_run(_get_job(run_id, project, region, s.read_timeout_s))


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
    settings: VertexSettings | None = None,
    network: str | None = None,
) -> ScheduleResult:
    """Creates (or replaces) a Vertex AI pipeline schedule of a spec's pipeline.

    The schedule creates the same ``PipelineJob`` :func:`submit_vertex`
    submits, on ``TZ=<zone> <cron>``, one run at a time. An active schedule
    of the same display name is deleted first.

    Args:
        spec: the spec (``schedule.cron`` and ``schedule.timezone`` unless ``cron`` is given).
        project: Google Cloud project (default: ``settings.project``).
        region: Vertex AI region (default: ``settings.region``).
        pipeline: ``auto`` (continuous evaluation when the spec has ``monitoring``), ``training`` or ``continuous-eval``.
        cron: a five-field cron expression overriding the spec's.
        name: the schedule's display name (default: the pipeline's name).
        pipeline_root: ``gs://`` pipeline root (default: the spec's gs:// root, else the settings').
        service_account: the service account the runs use.
        api_endpoint: Vertex AI endpoint.
        credentials: ``google.auth`` credentials.
        settings: project settings (machines, labels, image...).
        network: VPC network to peer with.

    Returns:
        The schedule.

    Raises:
        SpecError: no schedule, or no monitoring section for the continuous-evaluation pipeline.
        PipelineRunError: a required setting is missing, or Vertex AI refused.
    """
    from ..compiler import compile_spec, pipeline_display_name

    which = scheduled_pipeline(spec, pipeline)
    expr, tz = schedule_cron(spec, cron)
    s, project, region, root = _target(spec, settings, project, region, pipeline_root)
    effective = apply_settings(spec, settings)
    display = name or pipeline_display_name(spec, which)
    labels = {**s.labels, "cvpipe-pipeline": spec.name, "cvpipe-task": spec.task, "cvpipe-kind": which}
    expr_tz = vertex_cron(expr, tz)
    with tempfile.TemporaryDirectory(prefix="cvpipe-schedule-") as tmp:
        package = compile_spec(effective, Path(tmp) / f"{pipeline_display_name(spec, which)}.yaml", pipeline=which)
        with _aiplatform(project, region, api_endpoint or s.api_endpoint, credentials) as aip:
            job = _job(aip, package, display, root, labels, s.enable_caching, project, region)
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


class VertexRunner:
    """The :class:`~components.core.runs.Runner` for Vertex AI Pipelines.

    Arguments win over ``settings`` (:class:`VertexSettings`), which fill what they leave unset.

    Args:
        project: Google Cloud project.
        region: Vertex AI region.
        settings: project settings (``infra/vertex/settings.yaml``).
        pipeline_root: ``gs://`` pipeline root.
        service_account: the service account the runs use.
        api_endpoint: Vertex AI endpoint (default: the region's).
        credentials: ``google.auth`` credentials.
        network: VPC network to peer with.
        labels: extra job labels.
        enable_caching: override every task's caching.
        poll: seconds between polls in :meth:`wait`.
        sleep: how :meth:`wait` waits (tests pass a no-op).
    """

    target = "vertex"

    def __init__(
        self,
        project: str | None = None,
        region: str | None = None,
        *,
        settings: VertexSettings | None = None,
        pipeline_root: str | None = None,
        service_account: str | None = None,
        api_endpoint: str | None = None,
        credentials: Any = None,
        network: str | None = None,
        labels: dict[str, str] | None = None,
        enable_caching: bool | None = None,
        poll: float = 30.0,
        sleep: Callable[[float], None] | None = None,
    ):
        self.project = project
        self.region = region
        self.settings = settings
        self.pipeline_root = pipeline_root
        self.service_account = service_account
        self.api_endpoint = api_endpoint
        self.credentials = credentials
        self.network = network
        self.labels = dict(labels or {})
        self.enable_caching = enable_caching
        self.poll = poll
        self.sleep = sleep

    def submit(
        self,
        spec: PipelineSpec,
        *,
        pipeline: str = "training",
        until: str | None = None,
        run_name: str | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> SubmittedRun:
        """Compiles the spec's pipeline and submits it as a PipelineJob whose id is ``run_name`` (see :func:`submit_vertex`)."""
        return submit_vertex(
            spec,
            project=self.project,
            region=self.region,
            pipeline_root=self.pipeline_root,
            service_account=self.service_account,
            api_endpoint=self.api_endpoint,
            credentials=self.credentials,
            settings=self.settings,
            job_id=run_name,
            network=self.network,
            labels=self.labels,
            enable_caching=self.enable_caching,
            until=until,
            parameters=parameters,
            pipeline=pipeline,
        )

    def get(self, run_id: str) -> SubmittedRun:
        """The job's current state (see :func:`get_run`)."""
        return get_run(run_id, self.project, self.region, self.api_endpoint, self.credentials, self.settings)

    def list(self, *, pipeline: str | None = None, limit: int = 20) -> builtins.list[SubmittedRun]:
        """The newest jobs of the region, of one pipeline name when given (see :func:`list_runs`)."""
        return list_runs(self.project, self.region, pipeline, self.api_endpoint, self.credentials, self.settings, limit)

    def wait(
        self,
        run_id: str,
        *,
        timeout: float | None = 3600.0,
        poll: float | None = None,
        on_change: Callable[[SubmittedRun], None] | None = None,
    ) -> SubmittedRun:
        """Waits until the job finishes (see :func:`wait_run`)."""
        return wait_run(
            run_id,
            self.project,
            self.region,
            timeout=timeout,
            poll=self.poll if poll is None else poll,
            api_endpoint=self.api_endpoint,
            credentials=self.credentials,
            settings=self.settings,
            on_change=on_change,
            sleep=self.sleep,
        )

    def cancel(self, run_id: str) -> SubmittedRun:
        """Cancels the job (see :func:`cancel_run`)."""
        return cancel_run(run_id, self.project, self.region, self.api_endpoint, self.credentials, self.settings)

    def schedule(self, spec: PipelineSpec, *, pipeline: str = "auto", cron: str | None = None, name: str | None = None) -> ScheduleResult:
        """Creates (or replaces) a schedule (see :func:`schedule_vertex`)."""
        return schedule_vertex(
            spec,
            self.project,
            self.region,
            pipeline=pipeline,
            cron=cron,
            name=name,
            pipeline_root=self.pipeline_root,
            service_account=self.service_account,
            api_endpoint=self.api_endpoint,
            credentials=self.credentials,
            settings=self.settings,
            network=self.network,
        )

"""Run a spec's pipeline on Kubeflow Pipelines (KFP v2 API) with ``kfp.Client``.

:func:`submit_kubeflow` compiles the spec (the same YAML ``cvpipe compile``
writes), uploads it as a pipeline named after the spec, or as a new version
of that pipeline when it exists, gets or creates the experiment, and creates
a run of that version. Versions are named after the compiled YAML's digest
(``<pipeline>-<sha256[:12]>``), so submitting an unchanged spec again reuses
its version instead of piling up copies.

The spec is not edited for the cluster: the spec the pipeline was compiled
from travels as the pipeline parameters' defaults (``context`` and one ``dict``
per section), as it does locally.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import io
import json
import re
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from components.core.errors import PipelineRunError, RemoteRefused, RemoteUnavailable
from components.core.runs import StepState, rfc3339
from components.core.secrets import describe_http_error, network_reason, redact_url
from components.core.spec import PipelineSpec

from .remote import ScheduleResult, SubmittedRun, kfp_cron, normalise_state, schedule_cron, scheduled_pipeline, wait_until_done

__all__ = [
    "KubeflowConnection",
    "KubeflowRunner",
    "cancel_run",
    "get_run",
    "list_runs",
    "schedule_kubeflow",
    "submit_kubeflow",
    "wait_run",
]

_PREFLIGHT_NAMESPACE = "cvpipe-preflight"


@dataclass(frozen=True)
class KubeflowConnection:
    """How to reach a Kubeflow Pipelines API server.

    Attributes:
        host: the API endpoint (``http://localhost:8080`` after a port-forward
            of ``ml-pipeline-ui``, or the Kubeflow gateway URL ``https://.../pipeline``).
        namespace: the profile namespace in multi-user Kubeflow (None: single user).
        token: a bearer token (``existing_token`` of ``kfp.Client``), for example
            a service-account token or an identity-aware-proxy token.
        credentials: a ``kfp.client.TokenCredentialsBase`` that refreshes tokens.
        cookies: an authentication cookie string (Dex/OIDC session ``authservice_session=...``).
        ssl_ca_cert: CA bundle for a private TLS certificate.
        verify_ssl: set False only for a test cluster with a self-signed certificate.
        ui_host: base URL of the UI, for run links (default: ``host``).
    """

    host: str
    namespace: str | None = None
    token: str | None = None
    credentials: Any = None
    cookies: str | None = None
    ssl_ca_cert: str | None = None
    verify_ssl: bool | None = None
    ui_host: str | None = None

    def client(self) -> Any:
        """A ``kfp.Client`` for this server, after one health check that fails fast with the server's answer.

        ``kfp.Client`` alone retries its health check for about 25 seconds
        before giving up with a timeout that hides the cause (a wrong token
        answers 401 at once); the check is done here instead.

        Raises:
            PipelineRunError: the server cannot be reached or answers with an error.
        """
        import kfp

        with _quiet(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # "only works with KFP v2.0.0-beta.2 and later"
            try:
                # a namespace skips the client's own retried health check; the real one is put back below
                client = kfp.Client(
                    host=self.host,
                    namespace=_PREFLIGHT_NAMESPACE,
                    existing_token=self.token,
                    credentials=self.credentials,
                    cookies=self.cookies,
                    ssl_ca_cert=self.ssl_ca_cert,
                    verify_ssl=self.verify_ssl,
                    ui_host=self.ui_host,
                )
            except Exception as e:
                failure = _api_message(e)
                client = None
        if client is None:  # raised outside the except block (see _call)
            raise PipelineRunError(f"cannot set up a Kubeflow Pipelines client for {redact_url(self.host)}: {failure}")
        client._context_setting["namespace"] = self.namespace or ""
        health = _call("the health check", client._healthz_api.healthz_service_get_healthz)
        if getattr(health, "multi_user", False) and not self.namespace:
            raise PipelineRunError(f"Kubeflow Pipelines at {redact_url(self.host)} is multi-user: give the profile namespace (--namespace)")
        return client

    @property
    def ui(self) -> str:
        """Base URL of the Kubeflow Pipelines UI."""
        return (self.ui_host or self.host).rstrip("/")


Connection = KubeflowConnection | str


def _conn(connection: Connection, **overrides: Any) -> KubeflowConnection:
    base = connection if isinstance(connection, KubeflowConnection) else KubeflowConnection(host=connection)
    changes = {k: v for k, v in overrides.items() if v is not None}
    if not changes:
        return base
    return KubeflowConnection(**{**base.__dict__, **changes})


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """kfp.Client prints links ("Run details: ...") to stdout; cvpipe reports them itself."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def _api_message(e: Exception) -> str:
    """The server's message out of a kfp_server_api ApiException (or what kind of failure it was)."""
    body = getattr(e, "body", None)
    status = getattr(e, "status", None)
    if body:
        try:
            data = json.loads(body)
            msg = data.get("message") or data.get("error") or body
        except (ValueError, AttributeError):
            msg = body
        return f"HTTP {status}: {msg}" if status else str(msg)
    # not the library's text: it quotes the request's headers (the bearer token) and URL
    return describe_http_error(e)


def _endpoint_of(fn: Callable[..., Any]) -> str:
    """The API server a bound method of ``kfp.Client`` (or of one of its ``*_api`` objects) talks to, credentials removed."""
    owner = getattr(fn, "__self__", None)
    config = getattr(owner, "_existing_config", None) or getattr(getattr(owner, "api_client", None), "configuration", None)
    host = getattr(config, "host", None)
    return redact_url(str(host)) if host else "the Kubeflow Pipelines API server"


def _call(what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``; a failure becomes a PipelineRunError with the server's answer.

    Raises:
        RemoteUnavailable: no answer (connection refused, name not resolved, timeout) or a 5xx answer.
        RemoteRefused: a 401 or 403 answer (the token is missing, expired or not allowed).
        PipelineRunError: any other error answer (404 for an unknown id...).
    """
    with _quiet():
        try:
            return fn(*args, **kwargs)
        except PipelineRunError:
            raise
        except Exception as e:
            failure = _api_message(e)
            status = getattr(e, "status", None)
            network = network_reason(e) if not isinstance(status, int) else None
    # raised outside the except block: the client's exception (which may quote the token) is not kept as context
    if network is not None:
        raise RemoteUnavailable("Kubeflow Pipelines", "kubeflow", _endpoint_of(fn), what, network[0], timeout=network[1])
    if isinstance(status, int) and status >= 500:
        raise RemoteUnavailable("Kubeflow Pipelines", "kubeflow", _endpoint_of(fn), what, failure)
    if status in (401, 403):
        raise RemoteRefused("Kubeflow Pipelines", "kubeflow", _endpoint_of(fn), what, failure)
    raise PipelineRunError(f"Kubeflow Pipelines at {_endpoint_of(fn)}: {what} failed: {failure}")


def _eq_filter(key: str, value: str) -> str:
    return json.dumps({"predicates": [{"operation": "EQUALS", "key": key, "stringValue": value}]})


_KFP_GROUP = re.compile(r"^(condition|condition-branches|exit-handler|for-loop)-\d+$")
"""KFP's own names for the DAG groups ``dsl.If``, ``dsl.ExitHandler`` and ``dsl.ParallelFor`` compile to."""


def _kfp_steps(run: Any) -> list[StepState]:
    """The steps of a KFP run from ``run_details.task_details`` (empty when the server gives none).

    The Argo backend lists one task per workflow node; the steps are the
    pipeline's own tasks. Left out: the workflow's entrypoint (the one task
    without a ``parent_task_id`` when the others have one; its name is the
    Argo workflow's), ``root`` (the pipeline's DAG), the drivers ``root-driver``
    and ``<task>-driver`` (pods that resolve a task's inputs and cache hit
    before it runs), ``executor`` (the pod inside a task's node in KFP 2.0 to
    2.4; the task carries its state) and the DAG groups of conditions, exit
    handlers and loops. A failed driver or executor lends its error to its task;
    a task whose driver failed before the task itself was created is listed
    with the driver's state.
    """
    details = getattr(run, "run_details", None)
    tasks = list(getattr(details, "task_details", None) or [])
    has_parents = any(getattr(t, "parent_task_id", None) for t in tasks)
    steps: dict[str, StepState] = {}
    by_id: dict[str, str] = {}
    helpers: list[tuple[str, Any]] = []  # (owning task name or parent id, task)

    def message(t: Any) -> str | None:
        err = getattr(t, "error", None)
        return (getattr(err, "message", None) or None) if err is not None else None

    def step(t: Any, name: str) -> StepState:
        raw = str(t.state or "")
        return StepState(
            name=name,
            state=normalise_state(raw),
            started=rfc3339(getattr(t, "start_time", None)),
            ended=rfc3339(getattr(t, "end_time", None)),
            error=message(t),
            raw_state=raw,
        )

    for t in tasks:
        name = str(t.display_name or "")
        if not name or (has_parents and not getattr(t, "parent_task_id", None)):
            continue
        if name in ("root", "root-driver") or _KFP_GROUP.match(name):
            continue
        if name == "executor":
            helpers.append(("id:" + str(t.parent_task_id or ""), t))
            continue
        if name.endswith("-driver"):
            helpers.append((name.removesuffix("-driver"), t))
            continue
        steps[name] = step(t, name)  # a retried task is listed again: the last one counts
        if t.task_id:
            by_id[str(t.task_id)] = name
    for owner, t in helpers:
        name = by_id.get(owner[3:], "") if owner.startswith("id:") else owner
        if not name:
            continue
        found = steps.get(name)
        if found is None:
            if normalise_state(t.state) == "FAILED":
                steps[name] = step(t, name)
        elif found.error is None and message(t):
            found.error = message(t)
    return list(steps.values())


def _to_run(run: Any, conn: KubeflowConnection, pipeline: str = "") -> SubmittedRun:
    ref = getattr(run, "pipeline_version_reference", None)
    details = {"raw_state": str(run.state or ""), "experiment_id": str(run.experiment_id or "")}
    if ref is not None:
        details["pipeline_id"] = str(ref.pipeline_id or "")
        details["version_id"] = str(ref.pipeline_version_id or "")
    err = getattr(run, "error", None)
    message = (getattr(err, "message", None) or None) if err is not None else None
    return SubmittedRun(
        target="kubeflow",
        run_id=str(run.run_id),
        name=str(run.display_name or ""),
        state=normalise_state(run.state),
        url=f"{conn.ui}/#/runs/details/{run.run_id}",
        pipeline=pipeline,
        created=rfc3339(getattr(run, "created_at", None)),
        error=message,
        details={k: v for k, v in details.items() if v},
        steps=_kfp_steps(run),
    )


def _find_version(client: Any, pipeline_id: str, name: str) -> str | None:
    found = _call(
        "listing pipeline versions",
        client.list_pipeline_versions,
        pipeline_id=pipeline_id,
        page_size=1,
        filter=_eq_filter("display_name", name),
    )
    versions = found.pipeline_versions or []
    return str(versions[0].pipeline_version_id) if versions else None


def _upload(client: Any, package: Path, pipeline_name: str, description: str, namespace: str | None, digest: str) -> tuple[str, str]:
    """Uploads the package as a pipeline or a version of it; returns (pipeline id, version id)."""
    version_name = f"{pipeline_name}-{digest[:12]}"
    pipeline_id = _call("looking up the pipeline", client.get_pipeline_id, pipeline_name)
    if pipeline_id is None:
        created = _call(
            "uploading the pipeline",
            client.upload_pipeline,
            str(package),
            pipeline_name=pipeline_name,
            description=description,
            namespace=namespace,
        )
        pipeline_id = str(created.pipeline_id)
        found = _call(
            "listing pipeline versions", client.list_pipeline_versions, pipeline_id=pipeline_id, page_size=1, sort_by="created_at desc"
        )
        versions = found.pipeline_versions or []
        if not versions:
            raise PipelineRunError(f"Kubeflow Pipelines created pipeline {pipeline_name} ({pipeline_id}) but lists no version of it")
        return pipeline_id, str(versions[0].pipeline_version_id)
    existing = _find_version(client, pipeline_id, version_name)
    if existing is not None:
        return str(pipeline_id), existing
    version = _call(
        "uploading a pipeline version",
        client.upload_pipeline_version,
        str(package),
        pipeline_version_name=version_name,
        pipeline_id=pipeline_id,
        description=description or None,
    )
    return str(pipeline_id), str(version.pipeline_version_id)


def submit_kubeflow(
    spec: PipelineSpec,
    host: Connection,
    experiment: str | None = None,
    pipeline_name: str | None = None,
    namespace: str | None = None,
    token: str | None = None,
    credentials: Any = None,
    *,
    run_name: str | None = None,
    until: str | None = None,
    service_account: str | None = None,
    parameters: dict[str, Any] | None = None,
    package_path: str | Path | None = None,
    pipeline: str = "training",
) -> SubmittedRun:
    """Compiles a spec and starts a run of it on Kubeflow Pipelines.

    Args:
        spec: the pipeline spec (the same one ``cvpipe run`` runs locally).
        host: the API endpoint, or a :class:`KubeflowConnection`.
        experiment: experiment to file the run under (got or created; default: the spec's name).
        pipeline_name: name of the uploaded pipeline (default: the spec's name).
        namespace: profile namespace (multi-user Kubeflow).
        token: bearer token.
        credentials: a ``kfp.client.TokenCredentialsBase``.
        run_name: the run's display name (default: ``<spec name>-<UTC time>``).
        until: last step to include (``ingest`` ... ``push``); None for the whole pipeline.
        service_account: Kubernetes service account the run's pods use.
        parameters: pipeline parameters to override (the spec travels as the parameters' defaults: ``context`` and its sections).
        package_path: an already compiled pipeline YAML to submit instead of compiling ``spec``.
        pipeline: ``training`` or ``continuous-eval``.

    Returns:
        The new run (usually ``PENDING``).

    Raises:
        PipelineRunError: the server refused or could not be reached (the message carries its answer).
    """
    from ..compiler import compile_spec, pipeline_display_name

    conn = _conn(host, namespace=namespace, token=token, credentials=credentials)
    name = pipeline_name or pipeline_display_name(spec, pipeline)
    with tempfile.TemporaryDirectory(prefix="cvpipe-kfp-") as tmp:
        package = Path(package_path) if package_path else compile_spec(spec, Path(tmp) / f"{name}.yaml", until=until, pipeline=pipeline)
        digest = hashlib.sha256(package.read_bytes()).hexdigest()
        client = conn.client()
        if pipeline == "training":
            description = spec.description or f"cvpipe {spec.task} training pipeline"
        else:
            description = f"cvpipe {pipeline} pipeline of {spec.name}"
        pipeline_id, version_id = _upload(client, package, name, description, conn.namespace, digest)
    exp = _call("getting or creating the experiment", client.create_experiment, experiment or spec.name, namespace=conn.namespace)
    display = run_name or f"{spec.name}-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}"
    run = _call(
        "creating the run",
        client.run_pipeline,
        experiment_id=exp.experiment_id,
        job_name=display,
        params=dict(parameters or {}),
        pipeline_id=pipeline_id,
        version_id=version_id,
        pipeline_root=spec.runtime.pipeline_root,
        service_account=service_account,
    )
    out = _to_run(run, conn, pipeline=name)
    out.details.update(
        {"pipeline_id": pipeline_id, "version_id": version_id, "experiment_id": str(exp.experiment_id), "experiment": exp.display_name}
    )
    return out


def get_run(run_id: str, host: Connection, namespace: str | None = None, token: str | None = None, credentials: Any = None) -> SubmittedRun:
    """The current state of a Kubeflow run.

    Args:
        run_id: the run id.
        host: the API endpoint, or a :class:`KubeflowConnection`.
        namespace: profile namespace.
        token: bearer token.
        credentials: a ``kfp.client.TokenCredentialsBase``.

    Returns:
        The run.

    Raises:
        PipelineRunError: no such run, or the server cannot be reached.
    """
    conn = _conn(host, namespace=namespace, token=token, credentials=credentials)
    client = conn.client()
    return _to_run(_call(f"getting run {run_id}", client.get_run, run_id), conn)


def list_runs(
    host: Connection,
    experiment: str | None = None,
    namespace: str | None = None,
    token: str | None = None,
    credentials: Any = None,
    limit: int = 20,
) -> list[SubmittedRun]:
    """The newest runs, optionally of one experiment.

    Args:
        host: the API endpoint, or a :class:`KubeflowConnection`.
        experiment: experiment name to list (None: all runs the caller may see).
        namespace: profile namespace.
        token: bearer token.
        credentials: a ``kfp.client.TokenCredentialsBase``.
        limit: at most this many runs, newest first.

    Returns:
        The runs.

    Raises:
        PipelineRunError: the experiment does not exist, or the server cannot be reached.
    """
    conn = _conn(host, namespace=namespace, token=token, credentials=credentials)
    client = conn.client()
    experiment_id = None
    if experiment:
        found = _call(
            "looking up the experiment", client.list_experiments, filter=_eq_filter("display_name", experiment), namespace=conn.namespace
        )
        if not found.experiments:
            raise PipelineRunError(f"Kubeflow Pipelines has no experiment named {experiment!r}")
        experiment_id = found.experiments[0].experiment_id
    got = _call(
        "listing runs", client.list_runs, page_size=limit, sort_by="created_at desc", experiment_id=experiment_id, namespace=conn.namespace
    )
    return [_to_run(r, conn) for r in (got.runs or [])]


def wait_run(
    run_id: str,
    host: Connection,
    timeout: float | None = 3600.0,
    poll: float = 10.0,
    namespace: str | None = None,
    token: str | None = None,
    credentials: Any = None,
    on_change: Callable[[SubmittedRun], None] | None = None,
    sleep: Callable[[float], None] | None = None,
) -> SubmittedRun:
    """Waits until a Kubeflow run finishes.

    Args:
        run_id: the run id.
        host: the API endpoint, or a :class:`KubeflowConnection`.
        timeout: seconds to wait at most (None: no limit).
        poll: seconds between polls.
        namespace: profile namespace.
        token: bearer token.
        credentials: a ``kfp.client.TokenCredentialsBase``.
        on_change: called with the run whenever its state changes.
        sleep: the sleep function (default ``time.sleep``).

    Returns:
        The finished run (check ``succeeded``).

    Raises:
        PipelineRunError: still running after ``timeout``, or the server cannot be reached.
    """
    import time

    conn = _conn(host, namespace=namespace, token=token, credentials=credentials)
    client = conn.client()
    return wait_until_done(
        lambda: _to_run(_call(f"getting run {run_id}", client.get_run, run_id), conn), timeout, poll, on_change, sleep or time.sleep
    )


def cancel_run(
    run_id: str, host: Connection, namespace: str | None = None, token: str | None = None, credentials: Any = None
) -> SubmittedRun:
    """Terminates a Kubeflow run (its pods are stopped) and returns its state after asking.

    Args:
        run_id: the run id.
        host: the API endpoint, or a :class:`KubeflowConnection`.
        namespace: profile namespace.
        token: bearer token.
        credentials: a ``kfp.client.TokenCredentialsBase``.

    Returns:
        The run (``CANCELLING`` or ``CANCELLED``; a finished run keeps its state).

    Raises:
        PipelineRunError: no such run, or the server cannot be reached.
    """
    conn = _conn(host, namespace=namespace, token=token, credentials=credentials)
    client = conn.client()
    _call(f"terminating run {run_id}", client.terminate_run, run_id)
    return _to_run(_call(f"getting run {run_id}", client.get_run, run_id), conn)


def schedule_kubeflow(
    spec: PipelineSpec,
    host: Connection,
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

    The compiled pipeline is uploaded as :func:`submit_kubeflow` does (a
    version per compiled digest); the recurring run uses KFP's six-field cron
    (``0 <cron>``), at most one run at a time and no catch-up. A recurring run
    of the same name in the experiment is replaced.

    Args:
        spec: the spec (``schedule.cron`` is the schedule unless ``cron`` is given).
        host: the KFP API endpoint, or a :class:`KubeflowConnection`.
        pipeline: ``auto`` (continuous evaluation when the spec has ``monitoring``), ``training`` or ``continuous-eval``.
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
    from ..compiler import compile_spec, pipeline_display_name

    which = scheduled_pipeline(spec, pipeline)
    expr, tz = schedule_cron(spec, cron)
    conn = _conn(host, namespace=namespace, token=token, credentials=credentials)
    pname = pipeline_display_name(spec, which)
    display = name or pname
    warnings = []
    if tz not in ("UTC", "Etc/UTC"):
        warnings.append(f"schedule.timezone {tz}: Kubeflow evaluates cron expressions in the API server's time zone (usually UTC)")
    with tempfile.TemporaryDirectory(prefix="cvpipe-schedule-") as tmp:
        package = compile_spec(spec, Path(tmp) / f"{pname}.yaml", pipeline=which)
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


class KubeflowRunner:
    """The :class:`~components.core.runs.Runner` for Kubeflow Pipelines.

    Args:
        connection: the API endpoint, or a :class:`KubeflowConnection`.
        experiment: experiment runs and schedules are filed under (default: the spec's name;
            ``list`` lists every run the caller may see when unset).
        pipeline_name: name to upload pipelines under (default: the pipeline's name).
        service_account: Kubernetes service account of the runs' pods.
        poll: seconds between polls in :meth:`wait`.
        sleep: how :meth:`wait` waits (tests pass a no-op).
    """

    target = "kubeflow"

    def __init__(
        self,
        connection: Connection,
        *,
        experiment: str | None = None,
        pipeline_name: str | None = None,
        service_account: str | None = None,
        poll: float = 10.0,
        sleep: Callable[[float], None] | None = None,
    ):
        self.connection = _conn(connection)
        self.experiment = experiment
        self.pipeline_name = pipeline_name
        self.service_account = service_account
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
        """Compiles the spec's pipeline, uploads it and starts a run (see :func:`submit_kubeflow`)."""
        return submit_kubeflow(
            spec,
            self.connection,
            experiment=self.experiment,
            pipeline_name=self.pipeline_name,
            run_name=run_name,
            until=until,
            service_account=self.service_account,
            parameters=parameters,
            pipeline=pipeline,
        )

    def get(self, run_id: str) -> SubmittedRun:
        """The run's current state (see :func:`get_run`)."""
        return get_run(run_id, self.connection)

    def list(self, *, pipeline: str | None = None, limit: int = 20) -> builtins.list[SubmittedRun]:
        """The newest runs of the runner's experiment (all when unset); ``pipeline`` is not a filter on Kubeflow."""
        return list_runs(self.connection, experiment=self.experiment, limit=limit)

    def wait(
        self,
        run_id: str,
        *,
        timeout: float | None = 3600.0,
        poll: float | None = None,
        on_change: Callable[[SubmittedRun], None] | None = None,
    ) -> SubmittedRun:
        """Waits until the run finishes (see :func:`wait_run`)."""
        return wait_run(
            run_id, self.connection, timeout=timeout, poll=self.poll if poll is None else poll, on_change=on_change, sleep=self.sleep
        )

    def cancel(self, run_id: str) -> SubmittedRun:
        """Terminates the run (see :func:`cancel_run`)."""
        return cancel_run(run_id, self.connection)

    def schedule(self, spec: PipelineSpec, *, pipeline: str = "auto", cron: str | None = None, name: str | None = None) -> ScheduleResult:
        """Creates (or replaces) a recurring run (see :func:`schedule_kubeflow`)."""
        return schedule_kubeflow(
            spec,
            self.connection,
            pipeline=pipeline,
            cron=cron,
            name=name,
            experiment=self.experiment,
            service_account=self.service_account,
        )

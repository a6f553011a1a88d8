"""The Vertex AI Model Registry backend, through ``google-cloud-aiplatform`` over REST.

A cvpipe model ``demo`` is the Vertex AI model ``projects/P/locations/L/models/demo``
(the model id is the name); each push uploads a new version of it
(``Model.upload`` with ``parent_model``) pointing at the model's files in
Cloud Storage (``artifact_uri``) with the serving container image. Aliases
are Vertex AI version aliases (``ModelRegistry.add_version_aliases`` /
``remove_version_aliases``); listing asks Vertex AI (``list_versions``).
Metrics, blessing, lineage and alias history are kept in ML Metadata exactly
as for the local backend; archiving is recorded there only (Vertex AI has no
such state).

Every call is retried with exponential backoff (tenacity) on server errors
(5xx), throttling (429), connection errors and calls that do not answer in
time; after the last attempt it fails with a :class:`RegistryError` that
says what was tried. An upload is made idempotent by a ``cvpipe-digest``
label: before retrying, the registry looks for a version carrying the
model's digest, so a retried (or re-run) push never makes two versions.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from components.core.errors import RegistryError
from components.core.lineage import ArtifactRef, LineageStore
from components.core.log import get_logger

from ._files import model_digest
from .base import (
    AliasAction,
    AliasMove,
    ModelVersion,
    Recorder,
    RegisterRequest,
    RegisterResult,
    Registry,
    now_ms,
    validate_alias,
    validate_model_name,
)
from .local import check_model_dir

__all__ = ["DIGEST_LABEL", "VertexOptions", "VertexRegistry", "gcs_uri", "local_path"]

T = TypeVar("T")

DIGEST_LABEL = "cvpipe-digest"
"""Vertex AI label holding the first 32 hex characters of the model's digest."""


@dataclass(frozen=True)
class VertexOptions:
    """How to reach Vertex AI.

    Attributes:
        api_endpoint: API endpoint; default: the regional endpoint. ``http://host:port``
            makes the REST transport use plain HTTP (a local test server).
        credentials: ``google.auth`` credentials; default: application default credentials.
        api_transport: ``rest`` or ``grpc``.
        serving_image: serving container image of uploaded versions.
        attempts: attempts per call before giving up.
        backoff_s: first retry delay; doubles each retry.
        max_backoff_s: longest retry delay.
        request_timeout_s: a call that has not answered after this long is retried.
        upload_timeout_s: the same for an upload including its long-running operation.
    """

    api_endpoint: str | None = None
    credentials: Any = None
    api_transport: str = "rest"
    serving_image: str = "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"
    attempts: int = 5
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    request_timeout_s: float = 60.0
    upload_timeout_s: float = 1800.0


def gcs_uri(uri: str) -> str:
    """The ``gs://`` URI of a model location (``/gcs/bucket/...`` is the Cloud Storage FUSE mount).

    Args:
        uri: ``gs://...`` or ``/gcs/...``.

    Returns:
        ``gs://...``.

    Raises:
        RegistryError: the model is not in Cloud Storage.
    """
    if uri.startswith("gs://"):
        return uri
    if uri.startswith("/gcs/"):
        return "gs://" + uri[len("/gcs/") :]
    raise RegistryError(
        f"Vertex AI serves models from Cloud Storage, but {uri} is local; run the pipeline with a gs:// pipeline root "
        "or use registry.backend 'local'"
    )


def local_path(uri: str) -> str:
    """The local path of a ``gs://`` URI under the Cloud Storage FUSE mount (``/gcs/...``)."""
    return "/gcs/" + uri[len("gs://") :] if uri.startswith("gs://") else uri


class _NoAnswer(Exception):
    """A call did not answer within its deadline."""


class _TryAgain(Exception):
    """Retry this attempt (for example after a race on creating the model)."""


def _transient(e: BaseException) -> bool:
    import requests
    from google.api_core import exceptions as gexc

    if isinstance(e, _NoAnswer | _TryAgain):
        return True
    if isinstance(e, gexc.MethodNotImplemented):
        return False
    return isinstance(
        e, gexc.ServerError | gexc.TooManyRequests | gexc.RetryError | requests.exceptions.RequestException | ConnectionError | TimeoutError
    )


def _describe(e: BaseException) -> str:
    msg = getattr(e, "message", None) or str(e) or type(e).__name__
    code = getattr(e, "code", None)
    return f"{code} {msg}" if isinstance(code, int) else f"{type(e).__name__}: {msg}"


def _with_deadline(fn: Callable[[], T], seconds: float, what: str) -> T:
    """Runs ``fn`` in a daemon thread and gives up waiting after ``seconds``.

    The client library sends REST calls without a timeout; a call that never
    answers would block the push forever. The abandoned thread ends when its
    socket does.
    """
    box: dict[str, Any] = {}
    done = threading.Event()

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:
            box["error"] = e
        finally:
            done.set()

    threading.Thread(target=target, name=f"cvpipe-vertex-{what}", daemon=True).start()
    if not done.wait(seconds):
        raise _NoAnswer(f"no answer within {seconds:g}s")
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


class VertexRegistry(Registry):
    """Vertex AI Model Registry, with lineage and alias history in ML Metadata.

    Args:
        project: Google Cloud project.
        region: Vertex AI region (``us-central1``...).
        store: the lineage store.
        options: connection, serving image and retry options.
    """

    backend = "vertex"

    def __init__(self, project: str, region: str, store: LineageStore, options: VertexOptions | None = None):
        super().__init__(store, f"projects/{project}/locations/{region}")
        self.project = project
        self.region = region
        self.options = options or VertexOptions()
        self._log = get_logger("registry")

    # -- plumbing -----------------------------------------------------------------
    def _aiplatform(self) -> Any:
        from google.cloud import aiplatform

        o = self.options
        kwargs: dict[str, Any] = {"project": self.project, "location": self.region, "api_transport": o.api_transport}
        if o.api_endpoint is not None:
            kwargs["api_endpoint"] = o.api_endpoint
        if o.credentials is not None:
            kwargs["credentials"] = o.credentials
        aiplatform.init(**kwargs)
        return aiplatform

    def _call(self, what: str, fn: Callable[[], T], timeout_s: float | None = None) -> T:
        import tenacity

        # Importing aiplatform takes seconds on a cold process: do it before the per-try deadline
        # starts, or the first try of the first call times out (and later tries wait on the import lock).
        self._aiplatform()
        o = self.options

        def note(state: tenacity.RetryCallState) -> None:
            err = state.outcome.exception() if state.outcome is not None else None
            self._log.warning("Vertex AI %s: attempt %d failed (%s); retrying", what, state.attempt_number, _describe(err) if err else "?")

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(max(1, o.attempts)),
            wait=tenacity.wait_exponential(multiplier=o.backoff_s, max=o.max_backoff_s),
            retry=tenacity.retry_if_exception(_transient),
            before_sleep=note,
            reraise=True,
        )
        try:
            return retrying(_with_deadline, fn, timeout_s or o.request_timeout_s, what)
        except RegistryError:
            raise
        except Exception as e:
            if _transient(e):
                raise RegistryError(f"Vertex AI {what} failed after {o.attempts} attempts ({self.location}): {_describe(e)}") from e
            raise RegistryError(f"Vertex AI {what} failed ({self.location}): {_describe(e)}") from e

    def resource(self, model_name: str) -> str:
        """The Vertex AI resource name of a model."""
        return f"{self.location}/models/{model_name}"

    def _registry(self, model_name: str) -> Any:
        aip = self._aiplatform()
        return aip.models.ModelRegistry(
            self.resource(model_name), project=self.project, location=self.region, credentials=self.options.credentials
        )

    def _remote(self, model_name: str, filter: str | None = None) -> list[Any]:
        """Vertex AI's version list of a model (empty when the model does not exist)."""
        from google.api_core import exceptions as gexc

        def call() -> list[Any]:
            try:
                return list(self._registry(model_name).list_versions(filter=filter))
            except gexc.NotFound:
                return []

        return self._call("list versions", call)

    # -- versions -------------------------------------------------------------------
    def versions(self, model_name: str, include_archived: bool = False) -> list[ModelVersion]:
        """Versions of a model as Vertex AI lists them, oldest first, with cvpipe's records.

        A version uploaded outside cvpipe is recorded on first sight (as an
        external ``Model`` and its ``PushedModel``), so it can be resolved,
        aliased and used as a parent like any other.
        """
        validate_model_name(model_name)
        records = {int(r.properties["version"]): r for r in self._records(model_name)}
        out = []
        for info in self._remote(model_name):
            number = int(info.version_id)
            rec = records.get(number) or self._adopt(model_name, number)
            out.append(self._version_from_record(rec, aliases=list(info.version_aliases)))
        return sorted((v for v in out if include_archived or not v.archived), key=lambda v: v.version)

    def _adopt(self, model_name: str, version: int) -> ArtifactRef:
        aip = self._aiplatform()
        resource = self.resource(model_name)
        model = self._call("get model", lambda: aip.Model(resource, version=str(version), credentials=self.options.credentials))
        artifact_uri = str(model.uri or "")
        source = self.store.put_artifact(
            "Model", artifact_uri or f"{resource}@{version}", {"model_name": model_name, "registered_externally": True}
        )
        return self.store.put_artifact(
            "PushedModel",
            f"{resource}@{version}",
            {
                "model_name": model_name,
                "version": version,
                "model_dir": local_path(artifact_uri),
                "aliases": "[]",
                "alias_events": "[]",
                "blessed": False,
                "metrics": "{}",
                "archived": False,
                "source_model_id": source.id,
                "digest": str((model.labels or {}).get(DIGEST_LABEL, "")),
                "backend": self.backend,
                "registry": self.location,
                "pushed": True,
                "created_ms": now_ms(),
                "resource_name": f"{resource}@{version}",
                "artifact_uri": artifact_uri,
                "adopted": True,
            },
        )

    # -- register ---------------------------------------------------------------------
    def register(self, request: RegisterRequest, recorder: Recorder | None = None) -> RegisterResult:
        """Uploads a model as a new Vertex AI model version (see :meth:`Registry.register`).

        The first version creates the model (model id = the name); later ones
        name it as ``parent_model``. Aliases no other version holds go with
        the upload (``version_aliases``); held ones are moved afterwards.
        """
        name = validate_model_name(request.model_name)
        for a in request.aliases:
            validate_alias(a)
        src = check_model_dir(Path(request.model_dir))
        artifact_uri = gcs_uri(request.uri or str(src))
        digest = model_digest(src)
        label = digest[:32]

        found = self._find_same(name, digest, request.source_model_id)
        if found is not None:
            v = self._version_from_record(found)
            if v.archived:
                raise RegistryError(f"this model is already registered as {v.ref}, which is archived; restore it instead of pushing again")
            self._record_existing(request, recorder, found, self.store.get(request.source_model_id or v.artifact_id))
            moves = [self._move_alias(name, a, v.version, "set") for a in request.aliases]
            return RegisterResult(self.get(name, v.version), created=False, moves=moves)

        remote = self._remote(name)
        held = {a for info in remote for a in info.version_aliases}
        with_upload = [a for a in request.aliases if a not in held]
        same = self._remote(name, filter=f'labels.{DIGEST_LABEL}="{label}"') if remote else []
        if same:  # an earlier push uploaded it and stopped before recording it
            version = int(same[0].version_id)
            with_upload = [a for a in with_upload if a in same[0].version_aliases]
        else:
            version = self._upload(name, request, artifact_uri, label, exists=bool(remote), aliases=with_upload)
        source = self._source_model(request, digest)
        resource = f"{self.resource(name)}@{version}"
        self._record_version(
            request,
            recorder,
            source=source,
            version=version,
            uri=resource,
            model_dir=local_path(artifact_uri),
            digest=digest,
            extra={"resource_name": resource, "artifact_uri": artifact_uri, "serving_image": self.options.serving_image},
        )
        moves = []
        for a in request.aliases:
            if a in with_upload:  # already on the version: log it
                updates, _ = self._event_updates(name, a, version, None, "set")
                self.store.update_properties_many(updates)
                moves.append(AliasMove(name, a, None, version, "set"))
            else:
                moves.append(self._move_alias(name, a, version, "set"))
        return RegisterResult(self.get(name, version), created=True, moves=moves)

    def _upload(self, name: str, request: RegisterRequest, artifact_uri: str, label: str, exists: bool, aliases: list[str]) -> int:
        from google.api_core import exceptions as gexc

        state = {"exists": exists, "attempt": 0}

        def attempt() -> int:
            state["attempt"] += 1
            if state["attempt"] > 1:  # an earlier attempt may have landed before failing
                reg = self._registry(name)
                try:
                    same = list(reg.list_versions(filter=f'labels.{DIGEST_LABEL}="{label}"'))
                except gexc.NotFound:
                    same = []
                if same:
                    return int(same[0].version_id)
            aip = self._aiplatform()
            try:
                model = aip.Model.upload(
                    display_name=name,
                    model_id=None if state["exists"] else name,
                    parent_model=self.resource(name) if state["exists"] else None,
                    is_default_version=False,
                    version_aliases=list(aliases) or None,
                    version_description=request.description or None,
                    artifact_uri=artifact_uri,
                    serving_container_image_uri=self.options.serving_image,
                    labels={DIGEST_LABEL: label, "cvpipe-model": name},
                    project=self.project,
                    location=self.region,
                    credentials=self.options.credentials,
                    upload_request_timeout=self.options.request_timeout_s,
                    sync=True,
                )
            except gexc.Conflict as e:  # 409: another push created the model first
                state["exists"] = True
                raise _TryAgain(str(e)) from e
            return int(model.version_id)

        return self._call("upload model", attempt, timeout_s=self.options.upload_timeout_s)

    # -- aliases ------------------------------------------------------------------------
    def _move_alias(self, model_name: str, alias: str, target: int | None, action: AliasAction) -> AliasMove:
        """Moves the alias on Vertex AI (remove from the holder, add to the target), then logs it."""
        if alias == "default":
            raise RegistryError("the 'default' alias is managed by Vertex AI; use another alias")
        current = self.holder(model_name, alias)
        previous = current.version if current is not None else None
        if previous == target:
            return AliasMove(model_name, alias, previous, target, "unchanged")
        if previous is not None:
            self._call("remove version alias", lambda: self._registry(model_name).remove_version_aliases([alias], version=str(previous)))
        if target is not None:
            try:
                self._call("add version alias", lambda: self._registry(model_name).add_version_aliases([alias], version=str(target)))
            except RegistryError:
                if previous is not None:  # put it back where it was
                    try:
                        self._call(
                            "restore version alias", lambda: self._registry(model_name).add_version_aliases([alias], version=str(previous))
                        )
                    except RegistryError as e:
                        self._log.error("alias %s of %s is on no version: %s", alias, model_name, e)
                raise
        updates, _ = self._event_updates(model_name, alias, target, previous, action)
        self.store.update_properties_many(updates)
        return AliasMove(model_name, alias, previous, target, action)

    # -- archive ------------------------------------------------------------------------
    def archive(self, model_name: str, version: int, archived: bool = True) -> ModelVersion:
        """Archives a version (see :meth:`Registry.archive`); Vertex AI's own ``default`` alias does not prevent it."""
        if not archived:
            return super().archive(model_name, version, archived)
        with self._lock(model_name):
            v = self.get(model_name, version)
            held = [a for a in v.aliases if a != "default"]
            if held:
                raise RegistryError(f"{v.ref} holds aliases {', '.join(held)}; move them before archiving it")
            self.store.update_properties(v.pushed_id, {"archived": True})
            return self.get(model_name, version)

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
says what was tried.

A push is atomic and idempotent. Every uploaded version carries labels with
the model's digest (``cvpipe-digest``), the metadata store it is recorded in
(``cvpipe-metadata``, a hash of its URL) and the host and process that made it
(``cvpipe-push-host``, ``cvpipe-push-pid``), so:

* a retried upload call first looks for a version this process already
  landed (its answer may have been lost), so a retry never makes two versions;
* a push killed after Vertex AI made the version, before ML Metadata recorded
  it, leaves a version that listing hides and that the retry finds by its
  digest and records (with its blessing and metrics);
* two pushes of the same model at once both upload a version; each then lists
  the versions with its digest, the lowest version id wins and the other push
  deletes its own version (``ModelRegistry.delete_version``) and reports the
  winner as existing.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from components.core.errors import RegistryError
from components.core.lineage import ArtifactRef, LineageStore
from components.core.log import get_logger
from components.core.secrets import redact_url

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

__all__ = ["DIGEST_LABEL", "VertexHook", "VertexOptions", "VertexRegistry", "gcs_uri", "local_path"]

T = TypeVar("T")

DIGEST_LABEL = "cvpipe-digest"
"""Vertex AI label holding the first 32 hex characters of the model's digest."""

METADATA_LABEL = "cvpipe-metadata"
"""Vertex AI label holding a hash of the URL of the metadata store that records the version."""

VertexHook = Callable[[str, Path], None]
"""Called as ``hook(stage, model_dir)`` with ``"uploading"`` just before the upload call and
``"created"`` once Vertex AI holds the version, before ML Metadata records it.
Tests use it to pause or kill a push at a precise point."""


def _label_hash(text: str, n: int = 32) -> str:
    """A label value standing for ``text`` (label values allow only ``[a-z0-9_-]``)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:n]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
        wait_s: how long a push waits for a concurrent push of the same model
            (another live process) to record the version both made.
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
    wait_s: float = 120.0


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
        hook: see :data:`VertexHook`.
    """

    backend = "vertex"

    def __init__(
        self, project: str, region: str, store: LineageStore, options: VertexOptions | None = None, hook: VertexHook | None = None
    ):
        super().__init__(store, f"projects/{project}/locations/{region}")
        self.project = project
        self.region = region
        self.options = options or VertexOptions()
        self._hook = hook
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

    def _list(self, model_name: str, filter: str | None = None) -> list[Any]:
        """One ``listVersions`` call: Vertex AI's ``Model`` of each version (with its labels), oldest first."""
        reg = self._registry(model_name)
        found = list(reg.client.list_model_versions(request={"name": reg.model_resource_name, "filter": filter or ""}))
        return sorted(found, key=lambda m: int(m.version_id))

    def _remote(self, model_name: str, filter: str | None = None) -> list[Any]:
        """Vertex AI's versions of a model, oldest first (empty when the model does not exist)."""
        from google.api_core import exceptions as gexc

        def call() -> list[Any]:
            try:
                return self._list(model_name, filter)
            except gexc.NotFound:
                return []

        return self._call("list versions", call)

    # -- versions -------------------------------------------------------------------
    def versions(self, model_name: str, include_archived: bool = False) -> list[ModelVersion]:
        """Versions of a model as Vertex AI lists them, oldest first, with cvpipe's records.

        A version uploaded outside cvpipe, or by cvpipe with another metadata
        store, is recorded on first sight (as an external ``Model`` and its
        ``PushedModel``), so it can be resolved, aliased and used as a parent
        like any other. A version a push made for this metadata store becomes
        visible once that push has recorded it (a push that died before that
        leaves it to its retry).
        """
        validate_model_name(model_name)
        records = {int(r.properties["version"]): r for r in self._records(model_name)}
        mine = self._metadata_label()
        out = []
        for info in self._remote(model_name):
            number = int(info.version_id)
            rec = records.get(number)
            if rec is None:
                if (info.labels or {}).get(METADATA_LABEL) == mine:
                    continue
                rec = self._adopt(model_name, number)
            out.append(self._version_from_record(rec, aliases=list(info.version_aliases)))
        return sorted((v for v in out if include_archived or not v.archived), key=lambda v: v.version)

    def _metadata_label(self) -> str:
        return _label_hash(redact_url(self.store.url))

    def _push_labels(self) -> dict[str, str]:
        """Labels naming the process that uploads a version (to tell a live push from a dead one)."""
        return {"cvpipe-push-host": _label_hash(socket.gethostname(), 16), "cvpipe-push-pid": str(os.getpid())}

    @staticmethod
    def _filter(labels: dict[str, str]) -> str:
        return " AND ".join(f'labels.{k}="{v}"' for k, v in labels.items())

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
        the upload (``version_aliases``); held ones are moved afterwards. The
        same model pushed again returns its existing version; see the module
        docstring for crashes and concurrent pushes.
        """
        name = validate_model_name(request.model_name)
        for a in request.aliases:
            validate_alias(a)
        src = check_model_dir(Path(request.model_dir))
        artifact_uri = gcs_uri(request.uri or str(src))
        digest = model_digest(src)
        label = digest[:32]

        remote = self._remote(name)
        found = self._find_same(name, digest, request.source_model_id)
        if found is not None and int(found.properties["version"]) in {int(i.version_id) for i in remote}:
            return self._existing(request, recorder, found)

        same = self._remote(name, filter=self._filter({DIGEST_LABEL: label})) if remote else []
        if same:  # made by a push that died before recording it, or by one still running
            return self._settle(request, recorder, same[0], None, artifact_uri, digest)

        held = {a for info in remote for a in info.version_aliases}
        if self._hook is not None:
            self._hook("uploading", src)
        mine = self._upload(name, request, artifact_uri, label, exists=bool(remote), aliases=[a for a in request.aliases if a not in held])
        if self._hook is not None:
            self._hook("created", src)
        # a concurrent push of the same model may have made a lower version (none is lower than 1)
        winner = self._remote(name, filter=self._filter({DIGEST_LABEL: label}))[0] if int(mine.version_id) > 1 else mine
        return self._settle(request, recorder, winner, mine, artifact_uri, digest)

    def _existing(self, request: RegisterRequest, recorder: Recorder | None, found: ArtifactRef) -> RegisterResult:
        v = self._version_from_record(found)
        if v.archived:
            raise RegistryError(f"this model is already registered as {v.ref}, which is archived; restore it instead of pushing again")
        self._record_existing(request, recorder, found, self.store.get(request.source_model_id or v.artifact_id))
        moves = [self._move_alias(v.model_name, a, v.version, "set") for a in request.aliases]
        return RegisterResult(self.get(v.model_name, v.version), created=False, moves=moves)

    def _settle(
        self, request: RegisterRequest, recorder: Recorder | None, winner: Any, mine: Any, artifact_uri: str, digest: str
    ) -> RegisterResult:
        """Records ``winner`` (the lowest version holding this model) or defers to the push recording it."""
        name = request.model_name
        number = int(winner.version_id)
        if mine is not None and int(mine.version_id) != number:  # a concurrent push made the same model first: drop ours
            dup = str(mine.version_id)
            self._call("delete model version", lambda: self._registry(name).delete_version(dup))
            self._log.info("%s@%s duplicates %s@%d made by a concurrent push; deleted it", name, dup, name, number)
        if mine is None or int(mine.version_id) != number:
            found = self._wait_for_record(name, number, winner)
            if found is not None:
                return self._existing(request, recorder, found)
        source = self._source_model(request, digest)
        resource = f"{self.resource(name)}@{number}"
        self._record_version(
            request,
            recorder,
            source=source,
            version=number,
            uri=resource,
            model_dir=local_path(artifact_uri),
            digest=digest,
            extra={"resource_name": resource, "artifact_uri": artifact_uri, "serving_image": self.options.serving_image},
        )
        on_version = set(winner.version_aliases)
        moves = []
        for a in request.aliases:
            if a in on_version:  # went with the upload: log it
                updates, _ = self._event_updates(name, a, number, None, "set")
                self.store.update_properties_many(updates)
                moves.append(AliasMove(name, a, None, number, "set"))
            else:
                moves.append(self._move_alias(name, a, number, "set"))
        return RegisterResult(self.get(name, number), created=True, moves=moves)

    def _wait_for_record(self, name: str, number: int, info: Any) -> ArtifactRef | None:
        """The version's record once the push that made it has written it; None when that push is gone."""
        labels = dict(info.labels or {})
        if labels.get(METADATA_LABEL) != self._metadata_label():  # recorded in another store (or outside cvpipe): adopt it
            return self._record_for(name, number)
        mine = self._push_labels()
        pid = labels.get("cvpipe-push-pid", "")
        deadline = time.monotonic() + self.options.wait_s
        while True:
            rec = self._record_for(name, number)
            if rec is not None:
                return rec
            if labels.get("cvpipe-push-host") == mine["cvpipe-push-host"] and (
                not pid.isdigit() or int(pid) == os.getpid() or not _pid_alive(int(pid))
            ):
                return None
            if time.monotonic() > deadline:
                return None
            time.sleep(0.2)

    def _upload(self, name: str, request: RegisterRequest, artifact_uri: str, label: str, exists: bool, aliases: list[str]) -> Any:
        """Uploads one version; returns Vertex AI's model of it (``version_id``, ``version_aliases``, ``labels``)."""
        from google.api_core import exceptions as gexc

        labels = {DIGEST_LABEL: label, "cvpipe-model": name, METADATA_LABEL: self._metadata_label(), **self._push_labels()}
        state: dict[str, Any] = {"exists": exists, "attempt": 0, "aliases": list(aliases)}

        def attempt() -> Any:
            state["attempt"] += 1
            if state["attempt"] > 1:  # an earlier attempt of this push may have landed before failing
                try:
                    landed = self._list(name, self._filter(labels))
                except gexc.NotFound:
                    landed = []
                if landed:
                    return landed[0]
            aip = self._aiplatform()
            try:
                model = aip.Model.upload(
                    display_name=name,
                    model_id=None if state["exists"] else name,
                    parent_model=self.resource(name) if state["exists"] else None,
                    is_default_version=False,
                    version_aliases=list(state["aliases"]) or None,
                    version_description=request.description or None,
                    artifact_uri=artifact_uri,
                    serving_container_image_uri=self.options.serving_image,
                    labels=labels,
                    project=self.project,
                    location=self.region,
                    credentials=self.options.credentials,
                    upload_request_timeout=self.options.request_timeout_s,
                    sync=True,
                )
            except gexc.Conflict as e:  # 409: another push created the model first
                state["exists"] = True
                raise _TryAgain(str(e)) from e
            except (gexc.BadRequest, gexc.FailedPrecondition) as e:
                if not state["aliases"] or "alias" not in str(e):
                    raise
                state["aliases"] = []  # a concurrent push took an alias first: upload without, move them afterwards
                raise _TryAgain(str(e)) from e
            return model.gca_resource

        return self._call("upload model", attempt, timeout_s=self.options.upload_timeout_s)

    # -- aliases ------------------------------------------------------------------------
    def _move_alias(self, model_name: str, alias: str, target: int | None, action: AliasAction) -> AliasMove:
        """Moves the alias on Vertex AI (remove from the holder, add to the target), then logs it.

        The holder is the version Vertex AI says holds the alias (perhaps one a
        concurrent push has not recorded yet). When a concurrent push takes the
        alias between the two calls, Vertex AI refuses the add and the move
        starts again from the new holder.
        """
        from google.api_core import exceptions as gexc

        if alias == "default":
            raise RegistryError("the 'default' alias is managed by Vertex AI; use another alias")
        tries = max(1, self.options.attempts)
        for attempt in range(1, tries + 1):
            previous = next((int(i.version_id) for i in self._remote(model_name) if alias in i.version_aliases), None)
            if previous == target:
                return AliasMove(model_name, alias, previous, target, "unchanged")
            if previous is not None:
                self._call(
                    "remove version alias", partial(self._registry(model_name).remove_version_aliases, [alias], version=str(previous))
                )
            if target is None:
                break
            try:
                self._call("add version alias", lambda: self._registry(model_name).add_version_aliases([alias], version=str(target)))
                break
            except RegistryError as e:
                if isinstance(e.__cause__, gexc.BadRequest | gexc.FailedPrecondition) and "alias" in str(e) and attempt < tries:
                    self._log.info("alias %s of %s was taken by a concurrent change; moving it again", alias, model_name)
                    continue
                if previous is not None:  # put it back where it was
                    try:
                        self._call(
                            "restore version alias", partial(self._registry(model_name).add_version_aliases, [alias], version=str(previous))
                        )
                    except RegistryError as e2:
                        self._log.error("alias %s of %s is on no version: %s", alias, model_name, e2)
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

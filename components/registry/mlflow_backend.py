"""The MLflow Model Registry backend, through the MLflow client (``mlflow-skinny``) and a tracking server.

A cvpipe model ``demo`` is the MLflow registered model ``demo``; each push
uploads the model's files (SavedModel, TFLite, label map, ...) as the
artifacts of an MLflow run in the experiment ``cvpipe-registry`` and
registers a model version whose source is that run's ``model`` directory.
cvpipe's aliases are MLflow's registered-model aliases (``champion``,
per-application aliases); listing asks MLflow. The version carries what
cvpipe knows as tags (``cvpipe.*``): blessing, evaluation metrics, the
dataset and label map it was trained on, its parent version, and the MLMD
ids of its lineage, so MLflow's UI shows them. Metrics, blessing, lineage,
archive state and alias history are kept in ML Metadata exactly as for the
other backends (archiving is mirrored to the ``cvpipe.archived`` tag).

A push is atomic and idempotent. The files are uploaded first; the version
appears in one call once they are all there. Every version carries the
model's digest (``cvpipe.digest``) and the host and process that made it,
so:

* a push killed while uploading leaves an unfinished run and no version;
  the next push marks that run failed and deletes it;
* a push killed after MLflow made the version, before ML Metadata recorded
  it, leaves a version that the retry finds by its digest and records;
* two pushes of the same model at once both create a version; each then
  lists the versions with its digest, the lowest number wins and the other
  push deletes its own version and reports the winner as existing;
* two pushes moving the same alias (or tag) at once can both ask a
  database-backed server to insert the same row (its upsert reads, then
  inserts); the loser's answer is a uniqueness conflict, and the call is
  sent again, which then updates the row (last writer wins, as for any
  alias move).
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from components.core.errors import RegistryError
from components.core.lineage import ArtifactRef, LineageStore
from components.core.log import get_logger
from components.core.secrets import redact_url

from ._files import copy_order, model_digest
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

__all__ = ["DIGEST_TAG", "MLflowHook", "MLflowOptions", "MLflowRegistry"]

DIGEST_TAG = "cvpipe.digest"
"""Tag of a model version (and of its upload run) holding the sha256 of the model's files."""

MLflowHook = Callable[[str, Path], None]
"""Called as ``hook(stage, path)`` with ``("uploaded", file)`` after each uploaded file and
``("created", model_dir)`` once MLflow holds the version, before ML Metadata records it.
Tests use it to pause or kill a push at a precise point."""


@dataclass(frozen=True)
class MLflowOptions:
    """How the MLflow backend works.

    Attributes:
        experiment: the MLflow experiment holding the upload runs.
        artifact_path: the directory of a run's artifacts holding the model.
        wait_s: how long a push waits for a concurrent push of the same model
            (another live process) to record the version both made.
    """

    experiment: str = "cvpipe-registry"
    artifact_path: str = "model"
    wait_s: float = 120.0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_USERINFO = re.compile(r"(://[^/:@\s]+):[^@\s/]+@")


#: What SQLite, MySQL/MariaDB and PostgreSQL say when an insert loses to a concurrent one.
_LOST_RACE = re.compile(r"IntegrityError|UNIQUE constraint failed|Duplicate entry|duplicate key value", re.IGNORECASE)

#: How often an upsert that lost such a race is sent again.
UPSERT_ATTEMPTS = 4


def _lost_race(e: BaseException) -> bool:
    """True when the server refused a write because a concurrent request inserted the same row first."""
    return str(getattr(e, "error_code", "")) in {"BAD_REQUEST", "INTERNAL_ERROR", "RESOURCE_ALREADY_EXISTS"} and bool(
        _LOST_RACE.search(str(getattr(e, "message", None) or e))
    )


def _describe(e: BaseException) -> str:
    code = getattr(e, "error_code", None)
    msg = _USERINFO.sub(r"\1@", str(getattr(e, "message", None) or str(e) or type(e).__name__))
    return f"{code}: {msg}" if code else f"{type(e).__name__}: {msg}"


class MLflowRegistry(Registry):
    """MLflow Model Registry, with lineage and alias history in ML Metadata.

    Args:
        tracking_uri: the MLflow tracking server (``http://host:5000``); it serves the registry too.
        store: the lineage store.
        options: experiment and waiting options.
        hook: see :data:`MLflowHook`.
    """

    backend = "mlflow"

    def __init__(self, tracking_uri: str, store: LineageStore, options: MLflowOptions | None = None, hook: MLflowHook | None = None):
        super().__init__(store, redact_url(tracking_uri))
        self.tracking_uri = tracking_uri
        self.options = options or MLflowOptions()
        self._hook = hook
        self._client_obj: Any = None
        self._log = get_logger("registry")

    # -- plumbing -----------------------------------------------------------------
    def _client(self) -> Any:
        if self._client_obj is None:
            from mlflow import MlflowClient

            self._client_obj = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
        return self._client_obj

    def _call(self, what: str, fn: Callable[[], Any], upsert: bool = False) -> Any:
        """Runs one client call; its failure becomes a :class:`RegistryError` naming the server.

        The MLflow client retries connection errors and 429/5xx answers
        itself (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``, ``MLFLOW_HTTP_REQUEST_TIMEOUT``).
        An ``upsert`` (set alias, set tag) that lost a race with a concurrent
        insert of the same row is sent again, up to :data:`UPSERT_ATTEMPTS` times.
        """
        attempt = 1
        while True:
            try:
                return fn()
            except RegistryError:
                raise
            except Exception as e:
                if upsert and attempt < UPSERT_ATTEMPTS and _lost_race(e):
                    self._log.info("MLflow %s lost a race with a concurrent write; sending it again (%d)", what, attempt)
                    time.sleep(0.05 * attempt)
                    attempt += 1
                    continue
                raise RegistryError(f"MLflow {what} failed ({self.location}): {_describe(e)}") from e

    @staticmethod
    def _code(e: BaseException) -> str:
        cause = e.__cause__ if isinstance(e, RegistryError) else e
        return str(getattr(cause, "error_code", ""))

    def resource(self, model_name: str, version: int) -> str:
        """The MLflow URI of a model version (``models:/demo/3``)."""
        return f"models:/{model_name}/{version}"

    def _remote(self, model_name: str, digest: str | None = None) -> list[Any]:
        """MLflow's versions of a model (optionally only those with a digest), oldest first."""
        flt = f"name='{model_name}'" + (f" and tag.`{DIGEST_TAG}`='{digest}'" if digest else "")
        found = self._call("search model versions", lambda: self._client().search_model_versions(flt))
        return sorted(found, key=lambda mv: int(mv.version))

    def _alias_map(self, model_name: str) -> dict[int, list[str]]:
        """Version -> the registered-model aliases it holds (empty when the model does not exist)."""
        try:
            rm = self._call("get registered model", lambda: self._client().get_registered_model(model_name))
        except RegistryError as e:
            if self._code(e) == "RESOURCE_DOES_NOT_EXIST":
                return {}
            raise
        out: dict[int, list[str]] = {}
        for alias, version in (rm.aliases or {}).items():
            out.setdefault(int(version), []).append(str(alias))
        return out

    # -- versions -------------------------------------------------------------------
    def versions(self, model_name: str, include_archived: bool = False) -> list[ModelVersion]:
        """Versions of a model as MLflow lists them, oldest first, with cvpipe's records.

        A version registered outside cvpipe, or by cvpipe with another
        metadata store, is recorded on first sight from its tags, so it can be
        resolved, aliased and used as a parent like any other. A version a
        push made for this metadata store becomes visible once that push has
        recorded it (a push that died before that leaves it to its retry).
        """
        validate_model_name(model_name)
        records = {int(r.properties["version"]): r for r in self._records(model_name)}
        aliases = self._alias_map(model_name)
        mine = redact_url(self.store.url)
        out = []
        for mv in self._remote(model_name):
            number = int(mv.version)
            rec = records.get(number)
            if rec is None:
                if (mv.tags or {}).get("cvpipe.metadata") == mine:
                    continue
                rec = self._adopt(model_name, mv)
            out.append(self._version_from_record(rec, aliases=aliases.get(number, [])))
        return sorted((v for v in out if include_archived or not v.archived), key=lambda v: v.version)

    def _adopt(self, model_name: str, mv: Any) -> ArtifactRef:
        """Records a version MLflow holds and ML Metadata does not, from the version's tags."""
        tags = dict(mv.tags or {})
        version = int(mv.version)
        source_id = tags.get("cvpipe.source_model_id", "")
        source: ArtifactRef | None = None
        if source_id.isdigit():
            try:
                source = self.store.get(int(source_id))
            except Exception:
                source = None
        model_dir = tags.get("cvpipe.model_dir") or str(mv.source)
        if source is None:
            source = self.store.put_artifact("Model", model_dir, {"model_name": model_name, "registered_externally": True})
        try:
            metrics = {str(k): float(v) for k, v in json.loads(tags.get("cvpipe.metrics", "{}")).items()}
        except (ValueError, TypeError, AttributeError):
            metrics = {}
        blessing = tags.get("cvpipe.blessing_id", "")
        resource = self.resource(model_name, version)
        return self.store.put_artifact(
            "PushedModel",
            resource,
            {
                "model_name": model_name,
                "version": version,
                "model_dir": model_dir,
                "aliases": "[]",
                "alias_events": "[]",
                "blessed": tags.get("cvpipe.blessed") == "true",
                "metrics": json.dumps(metrics, sort_keys=True),
                "archived": tags.get("cvpipe.archived") == "true",
                "source_model_id": source.id,
                "blessing_id": int(blessing) if blessing.isdigit() else None,
                "digest": tags.get(DIGEST_TAG, ""),
                "backend": self.backend,
                "registry": self.location,
                "pushed": True,
                "created_ms": int(getattr(mv, "creation_timestamp", 0) or now_ms()),
                "resource_name": resource,
                "artifact_uri": str(mv.source),
                "adopted": True,
            },
        )

    # -- register ---------------------------------------------------------------------
    def register(self, request: RegisterRequest, recorder: Recorder | None = None) -> RegisterResult:
        """Uploads a model and registers it as a new MLflow model version (see :meth:`Registry.register`).

        The same model (same source ``Model`` artifact, or same files) pushed
        again returns its existing version; see the module docstring for
        crashes and concurrent pushes.
        """
        name = validate_model_name(request.model_name)
        for a in request.aliases:
            validate_alias(a)
        src = check_model_dir(Path(request.model_dir))
        digest = model_digest(src)

        live = {int(mv.version) for mv in self._remote(name)}
        found = self._find_same(name, digest, request.source_model_id)
        if found is not None and int(found.properties["version"]) in live:
            return self._existing(request, recorder, found)

        same = self._remote(name, digest) if live else []
        if same:  # made by a push that died before recording it, or by one still running
            return self._settle(request, recorder, same[0], src, digest, mine=None)

        self._ensure_model(name)
        run_id = self._upload(name, src, digest)
        mv = self._call(
            "create model version",
            lambda: self._client().create_model_version(
                name,
                f"runs:/{run_id}/{self.options.artifact_path}",
                run_id=run_id,
                tags=self._version_tags(request, src, digest),
                description=request.description or None,
            ),
        )
        if self._hook is not None:
            self._hook("created", src)
        winner = self._remote(name, digest)[0]
        return self._settle(request, recorder, winner, src, digest, mine=int(mv.version))

    def _existing(self, request: RegisterRequest, recorder: Recorder | None, found: ArtifactRef) -> RegisterResult:
        v = self._version_from_record(found)
        if v.archived:
            raise RegistryError(f"this model is already registered as {v.ref}, which is archived; restore it instead of pushing again")
        self._record_existing(request, recorder, found, self.store.get(request.source_model_id or v.artifact_id))
        moves = [self._move_alias(v.model_name, a, v.version, "set") for a in request.aliases]
        return RegisterResult(self.get(v.model_name, v.version), created=False, moves=moves)

    def _settle(
        self, request: RegisterRequest, recorder: Recorder | None, winner: Any, src: Path, digest: str, mine: int | None
    ) -> RegisterResult:
        """Records ``winner`` (the lowest version holding this model) or defers to the push recording it."""
        name = request.model_name
        number = int(winner.version)
        if mine is not None and mine != number:  # a concurrent push made the same version first: drop ours
            self._call("delete model version", lambda: self._client().delete_model_version(name, str(mine)))
            self._log.info("%s:%d duplicates %s:%d made by a concurrent push; deleted it", name, mine, name, number)
        if mine != number:
            found = self._wait_for_record(name, number, winner)
            if found is not None:
                return self._existing(request, recorder, found)
        source = self._source_model(request, digest)
        resource = self.resource(name, number)
        self._record_version(
            request,
            recorder,
            source=source,
            version=number,
            uri=resource,
            model_dir=str(src),
            digest=digest,
            extra={"resource_name": resource, "artifact_uri": str(winner.source), "mlflow_run_id": winner.run_id or None},
        )
        moves = [self._move_alias(name, a, number, "set") for a in request.aliases]
        return RegisterResult(self.get(name, number), created=True, moves=moves)

    def _wait_for_record(self, name: str, number: int, mv: Any) -> ArtifactRef | None:
        """The version's record once the push that made it has written it; None when that push is gone."""
        tags = dict(mv.tags or {})
        host, pid = tags.get("cvpipe.push_host"), tags.get("cvpipe.push_pid", "")
        deadline = time.monotonic() + self.options.wait_s
        while True:
            rec = self._record_for(name, number)
            if rec is not None:
                return rec
            if host == socket.gethostname() and pid.isdigit() and (int(pid) == os.getpid() or not _pid_alive(int(pid))):
                return None
            if time.monotonic() > deadline:
                return None
            time.sleep(0.2)

    def _ensure_model(self, name: str) -> None:
        try:
            self._call(
                "create registered model",
                lambda: self._client().create_registered_model(name, tags={"cvpipe.model": name}, description=f"cvpipe model {name}"),
            )
        except RegistryError as e:
            if self._code(e) != "RESOURCE_ALREADY_EXISTS":
                raise

    def _experiment_id(self) -> str:
        client = self._client()
        exp = self._call("get experiment", lambda: client.get_experiment_by_name(self.options.experiment))
        if exp is not None:
            return str(exp.experiment_id)
        try:
            return str(self._call("create experiment", lambda: client.create_experiment(self.options.experiment)))
        except RegistryError as e:
            if self._code(e) != "RESOURCE_ALREADY_EXISTS":
                raise
            return str(self._call("get experiment", lambda: client.get_experiment_by_name(self.options.experiment)).experiment_id)

    def _clean_dead_uploads(self, experiment_id: str, name: str) -> None:
        """Marks failed and deletes upload runs of this model whose process on this host is gone."""
        client = self._client()
        host = socket.gethostname()
        runs = self._call(
            "search runs",
            lambda: client.search_runs(
                [experiment_id], f"tags.`cvpipe.model` = '{name}' and attributes.status = 'RUNNING' and tags.`cvpipe.push_host` = '{host}'"
            ),
        )
        for run in runs:
            pid = str(run.data.tags.get("cvpipe.push_pid", ""))
            if pid.isdigit() and not _pid_alive(int(pid)):
                self._call("end dead upload run", partial(client.set_terminated, run.info.run_id, status="FAILED"))
                self._call("delete dead upload run", partial(client.delete_run, run.info.run_id))
                self._log.info("removed upload run %s of a push that died (pid %s)", run.info.run_id, pid)

    def _upload(self, name: str, src: Path, digest: str) -> str:
        """Uploads the model's files (serving graph last) as a new run's artifacts; returns the run id."""
        client = self._client()
        experiment_id = self._experiment_id()
        self._clean_dead_uploads(experiment_id, name)
        run = self._call(
            "create run",
            lambda: client.create_run(
                experiment_id,
                run_name=f"push-{name}",
                tags={
                    "cvpipe.model": name,
                    DIGEST_TAG: digest,
                    "cvpipe.push_host": socket.gethostname(),
                    "cvpipe.push_pid": str(os.getpid()),
                },
            ),
        )
        run_id = str(run.info.run_id)
        for rel in copy_order(src):
            sub = Path(self.options.artifact_path, rel.parent).as_posix()
            self._call(f"upload {rel}", partial(client.log_artifact, run_id, str(src / rel), sub))
            if self._hook is not None:
                self._hook("uploaded", src / rel)
        self._call("finish upload run", lambda: client.set_terminated(run_id, status="FINISHED"))
        return run_id

    def _version_tags(self, request: RegisterRequest, src: Path, digest: str) -> dict[str, str]:
        """What cvpipe knows about the version, as MLflow tags (shown in MLflow's UI)."""
        from .tree import training_inputs

        tags: dict[str, str] = {
            DIGEST_TAG: digest,
            "cvpipe.blessed": "true" if request.blessed else "false",
            "cvpipe.metrics": json.dumps({k: float(v) for k, v in request.metrics.items()}, sort_keys=True),
            "cvpipe.model_dir": str(src),
            "cvpipe.push_host": socket.gethostname(),
            "cvpipe.push_pid": str(os.getpid()),
            "cvpipe.metadata": redact_url(self.store.url),
        }
        for k, v in request.metrics.items():
            tags[f"metric.{k}"] = f"{float(v):.6g}"
        if request.blessing_id is not None:
            tags["cvpipe.blessing_id"] = str(request.blessing_id)
        if request.source_model_id is not None:
            tags["cvpipe.source_model_id"] = str(request.source_model_id)
            try:
                source = self.store.get(request.source_model_id)
                parent, dataset, run_id = training_inputs(self.store, request.source_model_id)
            except Exception:
                source, parent, dataset, run_id = None, None, None, None
            if source is not None:
                tags["cvpipe.lineage_id"] = f"Model #{source.id}"
            if run_id:
                tags["cvpipe.run_id"] = run_id
            if dataset is not None:
                tags["cvpipe.dataset"] = dataset.describe()
            if parent is not None:
                refs = [
                    f"{r.properties['model_name']}:{r.properties['version']}"
                    for r in self._records()
                    if r.properties.get("source_model_id") == parent
                ]
                tags["cvpipe.parent"] = ", ".join(refs) or f"Model #{parent} (not registered)"
        label_map = src / "label_map.json"
        try:
            info = json.loads(label_map.read_text())
            if isinstance(info, dict):
                tags["cvpipe.label_map"] = f"version {info.get('version', '?')}, {len(info.get('classes') or {})} classes"
        except (OSError, ValueError):
            pass
        return tags

    # -- aliases and archive ------------------------------------------------------------
    def _move_alias(self, model_name: str, alias: str, target: int | None, action: AliasAction) -> AliasMove:
        """Moves the registered-model alias on MLflow (one call), then logs it in ML Metadata."""
        current = self.holder(model_name, alias)
        previous = current.version if current is not None else None
        if previous == target:
            return AliasMove(model_name, alias, previous, target, "unchanged")
        client = self._client()
        if target is not None:
            self._call("set alias", lambda: client.set_registered_model_alias(model_name, alias, str(target)), upsert=True)
        else:
            self._call("delete alias", lambda: client.delete_registered_model_alias(model_name, alias))
        updates, _ = self._event_updates(model_name, alias, target, previous, action)
        self.store.update_properties_many(updates)
        return AliasMove(model_name, alias, previous, target, action)

    def archive(self, model_name: str, version: int, archived: bool = True) -> ModelVersion:
        """Archives a version (see :meth:`Registry.archive`) and mirrors it to the version's ``cvpipe.archived`` tag."""
        v = super().archive(model_name, version, archived)
        self._call(
            "set archived tag",
            lambda: self._client().set_model_version_tag(model_name, str(version), "cvpipe.archived", "true" if archived else "false"),
            upsert=True,
        )
        return v

    def set_tags(self, model_name: str, version: int, tags: Mapping[str, str]) -> None:
        """Adds tags to a model version (for example the tracking run that trained it).

        Args:
            model_name: the model.
            version: the version.
            tags: tag name -> value.
        """
        for k, val in tags.items():
            self._call("set tag", partial(self._client().set_model_version_tag, model_name, str(version), k, val), upsert=True)

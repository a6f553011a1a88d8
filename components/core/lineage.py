"""Lineage in ML Metadata (MLMD): what every step read and wrote.

:class:`LineageStore` wraps an MLMD store (a SQLite file by default, MySQL by
URL) with cvpipe's artifact types, a context per pipeline and per run, and
executions linked to their input and output artifacts by events. Components
call :meth:`LineageStore.record_execution` once, at the end of their work,
so a failed step never leaves half-recorded lineage. :meth:`LineageStore.upstream`
walks the graph back from any artifact, which is how a model answers which
dataset, label map, images, parent model and run it came from.

Artifacts are found again by URI: a KFP component knows the URIs of its input
artifacts, and the component that wrote them recorded those URIs.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from .errors import LineageError
from .secrets import read_secret, redact_url, scrub
from .spec import METADATA_PASSWORD_ENV, MetadataSpec, url_has_password

__all__ = [
    "ARTIFACT_KINDS",
    "MYSQL_PASSWORD_ENV",
    "ArtifactRef",
    "LineageGraph",
    "LineageStore",
    "MissingStoreError",
    "NewArtifact",
    "connection_config",
    "sqlite_path",
]

ARTIFACT_KINDS: dict[str, str] = {
    "LabelMap": "a versioned label map",
    "RawDataset": "annotated images before validation (an ingest source or manifest)",
    "Manifest": "the canonical dataset manifest",
    "QuarantineReport": "items a step rejected, with reasons",
    "Examples": "sharded TFRecords",
    "ExampleStatistics": "TFDV statistics",
    "Schema": "a TFDV schema",
    "ExampleAnomalies": "TFDV anomalies and image checks",
    "HyperParameters": "best hyperparameters of a search",
    "Model": "a trained model (SavedModel)",
    "ModelEvaluation": "evaluation metrics of a model (and its baseline)",
    "ModelBlessing": "whether a model passed its thresholds",
    "PushedModel": "a model version in a registry",
    "PredictionLog": "logged production predictions",
    "LabellingBatch": "a batch of images sent for human labelling",
    "DriftReport": "drift of production data against training data",
    "Alert": "an alert sent to on-call staff",
    "Report": "a human-readable report (HTML/Markdown/PNG)",
    "StepOutput": "what a user step wrote (its step.json and any files of its own)",
}
"""Every artifact type cvpipe records, with what it is."""

MYSQL_PASSWORD_ENV = METADATA_PASSWORD_ENV
"""Environment variable holding the MySQL password when the spec names no other source."""

_TYPE_PREFIX = "cvpipe."
_PIPELINE = "cvpipe.Pipeline"
_RUN = "cvpipe.PipelineRun"


@dataclass(frozen=True)
class ArtifactRef:
    """An artifact recorded in MLMD.

    Attributes:
        id: MLMD artifact id.
        kind: one of :data:`ARTIFACT_KINDS`.
        uri: where its content lives.
        properties: its custom properties.
        created_ms: creation time, milliseconds since the epoch.
    """

    id: int
    kind: str
    uri: str
    properties: dict[str, Any] = field(default_factory=dict)
    created_ms: int = 0


@dataclass(frozen=True)
class NewArtifact:
    """An artifact an execution produced, not yet recorded.

    Attributes:
        kind: one of :data:`ARTIFACT_KINDS`.
        uri: where its content lives.
        properties: custom properties (str, int, float, bool; others stored as JSON).
    """

    kind: str
    uri: str
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass
class LineageNode:
    """One artifact in an upstream graph and the execution that produced it.

    Attributes:
        artifact: the artifact.
        execution: ``(id, component, properties)`` of the producing execution, or None for an external input.
        inputs: ``(event path, upstream node)`` pairs the execution read.
    """

    artifact: ArtifactRef
    execution: tuple[int, str, dict[str, Any]] | None = None
    inputs: list[tuple[str, LineageNode]] = field(default_factory=list)


@dataclass
class LineageGraph:
    """The upstream graph of an artifact.

    Attributes:
        root: the artifact asked about.
    """

    root: LineageNode

    def artifacts(self) -> list[ArtifactRef]:
        """Every artifact in the graph, once, root first."""
        seen: dict[int, ArtifactRef] = {}
        stack = [self.root]
        while stack:
            n = stack.pop(0)
            if n.artifact.id in seen:
                continue
            seen[n.artifact.id] = n.artifact
            stack.extend(child for _, child in n.inputs)
        return list(seen.values())

    def of_kind(self, kind: str) -> list[ArtifactRef]:
        """Artifacts of one kind in the graph."""
        return [a for a in self.artifacts() if a.kind == kind]

    def render(self) -> str:
        """The graph as an indented text tree."""
        lines: list[str] = []
        shown: set[int] = set()

        def label(a: ArtifactRef) -> str:
            props = a.properties
            keys = ("name", "version", "model_name", "images", "num_classes", "run_id", "blessed", "sha256")
            extra = ", ".join(f"{k}={props[k]}" for k in keys if k in props and props[k] not in ("", None))
            return f"{a.kind} #{a.id}" + (f" ({extra})" if extra else "") + f"  {a.uri}"

        shown_exec: set[int] = set()

        def walk(node: LineageNode, prefix: str, is_last: bool, top: bool, via: str = "") -> None:
            connector = "" if top else ("└── " if is_last else "├── ")
            name = f"{via}: " if via else ""
            if node.artifact.id in shown and node.inputs:
                lines.append(f"{prefix}{connector}{name}{node.artifact.kind} #{node.artifact.id} (see above)")
                return
            shown.add(node.artifact.id)
            lines.append(f"{prefix}{connector}{name}{label(node.artifact)}")
            child_prefix = prefix + ("" if top else ("    " if is_last else "│   "))
            if node.execution is None:
                return
            eid, comp, eprops = node.execution
            run = eprops.get("run_id", "")
            if eid in shown_exec:
                # the same execution wrote several artifacts: its inputs are drawn once
                lines.append(f"{child_prefix}<- {comp} [execution #{eid}] (inputs above)")
                return
            shown_exec.add(eid)
            lines.append(f"{child_prefix}<- {comp} [execution #{eid}{', run ' + str(run) if run else ''}]")
            for i, (path, child) in enumerate(node.inputs):
                walk(child, child_prefix, i == len(node.inputs) - 1, False, path)

        walk(self.root, "", True, True)
        return "\n".join(lines)


def sqlite_path(url: str, base_dir: str | os.PathLike[str] | None = None) -> Path | None:
    """The file a ``sqlite://`` metadata URL names (a relative path against ``base_dir``); None for other stores.

    Args:
        url: the metadata URL.
        base_dir: directory a relative path is resolved against (the run root).

    Returns:
        The absolute file, or None (MySQL, in-memory SQLite).
    """
    if not url.startswith("sqlite://"):
        return None
    raw = url[len("sqlite://") :]
    raw = raw[1:] if raw.startswith("/") and not raw.startswith("//") else raw
    if raw in (":memory:", ""):
        return None
    if url.startswith("sqlite:////"):
        return Path(os.path.abspath(url[len("sqlite:///") :]))
    return Path(os.path.abspath(raw if os.path.isabs(raw) else Path(base_dir or ".") / raw))


def connection_config(url: str, base_dir: str | os.PathLike[str] | None = None, password: str | None = None) -> Any:
    """Builds an MLMD ConnectionConfig from a URL.

    Args:
        url: ``sqlite:///relative/or/absolute.sqlite``, ``sqlite:///:memory:`` or
            ``mysql://user@host[:port]/database``.
        base_dir: directory a relative SQLite path is resolved against.
        password: the MySQL password (default: ``$CVPIPE_MLMD_PASSWORD`` when set; see
            :meth:`LineageStore.for_spec` for the spec's own source).

    Returns:
        The ``metadata_store_pb2.ConnectionConfig``.

    Raises:
        LineageError: unsupported scheme, or a password inside the URL.
    """
    from ml_metadata.proto import metadata_store_pb2

    if url_has_password(url):
        raise LineageError(
            f"metadata URL {redact_url(url)} carries a password: a password is never accepted inside the URL "
            f"(it would show in command lines and files); set ${METADATA_PASSWORD_ENV} or the spec's "
            "runtime.metadata.password_env / password_file instead"
        )
    cfg = metadata_store_pb2.ConnectionConfig()
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        raw = url[len("sqlite://") :]
        raw = raw[1:] if raw.startswith("/") and not raw.startswith("//") else raw
        if raw in (":memory:", ""):
            cfg.fake_database.SetInParent()
            return cfg
        path = sqlite_path(url, base_dir)
        assert path is not None
        path.parent.mkdir(parents=True, exist_ok=True)
        cfg.sqlite.filename_uri = str(path)
        cfg.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
        return cfg
    if parsed.scheme == "mysql":
        cfg.mysql.host = parsed.hostname or "127.0.0.1"
        cfg.mysql.port = parsed.port or 3306
        cfg.mysql.database = parsed.path.lstrip("/") or "mlmd"
        if parsed.username:
            cfg.mysql.user = unquote(parsed.username)
        if password is None:
            try:
                password = read_secret(MYSQL_PASSWORD_ENV)
            except ValueError as e:  # names the variable, never the value
                raise LineageError(f"ML Metadata password: {e}") from None
        if password:
            cfg.mysql.password = password
        return cfg
    raise LineageError(f"unsupported metadata URL {redact_url(url)!r}: use sqlite:///path or mysql://user@host:port/db")


_INT32 = 2**31
"""ML Metadata's MySQL schema keeps ``int_value`` in an ``INT`` column (32 bits; SQLite's holds 64)."""
_EXACT_DOUBLE = 2**53


def _to_value(value: Any, target: Any) -> None:
    """Sets an MLMD ``Value`` from a Python property value, the same way on SQLite and MySQL.

    An integer outside MySQL's 32-bit ``INT`` (a millisecond timestamp, a byte count) is
    stored as a double, exact up to 2**53, and :func:`_from_value` gives it back as an int;
    MySQL refuses it as an int (``Out of range value for column 'int_value'``). Larger
    integers are stored as their decimal text.
    """
    if isinstance(value, bool):
        target.string_value = "true" if value else "false"
    elif isinstance(value, int):
        if -_INT32 <= value < _INT32:
            target.int_value = value
        elif abs(value) <= _EXACT_DOUBLE:
            target.double_value = float(value)
        else:
            target.string_value = str(value)
    elif isinstance(value, float):
        target.double_value = value
    elif isinstance(value, str):
        target.string_value = value
    else:
        target.string_value = json.dumps(value, default=str)


def _from_value(v: Any) -> Any:
    which = v.WhichOneof("value")
    if which == "int_value":
        return v.int_value
    if which == "double_value":
        d = v.double_value
        if d.is_integer() and _INT32 <= abs(d) <= _EXACT_DOUBLE:  # an int too wide for MySQL's INT (see _to_value)
            return int(d)
        return d
    if which == "string_value":
        s = v.string_value
        if s in ("true", "false"):
            return s == "true"
        return s
    return None


def _is_schema_race(error: Exception) -> bool:
    """Whether MLMD refused to open because another connection is creating the schema of an empty database."""
    text = str(error).lower()
    return "concurrent connection" in text or ("schema_version" in text and "retry" in text)


class MissingStoreError(LineageError):
    """A read-only use found no SQLite store file (it is never created by reading).

    Attributes:
        path: where the store was looked for.
    """

    def __init__(self, path: Path):
        self.path = path
        super().__init__(
            f"no ML Metadata store at {path} (nothing has run with it; a read-only command never creates one). "
            "Point at the right store with --spec SPEC, --metadata URL or the CVPIPE_METADATA environment variable"
        )


class LineageStore:
    """cvpipe's view of an MLMD store.

    Several processes may open a new, empty MySQL database at the same time
    (the first steps of the first run on a cluster): MLMD then refuses all
    but the one creating the schema ("MLMDEnv table exists but no
    schema_version can be found ... Please retry connection"). That answer is
    retried with backoff for up to :attr:`SCHEMA_RACE_PATIENCE_S` seconds,
    beyond ``retries``.

    Open the store a spec names with :meth:`for_spec` (it reads the password
    from where the spec says); messages show the URL without credentials.

    Args:
        url: metadata URL (see :func:`connection_config`).
        base_dir: directory a relative SQLite path is resolved against.
        retries: attempts to open the store (MySQL may still be starting).
        password: the MySQL password (default: ``$CVPIPE_MLMD_PASSWORD``).
        create: create a SQLite store that does not exist yet; False (read-only
            uses) raises :class:`MissingStoreError` naming where it looked.
    """

    _lock = threading.Lock()
    SCHEMA_RACE_PATIENCE_S: float = 120.0
    """How long an open keeps retrying while another process creates the schema."""

    def __init__(
        self,
        url: str = "sqlite:///mlmd.sqlite",
        base_dir: str | os.PathLike[str] | None = None,
        retries: int = 3,
        *,
        password: str | None = None,
        create: bool = True,
    ):
        from ml_metadata.metadata_store import metadata_store

        self.url = redact_url(url)
        existing = sqlite_path(url, base_dir)
        if not create and existing is not None and not existing.is_file():
            raise MissingStoreError(existing)
        cfg = connection_config(url, base_dir, password)
        secret = cfg.mysql.password if cfg.WhichOneof("config") == "mysql" else None
        started = time.monotonic()
        attempt = 0
        while True:
            try:
                self._store = metadata_store.MetadataStore(cfg)
                break
            except Exception as e:  # MLMD raises its own status errors
                attempt += 1
                racing = _is_schema_race(e) and time.monotonic() - started < self.SCHEMA_RACE_PATIENCE_S
                if attempt >= max(1, retries) and not racing:
                    hint = ""
                    if cfg.WhichOneof("config") == "mysql" and not secret:
                        hint = f" (no password was given: set ${MYSQL_PASSWORD_ENV} or the spec's runtime.metadata.password_env / password_file)"
                    raise LineageError(f"cannot open ML Metadata store {self.url}: {scrub(str(e), [secret])}{hint}") from None
                logging.getLogger("cvpipe.lineage").debug(
                    "opening the ML Metadata store: attempt %d refused%s; retrying",
                    attempt,
                    " (another connection is creating the schema)" if racing else "",
                    extra={"attempt": attempt, "racing": racing},
                )
                # jitter, so processes that raced once do not collide again
                time.sleep(min(0.5 * attempt, 3.0) * random.uniform(0.8, 1.2))
        self._type_ids: dict[str, int] = {}
        self._exec_type_ids: dict[str, int] = {}
        self._ctx_type_ids: dict[str, int] = {}

    @classmethod
    def for_spec(
        cls, metadata: MetadataSpec, base_dir: str | os.PathLike[str] | None = None, retries: int = 3, *, create: bool = True
    ) -> LineageStore:
        """Opens the store a spec's ``runtime.metadata`` names, with the password from its file or variable.

        Args:
            metadata: the spec's metadata section.
            base_dir: directory a relative SQLite path is resolved against (the run root).
            retries: attempts to open the store.
            create: create a SQLite store that does not exist (False: read-only use).

        Returns:
            The store.

        Raises:
            LineageError: the store cannot be opened, or the password file cannot be read
                (the message names the file or variable, never the password).
        """
        try:
            password = read_secret(metadata.password_env, metadata.password_file) if metadata.url.startswith("mysql://") else None
        except ValueError as e:
            raise LineageError(f"ML Metadata password: {e}") from None
        # "" rather than None: a spec naming its own variable does not fall back to the default one
        return cls(metadata.url, base_dir=base_dir, retries=retries, password=password or "", create=create)

    @property
    def mlmd(self) -> Any:
        """The underlying ``ml_metadata.MetadataStore``, for queries cvpipe does not wrap."""
        return self._store

    # -- types -----------------------------------------------------------------
    def _artifact_type_id(self, kind: str) -> int:
        if kind not in ARTIFACT_KINDS:
            raise LineageError(f"unknown artifact kind {kind!r}; known: {', '.join(ARTIFACT_KINDS)}")
        if kind not in self._type_ids:
            from ml_metadata.proto import metadata_store_pb2

            t = metadata_store_pb2.ArtifactType(name=_TYPE_PREFIX + kind, description=ARTIFACT_KINDS[kind])
            self._type_ids[kind] = self._store.put_artifact_type(t, can_add_fields=True)
        return self._type_ids[kind]

    def _execution_type_id(self, component: str) -> int:
        if component not in self._exec_type_ids:
            from ml_metadata.proto import metadata_store_pb2

            t = metadata_store_pb2.ExecutionType(name=_TYPE_PREFIX + component)
            self._exec_type_ids[component] = self._store.put_execution_type(t, can_add_fields=True)
        return self._exec_type_ids[component]

    def _context_type_id(self, name: str) -> int:
        if name not in self._ctx_type_ids:
            from ml_metadata.proto import metadata_store_pb2

            self._ctx_type_ids[name] = self._store.put_context_type(metadata_store_pb2.ContextType(name=name), can_add_fields=True)
        return self._ctx_type_ids[name]

    def _context(self, type_name: str, name: str, properties: Mapping[str, Any] | None = None) -> Any:
        from ml_metadata.proto import metadata_store_pb2

        existing = self._store.get_context_by_type_and_name(type_name, name)
        if existing is not None:
            return existing
        ctx = metadata_store_pb2.Context(type_id=self._context_type_id(type_name), name=name)
        for k, v in (properties or {}).items():
            _to_value(v, ctx.custom_properties[k])
        try:
            [cid] = self._store.put_contexts([ctx])
            ctx.id = cid
            return ctx
        except Exception:
            # another process created it first
            found = self._store.get_context_by_type_and_name(type_name, name)
            if found is None:
                raise
            return found

    # -- artifacts -------------------------------------------------------------
    def _ref(self, a: Any, kind: str | None = None) -> ArtifactRef:
        if kind is None:
            [t] = self._store.get_artifact_types_by_id([a.type_id])
            kind = t.name.removeprefix(_TYPE_PREFIX)
        return ArtifactRef(
            id=a.id,
            kind=kind,
            uri=a.uri,
            properties={k: _from_value(v) for k, v in a.custom_properties.items()},
            created_ms=a.create_time_since_epoch,
        )

    def _new_artifact_proto(self, art: NewArtifact) -> Any:
        from ml_metadata.proto import metadata_store_pb2

        a = metadata_store_pb2.Artifact(type_id=self._artifact_type_id(art.kind), uri=art.uri, state=metadata_store_pb2.Artifact.LIVE)
        for k, v in art.properties.items():
            if v is not None:
                _to_value(v, a.custom_properties[k])
        return a

    def put_artifact(self, kind: str, uri: str, properties: Mapping[str, Any] | None = None) -> ArtifactRef:
        """Records an artifact no execution produced (an external input such as a source dataset).

        Args:
            kind: artifact kind.
            uri: where it lives.
            properties: custom properties.

        Returns:
            The recorded artifact.
        """
        a = self._new_artifact_proto(NewArtifact(kind, uri, dict(properties or {})))
        [aid] = self._store.put_artifacts([a])
        return self.get(aid)

    def get(self, artifact_id: int) -> ArtifactRef:
        """Returns one artifact.

        Raises:
            LineageError: no artifact has that id.
        """
        found = self._store.get_artifacts_by_id([int(artifact_id)])
        if not found:
            raise LineageError(f"no artifact with id {artifact_id} in {self.url}")
        return self._ref(found[0])

    def update_properties(self, artifact_id: int, properties: Mapping[str, Any]) -> ArtifactRef:
        """Adds or changes custom properties of an artifact (aliases, archive state...)."""
        [a] = self._store.get_artifacts_by_id([int(artifact_id)])
        for k, v in properties.items():
            if v is None:
                if k in a.custom_properties:
                    del a.custom_properties[k]
            else:
                _to_value(v, a.custom_properties[k])
        self._store.put_artifacts([a])
        return self.get(artifact_id)

    def update_properties_many(self, updates: Mapping[int, Mapping[str, Any]]) -> list[ArtifactRef]:
        """Changes custom properties of several artifacts in one MLMD transaction (all or none).

        Args:
            updates: artifact id -> properties to set (a None value removes the property).

        Returns:
            The updated artifacts, in the order of ``updates``.
        """
        ids = [int(i) for i in updates]
        found = {a.id: a for a in self._store.get_artifacts_by_id(ids)}
        missing = [i for i in ids if i not in found]
        if missing:
            raise LineageError(f"no artifact with id {missing[0]} in {self.url}")
        for aid, props in updates.items():
            a = found[int(aid)]
            for k, v in props.items():
                if v is None:
                    if k in a.custom_properties:
                        del a.custom_properties[k]
                else:
                    _to_value(v, a.custom_properties[k])
        self._store.put_artifacts([found[i] for i in ids])
        return [self.get(i) for i in ids]

    def find_by_uri(self, uri: str, kind: str | None = None) -> ArtifactRef | None:
        """The newest artifact recorded at a URI (optionally of one kind), or None."""
        found = [self._ref(a) for a in self._store.get_artifacts_by_uri(uri)]
        if kind is not None:
            found = [a for a in found if a.kind == kind]
        return max(found, key=lambda a: (a.created_ms, a.id)) if found else None

    def artifacts(self, kind: str, **filters: Any) -> list[ArtifactRef]:
        """Artifacts of one kind whose properties equal ``filters``, oldest first.

        Args:
            kind: artifact kind.
            **filters: property name -> required value.

        Returns:
            Matching artifacts.
        """
        try:
            found = self._store.get_artifacts_by_type(_TYPE_PREFIX + kind)
        except Exception:
            return []
        refs = [self._ref(a, kind) for a in found]
        refs = [r for r in refs if all(r.properties.get(k) == v for k, v in filters.items())]
        return sorted(refs, key=lambda r: (r.created_ms, r.id))

    def latest(self, kind: str, **filters: Any) -> ArtifactRef | None:
        """The newest artifact of a kind matching ``filters``, or None."""
        found = self.artifacts(kind, **filters)
        return found[-1] if found else None

    # -- executions --------------------------------------------------------------
    def record_execution(
        self,
        component: str,
        *,
        pipeline: str,
        run_id: str,
        inputs: Mapping[str, ArtifactRef | Sequence[ArtifactRef] | None] | None = None,
        outputs: Mapping[str, NewArtifact | None] | None = None,
        properties: Mapping[str, Any] | None = None,
        succeeded: bool = True,
    ) -> dict[str, ArtifactRef]:
        """Records one execution with its input and output artifacts in one transaction.

        The execution and its new artifacts are attributed to the pipeline's
        context and the run's context.

        Args:
            component: component name (``ingest``, ``train``...).
            pipeline: pipeline name.
            run_id: run id.
            inputs: event path -> recorded artifact(s) it read.
            outputs: event path -> artifact it wrote.
            properties: execution properties.
            succeeded: COMPLETE when True, FAILED otherwise.

        Returns:
            Event path -> the recorded output artifact.
        """
        from ml_metadata.proto import metadata_store_pb2

        with self._lock:
            ex = metadata_store_pb2.Execution(
                type_id=self._execution_type_id(component),
                last_known_state=metadata_store_pb2.Execution.COMPLETE if succeeded else metadata_store_pb2.Execution.FAILED,
            )
            props = {"run_id": run_id, "pipeline": pipeline, **(properties or {})}
            for k, v in props.items():
                if v is not None:
                    _to_value(v, ex.custom_properties[k])
            pairs: list[tuple[Any, Any]] = []
            out_keys: list[tuple[str, str]] = []

            def event(kind: int, key: str, index: int = 0) -> Any:
                e = metadata_store_pb2.Event(type=kind)
                e.path.steps.add().key = key
                e.path.steps.add().index = index
                return e

            for key, refs in (inputs or {}).items():
                if refs is None:
                    continue
                seq = [refs] if isinstance(refs, ArtifactRef) else list(refs)
                for i, ref in enumerate(seq):
                    [a] = self._store.get_artifacts_by_id([ref.id])
                    pairs.append((a, event(metadata_store_pb2.Event.INPUT, key, i)))
            for key, new in (outputs or {}).items():
                if new is None:
                    continue
                pairs.append((self._new_artifact_proto(new), event(metadata_store_pb2.Event.OUTPUT, key)))
                out_keys.append((key, new.kind))
            contexts = [
                self._context(_PIPELINE, pipeline),
                self._context(_RUN, run_id, {"pipeline": pipeline}),
            ]
            _, artifact_ids, _ = self._store.put_execution(ex, pairs, contexts, reuse_context_if_already_exist=True)
        n_in = len(pairs) - len(out_keys)
        return {key: self.get(aid) for (key, _), aid in zip(out_keys, artifact_ids[n_in:], strict=True)}

    def executions(self, run_id: str | None = None, component: str | None = None) -> list[dict[str, Any]]:
        """Executions, optionally of one run and/or component, oldest first.

        Returns:
            Dicts with ``id``, ``component``, ``state``, ``properties`` and
            ``recorded_ms`` (when the execution was recorded, ms since the epoch).
        """
        from ml_metadata.proto import metadata_store_pb2

        if run_id is not None:
            ctx = self._store.get_context_by_type_and_name(_RUN, run_id)
            found = self._store.get_executions_by_context(ctx.id) if ctx else []
        else:
            found = self._store.get_executions()
        type_names = {t.id: t.name.removeprefix(_TYPE_PREFIX) for t in self._store.get_execution_types()}
        out = []
        for e in sorted(found, key=lambda e: (e.create_time_since_epoch, e.id)):
            name = type_names.get(e.type_id, "?")
            if component is not None and name != component:
                continue
            out.append(
                {
                    "id": e.id,
                    "component": name,
                    "state": metadata_store_pb2.Execution.State.Name(e.last_known_state),
                    "properties": {k: _from_value(v) for k, v in e.custom_properties.items()},
                    "recorded_ms": int(e.create_time_since_epoch),
                }
            )
        return out

    def run_ids(self, pipeline: str | None = None) -> list[str]:
        """Run ids known to the store (optionally of one pipeline), oldest first."""
        try:
            ctxs = self._store.get_contexts_by_type(_RUN)
        except Exception:
            return []
        ctxs = sorted(ctxs, key=lambda c: (c.create_time_since_epoch, c.id))
        return [c.name for c in ctxs if pipeline is None or _from_value(c.custom_properties["pipeline"]) == pipeline]

    def artifacts_of_run(self, run_id: str) -> list[ArtifactRef]:
        """Artifacts attributed to a run's context."""
        ctx = self._store.get_context_by_type_and_name(_RUN, run_id)
        if ctx is None:
            return []
        return sorted((self._ref(a) for a in self._store.get_artifacts_by_context(ctx.id)), key=lambda a: a.id)

    def upstream(self, artifact_id: int, max_depth: int = 50) -> LineageGraph:
        """Walks the lineage graph back from an artifact.

        Args:
            artifact_id: the artifact.
            max_depth: stop after this many producing executions on any path.

        Returns:
            The upstream graph.
        """
        from ml_metadata.proto import metadata_store_pb2

        type_names = {t.id: t.name.removeprefix(_TYPE_PREFIX) for t in self._store.get_execution_types()}
        nodes: dict[int, LineageNode] = {}

        def build(aid: int, depth: int) -> LineageNode:
            if aid in nodes:
                return nodes[aid]
            node = LineageNode(artifact=self.get(aid))
            nodes[aid] = node
            if depth >= max_depth:
                return node
            produced = [e for e in self._store.get_events_by_artifact_ids([aid]) if e.type == metadata_store_pb2.Event.OUTPUT]
            if not produced:
                return node
            eid = produced[0].execution_id
            [ex] = self._store.get_executions_by_id([eid])
            node.execution = (eid, type_names.get(ex.type_id, "?"), {k: _from_value(v) for k, v in ex.custom_properties.items()})
            ins = [e for e in self._store.get_events_by_execution_ids([eid]) if e.type == metadata_store_pb2.Event.INPUT]
            for e in sorted(ins, key=lambda e: (e.path.steps[0].key if e.path.steps else "", e.artifact_id)):
                key = e.path.steps[0].key if e.path.steps else "input"
                node.inputs.append((key, build(e.artifact_id, depth + 1)))
            return node

        return LineageGraph(root=build(int(artifact_id), 0))

    def produced_with(self, artifact_id: int) -> list[ArtifactRef]:
        """The other outputs of the execution that wrote an artifact (validate's statistics beside its manifest).

        Args:
            artifact_id: the artifact.

        Returns:
            The artifacts, by id; empty when no recorded execution wrote it.
        """
        from ml_metadata.proto import metadata_store_pb2

        produced = [
            e.execution_id for e in self._store.get_events_by_artifact_ids([int(artifact_id)]) if e.type == metadata_store_pb2.Event.OUTPUT
        ]
        if not produced:
            return []
        events = self._store.get_events_by_execution_ids([produced[0]])
        ids = sorted({e.artifact_id for e in events if e.type == metadata_store_pb2.Event.OUTPUT} - {int(artifact_id)})
        return [self.get(i) for i in ids]

    def downstream_ids(self, artifact_id: int, limit: int | None = None) -> list[int]:
        """Ids of artifacts produced (directly or not) from an artifact.

        Args:
            artifact_id: the artifact.
            limit: stop once at least this many are found (a source dataset leads to most of a busy store).

        Returns:
            The ids, in the order the walk found them.
        """
        from ml_metadata.proto import metadata_store_pb2

        out: list[int] = []
        frontier = [int(artifact_id)]
        seen = set(frontier)
        while frontier and (limit is None or len(out) < limit):
            aid = frontier.pop()
            execs = {e.execution_id for e in self._store.get_events_by_artifact_ids([aid]) if e.type == metadata_store_pb2.Event.INPUT}
            if not execs:
                continue
            for e in self._store.get_events_by_execution_ids(list(execs)):
                if e.type == metadata_store_pb2.Event.OUTPUT and e.artifact_id not in seen:
                    seen.add(e.artifact_id)
                    out.append(e.artifact_id)
                    frontier.append(e.artifact_id)
        return out


def iter_kinds() -> Iterable[tuple[str, str]]:
    """(kind, description) for every artifact type, for docs and the CLI."""
    return ARTIFACT_KINDS.items()

"""The registry interface and what both backends share: aliases with history, lineage records (value types: :mod:`.versions`).

Every version a registry holds is a ``PushedModel`` artifact in ML Metadata,
whatever the backend, with these properties:

==================  ==========================================================
``model_name``      registry model name
``version``         version number (1, 2, ...)
``model_dir``       where the files are (a local path; ``/gcs/...`` on Vertex)
``aliases``         JSON list of the aliases the version holds
``alias_events``    JSON list of alias changes that landed on this version
``blessed``         whether evaluation blessed the model
``metrics``         JSON object of evaluation metrics
``archived``        archived versions keep their files but take no aliases
``source_model_id`` the MLMD ``Model`` artifact the version was made from
``blessing_id``     the MLMD ``ModelBlessing`` artifact, if any
``digest``          sha256 over the model's files (see :func:`~components.registry._files.model_digest`)
``backend``         ``local`` or ``vertex``
``registry``        which registry: its root directory or ``projects/P/locations/L``
``pushed``          always True (a push that was refused records ``pushed=False``)
==================  ==========================================================

Alias history: each change of an alias (``set``, ``rollback``, ``remove``)
is an event with a sequence number, stored on the version it concerns. Read
in order, the events of one alias form a stack: ``set`` pushes a version,
``remove`` pushes "none", ``rollback`` pops. The version below the top is
where :meth:`Registry.rollback` sends the alias, so repeated rollbacks walk
back through the versions the alias held, like a browser's back button.
"""

from __future__ import annotations

import contextlib
import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from components.core.errors import RegistryError
from components.core.lineage import ArtifactRef, LineageStore, NewArtifact

from .tree import ForkNode, fork_tree
from .versions import (
    AliasAction,
    AliasEvent,
    AliasMove,
    ModelVersion,
    Recorder,
    RegisterRequest,
    RegisterResult,
    now_ms,
    parse_ref,
    validate_alias,
    validate_model_name,
)

__all__ = [
    "AliasAction",
    "AliasEvent",
    "AliasMove",
    "ModelVersion",
    "Recorder",
    "RegisterRequest",
    "RegisterResult",
    "Registry",
    "parse_ref",
    "validate_alias",
    "validate_model_name",
]


def _json(value: Any, default: Any) -> Any:
    if value is None or value == "":
        return default
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return default
    return value


class Registry(ABC):
    """A model registry: versions with metrics, blessing and lineage; aliases with history; archive; fork tree.

    Backends implement storage (:meth:`register`, :meth:`versions`) and alias
    changes (:meth:`_move_alias`); lookups, rollback and the fork tree are
    shared and read ML Metadata.

    Args:
        store: the lineage store the ``PushedModel`` records live in.
        location: which registry this is (root directory, or ``projects/P/locations/L``),
            so several registries can share one store.
    """

    backend: ClassVar[str] = ""

    def __init__(self, store: LineageStore, location: str):
        self.store = store
        self.location = location

    # -- backend hooks -------------------------------------------------------------
    @abstractmethod
    def register(self, request: RegisterRequest, recorder: Recorder | None = None) -> RegisterResult:
        """Registers a model as a new version (or finds the version that already holds it).

        Args:
            request: what to register.
            recorder: records the registration in MLMD (default: an execution
                ``register`` in the model's pipeline). A component passes its
                ``ctx.record`` so the push is its one recorded execution.

        Returns:
            The version and whether it is new.

        Raises:
            RegistryError: the model directory is unusable or the backend failed.
        """

    @abstractmethod
    def versions(self, model_name: str, include_archived: bool = False) -> list[ModelVersion]:
        """Versions of a model, oldest first.

        Args:
            model_name: the model.
            include_archived: include archived versions.

        Returns:
            The versions (empty for an unknown model).
        """

    def _move_alias(self, model_name: str, alias: str, target: int | None, action: AliasAction) -> AliasMove:
        """Points ``alias`` at ``target`` (None: removes it) and logs the event; called under :meth:`_lock`.

        The alias leaves its old version and joins the new one in one MLMD
        transaction. Backends with a remote registry override this to change
        the remote aliases first.
        """
        current = self.holder(model_name, alias)
        previous = current.version if current is not None else None
        if previous == target:
            return AliasMove(model_name, alias, previous, target, "unchanged")
        updates, _ = self._event_updates(model_name, alias, target, previous, action)
        self.store.update_properties_many(updates)
        return AliasMove(model_name, alias, previous, target, action)

    @contextlib.contextmanager
    def _lock(self, model_name: str) -> Iterator[None]:
        """Serialises changes to one model (the local backend holds a file lock)."""
        yield

    # -- MLMD records ---------------------------------------------------------------
    def _records(self, model_name: str | None = None) -> list[ArtifactRef]:
        filters: dict[str, Any] = {"pushed": True, "registry": self.location, "backend": self.backend}
        if model_name is not None:
            filters["model_name"] = model_name
        return self.store.artifacts("PushedModel", **filters)

    def _record_for(self, model_name: str, version: int) -> ArtifactRef | None:
        for r in self._records(model_name):
            if int(r.properties.get("version", -1)) == version:
                return r
        return None

    def _version_from_record(self, r: ArtifactRef, aliases: Sequence[str] | None = None) -> ModelVersion:
        p = r.properties
        metrics = _json(p.get("metrics"), {})
        blessing = p.get("blessing_id")
        return ModelVersion(
            model_name=str(p["model_name"]),
            version=int(p["version"]),
            model_dir=Path(str(p.get("model_dir", r.uri))),
            uri=r.uri,
            artifact_id=int(p.get("source_model_id", 0)),
            pushed_id=r.id,
            aliases=tuple(sorted(aliases if aliases is not None else _json(p.get("aliases"), []))),
            blessed=bool(p.get("blessed", False)),
            metrics={str(k): float(v) for k, v in metrics.items() if isinstance(v, int | float)},
            archived=bool(p.get("archived", False)),
            digest=str(p.get("digest", "")),
            created_ms=int(p.get("created_ms", r.created_ms) or 0),
            blessing_id=int(blessing) if isinstance(blessing, int) else None,
            backend=self.backend,
            resource_name=str(p["resource_name"]) if p.get("resource_name") else None,
        )

    def _find_same(self, model_name: str, digest: str, source_model_id: int | None) -> ArtifactRef | None:
        for r in self._records(model_name):
            if (source_model_id is not None and r.properties.get("source_model_id") == source_model_id) or r.properties.get(
                "digest"
            ) == digest:
                return r
        return None

    def _source_model(self, request: RegisterRequest, digest: str) -> ArtifactRef:
        """The MLMD ``Model`` the version comes from: by id, by URI, or recorded now as an external input."""
        if request.source_model_id is not None:
            return self.store.get(request.source_model_id)
        uri = request.uri or str(request.model_dir)
        found = self.store.find_by_uri(uri, "Model")
        if found is not None:
            return found
        return self.store.put_artifact("Model", uri, {"model_name": request.model_name, "digest": digest, "registered_externally": True})

    def _default_recorder(self, source: ArtifactRef) -> Recorder:
        pipeline = str(source.properties.get("pipeline") or source.properties.get("model_name") or "registry")
        run_id = str(source.properties.get("run_id") or f"registry-{pipeline}")

        def record(
            inputs: Mapping[str, ArtifactRef | Sequence[ArtifactRef] | None],
            outputs: Mapping[str, NewArtifact | None],
            properties: Mapping[str, Any] | None = None,
        ) -> dict[str, ArtifactRef]:
            return self.store.record_execution(
                "register", pipeline=pipeline, run_id=run_id, inputs=inputs, outputs=outputs, properties=properties
            )

        return record

    def _record_version(
        self,
        request: RegisterRequest,
        recorder: Recorder | None,
        *,
        source: ArtifactRef,
        version: int,
        uri: str,
        model_dir: str,
        digest: str,
        extra: Mapping[str, Any] | None = None,
    ) -> ArtifactRef:
        inputs: dict[str, ArtifactRef | None] = {
            "model": source,
            "blessing": self.store.get(request.blessing_id) if request.blessing_id is not None else None,
        }
        props: dict[str, Any] = {
            "model_name": request.model_name,
            "version": version,
            "model_dir": model_dir,
            "aliases": "[]",
            "alias_events": "[]",
            "blessed": bool(request.blessed),
            "metrics": json.dumps({k: float(v) for k, v in request.metrics.items()}, sort_keys=True),
            "archived": False,
            "source_model_id": source.id,
            "blessing_id": request.blessing_id,
            "digest": digest,
            "backend": self.backend,
            "registry": self.location,
            "pushed": True,
            "created_ms": now_ms(),
            "description": request.description or None,
            **(extra or {}),
        }
        rec = recorder or self._default_recorder(source)
        out = rec(
            inputs,
            {"pushed": NewArtifact("PushedModel", uri, props)},
            {"model_name": request.model_name, "version": version, "pushed": True},
        )
        return out["pushed"]

    def _record_existing(self, request: RegisterRequest, recorder: Recorder | None, existing: ArtifactRef, source: ArtifactRef) -> None:
        """Records a push that found its model already registered (no new artifact)."""
        rec = recorder or self._default_recorder(source)
        inputs: dict[str, ArtifactRef | None] = {
            "model": source,
            "blessing": self.store.get(request.blessing_id) if request.blessing_id is not None else None,
            "existing": existing,
        }
        rec(
            inputs,
            {},
            {"model_name": request.model_name, "version": int(existing.properties["version"]), "pushed": True, "deduplicated": True},
        )

    def _alias_events(self, model_name: str) -> list[AliasEvent]:
        events: list[AliasEvent] = []
        for r in self._records(model_name):
            for e in _json(r.properties.get("alias_events"), []):
                events.append(
                    AliasEvent(
                        alias=str(e["alias"]),
                        action=e["action"],
                        version=e.get("version"),
                        previous=e.get("previous"),
                        seq=int(e["seq"]),
                        at_ms=int(e.get("at_ms", 0)),
                    )
                )
        return sorted(events, key=lambda e: (e.seq, e.at_ms))

    def _event_updates(
        self, model_name: str, alias: str, target: int | None, previous: int | None, action: AliasAction
    ) -> tuple[dict[int, dict[str, Any]], AliasEvent]:
        """MLMD property updates that move ``alias`` from ``previous`` to ``target`` and log the event."""
        records = {int(r.properties["version"]): r for r in self._records(model_name)}
        seq = max((e.seq for e in self._alias_events(model_name)), default=0) + 1
        event = AliasEvent(alias=alias, action=action, version=target, previous=previous, seq=seq, at_ms=now_ms())
        updates: dict[int, dict[str, Any]] = {}
        for v, r in records.items():
            held = list(_json(r.properties.get("aliases"), []))
            if alias in held and v != target:
                updates[r.id] = {"aliases": json.dumps(sorted(a for a in held if a != alias))}
        if target is not None:
            r = records[target]
            held = list(_json(r.properties.get("aliases"), []))
            updates.setdefault(r.id, {})["aliases"] = json.dumps(sorted({*held, alias}))
        log_on = records[target] if target is not None else (records.get(previous) if previous is not None else None)
        if log_on is not None:
            log = list(_json(log_on.properties.get("alias_events"), []))
            log.append({"alias": alias, "action": action, "version": target, "previous": previous, "seq": seq, "at_ms": event.at_ms})
            updates.setdefault(log_on.id, {})["alias_events"] = json.dumps(log)
        return updates, event

    # -- lookups ----------------------------------------------------------------------
    def models(self) -> list[str]:
        """Names of the models this registry holds, sorted."""
        return sorted({str(r.properties["model_name"]) for r in self._records()})

    def get(self, model_name: str, version: int) -> ModelVersion:
        """One version (archived ones too).

        Args:
            model_name: the model.
            version: the version number.

        Returns:
            The version.

        Raises:
            RegistryError: no such version.
        """
        for v in self.versions(model_name, include_archived=True):
            if v.version == version:
                return v
        known = ", ".join(str(v.version) for v in self.versions(model_name, include_archived=True)) or "none"
        raise RegistryError(f"model {model_name!r} has no version {version} in {self.location} (versions: {known})")

    def holder(self, model_name: str, alias: str) -> ModelVersion | None:
        """The version an alias points to, or None."""
        for v in self.versions(model_name, include_archived=True):
            if alias in v.aliases:
                return v
        return None

    def resolve(self, ref: str) -> ModelVersion:
        """Finds the version a reference names.

        Args:
            ref: ``name:version``, ``name@alias`` or ``name`` (its newest version that is not archived).

        Returns:
            The version.

        Raises:
            RegistryError: the reference is malformed or names nothing.
        """
        name, version, alias = parse_ref(ref)
        if version is not None:
            return self.get(name, version)
        if alias is not None:
            found = self.holder(name, alias)
            if found is None:
                raise RegistryError(f"no version of model {name!r} has alias {alias!r} in {self.location}")
            return found
        latest = self.latest(name)
        if latest is None:
            raise RegistryError(f"model {name!r} has no versions in {self.location}")
        return latest

    def latest(self, model_name: str, blessed_only: bool = False) -> ModelVersion | None:
        """The newest version that is not archived (the evaluation baseline with ``blessed_only``).

        Args:
            model_name: the model.
            blessed_only: consider blessed versions only.

        Returns:
            The version, or None.
        """
        found = [v for v in self.versions(model_name) if v.blessed or not blessed_only]
        return max(found, key=lambda v: v.version) if found else None

    # -- aliases ------------------------------------------------------------------------
    def alias_history(self, model_name: str, alias: str | None = None) -> list[AliasEvent]:
        """Alias changes of a model, oldest first.

        Args:
            model_name: the model.
            alias: only this alias.

        Returns:
            The events.
        """
        return [e for e in self._alias_events(model_name) if alias is None or e.alias == alias]

    def _alias_stack(self, model_name: str, alias: str) -> list[int | None]:
        stack: list[int | None] = []
        for e in self.alias_history(model_name, alias):
            if e.action == "rollback":
                if stack:
                    stack.pop()
                if not stack or stack[-1] != e.version:  # an inconsistent log: trust the event
                    stack.append(e.version)
            else:
                stack.append(e.version)
        return stack

    def set_alias(self, model_name: str, alias: str, version: int) -> AliasMove:
        """Points an alias at a version, taking it from the version that held it.

        Each consuming application pins its own alias (``champion``,
        ``mobile-app``, ...), so two applications can use different versions.

        Args:
            model_name: the model.
            alias: the alias.
            version: the version.

        Returns:
            The change.

        Raises:
            RegistryError: invalid alias, unknown or archived version.
        """
        validate_alias(alias)
        with self._lock(model_name):
            target = self.get(model_name, version)
            if target.archived:
                raise RegistryError(f"{target.ref} is archived; restore it before giving it alias {alias!r}")
            return self._move_alias(model_name, alias, version, "set")

    def remove_alias(self, model_name: str, alias: str) -> AliasMove:
        """Removes an alias from the version that holds it (kept in the history; rollback restores it).

        Args:
            model_name: the model.
            alias: the alias.

        Returns:
            The change.

        Raises:
            RegistryError: no version holds the alias.
        """
        with self._lock(model_name):
            if self.holder(model_name, alias) is None:
                raise RegistryError(f"no version of model {model_name!r} has alias {alias!r}")
            return self._move_alias(model_name, alias, None, "remove")

    def rollback(self, model_name: str, alias: str) -> AliasMove:
        """Moves an alias back to the version it pointed to before its last change.

        Repeated rollbacks keep walking back through the alias history.

        Args:
            model_name: the model.
            alias: the alias.

        Returns:
            The change.

        Raises:
            RegistryError: the alias has no earlier version, or that version is archived.
        """
        with self._lock(model_name):
            stack = self._alias_stack(model_name, alias)
            if len(stack) < 2 or stack[-2] is None:
                raise RegistryError(f"alias {alias!r} of model {model_name!r} has no earlier version to roll back to")
            target = stack[-2]
            assert target is not None
            if self.get(model_name, target).archived:
                raise RegistryError(f"cannot roll {alias!r} back to {model_name}:{target}: that version is archived; restore it first")
            return self._move_alias(model_name, alias, target, "rollback")

    # -- archive ------------------------------------------------------------------------
    def archive(self, model_name: str, version: int, archived: bool = True) -> ModelVersion:
        """Archives a version (or restores it with ``archived=False``); its files stay.

        Args:
            model_name: the model.
            version: the version.
            archived: True to archive, False to restore.

        Returns:
            The version.

        Raises:
            RegistryError: unknown version, or it still holds aliases.
        """
        with self._lock(model_name):
            v = self.get(model_name, version)
            if archived and v.aliases:
                raise RegistryError(f"{v.ref} holds aliases {', '.join(v.aliases)}; move them before archiving it")
            self.store.update_properties(v.pushed_id, {"archived": archived})
            return self.get(model_name, version)

    # -- lineage ------------------------------------------------------------------------
    def tree(self, model_name: str | None = None) -> list[ForkNode]:
        """The fork hierarchy of registered models (see :func:`components.registry.tree.fork_tree`).

        Args:
            model_name: only trees that contain a version of this model.

        Returns:
            The roots.
        """
        return fork_tree(self, model_name)

"""The embedded registry: model files under ``<root>/<model_name>/<version>/``, metadata in ML Metadata.

Layout::

    <root>/<model_name>/
        .lock                     fcntl lock serialising changes to this model
        .staging-<host>-<pid>-*/  a copy in progress (hidden; removed when its process is gone)
        1/                        a version: the model's files + registry_version.json
        2/

A push copies the model into a staging directory (the serving graph last),
then, holding the lock, picks the next number and renames the staging
directory to it, then records the ``PushedModel`` artifact. A version is
visible once it is recorded; a push killed before that leaves either a
staging directory (removed by the next push) or an unrecorded version
directory that a retry of the same model adopts instead of copying again.
Version numbers are never reused, so an abandoned directory only skips a
number.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from components.core.errors import RegistryError
from components.core.io import atomic_write_json, read_json
from components.core.lineage import ArtifactRef, LineageStore

from ._files import VERSION_FILE, file_lock, model_digest, remove_stale_staging, stage_copy
from .base import ModelVersion, Recorder, RegisterRequest, RegisterResult, Registry, now_ms, validate_alias, validate_model_name

__all__ = ["LocalHook", "LocalRegistry", "check_model_dir"]

LocalHook = Callable[[str, Path], None]
"""Called as ``hook(stage, path)`` with ``("copied", file)`` after each copied file and
``("renamed", version_dir)`` once the version directory is in place, before it is recorded.
Tests use it to pause or kill a push at a precise point."""


def check_model_dir(model_dir: Path) -> Path:
    """Checks that a directory holds a model (``saved_model/saved_model.pb``).

    Args:
        model_dir: the directory.

    Returns:
        The directory.

    Raises:
        RegistryError: it does not.
    """
    if not model_dir.is_dir():
        raise RegistryError(f"model directory {model_dir} does not exist")
    sm = model_dir / "saved_model"
    if not ((sm / "saved_model.pb").is_file() or (sm / "saved_model.pbtxt").is_file()):
        raise RegistryError(f"{model_dir} is not a model directory: saved_model/saved_model.pb is missing")
    return model_dir


class LocalRegistry(Registry):
    """The embedded registry.

    Args:
        root: the registry directory.
        store: the lineage store holding the ``PushedModel`` records.
        hook: see :data:`LocalHook`.
    """

    backend = "local"

    def __init__(self, root: str | os.PathLike[str], store: LineageStore, hook: LocalHook | None = None):
        self.root = Path(root).resolve()
        super().__init__(store, str(self.root))
        self._hook = hook
        self._held = threading.local()

    @contextlib.contextmanager
    def _lock(self, model_name: str) -> Iterator[None]:
        held: set[str] = self._held.__dict__.setdefault("names", set())
        if model_name in held:  # re-entered by this thread
            yield
            return
        with file_lock(self.root / model_name / ".lock"):
            held.add(model_name)
            try:
                yield
            finally:
                held.discard(model_name)

    def versions(self, model_name: str, include_archived: bool = False) -> list[ModelVersion]:
        """Versions of a model, oldest first (see :meth:`Registry.versions`)."""
        found = [self._version_from_record(r) for r in self._records(model_name)]
        return sorted((v for v in found if include_archived or not v.archived), key=lambda v: v.version)

    def verify(self, model_name: str, version: int) -> bool:
        """Whether a version's files still match the digest recorded at registration.

        Args:
            model_name: the model.
            version: the version.

        Returns:
            True when every file is present and unchanged.
        """
        v = self.get(model_name, version)
        return v.model_dir.is_dir() and model_digest(v.model_dir) == v.digest

    def _numbered_dirs(self, model_name: str) -> dict[int, Path]:
        base = self.root / model_name
        if not base.is_dir():
            return {}
        return {int(d.name): d for d in base.iterdir() if d.is_dir() and d.name.isdigit()}

    def _orphan(self, model_name: str, digest: str, recorded: set[int]) -> Path | None:
        """A version directory a killed push renamed into place but never recorded, holding this model."""
        for number, d in sorted(self._numbered_dirs(model_name).items()):
            if number in recorded:
                continue
            try:
                info = read_json(d / VERSION_FILE)
            except (OSError, ValueError):
                continue
            if info.get("digest") == digest:
                return d
        return None

    def _existing(self, request: RegisterRequest, recorder: Recorder | None, found: ArtifactRef, digest: str) -> RegisterResult:
        v = self._version_from_record(found)
        if v.archived:
            raise RegistryError(f"this model is already registered as {v.ref}, which is archived; restore it instead of pushing again")
        source = self.store.get(v.artifact_id) if request.source_model_id is None else self.store.get(request.source_model_id)
        self._record_existing(request, recorder, found, source)
        moves = [self._move_alias(request.model_name, a, v.version, "set") for a in request.aliases]
        return RegisterResult(self.get(request.model_name, v.version), created=False, moves=moves)

    def register(self, request: RegisterRequest, recorder: Recorder | None = None) -> RegisterResult:
        """Copies a model into the registry as a new version (see :meth:`Registry.register`).

        The same model (same source ``Model`` artifact, or same files) pushed
        again returns its existing version. Concurrent pushes from several
        processes get distinct version numbers.
        """
        name = validate_model_name(request.model_name)
        for a in request.aliases:
            validate_alias(a)
        src = check_model_dir(Path(request.model_dir))
        digest = model_digest(src)
        model_root = self.root / name
        with self._lock(name):
            remove_stale_staging(model_root)
            found = self._find_same(name, digest, request.source_model_id)
            if found is not None:
                return self._existing(request, recorder, found, digest)

        hook = self._hook
        staging = stage_copy(src, model_root, hook=(lambda p: hook("copied", p)) if hook is not None else None)
        try:
            with self._lock(name):
                found = self._find_same(name, digest, request.source_model_id)
                if found is not None:
                    return self._existing(request, recorder, found, digest)
                recorded = {int(r.properties["version"]) for r in self._records(name)}
                version_dir = self._orphan(name, digest, recorded)
                if version_dir is None:
                    version = max([0, *recorded, *self._numbered_dirs(name)]) + 1
                    version_dir = model_root / str(version)
                    atomic_write_json(
                        staging / VERSION_FILE,
                        {
                            "model_name": name,
                            "version": version,
                            "digest": digest,
                            "source_model_id": request.source_model_id,
                            "created_ms": now_ms(),
                        },
                    )
                    os.rename(staging, version_dir)
                    fd = os.open(model_root, os.O_RDONLY)
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
                    if hook is not None:
                        hook("renamed", version_dir)
                version = int(version_dir.name)
                source = self._source_model(request, digest)
                self._record_version(
                    request, recorder, source=source, version=version, uri=str(version_dir), model_dir=str(version_dir), digest=digest
                )
                moves = [self._move_alias(name, a, version, "set") for a in request.aliases]
                return RegisterResult(self.get(name, version), created=True, moves=moves)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

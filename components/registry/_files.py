"""File-level building blocks of the local registry: content digests, staged copies, a cross-process lock.

A version directory appears in one ``rename``: the model is first copied into
a hidden staging directory beside the versions (same filesystem), with the
serving graph (``saved_model/``) copied last and everything fsynced, then the
staging directory is renamed to the version number. A reader therefore sees
either no version or a complete one, and a copy killed midway leaves only a
hidden ``.staging-*`` directory that the next push removes.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from components.core.errors import RegistryError
from components.core.io import sha256_file

__all__ = ["STAGING_PREFIX", "VERSION_FILE", "CopyHook", "copy_order", "file_lock", "model_digest", "remove_stale_staging", "stage_copy"]

STAGING_PREFIX = ".staging-"
"""Name prefix of staging directories (hidden from listings)."""

SERVING_DIR = "saved_model"

VERSION_FILE = "registry_version.json"
"""The registry's own record inside a version directory (not part of the model, nor of its digest)."""

CopyHook = Callable[[Path], None]
"""Called with each destination file right after it is copied (tests use it to pause a copy)."""


def copy_order(model_dir: Path) -> list[Path]:
    """The model's files, relative to ``model_dir``, in the order they are copied.

    Everything outside ``saved_model/`` comes first; inside it the variables
    come before ``saved_model.pb``, so the serving graph is the very last file.
    A top-level :data:`VERSION_FILE` (a registry's own record) is left out.

    Args:
        model_dir: the model directory.

    Returns:
        Relative file paths.
    """
    files = [p.relative_to(model_dir) for p in model_dir.rglob("*") if p.is_file()]
    files = [rel for rel in files if rel.as_posix() != VERSION_FILE]

    def key(rel: Path) -> tuple[int, int, str]:
        in_serving = rel.parts[0] == SERVING_DIR
        is_graph = in_serving and len(rel.parts) == 2 and rel.name.startswith("saved_model.")
        return (int(in_serving), int(is_graph), rel.as_posix())

    return sorted(files, key=key)


def model_digest(model_dir: Path) -> str:
    """A sha256 over every file's relative path and content (names and bytes, not times).

    Args:
        model_dir: the model directory.

    Returns:
        64 hex characters; equal for two directories with the same files.
    """
    h = hashlib.sha256()
    for rel in sorted(copy_order(model_dir), key=lambda r: r.as_posix()):
        h.update(rel.as_posix().encode("utf-8") + b"\0" + sha256_file(model_dir / rel).encode("ascii") + b"\n")
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def stage_copy(model_dir: Path, parent: Path, hook: CopyHook | None = None) -> Path:
    """Copies a model into a new hidden staging directory under ``parent``.

    Args:
        model_dir: the model directory.
        parent: the directory the staging directory is created in (the model's
            registry directory, so the final rename stays on one filesystem).
        hook: called after each copied file.

    Returns:
        The staging directory (the caller renames or removes it).
    """
    staging = parent / f"{STAGING_PREFIX}{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    staging.mkdir(parents=True)
    try:
        for rel in copy_order(model_dir):
            dst = staging / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(model_dir / rel, dst)
            with open(dst, "rb") as f:
                os.fsync(f.fileno())
            if hook is not None:
                hook(dst)
        for d in sorted({staging / rel.parent for rel in copy_order(staging)} | {staging}, key=lambda p: -len(p.parts)):
            _fsync_dir(d)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return staging


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_staging(parent: Path) -> list[Path]:
    """Removes staging directories of processes on this host that no longer run.

    Call it while holding the registry lock.

    Args:
        parent: the model's registry directory.

    Returns:
        The removed directories.
    """
    removed: list[Path] = []
    if not parent.is_dir():
        return removed
    host = socket.gethostname()
    for d in parent.glob(f"{STAGING_PREFIX}*"):
        rest = d.name[len(STAGING_PREFIX) :]
        try:
            owner_host, pid_s, _ = rest.rsplit("-", 2)
            pid = int(pid_s)
        except ValueError:
            continue
        if owner_host == host and not _pid_alive(pid):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Holds an exclusive ``fcntl`` lock on ``path`` (created if missing).

    The kernel releases the lock when the holder dies, so a killed push never
    leaves the registry locked.

    Args:
        path: the lock file.

    Yields:
        Nothing; the lock is held inside the ``with`` block.

    Raises:
        RegistryError: the lock file cannot be opened.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise RegistryError(f"cannot open registry lock {path}: {e.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock

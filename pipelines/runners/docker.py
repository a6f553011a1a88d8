"""Run every task of a local pipeline in the cvpipe image (``runtime.local_runner: docker``).

kfp.local's ``DockerRunner`` runs each task in ``runtime.image`` over the
Docker API (Docker's, or Podman's ``podman system service``; ``DOCKER_HOST``
says where). kfp 2.13 mounts only the pipeline root and lets no one add
volumes or run options (later kfp releases take ``DockerRunner(**container_run_args)``);
this module adds what a cluster gives a task and nothing else:

* **storage**: the run root, the metadata store's folder (SQLite) and the
  registry, read-write; the dataset and the other input files the spec names,
  read-only; each at the same path as on this machine, so the spec's paths
  mean the same inside (:func:`storage_mounts`). Nothing else of this machine
  is visible: the host's virtualenv and checkout stay outside.
* **ownership**: the image runs as uid/gid 1000. Like a pod's ``fsGroup``, the
  writable storage is handed to that user before the run (:func:`prepare_storage`);
  read-only inputs must be readable by it.
* **image**: resolved once per run to an image id, so every task runs the same
  image even if the tag is rebuilt meanwhile; a missing image is an error that
  says how to build it (no pull).
* **environment**: the variables the spec names for secrets (``*_env`` keys,
  e.g. ``runtime.metadata.password_env``), when set here, and the host's network
  (services the spec names on 127.0.0.1 stay reachable).

The containers are removed when they end (kfp 2.13 leaves them behind).
"""

from __future__ import annotations

import codecs
import contextlib
import os
import stat
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.core.errors import PipelineRunError
from components.core.lineage import sqlite_path
from components.core.spec import PipelineSpec

__all__ = ["IMAGE_GID", "IMAGE_UID", "ContainerTasks", "Mount", "container_tasks", "prepare_storage", "storage_mounts"]

IMAGE_UID = 1000
"""The image's user (``USER 1000:1000`` in infra/docker/Dockerfile)."""
IMAGE_GID = 1000

_PODMAN_HINT = (
    "start one and point DOCKER_HOST at it, e.g. with Podman: "
    "`podman system service --time=0 unix:///run/cvpipe-docker.sock & export DOCKER_HOST=unix:///run/cvpipe-docker.sock` "
    "(docs/cluster.md)"
)


@dataclass(frozen=True)
class Mount:
    """A host path a task sees at the same path.

    Attributes:
        path: the absolute path (a folder, or a file for single read-only inputs).
        writable: mounted read-write (else read-only).
        why: what the spec uses it for (shown in errors and the run record).
    """

    path: Path
    writable: bool
    why: str


def _within(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def storage_mounts(spec: PipelineSpec) -> list[Mount]:
    """What a task of this (path-resolved) spec reads and writes, as mounts at the same paths.

    Writable: ``runtime.root`` (run folders, default metadata store, alert log, prediction log),
    the SQLite metadata store's folder, the local registry, ``monitoring.prediction_log`` and
    ``monitoring.labels``. Read-only: the dataset (the annotation file's folder, or the folder
    itself), ``data.images`` and the single files the spec names (label map, schema, TFMA
    config, pretrained weights, metadata password file, Vertex settings). A mount inside a
    writable one, or a read-only one inside a read-only one, is left out.

    Args:
        spec: the spec, its local paths absolute (:func:`~components.core.spec.resolve_paths`).

    Returns:
        The mounts, writable first, shortest path first.

    Raises:
        PipelineRunError: the metadata store is an in-memory SQLite (tasks in containers cannot share it).
    """
    rt = spec.runtime
    wanted: list[Mount] = [Mount(Path(rt.root), True, "runtime.root")]
    if rt.metadata.url.startswith("sqlite:"):
        db = sqlite_path(rt.metadata.url, rt.root)
        if db is None:
            raise PipelineRunError("runtime.local_runner docker needs a metadata store on disk (or MySQL), not an in-memory SQLite")
        wanted.append(Mount(db.parent, True, "runtime.metadata.url (SQLite folder)"))
    if spec.registry.backend == "local":
        wanted.append(Mount(Path(spec.registry.root), True, "registry.root"))
    mon = spec.monitoring
    if mon is not None:
        wanted.append(Mount(mon.log_dir(rt.root), True, "monitoring.prediction_log"))
        if mon.labels:
            wanted.append(Mount(Path(mon.labels), True, "monitoring.labels"))
    source = Path(spec.data.source)
    wanted.append(Mount(source if source.is_dir() else source.parent, False, "data.source"))
    files = {
        "data.images": spec.data.images,
        "data.label_map": spec.data.label_map,
        "validation.schema_file": spec.validation.schema_file,
        "evaluate.tfma_config": spec.evaluate.tfma_config,
        "train.pretrained_weights": spec.train.pretrained_weights,
        "runtime.metadata.password_file": rt.metadata.password_file,
        "monitoring.retrain.settings": mon.retrain.settings if mon is not None else None,
    }
    wanted += [Mount(Path(p), False, why) for why, p in files.items() if p and "://" not in p]
    kept: list[Mount] = []
    for m in sorted(wanted, key=lambda m: (not m.writable, len(m.path.parts))):
        if any(_within(m.path, k.path) and (k.writable or not m.writable) for k in kept):
            continue
        kept.append(m)
    return kept


def _readable_by(path: Path, uid: int, gid: int) -> bool:
    st = path.stat()
    need = stat.S_IRUSR | (stat.S_IXUSR if path.is_dir() else 0)
    if st.st_uid == uid:
        return st.st_mode & need == need
    need >>= 3
    if st.st_gid == gid:
        return st.st_mode & need == need
    return st.st_mode & (need >> 3) == need >> 3


def _give(root: Path, uid: int, gid: int) -> None:
    """chown what under ``root`` is not the image user's yet (what a pod's fsGroup does to a volume)."""
    for top, dirs, files in os.walk(root):
        for name in [".", *dirs, *files]:
            p = Path(top) / name if name != "." else Path(top)
            st = p.lstat()
            if (st.st_uid, st.st_gid) != (uid, gid):
                os.lchown(p, uid, gid)


def prepare_storage(mounts: list[Mount], uid: int = IMAGE_UID, gid: int = IMAGE_GID) -> None:
    """Creates the writable folders and hands them to the image's user; checks the read-only inputs.

    As root, writable storage is given to ``uid:gid`` (files written by this machine's
    processes since the last run included), as a cluster's ``fsGroup`` gives a volume to a
    pod's user. As that user already, nothing changes. As anyone else the run cannot work
    (the tasks could not write) and the error names the path.

    Args:
        mounts: from :func:`storage_mounts`.
        uid: the image's user id.
        gid: the image's group id.

    Raises:
        PipelineRunError: an input is missing or unreadable for the image's user, or writable
            storage cannot be given to it.
    """
    me = os.geteuid()
    for m in mounts:
        if m.writable:
            m.path.mkdir(parents=True, exist_ok=True)
            if me == 0:
                _give(m.path, uid, gid)
            elif me != uid:
                raise PipelineRunError(
                    f"{m.why} ({m.path}) must be writable by the image's user (uid {uid}); run as root, or as uid {uid}, "
                    "or give the folder to that user"
                )
        elif not m.path.exists():
            raise PipelineRunError(f"{m.why} ({m.path}) does not exist")
        elif not _readable_by(m.path, uid, gid):
            raise PipelineRunError(
                f"{m.why} ({m.path}) is not readable by the image's user (uid {uid}): chmod o+rX it or give it to that user"
            )


def _secret_env_names(node: Any) -> set[str]:
    """Values of every ``*_env`` key in the spec (the variables secrets are read from)."""
    found: set[str] = set()
    if isinstance(node, dict):
        for k, v in node.items():
            if isinstance(v, str) and k.endswith("_env") and v:
                found.add(v)
            else:
                found |= _secret_env_names(v)
    elif isinstance(node, list):
        for v in node:
            found |= _secret_env_names(v)
    return found


@dataclass
class ContainerTasks:
    """What the in-image runner did (kept in the run's ``run.json``).

    Attributes:
        image: the spec's ``runtime.image``.
        image_id: the image id every task ran.
        mounts: the storage the tasks saw.
        environment: names of the variables passed in (never their values).
        containers: one entry per task: container id (short), exit status.
    """

    image: str
    image_id: str
    mounts: list[Mount]
    environment: list[str]
    containers: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "image": self.image,
            "image_id": self.image_id,
            "mounts": [{"path": str(m.path), "mode": "rw" if m.writable else "ro", "for": m.why} for m in self.mounts],
            "environment": self.environment,
            "containers": self.containers,
        }


_OPTIONS = "_cvpipe_container_tasks"


def _docker_client() -> Any:
    import docker

    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except docker.errors.DockerException as e:
        where = os.environ.get("DOCKER_HOST") or "the default socket (DOCKER_HOST is not set)"
        raise PipelineRunError(f"runtime.local_runner docker: no Docker API answers at {where} ({e}); {_PODMAN_HINT}") from None
    return client


def _run_in_container(handler: Any, client: Any, tasks: ContainerTasks, env: dict[str, str]) -> Any:
    """``DockerTaskHandler.run`` for runners carrying cvpipe's options: the container with the storage mounts."""
    from kfp.local import status

    volumes = {str(m.path): {"bind": str(m.path), "mode": "rw" if m.writable else "ro"} for m in tasks.mounts}
    for path, bind in handler.get_volumes_to_mount().items():  # the pipeline root, as kfp mounts it (inside runtime.root)
        if not any(m.writable and _within(Path(path), m.path) for m in tasks.mounts):
            volumes[path] = bind
    image = tasks.image_id if handler.image == tasks.image else handler.image
    container = client.containers.run(
        image=image,
        command=handler.full_command,
        detach=True,
        volumes=volumes,
        environment=env,
        network_mode="host",
        labels={"cvpipe.image": tasks.image},
    )
    try:
        text = codecs.getincrementaldecoder("utf-8")(errors="replace")  # a character may straddle two chunks
        for chunk in container.logs(stream=True, follow=True):
            print(text.decode(chunk), end="")
        code = int(container.wait()["StatusCode"])
    finally:
        with contextlib.suppress(Exception):  # already gone is fine
            container.remove(force=True)
    tasks.containers.append({"container": container.short_id, "exit_status": code})
    return status.Status.SUCCESS if code == 0 else status.Status.FAILURE


@contextlib.contextmanager
def container_tasks(spec: PipelineSpec) -> Iterator[tuple[Any, ContainerTasks]]:
    """A kfp.local ``DockerRunner`` whose tasks run in ``runtime.image`` with the spec's storage mounted.

    Inside the context, kfp's ``DockerTaskHandler.run`` runs tasks of this runner with the
    mounts, environment and image id above (other runners' tasks run as kfp runs them); on
    exit it is kfp's own again.

    Args:
        spec: the spec, its local paths absolute.

    Yields:
        ``(runner, record)``: the runner to pass to ``kfp.local.init`` and the record the
        tasks fill in.

    Raises:
        PipelineRunError: no Docker API, the image is not in its image store, or the storage
            cannot be prepared (the message says which and how to fix it).
    """
    import docker
    from kfp import local
    from kfp.local import docker_task_handler

    mounts = storage_mounts(spec)
    client = _docker_client()
    image = spec.runtime.image
    try:
        image_id = str(client.images.get(image).id)
        prepare_storage(mounts)
    except docker.errors.ImageNotFound:
        client.close()
        raise PipelineRunError(
            f"runtime.image {image} is not in the image store of the Docker API at {os.environ.get('DOCKER_HOST') or 'the default socket'}: "
            "build it with `make image` (its tag is printed) or set runtime.image to an image that is there; local runs never pull"
        ) from None
    except BaseException:
        client.close()
        raise
    names = sorted(n for n in _secret_env_names(spec.model_dump(mode="json")) if n in os.environ)
    env = {n: os.environ[n] for n in names}
    record = ContainerTasks(image=image, image_id=image_id, mounts=mounts, environment=names)
    runner = local.DockerRunner()
    setattr(runner, _OPTIONS, record)
    handler_cls = docker_task_handler.DockerTaskHandler
    kfp_run: Callable[[Any], Any] = handler_cls.run

    def run(handler: Any) -> Any:
        tasks = getattr(handler.runner, _OPTIONS, None)
        return kfp_run(handler) if tasks is None else _run_in_container(handler, client, tasks, env)

    handler_cls.run = run  # type: ignore[method-assign]
    try:
        sys.stdout.flush()
        yield runner, record
    finally:
        handler_cls.run = kfp_run  # type: ignore[method-assign]
        client.close()

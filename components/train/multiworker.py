"""Multi-worker training: the ``TF_CONFIG`` of each local worker, the local worker processes, and the Vertex AI worker pools.

:mod:`components.train.strategy` picks ``MultiWorkerMirroredStrategy`` when
``TF_CONFIG`` names two or more workers; this module writes what starts
them. Locally, :func:`local_tf_configs` gives one ``TF_CONFIG`` per worker
process on 127.0.0.1 (worker 0 is the chief: it writes checkpoints and the
model), and :class:`LocalWorkers` starts workers ``1 .. N-1`` as processes
running cvpipe's own train step (:mod:`components.train.worker`) while the
calling process trains as the chief (``train.workers: N``). :func:`task_role`
reads which one a process is from ``TF_CONFIG``. On Vertex AI,
:func:`vertex_worker_pool_specs` gives a custom job's worker pools: one chief
replica and N-1 workers with the same image and arguments; Vertex AI sets
``TF_CONFIG`` in every replica itself. On Kubeflow the Training Operator's
``TFJob`` (``Chief: 1``, ``Worker: N-1``) does the same (see docs/scaling.md).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components.core.errors import TrainingError

__all__ = ["LocalWorkers", "TaskRole", "free_ports", "local_tf_configs", "task_role", "vertex_worker_pool_specs"]

_LOG_TAIL = 3000


@dataclass(frozen=True)
class TaskRole:
    """Which process of a multi-worker cluster this is.

    Attributes:
        index: position in the cluster (0: the chief).
        num_workers: processes in the cluster (the chief included).
        chief: whether this process writes the model and the checkpoints that count.
        task: ``TF_CONFIG``'s task, e.g. ``worker 1`` (for messages).
    """

    index: int
    num_workers: int
    chief: bool
    task: str


def task_role(env: Mapping[str, str] = os.environ) -> TaskRole:
    """This process's role from ``TF_CONFIG``.

    The chief is the ``chief`` task (Vertex AI's pool 0, a TFJob's ``Chief``), or
    ``worker 0`` when the cluster has no ``chief`` (as :func:`local_tf_configs` writes).

    Args:
        env: environment variables (``TF_CONFIG`` is read).

    Returns:
        The role; without ``TF_CONFIG``, the only process (index 0 of 1, the chief).

    Raises:
        TrainingError: ``TF_CONFIG`` is not JSON or names no task of its cluster.
    """
    raw = env.get("TF_CONFIG", "")
    if not raw:
        return TaskRole(0, 1, True, "chief")
    try:
        cfg = json.loads(raw)
        cluster = cfg.get("cluster", {})
        task = cfg.get("task", {})
        kind, index = str(task.get("type", "")), int(task.get("index", 0))
    except (ValueError, TypeError, AttributeError) as e:
        raise TrainingError(f"TF_CONFIG is not a cluster with a task ({e}): {raw[:200]}") from None
    chiefs = len(cluster.get("chief", []) or [])
    workers = len(cluster.get("worker", []) or [])
    total = max(chiefs + workers, 1)
    if kind in ("chief", "master"):
        return TaskRole(0, total, True, f"{kind} {index}")
    if kind == "worker" and index < workers:
        position = index + chiefs
        return TaskRole(position, total, position == 0, f"worker {index}")
    if kind == "evaluator":
        raise TrainingError("TF_CONFIG names an evaluator task; cvpipe's trainer has no separate evaluator (validation runs in the loop)")
    raise TrainingError(f"TF_CONFIG's task {kind!r} {index} is not in its cluster {sorted(cluster)}")


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` ports free on ``host`` just now (bound together, so distinct; the OS picks them).

    Args:
        n: how many.
        host: the address.

    Returns:
        The ports.
    """
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind((host, 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def _abort_collectives(message: str) -> bool:
    """Makes this process's pending and later collective ops fail with ``message``.

    Only once this process has configured collectives and started TensorFlow's
    context (``MultiWorkerMirroredStrategy()`` does both before it waits for the
    cluster): aborting earlier would start the context first, and
    ``MultiWorkerMirroredStrategy`` then refuses to configure collectives.

    Returns:
        Whether the abort was made.
    """
    if "tensorflow" not in sys.modules:
        return False
    from tensorflow.python.eager import context  # the API TF's own peer health check aborts with

    ctx = context.context()
    if getattr(ctx, "_collective_leader", None) is None or not getattr(ctx, "_initialized", False):
        return False
    import tensorflow as tf

    ctx.abort_collective_ops(tf.errors.UNAVAILABLE, message)
    return True


class LocalWorkers:
    """Workers ``1 .. N-1`` of a local multi-worker run, as processes of cvpipe's train step on 127.0.0.1.

    :meth:`start` picks free ports, starts each worker with its own
    ``TF_CONFIG`` (:func:`local_tf_configs`) and sets this process's
    ``TF_CONFIG`` to the chief's (index 0), so the train step that called it
    builds ``MultiWorkerMirroredStrategy`` and trains in sync with them. A
    thread watches the workers: when one exits with an error, this process's
    collective ops are aborted (a blocked training step raises at once
    instead of waiting on the dead peer) and :meth:`check` raises
    :class:`~components.core.errors.TrainingError` naming the worker, its exit
    status and its log's tail. :meth:`close` stops the workers still running,
    restores ``TF_CONFIG`` and removes their scratch directory.

    Args:
        workers: processes in all, the chief (this one) included; at least 2.
        payload: the train step's arguments, as :mod:`components.train.worker` reads them.
        log: where start and exit lines go.
        host: the address every worker listens on.
    """

    def __init__(self, workers: int, payload: Mapping[str, Any], log: logging.Logger | logging.LoggerAdapter[Any], host: str = "127.0.0.1"):
        if workers < 2:
            raise ValueError(f"local multi-worker training needs at least 2 workers, got {workers}")
        self.workers = workers
        self.payload = dict(payload)
        self.log = log
        self.host = host
        self.scratch: Path | None = None
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.failure: str | None = None
        self._closing = threading.Event()
        self._failed = threading.Event()
        self._watcher: threading.Thread | None = None
        self._previous_tf_config: str | None = None

    def _log_path(self, index: int) -> Path:
        assert self.scratch is not None
        return self.scratch / f"worker-{index}.log"

    def start(self) -> LocalWorkers:
        """Starts the workers and makes this process the chief.

        Returns:
            self.
        """
        self.scratch = Path(tempfile.mkdtemp(prefix="cvpipe-workers-"))
        configs = local_tf_configs(free_ports(self.workers, self.host), self.host)
        root = str(Path(__file__).resolve().parents[2])
        path = os.environ.get("PYTHONPATH", "")
        for index in range(1, self.workers):
            env = {
                **os.environ,
                "TF_CONFIG": configs[index],
                "PYTHONPATH": root + (os.pathsep + path if path else ""),
                "TMPDIR": str(self.scratch),  # the worker's scratch checkpoints go here and leave with close()
            }
            payload_file = self.scratch / f"worker-{index}.json"
            payload_file.write_text(json.dumps(self.payload))
            with open(self._log_path(index), "wb") as out:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "components.train.worker", str(payload_file)],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            self.procs[index] = proc
            self.log.info("started training worker %d of %d (pid %d), log %s", index, self.workers, proc.pid, self._log_path(index))
        self._previous_tf_config = os.environ.get("TF_CONFIG")
        os.environ["TF_CONFIG"] = configs[0]
        self.log.info(
            "this process trains as the chief (worker 0 of %d) at %s", self.workers, json.loads(configs[0])["cluster"]["worker"][0]
        )
        self._watcher = threading.Thread(target=self._watch, name="cvpipe-workers", daemon=True)
        self._watcher.start()
        return self

    def _tail(self, index: int) -> str:
        try:
            data = self._log_path(index).read_bytes()[-_LOG_TAIL:]
        except OSError:
            return ""
        return data.decode("utf-8", "replace").strip()

    def _describe_exit(self, index: int, code: int) -> str:
        how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"
        tail = self._tail(index)
        return f"training worker {index} of {self.workers} (pid {self.procs[index].pid}) {how}" + (
            f"; the end of its log ({self._log_path(index)}):\n{tail}" if tail else ""
        )

    def _watch(self) -> None:
        pending = dict(self.procs)
        while pending and not self._closing.is_set():
            for index, proc in list(pending.items()):
                code = proc.poll()
                if code is None:
                    continue
                del pending[index]
                if code != 0 and not self._closing.is_set():
                    self.failure = self._describe_exit(index, code)
                    self.log.error("%s", self.failure.splitlines()[0])
                    self._failed.set()
                    while not self._closing.is_set() and not _abort_collectives(self.failure.splitlines()[0]):
                        self._closing.wait(0.2)
                    return
            self._closing.wait(0.2)

    def failed(self, timeout: float = 0.0) -> bool:
        """Whether a worker has failed, waiting up to ``timeout`` seconds for the watcher to notice one.

        Args:
            timeout: seconds to wait.

        Returns:
            True when a worker exited with an error.
        """
        return self._failed.wait(timeout)

    def check(self) -> None:
        """Raises when a worker has failed.

        Raises:
            TrainingError: naming the worker, how it ended, and how to resume.
        """
        if self.failure is not None:
            raise TrainingError(
                f"{self.failure}\nThe run stops; running the train step again resumes every worker from the chief's last step checkpoint."
            )

    def wait(self, timeout: float | None = None) -> None:
        """Waits for every worker to exit (after the chief's training loop has finished), then checks them.

        Args:
            timeout: seconds to wait for each worker.

        Raises:
            TrainingError: a worker failed or did not exit in time.
        """
        for index, proc in self.procs.items():
            try:
                code = proc.wait(timeout)
            except subprocess.TimeoutExpired:
                raise TrainingError(f"training worker {index} (pid {proc.pid}) did not exit {timeout:.0f}s after training ended") from None
            if code != 0 and self.failure is None:
                self.failure = self._describe_exit(index, code)
        self.check()

    def close(self) -> None:
        """Stops the workers still running, restores ``TF_CONFIG`` and removes the workers' scratch directory."""
        self._closing.set()
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs.values():
            proc.wait()
        if self._watcher is not None:
            self._watcher.join()
        if self._previous_tf_config is None:
            os.environ.pop("TF_CONFIG", None)
        else:
            os.environ["TF_CONFIG"] = self._previous_tf_config
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)

    def __enter__(self) -> LocalWorkers:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def local_tf_configs(ports: Sequence[int], host: str = "127.0.0.1") -> list[str]:
    """One ``TF_CONFIG`` per worker process of a local multi-worker run.

    Args:
        ports: a free port per worker (worker 0 is the chief).
        host: the address every worker listens on.

    Returns:
        The JSON ``TF_CONFIG`` of each worker, in order.

    Raises:
        ValueError: fewer than two ports (one worker needs no cluster).
    """
    if len(ports) < 2:
        raise ValueError(f"multi-worker training needs at least 2 workers, got {len(ports)}")
    workers = [f"{host}:{p}" for p in ports]
    return [json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}}) for i in range(len(ports))]


def vertex_worker_pool_specs(
    workers: int,
    image_uri: str,
    args: Sequence[str],
    machine_type: str = "n1-standard-8",
    accelerator_type: str | None = None,
    accelerator_count: int = 0,
    command: Sequence[str] = ("cvpipe",),
) -> list[dict[str, Any]]:
    """The ``worker_pool_specs`` of a Vertex AI custom job that trains on ``workers`` replicas.

    Args:
        workers: replicas in all (the chief included), at least 1.
        image_uri: the cvpipe training image.
        args: the container's arguments (the same for every replica).
        machine_type: the machine of every replica.
        accelerator_type: e.g. ``NVIDIA_TESLA_T4``; None for CPU replicas.
        accelerator_count: accelerators per replica.
        command: the container's entry point.

    Returns:
        Pool 0: the chief (1 replica); pool 1: the other ``workers - 1`` replicas (absent for 1).

    Raises:
        ValueError: ``workers`` is below 1, or an accelerator type without a count.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    machine: dict[str, Any] = {"machine_type": machine_type}
    if accelerator_type:
        if accelerator_count < 1:
            raise ValueError(f"accelerator {accelerator_type} needs accelerator_count >= 1")
        machine.update(accelerator_type=accelerator_type, accelerator_count=accelerator_count)
    container = {"image_uri": image_uri, "command": list(command), "args": list(args)}
    pools = [{"replica_count": 1, "machine_spec": dict(machine), "container_spec": dict(container)}]
    if workers > 1:
        pools.append({"replica_count": workers - 1, "machine_spec": dict(machine), "container_spec": dict(container)})
    return pools

"""Multi-worker training: the ``TF_CONFIG`` of each local worker, and the Vertex AI worker pools for N workers.

:mod:`components.train.strategy` picks ``MultiWorkerMirroredStrategy`` when
``TF_CONFIG`` names two or more workers; this module writes what starts
them. Locally, :func:`local_tf_configs` gives one ``TF_CONFIG`` per worker
process on 127.0.0.1 (worker 0 is the chief: it writes checkpoints and the
model). On Vertex AI, :func:`vertex_worker_pool_specs` gives a custom job's
worker pools: one chief replica and N-1 workers with the same image and
arguments; Vertex AI sets ``TF_CONFIG`` in every replica itself. On Kubeflow
the Training Operator's ``TFJob`` (``Chief: 1``, ``Worker: N-1``) does the
same (see docs/scaling.md).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

__all__ = ["local_tf_configs", "vertex_worker_pool_specs"]


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

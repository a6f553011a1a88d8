"""Picks the tf.distribute strategy and mixed-precision policy for the accelerator at hand.

The decision (:func:`plan_strategy`) is pure: it looks at the requested
accelerator, ``TF_CONFIG`` and the devices TensorFlow sees, so tests inject
device lists and cluster configs without owning a GPU or a TPU.
:func:`select_strategy` then builds the strategy object.

======================================  ===============================  =================
situation                               strategy                         mixed precision
======================================  ===============================  =================
a TPU cluster resolver answers          TPUStrategy                      mixed_bfloat16
TF_CONFIG names two or more workers     MultiWorkerMirroredStrategy      mixed_float16 on GPU
one or more GPUs visible                MirroredStrategy                 mixed_float16
otherwise (CPU)                         default strategy                 float32
======================================  ===============================  =================

A requested accelerator that is not there (``type: gpu`` on a machine with no
GPU, as under ``kfp.local``, which ignores accelerator settings) falls back to
the next row and says so in the description; training still runs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from components.core.spec import AcceleratorSpec

__all__ = ["StrategyPlan", "build_strategy", "mixed_precision", "plan_strategy", "select_strategy"]

StrategyKind = Literal["tpu", "multi_worker", "mirrored", "default"]


@dataclass(frozen=True)
class StrategyPlan:
    """What :func:`select_strategy` builds.

    Attributes:
        kind: ``tpu``, ``multi_worker``, ``mirrored`` or ``default``.
        devices: devices the strategy runs on (GPU names for ``mirrored``; empty otherwise).
        num_workers: workers named in ``TF_CONFIG`` (1 without one).
        precision: Keras dtype policy: ``float32``, ``mixed_float16`` or ``mixed_bfloat16``.
        description: one line for logs and the training report.
    """

    kind: StrategyKind
    devices: tuple[str, ...]
    num_workers: int
    precision: str
    description: str


def _workers(env: Mapping[str, str]) -> int:
    raw = env.get("TF_CONFIG", "")
    if not raw:
        return 1
    try:
        cfg = json.loads(raw)
    except ValueError:
        return 1
    cluster = cfg.get("cluster", {}) if isinstance(cfg, dict) else {}
    n = 0
    for role in ("chief", "worker"):
        members = cluster.get(role, [])
        n += len(members) if isinstance(members, list) else 0
    return max(n, 1)


def plan_strategy(accelerator: AcceleratorSpec, env: Mapping[str, str], gpus: Sequence[str], tpu_available: bool) -> StrategyPlan:
    """Decides the strategy without touching TensorFlow.

    Args:
        accelerator: what the spec asked for.
        env: environment variables (``TF_CONFIG`` is read).
        gpus: names of the visible GPU devices (``/physical_device:GPU:0``...).
        tpu_available: whether a TPU cluster resolver answered.

    Returns:
        The plan.
    """
    workers = _workers(env)
    wanted = accelerator.type
    note = ""
    if wanted == "tpu" and not tpu_available:
        note = " (TPU requested but no TPU cluster answered)"
    elif wanted == "gpu" and not gpus:
        note = f" ({accelerator.count} x {accelerator.kind or 'GPU'} requested but no GPU is visible)"
    if tpu_available:
        return StrategyPlan("tpu", (), workers, "mixed_bfloat16", "TPUStrategy with mixed_bfloat16")
    if workers > 1:
        precision = "mixed_float16" if gpus else "float32"
        where = f"{len(gpus)} GPU(s) per worker" if gpus else "CPU"
        return StrategyPlan(
            "multi_worker",
            tuple(gpus),
            workers,
            precision,
            f"MultiWorkerMirroredStrategy over {workers} workers on {where} with {precision}{note}",
        )
    if gpus:
        use = list(gpus)
        if wanted == "gpu" and accelerator.count < len(use):
            use = use[: accelerator.count]
        return StrategyPlan("mirrored", tuple(use), 1, "mixed_float16", f"MirroredStrategy over {len(use)} GPU(s) with mixed_float16{note}")
    return StrategyPlan("default", (), 1, "float32", f"default strategy on CPU with float32{note}")


def _visible_gpus() -> list[str]:
    import tensorflow as tf

    return [d.name for d in tf.config.list_physical_devices("GPU")]


def _tpu_resolver(accelerator: AcceleratorSpec, env: Mapping[str, str]) -> Any | None:
    """A connected TPU cluster resolver, or None.

    Only tried when a TPU is asked for or the environment names one: probing
    otherwise queries the GCE metadata server, which a laptop does not have.
    """
    if accelerator.type != "tpu" and not env.get("TPU_NAME"):
        return None
    import tensorflow as tf

    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=env.get("TPU_NAME", ""))
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return resolver
    except (ValueError, RuntimeError, tf.errors.OpError):
        return None


def select_strategy(
    accelerator: AcceleratorSpec,
    env: Mapping[str, str] = os.environ,
    *,
    list_gpus: Callable[[], list[str]] | None = None,
    tpu_resolver: Callable[[AcceleratorSpec, Mapping[str, str]], Any | None] | None = None,
) -> tuple[Any, str]:
    """Builds the ``tf.distribute`` strategy for this machine.

    Args:
        accelerator: what the spec asked for.
        env: environment variables (``TF_CONFIG``, ``TPU_NAME``).
        list_gpus: returns visible GPU names (default: ask TensorFlow).
        tpu_resolver: returns a connected TPU cluster resolver or None (default: try one
            when a TPU is requested or ``TPU_NAME`` is set).

    Returns:
        ``(strategy, description)``.
    """
    strategy, plan = build_strategy(accelerator, env, list_gpus=list_gpus, tpu_resolver=tpu_resolver)
    return strategy, plan.description


def build_strategy(
    accelerator: AcceleratorSpec,
    env: Mapping[str, str] = os.environ,
    *,
    list_gpus: Callable[[], list[str]] | None = None,
    tpu_resolver: Callable[[AcceleratorSpec, Mapping[str, str]], Any | None] | None = None,
) -> tuple[Any, StrategyPlan]:
    """Like :func:`select_strategy`, returning the whole plan (with its precision policy).

    Args:
        accelerator: what the spec asked for.
        env: environment variables.
        list_gpus: returns visible GPU names.
        tpu_resolver: returns a connected TPU cluster resolver or None.

    Returns:
        ``(strategy, plan)``.
    """
    import tensorflow as tf

    gpus = (list_gpus or _visible_gpus)()
    resolver = (tpu_resolver or _tpu_resolver)(accelerator, env)
    plan = plan_strategy(accelerator, env, gpus, resolver is not None)
    strategy: Any
    if plan.kind == "tpu":
        strategy = tf.distribute.TPUStrategy(resolver)
    elif plan.kind == "multi_worker":
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    elif plan.kind == "mirrored":
        logical = [f"/gpu:{i}" for i in range(len(plan.devices))]
        strategy = tf.distribute.MirroredStrategy(devices=logical)
    else:
        strategy = tf.distribute.get_strategy()
    return strategy, plan


class mixed_precision:
    """Context manager setting the global Keras dtype policy, restoring the previous one on exit.

    Args:
        policy: ``float32``, ``mixed_float16`` or ``mixed_bfloat16``.
    """

    def __init__(self, policy: str):
        self.policy = policy
        self._previous: str | None = None

    def __enter__(self) -> mixed_precision:
        import keras

        self._previous = keras.config.dtype_policy().name
        keras.config.set_dtype_policy(self.policy)
        return self

    def __exit__(self, *exc: object) -> None:
        import keras

        keras.config.set_dtype_policy(self._previous or "float32")

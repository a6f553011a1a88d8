"""Per-task settings from the spec: image, resources, accelerators, retries, caching.

Every KFP task of every cvpipe pipeline goes through :func:`configure_task`,
so what the spec says about resources lands on the compiled YAML the same way
for Kubeflow and Vertex AI. kfp.local ignores these settings; they matter on
a cluster. (``node_selector`` needs the kfp-kubernetes extension and is not
applied yet.)
"""

from __future__ import annotations

from typing import Any

from components.core.spec import PipelineSpec, ResourceSpec

__all__ = ["configure_task", "resources_for"]


def resources_for(spec: PipelineSpec, step: str) -> ResourceSpec:
    """The resources of one step: its own entry, else ``default``, else none.

    Args:
        spec: the pipeline spec.
        step: the component name.

    Returns:
        The step's resource settings.
    """
    res = spec.runtime.resources
    return res.get(step) or res.get("default") or ResourceSpec()


def configure_task(task: Any, spec: PipelineSpec, step: str, accelerated: bool = False, keep_image: bool = False) -> Any:
    """Applies the spec's settings to a KFP task.

    Args:
        task: the ``kfp.dsl.PipelineTask``.
        spec: the pipeline spec.
        step: the component name (a key of ``runtime.resources``).
        accelerated: whether ``train.accelerator`` applies to this task.
        keep_image: keep the component's own image (a user's component) instead of ``runtime.image``.

    Returns:
        The task.
    """
    task.set_display_name(step)
    if not keep_image:
        task.set_container_image(spec.runtime.image)
    res = resources_for(spec, step)
    task.set_caching_options(res.caching)
    if res.cpu:
        task.set_cpu_limit(res.cpu)
    if res.memory:
        task.set_memory_limit(res.memory)
    if res.retries:
        task.set_retry(num_retries=res.retries, backoff_duration=res.backoff, backoff_factor=2.0)
    acc = spec.train.accelerator
    if accelerated and acc.type != "cpu" and acc.kind:
        task.set_accelerator_type(acc.kind)
        task.set_accelerator_limit(str(acc.count))
    task.set_env_variable("CVPIPE_STEP", step)
    return task

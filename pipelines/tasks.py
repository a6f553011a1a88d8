"""Per-task settings from the spec: image, resources, accelerators, retries, caching.

Every KFP task of every cvpipe pipeline goes through :func:`configure_task`,
so what the spec says about resources lands on the compiled YAML the same way
for Kubeflow and Vertex AI. kfp.local ignores these settings; they matter on
a cluster. (``node_selector`` needs the kfp-kubernetes extension and is not
applied yet.)
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from components.core.params import context_parameter, section_parameter, spec_parameter
from components.core.spec import PipelineSpec, ResourceSpec

__all__ = ["configure_task", "pipeline_parameters", "resources_for", "with_parameters"]


def pipeline_parameters(spec: PipelineSpec, sections: list[str], whole_spec: bool = False) -> dict[str, dict[str, Any]]:
    """The pipeline parameters of one of a spec's pipelines, with the spec's values as defaults.

    ``context`` (:class:`~components.core.params.PipelineContext`) and each
    section the pipeline's components take, so a compiled pipeline can be run
    again with an edited section without recompiling; ``spec`` (the whole spec)
    when the retraining trigger is in the pipeline.

    Args:
        spec: the spec.
        sections: the sections the pipeline's components take (those the spec lacks are left out).
        whole_spec: add ``spec``.

    Returns:
        Parameter name -> default value.
    """
    params: dict[str, dict[str, Any]] = {"context": context_parameter(spec)}
    params.update({s: section_parameter(spec, s) for s in sections if getattr(spec, s) is not None})
    if whole_spec:
        params["spec"] = spec_parameter(spec)
    return params


def with_parameters(func: Callable[..., None], defaults: Mapping[str, dict[str, Any]]) -> Callable[..., None]:
    """Gives a pipeline function taking ``**params`` the signature KFP reads: one ``dict`` parameter per default.

    Args:
        func: the function.
        defaults: parameter name -> default value.

    Returns:
        The function, with ``__signature__`` set.
    """
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    signature = inspect.Signature(
        [inspect.Parameter(name, kind, default=value, annotation=dict) for name, value in defaults.items()], return_annotation=None
    )

    @functools.wraps(func)
    def pipeline(*args: Any, **kwargs: Any) -> None:  # KFP passes the parameters by position
        func(**signature.bind(*args, **kwargs).arguments)

    pipeline.__signature__ = signature  # type: ignore[attr-defined]
    return pipeline


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
        accelerated: whether ``train.accelerator`` applies to this task (not when
            ``train.vertex_job`` makes the train task a launcher).
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
    # with train.vertex_job the train task only submits a custom job: its replicas get the accelerators
    if accelerated and acc.type != "cpu" and acc.kind and spec.train.vertex_job is None:
        task.set_accelerator_type(acc.kind)
        task.set_accelerator_limit(str(acc.count))
    task.set_env_variable("CVPIPE_STEP", step)
    return task

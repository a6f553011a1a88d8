"""The training pipeline: ingest -> validate -> transform -> train -> evaluate -> push.

:func:`build_training_pipeline` turns a :class:`~components.core.spec.PipelineSpec`
into a KFP v2 pipeline function. The spec travels as the ``spec_json``
pipeline parameter (its default is the spec the pipeline was built from), so
a compiled pipeline can be re-run with an edited spec without recompiling;
each task also receives the KFP job name as its run id, which is how lineage
groups one run's executions.

kfp 2.13's local runner does not run ``dsl.If``, so gating (push only when
blessed) lives inside the push component.
"""

# No `from __future__ import annotations` here: kfp reads the pipeline function's
# annotations at run time and would take the string 'str' for an artifact type.

from collections.abc import Callable
from typing import Any

from components.core.spec import PipelineSpec

from .steps import STEPS
from .tasks import configure_task

__all__ = ["STEPS", "build_training_pipeline"]


def _component(step: str) -> Callable[..., Any]:
    import importlib

    module = importlib.import_module(f"components.{step}.component")
    return getattr(module, step)  # type: ignore[no-any-return]


def build_training_pipeline(spec: PipelineSpec, until: str | None = None) -> Any:
    """Builds the KFP pipeline for a spec.

    Args:
        spec: the pipeline spec.
        until: last step to include (``ingest`` ... ``push``); None for all.

    Returns:
        A KFP pipeline function (``kfp.dsl.graph_component.GraphComponent``).

    Raises:
        ValueError: ``until`` is not a step name.
    """
    from kfp import dsl

    if until is not None and until not in STEPS:
        raise ValueError(f"unknown step {until!r}; steps are {', '.join(STEPS)}")
    steps = STEPS[: STEPS.index(until) + 1] if until else STEPS
    default_spec = spec.model_dump_json()
    comps = {s: _component(s) for s in steps}

    @dsl.pipeline(name=spec.name, description=spec.description or f"cvpipe {spec.task} training pipeline")
    def training_pipeline(spec_json: str = default_spec) -> None:
        run_id = dsl.PIPELINE_JOB_NAME_PLACEHOLDER
        ing = configure_task(comps["ingest"](spec_json=spec_json, run_id=run_id), spec, "ingest")
        if "validate" not in comps:
            return
        val = configure_task(
            comps["validate"](spec_json=spec_json, run_id=run_id, manifest=ing.outputs["manifest"], label_map=ing.outputs["label_map"]),
            spec,
            "validate",
        )
        if "transform" not in comps:
            return
        tr = configure_task(
            comps["transform"](
                spec_json=spec_json,
                run_id=run_id,
                manifest=val.outputs["validated"],
                label_map=ing.outputs["label_map"],
                statistics=val.outputs["statistics"],
                schema=val.outputs["schema"],
            ),
            spec,
            "transform",
        )
        if "train" not in comps:
            return
        tn = configure_task(
            comps["train"](spec_json=spec_json, run_id=run_id, examples=tr.outputs["examples"], label_map=ing.outputs["label_map"]),
            spec,
            "train",
            accelerated=True,
        )
        if "evaluate" not in comps:
            return
        ev = configure_task(
            comps["evaluate"](spec_json=spec_json, run_id=run_id, model=tn.outputs["model"], examples=tr.outputs["examples"]),
            spec,
            "evaluate",
        )
        if "push" not in comps:
            return
        configure_task(
            comps["push"](spec_json=spec_json, run_id=run_id, model=tn.outputs["model"], blessing=ev.outputs["blessing"]), spec, "push"
        )

    return training_pipeline

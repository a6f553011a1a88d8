"""The training pipeline: ingest -> validate -> transform -> train -> evaluate -> push.

:func:`build_training_pipeline` turns a :class:`~components.core.spec.PipelineSpec`
into a KFP v2 pipeline function built from cvpipe's reusable components
(each usable on its own, :mod:`components.core.params`). The spec travels
as pipeline parameters: ``context`` (name, task, runtime, registry,
tracking) and one ``dict`` per section the steps take (``data``,
``validation``, ``transform``, ``train``, ``evaluate``, and ``monitoring``
when the spec has one), each defaulting to the spec's value, so a compiled
pipeline can be re-run with an edited section without recompiling; each task
also receives the KFP job name as its run id, which is how lineage groups one
run's executions.

kfp 2.13's local runner does not run ``dsl.If``, so gating (push only when
blessed) lives inside the push component.

The spec's ``steps`` (the user's own steps, docs/steps.md) are added after the
built-in step each names, in the order listed, each after the one before; the
next built-in step waits for the last of them, so a step that vetoes or fails
stops the run there. A ``function`` step is a generic cvpipe task
(:mod:`components.user_step.component`) named after the step; a ``component``
step is the user's own component YAML, given the artifacts and ``params`` its
inputs name, followed by a ``<name>-lineage`` task that records it in cvpipe's
lineage store (:mod:`pipelines.user_steps`).
"""

# No `from __future__ import annotations` here: kfp reads the pipeline function's
# annotations at run time and would take the string 'str' for an artifact type.

from collections.abc import Callable
from typing import Any

from components.core.params import SECTIONS
from components.core.spec import PipelineSpec

from .steps import STEPS, kept_steps
from .tasks import configure_task, pipeline_parameters, with_parameters
from .user_steps import component_arguments, lineage_recorder, step_parameter, user_step_component

__all__ = ["STEPS", "STEP_SECTIONS", "build_training_pipeline", "training_parameters"]

STEP_SECTIONS: dict[str, tuple[str, ...]] = {
    "ingest": ("data", "validation", "monitoring"),
    "validate": ("validation",),
    "transform": ("data", "transform", "validation"),
    "train": ("train",),
    "evaluate": ("evaluate",),
    "push": ("monitoring",),
}
"""The spec sections each training component takes (besides ``context`` and ``run_id``)."""


def _component(step: str) -> Callable[..., Any]:
    import importlib

    module = importlib.import_module(f"components.{step}.component")
    return getattr(module, step)  # type: ignore[no-any-return]


def training_parameters(spec: PipelineSpec, until: str | None = None) -> dict[str, dict[str, Any]]:
    """The training pipeline's parameters and their defaults: ``context`` and the sections its steps take.

    Args:
        spec: the spec.
        until: last step included (built-in or one of the spec's ``steps``).

    Returns:
        Parameter name -> default (the spec's value).
    """
    steps = [s for s in kept_steps(spec, until) if s in STEPS]
    return pipeline_parameters(spec, sorted({s for step in steps for s in STEP_SECTIONS[step]}, key=list(SECTIONS).index))


def build_training_pipeline(spec: PipelineSpec, until: str | None = None) -> Any:
    """Builds the KFP pipeline for a spec.

    Args:
        spec: the pipeline spec.
        until: last step to include: ``ingest`` ... ``push`` (with the user steps after it),
            or one of the spec's ``steps`` (the run stops right after it, its ``-lineage``
            task included); None for all.

    Returns:
        A KFP pipeline function (``kfp.dsl.graph_component.GraphComponent``).

    Raises:
        ValueError: ``until`` is not a step name (the message names the steps, the spec's own included).
    """
    from kfp import dsl

    kept = kept_steps(spec, until)
    comps = {s: _component(s) for s in STEPS if s in kept}
    defaults = training_parameters(spec, until)
    user_comps = {i: user_step_component(spec, i) for i, st in enumerate(spec.steps) if st.name in kept}

    def training_pipeline(**params: Any) -> None:
        context, run_id = params["context"], dsl.PIPELINE_JOB_NAME_PLACEHOLDER

        def given(step: str) -> dict[str, Any]:  # the sections a built-in step takes, as this pipeline's parameters
            return {s: params[s] for s in STEP_SECTIONS[step] if s in params}

        def then(task: Any, waits_for: list[Any]) -> Any:
            for before in waits_for:
                task.after(before)
            return task

        def user_steps(after: str, available: dict[str, Any]) -> list[Any]:
            # The user's steps after `after`, chained in the order listed; returns the last one (or none).
            last: list[Any] = []
            for i, comp in user_comps.items():
                step = spec.steps[i]
                if step.after != after:
                    continue
                if step.function is not None:
                    task = configure_task(comp(context=context, run_id=run_id, step=step_parameter(step), **available), spec, step.name)
                    last = [then(task, last)]
                    continue
                args = component_arguments(spec, i, comp, available, run_id)
                task = then(configure_task(comp(**args), spec, step.name, keep_image=True), last)
                # cvpipe records the user's component in its lineage store: a task of its own, after it
                recorder, inputs = lineage_recorder(spec, i, comp, task, {k: v for k, v in args.items() if k in available})
                record = configure_task(recorder(context=context, run_id=run_id, step=step_parameter(step), **inputs), spec, recorder.name)
                last = [record.after(task)]
            return last

        ing = configure_task(comps["ingest"](context=context, run_id=run_id, **given("ingest")), spec, "ingest")
        label_map = ing.outputs["label_map"]
        gate = user_steps("ingest", {"manifest": ing.outputs["manifest"], "label_map": label_map, "quarantine": ing.outputs["quarantine"]})
        if "validate" not in comps:
            return
        val = configure_task(
            then(
                comps["validate"](
                    context=context, run_id=run_id, manifest=ing.outputs["manifest"], label_map=label_map, **given("validate")
                ),
                gate,
            ),
            spec,
            "validate",
        )
        gate = user_steps(
            "validate",
            {
                "manifest": val.outputs["validated"],
                "label_map": label_map,
                "statistics": val.outputs["statistics"],
                "schema": val.outputs["schema"],
                "anomalies": val.outputs["anomalies"],
            },
        )
        if "transform" not in comps:
            return
        tr = configure_task(
            then(
                comps["transform"](
                    context=context, run_id=run_id, manifest=val.outputs["validated"], label_map=label_map, **given("transform")
                ),
                gate,
            ),
            spec,
            "transform",
        )
        examples = tr.outputs["examples"]
        gate = user_steps("transform", {"examples": examples, "label_map": label_map})
        if "train" not in comps:
            return
        tn = configure_task(
            then(comps["train"](context=context, run_id=run_id, examples=examples, label_map=label_map, **given("train")), gate),
            spec,
            "train",
            accelerated=True,
        )
        gate = user_steps("train", {"model": tn.outputs["model"], "examples": examples, "label_map": label_map})
        if "evaluate" not in comps:
            return
        ev = configure_task(
            then(
                comps["evaluate"](context=context, run_id=run_id, model=tn.outputs["model"], examples=examples, **given("evaluate")), gate
            ),
            spec,
            "evaluate",
        )
        gate = user_steps(
            "evaluate",
            {
                "model": tn.outputs["model"],
                "evaluation": ev.outputs["evaluation"],
                "blessing": ev.outputs["blessing"],
                "examples": examples,
            },
        )
        if "push" not in comps:
            return
        configure_task(
            then(
                comps["push"](context=context, run_id=run_id, model=tn.outputs["model"], blessing=ev.outputs["blessing"], **given("push")),
                gate,
            ),
            spec,
            "push",
        )

    description = spec.description or f"cvpipe {spec.task} training pipeline"
    return dsl.pipeline(name=spec.name, description=description)(with_parameters(training_pipeline, defaults))

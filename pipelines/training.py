"""The training pipeline: ingest -> validate -> transform -> train -> evaluate -> push.

:func:`build_training_pipeline` turns a :class:`~components.core.spec.PipelineSpec`
into a KFP v2 pipeline function. The spec travels as the ``spec_json``
pipeline parameter (its default is the spec the pipeline was built from), so
a compiled pipeline can be re-run with an edited spec without recompiling;
each task also receives the KFP job name as its run id, which is how lineage
groups one run's executions.

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

from components.core.spec import PipelineSpec

from .steps import STEPS
from .tasks import configure_task
from .user_steps import component_arguments, lineage_recorder, user_step_component

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
    user_comps = {i: user_step_component(spec, i) for i, st in enumerate(spec.steps) if st.after in steps}

    @dsl.pipeline(name=spec.name, description=spec.description or f"cvpipe {spec.task} training pipeline")
    def training_pipeline(spec_json: str = default_spec) -> None:
        run_id = dsl.PIPELINE_JOB_NAME_PLACEHOLDER

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
                    task = configure_task(comp(spec_json=spec_json, run_id=run_id, step=step.name, **available), spec, step.name)
                    last = [then(task, last)]
                    continue
                args = component_arguments(spec, i, comp, available, run_id)
                task = then(configure_task(comp(**args), spec, step.name, keep_image=True), last)
                # cvpipe records the user's component in its lineage store: a task of its own, after it
                recorder, inputs = lineage_recorder(spec, i, comp, task, {k: v for k, v in args.items() if k in available})
                record = configure_task(recorder(spec_json=spec_json, run_id=run_id, step=step.name, **inputs), spec, recorder.name)
                last = [record.after(task)]
            return last

        ing = configure_task(comps["ingest"](spec_json=spec_json, run_id=run_id), spec, "ingest")
        label_map = ing.outputs["label_map"]
        gate = user_steps("ingest", {"manifest": ing.outputs["manifest"], "label_map": label_map, "quarantine": ing.outputs["quarantine"]})
        if "validate" not in comps:
            return
        val = configure_task(
            then(comps["validate"](spec_json=spec_json, run_id=run_id, manifest=ing.outputs["manifest"], label_map=label_map), gate),
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
                    spec_json=spec_json,
                    run_id=run_id,
                    manifest=val.outputs["validated"],
                    label_map=label_map,
                    statistics=val.outputs["statistics"],
                    schema=val.outputs["schema"],
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
            then(comps["train"](spec_json=spec_json, run_id=run_id, examples=examples, label_map=label_map), gate),
            spec,
            "train",
            accelerated=True,
        )
        gate = user_steps("train", {"model": tn.outputs["model"], "examples": examples, "label_map": label_map})
        if "evaluate" not in comps:
            return
        ev = configure_task(
            then(comps["evaluate"](spec_json=spec_json, run_id=run_id, model=tn.outputs["model"], examples=examples), gate),
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
            then(comps["push"](spec_json=spec_json, run_id=run_id, model=tn.outputs["model"], blessing=ev.outputs["blessing"]), gate),
            spec,
            "push",
        )

    return training_pipeline

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
inputs name.
"""

# No `from __future__ import annotations` here: kfp reads the pipeline function's
# annotations at run time and would take the string 'str' for an artifact type.

from collections.abc import Callable
from typing import Any

from components.core.errors import SpecError
from components.core.spec import PipelineSpec, UserStepSpec

from .steps import STEPS
from .tasks import configure_task

__all__ = ["STEPS", "build_training_pipeline", "user_step_component"]


def _component(step: str) -> Callable[..., Any]:
    import importlib

    module = importlib.import_module(f"components.{step}.component")
    return getattr(module, step)  # type: ignore[no-any-return]


def user_step_component(spec: PipelineSpec, index: int) -> Any:
    """The KFP component of one user step, named after the step.

    Args:
        spec: the pipeline spec.
        index: the step's index in ``spec.steps``.

    Returns:
        For a ``function`` step, a copy of the generic cvpipe component for its ``after``
        point; for a ``component`` step, the user's component loaded from its YAML.

    Raises:
        SpecError: the component file cannot be loaded.
    """
    import copy

    step = spec.steps[index]
    if step.component is not None:
        from kfp import components

        try:
            comp = components.load_component_from_file(step.component)
        except Exception as e:
            raise SpecError([(f"steps.{index}.component", f"cannot load KFP component {step.component}: {e}")]) from None
    else:
        from components.user_step.component import USER_STEP_COMPONENTS

        comp = USER_STEP_COMPONENTS[step.after]
    comp = copy.copy(comp)
    comp.component_spec = copy.deepcopy(comp.component_spec)
    comp.component_spec.name = step.name
    comp.name = step.name
    return comp


def _component_arguments(spec: PipelineSpec, index: int, comp: Any, available: dict[str, Any], run_id: Any) -> dict[str, Any]:
    """A user component's arguments: the artifacts its inputs name, ``params``, and ``run_id`` when it takes one."""
    step: UserStepSpec = spec.steps[index]
    inputs = comp.component_spec.inputs or {}
    args: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    for key in step.params:
        if key not in inputs:
            problems.append(
                (f"steps.{index}.params", f"component {comp.name!r} has no input {key!r}; it takes {', '.join(inputs) or 'none'}")
            )
    for name, spec_in in inputs.items():
        if name in step.params:
            args[name] = step.params[name]
        elif name in available:
            args[name] = available[name]
        elif name == "run_id":
            args[name] = run_id
        elif spec_in.default is None and not spec_in.optional:
            problems.append(
                (
                    f"steps.{index}.component",
                    f"input {name!r} of {step.component} is neither an artifact available after {step.after} "
                    f"({', '.join(available)}) nor in params",
                )
            )
    if problems:
        raise SpecError(problems)
    return args


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

        def user_steps(after: str, available: dict[str, Any]) -> list[Any]:
            # The user's steps after `after`, chained in the order listed; returns the last one (or none).
            last: list[Any] = []
            for i, comp in user_comps.items():
                step = spec.steps[i]
                if step.after != after:
                    continue
                if step.function is not None:
                    task = comp(spec_json=spec_json, run_id=run_id, step=step.name, **available)
                else:
                    task = comp(**_component_arguments(spec, i, comp, available, run_id))
                task = configure_task(task, spec, step.name, keep_image=step.component is not None)
                for before in last:
                    task.after(before)
                last = [task]
            return last

        def then(task: Any, waits_for: list[Any]) -> Any:
            for before in waits_for:
                task.after(before)
            return task

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

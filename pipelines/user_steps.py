"""The user's own steps in the training pipeline: their KFP components, arguments and lineage recorders.

A ``function`` step runs in cvpipe's generic task for its point
(:mod:`components.user_step.component`), which records its own lineage. A
``component`` step is the user's component, loaded from its YAML; cvpipe
cannot reach inside it, so a small task of cvpipe's, ``<name>-lineage``, runs
after it and records one execution named after the step, linked to the
artifacts it was given and the artifacts it wrote. That recorder's inputs
depend on the user's component, and a KFP lightweight component's inputs are
its function's parameters, so its source is generated here (deterministic,
so compiled pipelines are stable) and registered with :mod:`linecache`,
where kfp reads a component's source from.
"""

from __future__ import annotations

import copy
import hashlib
import linecache
from typing import Any

from components.core.errors import SpecError
from components.core.params import to_parameter
from components.core.spec import PipelineSpec, UserStepSpec

__all__ = ["component_arguments", "lineage_recorder", "step_parameter", "user_step_component"]


def step_parameter(step: UserStepSpec) -> dict[str, Any]:
    """A user step as the ``step`` parameter of its cvpipe task (the generic function task or the lineage recorder).

    Args:
        step: the step.

    Returns:
        The parameter value.
    """
    return to_parameter(step)


def user_step_component(spec: PipelineSpec, index: int) -> Any:
    """The KFP component of one user step, named after the step.

    Args:
        spec: the pipeline spec.
        index: the step's index in ``spec.steps``.

    Returns:
        For a ``function`` step, a copy of the generic cvpipe component for its ``after``
        point; for a ``component`` step, the user's component loaded from its YAML.

    Raises:
        SpecError: the component file cannot be loaded, or its recorder's name is another step's.
    """
    step = spec.steps[index]
    if step.component is not None:
        from kfp import components

        if any(s.name == f"{step.name}-lineage" for s in spec.steps):
            raise SpecError([(f"steps.{index}.name", f"{step.name}-lineage is taken by this component step's lineage task")])
        try:
            comp = components.load_component_from_file(step.component)
        except Exception as e:
            raise SpecError([(f"steps.{index}.component", f"cannot load KFP component {step.component}: {e}")]) from None
    else:
        from components.user_step.component import USER_STEP_COMPONENTS

        comp = USER_STEP_COMPONENTS[step.after]
    return _renamed(comp, step.name)


def _renamed(comp: Any, name: str) -> Any:
    comp = copy.copy(comp)
    comp.component_spec = copy.deepcopy(comp.component_spec)
    comp.component_spec.name = name
    comp.name = name
    return comp


def component_arguments(spec: PipelineSpec, index: int, comp: Any, available: dict[str, Any], run_id: Any) -> dict[str, Any]:
    """A user component's arguments: the artifacts its inputs name, ``params``, and ``run_id`` when it takes one.

    Args:
        spec: the pipeline spec.
        index: the step's index in ``spec.steps``.
        comp: the user's component.
        available: the artifacts at the step's point, by name.
        run_id: the run id placeholder.

    Returns:
        Keyword arguments for the component.

    Raises:
        SpecError: a ``params`` key is not an input, or a required input is none of the above.
    """
    step = spec.steps[index]
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


_RECORDER = '''def record_user_component(context: dict, run_id: str, step: dict{params}) -> None:
    """Records the user component step ``step`` in cvpipe's lineage: what it was given and what it wrote."""
    from components.user_step.core import record_component

    record_component(context, run_id, step, {{{read}}}, {{{wrote}}})
'''


def lineage_recorder(spec: PipelineSpec, index: int, comp: Any, task: Any, given: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The ``<name>-lineage`` component that records a user component step, and its artifact arguments.

    Args:
        spec: the pipeline spec.
        index: the step's index in ``spec.steps``.
        comp: the user's component.
        task: its task in the pipeline.
        given: the artifacts the task was given, by input name.

    Returns:
        The recorder component and its artifact arguments (``in_<name>``, ``out_<name>``).
    """
    from kfp import dsl
    from kfp.dsl.types import type_utils

    from components.core.kfp_support import CVPIPE_IMAGE

    step = spec.steps[index]
    wrote = [n for n, o in (comp.component_spec.outputs or {}).items() if not type_utils.is_parameter_type(o.type)]
    args = {f"in_{k}": v for k, v in sorted(given.items())} | {f"out_{k}": task.outputs[k] for k in sorted(wrote)}
    source = _RECORDER.format(
        params="".join(f", {a}: Input[Artifact]" for a in args),
        read=", ".join(f"{k!r}: in_{k}" for k in sorted(given)),
        wrote=", ".join(f"{k!r}: out_{k}" for k in sorted(wrote)),
    )
    filename = f"<cvpipe lineage recorder {hashlib.sha256(source.encode()).hexdigest()[:12]}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    namespace: dict[str, Any] = {"Input": dsl.Input, "Artifact": dsl.Artifact}
    exec(compile(source, filename, "exec", dont_inherit=True), namespace)  # the source is ours, from artifact names KFP validated
    recorder = dsl.component(namespace["record_user_component"], base_image=CVPIPE_IMAGE, install_kfp_package=False)
    return _renamed(recorder, f"{step.name}-lineage"), args

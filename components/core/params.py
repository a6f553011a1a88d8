"""The typed parameters cvpipe's components take in a KFP pipeline.

Every component is usable on its own in any KFP v2 pipeline. Instead of the
whole pipeline spec it takes:

* ``context`` (``dict``): the :class:`PipelineContext`, what every step of one
  pipeline shares: the pipeline name lineage groups runs by, the task, and
  where the lineage store, the registry and experiment tracking are
  (``name``, ``task``, ``runtime``, ``registry``, ``tracking`` of the spec);
* ``run_id`` (``str``): the pipeline run, normally ``dsl.PIPELINE_JOB_NAME_PLACEHOLDER``;
* the spec sections it reads, each a ``dict`` parameter named after its key in
  the spec (``data``, ``validation``, ``transform``, ``train``, ``evaluate``,
  ``monitoring``) and validated by that section's model when the task starts;
* its artifacts, as typed KFP inputs and outputs.

KFP carries a ``dict`` parameter as a protobuf ``Struct``: no ``None`` values
and every number a float. :func:`to_parameter` therefore leaves out keys whose
value is None (the models' defaults restore them) and :func:`section_from_parameter`
turns whole floats back into ints before validating.

Inside the task, :func:`step_spec` assembles the :class:`~components.core.spec.PipelineSpec`
the component's core reads from those parameters. A section the component
was not given is not filled in with defaults: reading it raises
:class:`~components.core.errors.SpecError` naming the component and the
section, so a core that starts reading another section fails its tests
instead of silently using defaults.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from pydantic import BaseModel, Field, ValidationError

from .errors import SpecError
from .manifest import Task
from .spec import (
    DataSpec,
    EvaluateSpec,
    MonitoringSpec,
    PipelineSpec,
    RegistrySpec,
    RuntimeSpec,
    TrackingSpec,
    TrainSpec,
    TransformSpec,
    UserStepSpec,
    ValidationSpec,
    _problems,
    _Section,
    name_problems,
    parse_spec,
)

__all__ = [
    "SECTIONS",
    "PipelineContext",
    "context_parameter",
    "section_from_parameter",
    "section_parameter",
    "spec_from_parameter",
    "spec_parameter",
    "step_spec",
    "to_parameter",
]

SECTIONS: dict[str, type[BaseModel]] = {
    "data": DataSpec,
    "validation": ValidationSpec,
    "transform": TransformSpec,
    "train": TrainSpec,
    "evaluate": EvaluateSpec,
    "monitoring": MonitoringSpec,
}
"""The spec sections a component takes as parameters, by their key in the spec."""


class PipelineContext(_Section):
    """What every component of one pipeline shares (the ``context`` parameter).

    Attributes:
        name: the pipeline name; lineage groups executions and finds the
            previous label map, schema and statistics by it.
        task: classification, detection or segmentation.
        runtime: run root, lineage (ML Metadata) store and Beam settings.
        registry: the model registry (model name, alias, backend).
        tracking: experiment tracking (MLflow).
    """

    name: str = Field(pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
    task: Task
    runtime: RuntimeSpec = Field(default_factory=RuntimeSpec)
    registry: RegistrySpec = Field(default_factory=RegistrySpec)
    tracking: TrackingSpec = Field(default_factory=TrackingSpec)

    @classmethod
    def of(cls, spec: PipelineSpec) -> PipelineContext:
        """The context of a spec's pipelines.

        Args:
            spec: the spec.

        Returns:
            The context.
        """
        return cls(name=spec.name, task=spec.task, runtime=spec.runtime, registry=spec.registry, tracking=spec.tracking)


def _ints(value: Any) -> Any:
    # KFP's Struct carries every number as a double: 12 arrives as 12.0
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {k: _ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_ints(v) for v in value]
    return value


def to_parameter(model: BaseModel) -> dict[str, Any]:
    """A section as the value of a ``dict`` KFP parameter (JSON types, keys whose value is None left out).

    Args:
        model: the section.

    Returns:
        The parameter value.

    Raises:
        ValueError: the section does not survive the round trip (a None that its default would replace).
    """
    value: dict[str, Any] = model.model_dump(mode="json", exclude_none=True)
    if type(model).model_validate(_ints(value)).model_dump(mode="json") != model.model_dump(mode="json"):
        raise ValueError(f"{type(model).__name__} does not survive as a KFP parameter: a key set to None has another default")
    return value


def section_parameter(spec: PipelineSpec, section: str) -> dict[str, Any]:
    """One section of a spec as a component's parameter value.

    Args:
        spec: the spec.
        section: its key (one of :data:`SECTIONS`).

    Returns:
        The parameter value.

    Raises:
        ValueError: the section is unknown or the spec has none.
    """
    if section not in SECTIONS:
        raise ValueError(f"unknown section {section!r}; sections are {', '.join(SECTIONS)}")
    value = getattr(spec, section)
    if value is None:
        raise ValueError(f"spec {spec.name!r} has no {section} section")
    return to_parameter(value)


def context_parameter(spec: PipelineSpec) -> dict[str, Any]:
    """A spec's :class:`PipelineContext` as the ``context`` parameter value.

    Args:
        spec: the spec.

    Returns:
        The parameter value.
    """
    return to_parameter(PipelineContext.of(spec))


def spec_parameter(spec: PipelineSpec) -> dict[str, Any]:
    """A whole spec as a ``dict`` parameter value (the retraining trigger's ``spec``).

    Args:
        spec: the spec.

    Returns:
        The parameter value.
    """
    return to_parameter(spec)


def spec_from_parameter(value: Mapping[str, Any] | PipelineSpec) -> PipelineSpec:
    """Validates a whole-spec parameter.

    Args:
        value: the parameter value.

    Returns:
        The spec.

    Raises:
        SpecError: every problem, with its key path.
    """
    if isinstance(value, PipelineSpec):
        return value
    if not isinstance(value, Mapping):
        raise SpecError([("", f"a spec must be a mapping of keys to values, not {type(value).__name__}")])
    return parse_spec(_ints(dict(value)))


def section_from_parameter(section: str, value: Mapping[str, Any] | BaseModel | None) -> Any:
    """Validates a section parameter with its model.

    Args:
        section: ``context`` or one of :data:`SECTIONS`.
        value: the parameter value (a model passes through).

    Returns:
        The section model.

    Raises:
        SpecError: the value is not a valid section (every problem, under the section's key).
    """
    model = PipelineContext if section == "context" else SECTIONS[section]
    if isinstance(value, model):
        return value
    if not isinstance(value, Mapping):
        raise SpecError([(section, f"must be a mapping of keys to values, not {type(value).__name__}")])
    try:
        return model.model_validate(_ints(dict(value)))
    except ValidationError as e:
        raise SpecError([(f"{section}.{path}" if path else section, msg) for path, msg in _problems(e)]) from None


class _NotGiven:
    """Stands for a section a component does not take: reading it is a bug, reported as such."""

    def __init__(self, section: str, component: str):
        self._section = section
        self._component = component

    def __getattr__(self, attr: str) -> NoReturn:
        if attr.startswith("__"):
            raise AttributeError(attr)
        raise SpecError(
            [
                (
                    self._section,
                    f"the {self._component} component read {self._section}.{attr}, but it does not take the {self._section} section",
                )
            ]
        )

    def __bool__(self) -> bool:
        return True


def step_spec(
    component: str,
    context: Mapping[str, Any] | PipelineContext,
    *,
    steps: Sequence[Mapping[str, Any] | UserStepSpec] = (),
    **sections: Mapping[str, Any] | BaseModel | None,
) -> PipelineSpec:
    """The spec a component's core reads, from the component's parameters.

    Args:
        component: the component name (for messages).
        context: the ``context`` parameter.
        steps: the user steps the component runs or records (``steps`` of the spec), each as its parameter.
        **sections: the sections the component takes, by their spec key; None
            for an optional section that is absent (``monitoring``).

    Returns:
        The spec; a section not given raises :class:`SpecError` when read.

    Raises:
        SpecError: a parameter is not a valid section, or a threshold or policy names something the task lacks.
    """
    ctx: PipelineContext = section_from_parameter("context", context)
    problems: list[tuple[str, str]] = []
    given: dict[str, Any] = {}
    for key, value in sections.items():
        if key not in SECTIONS:
            raise ValueError(f"unknown section {key!r}; sections are {', '.join(SECTIONS)}")
        if value is None and key == "monitoring":
            given[key] = None
            continue
        try:
            given[key] = section_from_parameter(key, value)
        except SpecError as e:
            problems += e.problems
    user_steps: list[UserStepSpec] = []
    for i, step in enumerate(steps):
        try:
            user_steps.append(step if isinstance(step, UserStepSpec) else UserStepSpec.model_validate(_ints(dict(step))))
        except ValidationError as e:
            problems += [(f"steps.{i}.{path}" if path else f"steps.{i}", msg) for path, msg in _problems(e)]
    if problems:
        raise SpecError(problems)
    base: dict[str, Any] = {"name": ctx.name, "task": ctx.task, "runtime": ctx.runtime, "registry": ctx.registry, "tracking": ctx.tracking}
    # the task's own checks of thresholds and policies, on the sections given (the others at their defaults)
    checked = PipelineSpec.model_construct(**base, **given)
    problems = [(k, v) for k, v in name_problems(checked) if k.split(".")[0] in given]
    data = given.get("data")
    if data is not None and ctx.task == "classification" and data.format not in ("folders", "coco", "groundtruth"):
        problems.append(("data.format", f"format {data.format!r} carries boxes, not image classes; use detection or segmentation"))
    if problems:
        raise SpecError(problems)
    fields: dict[str, Any] = {k: given.get(k, _NotGiven(k, component)) for k in SECTIONS}
    return PipelineSpec.model_construct(**base, description="", schedule=None, serving=None, steps=user_steps, **fields)

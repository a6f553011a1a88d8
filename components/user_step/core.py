"""Runs a user's ``@cvpipe.step`` function as a pipeline step: import, call, veto, lineage.

:func:`run` is what the generic ``user_step_after_*`` KFP components call. It
imports the spec's ``"package.module:function"``, binds ``params`` to its
keyword arguments, calls it with the artifacts of the built-in step it
follows (:class:`~components.user_step.api.StepInputs`), writes ``step.json``
(outcome, reason, returned values) into the step's output directory and
records one MLMD execution named after the step, linked to every artifact it
received and to its output. A :class:`~components.core.errors.Veto` is
recorded as a FAILED execution with the reason and raised again, so the task
fails and nothing downstream runs; so is any other error of the function.

:func:`record_component` records a user *component* step that passed (its
``<name>-lineage`` task calls it); :func:`record_component_veto` one that
raised ``cvpipe.Veto``, with the same properties as a vetoing function step
(the local runner calls it: nothing in the pipeline runs after the veto).
"""

from __future__ import annotations

import json
import math
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.core.errors import SpecError, Veto
from components.core.io import atomic_write_json
from components.core.lineage import ArtifactRef, NewArtifact
from components.core.spec import PipelineSpec, UserStepSpec
from components.core.step import StepContext

from .api import ARTIFACTS_AFTER, StepArtifact, StepInputs, check_params, load_step_function

__all__ = ["StepResult", "record_component", "record_component_veto", "run", "run_task"]

_RESERVED = frozenset(("run_id", "pipeline", "duration_s", "function", "after", "outcome", "veto", "error", "user_step"))
_MAX_TEXT = 500


@dataclass
class StepResult:
    """What one user step did.

    Attributes:
        step: the step's name.
        outcome: ``passed``, ``vetoed`` or ``failed``.
        reason: the veto reason or the error, when not passed.
        values: what the function returned (names -> numbers, strings, booleans).
        artifacts: lineage ids: ``execution`` and ``output``.
    """

    step: str
    outcome: str
    reason: str | None = None
    values: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, int] = field(default_factory=dict)


def _user_step(ctx: StepContext, name: str) -> tuple[int, UserStepSpec]:
    for i, s in enumerate(ctx.spec.steps):
        if s.name == name:
            return i, s
    raise SpecError([("steps", f"the spec has no user step named {name!r}")])


def _values(returned: Any, where: str) -> dict[str, Any]:
    if returned is None:
        return {}
    if not isinstance(returned, Mapping):
        raise TypeError(f"{where} returned {type(returned).__name__}; return None or a mapping of names to numbers, strings or booleans")
    out: dict[str, Any] = {}
    for k, v in returned.items():
        if not isinstance(k, str) or not isinstance(v, str | int | float | bool) or (isinstance(v, float) and not math.isfinite(v)):
            raise TypeError(f"{where} returned {k!r}: {v!r}; values must be finite numbers, strings or booleans")
        out[k] = v
    return out


def _record(
    ctx: StepContext,
    spec: UserStepSpec,
    outcome: str,
    reason: str | None,
    *,
    inputs: Mapping[str, ArtifactRef],
    outputs: Mapping[str, NewArtifact] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, ArtifactRef]:
    """Records one user step's execution, function or component step alike: FAILED unless it passed.

    Its properties are ``user_step``, ``function`` or ``component`` (the file's name),
    ``after``, ``outcome``, ``veto`` (the reason) or ``error``, then ``extra``.
    """
    what = {"function": spec.function} if spec.function is not None else {"component": Path(spec.component or "").name}
    props: dict[str, Any] = {"user_step": True, **what, "after": spec.after, "outcome": outcome}
    if outcome == "vetoed":
        props["veto"] = (reason or "")[:_MAX_TEXT]
    elif outcome == "failed":
        props["error"] = (reason or "")[:_MAX_TEXT]
    props.update(extra or {})
    return ctx.store.record_execution(
        spec.name,
        pipeline=ctx.spec.name,
        run_id=ctx.run_id,
        inputs=inputs,
        outputs=outputs,
        properties=props,
        succeeded=outcome == "passed",
    )


def run(ctx: StepContext, artifacts: Mapping[str, StepArtifact], output_dir: str | Path, output_uri: str | None = None) -> StepResult:
    """Runs the user step named ``ctx.component`` of ``ctx.spec.steps``.

    Args:
        ctx: the step context (``component`` is the user step's name).
        artifacts: what it receives, by name (those of :data:`~components.user_step.api.ARTIFACTS_AFTER`).
        output_dir: its own output directory (created).
        output_uri: that directory's URI, for lineage (default: its path).

    Returns:
        The result (outcome ``passed``).

    Raises:
        SpecError: the function cannot be imported, is not a ``@cvpipe.step``, or ``params`` do not bind.
        Veto: the function vetoed the run (recorded first).
        Exception: whatever else the function raised (recorded first).
    """
    index, spec = _user_step(ctx, ctx.component)
    if spec.function is None:
        raise SpecError([(f"steps.{index}", "a component step runs the user's own component, not a cvpipe function")])
    expected = ARTIFACTS_AFTER[spec.after]
    if set(artifacts) != set(expected):
        raise ValueError(f"step {spec.name!r} after {spec.after} receives {sorted(expected)}, was given {sorted(artifacts)}")
    try:
        fn = load_step_function(spec.function)
    except ValueError as e:
        raise SpecError([(f"steps.{index}.function", str(e))]) from None
    problems = check_params(fn, spec.params)
    if problems:
        raise SpecError([(f"steps.{index}.params", p) for p in problems])
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    inputs = StepInputs(
        step=spec.name,
        after=spec.after,
        pipeline=ctx.spec.name,
        run_id=ctx.run_id,
        task=ctx.spec.task,
        artifacts=dict(artifacts),
        output_dir=out,
    )
    log = ctx.log
    log.info("%s after %s: calling %s(%s)", spec.name, spec.after, spec.function, ", ".join(artifacts))
    outcome, reason, values = "passed", None, {}
    error: BaseException | None = None
    try:
        values = _values(fn(inputs, **spec.params), spec.function)
    except Veto as v:
        outcome, reason, error = "vetoed", v.reason, Veto(v.reason, step=spec.name)
    except Exception as e:
        outcome, reason, error = "failed", f"{type(e).__name__}: {e}", e
        log.error("%s raised:\n%s", spec.function, "".join(traceback.format_exception(e)).rstrip())
    summary = {
        "step": spec.name,
        "after": spec.after,
        "function": spec.function,
        "params": spec.params,
        "outcome": outcome,
        "reason": reason,
        "values": values,
        "inputs": {k: a.uri for k, a in artifacts.items()},
    }
    atomic_write_json(out / "step.json", summary)
    read = {k: ctx.input_artifact(a.uri, a.kind) for k, a in artifacts.items()}
    files = sum(1 for p in out.rglob("*") if p.is_file())
    recorded = _record(
        ctx,
        spec,
        outcome,
        reason,
        inputs=read,
        outputs={"output": NewArtifact("StepOutput", output_uri or str(out), {"step": spec.name, "outcome": outcome, "files": files})},
        extra={
            "duration_s": round(time.monotonic() - ctx.started, 3),
            **{(f"result_{k}" if k in _RESERVED else k): v for k, v in values.items()},
        },
    )
    ids = {"output": recorded["output"].id}
    if error is not None:
        if outcome == "vetoed":
            log.error("vetoed the run: %s", reason)
        raise error
    shown = ", ".join(f"{k}={_short(v)}" for k, v in values.items())
    log.info("passed%s", f": {shown}" if shown else "")
    return StepResult(step=spec.name, outcome=outcome, reason=reason, values=values, artifacts=ids)


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return json.dumps(v) if isinstance(v, str) and " " in v else str(v)


def run_task(context: Mapping[str, Any], run_id: str, step: Mapping[str, Any], artifacts: Mapping[str, Any], output: Any) -> StepResult:
    """The body of every generic user-step KFP task: KFP artifacts in, :func:`run` called.

    Args:
        context: the pipeline context (:class:`~components.core.params.PipelineContext` as a dict).
        run_id: the pipeline run id.
        step: the user step (an entry of the spec's ``steps``, as a dict).
        artifacts: the task's input artifacts by name (objects with ``path``, ``uri`` and ``metadata``).
        output: the task's output artifact (its ``path`` becomes the step's output directory).

    Returns:
        The result.
    """
    ctx = StepContext.for_component(str(step.get("name")), run_id, context, steps=[step])
    _, spec = _user_step(ctx, ctx.component)
    kinds = ARTIFACTS_AFTER[spec.after]
    received = {
        name: StepArtifact(name=name, kind=kinds[name], path=Path(a.path), uri=str(a.uri or a.path), metadata=dict(a.metadata or {}))
        for name, a in artifacts.items()
    }
    result = run(ctx, received, output.path, output_uri=output.uri)
    output.metadata["outcome"] = result.outcome
    output.metadata.update(result.values)
    return result


def record_component(
    context: Mapping[str, Any], run_id: str, step: Mapping[str, Any], read: Mapping[str, Any], wrote: Mapping[str, Any]
) -> dict[str, int]:
    """Records a user *component* step in lineage: one execution named after the step, what it read and wrote.

    The ``<name>-lineage`` task that follows a component step calls this; the
    component itself succeeded (else the run stopped before).

    Args:
        context: the pipeline context (:class:`~components.core.params.PipelineContext` as a dict).
        run_id: the pipeline run id.
        step: the user step (an entry of the spec's ``steps``, as a dict).
        read: the artifacts the component was given, by input name (objects with ``uri`` and ``path``).
        wrote: the artifacts it wrote, by output name.

    Returns:
        Output name -> recorded artifact id.
    """
    ctx = StepContext.for_component(str(step.get("name")), run_id, context, steps=[step])
    index, spec = _user_step(ctx, ctx.component)
    if spec.component is None:
        raise SpecError([(f"steps.{index}", "a function step records its own lineage")])
    kinds = ARTIFACTS_AFTER[spec.after]
    inputs = {k: ctx.input_artifact(str(a.uri or a.path), kinds.get(k, "RawDataset")) for k, a in read.items()}
    outputs = {
        k: NewArtifact("StepOutput", str(a.uri or a.path), {"step": spec.name, "output": k, **_scalars(a.metadata)})
        for k, a in wrote.items()
    }
    recorded = _record(ctx, spec, "passed", None, inputs=inputs, outputs=outputs)
    ctx.log.info("recorded %s: read %s; wrote %s", spec.name, ", ".join(read) or "nothing", ", ".join(wrote) or "nothing")
    return {k: a.id for k, a in recorded.items()}


def record_component_veto(spec: PipelineSpec, run_id: str, name: str, reason: str, run_artifacts: Sequence[ArtifactRef]) -> None:
    """Records a user *component* step that vetoed the run (raised ``cvpipe.Veto``): FAILED, with the reason.

    Its ``<name>-lineage`` task never runs (nothing after a failed task does),
    so whoever saw the veto in the task's log records it (the local runner,
    :func:`pipelines.runners.local.run_local`): the same execution and
    properties as a vetoing function step, with an INPUT event to each
    artifact of the run that the component takes (the newest of its kind).

    Args:
        spec: the pipeline spec.
        run_id: the pipeline run id.
        name: the step's name.
        reason: the veto's reason.
        run_artifacts: the artifacts the run recorded so far (``LineageStore.artifacts_of_run``).

    Raises:
        SpecError: ``name`` is not a component step of the spec.
    """
    from kfp import components

    ctx = StepContext(spec=spec, run_id=run_id, component=name)
    index, step = _user_step(ctx, name)
    if step.component is None:
        raise SpecError([(f"steps.{index}", "a function step records its own lineage")])
    takes = components.load_component_from_file(step.component).component_spec.inputs or {}
    newest = {a.kind: a for a in run_artifacts}
    kinds = ARTIFACTS_AFTER[step.after]
    inputs = {k: newest[kind] for k, kind in kinds.items() if k in takes and kind in newest}
    _record(ctx, step, "vetoed", reason, inputs=inputs)


def _scalars(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (metadata or {}).items() if isinstance(v, str | int | float | bool)}

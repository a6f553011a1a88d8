"""The step names of cvpipe's two pipelines, in order (no imports, so the CLI can check ``--until`` fast).

A spec's ``steps`` add the user's own steps to the training pipeline:
:func:`training_steps` is its step names in pipeline order, and
:func:`kept_steps` what ``--until`` keeps of them (a built-in step keeps the
user steps after it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from components.core.spec import PipelineSpec

__all__ = ["CE_STEPS", "STEPS", "kept_steps", "training_steps"]

STEPS: tuple[str, ...] = ("ingest", "validate", "transform", "train", "evaluate", "push")
"""The training pipeline's steps, in order."""

CE_STEPS: tuple[str, ...] = ("read_window", "sample", "import_labels", "live_metrics", "drift", "alert", "trigger")
"""The continuous-evaluation pipeline's steps, in order."""


def training_steps(spec: PipelineSpec) -> tuple[str, ...]:
    """A spec's training pipeline steps in the order they run: each built-in step, then the user steps after it as listed.

    Args:
        spec: the spec.

    Returns:
        The step names (a component step's ``<name>-lineage`` task is part of its step, not a name here).
    """
    return tuple(name for builtin in STEPS for name in (builtin, *(s.name for s in spec.steps if s.after == builtin)))


def kept_steps(spec: PipelineSpec, until: str | None) -> tuple[str, ...]:
    """The training steps a run ``--until`` a step runs: every step up to and including it.

    A built-in step keeps the user steps after it too (the gates of what it
    made); a user step is the last step run.

    Args:
        spec: the spec.
        until: the last step, built-in or the user's own; None for all.

    Returns:
        The step names, in order.

    Raises:
        ValueError: ``until`` is not a step of the spec's training pipeline (the message names the steps).
    """
    order = training_steps(spec)
    if until is None:
        return order
    if until not in order:
        raise ValueError(f"unknown step {until!r}; steps are {', '.join(order)}")
    end = order.index(until) + 1
    if until in STEPS:  # and the user steps after it, up to the next built-in step
        end += sum(1 for s in spec.steps if s.after == until)
    return order[:end]

"""The sample step of continuous evaluation: a labelling batch from the window the read-window step wrote.

The step's lookups live here, so the KFP wrapper only hands over its
artifacts: the prediction log's repository and the production model
(``name@alias``) come from ``spec.monitoring``, the window's bounds from the
read-window step's output. Drawing and writing the batch is
:func:`components.sample.core.run`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from components.core.errors import SpecError
from components.core.step import ArtifactUris, StepContext
from components.monitor.window import load_window

from .core import SampleResult
from .core import run as sample_batch

__all__ = ["run"]


def run(ctx: StepContext, window_dir: Path, batch_dir: Path, *, uris: ArtifactUris | Mapping[str, str] | None = None) -> SampleResult:
    """Draws a labelling batch from the predictions of the window in ``window_dir``.

    Args:
        ctx: the step context (``spec.monitoring`` is required).
        window_dir: the read-window step's output (its bounds are the batch's window).
        batch_dir: output directory for the batch.
        uris: artifact URIs by name (``batch``; see :func:`components.sample.core.run`).

    Returns:
        The result.

    Raises:
        SpecError: the spec has no ``monitoring`` section.
    """
    mon = ctx.spec.monitoring
    if mon is None:
        raise SpecError([("monitoring", "is required to sample predictions for labelling")])
    w = load_window(window_dir).window
    return sample_batch(
        ctx,
        mon.log_dir(ctx.spec.runtime.root),
        f"{ctx.spec.model_name}@{mon.model_alias}",
        batch_dir,
        window_end=w.end,
        window=w.end - w.start,
        uris=uris,
    )

"""Apache Beam pipeline options from the spec's ``runtime.beam`` (imports Beam only when called).

The steps that can run on Beam (validate's TFDV statistics, transform's
TFRecord writing) build their pipelines with :func:`pipeline_options`, so one
spec section chooses the runner for all of them::

    runtime:
      beam:
        runner: DirectRunner
        options: {direct_num_workers: 4, direct_running_mode: multi_processing}
"""

from __future__ import annotations

from typing import Any

from .spec import BeamSpec

__all__ = ["pipeline_options"]


def pipeline_options(beam: BeamSpec, **extra: Any) -> Any:
    """Beam ``PipelineOptions`` for a spec's Beam section.

    Args:
        beam: the spec's ``runtime.beam``.
        **extra: options the calling step adds (the spec's own win).

    Returns:
        ``apache_beam.options.pipeline_options.PipelineOptions`` with the runner and options.
    """
    from apache_beam.options.pipeline_options import PipelineOptions

    values: dict[str, Any] = {**extra, **beam.options, "runner": beam.runner}
    # from_dictionary turns True into a bare flag, drops False, repeats list values
    return PipelineOptions.from_dictionary(values)

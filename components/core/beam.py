"""Apache Beam pipeline options from the spec's ``runtime.beam`` (imports Beam only when called).

The steps that can run on Beam (validate's TFDV statistics, transform's
TFRecord writing) build their pipelines with :func:`beam_pipeline` (options
from :func:`pipeline_options`), so one spec section chooses the runner for all
of them::

    runtime:
      beam:
        runner: DirectRunner
        options: {direct_num_workers: 4, direct_running_mode: multi_processing}
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from .spec import BeamSpec

__all__ = ["beam_pipeline", "pipeline_options"]


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


def _default_dask_client() -> Any:
    """The process's default ``dask.distributed`` client, or None (without importing distributed)."""
    if "distributed" not in sys.modules:
        return None
    import distributed

    try:
        return distributed.default_client()
    except ValueError:  # no client
        return None


@contextmanager
def beam_pipeline(beam: BeamSpec, **extra: Any) -> Iterator[Any]:
    """A Beam pipeline on the spec's runner, run when the block ends, leaving the process as it found it.

    Beam's Dask runner connects a ``dask.distributed`` client, makes it the
    process's default (``dask.config`` ``scheduler: dask.distributed``) and never
    closes it. Anything in the same process that computes with dask afterwards
    (Feast's file offline store, for one) would then be sent to that client's
    cluster, or fail with ``Requested dask.distributed scheduler but no Client
    active`` once the cluster is gone. So the client a run made is closed when
    the block ends, whether it succeeded or failed, which restores dask's
    configuration; a client the caller had made before is left alone.

    Args:
        beam: the spec's ``runtime.beam``.
        **extra: options the calling step adds (the spec's own win).

    Yields:
        The ``apache_beam.Pipeline``, run and waited for at the end of the block.
    """
    import apache_beam

    before = _default_dask_client()
    pipeline = apache_beam.Pipeline(options=pipeline_options(beam, **extra))
    try:
        with pipeline:
            yield pipeline
    finally:
        made = getattr(getattr(pipeline, "result", None), "client", None)  # DaskRunnerResult.client
        if made is None:
            made = _default_dask_client()  # the run failed before handing back its result
        if made is not None and made is not before:
            with suppress(Exception):
                made.close()

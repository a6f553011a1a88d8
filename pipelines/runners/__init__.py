"""The runners: one :class:`~components.core.runs.Runner` protocol, three orchestrators.

* :class:`~pipelines.runners.local.LocalRunner`: kfp.local on this machine
  (and :func:`~pipelines.runners.local.run_local`, a run in this process);
* :class:`~pipelines.runners.kubeflow.KubeflowRunner`: Kubeflow Pipelines;
* :class:`~pipelines.runners.vertex.VertexRunner`: Vertex AI Pipelines.

:func:`local_runner`, :func:`kubeflow_runner` and :func:`vertex_runner` build
the runner a spec's ``monitoring.retrain`` section names; they are the
``cvpipe.runners`` entry points through which
:func:`components.core.runs.runner_for` finds them (components never import
``pipelines``). Importing this package imports neither kfp nor aiplatform.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from components.core.errors import PipelineRunError
from components.core.runs import Runner, SubmittedRun
from components.core.secrets import read_secret
from components.core.spec import PipelineSpec, RetrainSpec

if TYPE_CHECKING:
    from .kubeflow import KubeflowRunner
    from .local import LocalRunner
    from .vertex import VertexRunner

__all__ = ["Runner", "kubeflow_runner", "local_runner", "submit", "vertex_runner"]


def submit(
    spec: PipelineSpec,
    runner: Runner,
    *,
    pipeline: str = "training",
    until: str | None = None,
    run_name: str | None = None,
    parameters: dict[str, Any] | None = None,
) -> SubmittedRun:
    """Starts a run of one of a spec's pipelines with a runner and returns at once (``runner.wait`` waits).

    Args:
        spec: the spec (the one ``cvpipe run`` runs locally, unchanged).
        runner: where it runs: a :class:`~pipelines.runners.local.LocalRunner`,
            :class:`~pipelines.runners.kubeflow.KubeflowRunner` or :class:`~pipelines.runners.vertex.VertexRunner`.
        pipeline: ``training`` or ``continuous-eval``.
        until: last step to include; None for the whole pipeline.
        run_name: the run's name (its id where the target lets the caller choose).
        parameters: pipeline parameters to override (cluster runners only).

    Returns:
        The started run.

    Raises:
        PipelineRunError: the target refused or cannot be reached.
    """
    return runner.submit(spec, pipeline=pipeline, until=until, run_name=run_name, parameters=parameters)


def _retrain(spec: PipelineSpec) -> RetrainSpec:
    return spec.monitoring.retrain if spec.monitoring is not None else RetrainSpec()


def local_runner(spec: PipelineSpec) -> LocalRunner:
    """A :class:`~pipelines.runners.local.LocalRunner` keeping its runs under ``<runtime.root>/local-runs``.

    Args:
        spec: the (path-resolved) spec.

    Returns:
        The runner.
    """
    from .local import LocalRunner

    return LocalRunner(Path(spec.runtime.root) / "local-runs")


def kubeflow_runner(spec: PipelineSpec) -> KubeflowRunner:
    """A :class:`~pipelines.runners.kubeflow.KubeflowRunner` from ``monitoring.retrain`` (host, namespace, token_env, service_account).

    Args:
        spec: the spec.

    Returns:
        The runner.

    Raises:
        PipelineRunError: no ``monitoring.retrain.host``.
    """
    from .kubeflow import KubeflowConnection, KubeflowRunner

    retrain = _retrain(spec)
    if not retrain.host:
        raise PipelineRunError("monitoring.retrain.target kubeflow needs monitoring.retrain.host")
    try:  # stripped; a value with a line break inside is refused by the variable's name, never shown
        token = read_secret(retrain.token_env) if retrain.token_env else None
    except ValueError as e:
        raise PipelineRunError(f"Kubeflow token: {e}") from None
    conn = KubeflowConnection(host=retrain.host, namespace=retrain.namespace, token=token)
    return KubeflowRunner(conn, service_account=retrain.service_account)


def vertex_runner(spec: PipelineSpec) -> VertexRunner:
    """A :class:`~pipelines.runners.vertex.VertexRunner` from ``monitoring.retrain`` (project, region, settings...).

    Args:
        spec: the spec.

    Returns:
        The runner.
    """
    from .vertex import VertexRunner, load_settings

    retrain = _retrain(spec)
    return VertexRunner(
        retrain.project,
        retrain.region,
        settings=load_settings(retrain.settings) if retrain.settings else None,
        pipeline_root=retrain.pipeline_root,
        service_account=retrain.service_account,
        api_endpoint=retrain.api_endpoint,
    )

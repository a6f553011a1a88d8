"""Optional experiment tracking in MLflow, beside cvpipe's own reports.

With ``tracking: {mlflow: {tracking_uri: ..., experiment: ...}}`` in the spec,
the train step logs one MLflow run per pipeline run (tagged ``cvpipe.run_id``)
holding its parameters (the spec's train section, strategy, precision),
per-epoch losses and validation metrics (one step per epoch), the loss plot and
the training report; the evaluate step then adds the final evaluation metrics
and the blessing to the same run. Two pipeline runs compare side by side in
MLflow's UI.

Tracking never fails a run: a server that is down or refuses a call is
logged as a warning and the metrics stay in cvpipe's own reports. Calls use
a short timeout and few retries so a dead server costs seconds, not minutes.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from .log import get_logger
from .secrets import redact_url
from .spec import MLflowTrackingSpec, PipelineSpec

__all__ = ["RUN_ID_TAG", "log_evaluation", "log_training", "tracking_run"]

RUN_ID_TAG = "cvpipe.run_id"
"""Tag of the MLflow run holding the cvpipe pipeline run id."""

_log = get_logger("tracking")

# a dead server should cost seconds: the client's defaults retry for minutes
_CLIENT_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}


@contextlib.contextmanager
def _client_env() -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in _CLIENT_ENV}
    for k, v in _CLIENT_ENV.items():
        os.environ.setdefault(k, v)
    try:
        yield
    finally:
        for k, old in saved.items():
            if old is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = old


def _reachable(uri: str, timeout_s: float = 5.0) -> str | None:
    """None when an HTTP tracking server answers ``/health``; otherwise why not."""
    if not uri.startswith(("http://", "https://")):
        return None
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout_s) as r:
            return None if r.status == 200 else f"/health answered {r.status}"
    except Exception as e:  # refused, timed out, or a URL urllib cannot use
        return redact_url(str(getattr(e, "reason", e)) or type(e).__name__)


def _flatten(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(value, list | tuple):
        out[prefix] = json.dumps(value)[:6000]
    else:
        out[prefix] = str(value)[:6000]


class _Tracker:
    def __init__(self, spec: MLflowTrackingSpec, experiment: str):
        from mlflow import MlflowClient

        self.spec = spec
        self.client = MlflowClient(tracking_uri=spec.tracking_uri)
        self.experiment = experiment

    def experiment_id(self) -> str:
        exp = self.client.get_experiment_by_name(self.experiment)
        if exp is not None:
            return str(exp.experiment_id)
        try:
            return str(self.client.create_experiment(self.experiment))
        except Exception:  # created by a concurrent run
            exp = self.client.get_experiment_by_name(self.experiment)
            if exp is None:
                raise
            return str(exp.experiment_id)

    def find_run(self, experiment_id: str, run_id: str) -> str | None:
        runs = self.client.search_runs([experiment_id], f"tags.`{RUN_ID_TAG}` = '{run_id}'", max_results=1)
        return str(runs[0].info.run_id) if runs else None

    def run_of(self, run_id: str, tags: Mapping[str, str] | None = None) -> str:
        """The MLflow run of a pipeline run, created (named ``run_id``, tagged with it and ``tags``) if there is none yet."""
        exp_id = self.experiment_id()
        found = self.find_run(exp_id, run_id)  # a retried step logs into the same run
        if found is not None:
            return found
        return str(self.client.create_run(exp_id, run_name=run_id, tags={RUN_ID_TAG: run_id, **(tags or {})}).info.run_id)


def _experiment(spec: PipelineSpec) -> tuple[MLflowTrackingSpec, str] | None:
    t = spec.tracking.mlflow
    return (t, t.experiment or spec.name) if t is not None else None


def _usable(spec: PipelineSpec, otherwise: str) -> tuple[MLflowTrackingSpec, str] | None:
    """The tracking section and experiment name, or None: tracking off, or a server that does not answer.

    An unreachable server is logged as a warning whose last words are ``otherwise`` (what happens instead).
    """
    found = _experiment(spec)
    if found is None:
        return None
    problem = _reachable(found[0].tracking_uri)
    if problem is not None:
        _log.warning("MLflow tracking at %s is not reachable (%s); %s", redact_url(found[0].tracking_uri), problem, otherwise)
        return None
    return found


@contextlib.contextmanager
def _guard(what: str, uri: str) -> Iterator[None]:
    try:
        with _client_env():
            yield
    except Exception as e:  # tracking must never fail the run
        text = re.sub(r"(://[^/:@\s]+):[^@\s/]+@", r"\1@", str(e))  # never a password in a log line
        _log.warning(
            "MLflow tracking at %s: %s failed (%s: %s); the metrics stay in cvpipe's reports", redact_url(uri), what, type(e).__name__, text
        )


def log_training(
    spec: PipelineSpec,
    run_id: str,
    params: Mapping[str, Any],
    history: Sequence[Mapping[str, float]],
    artifacts: Sequence[Path] = (),
    summary: Mapping[str, float] | None = None,
) -> str | None:
    """Logs a training run to MLflow when the spec asks for it.

    Args:
        spec: the pipeline spec (its ``tracking.mlflow`` section; nothing is logged without one).
        run_id: the cvpipe pipeline run id (tag ``cvpipe.run_id``, and the MLflow run's name).
        params: parameters (nested mappings are flattened to ``a.b``).
        history: per-epoch rows (``epoch``, ``loss``, ``val_loss``, ...); each number is logged at step ``epoch``.
        artifacts: files to attach (the loss plot, the training report).
        summary: final numbers of the training (best validation loss, epochs run...).

    Returns:
        The MLflow run id, or None when tracking is off or the server could not be used.
    """
    found = _usable(spec, "training goes on untracked")
    if found is None:
        return None
    tspec, experiment = found
    result: str | None = None
    with _guard("logging the training run", tspec.tracking_uri):
        from mlflow.entities import Metric, Param, RunTag

        t = _Tracker(tspec, experiment)
        mlflow_run = t.run_of(run_id, {"cvpipe.pipeline": spec.name})
        flat: dict[str, str] = {}
        _flatten("", params, flat)
        params_list = [Param(k, v) for k, v in sorted(flat.items())]
        for i in range(0, len(params_list), 100):  # MLflow takes at most 100 parameters per batch
            t.client.log_batch(mlflow_run, params=params_list[i : i + 100])
        metrics: list[Metric] = []
        for row in history:
            epoch = int(row.get("epoch", len(metrics)))
            for k, v in row.items():
                if k != "epoch" and isinstance(v, int | float) and math.isfinite(float(v)):
                    metrics.append(Metric(str(k), float(v), 0, epoch))
        for k, v in (summary or {}).items():
            if isinstance(v, int | float) and math.isfinite(float(v)):
                metrics.append(Metric(f"final_{k}", float(v), 0, 0))
        for i in range(0, len(metrics), 1000):
            t.client.log_batch(mlflow_run, metrics=metrics[i : i + 1000])
        for path in artifacts:
            if Path(path).is_file():
                t.client.log_artifact(mlflow_run, str(path), "training")
        t.client.log_batch(mlflow_run, tags=[RunTag("cvpipe.step", "train")])
        t.client.set_terminated(mlflow_run, status="FINISHED")
        result = mlflow_run
        _log.info("training logged to MLflow run %s (experiment %s at %s)", mlflow_run, experiment, redact_url(tspec.tracking_uri))
    return result


def log_evaluation(spec: PipelineSpec, run_id: str, metrics: Mapping[str, float | None], blessed: bool) -> str | None:
    """Adds the final evaluation metrics and the blessing to the pipeline run's MLflow run.

    Args:
        spec: the pipeline spec (nothing is logged without ``tracking.mlflow``).
        run_id: the cvpipe pipeline run id (finds the run training created; a new run otherwise).
        metrics: evaluation metrics (logged as ``eval_<name>``).
        blessed: whether the evaluation blessed the model.

    Returns:
        The MLflow run id, or None when tracking is off or the server could not be used.
    """
    found = _usable(spec, "evaluation metrics not tracked")
    if found is None:
        return None
    tspec, experiment = found
    result: str | None = None
    with _guard("logging the evaluation", tspec.tracking_uri):
        from mlflow.entities import Metric, RunTag

        t = _Tracker(tspec, experiment)
        mlflow_run = t.run_of(run_id)
        rows = [Metric(f"eval_{k}", float(v), 0, 0) for k, v in metrics.items() if isinstance(v, int | float) and math.isfinite(v)]
        t.client.log_batch(mlflow_run, metrics=rows, tags=[RunTag("cvpipe.blessed", "true" if blessed else "false")])
        t.client.set_terminated(mlflow_run, status="FINISHED")
        result = mlflow_run
    return result


def tracking_run(spec: PipelineSpec, run_id: str) -> str | None:
    """The MLflow run of a pipeline run, or None (tracking off, no such run, server unreachable).

    Args:
        spec: the pipeline spec.
        run_id: the cvpipe pipeline run id.

    Returns:
        The MLflow run id.
    """
    found = _experiment(spec)
    if found is None or _reachable(found[0].tracking_uri) is not None:
        return None
    with _guard("finding the run", found[0].tracking_uri):
        t = _Tracker(*found)
        exp = t.client.get_experiment_by_name(found[1])
        return t.find_run(str(exp.experiment_id), run_id) if exp is not None else None
    return None

"""What the cluster runners share: the submitted-run record, run states, waiting, portability checks.

Kubeflow Pipelines and Vertex AI Pipelines name run states differently
(``CANCELED`` / ``PIPELINE_STATE_CANCELLED``...). :class:`SubmittedRun`
carries one vocabulary, :data:`STATES`, so the CLI and callers treat both
targets alike; the target's own name stays in ``details["raw_state"]``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from components.core.errors import PipelineRunError
from components.core.spec import PipelineSpec, RuntimeSpec

__all__ = [
    "STATES",
    "TERMINAL_STATES",
    "SubmittedRun",
    "Target",
    "normalise_state",
    "portability_warnings",
    "wait_until_done",
]

Target = Literal["kubeflow", "vertex"]

STATES: tuple[str, ...] = ("PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLING", "CANCELLED", "PAUSED", "SKIPPED", "UNKNOWN")
"""Run states of every target, in cvpipe's words."""

TERMINAL_STATES: frozenset[str] = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "SKIPPED"})
"""States a run never leaves."""

_ALIASES = {
    "QUEUED": "PENDING",
    "CANCELED": "CANCELLED",
    "CANCELING": "CANCELLING",
    "RUNTIME_STATE_UNSPECIFIED": "UNKNOWN",
    "UNSPECIFIED": "UNKNOWN",
    "ERROR": "FAILED",
}


def normalise_state(raw: str | None) -> str:
    """Maps a Kubeflow or Vertex AI state name to one of :data:`STATES`.

    Args:
        raw: ``SUCCEEDED``, ``PIPELINE_STATE_RUNNING``, ``CANCELED``... (None: unknown).

    Returns:
        The cvpipe state.
    """
    if not raw:
        return "UNKNOWN"
    name = str(raw).upper().removeprefix("PIPELINE_STATE_")
    name = _ALIASES.get(name, name)
    return name if name in STATES else "UNKNOWN"


@dataclass
class SubmittedRun:
    """A pipeline run on a cluster, as cvpipe reports it.

    Attributes:
        target: ``kubeflow`` or ``vertex``.
        run_id: the id to give ``get_run``/``wait_run`` (KFP run id; Vertex pipeline job id).
        name: the run's display name.
        state: one of :data:`STATES`.
        url: where to look at it in a browser.
        pipeline: the pipeline's name.
        created: creation time as the service reports it (RFC 3339), if known.
        error: the service's error message for a failed run.
        details: target-specific extras (``raw_state``, ``resource_name``,
            ``pipeline_id``, ``version_id``, ``experiment_id``...).
    """

    target: Target
    run_id: str
    name: str
    state: str
    url: str = ""
    pipeline: str = ""
    created: str = ""
    error: str | None = None
    details: dict[str, str] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        """Whether the run reached a terminal state."""
        return self.state in TERMINAL_STATES

    @property
    def succeeded(self) -> bool:
        """Whether the run finished successfully."""
        return self.state == "SUCCEEDED"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "target": self.target,
            "run_id": self.run_id,
            "name": self.name,
            "state": self.state,
            "url": self.url,
            "pipeline": self.pipeline,
            "created": self.created,
            "error": self.error,
            "details": dict(self.details),
        }


def wait_until_done(
    fetch: Callable[[], SubmittedRun],
    timeout: float | None,
    poll: float,
    on_change: Callable[[SubmittedRun], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> SubmittedRun:
    """Polls a run until it reaches a terminal state.

    Args:
        fetch: returns the run's current state.
        timeout: seconds to wait at most (None: no limit).
        poll: seconds between polls.
        on_change: called with the run whenever its state changes (and first).
        sleep: the sleep function (tests pass a no-op).

    Returns:
        The finished run (whatever its final state: callers check ``succeeded``).

    Raises:
        PipelineRunError: the run is still not finished after ``timeout`` seconds.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    last_state: str | None = None
    while True:
        run = fetch()
        if run.state != last_state:
            last_state = run.state
            if on_change is not None:
                on_change(run)
        if run.done:
            return run
        if deadline is not None and time.monotonic() + poll > deadline:
            raise PipelineRunError(
                f"{run.target} run {run.run_id} is still {run.state} after {timeout:g}s; it keeps running: check it with `cvpipe runs show {run.run_id} --target {run.target}`"
            )
        sleep(poll)


_LOCAL_PATH_FIELDS = (
    ("data.source", lambda s: s.data.source),
    ("data.images", lambda s: s.data.images),
    ("data.label_map", lambda s: s.data.label_map),
    ("validation.schema_file", lambda s: s.validation.schema_file),
    ("evaluate.tfma_config", lambda s: s.evaluate.tfma_config),
    ("train.pretrained_weights", lambda s: s.train.pretrained_weights),
)


def portability_warnings(spec: PipelineSpec, target: Target) -> list[str]:
    """What in a spec a cluster run may not be able to use, as messages (nothing is changed).

    The same spec runs locally and on a cluster; these are the settings that
    only make sense on the machine that wrote them: local file paths (a
    cluster task sees them only on a volume mounted at the same path), a
    SQLite metadata store (each task pod would get its own file, so lineage
    would not join up: use ``mysql://``), a local registry, and an image tag
    with no registry host (cluster nodes must be able to pull it).

    Args:
        spec: the spec to submit.
        target: ``kubeflow`` or ``vertex``.

    Returns:
        One message per problem, naming the key path.
    """
    out: list[str] = []
    for key, get in _LOCAL_PATH_FIELDS:
        value = get(spec)
        if value and "://" not in value and not value.startswith(("/gcs/", "/s3/", "/minio/")):
            out.append(
                f"{key}: {value} is a local path; the cluster's tasks read it only if a volume holds it at that path (or use gs://...)"
            )
    if spec.runtime.metadata.url.startswith("sqlite://"):
        out.append(
            "runtime.metadata.url: SQLite lives inside each task's container, so lineage of a cluster run is lost; use mysql://user@host:port/db"
        )
    if spec.registry.backend == "local" and "://" not in spec.registry.root and not spec.registry.root.startswith("/gcs/"):
        out.append(f"registry.root: {spec.registry.root} is a local directory; pushed models stay in the push task's container")
    image = spec.runtime.image
    first = image.split("/", 1)[0]
    if "/" not in image or not ("." in first or ":" in first or first == "localhost"):
        default = RuntimeSpec.model_fields["image"].default
        hint = " (the default)" if image == default else ""
        out.append(
            f"runtime.image: {image}{hint} names no registry; cluster nodes must be able to pull it (push it to a registry and name it here)"
        )
    root = spec.runtime.pipeline_root
    if target == "vertex" and root and not root.startswith("gs://"):
        out.append(
            f"runtime.pipeline_root: {root} is not gs://; Vertex AI Pipelines needs a Cloud Storage pipeline root (the default applies)"
        )
    return out

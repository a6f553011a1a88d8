"""What the cluster runners share: portability checks and schedule expressions.

Run records, states and waiting are :mod:`components.core.runs` (re-exported
here): :class:`SubmittedRun` carries one vocabulary, :data:`STATES`, so the
CLI and callers treat every target alike; the target's own name stays in
``details["raw_state"]``.
"""

from __future__ import annotations

from components.core.errors import SpecError
from components.core.runs import STATES, TERMINAL_STATES, ScheduleResult, SubmittedRun, Target, normalise_state, wait_until_done
from components.core.spec import PipelineSpec, RuntimeSpec

__all__ = [
    "STATES",
    "TERMINAL_STATES",
    "ScheduleResult",
    "SubmittedRun",
    "Target",
    "kfp_cron",
    "normalise_state",
    "portability_warnings",
    "schedule_cron",
    "scheduled_pipeline",
    "vertex_cron",
    "wait_until_done",
]


def scheduled_pipeline(spec: PipelineSpec, pipeline: str = "auto") -> str:
    """Which pipeline a schedule runs.

    Args:
        spec: the spec.
        pipeline: ``auto`` (continuous evaluation when the spec has ``monitoring``, else
            training), ``training`` or ``continuous-eval``.

    Returns:
        ``training`` or ``continuous-eval``.

    Raises:
        SpecError: continuous evaluation of a spec without ``monitoring``.
    """
    if pipeline == "auto":
        return "continuous-eval" if spec.monitoring is not None else "training"
    if pipeline == "continuous-eval" and spec.monitoring is None:
        raise SpecError([("monitoring", "is required to schedule the continuous-evaluation pipeline")])
    if pipeline not in ("training", "continuous-eval"):
        raise SpecError([("", f"unknown pipeline {pipeline!r}: use training, continuous-eval or auto")])
    return pipeline


def schedule_cron(spec: PipelineSpec, cron: str | None) -> tuple[str, str]:
    """The cron expression and time zone of a schedule: ``cron`` when given, else the spec's ``schedule``.

    Args:
        spec: the spec.
        cron: a five-field expression overriding the spec's.

    Returns:
        ``(expression, IANA zone)``.

    Raises:
        SpecError: neither is given, or the expression is invalid.
    """
    if cron:
        from components.core.spec import ScheduleSpec

        s = ScheduleSpec(cron=cron, timezone=spec.schedule.timezone if spec.schedule else "UTC")
        return s.cron, s.timezone
    if spec.schedule is None:
        raise SpecError([("schedule", "is required to schedule recurring runs (schedule: {cron: '0 * * * *'})")])
    return spec.schedule.cron, spec.schedule.timezone


def kfp_cron(cron: str) -> str:
    """A five-field cron expression in KFP's six-field form (seconds first).

    Args:
        cron: ``minute hour day-of-month month day-of-week``.

    Returns:
        ``0 minute hour day-of-month month day-of-week``.
    """
    return f"0 {cron.strip()}"


def vertex_cron(cron: str, timezone: str) -> str:
    """A cron expression for a Vertex AI schedule, with its time zone prefix.

    Args:
        cron: the five-field expression.
        timezone: an IANA zone (UTC needs no prefix).

    Returns:
        ``TZ=<zone> <cron>`` (or the expression as is for UTC).
    """
    return cron.strip() if timezone in ("UTC", "Etc/UTC") else f"TZ={timezone} {cron.strip()}"


_LOCAL_PATH_FIELDS = (
    ("data.source", lambda s: s.data.source),
    ("data.images", lambda s: s.data.images),
    ("data.label_map", lambda s: s.data.label_map),
    ("validation.schema_file", lambda s: s.validation.schema_file),
    ("evaluate.tfma_config", lambda s: s.evaluate.tfma_config),
    ("train.pretrained_weights", lambda s: s.train.pretrained_weights),
)


def portability_warnings(spec: PipelineSpec, target: str) -> list[str]:
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

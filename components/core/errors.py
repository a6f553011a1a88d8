"""The one errors module of cvpipe.

Every error cvpipe raises on purpose derives from :class:`CvpipeError`, so a
caller can catch the family with one ``except``. The tree::

    CvpipeError
    ├── SpecError                 a pipeline spec is invalid (every problem, with its key path)
    ├── DataError                 input data cannot be used
    │   ├── AnnotationError       an annotation file cannot be read at all
    │   ├── ImageError            an image cannot be decoded or is unsafe to decode
    │   └── QuarantineLimitError  more items were rejected than the spec allows
    ├── ValidationFailed          data validation found an anomaly whose policy is "fail"
    ├── Veto                      a user step (a custom quality gate) stopped the run, with its reason
    ├── LineageError              ML Metadata cannot be opened or a lookup failed
    ├── RegistryError             a model registry operation failed
    ├── EvaluationError           predictions or ground truth are unusable for evaluation
    ├── TrainingError             training cannot start or continue
    ├── AlertError                an alert could not be delivered after all retries
    ├── LabellingError            the labelling tool (Label Studio) refused a request or stayed unreachable
    └── PipelineRunError          a pipeline run (local or remote) did not succeed
        ├── RemoteUnavailable     the orchestrator could not be reached or failed (5xx): the run may still exist
        └── RemoteRefused         the orchestrator refused the credentials (401, 403): the run may still exist

Messages name the file and the problem; they never need a stack trace to be
understood.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = [
    "AlertError",
    "AnnotationError",
    "CvpipeError",
    "DataError",
    "EvaluationError",
    "ImageError",
    "LabellingError",
    "LineageError",
    "PipelineRunError",
    "QuarantineLimitError",
    "RegistryError",
    "RemoteRefused",
    "RemoteUnavailable",
    "SpecError",
    "TrainingError",
    "ValidationFailed",
    "Veto",
]


class CvpipeError(Exception):
    """Base class of every error cvpipe raises on purpose."""


class SpecError(CvpipeError):
    """A pipeline spec is invalid.

    Attributes:
        problems: ``(key_path, message)`` pairs, for example
            ``("train.accelerator.count", "must be >= 1")``.
        source: the file the spec came from, if any.
    """

    def __init__(self, problems: Iterable[tuple[str, str]], source: str | None = None):
        self.problems: list[tuple[str, str]] = list(problems)
        self.source = source
        where = f"{source}: " if source else ""
        lines = [f"{path}: {msg}" if path else msg for path, msg in self.problems]
        super().__init__(f"{where}invalid pipeline spec\n  " + "\n  ".join(lines))


class DataError(CvpipeError):
    """Input data cannot be used."""


class AnnotationError(DataError):
    """An annotation file cannot be read at all (not one bad item inside it)."""

    def __init__(self, path: str, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class ImageError(DataError):
    """An image cannot be decoded, or is unsafe to decode."""

    def __init__(self, path: str, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class QuarantineLimitError(DataError):
    """More items were quarantined than the spec allows.

    The quarantine report is written before this is raised, so nothing is lost.
    """

    def __init__(self, stage: str, rejected: int, total: int, limit: str, report: str):
        self.stage = stage
        self.rejected = rejected
        self.total = total
        self.report = report
        super().__init__(f"{stage}: {rejected} of {total} items quarantined, over the limit of {limit}; see the quarantine report {report}")


class ValidationFailed(CvpipeError):
    """Data validation found anomalies whose policy is ``fail``."""

    def __init__(self, anomalies: Sequence[str], report: str | None = None):
        self.anomalies = list(anomalies)
        self.report = report
        tail = f"; report: {report}" if report else ""
        shown = "\n  ".join(self.anomalies[:20])
        more = f"\n  ... and {len(self.anomalies) - 20} more" if len(self.anomalies) > 20 else ""
        super().__init__(f"data validation failed{tail}\n  {shown}{more}")


class Veto(CvpipeError):
    """A user step stopped the run: a custom quality gate said no.

    A ``@cvpipe.step`` function raises it with a reason a person can act on;
    cvpipe records the reason in lineage, fails the step so that nothing
    downstream runs or pushes, and shows the reason in ``cvpipe run`` and the
    run summary.

    Args:
        reason: why the run must stop (one line, for example
            ``"31% of images are near-duplicates (limit 10%)"``).
        step: the step that vetoed (cvpipe fills it in).

    Attributes:
        reason: the reason.
        step: the user step's name, once known.
    """

    def __init__(self, reason: str, step: str | None = None):
        self.reason = str(reason).strip() or "no reason given"
        self.step = step
        who = f"step {step!r} " if step else ""
        super().__init__(f"{who}vetoed the run: {self.reason}")


class LineageError(CvpipeError):
    """ML Metadata cannot be opened, or a lineage lookup failed."""


class RegistryError(CvpipeError):
    """A model registry operation failed."""


class EvaluationError(CvpipeError):
    """Predictions or ground truth are unusable for evaluation."""


class TrainingError(CvpipeError):
    """Training cannot start or continue."""


class AlertError(CvpipeError):
    """An alert could not be delivered: refused by the receiver, or still failing after all retries.

    Attributes:
        sink: the sink that failed, when known.
        status: the HTTP status that ended the delivery, if any.
        transient: True when the failure was worth retrying (429, 5xx, connection
            errors) and the retries ran out; False for a refusal such as HTTP 400.
    """

    def __init__(self, message: str, *, sink: str | None = None, status: int | None = None, transient: bool = False):
        super().__init__(message)
        self.sink = sink
        self.status = status
        self.transient = transient


class LabellingError(CvpipeError):
    """The labelling tool refused a request, or stayed unreachable after all retries.

    Attributes:
        status: the HTTP status that ended the request, if any.
    """

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class PipelineRunError(CvpipeError):
    """A pipeline run did not succeed."""


class RemoteUnavailable(PipelineRunError):
    """The orchestrator (Kubeflow Pipelines, Vertex AI) could not be reached, or answered with a server error (5xx).

    Nothing is known about the run then: it may exist, so a caller must not
    report it as missing (the console answers 502, or 504 after a timeout).

    Args:
        service: the orchestrator in words (``Kubeflow Pipelines``).
        target: ``kubeflow`` or ``vertex``.
        endpoint: the API endpoint asked, without credentials.
        what: what was being done (``getting run X``).
        reason: why it failed, in words (``connection refused``, ``HTTP 500: ...``).
        timeout: True when no answer came in time.

    Attributes:
        target: as given.
        endpoint: as given.
        reason: as given.
        timeout: as given.
    """

    def __init__(self, service: str, target: str, endpoint: str, what: str, reason: str, *, timeout: bool = False):
        self.target = target
        self.endpoint = endpoint
        self.reason = reason
        self.timeout = timeout
        super().__init__(f"{service}: reaching {endpoint} failed ({what}): {reason}")


class RemoteRefused(PipelineRunError):
    """The orchestrator answered, but refused the caller's credentials (401 unauthenticated, 403 forbidden).

    As with :class:`RemoteUnavailable`, nothing is known about the run: it may
    exist, so a caller must not report it as missing (the console answers
    403 and says to check the token or service account).

    Args:
        service: the orchestrator in words (``Kubeflow Pipelines``).
        target: ``kubeflow`` or ``vertex``.
        endpoint: the API endpoint asked, without credentials.
        what: what was being done (``getting run X``).
        reason: the orchestrator's answer (``HTTP 403: ...``), without credentials.

    Attributes:
        target: as given.
        endpoint: as given.
        reason: as given.
    """

    def __init__(self, service: str, target: str, endpoint: str, what: str, reason: str):
        self.target = target
        self.endpoint = endpoint
        self.reason = reason
        super().__init__(f"{service} at {endpoint} refused the credentials ({what}): {reason}")

"""Follow-ups: news about an incident after it was first notified, and alias moves.

* :func:`follow_up` sends an update on incidents already in the log (the
  retraining they started ended: pushed as version N and which alias moved,
  refused with the failed thresholds, or failed with the step and error). The
  update goes out with the incident's id, so every receiver shows it on the same
  incident (Alertmanager's label set, PagerDuty's ``dedup_key``); a resolved
  incident keeps its status.
* :func:`announce_alias` announces that a model took an alias automatically
  (an ``info`` notification ``ModelAliasMoved``); every automatic move is
  announced, whether or not an incident started it.
"""

from __future__ import annotations

from collections.abc import Sequence

from .config import AlertConfig
from .dispatcher import AlertDispatcher, DispatchResult
from .incident import runbook_link
from .model import Alert

__all__ = ["announce_alias", "follow_up"]


def follow_up(config: AlertConfig, keys: Sequence[str], text: str, *, severity: str | None = None) -> DispatchResult:
    """Sends ``text`` as an update of the incidents with these dedup keys (the latest notification of each).

    Args:
        config: the alerting configuration (log, sinks).
        keys: the incidents' dedup keys (a retraining's ``alert_keys``).
        text: the news.
        severity: a new severity for the update (default: the incident's).

    Returns:
        What was sent (keys the log does not know are skipped).
    """
    dispatcher = AlertDispatcher(config)
    latest: dict[str, Alert] = {}
    for _, _, _, alert in dispatcher.log.notifications():
        if alert.dedup_key in keys:
            latest[alert.dedup_key] = alert
    updates = [
        a.model_copy(update={"update": text, **({"severity": severity} if severity else {})})
        for k in keys
        if (a := latest.get(k)) is not None
    ]
    return dispatcher.dispatch(updates)


def announce_alias(
    config: AlertConfig,
    model: str,
    alias: str,
    version: int | str,
    previous: int | str | None,
    why: str,
    *,
    runbook_url: str | None = None,
    generator_url: str | None = None,
) -> DispatchResult:
    """Announces that a model version took an alias automatically.

    Args:
        config: the alerting configuration.
        model: the model.
        alias: the alias (e.g. ``champion``).
        version: the version that holds it now.
        previous: the version that held it before (None: nothing did).
        why: what moved it (e.g. ``push of retraining run R``).
        runbook_url: the runbook's base URL.
        generator_url: link to the push outcome or the run.

    Returns:
        What was sent.
    """
    was = f"was version {previous}" if previous is not None else "it pointed nowhere before"
    text = f"{model} version {version} took the alias {alias} automatically ({was}); {why}"
    alert = Alert(
        name="ModelAliasMoved",
        severity="info",
        summary=f"{model}@{alias} is now version {version} ({was})",
        description=f"Roll back with: cvpipe models rollback {model}@{alias} --spec SPEC" if previous is not None else "",
        model=model,
        metric=f"alias/{alias}",
        dedup_key=f"cvpipe/{model}/alias/{alias}",
        labels={"cause": "alias", "alias": alias},
        cause="alias",
        version=str(version),
        alias=alias,
        update=text,
        runbook_url=runbook_link(runbook_url, "alias"),
        generator_url=generator_url,
    )
    return AlertDispatcher(config).dispatch([alert])

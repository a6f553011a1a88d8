"""The alert cvpipe sends to on-call staff, whatever the sink.

An :class:`Alert` is one condition of one model (a drifting feature, a live
metric below its threshold). Its ``dedup_key`` names the condition, not the
occurrence: every evaluation of the same condition produces the same key, so
the dispatcher can deduplicate, rate-limit and later resolve it, and the
receivers (Alertmanager's label set, PagerDuty's ``dedup_key``) see one
incident.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from components.core.clock import utc_now

__all__ = ["SEVERITIES", "Alert", "AlertStatus", "Severity", "TimeWindow", "utc_now"]

Severity = Literal["critical", "error", "warning", "info"]
"""PagerDuty's four severities; Alertmanager and Slack get the same word."""
AlertStatus = Literal["firing", "resolved"]

SEVERITIES: tuple[str, ...] = ("info", "warning", "error", "critical")
"""Severities from least to most severe."""


def _aware(v: datetime) -> datetime:
    return v if v.tzinfo is not None else v.replace(tzinfo=UTC)


class TimeWindow(BaseModel):
    """A half-open time interval ``[start, end)`` of evaluated data.

    Attributes:
        start: first instant (timezone-aware; naive values are taken as UTC).
        end: end instant.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: datetime
    end: datetime

    @field_validator("start", "end")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        return _aware(v)

    @model_validator(mode="after")
    def _order(self) -> TimeWindow:
        if self.end < self.start:
            raise ValueError("window end is before its start")
        return self


class Alert(BaseModel):
    """One alert, firing or resolved.

    Attributes:
        name: alert name (Alertmanager ``alertname``), e.g. ``InputDrift``.
        severity: critical, error, warning or info.
        summary: one line for humans (PagerDuty summary, Slack header).
        description: longer text.
        model: the model concerned.
        metric: the measured quantity, e.g. ``psi/brightness``.
        value: the observed value.
        threshold: the threshold it was compared with.
        window: the data window evaluated.
        runbook_url: what on-call should do.
        dedup_key: identity of the condition (default: a hash of name, model, metric and labels).
        status: firing or resolved.
        labels: extra identifying labels (part of the identity in Alertmanager).
        source: the system that observed the condition (PagerDuty ``source``).
        generator_url: link back to the report or pipeline run.
        starts_at: when the condition began (default: now).
        ends_at: when it ended (resolved alerts; default: now on resolve).
        cause: the incident's cause (``input_drift``, ``prediction_drift``, ``embedding_drift``,
            ``degradation``; empty for a single finding).
        version: the model version in production.
        alias: the registry alias that version holds.
        findings: the individual findings of an incident, worst first, kept as detail
            (``check``, ``feature``, ``change`` in words, ``statistic``, ``value``, ``threshold``...).
        action: what cvpipe did or will do about it (retraining started with its id, or why not).
        update: a follow-up's news (retraining ended, alias moved); empty for the first notification.
        incident_id: the incident's id (assigned by the dispatcher when it first fires).
        console_url: the incident's page in the console (``<console base>/incidents/<id>``).
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    severity: Severity = "warning"
    summary: str = Field(min_length=1)
    description: str = ""
    model: str = ""
    metric: str = ""
    value: float | None = None
    threshold: float | None = None
    window: TimeWindow | None = None
    runbook_url: str | None = None
    dedup_key: str = ""
    status: AlertStatus = "firing"
    labels: dict[str, str] = Field(default_factory=dict)
    source: str = "cvpipe"
    generator_url: str | None = None
    starts_at: datetime = Field(default_factory=utc_now)
    ends_at: datetime | None = None
    cause: str = ""
    version: str = ""
    alias: str = ""
    findings: list[dict[str, Any]] = Field(default_factory=list)
    action: str = ""
    update: str = ""
    incident_id: str = ""
    console_url: str | None = None

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _utc(cls, v: datetime | None) -> datetime | None:
        return None if v is None else _aware(v)

    @model_validator(mode="after")
    def _defaults(self) -> Alert:
        if not self.dedup_key:
            ident = "\x1f".join([self.name, self.model, self.metric, *(f"{k}={v}" for k, v in sorted(self.labels.items()))])
            self.dedup_key = f"cvpipe-{hashlib.sha256(ident.encode()).hexdigest()[:24]}"
        if self.status == "resolved" and self.ends_at is None:
            self.ends_at = utc_now()
        return self

    def resolved(self, at: datetime | None = None) -> Alert:
        """This alert's resolve message.

        Args:
            at: when the condition cleared (default: now).

        Returns:
            A copy with status ``resolved`` and ``ends_at`` set.
        """
        return self.model_copy(update={"status": "resolved", "ends_at": _aware(at) if at else utc_now()})

    @property
    def severity_rank(self) -> int:
        """0 (info) to 3 (critical)."""
        return SEVERITIES.index(self.severity)

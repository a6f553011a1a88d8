"""Alert sinks: Prometheus Alertmanager, Slack incoming webhooks and PagerDuty Events API v2.

Each sink turns an :class:`~.model.Alert` into its receiver's wire format
(the ``*_payload`` functions are pure, so the exact JSON is easy to read and
test) and POSTs it with :func:`~.http.post_json`. The JSON-lines alert log,
the default sink, is written by the dispatcher itself (:mod:`.dispatcher`).

Secrets are read from the environment when an alert is sent (surrounding
whitespace stripped; a value with a line break inside is refused, naming the
variable), so a rotated key needs no config change; a missing variable is a delivery failure like
any other (the alert stays undelivered for that sink and is retried on the
next dispatch).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import requests

from components.core.errors import AlertError
from components.core.secrets import clean_secret

from .config import AlertmanagerSinkConfig, PagerDutySinkConfig, SinkConfig, SlackSinkConfig
from .http import post_json
from .model import Alert

__all__ = [
    "AlertSink",
    "AlertmanagerSink",
    "PagerDutySink",
    "SlackSink",
    "alertmanager_labels",
    "alertmanager_payload",
    "build_sinks",
    "pagerduty_payload",
    "rfc3339",
    "slack_payload",
]


class AlertSink(Protocol):
    """Anything that delivers alerts.

    Attributes:
        name: the sink's name in the alert log.
    """

    name: str

    def send(self, alert: Alert) -> None:
        """Delivers one alert (firing or resolved).

        Args:
            alert: the alert.

        Raises:
            AlertError: it could not be delivered (after the sink's retries).
        """


def rfc3339(t: datetime) -> str:
    """A UTC timestamp as Alertmanager and PagerDuty write it: ``2026-11-22T03:04:05.678Z``.

    Args:
        t: a timezone-aware time.

    Returns:
        The text.
    """
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _num(v: float | None) -> str | None:
    return None if v is None else f"{v:.6g}"


def _details(alert: Alert) -> dict[str, str]:
    out = {
        "model": alert.model,
        "version": alert.version,
        "alias": alert.alias,
        "metric": alert.metric,
        "value": _num(alert.value),
        "threshold": _num(alert.threshold),
        "window_start": rfc3339(alert.window.start) if alert.window else None,
        "window_end": rfc3339(alert.window.end) if alert.window else None,
        "description": alert.description,
        "action": alert.action,
        "update": alert.update,
        "incident_id": alert.incident_id,
        "console_url": alert.console_url,
        "runbook_url": alert.runbook_url,
    }
    return {k: v for k, v in out.items() if v}


def alertmanager_labels(alert: Alert) -> dict[str, str]:
    """The labels that identify an alert in Alertmanager (and that silences match).

    Args:
        alert: the alert or incident.

    Returns:
        Its own labels, then ``alertname``, ``severity``, ``model``, ``metric``, ``cause`` and ``dedup_key``
        (empty values left out).
    """
    labels = {
        **alert.labels,
        "alertname": alert.name,
        "severity": alert.severity,
        "model": alert.model,
        "metric": alert.metric,
        "cause": alert.cause,
        "dedup_key": alert.dedup_key,
    }
    return {k: v for k, v in labels.items() if v}


# --------------------------------------------------------------------------- Alertmanager


def alertmanager_payload(alert: Alert) -> list[dict[str, Any]]:
    """The body of ``POST /api/v2/alerts`` for one alert.

    Labels identify the alert in Alertmanager (firing and resolve must carry
    the same set): :func:`alertmanager_labels`. Annotations carry the rest
    (summary, the body in words, version, alias, what cvpipe did, the latest
    follow-up, incident id, console and runbook links).
    ``endsAt`` is set only on resolve.

    Args:
        alert: the alert.

    Returns:
        A one-element list (the API takes a list of alerts).
    """
    annotations = {"summary": alert.summary, **{k: v for k, v in _details(alert).items() if k not in ("model", "metric")}}
    body: dict[str, Any] = {
        "labels": alertmanager_labels(alert),
        "annotations": annotations,
        "startsAt": rfc3339(alert.starts_at),
    }
    if alert.status == "resolved" and alert.ends_at is not None:
        body["endsAt"] = rfc3339(alert.ends_at)
    if alert.generator_url:
        body["generatorURL"] = alert.generator_url
    return [body]


class AlertmanagerSink:
    """Posts alerts to Prometheus Alertmanager's v2 API.

    Args:
        config: URL, optional bearer-token variable, retries.
        session: HTTP session to reuse.
    """

    def __init__(self, config: AlertmanagerSinkConfig, session: requests.Session | None = None):
        self.config = config
        self.name = config.name
        self.session = session

    def send(self, alert: Alert) -> None:
        """Delivers one alert.

        Args:
            alert: the alert.

        Raises:
            AlertError: refused (4xx), or still failing after the retries, or the token variable is unset.
        """
        headers = {}
        token = _secret(self.name, self.config.token_env) if self.config.token_env else None
        if token:
            headers["Authorization"] = f"Bearer {token}"
        url = self.config.url.rstrip("/") + "/api/v2/alerts"
        post_json(
            self.name, url, alertmanager_payload(alert), self.config.retry, headers=headers, session=self.session, secrets=[token or ""]
        )


# --------------------------------------------------------------------------- Slack


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(alert: Alert) -> dict[str, Any]:
    """The body of a Slack incoming-webhook POST: fallback ``text`` plus Block Kit ``blocks``.

    Args:
        alert: the alert.

    Returns:
        ``{"text": ..., "blocks": [...]}``.
    """
    state = "UPDATE" if alert.update else "RESOLVED" if alert.status == "resolved" else "FIRING"
    text = f"[{state}] [{alert.severity}] {alert.summary}"
    body = "\n".join(
        t
        for t in (
            alert.summary,
            f"Update: {alert.update}" if alert.update else "",
            alert.description,
            f"What cvpipe did: {alert.action}" if alert.action else "",
        )
        if t
    )
    fields = [
        ("Model", alert.model),
        ("Version", alert.version + (f" ({alert.alias})" if alert.alias else "") if alert.version else None),
        ("Severity", alert.severity),
        ("Metric", alert.metric),
        ("Observed", _num(alert.value)),
        ("Threshold", _num(alert.threshold)),
        ("Window", f"{rfc3339(alert.window.start)} – {rfc3339(alert.window.end)}" if alert.window else None),
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": f"{state}: {alert.name}"[:150]}},
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": _slack_escape(body)[:3000],
            },
        },
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{_slack_escape(v)}"[:2000]} for k, v in fields if v]},
    ]
    context = [f"incident `{alert.incident_id}`" if alert.incident_id else f"dedup key `{_slack_escape(alert.dedup_key)}`"]
    if alert.console_url:
        context.append(f"<{alert.console_url}|Console>")
    if alert.runbook_url:
        context.append(f"<{alert.runbook_url}|Runbook>")
    if alert.generator_url:
        context.append(f"<{alert.generator_url}|Report>")
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]})
    return {"text": _slack_escape(text), "blocks": blocks}


class SlackSink:
    """Posts alerts to a Slack incoming webhook whose URL is in an environment variable.

    Args:
        config: the variable's name, retries.
        session: HTTP session to reuse.
    """

    def __init__(self, config: SlackSinkConfig, session: requests.Session | None = None):
        self.config = config
        self.name = config.name
        self.session = session

    def send(self, alert: Alert) -> None:
        """Delivers one alert.

        Args:
            alert: the alert.

        Raises:
            AlertError: refused (4xx), still failing after the retries, or the URL variable is unset.
        """
        url = _secret(self.name, self.config.webhook_url_env)
        target = f"the Slack webhook in ${self.config.webhook_url_env}"
        post_json(self.name, url, slack_payload(alert), self.config.retry, target=target, session=self.session, secrets=[url])


# --------------------------------------------------------------------------- PagerDuty


def pagerduty_payload(alert: Alert, routing_key: str) -> dict[str, Any]:
    """The body of an Events API v2 ``POST /v2/enqueue``.

    A firing alert is a ``trigger`` with the full ``payload``; a resolved one a
    ``resolve`` with only the routing and dedup keys, as the API specifies.

    Args:
        alert: the alert.
        routing_key: the integration's routing key.

    Returns:
        The event.
    """
    if alert.status == "resolved":
        return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": alert.dedup_key}
    details: dict[str, Any] = {**_details(alert)}
    if alert.labels:
        details["labels"] = dict(alert.labels)
    if alert.findings:
        details["findings"] = [{k: f[k] for k in ("feature", "change", "statistic") if f.get(k)} for f in alert.findings[:10]]
    payload: dict[str, Any] = {
        "summary": alert.summary[:1024],
        "source": alert.source,
        "severity": alert.severity,
        "timestamp": rfc3339(alert.starts_at),
        "component": alert.model or None,
        "group": alert.name,
        "class": alert.metric or None,
        "custom_details": details,
    }
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": alert.dedup_key,
        "payload": {k: v for k, v in payload.items() if v is not None},
        "client": "cvpipe",
    }
    if alert.generator_url:
        event["client_url"] = alert.generator_url
    links = [{"href": u, "text": t} for u, t in ((alert.console_url, "Console"), (alert.runbook_url, "Runbook")) if u]
    if links:
        event["links"] = links
    return event


class PagerDutySink:
    """Sends alerts to PagerDuty's Events API v2; the routing key is in an environment variable.

    Args:
        config: endpoint, the variable's name, retries.
        session: HTTP session to reuse.
    """

    def __init__(self, config: PagerDutySinkConfig, session: requests.Session | None = None):
        self.config = config
        self.name = config.name
        self.session = session

    def send(self, alert: Alert) -> None:
        """Delivers one alert.

        Args:
            alert: the alert.

        Raises:
            AlertError: refused (4xx), still failing after the retries, or the key variable is unset.
        """
        key = _secret(self.name, self.config.routing_key_env)
        post_json(self.name, self.config.url, pagerduty_payload(alert, key), self.config.retry, session=self.session, secrets=[key])


# --------------------------------------------------------------------------- helpers


def _secret(sink: str, env: str) -> str:
    value = os.environ.get(env, "")
    if not value.strip():
        raise AlertError(f"{sink}: environment variable {env} is not set (it holds this sink's secret)", sink=sink)
    try:
        return clean_secret(value, f"environment variable {env}")
    except ValueError as e:  # the message names the variable, never the value
        raise AlertError(f"{sink}: {e}", sink=sink) from None


def build_sinks(configs: Sequence[SinkConfig], session: requests.Session | None = None) -> list[AlertSink]:
    """Sinks from their configurations.

    Args:
        configs: the sinks' configurations.
        session: HTTP session shared by the sinks.

    Returns:
        The sinks, in order.
    """
    out: list[AlertSink] = []
    for c in configs:
        if isinstance(c, AlertmanagerSinkConfig):
            out.append(AlertmanagerSink(c, session))
        elif isinstance(c, SlackSinkConfig):
            out.append(SlackSink(c, session))
        else:
            out.append(PagerDutySink(c, session))
    return out

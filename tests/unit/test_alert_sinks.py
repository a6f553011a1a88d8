"""Alert sinks against a real HTTP server on 127.0.0.1: exact payloads, retries, refusals, secrets.

The recording server stands in for protocol edge cases (429, 5xx, dropped
connections, refusals) a real receiver will not produce on demand. The
Alertmanager payloads were checked against the real Alertmanager 0.25
(Debian ``prometheus-alertmanager``): tests/unit/test_oncall_real_services.py
posts them to it, reads them back grouped, and silences them there.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fakes.http import refusing_url
from fakes.webhook_server import Reply, WebhookServer
from pydantic import ValidationError

from components.alert import (
    Alert,
    AlertConfig,
    AlertmanagerSink,
    AlertmanagerSinkConfig,
    PagerDutySink,
    PagerDutySinkConfig,
    RetryConfig,
    SlackSink,
    SlackSinkConfig,
    TimeWindow,
    build_sinks,
)
from components.alert.http import post_json
from components.core.errors import AlertError

T0 = datetime(2026, 11, 22, 3, 0, 0, tzinfo=UTC)
FAST = RetryConfig(attempts=3, backoff_s=0.0, max_backoff_s=0.0, timeout_s=5.0)
SLACK_PATH = "/services/T000/B000/secret-token"


def make_alert(**overrides: object) -> Alert:
    fields: dict[str, object] = {
        "name": "FeatureDrift",
        "severity": "warning",
        "summary": "m1: brightness drifted (psi 0.31 > 0.2)",
        "description": "psi of brightness",
        "model": "m1",
        "metric": "psi/brightness",
        "value": 0.31,
        "threshold": 0.2,
        "window": TimeWindow(start=T0 - timedelta(hours=1), end=T0),
        "runbook_url": "https://runbooks.example/drift",
        "dedup_key": "cvpipe/m1/drift/psi/brightness",
        "labels": {"team": "vision"},
        "generator_url": "https://reports.example/r/1",
        "starts_at": T0,
    }
    fields.update(overrides)
    return Alert.model_validate(fields)


@pytest.fixture
def server():
    with WebhookServer() as s:
        yield s


@pytest.fixture
def secrets(monkeypatch, server):
    monkeypatch.setenv("TEST_SLACK_URL", server.url + SLACK_PATH)
    monkeypatch.setenv("TEST_PD_KEY", "R0UTINGKEY0123456789abcdef012345")
    monkeypatch.setenv("TEST_AM_TOKEN", "am-token-1")


# --------------------------------------------------------------------------- Alertmanager


def test_alertmanager_firing_and_resolved_payloads(server, secrets):
    sink = AlertmanagerSink(AlertmanagerSinkConfig(url=server.url + "/", token_env="TEST_AM_TOKEN", retry=FAST))
    alert = make_alert()
    sink.send(alert)
    sink.send(alert.resolved(T0 + timedelta(minutes=30)))

    firing, resolved = server.received("/api/v2/alerts")
    assert firing.method == "POST"
    assert firing.headers["content-type"] == "application/json"
    assert firing.headers["authorization"] == "Bearer am-token-1"
    labels = {
        "team": "vision",
        "alertname": "FeatureDrift",
        "severity": "warning",
        "model": "m1",
        "metric": "psi/brightness",
        "dedup_key": "cvpipe/m1/drift/psi/brightness",
    }
    annotations = {
        "summary": "m1: brightness drifted (psi 0.31 > 0.2)",
        "description": "psi of brightness",
        "value": "0.31",
        "threshold": "0.2",
        "window_start": "2026-11-22T02:00:00.000Z",
        "window_end": "2026-11-22T03:00:00.000Z",
        "runbook_url": "https://runbooks.example/drift",
    }
    assert firing.json == [
        {
            "labels": labels,
            "annotations": annotations,
            "startsAt": "2026-11-22T03:00:00.000Z",
            "generatorURL": "https://reports.example/r/1",
        }
    ]
    assert resolved.json == [
        {
            "labels": labels,
            "annotations": annotations,
            "startsAt": "2026-11-22T03:00:00.000Z",
            "endsAt": "2026-11-22T03:30:00.000Z",
            "generatorURL": "https://reports.example/r/1",
        }
    ]


def test_own_labels_cannot_override_identity_labels(server):
    sink = AlertmanagerSink(AlertmanagerSinkConfig(url=server.url, retry=FAST))
    sink.send(
        make_alert(labels={"alertname": "Other", "severity": "info", "zone": "eu"}, generator_url=None, window=None, runbook_url=None)
    )
    body = server.received()[0].json[0]
    assert body["labels"]["alertname"] == "FeatureDrift"
    assert body["labels"]["severity"] == "warning"
    assert body["labels"]["zone"] == "eu"
    assert "generatorURL" not in body and "endsAt" not in body
    assert "authorization" not in server.received()[0].headers


# --------------------------------------------------------------------------- Slack


def test_slack_payload_text_and_blocks(server, secrets):
    sink = SlackSink(SlackSinkConfig(webhook_url_env="TEST_SLACK_URL", retry=FAST))
    sink.send(make_alert(summary="m1: <brightness> & contrast drifted"))
    (req,) = server.received(SLACK_PATH)
    assert req.json == {
        "text": "[FIRING] [warning] m1: &lt;brightness&gt; &amp; contrast drifted",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "FIRING: FeatureDrift"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "m1: &lt;brightness&gt; &amp; contrast drifted\npsi of brightness"}},
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": "*Model*\nm1"},
                    {"type": "mrkdwn", "text": "*Severity*\nwarning"},
                    {"type": "mrkdwn", "text": "*Metric*\npsi/brightness"},
                    {"type": "mrkdwn", "text": "*Observed*\n0.31"},
                    {"type": "mrkdwn", "text": "*Threshold*\n0.2"},
                    {"type": "mrkdwn", "text": "*Window*\n2026-11-22T02:00:00.000Z – 2026-11-22T03:00:00.000Z"},
                ],
            },
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": "dedup key `cvpipe/m1/drift/psi/brightness` · <https://runbooks.example/drift|Runbook> · <https://reports.example/r/1|Report>",
                    }
                ],
            },
        ],
    }


def test_slack_resolved_header(server, secrets):
    SlackSink(SlackSinkConfig(webhook_url_env="TEST_SLACK_URL", retry=FAST)).send(make_alert().resolved(T0))
    body = server.received(SLACK_PATH)[0].json
    assert body["text"].startswith("[RESOLVED] [warning] ")
    assert body["blocks"][0]["text"]["text"] == "RESOLVED: FeatureDrift"


def test_slack_errors_never_show_the_webhook_url(server, secrets):
    server.script(SLACK_PATH, Reply(404, "no_service"))
    sink = SlackSink(SlackSinkConfig(webhook_url_env="TEST_SLACK_URL", retry=FAST))
    with pytest.raises(AlertError) as err:
        sink.send(make_alert())
    assert "secret-token" not in str(err.value)
    assert "$TEST_SLACK_URL" in str(err.value)
    assert "404" in str(err.value) and "no_service" in str(err.value)


# --------------------------------------------------------------------------- PagerDuty


def test_pagerduty_trigger_and_resolve_events(server, secrets):
    server.default("/v2/enqueue", Reply(202, {"status": "success", "message": "Event processed", "dedup_key": "x"}))
    sink = PagerDutySink(PagerDutySinkConfig(url=server.url + "/v2/enqueue", routing_key_env="TEST_PD_KEY", retry=FAST))
    alert = make_alert(severity="critical")
    sink.send(alert)
    sink.send(alert.resolved(T0 + timedelta(minutes=5)))
    trigger, resolve = server.received("/v2/enqueue")
    assert trigger.json == {
        "routing_key": "R0UTINGKEY0123456789abcdef012345",
        "event_action": "trigger",
        "dedup_key": "cvpipe/m1/drift/psi/brightness",
        "payload": {
            "summary": "m1: brightness drifted (psi 0.31 > 0.2)",
            "source": "cvpipe",
            "severity": "critical",
            "timestamp": "2026-11-22T03:00:00.000Z",
            "component": "m1",
            "group": "FeatureDrift",
            "class": "psi/brightness",
            "custom_details": {
                "model": "m1",
                "metric": "psi/brightness",
                "value": "0.31",
                "threshold": "0.2",
                "window_start": "2026-11-22T02:00:00.000Z",
                "window_end": "2026-11-22T03:00:00.000Z",
                "description": "psi of brightness",
                "runbook_url": "https://runbooks.example/drift",
                "labels": {"team": "vision"},
            },
        },
        "client": "cvpipe",
        "client_url": "https://reports.example/r/1",
        "links": [{"href": "https://runbooks.example/drift", "text": "Runbook"}],
    }
    assert resolve.json == {
        "routing_key": "R0UTINGKEY0123456789abcdef012345",
        "event_action": "resolve",
        "dedup_key": "cvpipe/m1/drift/psi/brightness",
    }


def test_pagerduty_summary_is_cut_to_1024_characters(server, secrets):
    sink = PagerDutySink(PagerDutySinkConfig(url=server.url + "/v2/enqueue", routing_key_env="TEST_PD_KEY", retry=FAST))
    sink.send(make_alert(summary="x" * 2000))
    assert len(server.received()[0].json["payload"]["summary"]) == 1024


# --------------------------------------------------------------------------- retries


@pytest.mark.parametrize("transient", [500, 502, 503, 429])
def test_transient_statuses_are_retried_until_success(server, secrets, transient):
    server.script(
        "/v2/enqueue", Reply(transient, {"status": "error"}, headers={"Retry-After": "0"}), transient, Reply(202, {"status": "success"})
    )
    sink = PagerDutySink(PagerDutySinkConfig(url=server.url + "/v2/enqueue", routing_key_env="TEST_PD_KEY", retry=FAST))
    sink.send(make_alert())
    got = server.received("/v2/enqueue")
    assert [r.status for r in got] == [transient, transient, 202]
    assert got[0].json == got[1].json == got[2].json


def test_connection_dropped_without_answer_is_retried(server):
    server.script("/api/v2/alerts", Reply(drop=True))
    AlertmanagerSink(AlertmanagerSinkConfig(url=server.url, retry=FAST)).send(make_alert())
    assert [r.status for r in server.received()] == [0, 200]


def test_400_is_not_retried_and_names_sink_and_status(server, secrets):
    server.default(
        "/v2/enqueue",
        Reply(400, {"status": "invalid event", "message": "Event object is invalid", "errors": ["Length of 'routing_key' is incorrect"]}),
    )
    sink = PagerDutySink(PagerDutySinkConfig(url=server.url + "/v2/enqueue", routing_key_env="TEST_PD_KEY", retry=FAST))
    with pytest.raises(AlertError) as err:
        sink.send(make_alert())
    assert len(server.received()) == 1
    assert err.value.sink == "pagerduty" and err.value.status == 400 and not err.value.transient
    msg = str(err.value)
    assert msg.startswith("pagerduty: HTTP 400 from ")
    assert "not retried" in msg and "Event object is invalid" in msg


@pytest.mark.parametrize("refused", [401, 403, 404, 410, 422])
def test_other_4xx_are_not_retried(server, refused):
    server.default("/api/v2/alerts", refused)
    with pytest.raises(AlertError, match=f"alertmanager: HTTP {refused} "):
        AlertmanagerSink(AlertmanagerSinkConfig(url=server.url, retry=FAST)).send(make_alert())
    assert len(server.received()) == 1


def test_gives_up_after_the_configured_attempts(server):
    server.default("/api/v2/alerts", 503)
    with pytest.raises(AlertError) as err:
        AlertmanagerSink(AlertmanagerSinkConfig(url=server.url, retry=FAST)).send(make_alert())
    assert len(server.received()) == 3
    assert err.value.transient and err.value.status == 503
    assert str(err.value).startswith("alertmanager: gave up after 3 attempt(s): HTTP 503 from ")


def test_backoff_doubles_and_honours_retry_after_up_to_the_cap(server):
    server.script("/hook", Reply(429, headers={"Retry-After": "7"}), 500, 500, 200)
    waits: list[float] = []
    retry = RetryConfig(attempts=5, backoff_s=1.0, max_backoff_s=5.0, timeout_s=5.0)
    post_json("test", server.url + "/hook", {"a": 1}, retry, sleep=waits.append)
    assert waits == [5.0, 2.0, 4.0]  # Retry-After 7 capped at 5; then 1 * 2**1, 1 * 2**2


def test_connection_refused_is_retried_then_reported():
    waits: list[float] = []
    with refusing_url() as url, pytest.raises(AlertError, match="test: gave up after 3 attempt"):
        post_json("test", url + "/hook", {}, RetryConfig(attempts=3, backoff_s=0.5, timeout_s=2.0), sleep=waits.append)
    assert waits == [0.5, 1.0]


# --------------------------------------------------------------------------- secrets


def test_missing_secret_variable_is_a_clear_error_and_sends_nothing(server, monkeypatch):
    monkeypatch.delenv("TEST_PD_KEY_UNSET", raising=False)
    sink = PagerDutySink(PagerDutySinkConfig(url=server.url + "/v2/enqueue", routing_key_env="TEST_PD_KEY_UNSET", retry=FAST))
    with pytest.raises(AlertError, match="pagerduty: environment variable TEST_PD_KEY_UNSET is not set"):
        sink.send(make_alert())
    assert server.received() == []


@pytest.mark.parametrize(
    ("sink", "key", "env_key"),
    [
        ({"type": "slack", "webhook_url": "https://hooks.slack.com/services/T/B/X"}, "webhook_url", "webhook_url_env"),
        ({"type": "pagerduty", "routing_key": "abc"}, "routing_key", "routing_key_env"),
        ({"type": "alertmanager", "token": "abc"}, "token", "token_env"),
    ],
)
def test_config_refuses_secrets_and_names_the_variable_setting(sink, key, env_key):
    with pytest.raises(ValidationError) as err:
        AlertConfig.model_validate({"sinks": [sink]})
    assert f"{key}: secrets are not read from configuration" in str(err.value)
    assert env_key in str(err.value)


def test_config_builds_sinks_by_type_with_unique_names(server):
    cfg = AlertConfig.model_validate(
        {
            "log": "x/alerts.jsonl",
            "sinks": [
                {"type": "alertmanager", "url": server.url},
                {"type": "slack"},
                {"type": "pagerduty", "name": "pd-oncall", "routing_key_env": "K"},
            ],
        }
    )
    sinks = build_sinks(cfg.sinks)
    assert [type(s).__name__ for s in sinks] == ["AlertmanagerSink", "SlackSink", "PagerDutySink"]
    assert [s.name for s in sinks] == ["alertmanager", "slack", "pd-oncall"]
    assert str(cfg.state_path) == "x/alerts.state.json"
    with pytest.raises(ValidationError, match="sink names must be unique"):
        AlertConfig.model_validate({"sinks": [{"type": "slack"}, {"type": "slack"}]})

"""The alert dispatcher against real local HTTP sinks: dedup, cooldown, escalation, resolve, redelivery."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from fakes.webhook_server import Reply, WebhookServer

from components.alert import (
    Alert,
    AlertConfig,
    AlertDispatcher,
    AlertLog,
    AlertmanagerSink,
    PagerDutySink,
    RetryConfig,
    SlackSink,
)

T0 = datetime(2026, 11, 22, 3, 0, 0, tzinfo=UTC)
AM = "/api/v2/alerts"
PD = "/v2/enqueue"
SLACK = "/services/T1/B1/hook-secret"


def alert(key: str = "cvpipe/m1/drift/psi/brightness", severity: str = "warning", **kw: object) -> Alert:
    return Alert.model_validate(
        {
            "name": "FeatureDrift",
            "severity": severity,
            "summary": f"{key} drifted",
            "model": "m1",
            "metric": key.rsplit("/drift/", 1)[-1],
            "value": 0.3,
            "threshold": 0.2,
            "dedup_key": key,
            "starts_at": T0,
            **kw,
        }
    )


@pytest.fixture
def server():
    with WebhookServer() as s:
        s.default(PD, Reply(202, {"status": "success"}))
        yield s


@pytest.fixture
def config(tmp_path, server, monkeypatch):
    monkeypatch.setenv("T_SLACK", server.url + SLACK)
    monkeypatch.setenv("T_PD", "routing-key-1")
    retry = {"attempts": 2, "backoff_s": 0.0, "max_backoff_s": 0.0, "timeout_s": 5.0}
    return AlertConfig.model_validate(
        {
            "log": str(tmp_path / "alerts" / "alerts.jsonl"),
            "cooldown_s": 3600,
            "sinks": [
                {"type": "alertmanager", "url": server.url, "retry": retry},
                {"type": "slack", "webhook_url_env": "T_SLACK", "retry": retry},
                {"type": "pagerduty", "url": server.url + PD, "routing_key_env": "T_PD", "retry": retry},
            ],
        }
    )


def records(config: AlertConfig) -> list[dict]:
    return [json.loads(line) for line in config.log_path.read_text().splitlines()]


def count(server: WebhookServer) -> dict[str, int]:
    return {p: len(server.received(p)) for p in (AM, SLACK, PD)}


def test_new_alert_goes_to_every_sink_and_the_log(config, server):
    result = AlertDispatcher(config).dispatch([alert()], now=T0)
    assert [a.dedup_key for a in result.notified] == ["cvpipe/m1/drift/psi/brightness"]
    assert result.all_delivered
    assert count(server) == {AM: 1, SLACK: 1, PD: 1}
    recs = records(config)
    assert recs[0]["record"] == "alert" and recs[0]["reason"] == "new"
    assert recs[0]["sinks"] == ["alertmanager", "slack", "pagerduty"]
    assert recs[0]["alert"]["dedup_key"] == "cvpipe/m1/drift/psi/brightness"
    assert [(r["sink"], r["status"]) for r in recs[1:]] == [
        ("alertmanager", "delivered"),
        ("slack", "delivered"),
        ("pagerduty", "delivered"),
    ]
    assert {r["id"] for r in recs} == {recs[0]["id"]}
    assert config.state_path.exists()


def test_duplicates_are_suppressed_within_the_cooldown_and_repeated_after(config, server):
    d = AlertDispatcher(config)
    d.dispatch([alert()], now=T0)
    r2 = d.dispatch([alert(), alert()], now=T0 + timedelta(minutes=10))
    assert len(r2.suppressed) == 2 and not r2.notified
    assert count(server) == {AM: 1, SLACK: 1, PD: 1}
    assert d.state()["cvpipe/m1/drift/psi/brightness"]["suppressed"] == 2

    r3 = d.dispatch([alert()], now=T0 + timedelta(minutes=60))
    assert len(r3.notified) == 1
    assert count(server) == {AM: 2, SLACK: 2, PD: 2}
    assert [r["reason"] for r in records(config) if r["record"] == "alert"] == ["new", "repeat"]
    state = d.state()["cvpipe/m1/drift/psi/brightness"]
    assert state["first_fired_at"] == T0.isoformat(timespec="milliseconds")
    assert state["last_notified_at"] == (T0 + timedelta(minutes=60)).isoformat(timespec="milliseconds")


def test_dedup_state_survives_a_new_dispatcher(config, server):
    AlertDispatcher(config).dispatch([alert()], now=T0)
    result = AlertDispatcher(config).dispatch([alert()], now=T0 + timedelta(minutes=1))
    assert len(result.suppressed) == 1
    assert count(server)[AM] == 1


def test_higher_severity_breaks_through_the_cooldown(config, server):
    d = AlertDispatcher(config)
    d.dispatch([alert(severity="warning")], now=T0)
    r = d.dispatch([alert(severity="critical")], now=T0 + timedelta(minutes=5))
    assert len(r.notified) == 1
    assert server.received(PD)[-1].json["payload"]["severity"] == "critical"
    r = d.dispatch([alert(severity="error")], now=T0 + timedelta(minutes=6))
    assert len(r.suppressed) == 1


def test_resolve_is_sent_once_and_only_for_a_firing_key(config, server):
    d = AlertDispatcher(config)
    never_fired = d.dispatch([alert(key="cvpipe/m1/drift/ks/width").resolved(T0)], now=T0)
    # a resolve of something that never fired is no news: not sent, and not reported as "suppressed" either
    assert never_fired.suppressed == [] and never_fired.notified == [] and count(server) == {AM: 0, SLACK: 0, PD: 0}

    d.dispatch([alert()], now=T0)
    r = d.dispatch([alert().resolved(T0 + timedelta(minutes=20))], now=T0 + timedelta(minutes=20))
    assert [a.status for a in r.notified] == ["resolved"]
    assert server.received(PD)[-1].json == {
        "routing_key": "routing-key-1",
        "event_action": "resolve",
        "dedup_key": "cvpipe/m1/drift/psi/brightness",
    }
    assert server.received(AM)[-1].json[0]["endsAt"] == "2026-11-22T03:20:00.000Z"
    assert server.received(SLACK)[-1].json["text"].startswith("[RESOLVED]")
    assert d.state()["cvpipe/m1/drift/psi/brightness"]["status"] == "resolved"

    again = d.dispatch([alert().resolved(T0)], now=T0 + timedelta(minutes=21))
    assert again.suppressed == [] and again.notified == [] and count(server) == {AM: 2, SLACK: 2, PD: 2}
    # Firing again after a resolve is a new incident, cooldown or not.
    refire = d.dispatch([alert()], now=T0 + timedelta(minutes=22))
    assert len(refire.notified) == 1
    assert [r["reason"] for r in records(config) if r["record"] == "alert"] == ["new", "resolve", "new"]


def test_failed_sink_keeps_the_alert_undelivered_and_the_next_run_redelivers_it(config, server):
    server.default(PD, 500)
    d = AlertDispatcher(config)
    first = d.dispatch([alert()], now=T0)
    assert count(server) == {AM: 1, SLACK: 1, PD: 2}  # two attempts
    (alert_id,) = first.undelivered
    assert set(first.undelivered[alert_id]) == {"pagerduty"}
    assert "pagerduty: gave up after 2 attempt(s): HTTP 500" in first.undelivered[alert_id]["pagerduty"]
    last = records(config)[-1]
    assert (last["sink"], last["status"]) == ("pagerduty", "undelivered")
    assert [(p.alert_id, p.sink) for p in d.pending()] == [(alert_id, "pagerduty")]

    server.default(PD, Reply(202, {"status": "success"}))
    second = AlertDispatcher(config).dispatch([], now=T0 + timedelta(minutes=5))
    assert second.redelivered == [(alert_id, "pagerduty")] and second.all_delivered
    assert count(server) == {AM: 1, SLACK: 1, PD: 3}
    assert server.received(PD)[-1].json["event_action"] == "trigger"
    assert server.received(PD)[-1].json == server.received(PD)[0].json
    assert d.pending() == []

    third = d.dispatch([], now=T0 + timedelta(minutes=6))
    assert third.redelivered == [] and count(server)[PD] == 3


def test_a_refused_delivery_is_not_retried_in_the_run_but_stays_pending(config, server):
    server.default(SLACK, Reply(400, "invalid_payload"))
    d = AlertDispatcher(config)
    r = d.dispatch([alert()], now=T0)
    assert count(server)[SLACK] == 1
    assert "slack: HTTP 400" in next(iter(r.undelivered.values()))["slack"]
    d.dispatch([], now=T0 + timedelta(minutes=1))
    assert count(server)[SLACK] == 2
    assert len(d.pending()) == 1


def test_a_dead_sink_costs_one_retry_sequence_per_run(config, server):
    server.default(AM, 503)
    d = AlertDispatcher(config)
    r = d.dispatch([alert(key=f"cvpipe/m1/drift/psi/f{i}") for i in range(3)], now=T0)
    assert count(server) == {AM: 2, SLACK: 3, PD: 3}
    assert len(r.undelivered) == 3
    assert all("skipped, the sink failed earlier in this run" in v["alertmanager"] for v in list(r.undelivered.values())[1:])
    server.default(AM, 200)
    r2 = d.dispatch([], now=T0 + timedelta(minutes=1))
    assert len(r2.redelivered) == 3 and count(server)[AM] == 5


def test_an_older_undelivered_trigger_is_superseded_by_a_later_resolve(config, server):
    server.default(PD, 502)
    d = AlertDispatcher(config)
    fired = d.dispatch([alert()], now=T0)
    resolved = d.dispatch([alert().resolved(T0 + timedelta(minutes=3))], now=T0 + timedelta(minutes=3))
    (trigger_id,) = fired.undelivered
    assert resolved.redelivered == []  # the trigger's redelivery failed again at the start of that run
    assert trigger_id in resolved.undelivered and len(resolved.undelivered) == 2
    (resolve_id,) = set(resolved.undelivered) - {trigger_id}

    server.default(PD, Reply(202, {"status": "success"}))
    r = d.dispatch([], now=T0 + timedelta(minutes=4))
    assert r.superseded == [(trigger_id, "pagerduty")]
    assert r.redelivered == [(resolve_id, "pagerduty")]
    assert server.received(PD)[-1].json["event_action"] == "resolve"
    assert [rec["status"] for rec in records(config) if rec.get("id") == trigger_id and rec.get("sink") == "pagerduty"][-1] == "superseded"


def test_alert_logged_before_a_crash_is_delivered_by_the_next_run(config, server):
    class Crash:
        name = "alertmanager"

        def send(self, a: Alert) -> None:
            raise KeyboardInterrupt  # the process dies mid-delivery

    with pytest.raises(KeyboardInterrupt):
        AlertDispatcher(config, sinks=[Crash()]).dispatch([alert()], now=T0)
    assert [r["record"] for r in records(config)] == ["alert"]
    assert AlertDispatcher(config).state()["cvpipe/m1/drift/psi/brightness"]["status"] == "firing"

    r = AlertDispatcher(config).dispatch([alert()], now=T0 + timedelta(minutes=1))
    assert len(r.redelivered) == 1 and len(r.suppressed) == 1
    assert count(server) == {AM: 1, SLACK: 0, PD: 0}  # the crashed record named only alertmanager


def test_log_only_by_default_and_a_torn_last_line_is_tolerated(tmp_path):
    cfg = AlertConfig(log=str(tmp_path / "a.jsonl"))
    d = AlertDispatcher(cfg)
    d.dispatch([alert()], now=T0)
    with open(cfg.log_path, "a") as f:
        f.write('{"record": "alert", "id": "tor')  # a writer killed mid-line
    r = d.dispatch([alert(key="cvpipe/m1/drift/ks/other")], now=T0)
    assert len(r.notified) == 1 and r.all_delivered
    assert [a.dedup_key for _, a in AlertLog(cfg.log_path).alerts()] == ["cvpipe/m1/drift/psi/brightness", "cvpipe/m1/drift/ks/other"]
    assert d.pending() == []


def test_default_dedup_key_is_stable_and_label_sensitive():
    a = Alert(name="LowMAP", summary="map low", model="m1", metric="map", labels={"slice": "night"})
    b = Alert(name="LowMAP", summary="different text", model="m1", metric="map", labels={"slice": "night"})
    c = Alert(name="LowMAP", summary="map low", model="m1", metric="map", labels={"slice": "day"})
    assert a.dedup_key == b.dedup_key != c.dedup_key
    assert a.dedup_key.startswith("cvpipe-")


def test_retry_config_is_used_by_dispatcher_sinks(config):
    sinks = AlertDispatcher(config).sinks
    assert list(sinks) == ["alertmanager", "slack", "pagerduty"]
    for s in sinks.values():
        assert isinstance(s, AlertmanagerSink | SlackSink | PagerDutySink)
        assert s.config.retry == RetryConfig(attempts=2, backoff_s=0.0, max_backoff_s=0.0, timeout_s=5.0)

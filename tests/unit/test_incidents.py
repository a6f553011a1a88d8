"""Incidents for on-call: findings grouped per model and cause, words not statistics, ids and links, follow-ups,
acknowledgements and silences in the incident log, and the ``cvpipe alerts`` commands over it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from fakes.webhook_server import WebhookServer

from components.alert import AlertConfig, AlertDispatcher, TimeWindow
from components.alert.announce import announce_alias, follow_up
from components.alert.incident import RUNBOOK_SECTIONS, group_incidents, incident_text
from components.alert.silence import parse_matcher
from components.core.errors import AlertError
from components.drift import DriftInputs, check_drift, drift_alerts
from components.trigger.followup import outcome_text
from components.trigger.state import RetrainRun, TriggerState

T0 = datetime(2026, 12, 5, 3, 0, 0, tzinfo=UTC)
WINDOW = TimeWindow(start=T0 - timedelta(hours=24), end=T0)
SLACK = "/services/T1/B1/hook"


def _shifted_report():
    rng = np.random.default_rng(3)
    ref = DriftInputs(
        predictions={"circle": 250, "square": 250, "triangle": 250, "star": 250},
        features={"brightness": rng.normal(0.52, 0.05, 400), "contrast": rng.normal(0.20, 0.03, 400), "width": np.full(400, 160.0)},
    )
    cur = DriftInputs(
        predictions={"circle": 700, "square": 130, "triangle": 130, "star": 40},
        features={"brightness": rng.normal(0.31, 0.05, 300), "contrast": rng.normal(0.12, 0.03, 300), "width": np.full(300, 160.0)},
    )
    return ref, cur, check_drift(ref, cur, model="detector", window=WINDOW)


def _findings(report, **kw):
    return drift_alerts(report, model="detector", version="3", alias="champion", generator_url="/runs/r1/drift_report.html", **kw)


def test_one_incident_per_cause_in_words_with_version_alias_and_runbook_section() -> None:
    ref, cur, report = _shifted_report()
    findings = _findings(report, runbook_url="https://wiki.example/cvpipe/runbook.md", labels={"kind": "drift"})
    assert sum(a.status == "firing" for a in findings) >= 6  # PSI, KS, JS of brightness and contrast, the class mix...
    incidents = group_incidents(findings)
    firing = {a.cause: a for a in incidents if a.status == "firing"}
    assert set(firing) == {"input_drift", "prediction_drift"}
    inputs = firing["input_drift"]
    assert inputs.name == "InputDrift" and inputs.dedup_key == "cvpipe/detector/input_drift"
    assert inputs.runbook_url == "https://wiki.example/cvpipe/runbook.md#input-drift"
    assert (inputs.version, inputs.alias, inputs.labels) == ("3", "champion", {"kind": "drift", "cause": "input_drift"})
    # worst feature first; magnitudes as a person reads them, computed from the data
    features = [f["feature"] for f in inputs.findings]
    assert set(features) == {"brightness", "contrast"} and "width" not in features
    r, c = float(np.mean(ref.features["brightness"])), float(np.mean(cur.features["brightness"]))
    words = f"mean {r:.3g} -> {c:.3g} ({(c - r) / r:+.0%}), down"
    assert words in inputs.description
    assert inputs.summary.startswith("detector v3 (champion): input drift: ")
    assert any(f["statistic"].startswith("psi ") and " > 0.2" in f["statistic"] for f in inputs.findings)
    assert "Compared: 300 production vs 400 training images." in inputs.description
    assert "Window: 2026-12-04 03:00 to 2026-12-05 03:00 UTC." in inputs.description
    mix = firing["prediction_drift"]
    assert "circle 25% -> 70%" in mix.description and mix.runbook_url.endswith("#prediction-mix-drift")


def test_without_a_runbook_url_alerts_link_this_checkouts_runbook_section() -> None:
    _, _, report = _shifted_report()
    [first, *_] = group_incidents(_findings(report))
    path, anchor = first.runbook_url.split("#")
    assert path.endswith("docs/runbook.md") and anchor == "input-drift"
    headings = [line[3:].strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.startswith("## ")]
    anchors = {h.lower().replace(" ", "-") for h in headings}  # GitHub's anchors of these plain headings
    assert set(RUNBOOK_SECTIONS.values()) <= anchors  # every section an alert links exists


@pytest.fixture
def slack(tmp_path, monkeypatch):
    with WebhookServer() as server:
        monkeypatch.setenv("T_SLACK", server.url + SLACK)
        cfg = AlertConfig.model_validate(
            {
                "log": str(tmp_path / "incidents.jsonl"),
                "console_url": "https://cvpipe.example/console/",
                "sinks": [{"type": "slack", "webhook_url_env": "T_SLACK", "retry": {"attempts": 1}}],
            }
        )
        yield cfg, server


def test_incident_ids_links_repeats_resolve_once(slack) -> None:
    cfg, server = slack
    _, _, report = _shifted_report()
    d = AlertDispatcher(cfg)
    first = d.dispatch(group_incidents(_findings(report)), now=T0)
    assert len(first.notified) == 2 and len(server.received(SLACK)) == 2
    ids = {a.cause: a.incident_id for a in first.notified}
    assert all(len(i) == 12 for i in ids.values())
    inputs = next(a for a in first.notified if a.cause == "input_drift")
    assert inputs.console_url == f"https://cvpipe.example/console/incidents/{ids['input_drift']}"
    sent = server.received(SLACK)[0].json
    assert f"<{inputs.console_url}|Console>" in json.dumps(sent) and "What changed (worst first):" in json.dumps(sent)
    # a repeated evaluation updates the same incident: suppressed within the cooldown
    again = d.dispatch(group_incidents(_findings(report)), now=T0 + timedelta(minutes=5))
    assert again.notified == [] and {a.cause for a in again.suppressed} == {"input_drift", "prediction_drift"}
    # the condition clears: the incident resolves once, with its id
    ok = check_drift(*_shifted_report()[:1], *_shifted_report()[:1], model="detector", previous=report)
    cleared = group_incidents(_findings(ok))
    assert {a.status for a in cleared} == {"resolved"}
    r1 = d.dispatch(cleared, now=T0 + timedelta(minutes=10))
    assert {a.incident_id for a in r1.notified} == set(ids.values())
    r2 = d.dispatch(cleared, now=T0 + timedelta(minutes=15))
    assert r2.notified == [] and r2.suppressed == []  # nothing is "resolved" or "suppressed" twice
    assert len(server.received(SLACK)) == 4


def test_ack_stops_reminders_until_the_severity_changes(slack) -> None:
    cfg, _ = slack
    _, _, report = _shifted_report()
    d = AlertDispatcher(cfg)
    d.dispatch(group_incidents(_findings(report)), now=T0)
    inc = d.ack("cvpipe/detector/input_drift", by="ana", comment="looking at the camera", now=T0 + timedelta(minutes=1))
    assert inc.acked and inc.state["acked_by"] == "ana"
    late = T0 + timedelta(hours=3)  # the cooldown (1 h) has passed: unacknowledged incidents are reminded of
    r = d.dispatch(group_incidents(_findings(report)), now=late)
    assert [a.cause for a in r.notified] == ["prediction_drift"]
    worse = group_incidents(_findings(report, severity="critical"))
    r = d.dispatch(worse, now=late + timedelta(minutes=1))
    assert {a.cause for a in r.notified} == {"input_drift", "prediction_drift"}  # escalated past the acknowledgement
    assert not d.find("cvpipe/detector/input_drift").acked
    with pytest.raises(AlertError, match="no incident"):
        d.ack("nope", by="ana")


def test_follow_up_is_sent_once_on_the_same_incident_and_alias_moves_are_announced(slack) -> None:
    cfg, server = slack
    _, _, report = _shifted_report()
    d = AlertDispatcher(cfg)
    first = d.dispatch(group_incidents(_findings(report)), now=T0)
    started = "retraining t1 started (local run r2); a follow-up says how it ends"
    news = next(a for a in first.notified if a.cause == "input_drift").model_copy(update={"action": started, "update": started})
    assert [a.update for a in d.dispatch([news], now=T0 + timedelta(minutes=1)).notified] == [started]  # news breaks the cooldown
    assert d.find("cvpipe/detector/input_drift").alert.action == started
    text = "retraining t1 (local run r2) succeeded: detector pushed as version 4; alias champion moved from version 3 to 4"
    r = follow_up(cfg, ["cvpipe/detector/input_drift"], text)
    [update] = r.notified
    assert update.update == text and update.incident_id == next(a.incident_id for a in first.notified if a.cause == "input_drift")
    assert json.loads(server.received(SLACK)[-1].body)["text"].startswith("[UPDATE]")
    assert follow_up(cfg, ["cvpipe/detector/input_drift"], text).notified == []  # said once
    moved = announce_alias(cfg, "detector", "champion", 4, 3, "pushed by retraining t1")
    assert (
        moved.notified[0].name == "ModelAliasMoved" and "took the alias champion automatically (was version 3)" in moved.notified[0].update
    )
    show = d.find("cvpipe/detector/input_drift")
    assert show.alert.update == text and [h[0] for h in show.history] == ["new", "update", "update"]
    assert show.alert.action == started
    assert d.find("cvpipe/detector/alias/champion").status == "announced"  # news, not a condition that fires
    assert "cvpipe/detector/alias/champion" not in {i.key for i in d.incidents() if i.status == "firing"}


def test_silence_holds_matching_incidents_back_from_sinks_but_logs_them(slack) -> None:
    cfg, server = slack
    _, _, report = _shifted_report()
    d = AlertDispatcher(cfg)
    s = d.silence([parse_matcher("model=detector"), parse_matcher("cause=~input.*")], 3600, "ana", "camera swap tonight", now=T0)
    r = d.dispatch(group_incidents(_findings(report)), now=T0 + timedelta(minutes=1))
    assert [a.cause for a in r.silenced] == ["input_drift"] and [a.cause for a in r.notified] == ["prediction_drift"]
    assert len(server.received(SLACK)) == 1
    assert d.find("cvpipe/detector/input_drift", now=T0 + timedelta(minutes=2)).silenced_by.id == s.id
    d.unsilence(s.id, "ana", now=T0 + timedelta(minutes=3))
    assert d.log.silences()[0].ends_at == T0 + timedelta(minutes=3)
    assert not any(x.active(T0 + timedelta(minutes=4)) for x in d.log.silences())
    with pytest.raises(AlertError, match="expected name=value"):
        parse_matcher("model")
    with pytest.raises(AlertError, match="invalid regular expression"):
        parse_matcher("model=~(")


def test_retraining_outcome_in_one_sentence() -> None:
    run = RetrainRun(trigger_id="t1", target="local", started_at=T0.isoformat(), state="SUCCEEDED", run_id="r2")
    pushed = {"pushed": True, "version": 4, "moves": [{"alias": "champion", "from": 3, "to": 4, "action": "set"}]}
    assert outcome_text(run, "detector", pushed).endswith("detector pushed as version 4; alias champion moved from version 3 to 4")
    refused = {"pushed": False, "reasons": ["map_50 0.41 < 0.5"]}
    assert "not pushed: map_50 0.41 < 0.5" in outcome_text(run, "detector", refused)
    run.state, run.error = "FAILED", "step train failed: out of memory"
    assert outcome_text(run, "detector", None) == "retraining t1 (local run r2) failed: step train failed: out of memory"


def test_alerts_commands_over_the_incident_log(slack, monkeypatch) -> None:
    from pipelines.cli import cli

    cfg, _ = slack
    _, _, report = _shifted_report()
    AlertDispatcher(cfg).dispatch(group_incidents(_findings(report)))
    log = ["--log", cfg.log]
    runner = CliRunner()
    listed = runner.invoke(cli, ["alerts", "list", *log])
    assert listed.exit_code == 0, listed.output
    assert listed.output.count("firing") == 2 and "detector v3 (champion): input drift" in listed.output
    ident = AlertDispatcher(cfg).find("cvpipe/detector/input_drift").incident_id
    shown = runner.invoke(cli, ["alerts", "show", ident[:6], *log])
    assert shown.exit_code == 0, shown.output
    assert "What changed (worst first):" in shown.output and "Runbook: " in shown.output and "History:" in shown.output
    monkeypatch.setenv("CVPIPE_USER", "night-shift")
    acked = runner.invoke(cli, ["alerts", "ack", ident, *log, "-c", "on it"])
    assert acked.exit_code == 0 and "as night-shift" in acked.output
    silenced = runner.invoke(cli, ["alerts", "silence", *log, "-m", "cause=prediction_drift", "-d", "30m", "-c", "known"])
    assert silenced.exit_code == 0, silenced.output
    sid = silenced.output.split()[1]
    listed = runner.invoke(cli, ["alerts", "list", *log, "--json"])
    rows = {r["cause"]: r for r in map(json.loads, listed.output.splitlines())}
    assert rows["input_drift"]["acked_by"] == "night-shift" and rows["prediction_drift"]["silenced_by"] == sid
    assert runner.invoke(cli, ["alerts", "unsilence", sid, *log]).exit_code == 0
    bad = runner.invoke(cli, ["alerts", "silence", *log, "-c", "x"])
    assert bad.exit_code != 0 and "--matcher" in bad.output
    neither = runner.invoke(cli, ["alerts", "list"])
    assert neither.exit_code != 0 and "--spec SPEC or --log PATH" in neither.output


def test_incident_text_is_what_on_call_reads(slack) -> None:
    cfg, _ = slack
    _, _, report = _shifted_report()
    [sent, *_] = AlertDispatcher(cfg).dispatch(group_incidents(_findings(report)), now=T0).notified
    text = incident_text(sent.model_copy(update={"action": "retraining t1 started (local process 42)"}))
    lines = text.splitlines()
    assert lines[0].startswith("[FIRING] [warning] detector v3 (champion): input drift: brightness mean")
    assert "What cvpipe did: retraining t1 started (local process 42)" in lines
    assert f"Console: https://cvpipe.example/console/incidents/{sent.incident_id}" in lines
    assert "Report: /runs/r1/drift_report.html" in lines


def _ce_spec(tmp_path):
    from components.core.spec import parse_spec

    return parse_spec(
        {
            "name": "shelf",
            "task": "detection",
            "data": {"source": "data/annotations.json"},
            "runtime": {"root": str(tmp_path / "runs"), "metadata": {"url": f"sqlite:///{tmp_path / 'mlmd.sqlite'}"}},
            "monitoring": {"alerts": {"log": "alerts/alerts.jsonl"}},
        }
    )


def test_a_failing_trigger_still_notifies_the_incidents_and_fails(tmp_path) -> None:
    from components.alert.dispatcher import AlertLog
    from components.core.errors import LineageError
    from components.core.io import atomic_write_json
    from components.core.step import StepContext
    from components.trigger.core import run as trigger

    spec = _ce_spec(tmp_path)
    _, _, report = _shifted_report()
    incidents = group_incidents(_findings(report))
    # an Alert artifact id the metadata store does not have: deciding fails on it
    path = atomic_write_json(
        tmp_path / "alerts" / "alerts.json", {"alerts": [{"alert": a.model_dump(mode="json"), "artifact_id": 999999} for a in incidents]}
    )
    with pytest.raises(LineageError):
        trigger(StepContext(spec=spec, run_id="r1", component="trigger"), path, tmp_path / "trigger")
    logged = AlertLog(spec.monitoring.alert_config(spec.runtime.root).log_path).alerts()
    assert {a.cause for _, a in logged} == {"input_drift", "prediction_drift"}
    assert all(a.action.startswith("no retraining started: the retraining trigger failed (LineageError") for _, a in logged)


def test_the_end_of_a_retraining_is_announced_once(tmp_path) -> None:
    from components.trigger.followup import announce_end

    spec = _ce_spec(tmp_path)
    cfg = spec.monitoring.alert_config(spec.runtime.root)
    _, _, report = _shifted_report()
    AlertDispatcher(cfg).dispatch(group_incidents(_findings(report)))
    state_path = tmp_path / "state.json"
    keys = ["cvpipe/detector/input_drift", "cvpipe/detector/prediction_drift"]
    with TriggerState(state_path).locked() as st:
        st.runs.append(RetrainRun(trigger_id="t1", target="local", started_at=T0.isoformat(), alert_keys=keys))
    assert announce_end(spec, state_path, "t1") is None  # still running: nothing to say
    with TriggerState(state_path).locked() as st:
        st.runs[0].state, st.runs[0].run_id = "SUCCEEDED", "r9"
    pushed = {"pushed": True, "version": 4, "moves": [{"alias": "champion", "from": 3, "to": 4, "action": "set"}]}
    text = announce_end(spec, state_path, "t1", push=pushed)
    assert text is not None and text.endswith("pushed as version 4; alias champion moved from version 3 to 4")
    d = AlertDispatcher(cfg)
    assert {k: d.find(k).alert.update for k in keys} == {k: text for k in keys}
    assert announce_end(spec, state_path, "t1", push=pushed) is None  # said once
    assert TriggerState(state_path).load().runs[0].details["announced"] is True


def test_live_metric_degradation_is_one_incident_in_words() -> None:
    from components.live_metrics.measure import LiveMetricResult, LiveMetricsReport, degradation_alerts

    def metric(name: str, est: float, lo: float, hi: float, blessed: float) -> LiveMetricResult:
        return LiveMetricResult(
            metric=name, status="degraded", estimate=est, lower=lo, upper=hi, images=36, blessed=blessed, max_drop=0.1, bound=blessed - 0.1
        )

    report = LiveMetricsReport(
        model="detector",
        version=3,
        window=WINDOW,
        confidence=0.95,
        metrics=[metric("map_50", 0.448, 0.254, 0.512, 0.938), metric("recall", 0.0548, 0.0214, 0.133, 0.852)],
    )
    [incident] = group_incidents(degradation_alerts(report, alias="champion"))
    assert incident.name == "LiveMetricDegraded" and incident.dedup_key == "cvpipe/detector/degradation"
    # worst first: recall's interval ends furthest below its line
    assert (
        incident.summary
        == "detector v3 (champion): live-metric degradation: recall 0.0548 vs 0.852 when blessed; map_50 0.448 vs 0.938 when blessed"
    )
    assert "- recall 0.0548 (95% interval 0.0214-0.133) on 36 labelled images vs 0.852 when blessed" in incident.description
    assert incident.runbook_url.endswith("#live-metric-degradation")

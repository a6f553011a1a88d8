"""Incidents, silences and metrics against the real Alertmanager, Prometheus and Pushgateway.

Each test starts the Debian servers it needs (installed with apt-get when
missing) as processes on 127.0.0.1 with their data in the test's temporary
directory (tests/services/processes.py), and waits on their readiness and on
the outcome by polling with a deadline. Alertmanager notifies a recording
webhook on 127.0.0.1 (tests/fakes/webhook_server.py), so the grouping it
applies is observed as it sends it.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
import requests
from click.testing import CliRunner
from fakes.webhook_server import WebhookServer
from services.processes import ServiceUnavailable, alertmanager, ensure_binary, prometheus, pushgateway

from components.alert import AlertConfig, AlertDispatcher
from components.alert.incident import group_incidents
from components.core.clock import utc_now
from components.drift import DriftInputs, check_drift, drift_alerts
from components.monitor.metrics import evaluation_metrics, push_metrics

RULES = Path(__file__).resolve().parents[2] / "infra" / "prometheus" / "cvpipe-rules.yml"
T = TypeVar("T")


def until(what: str, probe: Callable[[], T | None], deadline_s: float = 60.0) -> T:
    """Polls ``probe`` until it returns something truthy, or fails after the deadline."""
    end = time.monotonic() + deadline_s
    while True:
        got = probe()
        if got:
            return got
        if time.monotonic() > end:
            pytest.fail(f"{what}: not seen within {deadline_s:.0f} s")
        time.sleep(0.2)


def _service(factory: Callable[..., Any], *args: Any) -> Any:
    try:
        return factory(*args)
    except ServiceUnavailable as e:
        pytest.skip(str(e))


def _incidents() -> list[Any]:
    rng = np.random.default_rng(5)
    ref = DriftInputs(predictions={"circle": 300, "square": 300, "star": 300}, features={"brightness": rng.normal(0.52, 0.05, 400)})
    cur = DriftInputs(predictions={"circle": 700, "square": 150, "star": 50}, features={"brightness": rng.normal(0.31, 0.05, 300)})
    report = check_drift(ref, cur, model="detector")
    return report, group_incidents(drift_alerts(report, model="detector", version="3", alias="champion", labels={"pipeline": "shelf"}))


AM_CONFIG = """
route:
  receiver: oncall
  group_by: [model]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: oncall
    webhook_configs:
      - url: {hook}
        send_resolved: true
"""


def test_incidents_arrive_grouped_and_cvpipe_silences_suppress_them_in_alertmanager(tmp_path, monkeypatch) -> None:
    from pipelines.cli import cli

    with WebhookServer() as hook:
        service, am = _service(alertmanager, tmp_path / "am", AM_CONFIG.format(hook=hook.url + "/hook"))
        with service:
            log = str(tmp_path / "incidents.jsonl")
            cfg = AlertConfig.model_validate({"log": log, "sinks": [{"type": "alertmanager", "url": am}]})
            _, incidents = _incidents()
            sent = AlertDispatcher(cfg).dispatch(incidents)
            assert {a.name for a in sent.notified} == {"InputDrift", "PredictionDrift"} and sent.all_delivered
            # grouped as configured (by model): one group, one notification, both incidents in it
            groups = until("the group", lambda: [g for g in requests.get(f"{am}/api/v2/alerts/groups", timeout=5).json() if g["alerts"]])
            assert len(groups) == 1 and groups[0]["labels"] == {"model": "detector"} and len(groups[0]["alerts"]) == 2
            note = until("the webhook notification", lambda: hook.received("/hook"))[0].json
            assert note["groupLabels"] == {"model": "detector"} and note["status"] == "firing"
            by_name = {a["labels"]["alertname"]: a for a in note["alerts"]}
            assert by_name["InputDrift"]["labels"]["cause"] == "input_drift"
            assert by_name["InputDrift"]["annotations"]["summary"].startswith("detector v3 (champion): input drift: brightness mean")
            assert by_name["InputDrift"]["annotations"]["incident_id"] == next(
                a.incident_id for a in sent.notified if a.name == "InputDrift"
            )
            assert "#input-drift" in by_name["InputDrift"]["annotations"]["runbook_url"]

            # cvpipe alerts silence: the silence lands in Alertmanager (its UI, amtool) and suppresses the incident there
            monkeypatch.setenv("CVPIPE_USER", "night-shift")
            where = ["--log", log, "--alertmanager", am]
            out = CliRunner().invoke(cli, ["alerts", "silence", *where, "-m", "cause=input_drift", "-d", "3h", "-c", "camera swap"])
            assert out.exit_code == 0, out.output
            sid = out.output.split()[1]
            [silence] = AlertDispatcher(cfg).log.silences()
            am_id = silence.alertmanager_ids["alertmanager"]
            listed = {s["id"]: s for s in requests.get(f"{am}/api/v2/silences", timeout=5).json()}
            assert listed[am_id]["status"]["state"] == "active" and listed[am_id]["createdBy"] == "night-shift"
            assert listed[am_id]["matchers"] == [{"name": "cause", "value": "input_drift", "isRegex": False, "isEqual": True}]
            assert listed[am_id]["comment"] == "camera swap"

            def state(name: str) -> dict[str, Any] | None:
                found = requests.get(f"{am}/api/v2/alerts", params={"filter": f'alertname="{name}"'}, timeout=5).json()
                return found[0] if found else None

            suppressed = until("suppression", lambda: (s := state("InputDrift")) and s["status"]["state"] == "suppressed" and s)
            assert suppressed["status"]["silencedBy"] == [am_id]
            assert state("PredictionDrift")["status"]["state"] == "active"
            amtool = ensure_binary("amtool", "prometheus-alertmanager")
            query = subprocess.run(
                [amtool, "silence", "query", "-q", f"--alertmanager.url={am}"], capture_output=True, text=True, timeout=60
            )
            assert query.stdout.split() == [am_id], query.stdout + query.stderr

            # the next evaluation (past the cooldown): the silenced incident is logged, and Alertmanager keeps it suppressed;
            # the acknowledged one is not sent again at all
            ack = CliRunner().invoke(cli, ["alerts", "ack", "cvpipe/detector/prediction_drift", *where, "-c", "on it"])
            assert ack.exit_code == 0, ack.output
            before = state("PredictionDrift")["updatedAt"]
            later = AlertDispatcher(cfg).dispatch(_incidents()[1], now=utc_now() + timedelta(hours=2))
            assert [a.name for a in later.silenced] == ["InputDrift"] and later.notified == [] and later.all_delivered
            assert state("PredictionDrift")["updatedAt"] == before
            assert state("InputDrift")["status"]["state"] == "suppressed"

            # unsilence expires it in Alertmanager
            out = CliRunner().invoke(cli, ["alerts", "unsilence", sid, *where])
            assert out.exit_code == 0, out.output
            expired = requests.get(f"{am}/api/v2/silence/{am_id}", timeout=5).json()
            assert expired["status"]["state"] == "expired"
            until("the incident active again", lambda: state("InputDrift")["status"]["state"] == "active")


def test_prometheus_scrapes_the_pushed_evaluation_and_the_shipped_rules_fire(tmp_path) -> None:
    with WebhookServer() as hook:
        am_service, am = _service(alertmanager, tmp_path / "am", AM_CONFIG.format(hook=hook.url + "/hook"))
        pgw_service, pgw = _service(pushgateway, tmp_path / "pgw")
        with am_service, pgw_service:
            report, incidents = _incidents()
            registry = evaluation_metrics(
                pipeline="shelf", model="detector", version="3", drift=report, incidents=incidents, finished_at=utc_now()
            )
            push_metrics(registry, pgw, "shelf")
            config = f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
rule_files: ["{RULES}"]
alerting:
  alertmanagers: [{{static_configs: [{{targets: ["{am.removeprefix("http://")}"]}}]}}]
scrape_configs:
  - job_name: pushgateway
    honor_labels: true
    static_configs: [{{targets: ["{pgw.removeprefix("http://")}"]}}]
"""
            prom_service, prom = _service(prometheus, tmp_path / "prom", config)
            with prom_service:

                def firing() -> dict[str, dict[str, Any]]:
                    alerts = requests.get(f"{prom}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
                    got = {a["labels"]["alertname"]: a for a in alerts if a["state"] == "firing"}
                    return got if {"CvpipeInputDrift", "CvpipePredictionDrift"} <= set(got) else {}

                got = until("the shipped rules firing", firing)
                assert "CvpipeEmbeddingDrift" not in got and "CvpipeEvaluationStale" not in got
                assert got["CvpipeInputDrift"]["labels"] | {"version": "3"} == {
                    "alertname": "CvpipeInputDrift",
                    "app": "cvpipe",
                    "cause": "input_drift",
                    "severity": "warning",
                    "model": "detector",
                    "version": "3",
                    "pipeline": "shelf",
                }
                value = requests.get(
                    f"{prom}/api/v1/query", params={"query": 'cvpipe_drift_value{check="psi",feature="brightness"}'}, timeout=5
                ).json()
                [series] = value["data"]["result"]
                psi = next(c.value for c in report.checks if c.key == "psi/brightness")
                assert float(series["value"][1]) == pytest.approx(psi, rel=1e-6)
                # Prometheus-side alerting reaches the same Alertmanager, grouped by model like cvpipe's own incidents
                names = until(
                    "Prometheus' alerts in Alertmanager",
                    lambda: (
                        {a["labels"]["alertname"] for a in requests.get(f"{am}/api/v2/alerts", timeout=5).json()}
                        >= {"CvpipeInputDrift", "CvpipePredictionDrift"}
                    ),
                )
                assert names


def test_metrics_file_is_text_exposition_format(tmp_path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from components.monitor.metrics import write_metrics

    report, incidents = _incidents()
    path = write_metrics(evaluation_metrics(pipeline="shelf", model="detector", version="3", drift=report, incidents=incidents), tmp_path)
    families = {f.name: f for f in text_string_to_metric_families(path.read_text())}
    firing = {(s.labels["check"], s.labels["feature"]): s.value for s in families["cvpipe_drift_firing"].samples}
    assert firing[("psi", "brightness")] == 1.0 and firing[("prediction_mix", "predicted_class")] == 1.0
    causes = {s.labels["cause"]: s.value for s in families["cvpipe_incident_firing"].samples}
    assert causes == {"input_drift": 1.0, "prediction_drift": 1.0, "embedding_drift": 0.0, "degradation": 0.0}
    assert json.dumps(sorted(families))  # parseable end to end

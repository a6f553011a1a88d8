"""Drift checks end to end: class mix, thresholds, minimum samples, hysteresis, the report and its alerts."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from fakes.webhook_server import WebhookServer
from pydantic import ValidationError
from scipy.stats import chi2_contingency

from components.alert import AlertConfig, AlertDispatcher, TimeWindow
from components.drift import (
    DriftConfig,
    DriftInputs,
    NumericThresholds,
    check_drift,
    decide,
    drift_alerts,
    load_drift_report,
    prediction_check,
    write_drift_report,
)
from components.drift.categorical import class_counts, class_mix_statistics

T0 = datetime(2026, 11, 22, 0, 0, tzinfo=UTC)
WINDOW = TimeWindow(start=T0, end=T0 + timedelta(days=1))


# --------------------------------------------------------------------------- class mix


def test_class_mix_linf_and_chi_square_match_scipy():
    ref = {"cat": 400, "dog": 350, "bird": 250}
    cur = ["cat"] * 300 + ["dog"] * 150 + ["bird"] * 40 + ["fox"] * 10
    mix = class_mix_statistics(ref, cur)
    assert mix.classes == ["cat", "dog", "bird", "fox"]
    assert mix.current == [300, 150, 40, 10]
    assert mix.linf == pytest.approx(max(abs(0.4 - 0.6), abs(0.35 - 0.3), abs(0.25 - 0.08), abs(0 - 0.02)))
    expected = chi2_contingency(np.array([mix.reference, mix.current]), correction=False)
    assert mix.chi2 == pytest.approx(expected.statistic) and mix.dof == expected.dof == 3
    assert mix.p_value == pytest.approx(expected.pvalue)


def test_class_counts_accepts_labels_or_counts():
    assert class_counts([1, 2, 2, None]) == {"1": 1, "2": 2}
    assert class_counts({"a": 3}) == {"a": 3}
    with pytest.raises(ValueError, match="negative"):
        class_counts({"a": -1})


def test_single_class_on_both_sides_is_not_drift():
    check, _ = prediction_check({"cat": 100}, {"cat": 80})
    assert (check.value, check.p_value, check.status) == (0.0, 1.0, "ok")


# --------------------------------------------------------------------------- decisions


@pytest.mark.parametrize(
    ("value", "p", "previous", "expected"),
    [
        (0.35, None, None, "drift"),
        (0.25, None, None, "ok"),
        (0.25, None, "drift", "drift"),  # between clear (0.24) and threshold: keeps firing
        (0.23, None, "drift", "ok"),  # below clear: clears
        (0.25, None, "ok", "ok"),
        (0.25, None, "not_enough_data", "ok"),
        (0.35, 0.02, None, "ok"),  # large effect, not significant
        (0.35, 0.005, None, "drift"),
        (0.35, 0.012, "drift", "drift"),  # p between alpha and alpha / 0.8 keeps firing
        (0.35, 0.013, "drift", "ok"),
        (None, None, "drift", "not_enough_data"),
        (float("nan"), 0.001, None, "not_enough_data"),
    ],
)
def test_decide_with_hysteresis(value, p, previous, expected):
    alpha = 0.01 if p is not None else None
    assert decide(value, 0.3, p_value=p, alpha=alpha, previous=previous, clear_fraction=0.8) == expected


def test_too_few_samples_is_not_enough_data_never_drift():
    cfg = DriftConfig(min_samples=50)
    report = check_drift(
        DriftInputs(predictions=["cat"] * 49, features={"b": np.zeros(49)}, embeddings=np.zeros((49, 4))),
        DriftInputs(predictions=["dog"] * 500, features={"b": np.ones(500)}, embeddings=np.ones((500, 4))),
        cfg,
    )
    assert {c.status for c in report.checks} == {"not_enough_data"}
    assert all(c.value is None and c.p_value is None for c in report.checks)
    assert report.status == "not_enough_data" and report.mmd is None
    assert drift_alerts(report, model="m") == []


def test_hysteresis_follows_the_previous_report():
    ref = {"cat": 500, "dog": 500}
    mid = {"cat": 750, "dog": 250}  # L-inf 0.25: between clear (0.24) and threshold (0.3)
    high = {"cat": 850, "dog": 150}  # 0.35
    low = {"cat": 700, "dog": 300}  # 0.2
    fresh = check_drift(DriftInputs(predictions=ref), DriftInputs(predictions=mid))
    assert fresh.status == "ok"
    fired = check_drift(DriftInputs(predictions=ref), DriftInputs(predictions=high))
    assert fired.status == "drift"
    held = check_drift(DriftInputs(predictions=ref), DriftInputs(predictions=mid), previous=fired)
    assert held.status == "drift" and held.checks[0].previous_status == "drift"
    cleared = check_drift(DriftInputs(predictions=ref), DriftInputs(predictions=low), previous=held)
    assert cleared.status == "ok"
    assert cleared.checks[0].clear_threshold == pytest.approx(0.24)


def test_config_validation_and_per_feature_thresholds():
    with pytest.raises(ValidationError):
        DriftConfig(min_samples=1)
    with pytest.raises(ValidationError):
        DriftConfig.model_validate({"psi": 0.2})  # unknown key at top level
    with pytest.raises(ValidationError, match=re.escape("can never reach p < mmd_p_value=0.01")):
        DriftConfig(mmd_permutations=99)
    assert DriftConfig(mmd_permutations=100, mmd_p_value=0.01).mmd_permutations == 100
    cfg = DriftConfig(feature_thresholds={"height": NumericThresholds(psi=5.0, js_distance=1.0, ks_statistic=1.0)})
    rng = np.random.default_rng(0)
    ref = {"width": rng.normal(0, 1, 4000), "height": rng.normal(0, 1, 4000)}
    cur = {"width": rng.normal(1, 1, 4000), "height": rng.normal(1, 1, 4000)}
    report = check_drift(DriftInputs(features=ref), DriftInputs(features=cur), cfg)
    assert report.drifted_features() == ["width"]
    assert {c.threshold for c in report.checks if c.feature == "height"} == {5.0, 1.0}


# --------------------------------------------------------------------------- image statistics


def test_flags_exactly_the_shifted_features_among_twenty():
    rng = np.random.default_rng(42)
    n = 20_000
    ref = {f"f{i:02d}": rng.normal(100 + i, 10, n) for i in range(20)}
    cur = {f"f{i:02d}": rng.normal(100 + i, 10, n) for i in range(20)}
    cur["f03"] = rng.normal(103 + 5, 10, n)  # mean +0.5 sd
    cur["f07"] = rng.normal(107, 20, n)  # twice the spread
    cur["f11"] = np.round(rng.normal(111, 10, n))  # integers, shifted below
    cur["f11"] -= 6
    cur["f15"] = rng.exponential(10, n) + 105  # another shape
    cur["f19"] = rng.normal(119 - 7, 10, n)
    report = check_drift(DriftInputs(features=ref), DriftInputs(features=cur), model="m1")
    assert report.drifted_features() == ["f03", "f07", "f11", "f15", "f19"]
    assert report.status == "drift"
    assert len(report.checks) == 60 and set(report.histograms) == set(ref)
    ks = {c.feature: c for c in report.checks if c.name == "ks"}
    p_same, p_shifted = ks["f00"].p_value, ks["f03"].p_value
    assert p_same is not None and p_same > 0.001
    assert p_shifted is not None and p_shifted < 1e-100


def test_categorical_image_statistics_get_a_category_mix_check():
    ref = {"format": ["jpeg"] * 800 + ["png"] * 200, "mode": ["RGB"] * 1000}
    cur = {"format": ["jpeg"] * 300 + ["png"] * 650 + [None] * 50, "mode": ["RGB"] * 990 + ["L"] * 10}
    report = check_drift(DriftInputs(features=ref), DriftInputs(features=cur))
    checks = {c.feature: c for c in report.checks}
    assert checks["format"].name == "category_mix" and checks["format"].status == "drift"
    assert checks["format"].n_current == 950
    assert checks["mode"].status == "ok"
    assert report.categories["format"].classes == ["jpeg", "png"]


# --------------------------------------------------------------------------- report files and alerts


def drifting_report():
    rng = np.random.default_rng(3)
    ref = DriftInputs(
        predictions={"cat": 500, "dog": 500},
        features={"brightness": rng.normal(120, 30, 3000), "width": rng.choice([640, 1024], 3000), "format": ["jpeg"] * 3000},
        embeddings=rng.normal(size=(200, 16)),
    )
    cur = DriftInputs(
        predictions={"cat": 900, "dog": 100},
        features={"brightness": rng.normal(150, 30, 2000), "width": rng.choice([640, 1024], 2000), "format": ["jpeg"] * 2000},
        embeddings=rng.normal(0.5, 1, size=(200, 16)),
    )
    return check_drift(ref, cur, model="m1", window=WINDOW)


def test_report_round_trips_and_the_html_embeds_every_plot(tmp_path):
    report = drifting_report()
    files = write_drift_report(report, tmp_path / "out")
    assert load_drift_report(tmp_path / "out") == report
    assert set(files.plots) == {"class_mix", "hist_brightness", "hist_width", "mix_format", "mmd_null"}
    for p in files.plots.values():
        assert p.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    page = files.html.read_text()
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 5 and all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    assert "http://" not in page and "https://" not in page  # self-contained
    data = json.loads(files.json.read_text())
    assert data["status"] == "drift" and data["window"]["start"].startswith("2026-11-22T00:00:00")
    assert data["mmd"]["permutations"] == 100 and len(data["mmd"]["null"]) == 100


def test_drift_alerts_fire_for_drift_and_resolve_for_ok():
    report = drifting_report()
    alerts = drift_alerts(report, runbook_url="https://runbooks.example/drift", severities={"prediction_mix": "error"})
    by_metric = {a.metric: a for a in alerts}
    assert len(alerts) == sum(c.status != "not_enough_data" for c in report.checks)
    mix = by_metric["prediction_mix/predicted_class"]
    assert (mix.status, mix.severity, mix.name) == ("firing", "error", "PredictionDrift")
    assert mix.dedup_key == "cvpipe/m1/drift/prediction_mix/predicted_class"
    assert mix.window == WINDOW and mix.value == pytest.approx(0.4) and mix.threshold == 0.3
    assert by_metric["embedding_mmd/embedding"].status == "firing"
    width = by_metric["ks/width"]
    assert width.status == "resolved" and width.ends_at == report.created_at
    assert width.labels == {"check": "ks", "feature": "width"}


def test_drift_alerts_reach_alertmanager_and_resolve_when_drift_clears(tmp_path):
    ref = DriftInputs(predictions={"cat": 500, "dog": 500})
    with WebhookServer() as server:
        dispatcher = AlertDispatcher(
            AlertConfig.model_validate({"log": str(tmp_path / "alerts.jsonl"), "sinks": [{"type": "alertmanager", "url": server.url}]})
        )
        fired = check_drift(ref, DriftInputs(predictions={"cat": 900, "dog": 100}), model="m1")
        dispatcher.dispatch(drift_alerts(fired), now=T0)
        held = check_drift(ref, DriftInputs(predictions={"cat": 750, "dog": 250}), model="m1", previous=fired)
        dispatcher.dispatch(drift_alerts(held), now=T0 + timedelta(minutes=10))
        cleared = check_drift(ref, DriftInputs(predictions={"cat": 520, "dog": 480}), model="m1", previous=held)
        dispatcher.dispatch(drift_alerts(cleared), now=T0 + timedelta(minutes=20))
        bodies = [r.json[0] for r in server.received("/api/v2/alerts")]
    assert len(bodies) == 2  # fired once, held silently within the cooldown, resolved once
    assert bodies[0]["labels"]["alertname"] == "PredictionDrift" and "endsAt" not in bodies[0]
    assert bodies[1]["labels"] == bodies[0]["labels"] and "endsAt" in bodies[1]

"""Blessing semantics (TFX Evaluator): value thresholds, change thresholds against a baseline, no thresholds."""

from __future__ import annotations

import math

from components.core.spec import ChangeThreshold, MetricThreshold
from components.evaluate.blessing import bless, combine_blessings
from components.evaluate.evaluation import ModelEvaluation, SliceMetrics


def th(metric: str, lower: float | None = None, upper: float | None = None, **change: object) -> MetricThreshold:
    return MetricThreshold(metric=metric, lower=lower, upper=upper, change=ChangeThreshold(**change) if change else None)  # type: ignore[arg-type]


def test_value_thresholds_only_without_baseline() -> None:
    b = bless({"map": 0.42, "map_50": 0.61}, [th("map_50", lower=0.5), th("map", lower=0.3, upper=0.9)])
    assert b.blessed
    assert [r.passed for r in b.thresholds] == [True, True]
    assert b.baseline_id is None and b.baseline_metrics is None
    bad = bless({"map": 0.42, "map_50": 0.41}, [th("map_50", lower=0.5), th("map", lower=0.3)])
    assert not bad.blessed
    assert bad.thresholds[0].passed is False and bad.thresholds[0].value == 0.41
    assert "map_50 = 0.41, needs >= 0.5" in bad.reasons[0]
    assert bad.reasons[-1] == "not blessed: 1 of 2 checked thresholds failed"


def test_no_thresholds_blesses_nothing() -> None:
    b = bless({"map": 0.99}, [])
    assert not b.blessed
    assert "no thresholds configured" in b.reasons[0]


def test_change_thresholds_are_skipped_without_baseline() -> None:
    ts = [th("map", lower=0.2, direction="higher_is_better", absolute=0.01)]
    first = bless({"map": 0.3}, ts)
    assert first.blessed  # the first model: value thresholds decide
    value, change = first.thresholds
    assert value.kind == "value" and value.passed
    assert change.kind == "change" and change.skipped and change.passed is None and change.reason == "skipped: no baseline"
    assert any("skipped: no baseline" in r for r in first.reasons)
    only_change = bless({"map": 0.3}, [th("map", direction="higher_is_better", absolute=0.0)])
    assert only_change.blessed  # TFX rubber-stamps a first model that only has change thresholds


def test_absolute_change_against_a_baseline() -> None:
    ts = [th("map", direction="higher_is_better", absolute=0.01)]
    ok = bless({"map": 0.495}, ts, {"map": 0.50}, baseline_id="det:3")
    assert ok.blessed and ok.baseline_id == "det:3"
    r = ok.thresholds[0]
    assert r.value == 0.495 and r.baseline_value == 0.50 and r.passed
    assert "baseline - 0.01" in r.bound
    worse = bless({"map": 0.48}, ts, {"map": 0.50}, baseline_id="det:3")
    assert not worse.blessed
    assert "vs baseline 0.5" in worse.thresholds[0].reason
    # direction only: must not get worse at all
    strict = [th("map", direction="higher_is_better")]
    assert bless({"map": 0.50}, strict, {"map": 0.50}).blessed
    assert not bless({"map": 0.4999}, strict, {"map": 0.50}).blessed


def test_relative_change_and_lower_is_better() -> None:
    ts = [th("map", direction="higher_is_better", relative=0.1)]
    assert bless({"map": 0.46}, ts, {"map": 0.5}).blessed  # allowed: down to 0.45
    assert not bless({"map": 0.44}, ts, {"map": 0.5}).blessed
    # a relative bound on a zero baseline is undefined: fails, as in TFMA
    zero = bless({"map": 0.1}, ts, {"map": 0.0})
    assert not zero.blessed and "zero baseline" in zero.thresholds[0].reason
    # lower is better (a loss, a latency): may rise by at most 0.05 and at most 5%; both must hold
    lo = [th("latency", direction="lower_is_better", relative=0.05, absolute=0.05)]
    assert bless({"latency": 0.41}, lo, {"latency": 0.40}).blessed
    assert not bless({"latency": 0.43}, lo, {"latency": 0.40}).blessed  # within 0.05, but over 5% (0.42)


def test_missing_undefined_and_sliced_metrics() -> None:
    ev = ModelEvaluation(
        task="detection",
        num_images=3,
        metrics={"map": 0.4, "map_small": None},
        slices=[SliceMetrics(feature="image_size", value="small", num_images=1, metrics={"map": 0.2})],
    )
    b = bless(
        ev,
        [th("map_small", lower=0.1), th("nope", lower=0.1), th("map@image_size=small", lower=0.25), th("map@image_size=large", lower=0.0)],
    )
    reasons = [r.reason for r in b.thresholds]
    assert reasons[0].startswith("map_small is undefined: nothing to measure")
    assert b.thresholds[0].skipped and b.thresholds[0].passed is None
    assert reasons[1] == "nope was not computed"
    assert b.thresholds[2].value == 0.2 and b.thresholds[2].passed is False
    assert reasons[3] == "map@image_size=large was not computed"
    assert not b.blessed
    base = ModelEvaluation(task="detection", num_images=3, metrics={"map": 0.5, "map_small": 0.1})
    undefined = bless(ev, [th("map_small", direction="higher_is_better", absolute=0.1)], base)
    assert not undefined.blessed and undefined.thresholds[0].reason.startswith("map_small is undefined")
    assert undefined.reasons[-1] == "not blessed: no threshold could be checked (every one is undefined)"
    # an undefined class beside a checked threshold: reported as undefined, the model is judged on the rest
    cls = ModelEvaluation(
        task="detection",
        num_images=3,
        metrics={"map": 0.4},
        slices=[SliceMetrics(feature="class", value="never", num_images=0, metrics={"f1": None, "precision": None})],
    )
    mixed = bless(cls, [th("f1@class=never", lower=0.5), th("map", lower=0.3)])
    assert mixed.blessed and mixed.thresholds[0].skipped and "undefined" in mixed.thresholds[0].reason


def test_combined_blessing_needs_both() -> None:
    a = bless({"map": 0.5}, [th("map", lower=0.4)])
    b = bless({"accuracy": 0.7}, [th("accuracy", lower=0.8)])
    both = combine_blessings(a, b)
    assert not both.blessed and len(both.thresholds) == 2
    assert both.metrics == {"map": 0.5, "accuracy": 0.7}
    assert combine_blessings(a, bless({"x": 1.0}, [th("x", upper=2.0)])).blessed
    assert math.isclose(both.thresholds[1].value or 0, 0.7)

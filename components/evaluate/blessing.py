"""Blessing: TFX-style value and change thresholds against a baseline.

:func:`bless` checks a candidate's metrics against ``evaluate.thresholds``,
with the semantics of the TFX Evaluator:

- a **value threshold** passes when ``lower <= value <= upper``;
- a **change threshold** compares with the baseline model evaluated on the same
  test split in the same run. ``higher_is_better``: the value may fall at most
  ``absolute`` below the baseline and at most ``relative x |baseline|`` below it;
  ``lower_is_better`` mirrors that. A change threshold with neither bound
  means "must not get worse" (``absolute = 0``). A relative bound on a zero
  baseline fails (the ratio is undefined, as in TFMA);
- with **no baseline** (the first model) change thresholds are reported as
  "skipped: no baseline" and only value thresholds decide;
- with **no thresholds at all** :func:`bless` blesses nothing, and the reason
  says so. The evaluate step never calls it that way: when the spec states no
  change threshold it adds the **default blessing** (:func:`with_default_change`),
  "not worse than the champion on the task's primary metric" (COCO mAP,
  accuracy, mIoU), so a first model (no champion) is blessed and a later one
  must at least match the champion;
- a threshold on a metric that was not computed fails; one on an undefined
  value (a COCO ``-1``, a class with neither objects nor detections) is
  reported as undefined and not checked (nothing was measured, so nothing
  failed); a model whose every threshold is undefined is not blessed.

A metric is named as in :mod:`components.evaluate.evaluation`; a sliced one
as ``metric@feature=value``.

:func:`bless_with_tfma` is the TFMA path for classification models: an
existing TFX Evaluator's ``EvalConfig`` (text proto or JSON) is read, TFMA
0.47 runs for real as a model-agnostic evaluation over materialised
predictions (``label``, ``prediction`` and ``baseline_prediction`` columns plus
slice features, no serving model needed), its result is written where
``tfma.load_eval_result`` reads it, and its value and change thresholds are
mapped onto the same semantics. TFMA's change thresholds are signed bounds on
``candidate - baseline`` (``HIGHER_IS_BETTER, absolute: -0.01`` means "may drop
by 0.01"); they map to cvpipe's allowed degradation with the sign flipped.
As in TFMA, a threshold without a slicing spec applies to every slice.
TFMA class ids are dense indices in label-map order.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from components.core.catalog import PRIMARY_METRIC
from components.core.errors import EvaluationError
from components.core.spec import ChangeThreshold, MetricThreshold

from .evaluation import ModelEvaluation

if TYPE_CHECKING:  # pragma: no cover
    from tensorflow_model_analysis.proto import config_pb2

__all__ = [
    "Blessing",
    "ThresholdResult",
    "bless",
    "bless_with_tfma",
    "combine_blessings",
    "load_eval_config",
    "thresholds_from_eval_config",
    "with_default_change",
]

UNDEFINED = "nothing to measure (a class with neither objects nor detections, a COCO -1), so not checked"

NO_THRESHOLDS = "no thresholds configured: nothing is blessed without thresholds (set evaluate.thresholds or a TFMA config)"


class ThresholdResult(BaseModel):
    """The check of one threshold.

    Attributes:
        metric: the metric (``name`` or ``name@feature=value``).
        kind: ``value`` or ``change``.
        value: the candidate's value (None: not computed or undefined).
        baseline_value: the baseline's value (change thresholds).
        bound: the condition, readable (``>= 0.5``, ``>= baseline - 0.01 = 0.62``).
        passed: whether it held; None when skipped.
        skipped: not checked (a change threshold without a baseline).
        reason: why it failed or was skipped.
    """

    metric: str
    kind: Literal["value", "change"]
    value: float | None = None
    baseline_value: float | None = None
    bound: str = ""
    passed: bool | None = None
    skipped: bool = False
    reason: str = ""


class Blessing(BaseModel):
    """Whether a model may be pushed, and why.

    Attributes:
        blessed: every checked threshold passed (and there was at least one threshold).
        metrics: the candidate's overall metrics.
        baseline_metrics: the baseline's overall metrics, if there was a baseline.
        thresholds: one result per value and per change threshold.
        baseline_id: the baseline model's id (registry ``name:version`` or artifact id).
        reasons: readable summary: failures, skips, the verdict.
        source: ``cvpipe`` or ``tfma`` (or ``cvpipe+tfma`` when combined).
        tfma_output: directory of the TFMA result (``tfma.load_eval_result`` reads it).
        tfma_validation_ok: TFMA's own validation verdict, when TFMA ran.
    """

    blessed: bool
    metrics: dict[str, float | None] = Field(default_factory=dict)
    baseline_metrics: dict[str, float | None] | None = None
    thresholds: list[ThresholdResult] = Field(default_factory=list)
    baseline_id: str | None = None
    reasons: list[str] = Field(default_factory=list)
    source: str = "cvpipe"
    tfma_output: str | None = None
    tfma_validation_ok: bool | None = None


def _fmt(v: float | None) -> str:
    return "undefined" if v is None else f"{v:.6g}"


_Lookup = Callable[[str], float | None]


def _lookup(metrics: ModelEvaluation | Mapping[str, float | None]) -> _Lookup:
    if isinstance(metrics, ModelEvaluation):
        return metrics.value
    m = dict(metrics)

    def get(name: str) -> float | None:
        return m[name]

    return get


def _check_value(t: MetricThreshold, get: _Lookup) -> ThresholdResult:
    parts = []
    if t.lower is not None:
        parts.append(f">= {_fmt(t.lower)}")
    if t.upper is not None:
        parts.append(f"<= {_fmt(t.upper)}")
    bound = " and ".join(parts)
    try:
        v = get(t.metric)
    except KeyError:
        return ThresholdResult(metric=t.metric, kind="value", bound=bound, passed=False, reason=f"{t.metric} was not computed")
    if v is None:
        return ThresholdResult(metric=t.metric, kind="value", bound=bound, skipped=True, reason=f"{t.metric} is undefined: {UNDEFINED}")
    ok = (t.lower is None or v >= t.lower) and (t.upper is None or v <= t.upper)
    reason = "" if ok else f"{t.metric} = {_fmt(v)}, needs {bound}"
    return ThresholdResult(metric=t.metric, kind="value", value=v, bound=bound, passed=ok, reason=reason)


def _check_change(t: MetricThreshold, change: ChangeThreshold, get: _Lookup, base: _Lookup | None) -> ThresholdResult:
    higher = change.direction == "higher_is_better"
    absolute = change.absolute
    if absolute is None and change.relative is None:
        absolute = 0.0  # direction only: must not get worse
    op = ">=" if higher else "<="
    try:
        v = get(t.metric)
    except KeyError:
        v = None
        missing = True
    else:
        missing = False
    if base is None:
        return ThresholdResult(metric=t.metric, kind="change", value=v, bound=f"{op} baseline", skipped=True, reason="skipped: no baseline")
    try:
        b = base(t.metric)
    except KeyError:
        b = None
    if missing:
        return ThresholdResult(
            metric=t.metric, kind="change", baseline_value=b, bound=f"{op} baseline", passed=False, reason=f"{t.metric} was not computed"
        )
    if v is None:
        return ThresholdResult(
            metric=t.metric,
            kind="change",
            baseline_value=b,
            bound=f"{op} baseline",
            skipped=True,
            reason=f"{t.metric} is undefined: {UNDEFINED}",
        )
    if b is None:
        return ThresholdResult(
            metric=t.metric,
            kind="change",
            value=v,
            bound=f"{op} baseline",
            passed=False,
            reason=f"{t.metric} is undefined for the baseline",
        )
    bounds: list[tuple[str, float]] = []
    sign = -1.0 if higher else 1.0
    if absolute is not None:
        bounds.append((f"baseline {'-' if higher else '+'} {_fmt(absolute)}", b + sign * absolute))
    if change.relative is not None:
        if math.isclose(b, 0.0, abs_tol=1e-12):
            return ThresholdResult(
                metric=t.metric,
                kind="change",
                value=v,
                baseline_value=b,
                bound=f"{op} baseline x (1 {'-' if higher else '+'} {_fmt(change.relative)})",
                passed=False,
                reason=f"{t.metric}: relative change undefined on a zero baseline",
            )
        bounds.append((f"baseline {'-' if higher else '+'} {_fmt(change.relative)} x |baseline|", b + sign * change.relative * abs(b)))
    limit = max(x for _, x in bounds) if higher else min(x for _, x in bounds)
    ok = v >= limit if higher else v <= limit
    bound = " and ".join(f"{op} {label}" for label, _ in bounds) + f" (= {_fmt(limit)})"
    reason = "" if ok else f"{t.metric} = {_fmt(v)} vs baseline {_fmt(b)}: needs {bound}"
    return ThresholdResult(metric=t.metric, kind="change", value=v, baseline_value=b, bound=bound, passed=ok, reason=reason)


DEFAULT_REASON = "default blessing (the spec states no change threshold): not worse than the champion on {metric}"


def with_default_change(thresholds: Sequence[MetricThreshold], task: str) -> tuple[list[MetricThreshold], str | None]:
    """The thresholds with the default change threshold added when none is a change threshold.

    Args:
        thresholds: the spec's thresholds.
        task: the task (its primary metric: ``map``, ``accuracy``, ``mean_iou``).

    Returns:
        ``(thresholds, reason)``; the reason names the default when it was added, else None.
    """
    if any(t.change is not None for t in thresholds):
        return list(thresholds), None
    metric = PRIMARY_METRIC[task]
    default = MetricThreshold(metric=metric, change=ChangeThreshold(direction="higher_is_better", absolute=0.0))
    return [*thresholds, default], DEFAULT_REASON.format(metric=metric)


def _verdict(results: list[ThresholdResult], has_baseline: bool) -> tuple[bool, list[str]]:
    if not results:
        return False, [NO_THRESHOLDS]
    checked = [r for r in results if not r.skipped]
    failed = [r for r in checked if not r.passed]
    reasons = [r.reason for r in failed]
    no_base = [r for r in results if r.skipped and r.reason == "skipped: no baseline"]
    undefined = [r for r in results if r.skipped and r.reason != "skipped: no baseline"]
    reasons.extend(r.reason for r in undefined)
    if no_base:
        reasons.append(f"{len(no_base)} change threshold(s) skipped: no baseline (the first model is judged on value thresholds only)")
    if failed:
        reasons.append(f"not blessed: {len(failed)} of {len(checked)} checked thresholds failed")
        return False, reasons
    if not checked:
        if not no_base:
            reasons.append("not blessed: no threshold could be checked (every one is undefined)")
            return False, reasons
        reasons.append("blessed: no champion to compare with (first model) and no value threshold")
        return True, reasons
    reasons.append(f"blessed: all {len(checked)} checked thresholds passed" + ("" if has_baseline else " (no baseline)"))
    return True, reasons


def bless(
    candidate: ModelEvaluation | Mapping[str, float | None],
    thresholds: Sequence[MetricThreshold],
    baseline: ModelEvaluation | Mapping[str, float | None] | None = None,
    baseline_id: str | None = None,
) -> Blessing:
    """Checks a candidate's metrics against thresholds (TFX Evaluator semantics; see the module doc).

    Args:
        candidate: the candidate's evaluation (or a flat metric name -> value mapping).
        thresholds: the thresholds; none means nothing is blessed.
        baseline: the baseline's evaluation on the same data, or None (first model).
        baseline_id: the baseline's id, recorded in the blessing.

    Returns:
        The blessing.
    """
    get = _lookup(candidate)
    base = _lookup(baseline) if baseline is not None else None
    results: list[ThresholdResult] = []
    for t in thresholds:
        if t.lower is not None or t.upper is not None:
            results.append(_check_value(t, get))
        if t.change is not None:
            results.append(_check_change(t, t.change, get, base))
        if t.lower is None and t.upper is None and t.change is None:
            results.append(ThresholdResult(metric=t.metric, kind="value", passed=False, reason=f"threshold on {t.metric} sets no bound"))
    blessed, reasons = _verdict(results, baseline is not None)

    def overall(m: ModelEvaluation | Mapping[str, float | None]) -> dict[str, float | None]:
        return dict(m.metrics) if isinstance(m, ModelEvaluation) else dict(m)

    return Blessing(
        blessed=blessed,
        metrics=overall(candidate),
        baseline_metrics=overall(baseline) if baseline is not None else None,
        thresholds=results,
        baseline_id=baseline_id if baseline is not None else None,
        reasons=reasons,
    )


def combine_blessings(first: Blessing, second: Blessing) -> Blessing:
    """One blessing from two checks of the same model (cvpipe thresholds and a TFMA config).

    Args:
        first: one blessing.
        second: the other.

    Returns:
        Blessed only when every checked threshold of both passed and there was at least one.
    """
    results = [*first.thresholds, *second.thresholds]
    has_baseline = first.baseline_metrics is not None or second.baseline_metrics is not None
    blessed, reasons = _verdict(results, has_baseline)
    if second.tfma_validation_ok is False or first.tfma_validation_ok is False:
        blessed = False
    extra = [r for r in [*first.reasons, *second.reasons] if r.startswith("TFMA")]
    return Blessing(
        blessed=blessed,
        metrics={**second.metrics, **first.metrics},
        baseline_metrics=({**(second.baseline_metrics or {}), **(first.baseline_metrics or {})} if has_baseline else None),
        thresholds=results,
        baseline_id=first.baseline_id or second.baseline_id,
        reasons=[*extra, *reasons],
        source=f"{first.source}+{second.source}",
        tfma_output=first.tfma_output or second.tfma_output,
        tfma_validation_ok=first.tfma_validation_ok if first.tfma_validation_ok is not None else second.tfma_validation_ok,
    )


# --------------------------------------------------------------------------- TFMA


def load_eval_config(source: str | os.PathLike[str] | config_pb2.EvalConfig) -> config_pb2.EvalConfig:
    """Reads a TFMA ``EvalConfig`` from a text-proto or JSON file (or passes one through).

    Args:
        source: a file path, or an ``EvalConfig``.

    Returns:
        The config.

    Raises:
        EvaluationError: the file is missing or cannot be parsed.
    """
    from google.protobuf import json_format, text_format
    from tensorflow_model_analysis.proto import config_pb2

    if isinstance(source, config_pb2.EvalConfig):
        return source
    p = Path(source)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise EvaluationError(f"{p}: cannot read the TFMA EvalConfig: {e.strerror}") from None
    cfg = config_pb2.EvalConfig()
    try:
        if text.lstrip().startswith("{"):
            json_format.Parse(text, cfg)
        else:
            text_format.Parse(text, cfg)
    except (json_format.ParseError, text_format.ParseError) as e:
        raise EvaluationError(f"{p}: not a valid TFMA EvalConfig (text proto or JSON): {e}") from None
    return cfg


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _convert(value_t: Any | None, change_t: Any | None, metric: str) -> MetricThreshold:
    """A TFMA GenericValueThreshold / GenericChangeThreshold pair as a cvpipe threshold."""
    from tensorflow_model_analysis.proto import config_pb2

    lower = upper = None
    if value_t is not None:
        lower = value_t.lower_bound.value if value_t.HasField("lower_bound") else None
        upper = value_t.upper_bound.value if value_t.HasField("upper_bound") else None
    change = None
    if change_t is not None:
        higher = change_t.direction != config_pb2.MetricDirection.LOWER_IS_BETTER
        sign = -1.0 if higher else 1.0
        absolute = sign * change_t.absolute.value if change_t.HasField("absolute") else None
        relative = sign * change_t.relative.value if change_t.HasField("relative") else None
        if absolute is None and relative is None:
            absolute = math.inf  # TFMA: a change threshold without bounds always passes
        change = ChangeThreshold(direction="higher_is_better" if higher else "lower_is_better", absolute=absolute, relative=relative)
    return MetricThreshold(metric=metric, lower=lower, upper=upper, change=change)


def thresholds_from_eval_config(config: str | os.PathLike[str] | config_pb2.EvalConfig) -> list[MetricThreshold]:
    """The overall (unsliced) thresholds of a TFMA config as cvpipe thresholds, without running TFMA.

    Metric names are the keys of ``metrics_specs.thresholds`` and, for
    ``metrics`` entries, ``config``'s ``name`` or the class name in snake case
    (``MeanIoU`` -> ``mean_io_u``; prefer the ``thresholds`` map for cvpipe's
    own metric names such as ``map_50``). Per-slice thresholds are left out.

    Args:
        config: the config or its file.

    Returns:
        The thresholds.
    """
    cfg = load_eval_config(config)
    out: list[MetricThreshold] = []
    for spec in cfg.metrics_specs:
        for m in spec.metrics:
            if not m.threshold.ByteSize():
                continue
            name = ""
            if m.config:
                try:
                    name = str(json.loads(m.config).get("name", ""))
                except ValueError:
                    name = ""
            name = name or _snake(m.class_name)
            th = m.threshold
            out.append(
                _convert(
                    th.value_threshold if th.HasField("value_threshold") else None,
                    th.change_threshold if th.HasField("change_threshold") else None,
                    name,
                )
            )
        for name, th in sorted(spec.thresholds.items()):
            out.append(
                _convert(
                    th.value_threshold if th.HasField("value_threshold") else None,
                    th.change_threshold if th.HasField("change_threshold") else None,
                    name,
                )
            )
    return out


def _key_name(key: Any) -> str:
    """``name[/sub key][/aggregation][/output]`` of a TFMA MetricKey."""
    parts = [key.name]
    if key.sub_key is not None:
        parts.append(str(key.sub_key))
    if key.aggregation_type is not None:
        parts.append(str(key.aggregation_type))
    if key.output_name:
        parts.append(key.output_name)
    return "/".join(parts)


def _slice_name(slice_key: tuple[Any, ...]) -> str:
    return ",".join(f"{c}={v.decode() if isinstance(v, bytes) else v}" for c, v in slice_key)


def bless_with_tfma(
    eval_config: str | os.PathLike[str] | config_pb2.EvalConfig,
    *,
    labels: Sequence[int] | np.ndarray,
    scores: np.ndarray,
    class_ids: Sequence[int],
    output_path: str | os.PathLike[str],
    baseline_scores: np.ndarray | None = None,
    features: Mapping[str, Sequence[str]] | None = None,
    baseline_id: str | None = None,
) -> Blessing:
    """Runs TFMA on a classifier's predictions and blesses with the config's thresholds.

    The config's ``model_specs`` are replaced: cvpipe feeds materialised
    predictions (``prediction``, ``baseline_prediction``) and labels
    (``label``: dense class index in ``class_ids`` order); its ``metrics_specs``
    and ``slicing_specs`` are used as they are (slice features come from
    ``features``). Without a baseline, change thresholds are skipped (TFX's
    rubber stamp of a first model).

    Args:
        eval_config: the EvalConfig or its file (text proto or JSON).
        labels: ``[N]`` true class ids.
        scores: ``[N, C]`` the candidate's probabilities, columns in ``class_ids`` order.
        class_ids: the class ids.
        output_path: directory for TFMA's result (``tfma.load_eval_result(output_path)``).
        baseline_scores: ``[N, C]`` the baseline's probabilities on the same images, or None.
        features: slice feature name -> one string per image.
        baseline_id: the baseline's id.

    Returns:
        The blessing (``source="tfma"``, ``tfma_output`` and ``tfma_validation_ok`` set).

    Raises:
        EvaluationError: unusable config or inputs.
    """
    import apache_beam as beam
    import pandas as pd
    import pyarrow as pa
    import tensorflow_model_analysis as tfma
    from tensorflow_model_analysis import constants
    from tensorflow_model_analysis.api import model_eval_lib
    from tensorflow_model_analysis.metrics import metric_specs, metric_types
    from tensorflow_model_analysis.proto import config_pb2
    from tensorflow_model_analysis.slicer import slicer_lib
    from tensorflow_model_analysis.utils import config_util
    from tfx_bsl.arrow import table_util

    cfg = config_pb2.EvalConfig()
    cfg.CopyFrom(load_eval_config(eval_config))
    ids = list(class_ids)
    y = np.asarray(labels, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float32)
    if len(y) == 0:
        raise EvaluationError("nothing to evaluate: no images (is the test split empty?)")
    if s.shape != (len(y), len(ids)) or (baseline_scores is not None and np.shape(baseline_scores) != s.shape):
        raise EvaluationError(f"scores must be [{len(y)}, {len(ids)}] (images x classes)")
    dense = {c: i for i, c in enumerate(ids)}
    unknown = sorted({int(v) for v in y if int(v) not in dense})
    if unknown:
        raise EvaluationError(f"labels have unknown class ids {unknown[:10]}")
    has_baseline = baseline_scores is not None

    del cfg.model_specs[:]
    cfg.model_specs.add(name=constants.CANDIDATE_KEY, label_key="label", prediction_key="prediction")
    cfg.model_specs.add(name=constants.BASELINE_KEY, label_key="label", prediction_key="baseline_prediction", is_baseline=True)
    for spec in cfg.metrics_specs:
        del spec.model_names[:]
    # every threshold, as TFMA keys them (change thresholds included even when they will be skipped)
    full = config_util.update_eval_config_with_defaults(cfg, has_baseline=True)
    declared = metric_specs.metric_thresholds_from_metrics_specs(full.metrics_specs, eval_config=full)
    run_cfg = full if has_baseline else config_util.update_eval_config_with_defaults(cfg, has_baseline=False, rubber_stamp=True)

    columns: dict[str, Any] = {"label": [dense[int(v)] for v in y], "prediction": list(s)}
    columns["baseline_prediction"] = list(np.asarray(baseline_scores, dtype=np.float32)) if has_baseline else list(s)
    for name, column in (features or {}).items():
        if len(column) != len(y):
            raise EvaluationError(f"slice feature {name!r} has {len(column)} values for {len(y)} images")
        columns[name] = [str(v) for v in column]
    batch = table_util.CanonicalizeRecordBatch(pa.RecordBatch.from_pandas(pd.DataFrame(columns)))
    models = [
        tfma.types.EvalSharedModel(
            model_name=constants.CANDIDATE_KEY, model_type=constants.MATERIALIZED_PREDICTION, rubber_stamp=not has_baseline
        )
    ]
    if has_baseline:
        models.append(
            tfma.types.EvalSharedModel(model_name=constants.BASELINE_KEY, model_type=constants.MATERIALIZED_PREDICTION, is_baseline=True)
        )
    out = Path(output_path)
    out.mkdir(parents=True, exist_ok=True)
    with beam.Pipeline() as pipeline:
        _ = (
            pipeline
            | "Predictions" >> beam.Create([batch])
            | "TFMA"
            >> model_eval_lib.ExtractEvaluateAndWriteResults(
                eval_shared_model=models if has_baseline else models[0], eval_config=run_cfg, output_path=str(out)
            )
        )

    # metric values per slice and model, keyed like the thresholds (model name and diff flag aside)
    values: dict[tuple[tuple[Any, ...], str, Any], float] = {}
    for mfs in tfma.load_metrics(str(out)):
        if mfs.HasField("cross_slice_key"):
            continue
        sk = slicer_lib.deserialize_slice_key(mfs.slice_key)
        for kv in mfs.metric_keys_and_values:
            key = metric_types.MetricKey.from_proto(kv.key)
            if key.is_diff or not kv.value.HasField("double_value"):
                continue
            model = constants.BASELINE_KEY if key.model_name == constants.BASELINE_KEY else constants.CANDIDATE_KEY
            values[(sk, model, key._replace(model_name="", is_diff=False))] = float(kv.value.double_value.value)
    slices = sorted({sk for sk, _, _ in values}, key=lambda k: (len(k), str(k)))
    candidate: dict[str, float | None] = {}
    baseline: dict[str, float | None] = {}
    thresholds: list[MetricThreshold] = []
    for key, pairs in declared.items():
        if key.model_name == constants.BASELINE_KEY:
            continue
        plain = key._replace(model_name="", is_diff=False)
        for slice_spec, threshold in pairs:
            if isinstance(slice_spec, config_pb2.CrossSlicingSpec):
                continue
            applicable = [sk for sk in slices if slice_spec is None or slicer_lib.SingleSliceSpec(spec=slice_spec).is_slice_applicable(sk)]
            for sk in applicable:
                name = _key_name(plain) + (f"@{_slice_name(sk)}" if sk else "")
                if (sk, constants.CANDIDATE_KEY, plain) in values:
                    candidate[name] = values[(sk, constants.CANDIDATE_KEY, plain)]
                if (sk, constants.BASELINE_KEY, plain) in values:
                    baseline[name] = values[(sk, constants.BASELINE_KEY, plain)]
                if isinstance(threshold, config_pb2.GenericValueThreshold):
                    thresholds.append(_convert(threshold, None, name))
                else:
                    thresholds.append(_convert(None, threshold, name))
    for (sk, model, key), v in values.items():
        if not sk:
            (baseline if model == constants.BASELINE_KEY else candidate).setdefault(_key_name(key), v)
    result = bless(candidate, thresholds, baseline if has_baseline else None, baseline_id)
    validation = tfma.load_validation_result(str(out))
    tfma_ok = bool(validation.validation_ok)
    reasons = list(result.reasons)
    blessed = result.blessed
    if thresholds and tfma_ok != result.blessed:
        reasons.insert(
            0, f"TFMA's own validation says validation_ok={tfma_ok}; cvpipe's mapping says blessed={result.blessed}; not blessed"
        )
        blessed = False
    overall = {k: v for k, v in candidate.items() if "@" not in k}
    return result.model_copy(
        update={
            "blessed": blessed,
            "reasons": reasons,
            "source": "tfma",
            "tfma_output": str(out),
            "tfma_validation_ok": tfma_ok,
            "metrics": overall,
            "baseline_metrics": {k: v for k, v in baseline.items() if "@" not in k} if has_baseline else None,
        }
    )

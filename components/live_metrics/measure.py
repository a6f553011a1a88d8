"""Live metrics of the production model on labelled production images, with confidence intervals.

Metrics are computed by the evaluate component's own functions
(:func:`~components.evaluate.evaluation.evaluate_detection_set`,
:func:`~components.evaluate.metrics_detection.evaluate_detection`,
:func:`~components.evaluate.evaluation.evaluate_classification_set`,
:func:`~components.evaluate.metrics_classification.classification_metrics`), at
the IoU and score thresholds the blessed evaluation used, so a live value and
a blessed value mean the same thing. What this module adds is the uncertainty
of a small sample and the comparison:

* proportions get Wilson intervals: classification ``accuracy`` (one trial per
  image); detection ``precision`` / ``recall`` (and ``@class=NAME``) with the
  boxes-within-images design effect (:func:`~.stats.clustered_wilson`);
* other metrics (``map``, ``map_50``, ``f1``...) get a percentile bootstrap over images;
* a metric is ``degraded`` only when the interval's upper bound is below
  ``blessed - max_drop``; a point estimate below that line whose interval still
  reaches it is ``inconclusive`` (no alert), and fewer than ``min_labelled``
  images is ``not_enough_data``.

Only the uniformly sampled (``random`` stratum) share of the labelling batch
is used: the per-class and uncertain strata over-represent hard images by
design, so metrics on them are biased low. The estimate on every labelled
image is reported beside it for information (``all_labelled``), never alerted on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from components.alert.model import Alert, TimeWindow
from components.core.clock import utc_now
from components.core.errors import EvaluationError
from components.core.labelmap import LabelMap
from components.core.spec import LiveMetricSpec
from components.evaluate.evaluation import ModelEvaluation, evaluate_classification_set, evaluate_detection_set
from components.evaluate.metrics_classification import classification_metrics
from components.evaluate.metrics_detection import Detections, GroundTruth, evaluate_detection
from components.evaluate.slicing import ImageMeta

from .stats import Interval, bootstrap_interval, clustered_wilson, wilson_interval

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DEFAULT_METRICS",
    "RANDOM_STRATUM",
    "REPORT_JSON",
    "LabelledImages",
    "LiveMetricResult",
    "LiveMetricsReport",
    "MetricStatus",
    "default_metrics",
    "degradation_alerts",
    "measure",
]

REPORT_JSON = "live_metrics.json"
"""The report, inside the live-metrics step's output directory (here beside its model, so readers need not import the step)."""

MetricStatus = Literal["ok", "degraded", "inconclusive", "not_enough_data", "no_baseline", "unsupported"]

RANDOM_STRATUM = "random"
"""The labelling-batch stratum drawn uniformly from the window (the only one live metrics use)."""

DEFAULT_METRICS: dict[str, tuple[tuple[str, float], ...]] = {
    "detection": (("precision", 0.1), ("recall", 0.1), ("map_50", 0.1)),
    "classification": (("accuracy", 0.05),),
    "segmentation": (),
}
"""Metrics (and tolerated drops) measured when the spec names none."""

_PROPORTIONS = {
    "detection": {"precision", "recall"},
    "classification": {"accuracy", "precision_micro", "recall_micro", "f1_micro"},
}
_CLASS_PROPORTIONS = {"precision", "recall"}


def default_metrics(task: str) -> list[LiveMetricSpec]:
    """The live metrics of a task when the spec names none.

    Args:
        task: classification, detection or segmentation.

    Returns:
        The metric settings.
    """
    return [LiveMetricSpec(metric=m, max_drop=d) for m, d in DEFAULT_METRICS.get(task, ())]


def _class_name_of(metric: str) -> tuple[str, str | None]:
    """``precision@class=cat`` -> (``precision``, ``cat``); an overall metric -> (name, None)."""
    if "@" not in metric:
        return metric, None
    name, where = metric.split("@", 1)
    feature, _, value = where.partition("=")
    if feature != "class" or not value:
        raise EvaluationError(f"live metric {metric!r}: only overall metrics and NAME@class=CLASS are measured live")
    return name, value


def _json(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return {}
    return dict(json.loads(str(value)))


@dataclass
class LabelledImages:
    """Labelled production images with the model's predictions, image by image.

    Build with :meth:`from_frame`. Images are addressed by position, so a
    bootstrap sample (positions drawn with replacement) is evaluated as
    distinct images.

    Attributes:
        task: classification or detection.
        label_map: the model's label map.
        ids: request id per image.
        widths: image widths.
        heights: image heights.
        gt: per image ``(class ids [k], boxes [k, 4], areas [k], crowd flags [k])`` (detection).
        dt: per image ``(class ids [d], boxes [d, 4], scores [d])`` (detection).
        y_true: true class id per image (classification).
        scores: ``[N, C]`` probabilities in ``label_map.ids`` order (classification).
    """

    task: str
    label_map: LabelMap
    ids: list[str] = field(default_factory=list)
    widths: list[int] = field(default_factory=list)
    heights: list[int] = field(default_factory=list)
    gt: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)
    dt: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)
    y_true: list[int] = field(default_factory=list)
    scores: list[np.ndarray] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, task: str, label_map: LabelMap) -> LabelledImages:
        """Reads the rows of a joined prediction log (``predictions`` and ``ground_truth`` JSON columns).

        Args:
            frame: rows with ``request_id``, ``width``, ``height``, ``predictions`` and ``ground_truth``.
            task: classification or detection.
            label_map: the model's label map.

        Returns:
            The images (rows without ground truth are skipped).

        Raises:
            EvaluationError: a label or prediction names a class the label map does not know.
        """
        out = cls(task=task, label_map=label_map)
        ids = label_map.ids
        for row in frame.itertuples(index=False):
            truth = _json(getattr(row, "ground_truth", None))
            if not truth:
                continue
            pred = _json(getattr(row, "predictions", None))
            width = int(truth.get("width") or getattr(row, "width", 0) or 0)
            height = int(truth.get("height") or getattr(row, "height", 0) or 0)
            out.ids.append(str(row.request_id))
            out.widths.append(width)
            out.heights.append(height)
            if task == "classification":
                cid = truth.get("class_id")
                if cid is None:
                    raise EvaluationError(f"request {row.request_id}: the label has no class_id")
                out.y_true.append(int(cid))
                out.scores.append(_probabilities(pred, ids, str(row.request_id)))
            else:
                objs = truth.get("objects") or []
                out.gt.append(
                    (
                        np.asarray([int(o["class_id"]) for o in objs], dtype=np.int64),
                        np.asarray([o["bbox"] for o in objs], dtype=np.float64).reshape(-1, 4),
                        np.asarray([float(o.get("area") or o["bbox"][2] * o["bbox"][3]) for o in objs], dtype=np.float64),
                        np.asarray([bool(o.get("is_crowd", o.get("iscrowd", False))) for o in objs], dtype=bool),
                    )
                )
                out.dt.append(
                    (
                        np.asarray(pred.get("class_ids") or [], dtype=np.int64),
                        np.asarray(pred.get("boxes") or [], dtype=np.float64).reshape(-1, 4),
                        np.asarray(pred.get("scores") or [], dtype=np.float64),
                    )
                )
        return out

    def subset(self, idx: Sequence[int] | np.ndarray) -> tuple[GroundTruth, Detections, list[ImageMeta]]:
        """Detection inputs of the images at ``idx`` (repeats allowed), named by their position in ``idx``.

        Args:
            idx: image positions.

        Returns:
            Ground truth, detections and image metadata, in the evaluate component's types.
        """
        gi: list[np.ndarray] = []
        gc, gb, ga, gz, di, dc, db, ds = ([] for _ in range(8))
        metas = []
        for j, i in enumerate(np.asarray(idx, dtype=np.int64).tolist()):
            name = str(j)
            c, b, a, z = self.gt[i]
            gi.append(np.full(len(c), name, dtype=object))
            gc.append(c)
            gb.append(b)
            ga.append(a)
            gz.append(z)
            c2, b2, s2 = self.dt[i]
            di.append(np.full(len(c2), name, dtype=object))
            dc.append(c2)
            db.append(b2)
            ds.append(s2)
            metas.append(ImageMeta(image_id=name, width=self.widths[i], height=self.heights[i]))

        def cat(parts: list[np.ndarray], shape: tuple[int, ...], dtype: Any) -> np.ndarray:
            return np.concatenate(parts) if parts else np.zeros(shape, dtype=dtype)

        gt = GroundTruth.from_arrays(
            cat(gi, (0,), object).astype(str),
            cat(gc, (0,), np.int64),
            cat(gb, (0, 4), np.float64),
            cat(ga, (0,), np.float64),
            cat(gz, (0,), bool),
        )
        dt = Detections.from_arrays(
            cat(di, (0,), object).astype(str), cat(dc, (0,), np.int64), cat(db, (0, 4), np.float64), cat(ds, (0,), np.float64)
        )
        return gt, dt, metas


def _probabilities(pred: Mapping[str, Any], ids: list[int], request: str) -> np.ndarray:
    """Class probabilities in label-map order (a class the model did not score gets 0)."""
    probs = pred.get("probabilities")
    if probs is None:
        raise EvaluationError(f"request {request}: a classification prediction without probabilities")
    order = pred.get("label_ids") or ids[: len(probs)]
    by_id = {int(c): float(p) for c, p in zip(order, probs, strict=False)}
    unknown = set(by_id) - set(ids)
    if unknown:
        raise EvaluationError(f"request {request}: predicted class ids {sorted(unknown)} are not in the model's label map")
    return np.asarray([by_id.get(c, 0.0) for c in ids], dtype=np.float64)


class LiveMetricResult(BaseModel):
    """One live metric against its blessed value.

    Attributes:
        metric: the metric name.
        status: ``degraded`` (upper bound below ``blessed - max_drop``), ``ok``,
            ``inconclusive`` (the estimate is below that line but its interval is not),
            ``not_enough_data``, ``no_baseline`` (the blessed evaluation has no value) or
            ``unsupported`` (the task's live labels cannot measure it).
        estimate: on the random share.
        lower: lower confidence bound.
        upper: upper confidence bound.
        method: ``wilson``, ``wilson_clustered`` or ``bootstrap``.
        images: random-share images measured.
        trials: trials of a proportion (images or boxes).
        effective_trials: trials after the design effect.
        design_effect: the clustering design effect (1 for independent trials).
        blessed: the value in the blessed evaluation.
        max_drop: the tolerated drop.
        bound: ``blessed - max_drop``.
        severity: severity of its alert.
        all_labelled: the estimate on every labelled image (biased by the sampling; not alerted on).
        reason: one sentence on the verdict.
    """

    model_config = ConfigDict(extra="forbid")

    metric: str
    status: MetricStatus
    estimate: float | None = None
    lower: float | None = None
    upper: float | None = None
    method: str = ""
    images: int = 0
    trials: float = 0.0
    effective_trials: float = 0.0
    design_effect: float = 1.0
    blessed: float | None = None
    max_drop: float = 0.0
    bound: float | None = None
    severity: str = "error"
    all_labelled: float | None = None
    reason: str = ""


class LiveMetricsReport(BaseModel):
    """Live metrics of one evaluation window.

    Attributes:
        format_version: layout version.
        model: registry model name.
        version: registry version measured.
        created_at: when it was made.
        window: the prediction window.
        task: the task.
        confidence: confidence level of the intervals.
        labelled: labelled images of the window (every stratum).
        strata: labelled images per stratum.
        blessed_evaluation: URI of the blessed evaluation compared with.
        iou_threshold: IoU of precision and recall (the blessed evaluation's).
        score_threshold: score threshold of precision and recall (the blessed evaluation's).
        status: ``degraded`` if a metric is, else ``inconclusive`` if one is, else ``ok`` if one ran,
            else ``not_enough_data``.
        metrics: one result per metric.
        evaluation: the full evaluation (every metric, per class) on the random share, when measured.
    """

    model_config = ConfigDict(extra="forbid")

    format_version: int = 1
    model: str = ""
    version: int | None = None
    created_at: datetime = Field(default_factory=utc_now)
    window: TimeWindow | None = None
    task: str = ""
    confidence: float = 0.95
    labelled: int = 0
    strata: dict[str, int] = Field(default_factory=dict)
    blessed_evaluation: str | None = None
    iou_threshold: float = 0.5
    score_threshold: float = 0.3
    status: str = "not_enough_data"
    metrics: list[LiveMetricResult] = Field(default_factory=list)
    evaluation: ModelEvaluation | None = None

    @property
    def degraded(self) -> list[LiveMetricResult]:
        """Metrics whose status is ``degraded``."""
        return [m for m in self.metrics if m.status == "degraded"]


def _clean(v: Any) -> float | None:
    if v is None:
        return None
    f = float(v)
    return None if math.isnan(f) or math.isinf(f) or f == -1.0 else f


class _Measurer:
    """Computes metric values on subsets of the labelled images with the evaluate component's functions."""

    def __init__(self, images: LabelledImages, iou_threshold: float, score_threshold: float):
        self.images = images
        self.iou = iou_threshold
        self.score = score_threshold
        self._per_image: np.ndarray | None = None

    def evaluation(self) -> ModelEvaluation:
        im = self.images
        idx = np.arange(len(im))
        if im.task == "classification":
            metas = [ImageMeta(image_id=str(j), width=im.widths[i], height=im.heights[i]) for j, i in enumerate(idx)]
            return evaluate_classification_set(np.asarray(im.y_true), np.vstack(im.scores), metas, im.label_map)
        gt, dt, metas = im.subset(idx)
        return evaluate_detection_set(gt, dt, metas, im.label_map, iou_threshold=self.iou, score_threshold=self.score)

    def value(self, metric: str, idx: np.ndarray) -> float | None:
        """The metric on the images at ``idx`` (with repeats), as the evaluate component defines it."""
        im = self.images
        name, cls = _class_name_of(metric)
        if im.task == "classification":
            res_c = classification_metrics(np.asarray(im.y_true)[idx], np.vstack(im.scores)[idx], im.label_map.ids)
            if cls is None:
                return _clean(res_c.metrics.get(name))
            cid = im.label_map.id_of(cls)
            return None if cid is None else _clean(res_c.per_class.get(cid, {}).get(name))
        gt, dt, _ = im.subset(idx)
        res = evaluate_detection(
            gt,
            dt,
            image_ids=np.asarray([str(j) for j in range(len(idx))]),
            category_ids=im.label_map.ids,
            iou_threshold=self.iou,
            score_threshold=self.score,
        )
        if cls is None:
            return _clean(res.metrics.get(name))
        cid = im.label_map.id_of(cls)
        return None if cid is None else _clean(res.per_class.get(cid, {}).get(name))

    def counts_per_image(self) -> np.ndarray:
        """``[N, K, 3]`` per image and class: true positives, detections, objects (their sum is the evaluation's)."""
        if self._per_image is None:
            im = self.images
            mats = []
            for i in range(len(im)):
                gt, dt, _ = im.subset([i])
                r = evaluate_detection(
                    gt, dt, image_ids=np.asarray(["0"]), category_ids=im.label_map.ids, iou_threshold=self.iou, score_threshold=self.score
                )
                mats.append(r.match_counts)
            k = len(im.label_map.ids)
            self._per_image = np.stack(mats) if mats else np.zeros((0, k, 3))
        return self._per_image

    def proportion(self, metric: str, confidence: float) -> Interval | None:
        """A Wilson interval when the metric is a proportion; None otherwise."""
        im = self.images
        name, cls = _class_name_of(metric)
        if cls is None and name not in _PROPORTIONS.get(im.task, set()):
            return None
        if cls is not None and name not in _CLASS_PROPORTIONS:
            return None
        if im.task == "classification":
            y = np.asarray(im.y_true)
            pred = np.asarray(classification_metrics(y, np.vstack(im.scores), im.label_map.ids).predicted)
            if cls is None:
                return wilson_interval(float((pred == y).sum()), float(len(y)), confidence)
            cid = im.label_map.id_of(cls)
            if cid is None:
                return Interval(None, None, None, "wilson")
            hit = (pred == y) & (y == cid)
            trials = (pred == cid) if name == "precision" else (y == cid)
            return wilson_interval(float(hit.sum()), float(trials.sum()), confidence)
        counts = self.counts_per_image()  # matched within the class, as the evaluate component matches
        column = 1 if name == "precision" else 2
        if cls is None:
            tp = counts[:, :, 0].sum(axis=1)
            trials = counts[:, :, column].sum(axis=1)
        else:
            cid = im.label_map.id_of(cls)
            if cid is None:
                return Interval(None, None, None, "wilson_clustered")
            k = im.label_map.ids.index(cid)
            tp = counts[:, k, 0]
            trials = counts[:, k, column]
        return clustered_wilson(tp, trials, confidence)


def _interval(m: _Measurer, metric: str, n: int, confidence: float, replicates: int, seed: int) -> Interval:
    """Wilson for proportions, else the bootstrap over images."""
    found = m.proportion(metric, confidence)
    if found is not None:
        return found

    def statistic(idx: np.ndarray) -> float | None:
        return m.value(metric, idx)

    return bootstrap_interval(statistic, n, replicates, confidence, seed)


def _verdict(
    spec: LiveMetricSpec, iv: Interval, blessed: float | None, images: int, min_labelled: int
) -> tuple[MetricStatus, float | None, str]:
    bound = None if blessed is None else blessed - spec.max_drop
    if images < min_labelled:
        return "not_enough_data", bound, f"{images} labelled random-share images, fewer than the {min_labelled} needed"
    if iv.estimate is None or iv.upper is None:
        return "not_enough_data", bound, "undefined on these images (nothing predicted or nothing to find)"
    if blessed is None or bound is None:
        return "no_baseline", bound, "the blessed evaluation has no value for it"
    shown = f"{iv.estimate:.3f} [{iv.lower:.3f}, {iv.upper:.3f}]"
    if iv.upper < bound:
        return "degraded", bound, f"{shown} is confidently below {bound:.3f} (blessed {blessed:.3f} - {spec.max_drop:g})"
    if iv.estimate < bound:
        return "inconclusive", bound, f"{shown} is below {bound:.3f} but its interval reaches it; more labels will tell"
    return "ok", bound, f"{shown} is within {spec.max_drop:g} of the blessed {blessed:.3f}"


def _latest_per_image(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per image and model version: its latest prediction (an image the server predicted twice counts once)."""
    if "image_sha256" not in rows or rows.empty:
        return rows
    keys = ["model_version", "image_sha256"] if "model_version" in rows else ["image_sha256"]
    ordered = rows.sort_values("event_timestamp", kind="stable") if "event_timestamp" in rows else rows
    return ordered.drop_duplicates(keys, keep="last").sort_index()


def measure(
    labelled: pd.DataFrame,
    task: str,
    label_map: LabelMap,
    metrics: Sequence[LiveMetricSpec],
    blessed: ModelEvaluation | None,
    *,
    confidence: float = 0.95,
    min_labelled: int = 30,
    bootstrap: int = 200,
    iou_threshold: float = 0.5,
    score_threshold: float = 0.3,
    seed: int = 0,
    stratum_column: str = "stratum",
) -> LiveMetricsReport:
    """Measures live metrics on the random share of labelled predictions and compares them with the blessed ones.

    Args:
        labelled: joined prediction-log rows (``request_id``, ``width``, ``height``, ``predictions``,
            ``ground_truth`` JSON) with each row's labelling stratum in ``stratum_column``;
            rows without ground truth are ignored. An image (``image_sha256``) predicted
            more than once by a model version counts once, with its latest prediction
            (``event_timestamp``).
        task: classification, detection or segmentation.
        label_map: the model's label map.
        metrics: the metrics and tolerated drops (empty: :func:`default_metrics`).
        blessed: the blessed evaluation of the model (None: every metric is ``no_baseline``).
        confidence: confidence level of the intervals.
        min_labelled: fewer random-share images than this is ``not_enough_data``.
        bootstrap: bootstrap replicates for metrics that are not proportions.
        iou_threshold: IoU of detection precision and recall.
        score_threshold: score threshold of detection precision and recall.
        seed: bootstrap seed.
        stratum_column: the column naming each row's stratum (``random``, ``class``, ``uncertain``).

    Returns:
        The report (``model``, ``version`` and ``window`` are left for the caller).
    """
    wanted = list(metrics) or default_metrics(task)
    has_truth = labelled["ground_truth"].notna() if "ground_truth" in labelled else None
    rows = _latest_per_image(labelled[has_truth] if has_truth is not None else labelled.iloc[0:0])
    strata = {str(k): int(v) for k, v in rows[stratum_column].fillna("").value_counts().items()} if stratum_column in rows else {}
    report = LiveMetricsReport(
        task=task, confidence=confidence, labelled=len(rows), strata=strata, iou_threshold=iou_threshold, score_threshold=score_threshold
    )
    if task == "segmentation":
        report.metrics = [
            LiveMetricResult(
                metric=m.metric,
                status="unsupported",
                max_drop=m.max_drop,
                severity=m.severity,
                reason="segmentation masks are not in the prediction log",
            )
            for m in wanted
        ]
        report.status = "not_enough_data"
        return report
    random_rows = rows[rows[stratum_column] == RANDOM_STRATUM] if stratum_column in rows else rows.iloc[0:0]
    images = LabelledImages.from_frame(random_rows, task, label_map)
    everything = LabelledImages.from_frame(rows, task, label_map)
    m_random = _Measurer(images, iou_threshold, score_threshold)
    m_all = _Measurer(everything, iou_threshold, score_threshold)
    n = len(images)
    if n:
        report.evaluation = m_random.evaluation()
    results = []
    for spec in wanted:
        try:
            blessed_value = blessed.value(spec.metric) if blessed is not None else None
        except KeyError:
            blessed_value = None
        iv = _interval(m_random, spec.metric, n, confidence, bootstrap, seed) if n else Interval(None, None, None, "")
        status, bound, reason = _verdict(spec, iv, blessed_value, n, min_labelled)
        results.append(
            LiveMetricResult(
                metric=spec.metric,
                status=status,
                estimate=iv.estimate,
                lower=iv.lower,
                upper=iv.upper,
                method=iv.method,
                images=n,
                trials=iv.trials,
                effective_trials=iv.effective_trials,
                design_effect=iv.design_effect,
                blessed=blessed_value,
                max_drop=spec.max_drop,
                bound=bound,
                severity=spec.severity,
                all_labelled=m_all.value(spec.metric, np.arange(len(everything))) if len(everything) else None,
                reason=reason,
            )
        )
    report.metrics = results
    statuses = {r.status for r in results}
    report.status = next((s for s in ("degraded", "inconclusive", "ok") if s in statuses), "not_enough_data")
    return report


def _g(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3g}"


def degradation_alerts(
    report: LiveMetricsReport,
    *,
    runbook_url: str | None = None,
    generator_url: str | None = None,
    labels: Mapping[str, str] | None = None,
    alias: str = "",
) -> list[Alert]:
    """The findings a live-metrics report raises or resolves (the alert step groups them into one incident).

    A ``degraded`` metric fires ``LiveMetricDegraded``; an ``ok`` one resolves it
    (the dispatcher forwards a resolve only for a firing key). Inconclusive
    metrics, too few labels and a missing baseline neither raise nor clear.

    Args:
        report: the report.
        runbook_url: linked from every alert.
        generator_url: link to the report.
        labels: extra labels on every alert.
        alias: the alias the measured version holds.

    Returns:
        The alerts, in metric order.
    """
    out: list[Alert] = []
    for m in report.metrics:
        if m.status not in ("degraded", "ok"):
            continue
        change = (
            f"{m.metric} {_g(m.estimate)} ({report.confidence:.0%} interval {_g(m.lower)}-{_g(m.upper)}) on {m.images} labelled images "
            f"vs {_g(m.blessed)} when blessed; alert when the interval is wholly below {_g(m.bound)}"
        )
        ratio = (m.bound - m.upper) / m.bound if m.bound and m.upper is not None else 0.0
        finding = {
            "check": "live_metric",
            "feature": m.metric,
            "change": change,
            "statistic": f"upper bound {_g(m.upper)} {'<' if m.status == 'degraded' else '>='} {_g(m.bound)}",
            "value": m.estimate,
            "lower": m.lower,
            "upper": m.upper,
            "threshold": m.bound,
            "blessed": m.blessed,
            "n_current": m.images,
            "status": m.status,
            "ratio": 1.0 + ratio,
        }
        alert = Alert(
            name="LiveMetricDegraded",
            severity=m.severity,  # type: ignore[arg-type]
            summary=f"{report.model or 'model'}: live {m.metric} {'degraded' if m.status == 'degraded' else 'back within limits'}: {m.reason}",
            description=(
                f"{m.metric} on {m.images} uniformly sampled labelled images ({m.method}, {report.confidence:.0%} interval "
                f"[{m.lower}, {m.upper}]) vs blessed {m.blessed} minus {m.max_drop:g}"
            ),
            model=report.model,
            metric=f"live/{m.metric}",
            value=m.estimate,
            threshold=m.bound,
            window=report.window,
            runbook_url=runbook_url,
            dedup_key=f"cvpipe/{report.model or 'model'}/live/{m.metric}",
            labels={**(labels or {}), "kind": "degradation", "metric": m.metric},
            generator_url=generator_url,
            starts_at=report.created_at,
            cause="degradation",
            version="" if report.version is None else str(report.version),
            alias=alias,
            findings=[finding],
        )
        out.append(alert if m.status == "degraded" else alert.resolved(report.created_at))
    return out

"""The evaluate step: metrics of the candidate (and its baseline) on the test split, and the blessing.

:func:`run` reads the test split of the examples directory, predicts with the
candidate model and, when there is one, the baseline (the latest blessed
registry version of the same model name, :func:`find_baseline`) on the same
images in the same run, computes the task's metrics overall, per class and
per slice for both, applies the spec's thresholds (and a TFMA EvalConfig when
``evaluate.tfma_config`` names one) and writes:

- ``evaluation.json`` in the evaluation directory (candidate and baseline
  :class:`~components.evaluate.evaluation.ModelEvaluation`), and ``tfma/``
  beside it when TFMA ran;
- ``blessing.json`` in the blessing directory (:class:`~components.evaluate.blessing.Blessing`),
  which the push step reads;
- the self-contained HTML report;
- the scalars and confusion matrix the KFP wrapper logs to its ``Metrics`` and
  ``ClassificationMetrics`` outputs.

Lineage is recorded once at the end: inputs ``model``, ``examples`` and
``baseline_model``; outputs ``evaluation`` (ModelEvaluation) and ``blessing``
(ModelBlessing with ``blessed`` and ``baseline_id``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from components.core.errors import EvaluationError
from components.core.io import atomic_write_html, atomic_write_json
from components.core.labelmap import LabelMap
from components.core.lineage import ArtifactRef, NewArtifact
from components.core.manifest import Manifest, Task
from components.core.spec import EvaluateSpec
from components.core.step import ArtifactUris, StepContext

from .blessing import (
    Blessing,
    bless,
    bless_with_tfma,
    combine_blessings,
    load_eval_config,
    thresholds_from_eval_config,
    with_default_change,
)
from .evaluation import ModelEvaluation, evaluate_classification_set, evaluate_detection_set, evaluate_segmentation_set
from .metrics_detection import Detections, GroundTruth
from .metrics_segmentation import SegmentationAccumulator
from .report import ReportSample, kfp_confusion, kfp_scalars, render_report
from .slicing import ImageMeta, slice_value

if TYPE_CHECKING:  # pragma: no cover
    from components.core.predictor import ImagePrediction

__all__ = [
    "BLESSING_FILE",
    "EVALUATION_FILE",
    "REPORT_FILE",
    "EvaluationResult",
    "PredictionSet",
    "evaluate_predictions",
    "find_baseline",
    "run",
]

EVALUATION_FILE = "evaluation.json"
"""Candidate and baseline evaluations, inside the evaluation directory."""
BLESSING_FILE = "blessing.json"
"""The verdict, inside the blessing directory (read by the push step)."""
REPORT_FILE = "report.html"
"""Report file name when the report goes into a directory."""
TEST_SPLIT = "test"
SAMPLES_IN_REPORT = 12
PRIMARY_METRIC: dict[str, str] = {"detection": "map", "classification": "accuracy", "segmentation": "mean_iou"}


@dataclass
class EvaluationResult:
    """What the evaluate step produced.

    Attributes:
        candidate: the candidate's evaluation.
        baseline: the baseline's evaluation on the same images, or None.
        blessing: the verdict.
        scalars: scalar metrics for KFP's ``Metrics`` output.
        confusion: ``(categories, matrix)`` for KFP's ``ClassificationMetrics`` output.
        paths: ``evaluation``, ``blessing``, ``report`` (and ``tfma``) files written.
        artifacts: recorded output artifacts (``evaluation``, ``blessing``).
    """

    candidate: ModelEvaluation
    baseline: ModelEvaluation | None
    blessing: Blessing
    scalars: dict[str, float]
    confusion: tuple[list[str], list[list[int]]]
    paths: dict[str, Path] = field(default_factory=dict)
    artifacts: dict[str, ArtifactRef] = field(default_factory=dict)


def _s(v: Any) -> str:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.ndarray) and v.shape == ():
        return _s(v.item())
    return str(v)


@dataclass
class PredictionSet:
    """Ground truth of the test split and every model's predictions on it, gathered image by image.

    Feed it with :meth:`add` (one record as ``read_dataset`` yields it, as numpy,
    and the predictions of each model on that image); then
    :func:`evaluate_predictions` turns it into evaluations.

    Attributes:
        task: the task.
        label_map: the examples' label map (the classes evaluated).
        models: model names (``candidate``, ``baseline``).
        model_label_maps: each model's own label map (classification columns are re-ordered by id).
        samples: images kept for the report.
        manifest: image id -> manifest record extras (``split``, ``source``) for user slices.
    """

    task: Task
    label_map: LabelMap
    models: Sequence[str]
    model_label_maps: Mapping[str, LabelMap] = field(default_factory=dict)
    samples: int = SAMPLES_IN_REPORT
    manifest: Mapping[str, tuple[str | None, dict[str, Any]]] = field(default_factory=dict)
    metas: list[ImageMeta] = field(default_factory=list, init=False)
    report_samples: list[ReportSample] = field(default_factory=list, init=False)
    _gt: dict[str, list[Any]] = field(
        default_factory=lambda: {"image_id": [], "category_id": [], "bbox": [], "area": [], "iscrowd": []}, init=False
    )
    _dt: dict[str, dict[str, list[Any]]] = field(default_factory=dict, init=False)
    _labels: list[int] = field(default_factory=list, init=False)
    _probs: dict[str, list[np.ndarray]] = field(default_factory=dict, init=False)
    _seg: dict[str, SegmentationAccumulator] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        for m in self.models:
            self._dt[m] = {"image_id": [], "category_id": [], "bbox": [], "score": []}
            self._probs[m] = []
            if self.task == "segmentation":
                self._seg[m] = SegmentationAccumulator([0, *self.label_map.ids])

    def add(self, record: Mapping[str, Any], predictions: Mapping[str, ImagePrediction]) -> None:
        """Adds one test image with each model's prediction.

        Args:
            record: the example as numpy (``image``, ``height``, ``width``, ``source_id``
                and the task's ground truth keys).
            predictions: model name -> its prediction for this image.

        Raises:
            EvaluationError: a prediction is unusable (wrong probability count, mask size).
        """
        image_id = _s(record["source_id"]) or _s(record.get("filename", "")) or f"#{len(self.metas)}"
        h, w = int(record["height"]), int(record["width"])
        split, source = self.manifest.get(image_id, (None, {}))
        self.metas.append(ImageMeta(image_id=image_id, width=w, height=h, split=split, source=dict(source)))
        gt_boxes = np.zeros((0, 4))
        gt_labels: list[str] = []
        if self.task == "detection":
            b = np.asarray(record["boxes"], dtype=np.float64).reshape(-1, 4)
            xywh = np.stack([b[:, 1] * w, b[:, 0] * h, (b[:, 3] - b[:, 1]) * w, (b[:, 2] - b[:, 0]) * h], axis=1)
            labels = np.asarray(record["labels"], dtype=np.int64).reshape(-1)
            self._gt["image_id"] += [image_id] * len(xywh)
            self._gt["category_id"].append(labels)
            self._gt["bbox"].append(xywh)
            self._gt["area"].append(np.asarray(record["area"], dtype=np.float64).reshape(-1))
            self._gt["iscrowd"].append(np.asarray(record["is_crowd"], dtype=bool).reshape(-1))
            gt_boxes = xywh
            gt_labels = [self.label_map.name_of(int(c)) or str(c) for c in labels]
        elif self.task == "classification":
            self._labels.append(int(record["label"]))
        for m in self.models:
            p = predictions[m]
            if self.task == "detection":
                n = len(p.boxes)
                self._dt[m]["image_id"] += [image_id] * n
                self._dt[m]["category_id"].append(np.asarray(p.class_ids, dtype=np.int64).reshape(-1))
                self._dt[m]["bbox"].append(np.asarray(p.boxes, dtype=np.float64).reshape(-1, 4))
                self._dt[m]["score"].append(np.asarray(p.scores, dtype=np.float64).reshape(-1))
            elif self.task == "classification":
                self._probs[m].append(self._columns(m, p, image_id))
            else:
                if p.mask is None:
                    raise EvaluationError(f"model {m}: no segmentation mask for image {image_id!r}")
                self._seg[m].add(image_id, np.asarray(record["segmentation"]), np.asarray(p.mask))
        if len(self.report_samples) < self.samples:
            p = predictions[self.models[0]]
            names = [self.label_map.name_of(int(c)) or str(c) for c in np.asarray(p.class_ids).reshape(-1)]
            sample = ReportSample(
                image_id=image_id, image=np.asarray(record["image"], dtype=np.uint8), true_boxes=gt_boxes, true_labels=gt_labels
            )
            if self.task == "detection":
                keep = np.asarray(p.scores) >= 0.3
                sample.pred_boxes = np.asarray(p.boxes).reshape(-1, 4)[keep]
                sample.pred_labels = [n for n, k in zip(names, keep, strict=True) if k]
                sample.pred_scores = [float(s) for s in np.asarray(p.scores)[keep]]
            elif self.task == "classification":
                sample.true_class = self.label_map.name_of(int(record["label"])) or str(record["label"])
                sample.pred_class = f"{names[0]} ({float(p.scores[0]):.2f})" if names else "?"
            else:
                sample.true_mask = np.asarray(record["segmentation"])
                sample.pred_mask = np.asarray(p.mask)
            self.report_samples.append(sample)

    def _columns(self, model: str, p: ImagePrediction, image_id: str) -> np.ndarray:
        """A model's probabilities re-ordered to the examples' label-map ids."""
        own = self.model_label_maps.get(model, self.label_map)
        if p.probabilities is None:
            raise EvaluationError(f"model {model}: no class probabilities for image {image_id!r}")
        probs = np.asarray(p.probabilities, dtype=np.float64).reshape(-1)
        if len(probs) != own.num_classes:
            raise EvaluationError(f"model {model}: {len(probs)} probabilities for {own.num_classes} classes (image {image_id!r})")
        if own.ids == self.label_map.ids:
            return probs
        unknown = [c for c in own.ids if c not in self.label_map.classes]
        if unknown:
            raise EvaluationError(f"model {model}: predicts classes {unknown} the examples' label map does not have")
        out = np.zeros(self.label_map.num_classes)
        index = self.label_map.dense_index()
        for j, c in enumerate(own.ids):
            out[index[c]] = probs[j]
        return out

    def ground_truth(self) -> GroundTruth:
        """The detection ground truth gathered so far."""
        g = self._gt
        return GroundTruth.from_arrays(
            np.array(g["image_id"], dtype=str),
            np.concatenate(g["category_id"]) if g["category_id"] else np.zeros(0, np.int64),
            np.concatenate(g["bbox"]) if g["bbox"] else np.zeros((0, 4)),
            np.concatenate(g["area"]) if g["area"] else np.zeros(0),
            np.concatenate(g["iscrowd"]) if g["iscrowd"] else np.zeros(0, bool),
        )

    def detections(self, model: str) -> Detections:
        """One model's detections gathered so far."""
        d = self._dt[model]
        return Detections.from_arrays(
            np.array(d["image_id"], dtype=str),
            np.concatenate(d["category_id"]) if d["category_id"] else np.zeros(0, np.int64),
            np.concatenate(d["bbox"]) if d["bbox"] else np.zeros((0, 4)),
            np.concatenate(d["score"]) if d["score"] else np.zeros(0),
        )

    def labels(self) -> np.ndarray:
        """Classification: ``[N]`` true class ids."""
        return np.asarray(self._labels, dtype=np.int64)

    def probabilities(self, model: str) -> np.ndarray:
        """Classification: ``[N, C]`` a model's probabilities in label-map id order."""
        rows = self._probs[model]
        return np.stack(rows) if rows else np.zeros((0, self.label_map.num_classes))

    def segmentation(self, model: str) -> SegmentationAccumulator:
        """Segmentation: a model's pixel counts."""
        return self._seg[model]


def evaluate_predictions(preds: PredictionSet, model: str, spec: EvaluateSpec) -> ModelEvaluation:
    """One model's evaluation from a :class:`PredictionSet`.

    Args:
        preds: the gathered ground truth and predictions.
        model: which model.
        spec: the evaluate section (slices, IoU and score thresholds).

    Returns:
        The evaluation.

    Raises:
        EvaluationError: empty split, duplicated image ids or unusable predictions.
    """
    if preds.task == "detection":
        return evaluate_detection_set(
            preds.ground_truth(),
            preds.detections(model),
            preds.metas,
            preds.label_map,
            slices=spec.slices,
            iou_threshold=spec.iou_threshold,
            score_threshold=spec.score_threshold,
        )
    if preds.task == "classification":
        return evaluate_classification_set(preds.labels(), preds.probabilities(model), preds.metas, preds.label_map, slices=spec.slices)
    return evaluate_segmentation_set(preds.segmentation(model), preds.metas, preds.label_map, slices=spec.slices)


def find_baseline(ctx: StepContext) -> tuple[Path, str] | None:
    """The baseline: the champion (the version holding ``registry.alias``), else the newest blessed one.

    Asks the registry the spec names (``Registry.holder`` of the alias push
    moves, then ``Registry.latest(name, blessed_only=True)``), so a rolled-back
    champion is what a candidate must match, and "last blessed" has one
    definition shared with push and the CLI.

    Args:
        ctx: the step context.

    Returns:
        ``(model_dir, "name:version")``, or None for a first model.
    """
    from components.registry import get_registry

    name = ctx.spec.model_name
    registry = get_registry(ctx.spec.registry, ctx.store)
    version = registry.holder(name, ctx.spec.registry.alias) or registry.latest(name, blessed_only=True)
    if version is None:
        return None
    if not Path(version.model_dir).exists():
        ctx.log.warning(
            "baseline %s: model directory %s is not reachable here; evaluating without a baseline", version.ref, version.model_dir
        )
        return None
    return Path(version.model_dir), version.ref


def _manifest_extras(ctx: StepContext, examples_uri: str) -> dict[str, tuple[str | None, dict[str, Any]]]:
    """Image id -> (split, source) from the manifest upstream of the examples (for user slices)."""
    try:
        ref = ctx.store.find_by_uri(examples_uri, "Examples")
        if ref is None:
            return {}
        for m in ctx.store.upstream(ref.id).of_kind("Manifest"):
            p = Path(m.uri)
            path = p / "manifest.json" if p.is_dir() else p
            if path.is_file():
                manifest = Manifest.load(path)
                return {r.image_id: (r.split, dict(r.source)) for r in manifest.images}
    except Exception as e:  # slices are a nicety; evaluation goes on without them
        ctx.log.warning("user slices unavailable: cannot read the manifest upstream of %s: %s", examples_uri, e)
    return {}


def _batches(examples_dir: Path, task: Task, batch_size: int) -> Iterator[list[dict[str, Any]]]:
    from components.core.examples import read_dataset

    batch: list[dict[str, Any]] = []
    for rec in read_dataset(examples_dir, TEST_SPLIT, task, decode_masks=False).as_numpy_iterator():
        batch.append(rec)
        if len(batch) >= batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def _tfma_features(preds: PredictionSet, spec: EvaluateSpec) -> dict[str, list[str]]:
    feats: dict[str, list[str]] = {}
    for f in ["image_size", *spec.slices]:
        values = [slice_value(m, f) for m in preds.metas]
        if all(v is not None for v in values):
            feats[f.removeprefix("source.")] = [str(v) for v in values]
    return feats


def run(
    ctx: StepContext,
    model_dir: Path,
    examples_dir: Path,
    evaluation_dir: Path,
    blessing_dir: Path,
    report_path: Path,
    *,
    baseline_model_dir: Path | None = None,
    baseline_id: str | None = None,
    lookup_baseline: bool = True,
    uris: ArtifactUris | Mapping[str, str] | None = None,
    batch_size: int = 16,
) -> EvaluationResult:
    """The evaluate step: predict, measure, compare, bless, report, record lineage.

    Args:
        ctx: the step context.
        model_dir: the candidate model directory (the train step's output).
        examples_dir: the examples directory (the transform step's output); its ``test`` split is used.
        evaluation_dir: output directory for ``evaluation.json`` (and ``tfma/``).
        blessing_dir: output directory for ``blessing.json``.
        report_path: the HTML report file (a directory gets ``report.html`` inside).
        baseline_model_dir: the baseline model directory; None looks it up with
            :func:`find_baseline` when ``lookup_baseline``.
        baseline_id: the baseline's id (``name:version``).
        lookup_baseline: look the baseline up in the registry when none is given.
        uris: artifact URIs by name (``model``, ``examples``, ``baseline_model``,
            ``evaluation``, ``blessing``); a missing one means the local path.
        batch_size: images per prediction call.

    Returns:
        The result, with the recorded artifacts.

    Raises:
        EvaluationError: the model's task differs from the spec's, the test split
            is empty, or predictions or ground truth are unusable.
    """
    from components.core.examples import load_index
    from components.core.predictor import Predictor

    spec = ctx.spec
    ev = spec.evaluate
    u = ArtifactUris.of(uris)
    if baseline_model_dir is None and lookup_baseline:
        found = find_baseline(ctx)
        if found is not None:
            baseline_model_dir, baseline_id = found
    index = load_index(examples_dir)
    task: Task = spec.task
    if TEST_SPLIT not in index.splits or index.splits[TEST_SPLIT].records == 0:
        raise EvaluationError(f"{examples_dir}: the test split is empty; nothing to evaluate (check transform.split.test)")
    predictors = {"candidate": Predictor.load(model_dir)}
    if baseline_model_dir is not None:
        predictors["baseline"] = Predictor.load(baseline_model_dir)
        baseline_id = baseline_id or str(baseline_model_dir)
    for name, p in predictors.items():
        if p.task != task:
            raise EvaluationError(f"{name} model {getattr(p, 'model_dir', '')} is a {p.task} model; the pipeline's task is {task}")
    log = ctx.log
    log.info(
        "evaluating %s on %d test images%s",
        model_dir,
        index.splits[TEST_SPLIT].records,
        f" against baseline {baseline_id}" if "baseline" in predictors else "",
    )
    manifest = _manifest_extras(ctx, u.get("examples", str(examples_dir))) if ev.slices else {}
    preds = PredictionSet(
        task=task,
        label_map=index.label_map,
        models=list(predictors),
        model_label_maps={k: p.label_map for k, p in predictors.items()},
        manifest=manifest,
    )
    from components.core.images import encode_png
    from components.core.log import progress

    for batch in progress(_batches(examples_dir, task, batch_size), None, "predicting", log):
        encoded = [encode_png(np.asarray(r["image"], dtype=np.uint8)) for r in batch]
        outputs = {k: p.predict(encoded, batch_size=batch_size) for k, p in predictors.items()}
        for i, rec in enumerate(batch):
            preds.add(rec, {k: out[i] for k, out in outputs.items()})

    candidate = evaluate_predictions(preds, "candidate", ev)
    baseline = evaluate_predictions(preds, "baseline", ev) if "baseline" in predictors else None
    evaluation_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}

    thresholds, default = (list(ev.thresholds), None) if ev.tfma_config else with_default_change(ev.thresholds, task)
    blessing = bless(candidate, thresholds, baseline, baseline_id)
    if default is not None:
        blessing.reasons.insert(0, default + (f" {baseline_id}" if baseline is not None else " (there is none yet)"))
    if ev.tfma_config:
        if task == "classification":
            tfma_dir = evaluation_dir / "tfma"
            tfma_blessing = bless_with_tfma(
                load_eval_config(ev.tfma_config),
                labels=preds.labels(),
                scores=preds.probabilities("candidate"),
                class_ids=preds.label_map.ids,
                output_path=tfma_dir,
                baseline_scores=preds.probabilities("baseline") if baseline is not None else None,
                features=_tfma_features(preds, ev),
                baseline_id=baseline_id,
            )
            blessing = combine_blessings(blessing, tfma_blessing) if thresholds else tfma_blessing
            paths["tfma"] = tfma_dir
        else:
            blessing = bless(candidate, [*thresholds, *thresholds_from_eval_config(ev.tfma_config)], baseline, baseline_id)

    paths["evaluation"] = atomic_write_json(
        evaluation_dir / EVALUATION_FILE,
        {
            "task": task,
            "split": TEST_SPLIT,
            "model": u.get("model", str(model_dir)),
            "baseline_id": baseline_id if baseline is not None else None,
            "candidate": candidate.model_dump(mode="json"),
            "baseline": baseline.model_dump(mode="json") if baseline is not None else None,
        },
    )
    paths["blessing"] = atomic_write_json(blessing_dir / BLESSING_FILE, blessing.model_dump(mode="json"))
    from components.core.tracking import log_evaluation

    log_evaluation(ctx.spec, ctx.run_id, candidate.metrics, blessing.blessed)
    report_file = report_path / REPORT_FILE if report_path.is_dir() else report_path
    html = render_report(
        candidate, blessing, baseline=baseline, samples=preds.report_samples, title=f"{spec.name}: evaluation of {model_dir.name}"
    )
    paths["report"] = atomic_write_html(report_file, html)
    log.info("%s = %s; %s", PRIMARY_METRIC[task], candidate.metrics.get(PRIMARY_METRIC[task]), "; ".join(blessing.reasons))

    inputs: dict[str, ArtifactRef | None] = {
        "model": ctx.input_artifact(u.get("model", os.fspath(model_dir)), "Model"),
        "examples": ctx.input_artifact(u.get("examples", os.fspath(examples_dir)), "Examples"),
        "baseline_model": ctx.input_artifact(u.get("baseline_model", os.fspath(baseline_model_dir)), "Model")
        if baseline_model_dir is not None
        else None,
    }
    primary = PRIMARY_METRIC[task]
    scalars = {k: v for k, v in candidate.metrics.items() if v is not None}
    artifacts = ctx.record(
        inputs,
        {
            "evaluation": NewArtifact(
                "ModelEvaluation",
                u.get("evaluation", os.fspath(evaluation_dir)),
                {
                    "task": task,
                    "num_images": candidate.num_images,
                    "primary_metric": primary,
                    primary: candidate.metrics.get(primary),
                    "metrics": scalars,
                    # the HTML report is a KFP output of its own (not an MLMD artifact): its path is
                    # recorded here so the console can serve it as part of this known artifact
                    "report": os.fspath(paths["report"]),
                },
            ),
            "blessing": NewArtifact(
                "ModelBlessing",
                u.get("blessing", os.fspath(blessing_dir)),
                {"blessed": blessing.blessed, "baseline_id": blessing.baseline_id or "", "reasons": blessing.reasons},
            ),
        },
        {"task": task, "num_images": candidate.num_images, "blessed": blessing.blessed, "baseline_id": blessing.baseline_id or ""},
    )
    return EvaluationResult(
        candidate=candidate,
        baseline=baseline,
        blessing=blessing,
        scalars=kfp_scalars(candidate, blessing),
        confusion=kfp_confusion(candidate),
        paths=paths,
        artifacts=artifacts,
    )

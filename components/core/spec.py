"""The declarative pipeline specification.

A platform engineer writes a :class:`PipelineSpec` in Python or YAML; cvpipe
compiles it into a KFP v2 DAG. Every section has defaults, so this is a
complete, runnable spec::

    name: demo-detector
    task: detection
    data: {source: data/coco/annotations.json}

:func:`load_spec` reports every problem at once with its key path
(``train.accelerator.count: must be >= 1``) through :class:`~components.core.errors.SpecError`.
"""

from __future__ import annotations

import copy
import difflib
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_serializer,
    field_validator,
    model_serializer,
    model_validator,
)

from .alert_config import AlertConfig
from .catalog import COUNT_METRICS, METRICS, PER_CLASS_METRICS, VALIDATION_KINDS
from .drift_config import DriftConfig
from .errors import SpecError
from .manifest import Task

__all__ = [
    "ARCHITECTURES",
    "METADATA_PASSWORD_ENV",
    "RETINANET_BACKBONES",
    "USER_STEP_POINTS",
    "AcceleratorSpec",
    "BeamSpec",
    "DataSpec",
    "DriftThresholds",
    "EvaluateSpec",
    "LiveMetricSpec",
    "MLflowTrackingSpec",
    "MetadataSpec",
    "MetricThreshold",
    "MonitoringSpec",
    "PipelineSpec",
    "RegistrySpec",
    "ResourceSpec",
    "RetrainSpec",
    "RuntimeSpec",
    "SamplingSpec",
    "ScheduleSpec",
    "ServingSpec",
    "TrackingSpec",
    "TrainSpec",
    "TransformSpec",
    "UserStepSpec",
    "ValidationSpec",
    "VertexJobSpec",
    "check_local_paths",
    "dump_spec",
    "is_function_ref",
    "load_spec",
    "name_problems",
    "parse_duration",
    "parse_spec",
    "url_has_password",
]

AnnotationFormat = Literal["coco", "voc", "yolo", "groundtruth", "folders"]

ARCHITECTURES: dict[str, tuple[str, ...]] = {
    "classification": ("mobilenet_v3_small", "efficientnet_b0"),
    "detection": ("compact_detector", "retinanet"),
    "segmentation": ("unet",),
}
"""Built-in architectures per task (``train.model``); the first is the default (``auto``)."""
RETINANET_BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet_tiny")
"""keras-hub ResNet backbones ``train.backbone`` may name for ``retinanet`` (the first is the default)."""
_FUNCTION_REF = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def is_function_ref(value: str) -> bool:
    """Whether a ``train.model`` / ``train.run_fn`` value names a user function (``package.module:function``).

    Args:
        value: the spec value.

    Returns:
        True for ``module:function`` references.
    """
    return ":" in value


Policy = Literal["fail", "warn", "quarantine"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataSpec(_Section):
    """Where the annotated images are and how they are annotated.

    Attributes:
        source: the annotation file (COCO JSON, Ground Truth manifest, YOLO
            data.yaml) or directory (Pascal VOC, class folders).
        format: annotation format; inferred from ``source`` when omitted.
        images: directory image paths are relative to (default: beside ``source``).
        label_map: a fixed label map JSON file: its ids are used as they are, and a
            class the data names that is not in it is quarantined.
        label_attribute: SageMaker Ground Truth label attribute name (the key beside
            ``source-ref``); detected from the manifest when omitted.
        max_quarantine_fraction: the run fails when more images than this are rejected.
        max_quarantine_count: the run fails when more images than this are rejected.
        allow_outside_root: read images outside the dataset root: symlinks that
            leave it, a YOLO ``data.yaml`` ``path:`` elsewhere and absolute image
            paths elsewhere (datasets on shared storage that rely on links). Off
            by default: such images are quarantined as ``path_escapes_root``, so
            an annotation file cannot pull any readable file of the machine into
            the training data. ``../`` in a file name is never followed.
    """

    source: str
    format: AnnotationFormat | None = None
    images: str | None = None
    label_map: str | None = None
    label_attribute: str | None = None
    max_quarantine_fraction: float = Field(0.2, ge=0.0, le=1.0)
    max_quarantine_count: int | None = Field(None, ge=0)
    allow_outside_root: bool = False

    @model_validator(mode="after")
    def _infer_format(self) -> DataSpec:
        if self.format is None:
            object.__setattr__(self, "format", infer_format(self.source))
        return self

    @model_serializer(mode="wrap")
    def _omit_default_root_rule(self, handler: SerializerFunctionWrapHandler) -> Any:
        # a spec that keeps the default root rule serialises as before (compiled pipelines unchanged)
        data = handler(self)
        if isinstance(data, dict) and data.get("allow_outside_root") is False:
            data.pop("allow_outside_root", None)
        return data


def infer_format(source: str) -> AnnotationFormat:
    """Guesses the annotation format from a source path.

    Args:
        source: annotation file or directory.

    Returns:
        The format.
    """
    s = source.lower()
    if s.endswith((".yaml", ".yml")):
        return "yolo"
    if s.endswith((".manifest", ".jsonl")):
        return "groundtruth"
    if s.endswith(".json"):
        return "coco"
    p = Path(source)
    if p.is_dir() and (any(p.glob("*.xml")) or (p / "Annotations").is_dir()):
        return "voc"
    return "folders"


class DriftThresholds(_Section):
    """Dataset drift thresholds against the previous dataset version (TFDV comparators).

    Attributes:
        categorical_linf: L-infinity distance threshold for categorical features (class).
        numeric_jensen_shannon: Jensen-Shannon divergence threshold for numeric features.
    """

    categorical_linf: float = Field(0.3, gt=0.0, le=1.0)
    numeric_jensen_shannon: float = Field(0.3, gt=0.0, le=1.0)


class ValidationSpec(_Section):
    """Data validation policy.

    Attributes:
        policy: per anomaly kind: ``fail`` the run, ``warn``, or ``quarantine`` the item.
            Kinds not listed use ``default_policy``.
        default_policy: policy for kinds not listed.
        min_examples_per_class: classes with fewer examples are an anomaly.
        schema_file: a curated TFDV schema (text proto) to validate against.
        drift: thresholds for drift against the previous dataset version.
        max_pixels: header size limit (decompression-bomb guard).
    """

    policy: dict[str, Policy] = Field(default_factory=dict)
    default_policy: Policy = "quarantine"
    min_examples_per_class: int = Field(12, ge=0)
    schema_file: str | None = None
    drift: DriftThresholds = Field(default_factory=DriftThresholds)
    max_pixels: int = Field(8192 * 8192, ge=1)


class SplitSpec(_Section):
    """Fractions of the deterministic, content-hash split.

    Attributes:
        train: fraction for training.
        validation: fraction for validation.
        test: fraction for test.
    """

    train: float = Field(0.8, ge=0.0, le=1.0)
    validation: float = Field(0.1, ge=0.0, le=1.0)
    test: float = Field(0.1, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _sum(self) -> SplitSpec:
        total = self.train + self.validation + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"split fractions must add up to 1 (they add up to {total:g})")
        return self


class TransformSpec(_Section):
    """TFRecord transform options.

    Attributes:
        split: split fractions.
        image_size: resize to ``[height, width]`` (boxes and masks scaled); None keeps sizes.
        shard_size_mb: target shard size.
        gzip: GZIP-compress shards.
        balance_classes: oversample rare classes in the training split.
        num_workers: worker processes (0: one per core).
    """

    split: SplitSpec = Field(default_factory=SplitSpec)
    image_size: tuple[int, int] | None = None
    shard_size_mb: float = Field(64.0, gt=0.0)
    gzip: bool = False
    balance_classes: bool = False
    num_workers: int = Field(0, ge=0)

    @field_validator("image_size")
    @classmethod
    def _positive(cls, v: tuple[int, int] | None) -> tuple[int, int] | None:
        if v is not None and (v[0] < 1 or v[1] < 1):
            raise ValueError("must be two positive integers [height, width]")
        return v


class AcceleratorSpec(_Section):
    """Accelerator for training; lands on the KFP task.

    Attributes:
        type: ``cpu``, ``gpu`` or ``tpu``.
        kind: the accelerator type KFP/Vertex know (``NVIDIA_TESLA_T4``, ``NVIDIA_L4``, ``TPU_V5_LITEPOD``...).
        count: how many.
    """

    type: Literal["cpu", "gpu", "tpu"] = "cpu"
    kind: str | None = None
    count: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _default_kind(self) -> AcceleratorSpec:
        if self.kind is None and self.type == "gpu":
            object.__setattr__(self, "kind", "NVIDIA_TESLA_T4")
        if self.kind is None and self.type == "tpu":
            object.__setattr__(self, "kind", "TPU_V5_LITEPOD")
        return self


class TunerSpec(_Section):
    """Optional KerasTuner hyperparameter search.

    Attributes:
        enabled: run the search before the final training.
        max_trials: trials to run.
        learning_rates: candidate learning rates.
    """

    enabled: bool = False
    max_trials: int = Field(4, ge=1)
    learning_rates: list[float] = Field(default_factory=lambda: [1e-2, 3e-3, 1e-3])


class VertexJobSpec(_Section):
    """Where a multi-worker training run goes as a Vertex AI custom job (``train.vertex_job``).

    The train task becomes a launcher: it submits a ``CustomJob`` whose worker pools
    (:func:`components.train.multiworker.vertex_worker_pool_specs`: the chief, then
    ``train.workers - 1`` workers) run cvpipe's train step in ``image``, waits for it, and
    reads what the chief wrote. The task's inputs and outputs must be on storage every
    replica sees at the same path (``/gcs/...`` on Vertex AI Pipelines).

    Attributes:
        project: Google Cloud project.
        region: Vertex AI region.
        staging_bucket: ``gs://`` bucket (and prefix) for the job's base output directory.
        machine_type: machine of every replica.
        accelerator_type: e.g. ``NVIDIA_TESLA_T4`` (None: CPU replicas).
        accelerator_count: accelerators per replica.
        image: the replicas' image (default: ``runtime.image``).
        service_account: IAM service account the replicas run as (default: the project's).
        api_endpoint: Vertex AI API endpoint (default: the region's; ``http://`` for a local server).
        token_env: environment variable holding an OAuth access token (default: application
            default credentials, as on Vertex AI Pipelines).
    """

    project: str = Field(min_length=1)
    region: str = Field(min_length=1)
    staging_bucket: str = Field(pattern=r"^gs://[^/]+")
    machine_type: str = "n1-standard-8"
    accelerator_type: str | None = None
    accelerator_count: int = Field(0, ge=0)
    image: str | None = None
    service_account: str | None = None
    api_endpoint: str | None = None
    token_env: str | None = None

    @model_validator(mode="after")
    def _accelerator(self) -> VertexJobSpec:
        if self.accelerator_type and self.accelerator_count < 1:
            raise ValueError(f"train.vertex_job.accelerator_type {self.accelerator_type} needs accelerator_count >= 1")
        return self


class TrainSpec(_Section):
    """Training options.

    Attributes:
        model: architecture name (``mobilenet_v3_small``, ``efficientnet_b0``, ``compact_detector``,
            ``retinanet``, ``unet``), ``auto`` for the task's default, or a user build function
            ``"package.module:function"`` (see docs/train.md, "Your own model").
        backbone: RetinaNet's keras-hub ResNet backbone (``resnet18`` when unset; ``resnet34``,
            ``resnet50``, ``resnet_tiny``); only for ``model: retinanet``.
        hyperparameters: free-form values handed to a user build function or ``run_fn``
            (and architecture options such as ``dropout`` and ``neck_width``).
        run_fn: a user training function ``"package.module:run_fn"`` that replaces cvpipe's
            training loop (TFX Trainer style) and writes a SavedModel with cvpipe's serving signature.
        epochs: maximum epochs.
        batch_size: global batch size.
        learning_rate: initial learning rate.
        image_size: model input ``[height, width]``.
        accelerator: accelerator type and count.
        parent: registry model to warm-start from (``name:version`` or ``name@alias``).
        pretrained_weights: a weights file to initialise the backbone from; for ``retinanet`` a
            keras-hub preset directory (local or ``gs://``) loaded with ``from_preset`` (never downloaded).
        early_stopping_patience: epochs without validation-loss improvement before stopping.
        checkpoint_every_steps: checkpoint interval.
        workers: training processes in sync under ``MultiWorkerMirroredStrategy`` (default 1).
            In a local run with ``N > 1`` and no ``TF_CONFIG`` set, the train step starts
            ``N - 1`` worker processes of cvpipe's trainer on 127.0.0.1 and trains as the chief
            (only the chief writes the model and the checkpoints that count); under a
            ``TF_CONFIG`` set by the platform (Vertex AI or Kubeflow replicas) each process
            trains as its index says. Not with ``tuner.enabled`` or ``run_fn`` (docs/scaling.md).
        vertex_job: run the ``workers`` as a Vertex AI custom job instead of local processes
            (:class:`VertexJobSpec`; needs ``workers >= 2``).
        tuner: optional hyperparameter search.
        export_tflite: also export TFLite models (``float16``, ``int8``).
        seed: random seed.
    """

    model: str = "auto"
    backbone: str | None = None
    hyperparameters: dict[str, float | int | str | bool] = Field(default_factory=dict)
    run_fn: str | None = None
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(16, ge=1)
    learning_rate: float = Field(1e-3, gt=0.0)
    image_size: tuple[int, int] = (128, 128)
    accelerator: AcceleratorSpec = Field(default_factory=AcceleratorSpec)
    parent: str | None = None
    pretrained_weights: str | None = None
    early_stopping_patience: int = Field(5, ge=1)
    checkpoint_every_steps: int = Field(50, ge=1)
    workers: int = Field(1, ge=1)
    vertex_job: VertexJobSpec | None = None
    tuner: TunerSpec = Field(default_factory=TunerSpec)
    export_tflite: list[Literal["float16", "int8"]] = Field(default_factory=list)
    seed: int = 0

    @model_validator(mode="after")
    def _user_code(self) -> TrainSpec:
        for key in ("model", "run_fn"):
            value = getattr(self, key)
            if value and is_function_ref(value) and not _FUNCTION_REF.match(value):
                raise ValueError(f"train.{key} {value!r}: a user function is named 'package.module:function'")
        if self.run_fn is not None:
            if not is_function_ref(self.run_fn):
                raise ValueError(f"train.run_fn {self.run_fn!r}: name the function as 'package.module:run_fn'")
            if self.tuner.enabled:
                raise ValueError("train.run_fn replaces cvpipe's training loop: tuner.enabled needs cvpipe's loop (tune inside run_fn)")
            if self.export_tflite:
                raise ValueError("train.run_fn: export_tflite needs cvpipe's Keras model; convert inside run_fn")
            if self.workers > 1:
                raise ValueError(f"train.workers {self.workers}: train.run_fn trains in one process (it gets the strategy; set workers: 1)")
        if self.vertex_job is not None and self.workers < 2:
            raise ValueError("train.vertex_job runs multi-worker training: set train.workers to 2 or more")
        if self.workers > 1 and self.tuner.enabled:
            raise ValueError(f"train.workers {self.workers}: the tuner runs in one process; set workers: 1 with tuner.enabled")
        retina = self.model.strip().lower() == "retinanet"
        if self.backbone is not None and not retina:
            raise ValueError(f"train.backbone {self.backbone!r} applies to model: retinanet only")
        if self.backbone is not None and self.backbone not in RETINANET_BACKBONES:
            raise ValueError(f"train.backbone {self.backbone!r}: choose one of {', '.join(RETINANET_BACKBONES)}")
        if retina and self.export_tflite:
            raise ValueError("train.export_tflite is not available for retinanet (its decoding is not TFLite-ready here)")
        return self

    @model_serializer(mode="wrap")
    def _omit_single_process(self, handler: SerializerFunctionWrapHandler) -> Any:
        # a spec without `workers` serialises as before (compiled pipelines and their golden files unchanged)
        data = handler(self)
        if isinstance(data, dict) and data.get("workers") == 1:
            data.pop("workers", None)
        if isinstance(data, dict) and data.get("vertex_job", 0) is None:
            data.pop("vertex_job", None)
        return data


class ChangeThreshold(_Section):
    """A change threshold against the baseline model (TFX GenericChangeThreshold).

    Attributes:
        direction: ``higher_is_better`` or ``lower_is_better``.
        absolute: largest allowed degradation in absolute terms (``0.01``: may be 0.01 worse than
            the baseline; a negative value demands an improvement: ``-0.05`` must beat it by 0.05).
            TFMA's signed ``absolute`` bounds are the negation of this.
        relative: largest allowed degradation relative to the baseline value.
    """

    direction: Literal["higher_is_better", "lower_is_better"] = "higher_is_better"
    absolute: float | None = None
    relative: float | None = None


class MetricThreshold(_Section):
    """Threshold for one metric (TFX-style value and change thresholds).

    Attributes:
        metric: metric name (``map``, ``map_50``, ``mean_iou``, ``f1_macro``, ``accuracy``...).
        lower: value must be >= lower.
        upper: value must be <= upper.
        change: change threshold against the baseline.
    """

    metric: str
    lower: float | None = None
    upper: float | None = None
    change: ChangeThreshold | None = None


class EvaluateSpec(_Section):
    """Evaluation and blessing.

    Attributes:
        thresholds: metric thresholds (names checked against the task's metrics); with no
            change threshold the evaluate step adds the default blessing: not worse than the
            champion on the task's primary metric (blessed when there is no champion).
        slices: extra manifest fields to slice metrics by.
        tfma_config: a TFMA EvalConfig (text proto or JSON) for classification models.
        iou_threshold: IoU for the confusion matrix and F1 of detections.
        score_threshold: score a detection must reach to count in F1 and the confusion matrix.
    """

    thresholds: list[MetricThreshold] = Field(default_factory=list)
    slices: list[str] = Field(default_factory=list)
    tfma_config: str | None = None
    iou_threshold: float = Field(0.5, gt=0.0, le=1.0)
    score_threshold: float = Field(0.3, ge=0.0, le=1.0)


class RegistrySpec(_Section):
    """Where blessed models are pushed.

    Attributes:
        backend: ``local`` (embedded), ``vertex`` or ``mlflow``.
        model_name: registry model name (default: the pipeline name).
        root: local registry directory.
        project: Vertex AI project.
        region: Vertex AI region.
        tracking_uri: MLflow tracking server (``http://host:5000``) holding the model registry.
        alias: alias moved to the new version on push.
    """

    backend: Literal["local", "vertex", "mlflow"] = "local"
    model_name: str | None = None
    root: str = "registry"
    project: str | None = None
    region: str | None = None
    tracking_uri: str | None = None
    alias: str = "champion"


class MLflowTrackingSpec(_Section):
    """An MLflow tracking server that training runs are logged to.

    Attributes:
        tracking_uri: the tracking server (``http://host:5000``).
        experiment: the MLflow experiment (default: the pipeline name).
    """

    tracking_uri: str
    experiment: str | None = None


class TrackingSpec(_Section):
    """Experiment tracking besides cvpipe's own reports (optional; a server that is down never fails a run).

    Attributes:
        mlflow: log training runs to MLflow.
    """

    mlflow: MLflowTrackingSpec | None = None


class ScheduleSpec(_Section):
    """Recurring runs.

    Attributes:
        cron: five-field cron expression.
        timezone: IANA time zone.
    """

    cron: str
    timezone: str = "UTC"

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        from croniter import croniter

        if not croniter.is_valid(v):
            raise ValueError(f"not a valid cron expression: {v!r}")
        return v


_DURATION_RE = re.compile(r"^\s*(?:(\d+)\s*d)?\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?\s*(?:(\d+)\s*s)?\s*$")


def parse_duration(text: str) -> timedelta:
    """Reads a duration such as ``24h``, ``7d``, ``1h30m`` or ``90s``.

    Args:
        text: days (``d``), hours (``h``), minutes (``m``) and seconds (``s``), in that order.

    Returns:
        The duration.

    Raises:
        ValueError: the text is not a positive duration.
    """
    m = _DURATION_RE.match(text or "")
    if not m or not any(m.groups()):
        raise ValueError(f"not a duration: {text!r} (write e.g. 24h, 7d, 1h30m or 90s)")
    d, h, mi, s = (int(g or 0) for g in m.groups())
    out = timedelta(days=d, hours=h, minutes=mi, seconds=s)
    if out.total_seconds() <= 0:
        raise ValueError(f"a duration must be positive, got {text!r}")
    return out


def _check_duration(v: str) -> str:
    parse_duration(v)
    return v


def _nested_problems(err: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {str(e['msg']).removeprefix('Value error, ')}" for e in err.errors()
    )


class LiveMetricSpec(_Section):
    """A live metric compared with the blessed evaluation of the model in production.

    The metric is measured on the uniformly sampled ("random") share of the
    labelled production images, with a confidence interval; it is a
    degradation only when the interval's upper bound is below
    ``blessed value - max_drop``.

    Attributes:
        metric: an evaluation metric name (``precision``, ``recall``, ``accuracy``,
            ``map_50``, ``precision@class=NAME``...); proportions get Wilson intervals,
            the others a bootstrap over images.
        max_drop: the largest tolerated absolute drop below the blessed value.
        severity: severity of the degradation alert.
    """

    metric: str = Field(min_length=1)
    max_drop: float = Field(0.05, ge=0.0, le=1.0)
    severity: Literal["critical", "error", "warning", "info"] = "error"


class SamplingSpec(_Section):
    """Which logged predictions go to people for labelling.

    Attributes:
        per_class: images per predicted class (so rare classes get labels).
        uncertain: images the model was least sure about.
        random_share: share of the batch drawn uniformly from the window (the only
            share live metrics are estimated on: it is an unbiased sample of production).
        max_items: the batch's size limit.
        seed: random seed of the draws.
    """

    per_class: int = Field(5, ge=0)
    uncertain: int = Field(10, ge=0)
    random_share: float = Field(0.5, ge=0.0, le=1.0)
    max_items: int = Field(100, ge=1)
    seed: int = 0


RetrainCause = Literal["drift", "degradation"]
_RETRAIN_CAUSES: tuple[RetrainCause, ...] = ("drift", "degradation")


class RetrainSpec(_Section):
    """What a drift or degradation alert starts: the training pipeline on the data plus the new labels.

    Attributes:
        enabled: start retraining at all.
        on: which alerts start it: ``drift``, ``degradation``.
        target: ``local`` (run_local in a subprocess), ``kubeflow`` or ``vertex``.
        cooldown: after a trigger, the same alert does not trigger again for this long.
        warm_start: the retraining warm-starts from the production model (its ``train.parent``
            becomes the production version, ``name:version``), so the registry's fork tree
            shows each retrained model as a child of the one it replaced; false keeps
            ``train.parent`` as the spec says (from scratch when unset).
        wait: wait for the retraining run to finish (a local run; the scheduler and the demo use it).
        host: Kubeflow Pipelines API endpoint (``target: kubeflow``).
        namespace: Kubeflow profile namespace.
        token_env: environment variable holding a Kubeflow bearer token.
        project: Google Cloud project (``target: vertex``).
        region: Vertex AI region.
        pipeline_root: ``gs://`` pipeline root for Vertex AI.
        settings: a Vertex AI settings file (``infra/vertex/settings.yaml``).
        api_endpoint: Vertex AI API endpoint (default: the region's).
        service_account: the service account the retraining run uses (Kubernetes SA on Kubeflow,
            IAM service account on Vertex AI).
    """

    enabled: bool = True
    on: list[RetrainCause] = Field(default_factory=lambda: list(_RETRAIN_CAUSES))
    target: Literal["local", "kubeflow", "vertex"] = "local"
    cooldown: str = "24h"
    warm_start: bool = True
    wait: bool = False
    host: str | None = None
    namespace: str | None = None
    token_env: str | None = None
    project: str | None = None
    region: str | None = None
    pipeline_root: str | None = None
    settings: str | None = None
    api_endpoint: str | None = None
    service_account: str | None = None

    @field_validator("cooldown")
    @classmethod
    def _cooldown(cls, v: str) -> str:
        return _check_duration(v)

    @model_validator(mode="after")
    def _target(self) -> RetrainSpec:
        if self.target == "kubeflow" and not self.host:
            raise ValueError("target kubeflow needs host (the Kubeflow Pipelines API endpoint)")
        if self.target == "vertex" and not self.settings and not (self.project and self.region):
            raise ValueError("target vertex needs project and region (or a settings file)")
        return self


class MonitoringSpec(_Section):
    """Continuous evaluation of the model in production (the ``monitoring`` section).

    Attributes:
        window: how much of the prediction log one evaluation reads (``24h``, ``7d``...),
            ending at the run's start.
        model_alias: the registry alias of the model in production.
        prediction_log: the Feast repository of the prediction log (default:
            ``<runtime.root>/prediction_log``).
        labels: a directory of labelled exports (Label Studio JSON) to import, if any.
        reference_samples: training images the drift reference is built from (statistics,
            class mix and embeddings of the production model on them).
        drift: drift thresholds (:class:`~components.core.drift_config.DriftConfig`).
        live_metrics: metrics compared with the blessed evaluation (default per task:
            detection ``precision``, ``recall`` and ``map_50``; classification ``accuracy``).
        confidence: confidence level of the intervals.
        min_labelled: fewer labelled random-share images than this is ``not_enough_data``.
        bootstrap: bootstrap replicates for metrics that are not proportions (mAP, F1).
        sampling: the labelling batch.
        alerts: where alerts go (:class:`~components.core.alert_config.AlertConfig`; secrets only by
            environment variable name); a relative log path is under ``runtime.root``.
        runbook_url: the runbook's base URL (a team's own copy of docs/runbook.md); each incident
            links its cause's section (default: docs/runbook.md of the checkout).
        retrain: what an alert starts.
        pushgateway: a Prometheus Pushgateway URL each evaluation pushes its metrics to (they are
            always written as ``metrics.prom`` beside the run).
    """

    window: str = "24h"
    model_alias: str = "champion"
    prediction_log: str | None = None
    labels: str | None = None
    reference_samples: int = Field(200, ge=10)
    drift: DriftConfig = Field(default_factory=DriftConfig)
    live_metrics: list[LiveMetricSpec] = Field(default_factory=list)
    confidence: float = Field(0.95, gt=0.5, lt=1.0)
    min_labelled: int = Field(30, ge=0)
    bootstrap: int = Field(200, ge=0)
    sampling: SamplingSpec = Field(default_factory=SamplingSpec)
    alerts: AlertConfig = Field(default_factory=AlertConfig)
    runbook_url: str | None = None
    retrain: RetrainSpec = Field(default_factory=RetrainSpec)
    pushgateway: str | None = None

    @field_validator("window")
    @classmethod
    def _window(cls, v: str) -> str:
        return _check_duration(v)

    # the drift and alerts sections as the spec file wrote them: serialised back unchanged
    # (compiled pipelines and their golden files keep the user's keys, not every default)
    _written: dict[str, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _keep_written(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        spec = handler(data)
        if isinstance(data, dict) and isinstance(spec, MonitoringSpec):
            spec._written = {k: copy.deepcopy(data[k]) for k in ("drift", "alerts") if isinstance(data.get(k), dict)}
        return spec

    @field_validator("drift", "alerts", mode="wrap")
    @classmethod
    def _one_problem(cls, v: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        # one problem per section, listing its fields' problems (as before these sections were typed)
        try:
            return handler(v)
        except ValidationError as e:
            raise ValueError(_nested_problems(e)) from None

    @field_serializer("drift", "alerts")
    def _as_written(self, value: DriftConfig | AlertConfig, info: Any) -> Any:
        written = self._written.get(info.field_name)
        if written is not None and type(value).model_validate(written) == value:
            return copy.deepcopy(written)
        return value.model_dump(mode="json", exclude_unset=True)

    @property
    def window_delta(self) -> timedelta:
        """``window`` as a duration."""
        return parse_duration(self.window)

    def drift_config(self) -> DriftConfig:
        """The drift thresholds (the ``drift`` section)."""
        return self.drift

    def alert_config(self, root: str | os.PathLike[str]) -> AlertConfig:
        """The alerting configuration, relative paths under ``root``.

        Args:
            root: the run root (``runtime.root``).

        Returns:
            The configuration.
        """
        cfg = self.alerts
        updates: dict[str, Any] = {}
        if not os.path.isabs(cfg.log):
            updates["log"] = str(Path(root) / cfg.log)
        if cfg.state_file and not os.path.isabs(cfg.state_file):
            updates["state_file"] = str(Path(root) / cfg.state_file)
        return cfg.model_copy(update=updates) if updates else cfg

    def log_dir(self, root: str | os.PathLike[str]) -> Path:
        """The prediction log's Feast repository.

        Args:
            root: the run root (``runtime.root``), for the default.

        Returns:
            The directory.
        """
        return Path(self.prediction_log) if self.prediction_log else Path(root) / "prediction_log"


def url_has_password(url: str) -> bool:
    """Whether a URL carries a password in its user information (``scheme://user:password@host``).

    Args:
        url: the URL.

    Returns:
        True when a password (even an empty one) is given.
    """
    netloc = url.split("://", 1)[1].split("/", 1)[0] if "://" in url else ""
    return "@" in netloc and ":" in netloc.rsplit("@", 1)[0]


METADATA_PASSWORD_ENV = "CVPIPE_MLMD_PASSWORD"
"""The environment variable the MySQL password is read from unless the spec names another."""


class MetadataSpec(_Section):
    """The ML Metadata store.

    A MySQL password never appears in the spec: the spec's sections are the default values of
    every compiled pipeline's parameters and the arguments of every
    task, so a password in it would land in the compiled YAML, in command lines
    any local user can read (``ps``) and in derived spec files. The password is
    read, when the store is opened, from the file ``password_file`` names (a
    mounted Kubernetes or Docker secret) or else from the environment variable
    ``password_env`` names; child processes (kfp.local tasks, the retraining
    process) inherit the variable or read the file themselves.

    Attributes:
        url: ``sqlite:///path/mlmd.sqlite`` (default, relative to the run root) or
            ``mysql://user@host:port/database`` (no password: one is refused).
        password_env: environment variable holding the MySQL password.
        password_file: file holding the MySQL password (wins over ``password_env``;
            surrounding whitespace is stripped; a relative path is resolved against the spec's folder).
    """

    url: str = "sqlite:///mlmd.sqlite"
    password_env: str = Field(METADATA_PASSWORD_ENV, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    password_file: str | None = None

    @field_validator("url")
    @classmethod
    def _scheme(cls, v: str) -> str:
        if not re.match(r"^(sqlite|mysql)://", v):
            raise ValueError("must start with sqlite:// or mysql://")
        if url_has_password(v):
            # the message must not repeat the value
            raise ValueError(
                "must not contain a password (it would be copied into compiled pipelines, task command lines and "
                "derived specs): write mysql://user@host:port/db and put the password in the environment variable "
                f"named by runtime.metadata.password_env (default {METADATA_PASSWORD_ENV}) or in a file named by "
                "runtime.metadata.password_file"
            )
        return v

    @model_serializer(mode="wrap")
    def _omit_defaults(self, handler: SerializerFunctionWrapHandler) -> Any:
        # a spec that names no password source serialises as before (compiled pipelines and their golden files unchanged)
        data = handler(self)
        if isinstance(data, dict):
            if data.get("password_env") == METADATA_PASSWORD_ENV:
                data.pop("password_env")
            if data.get("password_file") is None:
                data.pop("password_file", None)
        return data


class ResourceSpec(_Section):
    """Resources of one KFP task.

    Attributes:
        cpu: CPU limit (``"2"``, ``"500m"``).
        memory: memory limit (``"8G"``).
        retries: retries on failure.
        backoff: first retry delay (``"30s"``).
        node_selector: node labels (for GPU/TPU pools).
        caching: KFP caching for the task.
    """

    cpu: str | None = None
    memory: str | None = None
    retries: int = Field(0, ge=0)
    backoff: str = "30s"
    node_selector: dict[str, str] = Field(default_factory=dict)
    caching: bool = False


BeamRunner = Literal[
    "DirectRunner", "DataflowRunner", "FlinkRunner", "SparkRunner", "PortableRunner", "apache_beam.runners.dask.dask_runner.DaskRunner"
]
"""Beam runners by name; Beam's Dask runner is named by its full class path (Beam knows no short name for it)."""


class BeamSpec(_Section):
    """Apache Beam for the data-parallel steps: TFDV statistics in validate, TFRecord writing in transform.

    Both steps give the same output as their local path (the same per-record
    functions run inside the Beam transforms). Runners other than
    ``DirectRunner`` need the step's input images and output directory on a
    filesystem their workers see at the same path.

    Attributes:
        runner: the Beam runner.
        options: further pipeline options by flag name without dashes
            (``direct_num_workers: 4``, ``direct_running_mode: multi_processing``,
            ``project``, ``region``, ``temp_location: gs://...``, ``flink_master``,
            ``dask_client_address: tcp://...``...).
    """

    runner: BeamRunner = "DirectRunner"
    options: dict[str, str | int | float | bool | list[str]] = Field(default_factory=dict)


class RuntimeSpec(_Section):
    """Where and how the pipeline runs.

    Attributes:
        root: run root for local runs (run folders, MLMD file, registry).
        image: container image of the components (cluster runs).
        pipeline_root: pipeline root for cluster runs (``gs://...``).
        metadata: the ML Metadata store.
        resources: per-component resources (keys: component names, ``default``).
        beam: run validate's statistics and transform on Apache Beam (None: the local path).
        local_runner: how ``cvpipe run`` and the other local runs execute tasks: ``subprocess``
            (in this Python environment) or ``docker`` (each task in ``image`` through the
            Docker API ``DOCKER_HOST`` names, as on a cluster; docs/cluster.md).
    """

    root: str = "runs"
    image: str = "cvpipe:0.1.0"
    pipeline_root: str | None = None
    metadata: MetadataSpec = Field(default_factory=MetadataSpec)
    resources: dict[str, ResourceSpec] = Field(default_factory=dict)
    beam: BeamSpec | None = None
    local_runner: Literal["subprocess", "docker"] = "subprocess"

    @model_serializer(mode="wrap")
    def _omit_no_beam(self, handler: SerializerFunctionWrapHandler) -> Any:
        # a spec without `beam` or `local_runner` serialises as before (compiled pipelines and their golden files unchanged)
        data = handler(self)
        if isinstance(data, dict):
            if data.get("beam") is None:
                data.pop("beam", None)
            if data.get("local_runner") == "subprocess":
                data.pop("local_runner", None)
        return data


class ServingSpec(_Section):
    """How ``cvpipe serve`` batches, answers, logs and bounds requests (the ``serving`` section).

    Attributes:
        max_batch_size: images gathered into one model call at most.
        max_batch_wait_ms: how long the first image of a batch waits for more.
        max_queue: requests admitted at once (reading their body, decoding, waiting
            for or in a model call); beyond it the answer is 503 with ``Retry-After``.
        score_threshold: detection boxes below this score are left out of answers
            (every box is still logged for evaluation).
        max_detections: most boxes per image in an answer (highest scores first).
        log_roll_rows: write-ahead rows per prediction-log part file at most.
        log_roll_seconds: a part file at least this often while traffic flows.
        follow_seconds: how often ``name@alias`` is checked for a new version.
        max_body_mb: largest request body (413 above it).
        max_instances: images per request at most (413 above it).
        max_request_megapixels: decoded pixels per request at most (413 above it).
        max_inflight_megapixels: decoded pixels held by all requests at once (503 above it).
        max_connections: open connections at most (503 above it).
        header_timeout_s: a connection must send its request headers within this (closed after it).
        body_timeout_s: a request must send its whole body within this (408 after it).
        drain_timeout_s: on SIGTERM, how long requests in flight get to finish.
    """

    max_batch_size: int = Field(16, ge=1, le=1024)
    max_batch_wait_ms: float = Field(5.0, ge=0.0, le=10_000.0)
    max_queue: int = Field(128, ge=1)
    score_threshold: float = Field(0.3, ge=0.0, le=1.0)
    max_detections: int = Field(100, ge=1)
    log_roll_rows: int = Field(10_000, ge=1)
    log_roll_seconds: float = Field(60.0, gt=0.0)
    follow_seconds: float = Field(10.0, gt=0.0)
    max_body_mb: float = Field(32.0, gt=0.0)
    max_instances: int = Field(64, ge=1)
    max_request_megapixels: float = Field(64.0, gt=0.0)
    max_inflight_megapixels: float = Field(256.0, gt=0.0)
    max_connections: int = Field(256, ge=1)
    header_timeout_s: float = Field(10.0, gt=0.0)
    body_timeout_s: float = Field(30.0, gt=0.0)
    drain_timeout_s: float = Field(30.0, gt=0.0)


USER_STEP_POINTS: tuple[str, ...] = ("ingest", "validate", "transform", "train", "evaluate")
"""The built-in steps a user step may follow (``steps[].after``)."""

_FUNCTION_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$", re.ASCII)

_BUILTIN_STEP_NAMES = frozenset(
    (
        *("ingest", "validate", "transform", "train", "evaluate", "push"),
        *(f"user-step-after-{p}" for p in USER_STEP_POINTS),
        *("read-window", "sample", "import-labels", "live-metrics", "drift", "alert", "trigger"),
    )
)


class UserStepSpec(_Section):
    """A step of the user's own in the training pipeline (docs/steps.md).

    Either a plain Python function decorated with ``@cvpipe.step``
    (``function: "mypackage.gates:near_duplicates"``), which cvpipe runs in a
    generic task of its own, or a KFP component of the user's, compiled to
    YAML (``component: "gates/component.yaml"``). It runs after the built-in
    step named by ``after`` and receives that step's artifacts; the next
    built-in step waits for it, so a step that vetoes (or fails) stops the run
    before anything downstream runs or pushes.

    Attributes:
        name: the step's name: the KFP task name, the lineage execution type,
            the name ``cvpipe run`` shows (lowercase letters, digits, dashes).
        after: the built-in step it follows: ingest, validate, transform, train or evaluate.
        function: ``"package.module:function"``, a ``@cvpipe.step`` function importable
            where the pipeline runs (installed in the image on a cluster).
        component: a KFP component YAML file; its inputs are matched by name with the
            artifacts available after ``after`` and with ``params``.
        params: keyword arguments of the function, or parameter inputs of the component (JSON values).
        description: free text.
    """

    name: str = Field(pattern=r"^[a-z]([a-z0-9-]{0,46}[a-z0-9])?$")
    after: Literal["ingest", "validate", "transform", "train", "evaluate"]
    function: str | None = None
    component: str | None = None
    params: dict[str, JsonValue] = Field(default_factory=dict)
    description: str = ""

    @field_validator("function")
    @classmethod
    def _dotted(cls, v: str | None) -> str | None:
        if v is not None and not _FUNCTION_PATH.match(v):
            raise ValueError(f'{v!r} is not "package.module:function"')
        return v

    @model_validator(mode="after")
    def _one_kind(self) -> UserStepSpec:
        if (self.function is None) == (self.component is None):
            raise ValueError('give exactly one of `function` ("package.module:function") and `component` (a component YAML file)')
        if self.name in _BUILTIN_STEP_NAMES:
            raise ValueError(f"step name {self.name!r} is taken by a built-in step; choose another")
        return self


class PipelineSpec(_Section):
    """A whole cvpipe training pipeline.

    Attributes:
        name: pipeline name (lowercase letters, digits, dashes).
        task: classification, detection or segmentation.
        description: free text.
        data: the data source.
        validation: validation policy.
        transform: TFRecord options.
        train: training options.
        evaluate: thresholds and slices.
        registry: push target.
        tracking: experiment tracking (MLflow).
        schedule: recurring runs.
        runtime: run root, image, metadata store, resources.
        monitoring: continuous evaluation of the model in production (None: not monitored).
        serving: how ``cvpipe serve`` serves the model (None: :class:`ServingSpec`'s defaults).
        steps: the user's own steps, each after a named built-in step (docs/steps.md).
    """

    name: str = Field(pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
    task: Task
    description: str = ""
    data: DataSpec
    validation: ValidationSpec = Field(default_factory=ValidationSpec)
    transform: TransformSpec = Field(default_factory=TransformSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)
    evaluate: EvaluateSpec = Field(default_factory=EvaluateSpec)
    registry: RegistrySpec = Field(default_factory=RegistrySpec)
    tracking: TrackingSpec = Field(default_factory=TrackingSpec)
    schedule: ScheduleSpec | None = None
    runtime: RuntimeSpec = Field(default_factory=RuntimeSpec)
    monitoring: MonitoringSpec | None = None
    serving: ServingSpec | None = None
    steps: list[UserStepSpec] = Field(default_factory=list)

    @model_serializer(mode="wrap")
    def _omit_no_serving(self, handler: SerializerFunctionWrapHandler) -> Any:
        # a spec without `serving` or `steps` serialises as before (compiled pipelines and their golden files unchanged)
        data = handler(self)
        if isinstance(data, dict) and data.get("serving") is None:
            data.pop("serving", None)
        if isinstance(data, dict) and not data.get("steps"):
            data.pop("steps", None)
        return data

    @model_validator(mode="after")
    def _cross(self, info: ValidationInfo) -> PipelineSpec:
        if self.task == "classification" and self.data.format not in ("folders", "coco", "groundtruth"):
            raise ValueError(f"format {self.data.format!r} carries boxes, not image classes; use detection or segmentation")
        if not (info.context or {}).get("names_checked_by_caller"):
            problems = name_problems(self)
            if problems:
                raise ValueError("; ".join(f"{k}: {v}" for k, v in problems))
        seen: set[str] = set()
        for step in self.steps:
            if step.name in seen:
                raise ValueError(f"two user steps are named {step.name!r}; step names must be unique")
            seen.add(step.name)
        return self

    @property
    def model_name(self) -> str:
        """The registry model name."""
        return self.registry.model_name or self.name


_MESSAGES = {
    "greater_than_equal": "must be >= {ge}",
    "greater_than": "must be > {gt}",
    "less_than_equal": "must be <= {le}",
    "less_than": "must be < {lt}",
    "missing": "is required",
    "extra_forbidden": "unknown key",
    "string_pattern_mismatch": "must match {pattern}",
}


def _problems(err: ValidationError) -> list[tuple[str, str]]:
    out = []
    for e in err.errors():
        loc = [str(p) for p in e["loc"] if not str(p).startswith(("function-", "literal["))]
        path = ".".join(loc)
        template = _MESSAGES.get(e["type"])
        ctx = e.get("ctx") or {}
        if template:
            try:
                msg = template.format(**ctx)
            except KeyError:
                msg = e["msg"]
        else:
            msg = str(e["msg"])
            msg = msg.removeprefix("Value error, ")
            msg = msg[0].lower() + msg[1:] if msg else msg
        out.append((path, msg))
    return out


def _closest(name: str, valid: frozenset[str] | set[str]) -> str:
    found = difflib.get_close_matches(name.lower(), sorted(valid), n=1, cutoff=0.5)
    return f"; did you mean {found[0]!r}?" if found else f" (one of {', '.join(sorted(valid))})"


def name_problems(spec: PipelineSpec) -> list[tuple[str, str]]:
    """Names and bounds that validate as types but cannot work for this spec's task.

    Threshold metrics that the task does not compute (with the closest valid
    name), bounds outside a metric's range, ``lower > upper``, and
    ``validation.policy`` keys that are not anomaly kinds.

    Args:
        spec: the spec.

    Returns:
        ``(key path, problem)`` pairs; empty when all is well.
    """
    out: list[tuple[str, str]] = []
    task = spec.task
    for i, t in enumerate(spec.evaluate.thresholds):
        where = f"evaluate.thresholds.{i}"
        name, _, sliced = t.metric.partition("@")
        valid = set(METRICS[task]) | (set(PER_CLASS_METRICS[task]) if sliced else set())
        if name not in valid:
            shown = f"{name!r} (in {t.metric!r})" if sliced else repr(name)
            out.append((f"{where}.metric", f"unknown {task} metric {shown}{_closest(name, valid)}"))
            continue
        for key in ("lower", "upper"):
            v = getattr(t, key)
            if v is None:
                continue
            if name in COUNT_METRICS and v < 0:
                out.append((f"{where}.{key}", f"{v:g} is outside the range of {name} (0 or more)"))
            elif name not in COUNT_METRICS and not 0.0 <= v <= 1.0:
                out.append((f"{where}.{key}", f"{v:g} is outside the range of {name} (0 to 1)"))
        if t.lower is not None and t.upper is not None and t.lower > t.upper:
            out.append((where, f"lower {t.lower:g} is greater than upper {t.upper:g}: no value can pass"))
    model = spec.train.model.strip().lower().replace("-", "_")
    if not is_function_ref(model) and model != "auto" and model not in ARCHITECTURES[task]:
        other = [t for t, names in ARCHITECTURES.items() if model in names]
        hint = f" is a {other[0]} architecture" if other else " is not a built-in architecture"
        out.append(
            (
                "train.model",
                f"{spec.train.model!r}{hint}; a {task} pipeline can use: auto, {', '.join(ARCHITECTURES[task])} "
                "or a user function 'package.module:function'",
            )
        )
    for kind in spec.validation.policy:
        if kind not in VALIDATION_KINDS:
            out.append((f"validation.policy.{kind}", f"unknown anomaly kind {kind!r}{_closest(kind, VALIDATION_KINDS)}"))
    return out


def check_local_paths(spec: PipelineSpec) -> list[tuple[str, str]]:
    """Local files and folders a spec names that do not exist (remote ``gs://``, ``s3://`` sources are not checked).

    Args:
        spec: the spec, paths resolved (:func:`load_spec` does that).

    Returns:
        ``(key path, problem)`` pairs.
    """
    named = {
        "data.source": spec.data.source,
        "data.images": spec.data.images,
        "data.label_map": spec.data.label_map,
        "validation.schema_file": spec.validation.schema_file,
        "evaluate.tfma_config": spec.evaluate.tfma_config,
        "train.pretrained_weights": spec.train.pretrained_weights,
        **{f"steps.{i}.component": s.component for i, s in enumerate(spec.steps)},
    }
    return [(k, f"{v} does not exist") for k, v in named.items() if v and "://" not in v and not os.path.exists(v)]


def parse_spec(data: dict[str, Any], source: str | None = None) -> PipelineSpec:
    """Validates a spec given as a dict.

    Args:
        data: the spec.
        source: file name, for messages.

    Returns:
        The spec.

    Raises:
        SpecError: with every problem and its key path.
    """
    if not isinstance(data, dict):
        raise SpecError([("", "a spec must be a mapping of keys to values")], source)
    try:
        spec = PipelineSpec.model_validate(data, context={"names_checked_by_caller": True})
    except ValidationError as e:
        raise SpecError(_problems(e), source) from None
    problems = name_problems(spec)
    if problems:
        raise SpecError(problems, source)
    return spec


def load_spec(path: str | os.PathLike[str]) -> PipelineSpec:
    """Reads and validates a YAML (or JSON) spec file.

    Relative data paths in the file are resolved against the file's directory,
    so a spec works from any working directory.

    Args:
        path: the spec file.

    Returns:
        The spec.

    Raises:
        SpecError: the file is missing, not YAML, or invalid (every problem listed).
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise SpecError([("", f"cannot read spec file: {e.strerror}")], str(p)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise SpecError([("", f"not valid YAML: {e}")], str(p)) from None
    except RecursionError:
        raise SpecError([("", "YAML nested too deeply")], str(p)) from None
    spec = parse_spec(data, str(p))
    return resolve_paths(spec, p.parent)


def resolve_paths(spec: PipelineSpec, base: str | os.PathLike[str]) -> PipelineSpec:
    """Makes the spec's relative local paths absolute against ``base``.

    Args:
        spec: the spec.
        base: directory to resolve against.

    Returns:
        A new spec with absolute local paths (URLs such as gs:// are kept).
    """
    b = Path(base).resolve()

    def fix(v: str | None) -> str | None:
        if v is None or "://" in v or os.path.isabs(v):
            return v
        return str(b / v)

    data = spec.model_dump(mode="json")
    data["data"]["source"] = fix(spec.data.source)
    if "format" not in spec.data.model_fields_set:
        data["data"].pop("format", None)  # inferred again from the resolved source, not the working directory
    data["data"]["images"] = fix(spec.data.images)
    data["data"]["label_map"] = fix(spec.data.label_map)
    data["validation"]["schema_file"] = fix(spec.validation.schema_file)
    data["evaluate"]["tfma_config"] = fix(spec.evaluate.tfma_config)
    data["train"]["pretrained_weights"] = fix(spec.train.pretrained_weights)
    data["runtime"]["root"] = fix(spec.runtime.root)
    for i, step in enumerate(spec.steps):
        data["steps"][i]["component"] = fix(step.component)
    if spec.runtime.metadata.password_file:  # tasks and the local run process read it from another working directory
        data["runtime"]["metadata"]["password_file"] = fix(spec.runtime.metadata.password_file)
    data["registry"]["root"] = fix(spec.registry.root) if spec.registry.backend == "local" else spec.registry.root
    if spec.monitoring is not None:
        data["monitoring"]["prediction_log"] = fix(spec.monitoring.prediction_log)
        data["monitoring"]["labels"] = fix(spec.monitoring.labels)
        data["monitoring"]["retrain"]["settings"] = fix(spec.monitoring.retrain.settings)
    return PipelineSpec.model_validate(data)


def dump_spec(spec: PipelineSpec) -> str:
    """The spec as YAML text (defaults included)."""
    return yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False)

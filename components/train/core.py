"""The train component: TFRecords + label map -> a trained, exported model with its report.

What :func:`run` does, in order:

1. reads the examples index and label map, checks they fit the spec's task;
2. picks the ``tf.distribute`` strategy and mixed-precision policy for the
   machine (:mod:`components.train.strategy`);
3. resolves ``train.parent`` through the model registry (:func:`resolve_parent`)
   for a warm start: weights are carried over layer by layer, class weights by
   label-map id (:func:`components.train.models.transfer_weights`);
4. optionally searches hyperparameters with KerasTuner (:mod:`components.train.tuner`);
5. trains with early stopping on validation loss and step checkpoints under
   ``<model_dir>/checkpoints/``, resuming from them when a killed trainer is
   started again (:mod:`components.train.loop`);
6. exports the SavedModel with its serving signatures, label map, model info,
   Keras weights and optional TFLite files (:mod:`components.train.export`);
7. writes the report (loss curves, over-fitting check) and records lineage
   once: inputs ``examples``, ``label_map``, ``parent_model``; outputs
   ``model``, ``report`` and, when tuned, ``hyperparameters``.

The checkpoint directory is removed once the export is complete.

With ``train.workers: N > 1`` and no ``TF_CONFIG`` set, :func:`run` first
starts ``N - 1`` local worker processes of this same step
(:class:`~components.train.multiworker.LocalWorkers`) and trains as their
chief under ``MultiWorkerMirroredStrategy``. A process that ``TF_CONFIG``
names a non-chief worker (a local worker, or a Vertex AI / Kubeflow replica)
restores from the chief's checkpoints under ``<model_dir>/checkpoints/``,
trains in sync with a scratch work directory and returns after training:
only the chief exports, reports and records lineage. When a worker dies the
step fails naming it; running the step again resumes every worker from the
chief's last step checkpoint. With ``train.vertex_job`` set, the N processes
are the replicas of a Vertex AI custom job instead
(:mod:`components.train.vertex_job`), which this step submits and waits for.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from components.core.errors import CvpipeError, TrainingError
from components.core.examples import load_index
from components.core.io import read_json
from components.core.labelmap import LabelMap
from components.core.lineage import ArtifactRef, NewArtifact
from components.core.manifest import Task
from components.core.predictor import LABEL_MAP_FILE, MODEL_INFO_FILE, SERVING_BYTES, SERVING_IMAGES
from components.core.spec import RETINANET_BACKBONES
from components.core.step import ArtifactUris, StepContext

from .data import InputPipeline
from .export import WEIGHTS_FILE, export_saved_model, export_tflite
from .loop import FitResult, LoopConfig, Trainer, make_optimizer
from .models import build_model, embedding_dim, load_backbone_weights, resolve_architecture, transfer_weights
from .multiworker import LocalWorkers, TaskRole, task_role
from .report import detect_overfitting, write_report
from .strategy import StrategyPlan, build_strategy, mixed_precision
from .tuner import TunerOutcome, search, write_hyperparameters

__all__ = ["CHECKPOINT_DIR", "TrainResult", "TrainUris", "resolve_parent", "run"]

CHECKPOINT_DIR = "checkpoints"
"""Work directory inside the model directory: step checkpoints, best weights, tuner state."""
_REPRESENTATIVE_IMAGES = 64
_WORKER_EXIT_S = 600.0
"""How long the chief waits, after its training loop, for the local workers to exit."""
_WORKER_NOTICE_S = 10.0
"""How long a failed chief waits for the worker watcher to say whether a worker's death caused it."""


TrainUris = ArtifactUris
"""The train step's URIs (``examples``, ``label_map``, ``model``, ``report``, ``hyperparameters``); the name
stays because compiled pipelines' component source calls it."""


@dataclass
class TrainResult:
    """What the train component produced.

    Attributes:
        model_dir: the model directory.
        report_dir: the report directory.
        task: the task.
        architecture: the architecture trained.
        image_size: model input ``(height, width)``.
        epochs_run: epochs trained (across restarts).
        best_epoch: epoch whose weights were kept.
        best_val_loss: its validation loss.
        stopped_early: whether early stopping ended training.
        overfitting: whether the report flagged over-fitting.
        resumed_from_step: global step restored from a checkpoint (0: fresh start).
        strategy: the distribution strategy used, in words.
        hyperparameters: learning rate and weight decay used.
        tuned: whether a hyperparameter search chose them.
        parent_artifact_id: the warm-start parent's MLMD Model artifact, if any.
        tflite: TFLite kind -> file.
        artifacts: recorded lineage outputs (``model``, ``report``, ``hyperparameters``).
    """

    model_dir: Path
    report_dir: Path
    task: Task
    architecture: str
    image_size: tuple[int, int]
    epochs_run: int
    best_epoch: int
    best_val_loss: float
    stopped_early: bool
    overfitting: bool
    resumed_from_step: int
    strategy: str
    hyperparameters: dict[str, float]
    tuned: bool = False
    parent_artifact_id: int | None = None
    tflite: dict[str, Path] = field(default_factory=dict)
    artifacts: dict[str, ArtifactRef] = field(default_factory=dict)


def _lineage_inputs(
    ctx: StepContext,
    u: ArtifactUris,
    examples_dir: str | os.PathLike[str],
    label_map_path: str | os.PathLike[str],
    label_map: LabelMap,
    parent_id: int | None,
) -> dict[str, ArtifactRef | None]:
    """The train execution's inputs: the examples, the label map and the warm-start parent."""
    return {
        "examples": ctx.input_artifact(u.uri("examples", examples_dir), "Examples"),
        "label_map": ctx.input_artifact(
            u.uri("label_map", label_map_path), "LabelMap", {"version": label_map.version, "num_classes": label_map.num_classes}
        ),
        "parent_model": ctx.store.get(parent_id) if parent_id is not None else None,
    }


def _model_properties(
    ctx: StepContext,
    architecture: str,
    task: str,
    image_size: tuple[int, int],
    val_loss: float,
    epochs: int,
    parent_id: int | None,
    label_map: LabelMap,
) -> dict[str, Any]:
    """The Model artifact's properties (cvpipe's loop and a user's ``run_fn`` record the same ones)."""
    return {
        "model_name": ctx.spec.model_name,
        "architecture": architecture,
        "task": task,
        "image_size": f"{image_size[0]}x{image_size[1]}",
        "val_loss": val_loss if math.isfinite(val_loss) else None,
        "epochs": epochs,
        "pipeline": ctx.spec.name,
        "run_id": ctx.run_id,
        "parent": parent_id,
        "num_classes": label_map.num_classes,
        "label_map_version": label_map.version,
    }


def resolve_parent(ctx: StepContext, ref: str) -> tuple[Path, int]:
    """Finds the warm-start parent through the model registry.

    Args:
        ctx: the step context (its spec's ``registry`` section and lineage store are used).
        ref: ``name:version`` or ``name@alias``.

    Returns:
        ``(model directory, MLMD Model artifact id)``.

    Raises:
        TrainingError: the registry cannot resolve the reference.
    """
    from components.registry import get_registry

    try:
        version = get_registry(ctx.spec.registry, ctx.store).resolve(ref)
    except CvpipeError as e:
        raise TrainingError(f"train.parent {ref!r}: {e}") from None
    return Path(version.model_dir), int(version.artifact_id)


@dataclass
class _Setup:
    """Everything the model builders and trials share."""

    task: Task
    architecture: str
    label_map: LabelMap
    image_size: tuple[int, int]
    strategy: Any
    plan: StrategyPlan
    train: InputPipeline
    val: InputPipeline
    pretrained: str | None
    parent_dir: Path | None
    parent_info: dict[str, Any] | None
    model_hparams: dict[str, Any] = field(default_factory=dict)


def _build(setup: _Setup, log: Any) -> Any:
    """A model for this run, initialised from pretrained weights and/or the parent."""
    import tensorflow as tf

    retina = setup.architecture == "retinanet"
    hparams = {**setup.model_hparams, "preset": setup.pretrained} if retina and setup.pretrained else setup.model_hparams
    with setup.strategy.scope(), mixed_precision(setup.plan.precision):
        if retina:
            from .retinanet import build_retinanet

            model = build_retinanet(setup.label_map.num_classes, setup.image_size, hparams, log)
        else:
            model = build_model(setup.task, setup.architecture, setup.label_map.num_classes, setup.image_size, hparams)
    if setup.pretrained and not retina:
        load_backbone_weights(model, setup.pretrained)
    if setup.parent_dir is not None and setup.parent_info is not None:
        parent_lm = LabelMap.load(setup.parent_dir / LABEL_MAP_FILE)
        with tf.device("/cpu:0"):
            parent = build_model(setup.task, setup.architecture, parent_lm.num_classes, setup.image_size, setup.model_hparams)
            try:
                parent.load_weights(str(setup.parent_dir / WEIGHTS_FILE))
            except Exception as e:
                raise TrainingError(f"warm start: cannot load {setup.parent_dir / WEIGHTS_FILE}: {e}") from None
        counts = transfer_weights(parent, model, parent_lm.ids, setup.label_map.ids, background_channel=setup.task == "segmentation")
        log.info(
            "warm start from %s: %d weight tensors copied, %d class-head tensors mapped by label-map id, %d skipped",
            setup.parent_dir,
            counts["copied"],
            counts["class_mapped"],
            counts["skipped"],
        )
    return model


def _train(
    setup: _Setup,
    hp: dict[str, float],
    epochs: int,
    patience: int,
    checkpoint_every: int,
    work_dir: Path | None,
    log: Any,
    restore_from: Path | None = None,
    chief: bool = True,
) -> tuple[Any, FitResult]:
    model = _build(setup, log)
    with setup.strategy.scope():
        optimizer = make_optimizer(hp["learning_rate"], hp["weight_decay"], epochs * setup.train.steps_per_epoch, setup.plan.precision)
    loss_fn = None
    if setup.architecture == "retinanet":
        from .retinanet import RetinaNetLoss

        loss_fn = RetinaNetLoss(model)
    trainer = Trainer(
        model,
        setup.task,
        optimizer,
        setup.strategy,
        setup.train,
        setup.val,
        LoopConfig(epochs, patience, checkpoint_every),
        log,
        work_dir,
        loss_fn=loss_fn,
        restore_from=restore_from,
        restore_best=chief,
    )
    return model, trainer.fit()


def _check_inputs(ctx: StepContext, examples_dir: Path, label_map: LabelMap) -> Task:
    index = load_index(examples_dir)
    task: Task = ctx.spec.task
    if index.task != task and not (task == "detection" and index.task == "segmentation"):
        raise TrainingError(f"{examples_dir}: examples were written for {index.task}, the spec trains {task}")
    missing = sorted(set(index.label_map.ids) - set(label_map.ids))
    if missing:
        raise TrainingError(f"the examples use class ids {missing} that the label map (version {label_map.version}) does not have")
    return task


def run(
    ctx: StepContext,
    examples_dir: str | os.PathLike[str],
    label_map_path: str | os.PathLike[str],
    model_dir: str | os.PathLike[str],
    report_dir: str | os.PathLike[str],
    hparams_dir: str | os.PathLike[str],
    uris: ArtifactUris | Mapping[str, str] | None = None,
) -> TrainResult:
    """Trains, exports and reports one model.

    Args:
        ctx: the step context (spec, run id, lineage).
        examples_dir: the Examples directory transform wrote.
        label_map_path: the label map file.
        model_dir: the Model output directory.
        report_dir: the report output directory.
        hparams_dir: the HyperParameters output directory (written only when tuning).
        uris: artifact URIs for lineage (default: the local paths).

    Returns:
        The result (on a non-chief worker of a multi-worker run: what it trained, with no
        artifacts; it writes nothing to ``model_dir``; after a Vertex AI custom job: what its
        chief wrote, with the ``model`` and ``report`` artifacts it recorded).

    Raises:
        TrainingError: unusable inputs, a parent that does not fit, a diverging loss, a
            worker of a multi-worker run that failed (named in the message).
    """
    spec = ctx.spec.train
    if spec.workers < 2 or os.environ.get("TF_CONFIG"):
        return _run(ctx, examples_dir, label_map_path, model_dir, report_dir, hparams_dir, uris, None)
    payload = worker_payload(ctx, examples_dir, label_map_path, model_dir, report_dir, hparams_dir, uris)
    if spec.vertex_job is not None:
        return _run_on_vertex(ctx, payload, Path(model_dir), Path(report_dir), ArtifactUris.of(uris))
    workers = LocalWorkers(spec.workers, payload, ctx.log)
    try:
        workers.start()
        return _run(ctx, examples_dir, label_map_path, model_dir, report_dir, hparams_dir, uris, workers)
    except Exception as e:
        # a dead worker makes the chief's collectives fail (or its strategy's wait for the cluster): say which one
        peer_lost = isinstance(e, _PeerLost) or type(e).__module__.startswith("tensorflow")
        if workers.failed(_WORKER_NOTICE_S if peer_lost else 0.0):
            try:
                workers.check()
            except TrainingError as failure:
                raise failure from e
        raise
    finally:
        workers.close()


def worker_payload(
    ctx: StepContext,
    examples_dir: str | os.PathLike[str],
    label_map_path: str | os.PathLike[str],
    model_dir: str | os.PathLike[str],
    report_dir: str | os.PathLike[str],
    hparams_dir: str | os.PathLike[str],
    uris: ArtifactUris | Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The train step's arguments for every process of a multi-worker run (:mod:`components.train.worker` reads them).

    The spec travels as the train component's own parameters, ``context`` and ``train``
    (a KFP task's spec holds only the sections its component takes).

    Returns:
        JSON-able arguments.
    """
    from components.core.params import PipelineContext

    return {
        "context": PipelineContext.of(ctx.spec).model_dump(mode="json"),
        "train": ctx.spec.train.model_dump(mode="json"),
        "run_id": ctx.run_id,
        "examples_dir": str(examples_dir),
        "label_map_path": str(label_map_path),
        "model_dir": str(model_dir),
        "report_dir": str(report_dir),
        "hparams_dir": str(hparams_dir),
        "uris": dict(ArtifactUris.of(uris)),
    }


def _run_on_vertex(ctx: StepContext, payload: dict[str, Any], model_dir: Path, report_dir: Path, u: ArtifactUris) -> TrainResult:
    """``train.vertex_job``: the replicas of a Vertex AI custom job train; the chief among them exports and records lineage."""
    from .vertex_job import run_custom_job

    report, info = run_custom_job(ctx.spec, ctx.run_id, payload, model_dir)
    parent = info.get("parent") or {}
    artifacts: dict[str, ArtifactRef] = {}
    for name, kind, path in (("model", "Model", model_dir), ("report", "Report", report_dir)):
        ref = ctx.store.find_by_uri(u.uri(name, path), kind)  # what the chief replica recorded
        if ref is not None:
            artifacts[name] = ref
    return TrainResult(
        model_dir=model_dir,
        report_dir=report_dir,
        task=info["task"],
        architecture=info["architecture"],
        image_size=(int(info["image_size"][0]), int(info["image_size"][1])),
        epochs_run=int(report["epochs_run"]),
        best_epoch=int(report["best_epoch"]),
        best_val_loss=float(report["best_val_loss"]),
        stopped_early=bool(report["stopped_early"]),
        overfitting=bool((report.get("overfitting") or {}).get("overfitting", False)),
        resumed_from_step=int(report.get("resumed_from_step", 0)),
        strategy=str(report["strategy"]),
        hyperparameters={k: float(v) for k, v in (report.get("hyperparameters") or {}).items()},
        parent_artifact_id=parent.get("artifact_id"),
        artifacts=artifacts,
    )


def _run(
    ctx: StepContext,
    examples_dir: str | os.PathLike[str],
    label_map_path: str | os.PathLike[str],
    model_dir: str | os.PathLike[str],
    report_dir: str | os.PathLike[str],
    hparams_dir: str | os.PathLike[str],
    uris: ArtifactUris | Mapping[str, str] | None,
    workers: LocalWorkers | None,
) -> TrainResult:
    """:func:`run` in one process (the chief, the only process, or a worker ``TF_CONFIG`` names)."""
    t_start = time.monotonic()
    examples_dir, model_dir, report_dir, hparams_dir = Path(examples_dir), Path(model_dir), Path(report_dir), Path(hparams_dir)
    u = ArtifactUris.of(uris)
    spec = ctx.spec.train
    log = ctx.log
    label_map = LabelMap.load(label_map_path)
    task = _check_inputs(ctx, examples_dir, label_map)
    architecture = spec.run_fn if spec.run_fn else resolve_architecture(task, spec.model)
    image_size = (int(spec.image_size[0]), int(spec.image_size[1]))
    backbone = (spec.backbone or RETINANET_BACKBONES[0]) if architecture == "retinanet" else None

    role = task_role()
    if role.num_workers > 1 and role.num_workers != spec.workers:
        log.warning("TF_CONFIG names %d workers, train.workers says %d: training on TF_CONFIG's cluster", role.num_workers, spec.workers)
    strategy, plan = build_strategy(spec.accelerator)
    if role.num_workers > 1:
        log.info(
            "multi-worker training: this process is %s, %s", role.task, "the chief" if role.chief else "a worker (scratch checkpoints)"
        )
    log.info(
        "training %s (%s) on %s, input %dx%d, %d classes",
        task,
        architecture,
        plan.description,
        image_size[0],
        image_size[1],
        label_map.num_classes,
    )

    parent_dir: Path | None = None
    parent_id: int | None = None
    parent_info: dict[str, Any] | None = None
    if spec.parent:
        parent_dir, parent_id = resolve_parent(ctx, spec.parent)
        try:
            parent_info = read_json(parent_dir / MODEL_INFO_FILE)
        except (OSError, ValueError) as e:
            raise TrainingError(f"train.parent {spec.parent}: {parent_dir} has no readable {MODEL_INFO_FILE}: {e}") from None
        same = parent_info.get("architecture") == architecture and parent_info.get("backbone") == backbone
        if parent_info.get("task") != task or (not spec.run_fn and not same):
            parent_arch = "/".join(str(v) for v in (parent_info.get("architecture"), parent_info.get("backbone")) if v)
            arch = "/".join(v for v in (architecture, backbone) if v)
            raise TrainingError(
                f"train.parent {spec.parent} is a {parent_info.get('task')} {parent_arch} model; it cannot warm-start a {task} {arch} model"
            )
        log.info("warm start from %s (%s, Model artifact %d)", spec.parent, parent_dir, parent_id)

    if spec.run_fn:
        return _run_user_fn(
            ctx,
            examples_dir,
            Path(label_map_path),
            label_map,
            model_dir,
            report_dir,
            image_size,
            strategy,
            plan,
            (parent_dir, parent_id),
            u,
            t_start,
        )

    targets: Any = "boxes" if architecture == "retinanet" else "dense"
    train = InputPipeline(
        str(examples_dir), "train", task, label_map, image_size, spec.batch_size, training=True, seed=spec.seed, targets=targets
    )
    val_split = "validation"
    val = InputPipeline(str(examples_dir), val_split, task, label_map, image_size, spec.batch_size, targets=targets)
    if val.num_examples == 0:
        val_split = "train"
        val = InputPipeline(str(examples_dir), "train", task, label_map, image_size, spec.batch_size, targets=targets)
        log.warning("no validation examples: early stopping watches the training split's loss")
    log.info("%d training and %d validation examples, %d steps per epoch", train.num_examples, val.num_examples, train.steps_per_epoch)

    model_hparams: dict[str, Any] = {**spec.hyperparameters, "learning_rate": float(spec.learning_rate)}
    if backbone:
        model_hparams["backbone"] = backbone
    setup = _Setup(
        task,
        architecture,
        label_map,
        image_size,
        strategy,
        plan,
        train,
        val,
        spec.pretrained_weights,
        parent_dir,
        parent_info,
        model_hparams,
    )
    import keras

    keras.utils.set_random_seed(spec.seed)
    work = model_dir / CHECKPOINT_DIR
    hp = {"learning_rate": float(spec.learning_rate), "weight_decay": float(spec.hyperparameters.get("weight_decay", 1e-4))}
    outcome: TunerOutcome | None = None
    if spec.tuner.enabled:

        def trial(values: dict[str, float], epochs: int) -> float:
            keras.utils.set_random_seed(spec.seed)
            _, fit = _train(setup, {**hp, **values}, epochs, spec.early_stopping_patience, 0, None, log)
            return fit.best_val_loss

        outcome = search(spec.tuner, trial, spec.epochs, work / "tuner", seed=spec.seed, log=log)
        hp.update(outcome.best)
        write_hyperparameters(outcome, hparams_dir)
        log.info("tuner: best %s (val_loss %.4f over %d trials)", outcome.best, outcome.best_val_loss, len(outcome.trials))

    keras.utils.set_random_seed(spec.seed)
    if not role.chief:
        return _train_worker(setup, hp, spec.epochs, spec.early_stopping_patience, spec.checkpoint_every_steps, work / "train", role, log)
    model, fit = _train_in_cluster(
        lambda: _train(setup, hp, spec.epochs, spec.early_stopping_patience, spec.checkpoint_every_steps, work / "train", log),
        role,
    )
    if workers is not None:
        workers.wait(_WORKER_EXIT_S)
        log.info("the training workers (%d) finished", spec.workers - 1)
    if not fit.history:
        raise TrainingError("no epoch finished")
    overfit = detect_overfitting(fit.history)
    if overfit["overfitting"]:
        log.warning("%s", overfit["message"])

    info: dict[str, Any] = {
        "task": task,
        "architecture": architecture,
        "model_name": ctx.spec.model_name,
        "pipeline": ctx.spec.name,
        "run_id": ctx.run_id,
        "image_size": list(image_size),
        "num_classes": label_map.num_classes,
        "label_map_version": label_map.version,
        "label_ids": label_map.ids,
        "embedding_dim": embedding_dim(model),
        "epochs_run": fit.epochs_run,
        "best_epoch": fit.best_epoch,
        "best_val_loss": fit.best_val_loss,
        "stopped_early": fit.stopped_early,
        "hyperparameters": hp,
        "precision": plan.precision,
        "strategy": plan.description,
        "parent": {"ref": spec.parent, "artifact_id": parent_id} if spec.parent else None,
        "signatures": {
            SERVING_BYTES: "image_bytes: string [None]",
            SERVING_IMAGES: f"images: float32 [None, {image_size[0]}, {image_size[1]}, 3]",
        },
        "weights_file": WEIGHTS_FILE,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if backbone:
        info["backbone"] = backbone
        info["preset"] = "preset"
    elif task == "detection":
        from .detector import STRIDE

        info["output_stride"] = STRIDE
    if spec.hyperparameters:
        info["model_hyperparameters"] = dict(spec.hyperparameters)
    import tensorflow as tf

    info["tensorflow"] = tf.__version__
    info["keras"] = keras.__version__
    export_saved_model(model, task, image_size, label_map, model_dir, info)
    if backbone:
        from .retinanet import save_preset

        save_preset(model, model_dir / "preset")
    tflite: dict[str, Path] = {}
    if spec.export_tflite:
        rep = train.images(_REPRESENTATIVE_IMAGES) if "int8" in spec.export_tflite else None
        tflite = export_tflite(model, task, image_size, label_map, model_dir, list(spec.export_tflite), rep)
    log.info("exported %s", model_dir)

    report: dict[str, Any] = {
        **{k: info[k] for k in ("task", "architecture", "model_name", "image_size", "num_classes", "label_map_version")},
        "epochs_max": spec.epochs,
        "epochs_run": fit.epochs_run,
        "best_epoch": fit.best_epoch,
        "best_val_loss": fit.best_val_loss,
        "stopped_early": fit.stopped_early,
        "early_stopping_patience": spec.early_stopping_patience,
        "overfitting": overfit,
        "history": fit.history,
        "steps_per_epoch": fit.steps_per_epoch,
        "global_step": fit.global_step,
        "steps_run": fit.steps_run,
        "resumed_from_step": fit.resumed_from_step,
        "train_examples": train.num_examples,
        "validation_examples": val.num_examples,
        "validation_split": val_split,
        "batch_size": spec.batch_size,
        "hyperparameters": hp,
        "tuner": None
        if outcome is None
        else {"best": outcome.best, "best_val_loss": outcome.best_val_loss, "trials": outcome.trials, "oracle": outcome.oracle},
        "strategy": plan.description,
        "precision": plan.precision,
        "workers": role.num_workers,
        "replicas_in_sync": int(strategy.num_replicas_in_sync),
        "parent": info["parent"],
        "tflite": {k: str(p.relative_to(model_dir)) for k, p in tflite.items()},
        "seconds": round(time.monotonic() - t_start, 1),
    }
    written = write_report(report, report_dir, model_dir)
    shutil.rmtree(work, ignore_errors=True)
    from components.core.tracking import log_training

    log_training(
        ctx.spec,
        ctx.run_id,
        params={
            "train": spec.model_dump(mode="json"),
            "task": task,
            "architecture": architecture,
            "strategy": plan.description,
            "precision": plan.precision,
            "hyperparameters": hp,
        },
        history=fit.history,
        artifacts=[written["png"], written["json"]],
        summary={"best_val_loss": fit.best_val_loss, "best_epoch": fit.best_epoch, "epochs_run": fit.epochs_run},
    )

    inputs = _lineage_inputs(ctx, u, examples_dir, label_map_path, label_map, parent_id)
    props = _model_properties(ctx, architecture, task, image_size, fit.best_val_loss, fit.epochs_run, parent_id, label_map)
    outputs: dict[str, NewArtifact | None] = {
        "model": NewArtifact("Model", u.uri("model", model_dir), props),
        "report": NewArtifact("Report", u.uri("report", report_dir), {"kind": "training", "overfitting": bool(overfit["overfitting"])}),
        "hyperparameters": NewArtifact(
            "HyperParameters", u.uri("hyperparameters", hparams_dir), {**outcome.best, "val_loss": outcome.best_val_loss}
        )
        if outcome is not None
        else None,
    }
    recorded = ctx.record(
        inputs,
        outputs,
        {
            "epochs_run": fit.epochs_run,
            "best_epoch": fit.best_epoch,
            "stopped_early": fit.stopped_early,
            "overfitting": bool(overfit["overfitting"]),
            "resumed_from_step": fit.resumed_from_step,
            "strategy": plan.description,
            "tuned": outcome is not None,
        },
    )
    log.info(
        "trained %s in %.0fs: %d epochs, best val_loss %.4f at epoch %d",
        architecture,
        time.monotonic() - t_start,
        fit.epochs_run,
        fit.best_val_loss,
        fit.best_epoch,
    )
    return TrainResult(
        model_dir=model_dir,
        report_dir=report_dir,
        task=task,
        architecture=architecture,
        image_size=image_size,
        epochs_run=fit.epochs_run,
        best_epoch=fit.best_epoch,
        best_val_loss=fit.best_val_loss,
        stopped_early=fit.stopped_early,
        overfitting=bool(overfit["overfitting"]),
        resumed_from_step=fit.resumed_from_step,
        strategy=plan.description,
        hyperparameters=hp,
        tuned=outcome is not None,
        parent_artifact_id=parent_id,
        tflite=tflite,
        artifacts=recorded,
    )


class _PeerLost(TrainingError):
    """A multi-worker training loop's collective failed: a peer died or was aborted."""


def _train_in_cluster(train: Any, role: TaskRole) -> tuple[Any, FitResult]:
    """Runs ``train()``; in a multi-worker cluster a lost peer becomes a TrainingError saying how to resume."""
    if role.num_workers < 2:
        return train()  # type: ignore[no-any-return]
    import tensorflow as tf

    try:
        return train()  # type: ignore[no-any-return]
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.CancelledError, tf.errors.InternalError) as e:
        raise _PeerLost(
            f"multi-worker training ({role.task} of {role.num_workers}) lost a peer: {e.message.strip().splitlines()[0]}; "
            "running the step again resumes every worker from the chief's last step checkpoint"
        ) from e


def _train_worker(
    setup: _Setup, hp: dict[str, float], epochs: int, patience: int, checkpoint_every: int, chief_dir: Path, role: TaskRole, log: Any
) -> TrainResult:
    """A non-chief worker: trains in sync from the chief's checkpoints with a scratch work directory; writes no outputs."""
    scratch = Path(tempfile.mkdtemp(prefix=f"cvpipe-train-worker-{role.index}-"))
    try:
        _, fit = _train_in_cluster(
            lambda: _train(setup, hp, epochs, patience, checkpoint_every, scratch, log, restore_from=chief_dir, chief=False),
            role,
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    log.info(
        "%s finished: %d epochs, %d steps (resumed from step %d); the chief exports the model",
        role.task,
        fit.epochs_run,
        fit.steps_run,
        fit.resumed_from_step,
    )
    return TrainResult(
        model_dir=scratch,
        report_dir=scratch,
        task=setup.task,
        architecture=setup.architecture,
        image_size=setup.image_size,
        epochs_run=fit.epochs_run,
        best_epoch=fit.best_epoch,
        best_val_loss=fit.best_val_loss,
        stopped_early=fit.stopped_early,
        overfitting=False,
        resumed_from_step=fit.resumed_from_step,
        strategy=setup.plan.description,
        hyperparameters=hp,
    )


def _smoke_outputs(sig: Any, eval_files: list[str], task: Task, label_map: LabelMap) -> tuple[list[str], int]:
    """Runs ``serving_default`` on two stored images; problems with what comes back, and the embedding width."""
    import numpy as np
    import tensorflow as tf

    from components.core.examples.features import IMAGE_ENCODED

    encoded = []
    for raw in tf.data.TFRecordDataset(eval_files, compression_type="GZIP" if eval_files[0].endswith(".gz") else None).take(2):
        parsed = tf.io.parse_single_example(raw, {IMAGE_ENCODED: tf.io.FixedLenFeature([], tf.string)})
        encoded.append(parsed[IMAGE_ENCODED])
    if not encoded:
        return [], 0
    try:
        out = {k: np.asarray(v) for k, v in sig(image_bytes=tf.stack(encoded)).items()}
    except Exception as e:
        return [f"serving_default failed on two of the examples' images: {type(e).__name__}: {e}"], 0
    n = len(encoded)
    problems = [f"output {k!r} has {v.shape[0]} rows for {n} images" for k, v in out.items() if v.ndim == 0 or v.shape[0] != n]
    if problems:
        return problems, 0
    known = set(label_map.ids)
    if task == "detection":
        for i in range(n):
            k = int(out["num_detections"][i])
            bad = sorted({int(c) for c in out["detection_classes"][i][:k]} - known)
            if bad:
                problems.append(f"detection_classes holds {bad}, not label-map ids {sorted(known)}")
                break
    elif task == "classification":
        bad = sorted({int(c) for c in out["classes"]} - known)
        if bad:
            problems.append(f"classes holds {bad}, not label-map ids {sorted(known)}")
    else:
        bad = sorted({int(c) for c in np.unique(out["mask"])} - known - {0})
        if bad:
            problems.append(f"mask holds {bad}, not 0 or label-map ids {sorted(known)}")
    return problems, int(out["embedding"].shape[-1])


def _run_user_fn(
    ctx: StepContext,
    examples_dir: Path,
    label_map_path: Path,
    label_map: LabelMap,
    model_dir: Path,
    report_dir: Path,
    image_size: tuple[int, int],
    strategy: Any,
    plan: StrategyPlan,
    parent: tuple[Path | None, int | None],
    u: ArtifactUris,
    t_start: float,
) -> TrainResult:
    """``train.run_fn``: the user's function trains and writes the SavedModel; cvpipe checks it and records lineage."""
    import tensorflow as tf

    from components.core.examples import shard_paths
    from components.core.io import atomic_write_json
    from components.core.predictor import SAVED_MODEL_DIR, signature_problems

    from .user import FnArgs, call_run_fn

    spec = ctx.spec.train
    ref = str(spec.run_fn)
    task: Task = ctx.spec.task
    log = ctx.log
    parent_dir, parent_id = parent
    train_files = [str(p) for p in shard_paths(examples_dir, "train")]
    index = load_index(examples_dir)
    has_val = index.splits.get("validation") is not None and index.splits["validation"].records > 0
    eval_files = [str(p) for p in shard_paths(examples_dir, "validation")] if has_val else train_files
    sm_dir = model_dir / SAVED_MODEL_DIR
    shutil.rmtree(sm_dir, ignore_errors=True)  # a retried task must not pass on the last attempt's export
    hp: dict[str, Any] = {
        **spec.hyperparameters,
        "learning_rate": float(spec.learning_rate),
        "epochs": spec.epochs,
        "batch_size": spec.batch_size,
        "seed": spec.seed,
    }
    args = FnArgs(
        train_files=train_files,
        eval_files=eval_files,
        examples_dir=str(examples_dir),
        label_map=label_map,
        label_map_path=str(label_map_path),
        task=task,
        image_size=image_size,
        hyperparameters=hp,
        strategy=strategy,
        serving_model_dir=str(sm_dir),
        model_run_dir=str(model_dir / "run"),
        model_dir=str(model_dir),
        base_model=str(parent_dir) if parent_dir is not None else None,
        log=log,
        custom_config=spec.model_dump(mode="json"),
    )
    log.info("train.run_fn %s: %d training and %d evaluation shards, strategy %s", ref, len(train_files), len(eval_files), plan.description)
    returned = call_run_fn(ref, args)

    where = f"train.run_fn {ref!r} wrote {sm_dir}"
    if not (sm_dir / "saved_model.pb").is_file():
        raise TrainingError(f"train.run_fn {ref!r} returned without writing a SavedModel to fn_args.serving_model_dir ({sm_dir})")
    try:
        loaded = tf.saved_model.load(str(sm_dir))
    except Exception as e:
        raise TrainingError(f"{where}, which cannot be loaded: {e}") from None
    problems = signature_problems(loaded, task, label_map.num_classes)
    emb_dim = 0
    if not problems:
        problems, emb_dim = _smoke_outputs(loaded.signatures[SERVING_BYTES], eval_files, task, label_map)
    if problems:
        raise TrainingError(
            f"{where}, which does not follow cvpipe's serving signature for {task}: "
            + "; ".join(problems)
            + " (components.train.export.export_saved_model writes one from a model that follows the output contract; see docs/train.md)"
        )
    images_sig = loaded.signatures.get(SERVING_IMAGES)
    if images_sig is not None:
        shape = images_sig.structured_input_signature[1]["images"].shape
        if shape[1] is not None and shape[2] is not None:
            image_size = (int(shape[1]), int(shape[2]))
    history = [dict(r) for r in returned.get("history", [])]
    best = float(returned.get("best_val_loss", min((r.get("val_loss", math.inf) for r in history), default=math.nan)))
    best_epoch = int(returned.get("best_epoch", 0))
    epochs_run = int(returned.get("epochs", len(history)))
    info: dict[str, Any] = {
        "task": task,
        "architecture": ref,
        "trained_by": "run_fn",
        "model_name": ctx.spec.model_name,
        "pipeline": ctx.spec.name,
        "run_id": ctx.run_id,
        "image_size": list(image_size),
        "num_classes": label_map.num_classes,
        "label_map_version": label_map.version,
        "label_ids": label_map.ids,
        "embedding_dim": emb_dim,
        "epochs_run": epochs_run,
        "best_epoch": best_epoch,
        "best_val_loss": best,
        "hyperparameters": hp,
        "precision": plan.precision,
        "strategy": plan.description,
        "parent": {"ref": spec.parent, "artifact_id": parent_id} if spec.parent else None,
        "signatures": sorted(loaded.signatures),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "tensorflow": tf.__version__,
    }
    label_map.save(model_dir / LABEL_MAP_FILE)
    atomic_write_json(model_dir / MODEL_INFO_FILE, info)
    overfit = detect_overfitting(history)
    report: dict[str, Any] = {
        **{k: info[k] for k in ("task", "architecture", "model_name", "image_size", "num_classes", "label_map_version")},
        "trained_by": f"train.run_fn {ref}",
        "epochs_max": spec.epochs,
        "epochs_run": epochs_run,
        "best_epoch": best_epoch,
        "best_val_loss": best,
        "stopped_early": False,
        "overfitting": overfit,
        "history": history,
        "resumed_from_step": 0,
        "hyperparameters": hp,
        "strategy": plan.description,
        "precision": plan.precision,
        "parent": info["parent"],
        "seconds": round(time.monotonic() - t_start, 1),
    }
    write_report(report, report_dir, model_dir)
    inputs = _lineage_inputs(ctx, u, examples_dir, label_map_path, label_map, parent_id)
    props = _model_properties(ctx, ref, task, image_size, best, epochs_run, parent_id, label_map)
    recorded = ctx.record(
        inputs,
        {
            "model": NewArtifact("Model", u.uri("model", model_dir), props),
            "report": NewArtifact("Report", u.uri("report", report_dir), {"kind": "training", "overfitting": bool(overfit["overfitting"])}),
        },
        {"epochs_run": epochs_run, "strategy": plan.description, "run_fn": ref},
    )
    log.info("train.run_fn %s: SavedModel checked (%s), %d epochs", ref, ", ".join(sorted(loaded.signatures)), epochs_run)
    return TrainResult(
        model_dir=model_dir,
        report_dir=report_dir,
        task=task,
        architecture=ref,
        image_size=image_size,
        epochs_run=epochs_run,
        best_epoch=best_epoch,
        best_val_loss=best,
        stopped_early=False,
        overfitting=bool(overfit["overfitting"]),
        resumed_from_step=0,
        strategy=plan.description,
        hyperparameters={k: float(v) for k, v in hp.items() if isinstance(v, int | float) and not isinstance(v, bool)},
        parent_artifact_id=parent_id,
        artifacts=recorded,
    )

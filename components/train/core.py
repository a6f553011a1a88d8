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
"""

from __future__ import annotations

import math
import os
import shutil
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
from components.core.step import ArtifactUris, StepContext

from .data import InputPipeline
from .export import WEIGHTS_FILE, export_saved_model, export_tflite
from .loop import FitResult, LoopConfig, Trainer, make_optimizer
from .models import build_model, embedding_dim, load_backbone_weights, resolve_architecture, transfer_weights
from .report import detect_overfitting, write_report
from .strategy import StrategyPlan, build_strategy, mixed_precision
from .tuner import TunerOutcome, search, write_hyperparameters

__all__ = ["CHECKPOINT_DIR", "TrainResult", "TrainUris", "resolve_parent", "run"]

CHECKPOINT_DIR = "checkpoints"
"""Work directory inside the model directory: step checkpoints, best weights, tuner state."""
_REPRESENTATIVE_IMAGES = 64


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


def _build(setup: _Setup, log: Any) -> Any:
    """A model for this run, initialised from pretrained weights and/or the parent."""
    import tensorflow as tf

    with setup.strategy.scope(), mixed_precision(setup.plan.precision):
        model = build_model(setup.task, setup.architecture, setup.label_map.num_classes, setup.image_size)
    if setup.pretrained:
        load_backbone_weights(model, setup.pretrained)
    if setup.parent_dir is not None and setup.parent_info is not None:
        parent_lm = LabelMap.load(setup.parent_dir / LABEL_MAP_FILE)
        with tf.device("/cpu:0"):
            parent = build_model(setup.task, setup.architecture, parent_lm.num_classes, setup.image_size)
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
    setup: _Setup, hp: dict[str, float], epochs: int, patience: int, checkpoint_every: int, work_dir: Path | None, log: Any
) -> tuple[Any, FitResult]:
    model = _build(setup, log)
    with setup.strategy.scope():
        optimizer = make_optimizer(hp["learning_rate"], hp["weight_decay"], epochs * setup.train.steps_per_epoch, setup.plan.precision)
    trainer = Trainer(
        model, setup.task, optimizer, setup.strategy, setup.train, setup.val, LoopConfig(epochs, patience, checkpoint_every), log, work_dir
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
        The result.

    Raises:
        TrainingError: unusable inputs, a parent that does not fit, a diverging loss.
    """
    t_start = time.monotonic()
    examples_dir, model_dir, report_dir, hparams_dir = Path(examples_dir), Path(model_dir), Path(report_dir), Path(hparams_dir)
    u = ArtifactUris.of(uris)
    spec = ctx.spec.train
    log = ctx.log
    label_map = LabelMap.load(label_map_path)
    task = _check_inputs(ctx, examples_dir, label_map)
    architecture = resolve_architecture(task, spec.model)
    image_size = (int(spec.image_size[0]), int(spec.image_size[1]))

    strategy, plan = build_strategy(spec.accelerator)
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
        if parent_info.get("task") != task or parent_info.get("architecture") != architecture:
            raise TrainingError(
                f"train.parent {spec.parent} is a {parent_info.get('task')} {parent_info.get('architecture')} model; "
                f"it cannot warm-start a {task} {architecture} model"
            )
        log.info("warm start from %s (%s, Model artifact %d)", spec.parent, parent_dir, parent_id)

    train = InputPipeline(str(examples_dir), "train", task, label_map, image_size, spec.batch_size, training=True, seed=spec.seed)
    val_split = "validation"
    val = InputPipeline(str(examples_dir), val_split, task, label_map, image_size, spec.batch_size)
    if val.num_examples == 0:
        val_split = "train"
        val = InputPipeline(str(examples_dir), "train", task, label_map, image_size, spec.batch_size)
        log.warning("no validation examples: early stopping watches the training split's loss")
    log.info("%d training and %d validation examples, %d steps per epoch", train.num_examples, val.num_examples, train.steps_per_epoch)

    setup = _Setup(task, architecture, label_map, image_size, strategy, plan, train, val, spec.pretrained_weights, parent_dir, parent_info)
    import keras

    keras.utils.set_random_seed(spec.seed)
    work = model_dir / CHECKPOINT_DIR
    hp = {"learning_rate": float(spec.learning_rate), "weight_decay": 1e-4}
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
    model, fit = _train(setup, hp, spec.epochs, spec.early_stopping_patience, spec.checkpoint_every_steps, work / "train", log)
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
    if task == "detection":
        from .detector import STRIDE

        info["output_stride"] = STRIDE
    import tensorflow as tf

    info["tensorflow"] = tf.__version__
    info["keras"] = keras.__version__
    export_saved_model(model, task, image_size, label_map, model_dir, info)
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

    inputs: dict[str, ArtifactRef | None] = {
        "examples": ctx.input_artifact(u.uri("examples", examples_dir), "Examples"),
        "label_map": ctx.input_artifact(
            u.uri("label_map", label_map_path), "LabelMap", {"version": label_map.version, "num_classes": label_map.num_classes}
        ),
        "parent_model": ctx.store.get(parent_id) if parent_id is not None else None,
    }
    props: dict[str, Any] = {
        "model_name": ctx.spec.model_name,
        "architecture": architecture,
        "task": task,
        "image_size": f"{image_size[0]}x{image_size[1]}",
        "val_loss": fit.best_val_loss if math.isfinite(fit.best_val_loss) else None,
        "epochs": fit.epochs_run,
        "pipeline": ctx.spec.name,
        "run_id": ctx.run_id,
        "parent": parent_id,
        "num_classes": label_map.num_classes,
        "label_map_version": label_map.version,
    }
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

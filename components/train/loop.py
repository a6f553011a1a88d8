"""The training loop: distributed steps, validation, early stopping and step checkpoints.

A plain ``tf.function`` loop under a ``tf.distribute`` strategy rather than
``model.fit``, because it must resume *inside* an epoch: every
``checkpoint_every_steps`` steps it saves one ``tf.train.Checkpoint`` holding
the model, the optimizer (its step counter drives the learning-rate
schedule), the position ``(epoch, step in epoch, global step)`` and the
loop's own state as JSON (loss history, best validation loss, patience
counter, where the best weights are). A trainer started again on the same
work directory restores it and continues with the next unseen batch (see
:class:`~components.train.data.InputPipeline`), so no step is trained twice
and none is skipped.

Best weights (lowest validation loss) are written beside the checkpoints at
the end of each improving epoch and restored when training stops.

Under ``MultiWorkerMirroredStrategy`` every process runs this loop in sync
and saves its checkpoints (saving may take part in collectives), but only the
chief's count: a non-chief worker writes to its own scratch ``work_dir`` and
restores from the chief's (``restore_from``), so a restarted cluster resumes
every worker from the same step.
"""

from __future__ import annotations

import itertools
import json
import math
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from logging import Logger
from pathlib import Path
from typing import Any

from components.core.errors import TrainingError
from components.core.manifest import Task

from .data import InputPipeline
from .models import compute_losses

__all__ = ["FitResult", "LoopConfig", "Trainer", "make_optimizer"]


@dataclass(frozen=True)
class LoopConfig:
    """Options of one training loop.

    Attributes:
        epochs: maximum epochs.
        patience: epochs without validation improvement before stopping.
        checkpoint_every_steps: step-checkpoint interval (0: no checkpoints).
        min_delta: smallest validation-loss decrease that counts as an improvement.
        log_every_s: seconds between per-step log lines.
    """

    epochs: int
    patience: int
    checkpoint_every_steps: int = 50
    min_delta: float = 1e-4
    log_every_s: float = 10.0


@dataclass
class FitResult:
    """What a training loop did.

    Attributes:
        history: one dict per finished epoch: ``epoch`` (1-based), ``loss``, ``val_loss``,
            loss parts (``heatmap_loss``...), ``learning_rate``, ``seconds``, ``images_per_s``.
        best_epoch: 1-based epoch of the lowest validation loss (0 when none finished).
        best_val_loss: that loss (``inf`` when none finished).
        stopped_early: whether patience ran out before ``epochs``.
        resumed_from_step: global step restored from a checkpoint (0 on a fresh start).
        steps_run: steps this process trained.
        global_step: steps trained in total, across restarts.
        steps_per_epoch: batches per epoch.
    """

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_val_loss: float = math.inf
    stopped_early: bool = False
    resumed_from_step: int = 0
    steps_run: int = 0
    global_step: int = 0
    steps_per_epoch: int = 0

    @property
    def epochs_run(self) -> int:
        """Epochs finished (across restarts)."""
        return len(self.history)


def make_optimizer(learning_rate: float, weight_decay: float, total_steps: int, precision: str) -> Any:
    """AdamW with linear warm-up and cosine decay (wrapped for loss scaling under float16).

    Args:
        learning_rate: peak learning rate.
        weight_decay: decoupled weight decay.
        total_steps: steps of the whole run (epochs x steps per epoch).
        precision: the dtype policy name.

    Returns:
        The Keras optimizer.
    """
    import keras

    warmup = max(1, min(total_steps // 10, 200))
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=learning_rate * 0.1,
        decay_steps=max(1, total_steps - warmup),
        alpha=0.05,
        warmup_target=learning_rate,
        warmup_steps=warmup,
    )
    opt = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=weight_decay, clipnorm=10.0)
    if precision == "mixed_float16":
        opt = keras.optimizers.LossScaleOptimizer(opt)
    return opt


class Trainer:
    """Trains one model on one input pipeline, validating each epoch.

    Args:
        model: the Keras model (built under ``strategy.scope()``).
        task: the task (selects the loss).
        optimizer: from :func:`make_optimizer` (built under the same scope).
        strategy: the ``tf.distribute`` strategy.
        train: training batches.
        val: validation batches.
        config: loop options.
        log: where progress lines go.
        work_dir: where step checkpoints (``ckpt-<global step>``) and best weights (``best/``)
            live (None: no checkpoints, no resume).
        loss_fn: ``(images, outputs, targets) -> {"loss": ..., parts}`` (default: the task's
            loss, :func:`~components.train.models.compute_losses`).
        restore_from: the directory whose latest checkpoint a restart resumes from (default:
            ``work_dir``); a non-chief worker of a multi-worker run names the chief's.
        restore_best: restore the best weights when training stops (a non-chief worker, which
            exports nothing, skips it).
    """

    def __init__(
        self,
        model: Any,
        task: Task,
        optimizer: Any,
        strategy: Any,
        train: InputPipeline,
        val: InputPipeline,
        config: LoopConfig,
        log: Logger,
        work_dir: Path | None = None,
        loss_fn: Callable[[Any, Any, Any], dict[str, Any]] | None = None,
        restore_from: Path | None = None,
        restore_best: bool = True,
    ):
        import tensorflow as tf

        self.model = model
        self.task = task
        self.loss_fn = loss_fn or (lambda x, out, y: compute_losses(task, out, y))
        self.optimizer = optimizer
        self.strategy = strategy
        self.train = train
        self.val = val
        self.config = config
        self.log = log
        self.work_dir = work_dir
        self.restore_from = restore_from if restore_from is not None else work_dir
        self.restore_best = restore_best
        with strategy.scope():
            optimizer.build(model.trainable_variables)
            self._global_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
            self._epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
            self._step_in_epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="step_in_epoch")
        # outside the scope: MultiWorkerMirroredStrategy cannot broadcast a string variable's initial value
        # (every process assigns the same JSON anyway)
        self._state = tf.Variable("{}", dtype=tf.string, trainable=False, name="loop_state")
        self._ckpt = tf.train.Checkpoint(
            model=model,
            optimizer=optimizer,
            global_step=self._global_step,
            epoch=self._epoch,
            step_in_epoch=self._step_in_epoch,
            state=self._state,
        )
        self._manager = None
        if work_dir is not None:
            self._manager = tf.train.CheckpointManager(self._ckpt, str(work_dir), max_to_keep=2)
        self._run_iterator: Any = None
        self._val_dataset: Any = None
        self._train_step = self._make_train_step()
        self._eval_step = self._make_eval_step()

    # -- compiled steps ---------------------------------------------------------------
    def _make_train_step(self) -> Any:
        import tensorflow as tf

        model, loss_fn, opt, strategy = self.model, self.loss_fn, self.optimizer, self.strategy
        scales = hasattr(opt, "scale_loss")
        replicas = float(strategy.num_replicas_in_sync)

        def step_fn(x: Any, y: Any) -> dict[str, Any]:
            with tf.GradientTape() as tape:
                out = model(x, training=True)
                losses = loss_fn(x, out, y)
                loss = losses["loss"] / replicas
                scaled = opt.scale_loss(loss) if scales else loss
            variables = model.trainable_variables
            grads = tape.gradient(scaled, variables)
            opt.apply_gradients(zip(grads, variables, strict=True))
            return losses

        @tf.function(reduce_retracing=True)
        def train_step(x: Any, y: Any) -> dict[str, Any]:
            per_replica = strategy.run(step_fn, args=(x, y))
            return {k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None) for k, v in per_replica.items()}

        return train_step

    def _make_eval_step(self) -> Any:
        import tensorflow as tf

        model, loss_fn, strategy = self.model, self.loss_fn, self.strategy

        def step_fn(x: Any, y: Any) -> dict[str, Any]:
            return loss_fn(x, model(x, training=False), y)

        @tf.function(reduce_retracing=True)
        def eval_step(x: Any, y: Any) -> dict[str, Any]:
            per_replica = strategy.run(step_fn, args=(x, y))
            return {k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None) for k, v in per_replica.items()}

        return eval_step

    # -- state ------------------------------------------------------------------------
    def _restore(self) -> dict[str, Any]:
        import tensorflow as tf

        state: dict[str, Any] = {"history": [], "best_val_loss": None, "best_epoch": 0, "wait": 0, "best_path": None}
        if self._manager is None or self.restore_from is None:
            return state
        latest = tf.train.latest_checkpoint(str(self.restore_from))
        if latest is None:
            return state
        try:
            self._ckpt.restore(latest).assert_existing_objects_matched()
        except (AssertionError, ValueError) as e:
            raise TrainingError(
                f"checkpoint {latest} does not fit this model (a different architecture or label map?); remove {self.restore_from} to start over: {e}"
            ) from None
        state.update(json.loads(self._state.numpy().decode()))
        self.log.info(
            "resuming from checkpoint %s: global step %d (epoch %d, step %d of it)",
            latest,
            int(self._global_step.numpy()),
            int(self._epoch.numpy()) + 1,
            int(self._step_in_epoch.numpy()),
        )
        return state

    def _save(self, state: dict[str, Any]) -> None:
        if self._manager is None:
            return
        self._state.assign(json.dumps(state))
        self._manager.save(checkpoint_number=int(self._global_step.numpy()))

    def _write_best(self, epoch: int) -> str | None:
        import tensorflow as tf

        if self.work_dir is None:
            self._best_in_memory = [v.numpy() for v in self.model.weights]
            return None
        prefix = self.work_dir / "best" / f"epoch-{epoch}"
        return str(tf.train.Checkpoint(model=self.model).write(str(prefix)))

    def _restore_best(self, state: dict[str, Any]) -> None:
        import tensorflow as tf

        path = state.get("best_path")
        if path:
            tf.train.Checkpoint(model=self.model).read(path).assert_existing_objects_matched()
        elif getattr(self, "_best_in_memory", None) is not None:
            for v, value in zip(self.model.weights, self._best_in_memory, strict=True):
                v.assign(value)

    def _prune_best(self, keep: str | None) -> None:
        if self.work_dir is None:
            return
        best_dir = self.work_dir / "best"
        if not best_dir.is_dir():
            return
        keep_name = Path(keep).name if keep else None
        for p in best_dir.iterdir():
            if keep_name is None or not p.name.startswith(keep_name + "."):
                p.unlink(missing_ok=True)

    def _learning_rate(self) -> float:
        opt = getattr(self.optimizer, "inner_optimizer", self.optimizer)
        lr = opt.learning_rate
        try:
            return float(lr.numpy()) if hasattr(lr, "numpy") else float(lr)
        except (TypeError, ValueError):
            return float("nan")

    # -- the loop ---------------------------------------------------------------------
    def _batches(self, epoch: int, start_epoch: int, skip: int) -> Iterable[Any]:
        """The (distributed) batches of one epoch.

        With the cache, one iterator serves every epoch of this run (nothing is rebuilt
        between epochs, prefetching carries on while the trainer validates); without it,
        each epoch gets its own dataset (whose parallel decoding owns threads).
        """
        if not self.train.cache:
            return self.strategy.experimental_distribute_dataset(self.train.dataset(epoch, skip))  # type: ignore[no-any-return]
        if self._run_iterator is None:
            ds = self.train.epochs(start_epoch, self.config.epochs, skip)
            self._run_iterator = iter(self.strategy.experimental_distribute_dataset(ds))
        return itertools.islice(self._run_iterator, self.train.steps_per_epoch - skip)

    def fit(self) -> FitResult:
        """Trains until ``epochs`` or early stopping; restores the best weights.

        Returns:
            What happened.

        Raises:
            TrainingError: no training examples, a non-finite loss, or an unusable checkpoint.
        """
        cfg = self.config
        spe = self.train.steps_per_epoch
        if spe == 0:
            raise TrainingError(f"{self.train.examples_dir}: the {self.train.split} split has no examples")
        state = self._restore()
        result = FitResult(resumed_from_step=int(self._global_step.numpy()), steps_per_epoch=spe)
        start_epoch = int(self._epoch.numpy())
        if start_epoch >= cfg.epochs or (state["wait"] >= cfg.patience and state["history"]):
            self.log.info("training had already finished in %s", self.work_dir)
        epoch = start_epoch
        while epoch < cfg.epochs and not (state["wait"] >= cfg.patience and state["history"]):
            skip = int(self._step_in_epoch.numpy()) if epoch == start_epoch else 0
            if skip:
                self.log.info("epoch %d: skipping the %d batches trained before the restart", epoch + 1, skip)
            sums: dict[str, float] = {}
            seen = 0
            t0 = last_log = time.monotonic()
            for step, (x, y) in enumerate(self._batches(epoch, start_epoch, skip), start=skip + 1):
                losses = self._train_step(x, y)
                values = {k: float(v.numpy()) for k, v in losses.items()}
                if not math.isfinite(values["loss"]):
                    raise TrainingError(f"loss became {values['loss']} at epoch {epoch + 1} step {step}; lower train.learning_rate")
                for k, v in values.items():
                    sums[k] = sums.get(k, 0.0) + v
                seen += 1
                self._global_step.assign_add(1)
                self._step_in_epoch.assign(step)
                result.steps_run += 1
                gstep = int(self._global_step.numpy())
                if cfg.checkpoint_every_steps and gstep % cfg.checkpoint_every_steps == 0:
                    self._save(state)
                now = time.monotonic()
                if now - last_log >= cfg.log_every_s:
                    last_log = now
                    self.log.info("epoch %d/%d step %d/%d (global %d): loss %.4f", epoch + 1, cfg.epochs, step, spe, gstep, values["loss"])
            seconds = time.monotonic() - t0
            val = self.evaluate()
            row: dict[str, float] = {"epoch": float(epoch + 1)}
            row.update({k: v / max(seen, 1) for k, v in sums.items()})
            row.update({f"val_{k}": v for k, v in val.items()})
            row["learning_rate"] = self._learning_rate()
            row["seconds"] = round(seconds, 3)
            row["images_per_s"] = round(seen * self.train.batch_size / max(seconds, 1e-9), 2)
            state["history"].append(row)
            best = state["best_val_loss"]
            improved = best is None or row["val_loss"] < best - cfg.min_delta
            if improved:
                state["best_val_loss"] = row["val_loss"]
                state["best_epoch"] = epoch + 1
                state["wait"] = 0
                state["best_path"] = self._write_best(epoch + 1)
            else:
                state["wait"] += 1
            self.log.info(
                "epoch %d/%d: loss %.4f val_loss %.4f%s lr %.2e %.1f img/s%s",
                epoch + 1,
                cfg.epochs,
                row.get("loss", float("nan")),
                row["val_loss"],
                "".join(
                    f" {k} {v:.4f}"
                    for k, v in row.items()
                    if k.endswith("_loss") and k not in ("loss", "val_loss") and not k.startswith("val_")
                ),
                row["learning_rate"],
                row["images_per_s"],
                " (best)" if improved else f" (no improvement for {state['wait']})",
            )
            epoch += 1
            self._epoch.assign(epoch)
            self._step_in_epoch.assign(0)
            self._save(state)
            self._prune_best(state["best_path"])
        result.stopped_early = bool(state["history"]) and state["wait"] >= cfg.patience and len(state["history"]) < cfg.epochs
        if result.stopped_early:
            self.log.info("early stopping: no validation improvement for %d epochs", cfg.patience)
        if self.restore_best:
            self._restore_best(state)
        result.history = state["history"]
        result.best_epoch = int(state["best_epoch"])
        result.best_val_loss = float(state["best_val_loss"]) if state["best_val_loss"] is not None else math.inf
        result.global_step = int(self._global_step.numpy())
        if result.best_epoch and self.restore_best:
            self.log.info("restored the weights of epoch %d (val_loss %.4f)", result.best_epoch, result.best_val_loss)
        return result

    def evaluate(self) -> dict[str, float]:
        """Mean losses over the validation split.

        Returns:
            Loss name -> value (weighted by batch size).
        """
        sums: dict[str, float] = {}
        count = 0
        if self._val_dataset is None:  # the same batches every epoch: built once
            self._val_dataset = self.val.dataset()
        for x, y in self._val_dataset:
            n = int(x.shape[0])
            for k, v in self._eval_step(x, y).items():
                sums[k] = sums.get(k, 0.0) + float(v.numpy()) * n
            count += n
        if count == 0:
            raise TrainingError(f"{self.val.examples_dir}: the {self.val.split} split has no examples")
        return {k: v / count for k, v in sums.items()}

    def cleanup(self) -> None:
        """Removes the work directory: checkpoints and best weights (after a successful export)."""
        if self.work_dir is not None:
            shutil.rmtree(self.work_dir, ignore_errors=True)

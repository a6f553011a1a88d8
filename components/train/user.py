"""User code in training: a model build function (``train.model``) and a training function (``train.run_fn``).

**A build function** ``train.model: "mypackage.models:build"``::

    def build(task: str, num_classes: int, image_size: tuple[int, int], hyperparameters: dict) -> keras.Model

It is called inside the distribution strategy's scope and dtype policy and
returns an untrained ``keras.Model`` that takes float32 pixels
``[B, H, W, 3]`` in 0..255 (normalise inside the model) and returns the
task's dict of outputs, which cvpipe's losses, export and serving use as
they use its own models' (:mod:`components.train.models`):

==============  =====================================================================
task            outputs
==============  =====================================================================
classification  ``logits`` ``[B, C]``, ``embedding`` ``[B, D]``
detection       ``heatmap`` logits ``[B, H/4, W/4, C]``, ``ltrb`` distances ``[B, H/4, W/4, 4]``
                (input pixels, >= 0), ``embedding`` ``[B, D]``
segmentation    ``logits`` ``[B, H, W, C+1]`` (channel 0: background), ``embedding`` ``[B, D]``
==============  =====================================================================

Class channels follow the label map's dense order. A layer named
``class_head`` (last weight axis = classes) lets a warm start carry class
weights over by label-map id; a sub-model named ``backbone`` is where
``train.pretrained_weights`` loads. :func:`check_outputs` says what does not fit.

**A training function** ``train.run_fn: "mypackage.train:run_fn"`` (TFX Trainer style)::

    def run_fn(fn_args: cvpipe.FnArgs) -> dict | None

receives :class:`FnArgs` (TFRecord paths per split, label map, hyperparameters,
the ``tf.distribute`` strategy, output directories) and writes a SavedModel to
``fn_args.serving_model_dir`` with cvpipe's serving signature;
:func:`components.train.export.export_saved_model` writes one from any model
that follows the output contract above. cvpipe checks the signature
(:func:`components.core.predictor.signature_problems`) before anything evaluates it.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from logging import Logger
from pathlib import Path
from typing import Any

from components.core.errors import TrainingError
from components.core.labelmap import LabelMap
from components.core.manifest import Task

__all__ = ["FnArgs", "check_outputs", "load_function"]

_REQUIRED: dict[str, dict[str, int]] = {
    "classification": {"logits": 2, "embedding": 2},
    "detection": {"heatmap": 4, "ltrb": 4, "embedding": 2},
    "segmentation": {"logits": 4, "embedding": 2},
}


def load_function(ref: str, key: str) -> Callable[..., Any]:
    """Imports ``package.module:function``.

    Args:
        ref: the reference.
        key: the spec key that names it (for messages), e.g. ``train.model``.

    Returns:
        The callable.

    Raises:
        TrainingError: the module cannot be imported, has no such attribute, or it is not callable.
    """
    module_name, _, attr = ref.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        raise TrainingError(
            f"{key} {ref!r}: cannot import module {module_name!r} ({e}); install the package in the training image "
            f"or put it on PYTHONPATH (searched: {', '.join(sys.path[:4])}, ...)"
        ) from None
    except Exception as e:
        raise TrainingError(f"{key} {ref!r}: importing {module_name!r} failed: {type(e).__name__}: {e}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise TrainingError(f"{key} {ref!r}: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise TrainingError(f"{key} {ref!r}: {attr!r} is a {type(obj).__name__}, not a function")
    return obj  # type: ignore[no-any-return]


def build_user_model(ref: str, task: Task, num_classes: int, image_size: tuple[int, int], hyperparameters: dict[str, Any]) -> Any:
    """Calls a user build function and checks what it returns.

    Args:
        ref: ``package.module:function``.
        task: the task.
        num_classes: classes in the label map.
        image_size: model input ``(height, width)``.
        hyperparameters: ``train.hyperparameters`` (plus the learning rate and weight decay).

    Returns:
        The model.

    Raises:
        TrainingError: the function fails or its model does not follow the task's output contract.
    """
    fn = load_function(ref, "train.model")
    try:
        model = fn(task, num_classes, image_size, dict(hyperparameters))
    except TrainingError:
        raise
    except Exception as e:
        raise TrainingError(f"train.model {ref!r} raised {type(e).__name__}: {e}") from e
    problems = check_outputs(model, task, num_classes, image_size)
    if problems:
        raise TrainingError(f"train.model {ref!r}: the model does not follow the {task} output contract: " + "; ".join(problems))
    return model


def check_outputs(model: Any, task: Task, num_classes: int, image_size: tuple[int, int]) -> list[str]:
    """What about a model's inputs and outputs does not follow the task's contract.

    Args:
        model: a Keras model (or anything else: that is reported).
        task: the task.
        num_classes: classes in the label map.
        image_size: model input ``(height, width)``.

    Returns:
        Problems in words (empty: it fits).
    """
    import keras

    if not isinstance(model, keras.Model):
        return [f"returned a {type(model).__name__}, not a keras.Model"]
    problems: list[str] = []
    shape = tuple(model.inputs[0].shape) if getattr(model, "inputs", None) else None
    h, w = image_size
    if shape is not None and (len(shape) != 4 or shape[1] not in (None, h) or shape[2] not in (None, w) or shape[3] != 3):
        problems.append(f"its input is {shape}, expected (None, {h}, {w}, 3)")
    outputs = getattr(model, "output", None)
    if not isinstance(outputs, dict):
        return [*problems, f"its output must be a dict with {', '.join(_REQUIRED[task])}, got {type(outputs).__name__}"]
    for name, rank in _REQUIRED[task].items():
        if name not in outputs:
            problems.append(f"no output {name!r} (it has {', '.join(sorted(outputs)) or 'none'})")
            continue
        got = tuple(outputs[name].shape)
        if len(got) != rank:
            problems.append(f"output {name!r} has shape {got}, expected rank {rank}")
            continue
        expected: tuple[int | None, ...] | None = None
        if task == "classification" and name == "logits":
            expected = (None, num_classes)
        elif task == "detection" and name == "heatmap":
            expected = (None, h // 4, w // 4, num_classes)
        elif task == "detection" and name == "ltrb":
            expected = (None, h // 4, w // 4, 4)
        elif task == "segmentation" and name == "logits":
            expected = (None, h, w, num_classes + 1)
        if expected is not None and any(e is not None and g is not None and e != g for g, e in zip(got, expected, strict=True)):
            problems.append(f"output {name!r} has shape {got}, expected {expected}")
    return problems


@dataclass
class FnArgs:
    """What ``train.run_fn`` receives (named after TFX's ``FnArgs`` where the meaning is the same).

    Attributes:
        train_files: the training split's TFRecord shards (``components.core.examples`` format,
            read them with :func:`cvpipe.data.read_dataset` or ``tf.data.TFRecordDataset``).
        eval_files: the validation split's shards (the training split's when there is none).
        examples_dir: the examples directory (``examples.json`` indexes every split).
        label_map: the label map; class ids in every output are its ids.
        label_map_path: its file.
        task: classification, detection or segmentation.
        image_size: model input ``(height, width)`` from ``train.image_size``.
        hyperparameters: ``train.hyperparameters`` plus ``learning_rate``, ``epochs``, ``batch_size``, ``seed``.
        strategy: the ``tf.distribute`` strategy cvpipe picked for the machine (build under its scope).
        serving_model_dir: where the SavedModel must be written (``<model_dir>/saved_model``).
        model_run_dir: a directory for checkpoints and logs (kept with the model).
        model_dir: the model directory (cvpipe writes ``label_map.json`` and ``model_info.json`` there).
        base_model: the warm-start parent's model directory (``train.parent``), or None.
        custom_config: the whole ``train`` section as a dict.
        log: a logger.
    """

    train_files: list[str]
    eval_files: list[str]
    examples_dir: str
    label_map: LabelMap
    label_map_path: str
    task: Task
    image_size: tuple[int, int]
    hyperparameters: dict[str, Any]
    strategy: Any
    serving_model_dir: str
    model_run_dir: str
    model_dir: str
    base_model: str | None
    log: Logger
    custom_config: dict[str, Any] = field(default_factory=dict)

    @property
    def train_steps(self) -> None:
        """TFX has it; cvpipe leaves the step count to the function (``hyperparameters['epochs']``)."""
        return None


def call_run_fn(ref: str, args: FnArgs) -> dict[str, Any]:
    """Runs ``train.run_fn``.

    Args:
        ref: ``package.module:run_fn``.
        args: its arguments.

    Returns:
        What it returned (a dict, possibly empty: ``history`` and ``best_val_loss`` are used when present).

    Raises:
        TrainingError: the function cannot be loaded or fails.
    """
    fn = load_function(ref, "train.run_fn")
    Path(args.model_run_dir).mkdir(parents=True, exist_ok=True)
    try:
        result = fn(args)
    except TrainingError:
        raise
    except Exception as e:
        raise TrainingError(f"train.run_fn {ref!r} raised {type(e).__name__}: {e}") from e
    if result is None:
        return {}
    if not isinstance(result, dict):
        raise TrainingError(f"train.run_fn {ref!r} returned a {type(result).__name__}; return None or a dict")
    return result

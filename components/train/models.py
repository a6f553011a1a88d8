"""Keras models for the three tasks, their losses, and weight transfer between models.

Every model takes float32 pixels ``[B, H, W, 3]`` in 0..255 (normalisation is
inside the model) and returns a dict:

==============  =====================================================================
task            outputs
==============  =====================================================================
classification  ``logits`` ``[B, C]``, ``embedding`` ``[B, D]``
detection       ``heatmap`` logits ``[B, H/4, W/4, C]``, ``ltrb`` distances ``[B, H/4, W/4, 4]``
                (input pixels), ``embedding`` ``[B, D]``
segmentation    ``logits`` ``[B, H, W, C+1]`` (channel 0: background), ``embedding`` ``[B, D]``
==============  =====================================================================

Class channels follow the label map's dense index (:meth:`LabelMap.dense_index`).
Each model has a sub-model named ``backbone`` (where ``pretrained_weights``
load) and one layer named ``class_head`` whose last weight axis is the class
axis, so a warm start can carry class weights over by label-map id when the
label map grew (:func:`transfer_weights`). Output layers are float32 under
mixed precision.

Architectures (``train.model``; ``auto`` = the first of each task):

- classification: ``mobilenet_v3_small``, ``efficientnet_b0`` (keras.applications, ``weights=None``)
- detection: ``compact_detector`` (a small residual CNN + FPN-style neck + CenterNet/TTFNet head),
  ``retinanet`` (keras-hub's ``RetinaNetObjectDetector`` on a ResNet, :mod:`components.train.retinanet`:
  its outputs are ``cls_logits``/``bbox_regression`` per anchor and ``embedding``)
- segmentation: ``unet`` (a small U-Net)
- any task: a user build function ``"package.module:function"`` (:mod:`components.train.user`)
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from components.core.errors import TrainingError
from components.core.manifest import Task
from components.core.spec import ARCHITECTURES, is_function_ref

from . import detector

__all__ = ["ARCHITECTURES", "build_model", "compute_losses", "embedding_dim", "resolve_architecture", "transfer_weights"]


def resolve_architecture(task: Task, name: str) -> str:
    """The architecture to build for a task.

    Args:
        task: the task.
        name: ``train.model`` (``auto``, an architecture name, ``-`` and case ignored, or a user
            build function ``package.module:function``, returned as it is).

    Returns:
        The architecture name (the reference itself for a user function).

    Raises:
        TrainingError: unknown name, or one that does not fit the task.
    """
    if is_function_ref(name):
        return name.strip()
    wanted = name.strip().lower().replace("-", "_")
    if wanted == "auto":
        return ARCHITECTURES[task][0]
    if wanted in ARCHITECTURES[task]:
        return wanted
    other = [t for t, names in ARCHITECTURES.items() if wanted in names]
    if other:
        raise TrainingError(
            f"train.model {name!r} is a {other[0]} architecture; a {task} pipeline can use: {', '.join(ARCHITECTURES[task])}"
        )
    raise TrainingError(f"unknown train.model {name!r} for {task}; choose auto or one of: {', '.join(ARCHITECTURES[task])}")


def _conv_bn(x: Any, filters: int, kernel: int = 3, strides: int = 1, name: str = "", act: bool = True) -> Any:
    import keras

    x = keras.layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x) if act else x


def _res_stage(x: Any, filters: int, name: str) -> Any:
    import keras

    x = _conv_bn(x, filters, 3, 2, f"{name}_down")
    r = _conv_bn(x, filters, 3, 1, f"{name}_a")
    r = _conv_bn(r, filters, 3, 1, f"{name}_b", act=False)
    return keras.layers.ReLU(name=f"{name}_out")(keras.layers.Add(name=f"{name}_add")([x, r]))


def _compact_backbone(image_size: tuple[int, int], widths: tuple[int, ...]) -> Any:
    import keras

    inp = keras.Input((*image_size, 3), name="normalised")
    x = _conv_bn(inp, widths[0], 3, 2, "stem")
    feats = []
    for i, wdt in enumerate(widths[1:]):
        x = _res_stage(x, wdt, f"stage{i + 1}")
        feats.append(x)
    return keras.Model(inp, feats, name="backbone")


def _build_detector(num_classes: int, image_size: tuple[int, int], hp: dict[str, Any]) -> Any:
    import keras

    h, w = image_size
    if h % 32 or w % 32:
        raise TrainingError(f"compact_detector needs an input size divisible by 32, got {h}x{w}")
    widths = (24, 32, 64, 96, 128)
    neck = int(hp.get("neck_width", 64))
    inp = keras.Input((h, w, 3), name="images")
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="normalise")(inp)
    c2, c3, c4, c5 = _compact_backbone(image_size, widths)(x)
    p = _conv_bn(c5, neck, 1, 1, "lat5")
    for level, c in (("4", c4), ("3", c3), ("2", c2)):
        up = keras.layers.UpSampling2D(2, interpolation="nearest", name=f"up{level}")(p)
        lat = _conv_bn(c, neck, 1, 1, f"lat{level}")
        p = _conv_bn(keras.layers.Add(name=f"merge{level}")([up, lat]), neck, 3, 1, f"smooth{level}")
    hm = _conv_bn(p, neck, 3, 1, "heat_head")
    prior = float(-np.log((1 - 0.01) / 0.01))
    heat = keras.layers.Conv2D(num_classes, 1, bias_initializer=keras.initializers.Constant(prior), dtype="float32", name="class_head")(hm)
    bx = _conv_bn(p, neck, 3, 1, "box_head")
    ltrb = keras.layers.Conv2D(4, 1, dtype="float32", name="box_out")(bx)
    ltrb = keras.layers.Activation(lambda t: keras.ops.softplus(t) * 16.0, dtype="float32", name="ltrb")(ltrb)
    emb = keras.layers.GlobalAveragePooling2D(dtype="float32", name="embedding")(c5)
    return keras.Model(inp, {"heatmap": heat, "ltrb": ltrb, "embedding": emb}, name="compact_detector")


def _build_classifier(arch: str, num_classes: int, image_size: tuple[int, int], hp: dict[str, Any]) -> Any:
    import keras

    shape = (*image_size, 3)
    if arch == "mobilenet_v3_small":
        base = keras.applications.MobileNetV3Small(
            input_shape=shape, include_top=False, weights=None, pooling="avg", include_preprocessing=True
        )
    else:
        base = keras.applications.EfficientNetB0(input_shape=shape, include_top=False, weights=None, pooling="avg")
    backbone = keras.Model(base.input, base.output, name="backbone")
    inp = keras.Input(shape, name="images")
    feats = backbone(inp)
    emb = keras.layers.Activation("linear", dtype="float32", name="embedding")(feats)
    x = keras.layers.Dropout(float(hp.get("dropout", 0.2)), name="dropout")(feats)
    logits = keras.layers.Dense(num_classes, dtype="float32", name="class_head")(x)
    return keras.Model(inp, {"logits": logits, "embedding": emb}, name=arch)


def _build_unet(num_classes: int, image_size: tuple[int, int], hp: dict[str, Any]) -> Any:
    import keras

    h, w = image_size
    if h % 16 or w % 16:
        raise TrainingError(f"unet needs an input size divisible by 16, got {h}x{w}")
    widths = (16, 32, 64, 96)
    bottleneck = 128

    enc_in = keras.Input((h, w, 3), name="normalised")
    x = enc_in
    skips = []
    for i, wdt in enumerate(widths):
        x = _conv_bn(x, wdt, 3, 1, f"enc{i}_a")
        x = _conv_bn(x, wdt, 3, 1, f"enc{i}_b")
        skips.append(x)
        x = keras.layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = _conv_bn(x, bottleneck, 3, 1, "mid_a")
    x = _conv_bn(x, bottleneck, 3, 1, "mid_b")
    backbone = keras.Model(enc_in, [*skips, x], name="backbone")

    inp = keras.Input((h, w, 3), name="images")
    feats = backbone(keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="normalise")(inp))
    *skips, x = feats
    emb = keras.layers.GlobalAveragePooling2D(dtype="float32", name="embedding")(x)
    for i in reversed(range(len(widths))):
        x = keras.layers.UpSampling2D(2, interpolation="bilinear", name=f"up{i}")(x)
        x = keras.layers.Concatenate(name=f"cat{i}")([x, skips[i]])
        x = _conv_bn(x, widths[i], 3, 1, f"dec{i}_a")
        x = _conv_bn(x, widths[i], 3, 1, f"dec{i}_b")
    logits = keras.layers.Conv2D(num_classes + 1, 1, dtype="float32", name="class_head")(x)
    return keras.Model(inp, {"logits": logits, "embedding": emb}, name="unet")


def build_model(task: Task, architecture: str, num_classes: int, image_size: tuple[int, int], hparams: dict[str, Any] | None = None) -> Any:
    """Builds an untrained model (call inside the strategy's scope and dtype policy).

    Args:
        task: the task.
        architecture: an architecture of :data:`ARCHITECTURES` for the task, or a user build function.
        num_classes: classes in the label map (background not counted).
        image_size: input ``(height, width)``.
        hparams: architecture options (``dropout``, ``neck_width``; for retinanet ``backbone`` and
            ``preset``), all of ``train.hyperparameters`` for a user function.

    Returns:
        The ``keras.Model``.

    Raises:
        TrainingError: an unknown architecture or an input size the architecture cannot take.
    """
    hp = dict(hparams or {})
    if num_classes < 1:
        raise TrainingError("the label map has no classes")
    if is_function_ref(architecture):
        from .user import build_user_model

        return build_user_model(architecture, task, num_classes, image_size, hp)
    if architecture == "retinanet":
        from .retinanet import build_retinanet

        return build_retinanet(num_classes, image_size, hp)
    if task == "classification":
        return _build_classifier(architecture, num_classes, image_size, hp)
    if task == "detection":
        return _build_detector(num_classes, image_size, hp)
    return _build_unet(num_classes, image_size, hp)


def embedding_dim(model: Any) -> int:
    """Length of a model's ``embedding`` output."""
    return int(model.output["embedding"].shape[-1])


def compute_losses(task: Task, outputs: dict[str, Any], targets: dict[str, Any]) -> dict[str, Any]:
    """The task's training loss and its parts.

    Args:
        task: the task.
        outputs: the model's outputs for a batch.
        targets: the batch's targets (see :mod:`components.train.data`).

    Returns:
        ``loss`` (what is minimised) and named parts, float32 scalars.
    """
    import tensorflow as tf

    if task == "detection" and "cls_logits" in outputs:
        raise TrainingError("retinanet outputs need the detector's own loss (components.train.retinanet.RetinaNetLoss)")
    if task == "detection":
        return detector.detection_losses(outputs, targets)
    logits = tf.cast(outputs["logits"], tf.float32)
    if task == "classification":
        ce = tf.keras.losses.sparse_categorical_crossentropy(targets["label"], logits, from_logits=True)
        return {"loss": tf.reduce_mean(ce)}
    ce = tf.keras.losses.sparse_categorical_crossentropy(targets["mask"], logits, from_logits=True)
    return {"loss": tf.reduce_mean(ce)}


def load_backbone_weights(model: Any, path: str) -> None:
    """Loads a weights file into the model's ``backbone`` (``pretrained_weights``).

    Args:
        model: a model from :func:`build_model`.
        path: a Keras weights file (``.weights.h5`` or a keras.applications ``.h5`` without top).

    Raises:
        TrainingError: the file is missing or does not fit the backbone.
    """
    if not os.path.isfile(path):
        raise TrainingError(f"train.pretrained_weights {path}: file not found (weights are never downloaded)")
    try:
        model.get_layer("backbone").load_weights(path)
    except Exception as e:
        raise TrainingError(f"train.pretrained_weights {path}: does not fit the {model.name} backbone: {e}") from None


def transfer_weights(
    source: Any, target: Any, source_ids: list[int], target_ids: list[int], background_channel: bool = False
) -> dict[str, int]:
    """Copies weights from a trained model into a new one of the same architecture.

    Layers are matched by name (and, inside the backbone, by position). Weights
    of equal shape are copied; the ``class_head``'s class axis is matched by
    label-map id, so classes the parent knew keep what it learnt and new
    classes start fresh.

    Args:
        source: the trained (parent) model.
        target: the new model.
        source_ids: the parent's label-map ids, ascending (its dense order).
        target_ids: the new label-map ids, ascending.
        background_channel: the class axis starts with a background channel (segmentation).

    Returns:
        Counts: ``copied`` weight tensors, ``class_mapped`` (class-head tensors
        remapped by id) and ``skipped`` (shape mismatch).
    """
    copied = mapped = skipped = 0
    src_layers = {layer.name: layer for layer in source.layers}
    src_pos = {tid: i for i, tid in enumerate(source_ids)}
    off = 1 if background_channel else 0
    for layer in target.layers:
        other = src_layers.get(layer.name)
        if other is None:
            continue
        tw, sw = layer.get_weights(), other.get_weights()
        if len(tw) != len(sw):
            skipped += len(tw)
            continue
        new = []
        for t, s in zip(tw, sw, strict=True):
            if t.shape == s.shape and (layer.name != "class_head" or source_ids == target_ids):
                new.append(s)
                copied += 1
            elif layer.name == "class_head" and t.shape[:-1] == s.shape[:-1]:
                out = t.copy()
                if off:
                    out[..., 0] = s[..., 0]
                for j, cid in enumerate(target_ids):
                    if cid in src_pos:
                        out[..., j + off] = s[..., src_pos[cid] + off]
                new.append(out)
                mapped += 1
            else:
                new.append(t)
                skipped += 1
        layer.set_weights(new)
    return {"copied": copied, "class_mapped": mapped, "skipped": skipped}

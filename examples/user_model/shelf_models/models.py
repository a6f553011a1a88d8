"""A detector of the project's own: depthwise-separable blocks (MobileNet style) with cvpipe's detection heads.

cvpipe calls :func:`build` (named in spec.yaml as ``train.model:
shelf_models.models:build``) inside the distribution strategy's scope, then
trains the model with its own loop, losses, early stopping and checkpoints,
exports it with its serving signature (decoding and NMS in the graph) and
evaluates and serves it like a built-in model. The contract (docs/train.md,
"Your own model"): float32 pixels 0..255 in; for detection a dict with
``heatmap`` logits at stride 4 (one channel per class), ``ltrb`` distances to
the box edges in input pixels and an ``embedding`` for drift.
"""

from __future__ import annotations

from typing import Any

import keras


def _separable(x: Any, filters: int, strides: int, name: str) -> Any:
    x = keras.layers.SeparableConv2D(filters, 3, strides=strides, padding="same", use_bias=False, name=f"{name}_sep")(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.ReLU(6.0, name=f"{name}_relu")(x)


def build(task: str, num_classes: int, image_size: tuple[int, int], hyperparameters: dict[str, Any]) -> keras.Model:
    """Builds the detector.

    Args:
        task: the pipeline's task (this model is a detector).
        num_classes: classes in the label map; heatmap channels follow its dense order.
        image_size: model input ``(height, width)``, divisible by 16.
        hyperparameters: ``train.hyperparameters``; ``width`` sets the channel count (default 32).

    Returns:
        The untrained model.
    """
    if task != "detection":
        raise ValueError(f"shelf_models.models:build is a detector; the spec trains {task}")
    h, w = image_size
    width = int(hyperparameters.get("width", 32))
    inp = keras.Input((h, w, 3), name="images")
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="normalise")(inp)
    x = keras.layers.Conv2D(width, 3, strides=2, padding="same", activation="relu", name="stem")(x)  # /2
    c2 = _separable(x, width, 2, "block1")  # /4
    c3 = _separable(c2, width * 2, 2, "block2")  # /8
    c4 = _separable(c3, width * 4, 2, "block3")  # /16
    up = keras.layers.UpSampling2D(4, interpolation="bilinear", name="up")(keras.layers.Conv2D(width, 1, name="lateral4")(c4))
    p2 = keras.layers.Add(name="merge")([up, keras.layers.Conv2D(width, 1, name="lateral2")(c2)])
    p2 = _separable(p2, width, 1, "neck")
    heat = keras.layers.Conv2D(num_classes, 1, bias_initializer=keras.initializers.Constant(-4.6), dtype="float32", name="class_head")(
        p2
    )  # prior 0.01
    ltrb = keras.layers.Conv2D(4, 1, dtype="float32", name="box_out")(p2)
    ltrb = keras.layers.Activation(lambda t: keras.ops.softplus(t) * 16.0, dtype="float32", name="ltrb")(ltrb)
    emb = keras.layers.GlobalAveragePooling2D(dtype="float32", name="embedding")(c4)
    return keras.Model(inp, {"heatmap": heat, "ltrb": ltrb, "embedding": emb}, name="shelf_separable_detector")

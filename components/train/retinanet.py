"""RetinaNet from keras-hub as a cvpipe detector (``train.model: retinanet``).

keras-hub's ``RetinaNetObjectDetector`` (a ResNet image encoder, a feature
pyramid P3-P7, 9 anchors per cell, focal loss on classes and Huber loss on
box deltas) is wrapped in a Keras model that follows cvpipe's model
contract: float32 pixels 0..255 in, a dict out with ``cls_logits``
``[B, A, C]``, ``bbox_regression`` ``[B, A, 4]`` (deltas to anchors, keras-hub's
``center_xywh`` encoding) and ``embedding`` ``[B, 256]`` (P5 averaged). The
image normalisation is inside the wrapper (the preset's image converter's
scale and offset, ImageNet statistics without a preset).

Backbones (``train.backbone``): ``resnet18`` (default), ``resnet34``,
``resnet50`` (keras-hub ``ResNetBackbone`` v1 configurations) and
``resnet_tiny`` (one basic block per stage, 1 head conv: for tests and quick
looks). ``train.pretrained_weights`` names a keras-hub preset directory,
local or ``gs://``, read with ``from_preset``: a whole RetinaNet (its heads are
kept when it was trained for the same number of classes, otherwise only the
backbone and pyramid) or a ResNet backbone preset (the image encoder). Nothing
is downloaded. Every trained RetinaNet is also saved as a preset in the model
directory (``preset/``, :func:`save_preset`), so it can start the next one.

Training targets are the boxes themselves (``boxes`` ``[N, 4]`` ``yxyx`` in
input pixels, ``labels`` ``[N]`` dense class indices, crowd boxes ``-2`` =
ignored), padded per batch with ``-1``; the detector's ``RetinaNetLabelEncoder``
matches them to anchors inside the loss (:class:`RetinaNetLoss`). Serving
decodes deltas with keras' ``decode_deltas_to_boxes`` and runs per-class
``tf.image.combined_non_max_suppression`` (:func:`decode`).
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any

from components.core.errors import TrainingError
from components.core.spec import RETINANET_BACKBONES

from .detector import class_nms

__all__ = ["BACKBONES", "RetinaNetLoss", "build_retinanet", "decode", "detector_of", "is_retinanet", "save_preset"]

BACKBONES: dict[str, dict[str, Any]] = {
    "resnet18": {"block_type": "basic_block", "stackwise_num_filters": [64, 128, 256, 512], "stackwise_num_blocks": [2, 2, 2, 2]},
    "resnet34": {"block_type": "basic_block", "stackwise_num_filters": [64, 128, 256, 512], "stackwise_num_blocks": [3, 4, 6, 3]},
    "resnet50": {"block_type": "bottleneck_block", "stackwise_num_filters": [64, 128, 256, 512], "stackwise_num_blocks": [3, 4, 6, 3]},
    "resnet_tiny": {"block_type": "basic_block", "stackwise_num_filters": [64, 64, 96, 128], "stackwise_num_blocks": [1, 1, 1, 1]},
}
"""keras-hub ``ResNetBackbone`` arguments per ``train.backbone`` (stem: one 7x7 conv of 64; strides 1, 2, 2, 2)."""
assert tuple(BACKBONES) == RETINANET_BACKBONES
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
BOX_FORMAT = "yxyx"
"""Box format of targets and of the detector (pixels of the model input)."""

_DETECTORS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def is_retinanet(model: Any) -> bool:
    """Whether a model is a wrapped RetinaNet (its outputs are per-anchor logits and deltas)."""
    out = getattr(model, "output", None)
    return isinstance(out, dict) and "cls_logits" in out and "bbox_regression" in out


def detector_of(model: Any) -> Any:
    """The keras-hub ``RetinaNetObjectDetector`` a wrapper was built around (it shares its layers).

    Args:
        model: a model from :func:`build_retinanet`.

    Returns:
        The detector (its anchor generator and label encoder serve losses and decoding).

    Raises:
        TrainingError: the model was not built by :func:`build_retinanet` in this process.
    """
    det = _DETECTORS.get(model)
    if det is None:
        raise TrainingError(f"{getattr(model, 'name', model)} was not built by components.train.retinanet.build_retinanet")
    return det


def _encoder(backbone: str, image_size: tuple[int, int]) -> Any:
    import keras_hub

    cfg = BACKBONES[backbone]
    return keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[7],
        stackwise_num_strides=[1, 2, 2, 2],
        image_shape=(*image_size, 3),
        name=f"{backbone}_encoder",
        **cfg,
    )


def _preset_class(preset: str, file: str) -> str | None:
    from keras_hub.src.utils.preset_utils import check_file_exists, load_json

    if not check_file_exists(preset, file):
        return None
    return str(load_json(preset, file).get("class_name", ""))


def _from_preset(preset: str, num_classes: int, head_convs: int, log: Any) -> Any:
    """A detector whose backbone (and, when the classes match, heads) come from a preset directory."""
    import keras_hub
    from keras_hub.src.utils.preset_utils import load_json

    try:
        backbone_class = _preset_class(preset, "config.json")
        if backbone_class is None:
            raise TrainingError(f"train.pretrained_weights {preset}: not a keras-hub preset directory (no config.json)")
        if backbone_class == "RetinaNetBackbone":
            task_class = _preset_class(preset, "task.json")
            saved_classes = load_json(preset, "task.json")["config"].get("num_classes") if task_class else None
            if saved_classes == num_classes:
                det = keras_hub.models.RetinaNetObjectDetector.from_preset(preset)
                if log:
                    log.info("retinanet: backbone, pyramid and heads from preset %s", preset)
                return det
            det = keras_hub.models.RetinaNetObjectDetector.from_preset(
                preset, num_classes=num_classes, bounding_box_format=BOX_FORMAT, pre_logits_num_conv_layers=head_convs
            )
            if log:
                log.info(
                    "retinanet: backbone and pyramid from preset %s (its heads are for %s classes, not %d)",
                    preset,
                    saved_classes,
                    num_classes,
                )
            return det
        encoder = keras_hub.models.Backbone.from_preset(preset)
        if not hasattr(encoder, "pyramid_outputs"):
            raise TrainingError(
                f"train.pretrained_weights {preset}: a {backbone_class} preset has no feature pyramid outputs for RetinaNet"
            )
        if log:
            log.info("retinanet: image encoder (%s) from preset %s", backbone_class, preset)
        return _detector(encoder, num_classes, head_convs)
    except TrainingError:
        raise
    except Exception as e:
        raise TrainingError(f"train.pretrained_weights {preset}: cannot load the keras-hub preset: {type(e).__name__}: {e}") from None


def _detector(encoder: Any, num_classes: int, head_convs: int) -> Any:
    import keras_hub

    backbone = keras_hub.models.RetinaNetBackbone(image_encoder=encoder, min_level=3, max_level=7, use_p5=True, image_shape=(None, None, 3))
    return keras_hub.models.RetinaNetObjectDetector(
        backbone=backbone, num_classes=num_classes, bounding_box_format=BOX_FORMAT, pre_logits_num_conv_layers=head_convs
    )


def _normalisation(det: Any) -> tuple[Any, Any]:
    """The preset's image converter scale and offset (ImageNet statistics when there is none)."""
    import numpy as np

    conv = getattr(getattr(det, "preprocessor", None), "image_converter", None)
    scale = getattr(conv, "scale", None)
    offset = getattr(conv, "offset", None)
    if scale is not None:
        return np.asarray(scale, np.float32), np.asarray(offset if offset is not None else 0.0, np.float32)
    std = np.asarray(_IMAGENET_STD, np.float32)
    return 1.0 / (255.0 * std), -np.asarray(_IMAGENET_MEAN, np.float32) / std


def build_retinanet(num_classes: int, image_size: tuple[int, int], hparams: dict[str, Any], log: Any = None) -> Any:
    """An untrained (or preset-initialised) RetinaNet wrapped to cvpipe's model contract.

    Args:
        num_classes: classes in the label map.
        image_size: model input ``(height, width)``; a multiple of 128 keeps every pyramid level whole.
        hparams: ``backbone`` (a key of :data:`BACKBONES`, default ``resnet18``), ``preset``
            (a keras-hub preset directory), ``head_convs`` (convs before each head's output:
            4, or 1 for ``resnet_tiny``).
        log: a logger for what the preset provided.

    Returns:
        The ``keras.Model``; :func:`detector_of` gives the keras-hub detector inside it.

    Raises:
        TrainingError: an unknown backbone, an unusable preset or input size.
    """
    import keras
    import numpy as np

    backbone = str(hparams.get("backbone") or RETINANET_BACKBONES[0])
    if backbone not in BACKBONES:
        raise TrainingError(f"train.backbone {backbone!r}: choose one of {', '.join(BACKBONES)}")
    head_convs = int(hparams.get("head_convs", 1 if backbone == "resnet_tiny" else 4))
    h, w = image_size
    if h % 32 or w % 32:
        raise TrainingError(f"retinanet needs an input size divisible by 32 (128 keeps every level whole), got {h}x{w}")
    preset = hparams.get("preset")
    det = (
        _from_preset(str(preset), num_classes, head_convs, log)
        if preset
        else _detector(_encoder(backbone, image_size), num_classes, head_convs)
    )
    scale, offset = _normalisation(det)

    inp = keras.Input((h, w, 3), name="images")
    x = keras.layers.Rescaling(scale=scale.tolist(), offset=offset.tolist(), name="normalise")(inp)
    feats = det.backbone(x)
    boxes, classes = [], []
    for level in sorted(feats, key=lambda k: int(k[1:])):
        boxes.append(keras.layers.Reshape((-1, 4), name=f"box_pred_{level}")(det.box_head(feats[level])))
        classes.append(keras.layers.Reshape((-1, num_classes), name=f"cls_pred_{level}")(det.classification_head(feats[level])))
    cls_logits = keras.layers.Concatenate(axis=1, dtype="float32", name="cls_logits")(classes)
    bbox = keras.layers.Concatenate(axis=1, dtype="float32", name="bbox_regression")(boxes)
    emb = keras.layers.GlobalAveragePooling2D(dtype="float32", name="embedding")(feats["P5"])
    model = keras.Model(inp, {"cls_logits": cls_logits, "bbox_regression": bbox, "embedding": emb}, name="retinanet")
    anchors = det.anchor_generator(np.zeros((1, h, w, 3), np.float32))
    n_anchors = sum(int(v.shape[0]) for v in anchors.values())
    if n_anchors != int(cls_logits.shape[1]):
        raise TrainingError(f"retinanet at {h}x{w}: {n_anchors} anchors for {cls_logits.shape[1]} predictions; use a multiple of 128")
    _DETECTORS[model] = det
    return model


def anchors(model: Any, image_size: tuple[int, int]) -> Any:
    """All anchors of a wrapped RetinaNet at an input size (call eagerly, outside a ``tf.function``).

    Args:
        model: a model from :func:`build_retinanet`.
        image_size: model input ``(height, width)``.

    Returns:
        numpy float32 ``[A, 4]`` in the anchor generator's format (pixels), in prediction order.
    """
    import numpy as np

    det = detector_of(model)
    per_level = det.anchor_generator(np.zeros((1, *image_size, 3), np.float32))
    return np.concatenate([np.asarray(per_level[k]) for k in per_level], axis=0).astype(np.float32)


class RetinaNetLoss:
    """RetinaNet's training loss for cvpipe's loop: anchors matched by the detector's label encoder.

    The same computation as ``RetinaNetObjectDetector.compute_loss`` (focal loss on
    classes, Huber on deltas, both normalised by the positive anchors), returned with
    its parts.

    Args:
        model: a model from :func:`build_retinanet`.
    """

    def __init__(self, model: Any):
        import keras

        self.det = detector_of(model)
        self.num_classes = int(self.det.num_classes)
        self.box_loss = keras.losses.Huber(reduction="sum")
        self.cls_loss = keras.losses.BinaryFocalCrossentropy(from_logits=True, reduction="sum")

    def __call__(self, images: Any, outputs: dict[str, Any], targets: dict[str, Any]) -> dict[str, Any]:
        """``loss``, ``box_loss`` and ``class_loss`` of a batch.

        Args:
            images: the batch's pixels (their shape places the anchors).
            outputs: the model's outputs.
            targets: ``boxes`` ``[B, N, 4]`` and ``labels`` ``[B, N]`` (padding ``-1``).

        Returns:
            Float32 scalars.
        """
        import tensorflow as tf

        gt_boxes, gt_labels = self.det.label_encoder(images=images, gt_boxes=targets["boxes"], gt_classes=targets["labels"])
        box_pred = tf.cast(outputs["bbox_regression"], tf.float32)
        cls_pred = tf.cast(outputs["cls_logits"], tf.float32)
        cls_labels = tf.one_hot(tf.cast(gt_labels, tf.int32), self.num_classes, dtype=tf.float32)
        positive = tf.cast(gt_labels > -1.0, tf.float32)
        normaliser = tf.maximum(tf.reduce_sum(positive), 1.0)
        cls_weights = tf.cast(tf.not_equal(gt_labels, -2.0), tf.float32) / normaliser
        box_weights = positive / normaliser
        box = self.box_loss(gt_boxes, box_pred, sample_weight=box_weights)
        cls = self.cls_loss(cls_labels, cls_pred, sample_weight=cls_weights)
        return {"loss": box + cls, "class_loss": cls, "box_loss": box}


def decode(
    model: Any, anchor_boxes: Any, outputs: dict[str, Any], image_size: tuple[int, int], max_detections: int, iou: float, score: float
) -> dict[str, Any]:
    """Boxes from a wrapped RetinaNet's outputs, with per-class NMS (graph code, part of the serving signature).

    Args:
        model: a model from :func:`build_retinanet`.
        anchor_boxes: :func:`anchors` at ``image_size``.
        outputs: its outputs for a batch.
        image_size: model input ``(height, width)``.
        max_detections: detections kept per image.
        iou: NMS overlap threshold.
        score: lowest score kept.

    Returns:
        ``boxes`` ``[B, D, 4]`` normalised ``(ymin, xmin, ymax, xmax)``, ``scores`` ``[B, D]``,
        ``classes`` int32 ``[B, D]`` dense class indices, ``num`` int32 ``[B]``.
    """
    import keras
    import tensorflow as tf

    h, w = image_size
    det = detector_of(model)
    boxes = keras.utils.bounding_boxes.decode_deltas_to_boxes(
        anchors=tf.constant(anchor_boxes, tf.float32),
        boxes_delta=tf.cast(outputs["bbox_regression"], tf.float32),
        encoded_format="center_xywh",
        anchor_format=det.anchor_generator.bounding_box_format,
        box_format=BOX_FORMAT,
        image_shape=(h, w, 3),
    )
    norm = boxes / tf.constant([h, w, h, w], tf.float32)
    scores = tf.sigmoid(tf.cast(outputs["cls_logits"], tf.float32))
    return class_nms(norm, scores, max_detections, iou, score)


def save_preset(model: Any, directory: Path) -> Path:
    """Saves the trained detector inside a wrapper as a keras-hub preset (``from_preset`` loads it).

    Args:
        model: a trained model from :func:`build_retinanet`.
        directory: the preset directory to write (replaced).

    Returns:
        The directory.
    """
    import shutil

    tmp = directory.with_name(f".{directory.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    detector_of(model).save_to_preset(str(tmp))
    shutil.rmtree(directory, ignore_errors=True)
    tmp.rename(directory)
    return directory

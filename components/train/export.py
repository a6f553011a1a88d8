"""Exports a trained model: SavedModel with serving signatures, metadata, weights, TFLite.

The SavedModel carries everything a server needs in its graph:

- ``serving_default(image_bytes: tf.string [None])``: decodes encoded images
  (JPEG/PNG/BMP/GIF, any size), resizes them to the model input and returns
  the task's outputs;
- ``serving_images(images: tf.float32 [None, H, W, 3])``: the same from pixels
  already at the input size (0..255), which is what
  :class:`~components.core.predictor.Predictor` calls after decoding with
  cvpipe's own EXIF-aware decoder.

Outputs (every class id is a label-map id):

- detection: ``detection_boxes`` ``[B, K, 4]`` normalised ``(ymin, xmin, ymax, xmax)``,
  ``detection_scores`` ``[B, K]``, ``detection_classes`` int64 ``[B, K]``,
  ``num_detections`` int32 ``[B]`` (box decoding and per-class NMS in the graph; for RetinaNet
  anchor deltas decoded by keras' ``decode_deltas_to_boxes``, :func:`components.train.retinanet.decode`);
- classification: ``probabilities`` ``[B, C]`` (label-map id order), ``classes`` int64 ``[B]``;
- segmentation: ``mask`` ``[B, H, W]`` label-map ids (0 background) at the model input size
  (uint8, or int32 when an id exceeds 255);
- always: ``embedding`` float32 ``[B, D]`` (penultimate features, for drift).

``label_map.json`` and ``model_info.json`` are SavedModel assets as well as
files beside it. TFLite exports (``tflite/model_float16.tflite``,
``tflite/model_int8.tflite``) take one float32 image ``[1, H, W, 3]``;
the detector's TFLite graph stops before NMS (top-K heatmap peaks, which the
centre-peak decoding already keeps apart), see ``tflite/tflite_info.json``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from components.core.io import atomic_write_json
from components.core.labelmap import LabelMap
from components.core.manifest import Task
from components.core.predictor import LABEL_MAP_FILE, MODEL_INFO_FILE, SAVED_MODEL_DIR, SERVING_BYTES, SERVING_IMAGES

from . import detector, retinanet

__all__ = ["MAX_DETECTIONS", "WEIGHTS_FILE", "export_saved_model", "export_tflite"]

WEIGHTS_FILE = "model.weights.h5"
"""Keras weights file in the model directory (warm starts load it)."""
MAX_DETECTIONS = 100
"""Detections per image the serving graph returns (zero-padded)."""
NMS_IOU = 0.5
SCORE_THRESHOLD = 0.01


def _serving_module(model: Any, task: Task, image_size: tuple[int, int], label_map: LabelMap, assets: list[Path]) -> Any:
    import tensorflow as tf

    h, w = image_size
    ids = label_map.ids
    num_classes = len(ids)
    mask_dtype = tf.uint8 if max(ids) <= 255 else tf.int32
    retina = task == "detection" and retinanet.is_retinanet(model)
    anchor_boxes = retinanet.anchors(model, image_size) if retina else None

    class Serving(tf.Module):
        def __init__(self) -> None:
            super().__init__(name="cvpipe_serving")
            self.model = model
            self.assets = [tf.saved_model.Asset(str(p)) for p in assets]
            self.label_ids = tf.constant(ids, tf.int64)
            self.mask_ids = tf.constant([0, *ids], tf.int64)

        def outputs(self, images: Any) -> dict[str, Any]:
            out = self.model(images, training=False)
            result: dict[str, Any] = {"embedding": tf.cast(out["embedding"], tf.float32)}
            if task == "classification":
                probs = tf.nn.softmax(tf.cast(out["logits"], tf.float32), axis=-1)
                result["probabilities"] = probs
                result["classes"] = tf.gather(self.label_ids, tf.argmax(probs, axis=-1))
            elif task == "detection":
                if retina:
                    kept = retinanet.decode(self.model, anchor_boxes, out, image_size, MAX_DETECTIONS, NMS_IOU, SCORE_THRESHOLD)
                else:
                    boxes, scores, classes = detector.decode(out["heatmap"], out["ltrb"], image_size, top_k=MAX_DETECTIONS)
                    kept = detector.nms(boxes, scores, classes, num_classes, MAX_DETECTIONS, NMS_IOU, SCORE_THRESHOLD)
                valid = tf.range(MAX_DETECTIONS)[None, :] < kept["num"][:, None]
                result["detection_boxes"] = kept["boxes"]
                result["detection_scores"] = kept["scores"]
                result["detection_classes"] = tf.where(
                    valid, tf.gather(self.label_ids, kept["classes"]), tf.zeros_like(kept["classes"], tf.int64)
                )
                result["num_detections"] = kept["num"]
            else:
                dense = tf.argmax(tf.cast(out["logits"], tf.float32), axis=-1)
                result["mask"] = tf.cast(tf.gather(self.mask_ids, dense), mask_dtype)
            return result

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
        def serve_bytes(self, image_bytes: Any) -> dict[str, Any]:
            def one(data: Any) -> Any:
                image = tf.io.decode_image(data, channels=3, dtype=tf.uint8, expand_animations=False)
                image.set_shape([None, None, 3])
                return tf.image.resize(image, (h, w), method="bilinear")

            images = tf.map_fn(one, image_bytes, fn_output_signature=tf.TensorSpec([h, w, 3], tf.float32))
            return self.outputs(images)

        @tf.function(input_signature=[tf.TensorSpec([None, h, w, 3], tf.float32, name="images")])
        def serve_images(self, images: Any) -> dict[str, Any]:
            return self.outputs(images)

        @tf.function(input_signature=[tf.TensorSpec([1, h, w, 3], tf.float32, name="images")])
        def lite(self, images: Any) -> dict[str, Any]:
            out = self.model(images, training=False)
            if task == "classification":
                return {"probabilities": tf.nn.softmax(tf.cast(out["logits"], tf.float32), axis=-1)}
            if retina:  # raw per-anchor outputs (the spec refuses TFLite for RetinaNet; this keeps the trace whole)
                return {"cls_logits": out["cls_logits"], "bbox_regression": out["bbox_regression"]}
            if task == "detection":
                boxes, scores, classes = detector.decode(out["heatmap"], out["ltrb"], image_size, top_k=MAX_DETECTIONS)
                return {
                    "detection_boxes": boxes,
                    "detection_scores": scores,
                    "detection_classes": tf.gather(tf.constant(ids, tf.int32), classes),
                }
            dense = tf.argmax(tf.cast(out["logits"], tf.float32), axis=-1, output_type=tf.int32)
            return {"mask": tf.gather(tf.constant([0, *ids], tf.int32), dense)}

    return Serving()


def export_saved_model(
    model: Any,
    task: Task,
    image_size: tuple[int, int],
    label_map: LabelMap,
    model_dir: str | os.PathLike[str],
    info: dict[str, Any] | None = None,
) -> Path:
    """Writes ``saved_model/``, ``label_map.json``, ``model_info.json`` and the Keras weights.

    The SavedModel is written to a temporary sibling and renamed into place.

    Args:
        model: the trained Keras model.
        task: the task.
        image_size: model input ``(height, width)``.
        label_map: the label map.
        model_dir: the model directory.
        info: the content of ``model_info.json`` (default: task, image size and label ids; the
            train step writes the full one, also after a ``train.run_fn``).

    Returns:
        The SavedModel directory.
    """
    import tensorflow as tf

    model_dir = Path(model_dir)
    if info is None:
        info = {"task": task, "architecture": getattr(model, "name", ""), "image_size": list(image_size), "label_ids": label_map.ids}

    model_dir.mkdir(parents=True, exist_ok=True)
    label_map.save(model_dir / LABEL_MAP_FILE)
    atomic_write_json(model_dir / MODEL_INFO_FILE, info)
    weights = model_dir / WEIGHTS_FILE
    tmp_weights = model_dir / f".tmp.{WEIGHTS_FILE}"
    model.save_weights(str(tmp_weights))
    tmp_weights.replace(weights)

    module = _serving_module(model, task, image_size, label_map, [model_dir / LABEL_MAP_FILE, model_dir / MODEL_INFO_FILE])
    final = model_dir / SAVED_MODEL_DIR
    tmp = model_dir / f".{SAVED_MODEL_DIR}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tf.saved_model.save(
        module,
        str(tmp),
        signatures={SERVING_BYTES: module.serve_bytes.get_concrete_function(), SERVING_IMAGES: module.serve_images.get_concrete_function()},
    )
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return final


def _convert(frozen: Any, kind: str, representative: Any | None, out_dir: Path) -> Path:
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if kind == "float16":
        conv.target_spec.supported_types = [tf.float16]
    else:
        if representative is None:
            raise ValueError("int8 TFLite export needs a representative dataset")

        def gen(ds: Any = representative) -> Any:
            for image in ds:
                yield [tf.expand_dims(tf.cast(image, tf.float32), 0)]

        conv.representative_dataset = gen
    data = conv.convert()
    path = out_dir / f"model_{kind}.tflite"
    tmp = out_dir / f".{path.name}.tmp"
    tmp.write_bytes(data)
    tmp.replace(path)
    return path


def export_tflite(
    model: Any,
    task: Task,
    image_size: tuple[int, int],
    label_map: LabelMap,
    model_dir: Path,
    kinds: list[str],
    representative: Any | None = None,
) -> dict[str, Path]:
    """Converts the model to TFLite.

    Args:
        model: the trained Keras model.
        task: the task.
        image_size: model input ``(height, width)``.
        label_map: the label map.
        model_dir: the model directory (files go to ``tflite/``).
        kinds: ``float16`` and/or ``int8``.
        representative: for ``int8``: a dataset of float32 ``[H, W, 3]`` images from the
            training split (calibration of activation ranges).

    Returns:
        Kind -> written ``.tflite`` file.
    """
    if not kinds:
        return {}
    out_dir = model_dir / "tflite"
    out_dir.mkdir(parents=True, exist_ok=True)
    module = _serving_module(model, task, image_size, label_map, [])
    # TF 2.16's converter cannot freeze Keras 3 variables itself (MLIR: "ReadVariableOp
    # missing attribute 'value'", from a concrete function or a SavedModel alike), so
    # the graph is frozen here first and the converter sees constants only.
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    frozen = convert_variables_to_constants_v2(module.lite.get_concrete_function())
    written = {kind: _convert(frozen, kind, representative, out_dir) for kind in kinds}
    outputs = {
        "classification": {"probabilities": "[1, C] float32, label-map id order"},
        "detection": {
            "detection_boxes": f"[1, {MAX_DETECTIONS}, 4] normalised (ymin, xmin, ymax, xmax), before NMS",
            "detection_scores": f"[1, {MAX_DETECTIONS}] heatmap peak scores",
            "detection_classes": f"[1, {MAX_DETECTIONS}] label-map ids",
        },
        "segmentation": {"mask": "[1, H, W] int32 label-map ids, 0 background"},
    }[task]
    atomic_write_json(
        out_dir / "tflite_info.json",
        {
            "input": {"images": f"[1, {image_size[0]}, {image_size[1]}, 3] float32 RGB 0..255"},
            "outputs": outputs,
            "files": {k: p.name for k, p in written.items()},
        },
    )
    return written

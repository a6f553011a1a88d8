"""Loads a model directory written by the train component and predicts on encoded images.

A model directory (the train component's ``Output[Model]``) holds::

    saved_model/         SavedModel; signatures ``serving_default`` (encoded image bytes)
                         and ``serving_images`` (float32 pixels at the model's input size)
    label_map.json       the label map the model's class ids refer to (also a SavedModel asset)
    model_info.json      task, architecture, image size, label-map version, epochs, best val loss

:class:`Predictor` is what evaluation, batch prediction and continuous
evaluation use. It decodes images with :func:`~components.core.images.decode_rgb`
(EXIF orientation applied, CMYK/16-bit/RGBA converted, decompression-bomb
guard), resizes them exactly as training did and maps outputs back to the
original image size. Every output is keyed by label-map ids (from 1), never
by the model's internal dense index.

TensorFlow is imported when a model is loaded, not when this module is.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import EvaluationError
from .images import decode_rgb
from .labelmap import LabelMap
from .manifest import Task

__all__ = [
    "LABEL_MAP_FILE",
    "MODEL_INFO_FILE",
    "SAVED_MODEL_DIR",
    "SERVING_BYTES",
    "SERVING_IMAGES",
    "ImagePrediction",
    "Predictor",
    "signature_problems",
]

SAVED_MODEL_DIR = "saved_model"
"""Sub-directory of a model directory holding the SavedModel."""
LABEL_MAP_FILE = "label_map.json"
"""Label map file name (in the model directory and among the SavedModel's assets)."""
MODEL_INFO_FILE = "model_info.json"
"""Model description file name (in the model directory and among the SavedModel's assets)."""
SERVING_BYTES = "serving_default"
"""Signature taking ``image_bytes: tf.string [None]`` (encoded JPEG/PNG/BMP/GIF)."""
SERVING_IMAGES = "serving_images"
"""Signature taking ``images: tf.float32 [None, H, W, 3]`` (0..255, already at the model's input size)."""


_OUTPUTS: dict[str, dict[str, tuple[int, str]]] = {
    "detection": {
        "detection_boxes": (3, "float"),
        "detection_scores": (2, "float"),
        "detection_classes": (2, "int"),
        "num_detections": (1, "int"),
    },
    "classification": {"probabilities": (2, "float")},
    "segmentation": {"mask": (3, "int")},
}


_KIND = {"float": "float", "int": "numeric (ids)"}


def signature_problems(saved_model: Any, task: Task, num_classes: int | None = None, require_embedding: bool = True) -> list[str]:
    """What about a loaded SavedModel's signatures does not follow cvpipe's serving contract.

    The contract (what :mod:`components.train.export` writes and :class:`Predictor`,
    the server and evaluation call): ``serving_default`` takes ``image_bytes``
    ``tf.string [None]``; every signature returns ``embedding`` float ``[B, D]`` and the
    task's outputs: detection ``detection_boxes`` float ``[B, K, 4]`` (normalised
    ``ymin, xmin, ymax, xmax``), ``detection_scores`` float ``[B, K]``,
    ``detection_classes`` ``[B, K]`` (label-map ids), ``num_detections`` ``[B]``;
    classification ``probabilities`` float ``[B, C]`` (label-map id order; ``classes``
    ``[B]`` may come beside it); segmentation ``mask`` ``[B, H, W]`` (label-map ids, 0
    background). Ids and counts may be integers or floats holding integers. ``serving_images`` (float32 ``[None, H, W, 3]`` pixels) is optional and
    checked the same way when present.

    Args:
        saved_model: what ``tf.saved_model.load`` returned.
        task: the task the model is for.
        num_classes: when given, the classification probabilities' width is checked against it.
        require_embedding: whether ``embedding`` must be there (drift needs it; prediction alone does not).

    Returns:
        Problems in words (empty: it fits).
    """
    import tensorflow as tf

    sigs = getattr(saved_model, "signatures", None) or {}
    problems: list[str] = []
    if SERVING_BYTES not in sigs:
        return [f"no {SERVING_BYTES!r} signature (it has: {', '.join(sorted(sigs)) or 'none'})"]
    names = [SERVING_BYTES] + ([SERVING_IMAGES] if SERVING_IMAGES in sigs else [])
    for name in names:
        fn = sigs[name]
        _, inputs = fn.structured_input_signature
        if name == SERVING_BYTES:
            spec = inputs.get("image_bytes")
            if spec is None or spec.dtype != tf.string or spec.shape.rank != 1:
                got = ", ".join(f"{k}: {v.dtype.name} {v.shape}" for k, v in inputs.items()) or "nothing"
                problems.append(f"{name} must take image_bytes: string [None]; it takes {got}")
        else:
            spec = inputs.get("images")
            if spec is None or not spec.dtype.is_floating or spec.shape.rank != 4:
                got = ", ".join(f"{k}: {v.dtype.name} {v.shape}" for k, v in inputs.items()) or "nothing"
                problems.append(f"{name} must take images: float32 [None, H, W, 3]; it takes {got}")
        outputs = fn.structured_outputs
        if not isinstance(outputs, dict):
            problems.append(f"{name} must return a dict of named tensors")
            continue
        wanted = {**({"embedding": (2, "float")} if require_embedding else {}), **_OUTPUTS[task]}
        for key, (rank, kind) in wanted.items():
            out = outputs.get(key)
            if out is None:
                problems.append(f"{name} has no output {key!r} (it returns: {', '.join(sorted(outputs))})")
                continue
            # ids may come as floats (TF Object Detection API exports do that); the predictor casts them
            ok_kind = out.dtype.is_floating if kind == "float" else (out.dtype.is_integer or out.dtype.is_floating)
            if not ok_kind or out.shape.rank != rank:
                problems.append(f"{name} output {key!r} is {out.dtype.name} {out.shape}, expected {_KIND[kind]} of rank {rank}")
        boxes = outputs.get("detection_boxes")
        if task == "detection" and boxes is not None and boxes.shape.rank == 3 and boxes.shape[-1] not in (None, 4):
            problems.append(f"{name} output 'detection_boxes' is {boxes.shape}, expected [B, K, 4]")
        probs = outputs.get("probabilities")
        if (
            task == "classification"
            and num_classes
            and probs is not None
            and probs.shape.rank == 2
            and probs.shape[-1] not in (None, num_classes)
        ):
            problems.append(f"{name} output 'probabilities' has {probs.shape[-1]} columns, the label map has {num_classes} classes")
    return problems


def _empty_boxes() -> np.ndarray:
    return np.zeros((0, 4), np.float32)


@dataclass
class ImagePrediction:
    """A model's prediction for one image.

    Attributes:
        image_id: the caller's id for the image (the predictor leaves it empty).
        boxes: ``[N, 4]`` float32 ``(x, y, width, height)`` in pixels of the original image.
            Detection: one box per detection. Classification: one box covering the
            whole image. Segmentation: the tight box of each predicted class region.
        scores: ``[N]`` float32. Detection: detection scores. Classification: the top
            probability. Segmentation: fraction of the image covered by each class.
        class_ids: ``[N]`` int64 label-map ids, aligned with ``boxes`` and ``scores``.
        probabilities: classification only: ``[C]`` float32 ordered by ``label_map.ids``.
        mask: segmentation only: ``[H, W]`` uint8 label-map ids (0 background), original size.
        embedding: ``[D]`` float32 penultimate-layer features (for drift), or None.
        width: original image width in pixels.
        height: original image height in pixels.
    """

    image_id: str = ""
    boxes: np.ndarray = field(default_factory=_empty_boxes)
    scores: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float32))
    class_ids: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))
    probabilities: np.ndarray | None = None
    mask: np.ndarray | None = None
    embedding: np.ndarray | None = None
    width: int = 0
    height: int = 0

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the mask is left out; store it as a PNG).

        Returns:
            ``image_id``, ``boxes``, ``scores``, ``class_ids``, ``probabilities``, ``width``, ``height``.
        """
        return {
            "image_id": self.image_id,
            "width": self.width,
            "height": self.height,
            "boxes": self.boxes.round(2).tolist(),
            "scores": self.scores.round(5).tolist(),
            "class_ids": self.class_ids.astype(int).tolist(),
            "probabilities": None if self.probabilities is None else self.probabilities.round(5).tolist(),
        }


def _read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _locate(model_dir: Path) -> tuple[Path, Path]:
    """(SavedModel dir, dir holding label_map.json and model_info.json)."""
    if (model_dir / SAVED_MODEL_DIR / "saved_model.pb").is_file():
        sm = model_dir / SAVED_MODEL_DIR
        meta = model_dir if (model_dir / MODEL_INFO_FILE).is_file() else sm / "assets"
        return sm, meta
    if (model_dir / "saved_model.pb").is_file():  # the SavedModel directory itself
        return model_dir, model_dir / "assets"
    raise EvaluationError(f"{model_dir}: not a cvpipe model directory (no {SAVED_MODEL_DIR}/saved_model.pb)")


class Predictor:
    """A loaded model: task, label map and a ``predict`` over encoded images.

    Build it with :meth:`load`.

    Attributes:
        task: classification, detection or segmentation.
        label_map: the label map output ids refer to.
        model_name: registry model name the model was trained for.
        architecture: model architecture name.
        image_size: model input ``(height, width)``.
        info: everything in ``model_info.json``.
        model_dir: where it was loaded from.
    """

    def __init__(self, saved_model: Any, info: dict[str, Any], label_map: LabelMap, model_dir: Path):
        self._sm = saved_model
        self.info = info
        self.label_map = label_map
        self.model_dir = model_dir
        self.task: Task = info["task"]
        self.model_name: str = str(info.get("model_name", ""))
        self.architecture: str = str(info.get("architecture", ""))
        h, w = info["image_size"]
        self.image_size: tuple[int, int] = (int(h), int(w))
        sigs = saved_model.signatures
        self._fn_images = sigs.get(SERVING_IMAGES)
        self._fn_bytes = sigs[SERVING_BYTES]

    @classmethod
    def load(cls, model_dir: str | os.PathLike[str]) -> Predictor:
        """Loads a model directory written by the train component.

        Args:
            model_dir: the model directory (or its ``saved_model/`` sub-directory).

        Returns:
            The predictor.

        Raises:
            EvaluationError: the directory holds no cvpipe SavedModel, its metadata is unreadable or its
                signatures do not follow the serving contract (:func:`signature_problems`).
        """
        import tensorflow as tf

        root = Path(model_dir)
        sm_dir, meta_dir = _locate(root)
        try:
            info = _read_json(meta_dir / MODEL_INFO_FILE)
            label_map = LabelMap.load(meta_dir / LABEL_MAP_FILE)
        except (OSError, ValueError) as e:
            raise EvaluationError(f"{root}: unreadable model metadata: {e}") from None
        except Exception as e:  # AnnotationError from LabelMap.load
            raise EvaluationError(f"{root}: {e}") from None
        try:
            loaded = tf.saved_model.load(str(sm_dir))
        except Exception as e:
            raise EvaluationError(f"{sm_dir}: cannot load SavedModel: {e}") from None
        problems = (
            signature_problems(loaded, info.get("task", ""), label_map.num_classes, require_embedding=False)
            if info.get("task") in _OUTPUTS
            else []
        )
        if problems:
            raise EvaluationError(f"{sm_dir}: not cvpipe's serving signature: " + "; ".join(problems))
        return cls(loaded, info, label_map, root)

    # -- prediction ----------------------------------------------------------------
    def _run(self, images: list[np.ndarray]) -> dict[str, np.ndarray]:
        import tensorflow as tf

        h, w = self.image_size
        if self._fn_images is None:  # an export without the pixel signature: go through bytes
            from .images import encode_png

            out = self._fn_bytes(image_bytes=tf.constant([encode_png(im) for im in images]))
        else:
            # Same resize op and arguments as the training input pipeline.
            batch = tf.stack([tf.image.resize(tf.constant(im), (h, w), method="bilinear") for im in images])
            out = self._fn_images(images=tf.cast(batch, tf.float32))
        return {k: v.numpy() for k, v in out.items()}

    def predict(self, images: list[bytes], batch_size: int = 16) -> list[ImagePrediction]:
        """Predicts on encoded images.

        Args:
            images: encoded images (JPEG, PNG, ...), any sizes.
            batch_size: images per model call.

        Returns:
            One prediction per image, in order, with ``image_id`` left empty.

        Raises:
            ImageError: an image cannot be decoded.
        """
        results: list[ImagePrediction] = []
        for start in range(0, len(images), max(1, batch_size)):
            results.extend(self.predict_pixels([decode_rgb(b) for b in images[start : start + batch_size]]))
        return results

    def predict_pixels(self, pixels: list[np.ndarray]) -> list[ImagePrediction]:
        """Predicts on decoded images in one model call (the server decodes off its event loop).

        Args:
            pixels: ``HxWx3`` uint8 RGB arrays as :func:`~components.core.images.decode_rgb`
                returns them, any sizes.

        Returns:
            One prediction per image, in order, with ``image_id`` left empty.
        """
        if not pixels:
            return []
        out = self._run(pixels)
        return [self._to_prediction(out, i, im.shape[0], im.shape[1]) for i, im in enumerate(pixels)]

    def embed(self, images: list[bytes], batch_size: int = 16) -> np.ndarray:
        """Penultimate-layer embeddings of encoded images (for drift detection).

        Args:
            images: encoded images.
            batch_size: images per model call.

        Returns:
            ``[len(images), D]`` float32.
        """
        rows: list[np.ndarray] = []
        for start in range(0, len(images), max(1, batch_size)):
            pixels = [decode_rgb(b) for b in images[start : start + batch_size]]
            rows.append(np.asarray(self._run(pixels)["embedding"], np.float32))
        dim = int(self.info.get("embedding_dim", 0))
        return np.concatenate(rows, axis=0) if rows else np.zeros((0, dim), np.float32)

    # -- output conversion -----------------------------------------------------------
    def _to_prediction(self, out: dict[str, np.ndarray], i: int, height: int, width: int) -> ImagePrediction:
        emb = np.asarray(out["embedding"][i], np.float32) if "embedding" in out else None
        pred = ImagePrediction(embedding=emb, width=width, height=height)
        if self.task == "detection":
            n = int(out["num_detections"][i])
            b = np.asarray(out["detection_boxes"][i][:n], np.float32).reshape(-1, 4)
            y0 = np.clip(b[:, 0], 0, 1) * height
            x0 = np.clip(b[:, 1], 0, 1) * width
            y1 = np.clip(b[:, 2], 0, 1) * height
            x1 = np.clip(b[:, 3], 0, 1) * width
            pred.boxes = np.stack([x0, y0, x1 - x0, y1 - y0], axis=1).astype(np.float32)
            pred.scores = np.asarray(out["detection_scores"][i][:n], np.float32)
            pred.class_ids = np.asarray(out["detection_classes"][i][:n]).astype(np.int64)
        elif self.task == "classification":
            probs = np.asarray(out["probabilities"][i], np.float32)
            top = int(np.argmax(probs))
            pred.probabilities = probs
            pred.class_ids = np.array([self.label_map.ids[top]], np.int64)
            pred.scores = np.array([probs[top]], np.float32)
            pred.boxes = np.array([[0.0, 0.0, width, height]], np.float32)
        else:
            from PIL import Image

            small = np.asarray(out["mask"][i], np.uint8)
            mask = np.asarray(Image.fromarray(small).resize((width, height), Image.Resampling.NEAREST), np.uint8)
            pred.mask = mask
            ids, boxes, scores = [], [], []
            total = float(mask.size)
            for cid in np.unique(mask):
                if cid == 0:
                    continue
                ys, xs = np.nonzero(mask == cid)
                ids.append(int(cid))
                boxes.append([xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1])
                scores.append(len(ys) / total)
            pred.class_ids = np.array(ids, np.int64)
            pred.boxes = np.array(boxes, np.float32).reshape(-1, 4)
            pred.scores = np.array(scores, np.float32)
        return pred

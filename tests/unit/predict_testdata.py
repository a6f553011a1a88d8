"""Tiny real TensorFlow models in the model-directory layout :class:`~components.core.predictor.Predictor` loads.

Not trained, but real SavedModels: fixed random weights (seeded) over
average-pooled pixels, exported with the two serving signatures the train
component exports (``serving_default`` over encoded bytes, ``serving_images``
over pixels at the input size) and the same output keys per task, plus
``label_map.json`` and ``model_info.json``. Saving one takes about a second.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from components.core.labelmap import LabelMap
from components.core.manifest import Manifest, Task

IMAGE_SIZE = (32, 32)
MAX_DETECTIONS = 4


def make_tiny_model(model_dir: Path, task: Task, label_map: LabelMap, seed: int = 0, model_name: str = "tiny") -> Path:
    """Writes a tiny SavedModel model directory for ``task``.

    Args:
        model_dir: the directory to create.
        task: classification, detection or segmentation.
        label_map: the classes (outputs use its ids).
        seed: weight seed.
        model_name: written into ``model_info.json``.

    Returns:
        ``model_dir``.
    """
    import tensorflow as tf

    h, w = IMAGE_SIZE
    ids = label_map.ids
    c = len(ids)
    rng = np.random.default_rng(seed)
    pool = 8
    dim = (h // pool) * (w // pool) * 3

    class Tiny(tf.Module):
        def __init__(self) -> None:
            super().__init__(name="tiny")
            self.label_ids = tf.constant(ids, tf.int64)
            self.mask_ids = tf.constant([0, *ids], tf.int64)
            self.w_cls = tf.Variable(rng.normal(0, 3, (dim, c)).astype(np.float32))
            self.w_box = tf.Variable(rng.normal(0, 1, (dim, MAX_DETECTIONS * 4)).astype(np.float32))
            self.w_score = tf.Variable(rng.normal(0, 3, (dim, MAX_DETECTIONS)).astype(np.float32))
            self.b_score = tf.Variable(rng.normal(0, 1, (MAX_DETECTIONS,)).astype(np.float32))
            self.w_seg = tf.Variable(rng.normal(0, 2, (3, c + 1)).astype(np.float32))

        def outputs(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
            x = images / 255.0
            emb = tf.reshape(tf.nn.avg_pool2d(x, pool, pool, "VALID"), (-1, dim))
            emb = emb - tf.reduce_mean(emb, axis=1, keepdims=True)
            out: dict[str, tf.Tensor] = {"embedding": emb}
            if task == "classification":
                probs = tf.nn.softmax(emb @ self.w_cls, axis=-1)
                out["probabilities"] = probs
                out["classes"] = tf.gather(self.label_ids, tf.argmax(probs, axis=-1))
            elif task == "detection":
                raw = tf.sigmoid(tf.reshape(emb @ self.w_box, (-1, MAX_DETECTIONS, 2, 2)))
                lo = tf.reduce_min(raw, axis=-1) * 0.5
                hi = 0.5 + tf.reduce_max(raw, axis=-1) * 0.5
                boxes = tf.stack([lo[..., 0], lo[..., 1], hi[..., 0], hi[..., 1]], axis=-1)
                scores = tf.sigmoid(emb @ self.w_score + self.b_score)
                order = tf.argsort(scores, axis=-1, direction="DESCENDING")
                scores = tf.gather(scores, order, batch_dims=1)
                boxes = tf.gather(boxes, order, batch_dims=1)
                dense = tf.math.floormod(tf.range(MAX_DETECTIONS)[None, :] + tf.cast(tf.argmax(emb, axis=-1), tf.int32)[:, None], c)
                out["detection_boxes"] = boxes
                out["detection_scores"] = scores
                out["detection_classes"] = tf.gather(self.label_ids, dense)
                out["num_detections"] = tf.reduce_sum(tf.cast(scores >= 0.3, tf.int32), axis=-1)
            else:
                logits = tf.einsum("bhwc,ck->bhwk", x - 0.5, self.w_seg)
                out["mask"] = tf.cast(tf.gather(self.mask_ids, tf.argmax(logits, axis=-1)), tf.uint8)
            return out

        @tf.function(input_signature=[tf.TensorSpec([None, h, w, 3], tf.float32, name="images")])
        def serve_images(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
            return self.outputs(images)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
        def serve_bytes(self, image_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
            def one(b: tf.Tensor) -> tf.Tensor:
                im = tf.io.decode_image(b, channels=3, expand_animations=False)
                return tf.image.resize(tf.cast(im, tf.float32), (h, w), method="bilinear")

            return self.outputs(tf.map_fn(one, image_bytes, fn_output_signature=tf.TensorSpec([h, w, 3], tf.float32)))

    module = Tiny()
    model_dir.mkdir(parents=True, exist_ok=True)
    tf.saved_model.save(
        module,
        str(model_dir / "saved_model"),
        signatures={"serving_default": module.serve_bytes, "serving_images": module.serve_images},
    )
    label_map.save(model_dir / "label_map.json")
    info = {
        "task": task,
        "architecture": f"tiny_{task}",
        "image_size": [h, w],
        "model_name": model_name,
        "label_map_version": label_map.version,
        "embedding_dim": dim,
    }
    (model_dir / "model_info.json").write_text(json.dumps(info))
    return model_dir


_COLOURS = [(220, 40, 40), (40, 200, 60), (50, 80, 230), (230, 200, 40)]


def make_images(
    root: Path,
    n: int,
    label_map: LabelMap,
    task: Task = "detection",
    size: tuple[int, int] = (48, 40),
    seed: int = 0,
    brightness: float = 1.0,
) -> Manifest:
    """Writes ``n`` small images with coloured rectangles and returns their exact manifest.

    Each image gets one or two rectangles (one for classification) of classes
    drawn from the label map; boxes are exact, segmentation objects carry the
    rectangle as a COCO polygon.

    Args:
        root: directory for ``img_XXX.png``.
        n: number of images.
        label_map: the classes.
        task: classification, detection or segmentation.
        size: ``(width, height)``.
        seed: random seed.
        brightness: background and colour factor.

    Returns:
        The manifest (root = ``root``).
    """
    from PIL import Image, ImageDraw

    from components.core.io import sha256_file
    from components.core.manifest import ImageRecord, ObjectAnnotation

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    w, h = size
    records = []
    for i in range(n):
        bg = np.clip(rng.integers(60, 140, (h, w, 3)) * brightness, 0, 255).astype(np.uint8)
        im = Image.fromarray(bg)
        draw = ImageDraw.Draw(im)
        objects = []
        count = 1 if task == "classification" else int(rng.integers(1, 3))
        cls = None
        for k in range(count):
            cid = label_map.ids[int(rng.integers(0, label_map.num_classes))]
            cls = cid
            bw, bh = int(rng.integers(8, w // 2)), int(rng.integers(8, h // 2))
            x0 = int(rng.integers(0, w - bw)) if k == 0 else w - bw
            y0 = int(rng.integers(0, h - bh))
            colour = tuple(int(min(255, c * brightness)) for c in _COLOURS[(cid - 1) % len(_COLOURS)])
            draw.rectangle([x0, y0, x0 + bw - 1, y0 + bh - 1], fill=colour)
            seg = [[x0, y0, x0 + bw, y0, x0 + bw, y0 + bh, x0, y0 + bh]] if task == "segmentation" else None
            objects.append(ObjectAnnotation(class_id=cid, bbox=[x0, y0, bw, bh], area=float(bw * bh), segmentation=seg))
        path = root / f"img_{i:03d}.png"
        im.save(path)
        records.append(
            ImageRecord(
                image_id=f"img_{i:03d}",
                path=path.name,
                sha256=sha256_file(path),
                width=w,
                height=h,
                objects=[] if task == "classification" else objects,
                class_id=cls if task == "classification" else None,
            )
        )
    return Manifest(task=task, root=str(root.resolve()), label_map=label_map, images=records, format="synthetic")

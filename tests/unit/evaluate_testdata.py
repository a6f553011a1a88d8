"""Tiny real inputs for the evaluate step: colour images in an examples directory, and colour "models".

A colour model is a real TensorFlow SavedModel in a cvpipe model directory
(``saved_model/`` with the ``serving_default`` and ``serving_images``
signatures, ``label_map.json``, ``model_info.json``) that
:class:`~components.core.predictor.Predictor` loads like a trained one. It
"sees" the dominant colour channel: red -> class 1, green -> 2, blue -> 3,
optionally through a permutation (a deliberately bad model). Classification
outputs probabilities; detection one box (10%..90% of the image) of that
class; segmentation a class per pixel where a channel is bright.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from components.core.examples import ExampleContent, ExamplesIndex, ShardInfo, SplitInfo, TFRecordWriter, encode_example
from components.core.images import encode_png
from components.core.io import sha256_file
from components.core.labelmap import LabelMap
from components.core.manifest import Task

COLOURS = LabelMap.from_names(["red", "green", "blue"])
SIZE = (16, 16)


def colour_image(cls: int, h: int, w: int, seed: int) -> np.ndarray:
    """An image whose dominant channel is ``cls - 1``, with a dark border (so segmentation has background)."""
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 60, (h, w, 3)).astype(np.uint8)
    img[2:-2, 2:-2, cls - 1] = 220
    return img


def write_examples(root: Path, task: Task, classes: list[int], sizes: list[tuple[int, int]]) -> tuple[Path, list[np.ndarray]]:
    """An examples directory whose test split has one colour image per entry of ``classes``."""
    root.mkdir(parents=True, exist_ok=True)
    shard = root / "test-00000-of-00001.tfrecord"
    images = []
    with TFRecordWriter(shard) as writer:
        for i, (cls, (h, w)) in enumerate(zip(classes, sizes, strict=True)):
            img = colour_image(cls, h, w, i)
            images.append(img)
            content = ExampleContent(
                encoded=encode_png(img), image_format="png", height=h, width=w, filename=f"img{i}.png", source_id=f"img{i}"
            )
            if task == "classification":
                content.class_label = cls
                content.class_text = COLOURS.name_of(cls)
            else:
                content.boxes = [(0.1, 0.1, 0.9, 0.9)]
                content.labels = [cls]
                content.area = [0.64 * h * w]
            if task == "segmentation":
                seg = np.zeros((h, w), np.uint8)
                seg[2:-2, 2:-2] = cls
                content.segmentation_png = encode_png(seg)
            writer.write(encode_example(content))
    n = len(classes)
    index = ExamplesIndex(
        task=task,
        label_map=COLOURS,
        splits={"test": SplitInfo(records=n, images=n, shards=[ShardInfo(file=shard.name, records=n, sha256=sha256_file(shard))])},
    )
    index.save(root)
    return root, images


def save_colour_model(path: Path, task: Task, permutation: tuple[int, int, int] = (0, 1, 2), model_name: str = "demo") -> Path:
    """Writes a colour model directory; ``permutation`` re-maps the channels (identity: a perfect model)."""
    import tensorflow as tf

    perm = tf.constant(list(permutation), tf.int32)
    h, w = SIZE

    def outputs(images: Any) -> dict[str, Any]:
        means = tf.gather(tf.reduce_mean(images, axis=[1, 2]), perm, axis=1)  # [N, 3]
        probs = tf.nn.softmax(means / 20.0)
        out = {"embedding": means}
        if task == "classification":
            out["probabilities"] = probs
        elif task == "detection":
            n = tf.shape(images)[0]
            out["num_detections"] = tf.ones([n], tf.float32)
            out["detection_boxes"] = tf.tile(tf.constant([[[0.1, 0.1, 0.9, 0.9]]]), [n, 1, 1])
            out["detection_scores"] = tf.reduce_max(probs, axis=1, keepdims=True)
            out["detection_classes"] = tf.cast(tf.argmax(probs, axis=1)[:, None] + 1, tf.float32)
        else:
            pix = tf.gather(images, perm, axis=3)
            cls = tf.cast(tf.argmax(pix, axis=3) + 1, tf.uint8)
            out["mask"] = tf.where(tf.reduce_max(pix, axis=3) > 150.0, cls, tf.zeros_like(cls))
        return out

    class ColourModel(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, h, w, 3], tf.float32)])
        def serving_images(self, images: Any) -> dict[str, Any]:
            return outputs(images)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def serving_default(self, image_bytes: Any) -> dict[str, Any]:
            def one(b: Any) -> Any:
                return tf.image.resize(tf.cast(tf.io.decode_image(b, channels=3, expand_animations=False), tf.float32), (h, w))

            return outputs(tf.map_fn(one, image_bytes, fn_output_signature=tf.TensorSpec([h, w, 3], tf.float32)))

    m = ColourModel()
    path.mkdir(parents=True, exist_ok=True)
    tf.saved_model.save(
        m,
        str(path / "saved_model"),
        signatures={
            "serving_default": m.serving_default.get_concrete_function(),
            "serving_images": m.serving_images.get_concrete_function(),
        },
    )
    COLOURS.save(path / "label_map.json")
    (path / "model_info.json").write_text(
        json.dumps({"task": task, "image_size": list(SIZE), "model_name": model_name, "architecture": "colour"})
    )
    return path

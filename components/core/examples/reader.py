"""Reading examples back with ``tf.data`` (TensorFlow is imported inside the functions)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ..errors import DataError
from ..manifest import Task
from .features import (
    AUTOTUNE,
    BBOX_XMAX,
    BBOX_XMIN,
    BBOX_YMAX,
    BBOX_YMIN,
    CLASS_LABEL,
    IMAGE_ENCODED,
    IMAGE_FILENAME,
    IMAGE_HEIGHT,
    IMAGE_SHA256,
    IMAGE_SOURCE_ID,
    IMAGE_WIDTH,
    OBJECT_AREA,
    OBJECT_IS_CROWD,
    OBJECT_LABEL,
    OBJECT_MASK,
    SEGMENTATION_ENCODED,
)
from .index import ExamplesIndex, load_index, shard_paths

if TYPE_CHECKING:  # pragma: no cover
    import tensorflow as tf

__all__ = ["read_dataset"]


def _check_task(index: ExamplesIndex, task: Task, where: str) -> None:
    ok = index.task == task or (task == "detection" and index.task == "segmentation")
    if not ok:
        raise DataError(f"{where}: examples were written for {index.task}, cannot be read as {task}")


def read_dataset(
    examples_dir: str | os.PathLike[str],
    split: str,
    task: Task,
    *,
    decode_masks: bool = True,
    shuffle: bool = False,
    num_parallel_calls: int | None = AUTOTUNE,
    shuffle_buffer: int = 1024,
    seed: int | None = None,
) -> tf.data.Dataset:
    """Reads one split of an examples directory as a ``tf.data.Dataset`` of per-image dicts.

    Shards come from ``examples.json``; GZIP shards are read as such. Each
    element is a dict with exactly these keys:

    - ``image`` uint8 ``[H, W, 3]``; ``height``, ``width`` int64 scalars;
      ``source_id``, ``filename``, ``sha256`` string scalars.
    - detection and segmentation: ``boxes`` float32 ``[N, 4]`` normalised
      ``(ymin, xmin, ymax, xmax)``; ``labels`` int64 ``[N]`` label-map ids;
      ``is_crowd`` bool ``[N]``; ``area`` float32 ``[N]``; ``masks`` uint8
      ``[N, H, W]`` (0/1) when ``decode_masks`` and the records have masks, else
      ``[0, H, W]``.
    - classification: ``label`` int64 scalar (label-map id).
    - segmentation: ``segmentation`` uint8 ``[H, W]`` (label-map ids, 0 background).

    Args:
        examples_dir: the directory transform wrote.
        split: ``train``, ``validation`` or ``test``.
        task: the task to read for (a segmentation directory can also be read for detection).
        decode_masks: decode instance masks (detection/segmentation).
        shuffle: shuffle shard order and records (buffer of ``shuffle_buffer``).
        num_parallel_calls: parallelism of reading and decoding (``AUTOTUNE`` = -1).
        shuffle_buffer: records in the shuffle buffer.
        seed: shuffle seed (None: different each iteration).

    Returns:
        The dataset (finite; repeat it yourself).

    Raises:
        DataError: no index, no such split, or examples written for an incompatible task.
    """
    import tensorflow as tf

    index = load_index(examples_dir)
    _check_task(index, task, os.fspath(examples_dir))
    files = [os.fspath(p) for p in shard_paths(examples_dir, split)]
    compression = "GZIP" if index.gzip else ""
    parallel = tf.data.AUTOTUNE if num_parallel_calls is None or num_parallel_calls == AUTOTUNE else int(num_parallel_calls)

    ds = tf.data.Dataset.from_tensor_slices(tf.constant(files, dtype=tf.string))
    if shuffle and len(files) > 1:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    ds = ds.interleave(
        lambda f: tf.data.TFRecordDataset(f, compression_type=compression),
        cycle_length=max(1, min(len(files), 8)),
        num_parallel_calls=parallel,
        deterministic=not shuffle,
    )
    if shuffle:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    parse = _parser(task, decode_masks)
    return ds.map(parse, num_parallel_calls=parallel, deterministic=not shuffle)


def _parser(task: Task, decode_masks: bool) -> Any:
    import tensorflow as tf

    spec: dict[str, Any] = {
        IMAGE_ENCODED: tf.io.FixedLenFeature([], tf.string),
        IMAGE_HEIGHT: tf.io.FixedLenFeature([], tf.int64),
        IMAGE_WIDTH: tf.io.FixedLenFeature([], tf.int64),
        IMAGE_SOURCE_ID: tf.io.FixedLenFeature([], tf.string, default_value=""),
        IMAGE_FILENAME: tf.io.FixedLenFeature([], tf.string, default_value=""),
        IMAGE_SHA256: tf.io.FixedLenFeature([], tf.string, default_value=""),
    }
    objects = task in ("detection", "segmentation")
    if objects:
        for k in (BBOX_YMIN, BBOX_XMIN, BBOX_YMAX, BBOX_XMAX, OBJECT_AREA):
            spec[k] = tf.io.VarLenFeature(tf.float32)
        spec[OBJECT_LABEL] = tf.io.VarLenFeature(tf.int64)
        spec[OBJECT_IS_CROWD] = tf.io.VarLenFeature(tf.int64)
        if decode_masks:
            spec[OBJECT_MASK] = tf.io.VarLenFeature(tf.string)
    if task == "classification":
        spec[CLASS_LABEL] = tf.io.FixedLenFeature([], tf.int64)
    if task == "segmentation":
        spec[SEGMENTATION_ENCODED] = tf.io.FixedLenFeature([], tf.string)

    def dense(x: Any) -> Any:
        return tf.sparse.to_dense(x)

    def parse(serialized: Any) -> dict[str, Any]:
        f = tf.io.parse_single_example(serialized, spec)
        image = tf.io.decode_image(f[IMAGE_ENCODED], channels=3, dtype=tf.uint8, expand_animations=False)
        image.set_shape([None, None, 3])
        out: dict[str, Any] = {
            "image": image,
            "height": f[IMAGE_HEIGHT],
            "width": f[IMAGE_WIDTH],
            "source_id": f[IMAGE_SOURCE_ID],
            "filename": f[IMAGE_FILENAME],
            "sha256": f[IMAGE_SHA256],
        }
        h = tf.shape(image)[0]
        w = tf.shape(image)[1]
        if objects:
            boxes = tf.stack([dense(f[BBOX_YMIN]), dense(f[BBOX_XMIN]), dense(f[BBOX_YMAX]), dense(f[BBOX_XMAX])], axis=1)
            out["boxes"] = tf.reshape(boxes, [-1, 4])
            out["labels"] = dense(f[OBJECT_LABEL])
            out["is_crowd"] = tf.cast(dense(f[OBJECT_IS_CROWD]), tf.bool)
            out["area"] = dense(f[OBJECT_AREA])
            empty = tf.zeros(tf.stack([0, h, w]), dtype=tf.uint8)
            if decode_masks:
                pngs = dense(f[OBJECT_MASK])

                def decode_all() -> Any:
                    return tf.map_fn(
                        lambda b: tf.io.decode_png(b, channels=1)[:, :, 0],
                        pngs,
                        fn_output_signature=tf.TensorSpec([None, None], tf.uint8),
                    )

                masks = tf.cond(tf.size(pngs) > 0, decode_all, lambda: empty)
            else:
                masks = empty
            masks.set_shape([None, None, None])
            out["masks"] = masks
        if task == "classification":
            out["label"] = f[CLASS_LABEL]
        if task == "segmentation":
            seg = tf.io.decode_png(f[SEGMENTATION_ENCODED], channels=1, dtype=tf.uint8)[:, :, 0]
            seg.set_shape([None, None])
            out["segmentation"] = seg
        return out

    return parse

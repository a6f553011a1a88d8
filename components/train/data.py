"""The training input pipeline: TFRecords -> resized, augmented batches with task targets.

Built on :func:`components.core.examples.read_dataset`. Every epoch's order
and augmentation are a pure function of ``(seed, epoch)``: the shuffle is
seeded per epoch and random flips use stateless ops keyed by the record's
position, so a trainer resumed in the middle of an epoch skips exactly the
batches it already trained on and sees the same remaining ones.

Everything that does not change between epochs (decoding, resizing, building
the targets) runs once and is cached in memory when the split is small
enough (:data:`CACHE_LIMIT_BYTES`); an epoch then only shuffles, flips
(image and targets together) and batches, which keeps the input pipeline off
the cores the training step needs.

Images are resized with ``tf.image.resize`` (bilinear) to the model input
size, the same op :class:`~components.core.predictor.Predictor` and the
exported serving graph use. Targets per task:

- classification: ``label`` int32 dense class index;
- detection: ``heatmap``, ``box_target``, ``box_weight`` (:func:`components.train.detector.build_targets`);
  with ``targets="boxes"`` (RetinaNet) the boxes themselves: ``boxes`` ``[N, 4]`` ``yxyx`` in input
  pixels and ``labels`` ``[N]`` (dense class index, crowd ``-2``: ignored), padded per batch with ``-1``;
- segmentation: ``mask`` int32 ``[H, W]`` (0 background, 1..C dense classes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from components.core.examples import load_index, read_dataset
from components.core.labelmap import LabelMap
from components.core.manifest import Task

from . import detector

__all__ = ["CACHE_LIMIT_BYTES", "InputPipeline"]

CACHE_LIMIT_BYTES = 2 << 30
"""Largest estimated decoded size of a split that is cached in memory."""


def _id_table(label_map: LabelMap, offset: int) -> Any:
    """A dense lookup: label-map id -> class index (+offset); unknown ids -> -1 (or 0 with offset)."""
    import tensorflow as tf

    size = max(label_map.ids) + 1
    table = [-1 if offset == 0 else 0] * size
    for cid, idx in label_map.dense_index().items():
        table[cid] = idx + offset
    return tf.constant(table, tf.int32)


@dataclass
class InputPipeline:
    """Batches of one split for one task.

    Attributes:
        examples_dir: the examples directory transform wrote.
        split: ``train``, ``validation`` or ``test``.
        task: the task.
        label_map: the label map the model's classes follow.
        image_size: model input ``(height, width)``.
        batch_size: global batch size.
        training: shuffle and augment (random horizontal flips).
        seed: base seed.
        cache: keep decoded images in memory (None: when the split is small enough).
        targets: detection target form: ``dense`` (the compact detector's maps) or ``boxes`` (RetinaNet).
    """

    examples_dir: str
    split: str
    task: Task
    label_map: LabelMap
    image_size: tuple[int, int]
    batch_size: int
    training: bool = False
    seed: int = 0
    cache: bool | None = None
    targets: Literal["dense", "boxes"] = "dense"

    def __post_init__(self) -> None:
        index = load_index(self.examples_dir)
        info = index.splits.get(self.split)
        self.num_examples = info.records if info is not None else 0
        if self.cache is None:
            # float32 pixels at the model input size dominate (targets are a fraction of that)
            self.cache = self.num_examples * self.image_size[0] * self.image_size[1] * 3 * 4 * 1.25 <= CACHE_LIMIT_BYTES
        self._base: Any = None

    @property
    def steps_per_epoch(self) -> int:
        """Batches per epoch (the last one may be smaller)."""
        return math.ceil(self.num_examples / self.batch_size) if self.num_examples else 0

    def _base_dataset(self) -> Any:
        """Resized images with their targets, before augmentation (cached when small enough)."""
        if self._base is not None:
            return self._base
        import tensorflow as tf

        ds = read_dataset(self.examples_dir, self.split, self.task, decode_masks=False, shuffle=False)
        ds = ds.map(self._static(), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        ds = ds.enumerate()
        if self.cache:
            ds = ds.cache()
            # Fill the cache now, with all cores and autotuning; epochs then read from memory.
            for _ in ds.prefetch(tf.data.AUTOTUNE):
                pass
        self._base = ds
        return ds

    def _static(self) -> Any:
        """Per-record work that does not depend on the epoch: resize and build the targets."""
        import tensorflow as tf

        h, w = self.image_size
        task = self.task
        ncls = self.label_map.num_classes
        table = _id_table(self.label_map, 1 if task == "segmentation" else 0)
        unknown = 0 if task == "segmentation" else -1
        box_targets = self.targets == "boxes"

        def lookup(ids: Any) -> Any:
            ids = tf.cast(ids, tf.int32)
            ok = tf.logical_and(ids >= 0, ids < tf.shape(table)[0])
            return tf.where(ok, tf.gather(table, tf.clip_by_value(ids, 0, tf.shape(table)[0] - 1)), unknown)

        def fn(e: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
            image = tf.ensure_shape(tf.image.resize(e["image"], (h, w), method="bilinear"), (h, w, 3))
            if task == "classification":
                return image, {"label": lookup(e["label"])}
            if task == "segmentation":
                seg = tf.image.resize(e["segmentation"][:, :, None], (h, w), method="nearest")[:, :, 0]
                return image, {"mask": tf.ensure_shape(lookup(seg), (h, w))}
            if box_targets:  # crowd boxes: RetinaNet's ignore class (-2)
                boxes = tf.reshape(tf.cast(e["boxes"], tf.float32), [-1, 4]) * tf.constant([h, w, h, w], tf.float32)
                return image, {"boxes": boxes, "labels": tf.where(e["is_crowd"], -2, lookup(e["labels"]))}
            classes = tf.where(e["is_crowd"], -1, lookup(e["labels"]))
            return image, detector.build_targets(e["boxes"], classes, (h, w), ncls)

        return fn

    def _augment(self, epoch: int) -> Any:
        """Random horizontal flip of an image and its targets, keyed by (seed, epoch, record position)."""
        import tensorflow as tf

        task = self.task
        seed = self.seed
        w = float(self.image_size[1])

        def flip_targets(t: dict[str, Any]) -> dict[str, Any]:
            if task == "classification":
                return t
            if task == "segmentation":
                return {"mask": tf.reverse(t["mask"], [1])}
            if "boxes" in t:
                b = t["boxes"]
                return {"boxes": tf.stack([b[:, 0], w - b[:, 3], b[:, 2], w - b[:, 1]], axis=-1), "labels": t["labels"]}
            # Mirrored cells keep their boxes relative to the cell centre: x' = W - x.
            bt = tf.reverse(t["box_target"], [1])
            bt = tf.stack([w - bt[..., 2], bt[..., 1], w - bt[..., 0], bt[..., 3]], axis=-1)
            return {"heatmap": tf.reverse(t["heatmap"], [1]), "box_target": bt, "box_weight": tf.reverse(t["box_weight"], [1])}

        def fn(position: Any, example: tuple[Any, dict[str, Any]]) -> tuple[Any, dict[str, Any]]:
            image, targets = example
            key = tf.stack([tf.cast(seed, tf.int64) * 100003 + tf.cast(epoch, tf.int64), tf.cast(position, tf.int64)])
            flip = tf.random.stateless_uniform([], seed=key) < 0.5
            return tf.cond(flip, lambda: (tf.reverse(image, [1]), flip_targets(targets)), lambda: (image, targets))

        return fn

    def _epoch(self, epoch: int, skip_batches: int) -> Any:
        """One epoch's batches, before options and prefetching."""
        import tensorflow as tf

        ds = self._base_dataset()
        if self.training:
            ds = ds.shuffle(max(1, min(self.num_examples, 4096)), seed=self.seed * 1000 + epoch, reshuffle_each_iteration=False)
        if skip_batches:
            ds = ds.skip(skip_batches * self.batch_size)
        parallel = None if self.cache else tf.data.AUTOTUNE
        if self.training:
            augment = self._augment(epoch)
            ds = ds.map(augment, num_parallel_calls=parallel, deterministic=True) if parallel else ds.map(augment)
        else:
            ds = ds.map(lambda i, ex: ex)
        if self.task == "detection" and self.targets == "boxes":
            return ds.padded_batch(self.batch_size, padding_values=(0.0, {"boxes": -1.0, "labels": -1}))
        return ds.batch(self.batch_size)

    def _finish(self, ds: Any) -> Any:
        import tensorflow as tf

        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        if self.cache:
            # From the cache an epoch is cheap work (shuffle, flip, batch): one thread and no
            # autotuning, so the input pipeline does not compete with the training step for
            # cores. Without the cache, decoding needs the parallelism autotuning gives it.
            options.autotune.enabled = False
            options.threading.private_threadpool_size = 1
        return ds.with_options(options).prefetch(2 if self.cache else tf.data.AUTOTUNE)

    def dataset(self, epoch: int = 0, skip_batches: int = 0) -> Any:
        """One epoch of batches.

        Args:
            epoch: the epoch (seeds the shuffle and the augmentation).
            skip_batches: batches of this epoch already trained on (resume).

        Returns:
            A finite ``tf.data.Dataset`` of ``(images, targets)``.
        """
        return self._finish(self._epoch(epoch, skip_batches))

    def epochs(self, first: int, last: int, skip_batches: int = 0) -> Any:
        """Epochs ``first`` .. ``last - 1`` back to back, as one dataset.

        The same batches as :meth:`dataset` epoch after epoch, but one iterator
        serves them all, so nothing is rebuilt between epochs and prefetching
        runs on across epoch boundaries (while the trainer validates).
        Epoch ``e`` has ``steps_per_epoch`` batches (fewer by ``skip_batches`` for the first).

        Args:
            first: the first epoch.
            last: one past the last epoch.
            skip_batches: batches of the first epoch already trained on (resume).

        Returns:
            A finite ``tf.data.Dataset`` of ``(images, targets)``.
        """
        import tensorflow as tf

        parts = [self._epoch(e, skip_batches if e == first else 0) for e in range(first, last)]
        if not parts:
            return self._finish(self._epoch(first, 0).take(0))
        counts = [self.steps_per_epoch - (skip_batches if e == first else 0) for e in range(first, last)]
        choice = tf.data.Dataset.from_tensor_slices(tf.constant([i for i, n in enumerate(counts) for _ in range(n)], tf.int64))
        return self._finish(tf.data.Dataset.choose_from_datasets(parts, choice))

    def images(self, limit: int) -> Any:
        """Up to ``limit`` resized images (float32 ``[H, W, 3]``), no augmentation (TFLite calibration).

        Args:
            limit: how many.

        Returns:
            A dataset of single images.
        """
        import tensorflow as tf

        h, w = self.image_size
        ds = read_dataset(self.examples_dir, self.split, self.task, decode_masks=False)
        return ds.take(limit).map(lambda e: tf.image.resize(e["image"], (h, w), method="bilinear"))

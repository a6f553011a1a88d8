"""The compact single-stage detector's targets, losses and box decoding (TensorFlow ops).

The detector is anchor-free and centre-based, in the style of CenterNet and
TTFNet: on a feature map at stride 4 it predicts

- a class heatmap (one channel per class), trained towards elliptical
  Gaussians centred on each object (CenterNet's penalty-reduced focal loss);
- four distances from each cell centre to the box's left, top, right and
  bottom edges, trained with a GIoU loss on every cell inside the central
  Gaussian of an object (TTFNet's dense box supervision, which is what makes
  a detector learn from a few hundred images in a few CPU minutes).

Decoding keeps local maxima of the heatmap (3x3 max-pool), takes the top K,
turns distances into boxes and runs per-class non-max suppression with
``tf.image.combined_non_max_suppression``; all of it is graph code, so it is
part of the exported serving signature.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ALPHA", "STRIDE", "build_targets", "class_nms", "decode", "detection_losses", "nms"]

STRIDE = 4
"""Output stride of the detection head (pixels of the model input per heatmap cell)."""
ALPHA = 0.54
"""Gaussian size relative to the box (TTFNet's alpha): sigma = ALPHA * side / 6."""
_BOX_LOSS_WEIGHT = 5.0


def build_targets(boxes: Any, classes: Any, image_size: tuple[int, int], num_classes: int) -> dict[str, Any]:
    """Training targets of one image.

    Args:
        boxes: float32 ``[N, 4]`` normalised ``(ymin, xmin, ymax, xmax)``.
        classes: int32 ``[N]`` dense class indices (0..C-1); objects with index < 0 are ignored.
        image_size: model input ``(height, width)``.
        num_classes: C.

    Returns:
        ``heatmap`` float32 ``[H/4, W/4, C]``, ``box_target`` float32 ``[H/4, W/4, 4]``
        (``x0, y0, x1, y1`` in input pixels) and ``box_weight`` float32 ``[H/4, W/4]``.
    """
    import tensorflow as tf

    h, w = image_size
    hs, ws = h // STRIDE, w // STRIDE
    keep = classes >= 0
    boxes = tf.boolean_mask(tf.reshape(tf.cast(boxes, tf.float32), [-1, 4]), keep)
    classes = tf.boolean_mask(tf.cast(classes, tf.int32), keep)
    boxes = tf.clip_by_value(boxes, 0.0, 1.0)
    y0 = boxes[:, 0] * h
    x0 = boxes[:, 1] * w
    y1 = boxes[:, 2] * h
    x1 = boxes[:, 3] * w
    valid = tf.logical_and(x1 - x0 >= 1.0, y1 - y0 >= 1.0)
    y0, x0, y1, x1 = (tf.boolean_mask(t, valid) for t in (y0, x0, y1, x1))
    classes = tf.boolean_mask(classes, valid)

    # Centre cell of each object, and its Gaussian over the grid (peak exactly 1 there).
    cx = tf.floor((x0 + x1) / 2.0 / STRIDE)
    cy = tf.floor((y0 + y1) / 2.0 / STRIDE)
    sx = tf.maximum(ALPHA * (x1 - x0) / STRIDE / 6.0, 0.3)
    sy = tf.maximum(ALPHA * (y1 - y0) / STRIDE / 6.0, 0.3)
    gx = tf.range(ws, dtype=tf.float32)[None, None, :]
    gy = tf.range(hs, dtype=tf.float32)[None, :, None]
    gauss = tf.exp(
        -(
            tf.square(gx - cx[:, None, None]) / (2.0 * tf.square(sx[:, None, None]))
            + tf.square(gy - cy[:, None, None]) / (2.0 * tf.square(sy[:, None, None]))
        )
    )  # [N, hs, ws]
    gauss = tf.where(gauss < 1e-4, tf.zeros_like(gauss), gauss)
    onehot = tf.one_hot(classes, num_classes, dtype=tf.float32)  # [N, C]
    per_object = gauss[:, :, :, None] * onehot[:, None, None, :]  # [N, hs, ws, C]
    heatmap = tf.reduce_max(tf.concat([tf.zeros([1, hs, ws, num_classes]), per_object], 0), axis=0)  # no object: all zero

    # Dense box supervision: cells inside the box, weighted by the object's Gaussian;
    # where objects overlap, the smaller one owns the cell.
    px = (gx + 0.5) * STRIDE
    py = (gy + 0.5) * STRIDE
    inside = tf.logical_and(
        tf.logical_and(px > x0[:, None, None], px < x1[:, None, None]), tf.logical_and(py > y0[:, None, None], py < y1[:, None, None])
    )
    reg = tf.where(inside, gauss, tf.zeros_like(gauss))  # [N, hs, ws]
    area = (x1 - x0) * (y1 - y0)
    priority = tf.where(reg > 0, 1.0 / area[:, None, None], tf.zeros_like(reg))
    owner = tf.argmax(tf.concat([tf.zeros([1, hs, ws]), priority], 0), axis=0, output_type=tf.int32)  # 0: nobody
    pad = tf.zeros([1], tf.float32)
    coords = tf.stack([tf.concat([pad, x0], 0), tf.concat([pad, y0], 0), tf.concat([pad, x1], 0), tf.concat([pad, y1], 0)], axis=1)
    box_target = tf.gather(coords, owner)  # [hs, ws, 4]
    reg_pad = tf.concat([tf.zeros([1, hs, ws]), reg], 0)
    box_weight = tf.reduce_max(reg_pad * tf.one_hot(owner, tf.shape(reg_pad)[0], axis=0), axis=0)
    return {"heatmap": heatmap, "box_target": box_target, "box_weight": box_weight}


def _cell_centres(hs: Any, ws: Any) -> tuple[Any, Any]:
    import tensorflow as tf

    px = (tf.range(ws, dtype=tf.float32)[None, None, :] + 0.5) * STRIDE
    py = (tf.range(hs, dtype=tf.float32)[None, :, None] + 0.5) * STRIDE
    return px, py


def _boxes_from_distances(ltrb: Any) -> Any:
    """``[B, hs, ws, 4]`` distances -> ``[B, hs, ws, 4]`` boxes ``x0, y0, x1, y1`` in input pixels."""
    import tensorflow as tf

    shape = tf.shape(ltrb)
    px, py = _cell_centres(shape[1], shape[2])
    return tf.stack([px - ltrb[..., 0], py - ltrb[..., 1], px + ltrb[..., 2], py + ltrb[..., 3]], axis=-1)


def detection_losses(outputs: dict[str, Any], targets: dict[str, Any]) -> dict[str, Any]:
    """Heatmap focal loss plus weighted GIoU box loss.

    Args:
        outputs: the model's ``heatmap`` (logits) and ``ltrb`` (distances in input pixels).
        targets: a batch of :func:`build_targets` results.

    Returns:
        ``loss`` (total), ``heatmap_loss`` and ``box_loss``, scalars.
    """
    import tensorflow as tf

    logits = tf.cast(outputs["heatmap"], tf.float32)
    gt = targets["heatmap"]
    pred = tf.clip_by_value(tf.sigmoid(logits), 1e-4, 1.0 - 1e-4)
    pos = tf.cast(gt >= 1.0 - 1e-6, tf.float32)
    num_pos = tf.maximum(tf.reduce_sum(pos), 1.0)
    pos_loss = -tf.math.log(pred) * tf.square(1.0 - pred) * pos
    neg_loss = -tf.math.log(1.0 - pred) * tf.square(pred) * tf.pow(1.0 - gt, 4.0) * (1.0 - pos)
    heatmap_loss = (tf.reduce_sum(pos_loss) + tf.reduce_sum(neg_loss)) / num_pos

    pred_boxes = _boxes_from_distances(tf.cast(outputs["ltrb"], tf.float32))
    tb = targets["box_target"]
    weight = targets["box_weight"]
    px0, py0, px1, py1 = tf.unstack(pred_boxes, axis=-1)
    tx0, ty0, tx1, ty1 = tf.unstack(tb, axis=-1)
    inter = tf.maximum(tf.minimum(px1, tx1) - tf.maximum(px0, tx0), 0.0) * tf.maximum(tf.minimum(py1, ty1) - tf.maximum(py0, ty0), 0.0)
    area_p = (px1 - px0) * (py1 - py0)
    area_t = (tx1 - tx0) * (ty1 - ty0)
    union = area_p + area_t - inter
    iou = inter / tf.maximum(union, 1e-6)
    hull = (tf.maximum(px1, tx1) - tf.minimum(px0, tx0)) * (tf.maximum(py1, ty1) - tf.minimum(py0, ty0))
    giou = iou - (hull - union) / tf.maximum(hull, 1e-6)
    box_loss = _BOX_LOSS_WEIGHT * tf.reduce_sum(weight * (1.0 - giou)) / tf.maximum(tf.reduce_sum(weight), 1e-6)
    return {"loss": heatmap_loss + box_loss, "heatmap_loss": heatmap_loss, "box_loss": box_loss}


def decode(heatmap_logits: Any, ltrb: Any, image_size: tuple[int, int], top_k: int = 100) -> tuple[Any, Any, Any]:
    """Top-K heatmap peaks as boxes.

    Args:
        heatmap_logits: ``[B, hs, ws, C]``.
        ltrb: ``[B, hs, ws, 4]`` distances in input pixels.
        image_size: model input ``(height, width)``.
        top_k: candidates per image.

    Returns:
        ``boxes`` ``[B, K, 4]`` normalised ``(ymin, xmin, ymax, xmax)``, ``scores`` ``[B, K]``,
        ``classes`` int32 ``[B, K]`` dense class indices.
    """
    import tensorflow as tf

    heat = tf.sigmoid(tf.cast(heatmap_logits, tf.float32))
    peaks = tf.cast(tf.equal(heat, tf.nn.max_pool2d(heat, 3, 1, "SAME")), tf.float32)
    heat = heat * peaks
    shape = tf.shape(heat)
    b, c = shape[0], shape[3]
    flat = tf.reshape(heat, [b, -1])
    k = tf.minimum(top_k, tf.shape(flat)[1])
    scores, idx = tf.math.top_k(flat, k=k)
    classes = idx % c
    cell = idx // c
    boxes_px = tf.reshape(_boxes_from_distances(tf.cast(ltrb, tf.float32)), [b, -1, 4])
    picked = tf.gather(boxes_px, cell, batch_dims=1)  # [B, K, 4] x0, y0, x1, y1
    h, w = float(image_size[0]), float(image_size[1])
    x0, y0, x1, y1 = tf.unstack(picked, axis=-1)
    boxes = tf.clip_by_value(tf.stack([y0 / h, x0 / w, y1 / h, x1 / w], axis=-1), 0.0, 1.0)
    return boxes, scores, classes


def nms(
    boxes: Any,
    scores: Any,
    classes: Any,
    num_classes: int,
    max_detections: int = 100,
    iou_threshold: float = 0.5,
    score_threshold: float = 0.05,
) -> dict[str, Any]:
    """Per-class non-max suppression over decoded candidates (each scores only for its own class; :func:`class_nms`).

    Args:
        boxes: ``[B, K, 4]`` normalised ``(ymin, xmin, ymax, xmax)``.
        scores: ``[B, K]``.
        classes: int32 ``[B, K]`` dense class indices.
        num_classes: C.
        max_detections: detections kept per image.
        iou_threshold: overlap above which the lower-scoring box of a class is dropped.
        score_threshold: candidates below this score are dropped.

    Returns:
        ``boxes`` ``[B, D, 4]``, ``scores`` ``[B, D]``, ``classes`` int32 ``[B, D]`` (dense indices)
        and ``num`` int32 ``[B]``, zero-padded to ``D = max_detections``.
    """
    import tensorflow as tf

    per_class = tf.one_hot(classes, num_classes, dtype=tf.float32) * scores[:, :, None]  # [B, K, C]
    return class_nms(boxes, per_class, max_detections, iou_threshold, score_threshold)


def class_nms(boxes: Any, class_scores: Any, max_detections: int, iou_threshold: float, score_threshold: float) -> dict[str, Any]:
    """Per-class non-max suppression of boxes with a score for every class (``tf.image.combined_non_max_suppression``).

    Args:
        boxes: ``[B, K, 4]`` normalised ``(ymin, xmin, ymax, xmax)``, shared by all classes.
        class_scores: ``[B, K, C]``, the score of each box for each class.
        max_detections: detections kept per image.
        iou_threshold: overlap above which the lower-scoring box of a class is dropped.
        score_threshold: candidates below this score are dropped.

    Returns:
        ``boxes`` ``[B, D, 4]`` (clipped to ``[0, 1]``), ``scores`` ``[B, D]``, ``classes`` int32 ``[B, D]``
        (dense indices) and ``num`` int32 ``[B]``, zero-padded to ``D = max_detections``.
    """
    import tensorflow as tf

    out = tf.image.combined_non_max_suppression(
        boxes[:, :, None, :],
        class_scores,
        max_output_size_per_class=max_detections,
        max_total_size=max_detections,
        iou_threshold=iou_threshold,
        score_threshold=score_threshold,
        pad_per_class=False,
        clip_boxes=True,
    )
    return {
        "boxes": out.nmsed_boxes,
        "scores": out.nmsed_scores,
        "classes": tf.cast(out.nmsed_classes, tf.int32),
        "num": tf.cast(out.valid_detections, tf.int32),
    }

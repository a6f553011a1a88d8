"""The compact detector's targets, losses, decoding and NMS on hand-made tensors."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from components.train import detector  # noqa: E402

SIZE = (64, 64)


def targets(boxes: list[list[float]], classes: list[int], num_classes: int = 3) -> dict[str, np.ndarray]:
    out = detector.build_targets(tf.constant(boxes, tf.float32, shape=[len(boxes), 4]), tf.constant(classes, tf.int32), SIZE, num_classes)
    return {k: v.numpy() for k, v in out.items()}


def test_one_box_makes_a_unit_peak_at_its_centre_in_its_class_channel() -> None:
    # box x 16..40, y 8..32 in a 64x64 input -> centre (28, 20) -> cell (7, 5) at stride 4
    t = targets([[8 / 64, 16 / 64, 32 / 64, 40 / 64]], [2])
    hm = t["heatmap"]
    assert hm.shape == (16, 16, 3)
    assert hm[5, 7, 2] == pytest.approx(1.0)
    assert hm[..., :2].max() == 0.0
    assert np.argwhere(hm == hm.max()).tolist() == [[5, 7, 2]]
    np.testing.assert_allclose(t["box_target"][5, 7], [16, 8, 40, 32], atol=1e-4)
    w = t["box_weight"]
    assert w[5, 7] == pytest.approx(1.0)
    ys, xs = np.nonzero(w)
    # every supervised cell centre lies inside the box
    assert ((xs + 0.5) * 4 > 16).all() and ((xs + 0.5) * 4 < 40).all()
    assert ((ys + 0.5) * 4 > 8).all() and ((ys + 0.5) * 4 < 32).all()


def test_crowd_and_degenerate_objects_are_ignored_and_no_object_gives_zeros() -> None:
    t = targets([[0.1, 0.1, 0.5, 0.5], [0.2, 0.2, 0.2, 0.6]], [-1, 0])
    assert t["heatmap"].max() == 0.0 and t["box_weight"].max() == 0.0
    empty = targets([], [])
    assert empty["heatmap"].shape == (16, 16, 3) and empty["heatmap"].max() == 0.0


def test_the_smaller_of_two_overlapping_boxes_owns_shared_cells() -> None:
    big = [0.0, 0.0, 1.0, 1.0]
    small = [0.375, 0.375, 0.625, 0.625]  # 24..40 px, centre cell (8, 8)
    t = targets([big, small], [0, 1])
    np.testing.assert_allclose(t["box_target"][8, 8], [24, 24, 40, 40], atol=1e-4)
    np.testing.assert_allclose(t["box_target"][8, 5], [0, 0, 64, 64], atol=1e-4)  # x 22 px: outside the small box
    assert t["box_weight"][1, 1] == 0.0  # far from every centre: not supervised


def perfect_outputs(t: dict[str, np.ndarray]) -> dict[str, tf.Tensor]:
    hm = np.clip(t["heatmap"], 1e-4, 1 - 1e-4)
    logits = np.log(hm / (1 - hm))
    px = (np.arange(16) + 0.5) * 4
    cx, cy = np.meshgrid(px, px)
    bt = t["box_target"]
    ltrb = np.stack([cx - bt[..., 0], cy - bt[..., 1], bt[..., 2] - cx, bt[..., 3] - cy], -1)
    ltrb = np.where(t["box_weight"][..., None] > 0, ltrb, 4.0)
    return {"heatmap": tf.constant(logits[None], tf.float32), "ltrb": tf.constant(ltrb[None], tf.float32)}


def test_losses_are_lower_for_a_perfect_prediction_than_for_a_blank_one() -> None:
    t = targets([[8 / 64, 16 / 64, 32 / 64, 40 / 64], [0.6, 0.6, 0.9, 0.95]], [2, 0])
    batch = {k: tf.constant(v[None]) for k, v in t.items()}
    good = detector.detection_losses(perfect_outputs(t), batch)
    blank = {"heatmap": tf.fill([1, 16, 16, 3], -4.6), "ltrb": tf.fill([1, 16, 16, 4], 4.0)}
    bad = detector.detection_losses(blank, batch)
    assert float(good["box_loss"]) < 0.01
    assert float(good["heatmap_loss"]) < float(bad["heatmap_loss"]) / 3
    assert float(good["loss"]) < float(bad["loss"])


def test_decode_and_nms_recover_boxes_and_drop_duplicates_of_one_class() -> None:
    boxes = [[8 / 64, 16 / 64, 32 / 64, 40 / 64], [0.6, 0.6, 0.9, 0.95]]
    t = targets(boxes, [2, 0])
    out = perfect_outputs(t)
    dec_boxes, scores, classes = detector.decode(out["heatmap"], out["ltrb"], SIZE, top_k=10)
    kept = detector.nms(dec_boxes, scores, classes, 3, max_detections=10, score_threshold=0.3)
    n = int(kept["num"][0])
    # neighbouring cells of a Gaussian are not peaks; each object is found once
    assert n == 2
    found = sorted(zip(kept["classes"][0, :n].numpy().tolist(), kept["boxes"][0, :n].numpy().round(3).tolist(), strict=True))
    assert found[0][0] == 0 and found[1][0] == 2
    np.testing.assert_allclose(found[1][1], boxes[0], atol=1e-3)
    np.testing.assert_allclose(found[0][1], np.clip(boxes[1], 0, 1), atol=1e-3)

    # two overlapping candidates of one class: NMS keeps the higher-scoring one
    two = tf.constant([[[0.1, 0.1, 0.5, 0.5], [0.12, 0.1, 0.52, 0.5], [0.1, 0.1, 0.5, 0.5]]], tf.float32)
    sc = tf.constant([[0.9, 0.8, 0.7]])
    cl = tf.constant([[1, 1, 2]], tf.int32)
    res = detector.nms(two, sc, cl, 3, max_detections=5)
    assert int(res["num"][0]) == 2
    assert res["scores"][0, :2].numpy().tolist() == pytest.approx([0.9, 0.7])
    assert res["classes"][0, :2].numpy().tolist() == [1, 2]

"""The training input pipeline: deterministic epochs, exact resume skipping, flips that move targets with images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from train_testdata import make_examples

from components.core.labelmap import LabelMap

pytest.importorskip("tensorflow")

from components.train.data import InputPipeline


def batches(pipe: InputPipeline, epoch: int = 0, skip: int = 0) -> list[tuple[np.ndarray, dict[str, np.ndarray]]]:
    return [(x.numpy(), {k: v.numpy() for k, v in y.items()}) for x, y in pipe.dataset(epoch, skip)]


@pytest.fixture(scope="module")
def detection(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, LabelMap]:
    root = tmp_path_factory.mktemp("det")
    examples, lm = make_examples(root, "detection", num_images=24, image_size=64)
    return examples, LabelMap.load(lm)


def test_epochs_are_deterministic_and_resume_skips_exactly_the_trained_batches(detection: tuple[Path, LabelMap]) -> None:
    examples, lm = detection
    pipe = InputPipeline(str(examples), "train", "detection", lm, (64, 64), 4, training=True, seed=3)
    assert pipe.num_examples == 18 and pipe.steps_per_epoch == 5
    epoch1 = batches(pipe, 1)
    again = batches(InputPipeline(str(examples), "train", "detection", lm, (64, 64), 4, training=True, seed=3), 1)
    for (xa, _), (xb, _) in zip(epoch1, again, strict=True):
        np.testing.assert_array_equal(xa, xb)
    resumed = batches(pipe, 1, skip=2)
    assert len(resumed) == 3
    for (xa, ya), (xb, yb) in zip(epoch1[2:], resumed, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya["heatmap"], yb["heatmap"])
    epoch2 = batches(pipe, 2)
    assert not np.array_equal(epoch1[0][0], epoch2[0][0])  # another epoch, another order


def test_one_iterator_over_epochs_gives_the_same_batches_as_epoch_by_epoch(detection: tuple[Path, LabelMap]) -> None:
    examples, lm = detection
    pipe = InputPipeline(str(examples), "train", "detection", lm, (64, 64), 4, training=True, seed=1)
    assert pipe.cache
    separate = batches(pipe, 2, skip=3) + batches(pipe, 3) + batches(pipe, 4)
    joined = [(x.numpy(), y["box_target"].numpy()) for x, y in pipe.epochs(2, 5, skip_batches=3)]
    assert len(joined) == len(separate) == 2 + 5 + 5
    for (xa, ya), (xb, yb) in zip(separate, joined, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya["box_target"], yb)
    assert list(pipe.epochs(3, 3)) == []


def test_flips_move_targets_with_the_image(detection: tuple[Path, LabelMap]) -> None:
    examples, lm = detection
    plain = InputPipeline(str(examples), "train", "detection", lm, (64, 64), 18, training=False)
    aug = InputPipeline(str(examples), "train", "detection", lm, (64, 64), 18, training=True, seed=0)
    [(x0, y0)] = batches(plain)
    [(x1, y1)] = batches(aug)
    flipped = 0
    for i in range(18):
        # find the record in the un-augmented batch (shuffled order): same or mirrored pixels
        j = next(j for j in range(18) if np.array_equal(x1[i], x0[j]) or np.array_equal(x1[i], x0[j][:, ::-1]))
        if np.array_equal(x1[i], x0[j]) and not np.array_equal(x0[j], x0[j][:, ::-1]):
            np.testing.assert_array_equal(y1["heatmap"][i], y0["heatmap"][j])
            continue
        flipped += 1
        np.testing.assert_array_equal(y1["heatmap"][i], y0["heatmap"][j][:, ::-1])
        w = y0["box_weight"][j][:, ::-1]
        np.testing.assert_array_equal(y1["box_weight"][i], w)
        mirrored = y0["box_target"][j][:, ::-1]
        expect = np.stack([64 - mirrored[..., 2], mirrored[..., 1], 64 - mirrored[..., 0], mirrored[..., 3]], -1)
        np.testing.assert_allclose(y1["box_target"][i][w > 0], expect[w > 0], atol=1e-4)
    assert 0 < flipped < 18


def test_class_ids_become_dense_indices(tmp_path: Path) -> None:
    examples, lm_path = make_examples(tmp_path / "c", "classification", num_images=12, image_size=32)
    index_lm = LabelMap.load(lm_path)
    assert index_lm.ids == [1, 2, 3]
    pipe = InputPipeline(str(examples), "train", "classification", index_lm, (32, 32), 16)
    [(_, y)] = batches(pipe)
    assert set(y["label"].tolist()) <= {0, 1, 2} and len(set(y["label"].tolist())) > 1
    seg_examples, seg_lm = make_examples(tmp_path / "s", "segmentation", num_images=8, image_size=32)
    seg = InputPipeline(str(seg_examples), "train", "segmentation", LabelMap.load(seg_lm), (32, 32), 8)
    [(_, ys)] = batches(seg)
    assert set(np.unique(ys["mask"]).tolist()) <= {0, 1, 2, 3} and ys["mask"].max() > 0

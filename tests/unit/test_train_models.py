"""Architecture choice, warm-start weight transfer by label-map id, the over-fitting check and loss curves."""

from __future__ import annotations

import numpy as np
import pytest

from components.core.errors import TrainingError
from components.train.models import resolve_architecture, transfer_weights
from components.train.report import detect_overfitting, plot_losses


def test_auto_picks_the_task_default_and_names_are_checked_against_the_task() -> None:
    assert resolve_architecture("detection", "auto") == "compact_detector"
    assert resolve_architecture("classification", "auto") == "mobilenet_v3_small"
    assert resolve_architecture("classification", "EfficientNet-B0") == "efficientnet_b0"
    assert resolve_architecture("segmentation", "auto") == "unet"
    with pytest.raises(TrainingError, match="is a segmentation architecture"):
        resolve_architecture("detection", "unet")
    with pytest.raises(TrainingError, match=r"unknown train\.model 'resnet9000'"):
        resolve_architecture("classification", "resnet9000")


@pytest.mark.parametrize("task,arch,background", [("detection", "compact_detector", False), ("segmentation", "unet", True)])
def test_transfer_keeps_class_weights_by_label_map_id(task: str, arch: str, background: bool) -> None:
    from components.train.models import build_model

    parent = build_model(task, arch, 3, (64, 64))  # ids 1, 2, 3
    rng = np.random.default_rng(0)
    for v in parent.weights:
        v.assign(rng.normal(size=v.shape).astype(np.float32))
    child = build_model(task, arch, 3, (64, 64))  # ids 1, 3, 4: class 2 was dropped, 4 is new
    fresh = [w.copy() for w in child.get_layer("class_head").get_weights()]
    counts = transfer_weights(parent, child, [1, 2, 3], [1, 3, 4], background_channel=background)
    assert counts["class_mapped"] == 2 and counts["skipped"] == 0
    off = 1 if background else 0
    pk, _ = parent.get_layer("class_head").get_weights()
    ck, cb = child.get_layer("class_head").get_weights()
    np.testing.assert_array_equal(ck[..., 0 + off], pk[..., 0 + off])  # id 1
    np.testing.assert_array_equal(ck[..., 1 + off], pk[..., 2 + off])  # id 3
    np.testing.assert_array_equal(ck[..., 2 + off], fresh[0][..., 2 + off])  # id 4 starts fresh
    np.testing.assert_array_equal(cb[2 + off], fresh[1][2 + off])
    if background:
        np.testing.assert_array_equal(ck[..., 0], pk[..., 0])
    for a, b in zip(parent.get_layer("backbone").get_weights(), child.get_layer("backbone").get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_transfer_with_more_classes_in_the_child() -> None:
    from components.train.models import build_model

    parent = build_model("classification", "mobilenet_v3_small", 2, (32, 32))
    child = build_model("classification", "mobilenet_v3_small", 3, (32, 32))
    counts = transfer_weights(parent, child, [1, 2], [1, 2, 3])
    assert counts["class_mapped"] == 2
    pk = parent.get_layer("class_head").get_weights()[0]
    ck = child.get_layer("class_head").get_weights()[0]
    np.testing.assert_array_equal(ck[:, :2], pk)
    assert ck.shape == (pk.shape[0], 3)


def rows(train: list[float], val: list[float]) -> list[dict[str, float]]:
    return [{"epoch": i + 1, "loss": t, "val_loss": v} for i, (t, v) in enumerate(zip(train, val, strict=True))]


def test_overfitting_is_flagged_when_val_rises_while_train_falls() -> None:
    r = detect_overfitting(rows([2.0, 1.5, 1.0, 0.7, 0.5], [2.0, 1.6, 1.5, 1.7, 1.9]))
    assert r["overfitting"] is True
    assert r["epochs"] == [3, 4, 5]
    assert r["val_slope"] > 0 > r["train_slope"]
    assert "over-fitting" in r["message"]


def test_no_overfitting_when_both_fall_or_train_also_rises_or_too_few_epochs() -> None:
    assert detect_overfitting(rows([2.0, 1.5, 1.0, 0.8], [2.1, 1.6, 1.2, 1.1]))["overfitting"] is False
    assert detect_overfitting(rows([1.0, 1.2, 1.4, 1.6], [1.0, 1.3, 1.5, 1.8]))["overfitting"] is False  # diverging, not over-fitting
    assert detect_overfitting(rows([1.0, 0.5], [1.0, 2.0]))["overfitting"] is False
    # noise within tolerance of the best validation loss is not flagged
    assert detect_overfitting(rows([2.0, 1.5, 1.2, 1.0], [1.0, 0.999, 1.001, 1.005]))["overfitting"] is False


def test_loss_curves_png(tmp_path) -> None:
    from PIL import Image

    path = plot_losses(rows([2.0, 1.5, 1.0], [2.1, 1.7, 1.6]), tmp_path / "loss.png", best_epoch=3)
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == (640, 400)
        # the plot is not blank: many distinct colours (two curves, legend, grid)
        assert len(set(im.convert("RGB").getdata())) > 20


def test_component_signature() -> None:
    from components.train.component import train

    spec = train.component_spec
    assert set(spec.inputs) == {"context", "run_id", "train", "examples", "label_map"}
    assert spec.inputs["examples"].type == "system.Dataset@0.0.1"
    assert spec.inputs["label_map"].type == "system.Artifact@0.0.1"
    assert {k: v.type for k, v in spec.outputs.items()} == {
        "model": "system.Model@0.0.1",
        "report": "system.HTML@0.0.1",
        "hyperparameters": "system.Artifact@0.0.1",
    }
    assert spec.implementation.container.image.startswith("cvpipe")


def test_pretrained_weights_load_into_the_backbone(tmp_path) -> None:
    from components.train.models import build_model, load_backbone_weights

    donor = build_model("classification", "mobilenet_v3_small", 5, (32, 32))
    rng = np.random.default_rng(1)
    for v in donor.get_layer("backbone").weights:
        v.assign(rng.normal(size=v.shape).astype(np.float32))
    path = tmp_path / "backbone.weights.h5"
    donor.get_layer("backbone").save_weights(str(path))

    model = build_model("classification", "mobilenet_v3_small", 3, (32, 32))  # another head: only the backbone loads
    load_backbone_weights(model, str(path))
    for a, b in zip(donor.get_layer("backbone").get_weights(), model.get_layer("backbone").get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(TrainingError, match="file not found"):
        load_backbone_weights(model, str(tmp_path / "missing.weights.h5"))
    detector = build_model("detection", "compact_detector", 3, (64, 64))
    with pytest.raises(TrainingError, match="does not fit the compact_detector backbone"):
        load_backbone_weights(detector, str(path))

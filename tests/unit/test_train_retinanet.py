"""keras-hub RetinaNet as a cvpipe detector: train, COCO evaluation, export, `cvpipe predict` and `cvpipe serve`, presets.

Tiny on purpose: a one-block-per-stage ResNet at 128x128, 12 images, one step per epoch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import numpy as np
import pytest
import requests
import yaml
from click.testing import CliRunner
from serve_testdata import ServerProcess
from train_testdata import make_examples

from components.core.errors import TrainingError
from components.core.spec import parse_spec
from components.core.step import StepContext

pytest.importorskip("keras_hub")


def _spec(tmp_path: Path, **train: Any) -> dict[str, Any]:
    return {
        "name": "retina",
        "task": "detection",
        "data": {"source": str(tmp_path / "synth" / "annotations.json")},
        "train": {
            "model": "retinanet",
            "backbone": "resnet_tiny",
            "epochs": 1,
            "batch_size": 16,
            "image_size": [128, 128],
            "learning_rate": 1e-3,
            **train,
        },
        "registry": {"root": str(tmp_path / "registry")},
        "runtime": {"root": str(tmp_path / "runs"), "metadata": {"url": f"sqlite:///{tmp_path / 'mlmd.sqlite'}"}},
    }


def test_retinanet_trains_is_evaluated_with_coco_metrics_exported_and_served(tmp_path: Path) -> None:
    from components.evaluate.core import run as evaluate
    from components.registry import LocalRegistry, RegisterRequest
    from components.train.core import run as train
    from pipelines.cli.predict import predict_cmd

    examples, label_map = make_examples(tmp_path, "detection", num_images=12, image_size=128)
    spec = _spec(tmp_path)
    ctx = StepContext(spec=parse_spec(spec), run_id="run-1", component="train")
    result = train(ctx, examples, label_map, tmp_path / "m", tmp_path / "r", tmp_path / "h")

    info = json.loads((result.model_dir / "model_info.json").read_text())
    assert info["architecture"] == "retinanet" and info["backbone"] == "resnet_tiny" and info["embedding_dim"] == 256
    report = json.loads((result.report_dir / "training_report.json").read_text())
    assert report["steps_per_epoch"] == 1 and {"class_loss", "box_loss"} <= set(report["history"][0])
    assert (result.model_dir / "preset" / "config.json").is_file() and (result.model_dir / "preset" / "task.json").is_file()

    # the same evaluate step (pycocotools COCO metrics) as the compact detector
    ev_ctx = StepContext(spec=parse_spec(spec), run_id="run-1", component="evaluate")
    ev = evaluate(ev_ctx, result.model_dir, examples, tmp_path / "ev", tmp_path / "bl", tmp_path / "report.html", lookup_baseline=False)
    for metric in ("map", "map_50", "map_75", "mar_100"):
        assert 0.0 <= ev.candidate.metrics[metric] <= 1.0, metric
    assert ev.candidate.num_images == 3

    # served by `cvpipe predict` from the registry, like any cvpipe model
    registry = LocalRegistry(tmp_path / "registry", ctx.store)
    registry.register(RegisterRequest(model_dir=result.model_dir, model_name="retina", blessed=True, aliases=["champion"]))
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    cli = click.Group("cvpipe", commands={"predict": predict_cmd})
    out = CliRunner().invoke(cli, ["predict", "retina@champion", str(tmp_path / "synth" / "images"), "--spec", str(spec_file)])
    assert out.exit_code == 0, out.output
    assert "12 predictions of retina:1 logged" in out.output
    [summary] = list((tmp_path / "runs" / "retina" / "predict").glob("*/predict.json"))
    assert json.loads(summary.read_text())["predictions"] == 12

    # and by `cvpipe serve`, a real server process on 127.0.0.1
    server = ServerProcess(spec_file, "retina@champion", tmp_path / "server.log").start()
    try:
        image = sorted((tmp_path / "synth" / "images").iterdir())[0].read_bytes()
        answer = requests.post(f"{server.url}/v1/predict", data=image, headers={"Content-Type": "image/jpeg"}, timeout=300)
        assert answer.status_code == 200, answer.text
        [pred] = answer.json()["predictions"]
        assert str(pred["model_version"]) == "1" and len(pred["boxes"]) == len(pred["scores"])
        assert set(pred["class_ids"]) <= {1, 2, 3} and pred["num_detections"] >= len(pred["boxes"])
    finally:
        server.kill()


def test_a_preset_directory_initialises_the_backbone_and_the_heads_when_the_classes_match(tmp_path: Path) -> None:
    import keras_hub

    from components.train.retinanet import build_retinanet, detector_of, save_preset

    source = build_retinanet(3, (128, 128), {"backbone": "resnet_tiny"})
    preset = save_preset(source, tmp_path / "preset")
    src = detector_of(source)
    assert isinstance(keras_hub.models.RetinaNetObjectDetector.from_preset(str(preset)), keras_hub.models.RetinaNetObjectDetector)

    same = detector_of(build_retinanet(3, (128, 128), {"preset": str(preset)}))
    for a, b in zip(src.weights, same.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())

    grown = detector_of(build_retinanet(4, (128, 128), {"preset": str(preset), "head_convs": 1}))
    for a, b in zip(src.backbone.weights, grown.backbone.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert grown.num_classes == 4
    src_head = src.classification_head.weights[-2].numpy()
    assert grown.classification_head.weights[-2].shape[-1] == 9 * 4 != src_head.shape[-1]

    # a ResNet backbone preset is an image encoder for a new pyramid and heads
    encoder_preset = tmp_path / "encoder"
    src.backbone.image_encoder.save_to_preset(str(encoder_preset))
    from_encoder = detector_of(build_retinanet(2, (128, 128), {"preset": str(encoder_preset), "head_convs": 1}))
    for a, b in zip(src.backbone.image_encoder.weights, from_encoder.backbone.image_encoder.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())

    with pytest.raises(TrainingError, match=r"not a keras-hub preset directory"):
        build_retinanet(3, (128, 128), {"preset": str(tmp_path)})

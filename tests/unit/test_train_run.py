"""The train component end to end on tiny real TFRecords: export, fresh-process prediction, lineage, TFLite, tuner."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from train_testdata import make_examples

from components.core.spec import parse_spec
from components.core.step import StepContext

pytest.importorskip("tensorflow")

REPO = Path(__file__).resolve().parents[2]


def make_ctx(tmp_path: Path, task: str, **train: Any) -> StepContext:
    spec = parse_spec(
        {
            "name": "train-test",
            "task": task,
            "data": {"source": str(tmp_path / "annotations.json")},
            "train": {"epochs": 2, "batch_size": 8, "image_size": [64, 64], "learning_rate": 0.003, **train},
            "registry": {"root": str(tmp_path / "registry")},
            "runtime": {"root": str(tmp_path / "runs"), "metadata": {"url": f"sqlite:///{tmp_path / 'mlmd.sqlite'}"}},
        }
    )
    return StepContext(spec=spec, run_id="run-1", component="train")


def run_train(tmp_path: Path, ctx: StepContext, examples: Path, label_map: Path, name: str = "out") -> Any:
    from components.train.core import run

    out = tmp_path / name
    return run(ctx, examples, label_map, out / "model", out / "report", out / "hparams")


def predict_in_fresh_process(model_dir: Path, images: list[Path]) -> list[dict[str, Any]]:
    """Loads the export in a new Python process (nothing shared with this one) and predicts."""
    script = textwrap.dedent(
        """
        import json, sys
        import numpy as np
        from components.core.predictor import Predictor
        p = Predictor.load(sys.argv[1])
        preds = p.predict([open(f, "rb").read() for f in sys.argv[2:]], batch_size=2)
        out = []
        for pr in preds:
            d = pr.to_json()
            d["mask_shape"] = None if pr.mask is None else list(pr.mask.shape)
            d["mask_values"] = None if pr.mask is None else sorted(int(v) for v in np.unique(pr.mask))
            d["embedding_dim"] = None if pr.embedding is None else int(pr.embedding.shape[0])
            out.append(d)
        print(json.dumps({"task": p.task, "model_name": p.model_name, "ids": p.label_map.ids, "predictions": out}))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(model_dir), *map(str, images)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return [result]


def odd_sized_images(tmp_path: Path, source_dir: Path, n: int = 3) -> list[Path]:
    """Synth images re-saved at a non-square size different from the model input."""
    out = []
    for i, p in enumerate(sorted(source_dir.rglob("*.jpg"))[:n]):
        q = tmp_path / f"odd{i}.jpg"
        Image.open(p).convert("RGB").resize((96, 80)).save(q, quality=95)
        out.append(q)
    return out


def test_detection_run_exports_a_servable_model_with_lineage(tmp_path: Path) -> None:
    examples, label_map = make_examples(tmp_path, "detection", num_images=24, image_size=64)
    ctx = make_ctx(tmp_path, "detection")
    result = run_train(tmp_path, ctx, examples, label_map)

    model_dir = result.model_dir
    for name in ("saved_model/saved_model.pb", "label_map.json", "model_info.json", "model.weights.h5", "training_report.json", "loss.png"):
        assert (model_dir / name).is_file(), name
    assert (model_dir / "saved_model" / "assets" / "label_map.json").is_file()
    assert not (model_dir / "checkpoints").exists()
    info = json.loads((model_dir / "model_info.json").read_text())
    assert info["task"] == "detection" and info["architecture"] == "compact_detector"
    assert info["image_size"] == [64, 64] and info["epochs_run"] == 2 and info["label_map_version"] == 1
    report = json.loads((result.report_dir / "training_report.json").read_text())
    assert [int(r["epoch"]) for r in report["history"]] == [1, 2]
    assert report["global_step"] == report["steps_run"] == 2 * 3  # 18 training images, batch 8
    assert (result.report_dir / "index.html").read_text().count("<img") == 1

    # lineage: examples + label map in, model + report out, model properties as promised
    model_art = result.artifacts["model"]
    assert model_art.kind == "Model"
    props = model_art.properties
    assert props["model_name"] == "train-test" and props["architecture"] == "compact_detector" and props["task"] == "detection"
    assert props["image_size"] == "64x64" and props["epochs"] == 2 and props["pipeline"] == "train-test"
    assert props["val_loss"] == pytest.approx(result.best_val_loss)
    graph = ctx.store.upstream(model_art.id)
    assert {key for key, _ in graph.root.inputs} == {"examples", "label_map"}
    assert result.artifacts["report"].kind == "Report" and "hyperparameters" not in result.artifacts

    # the export serves in a fresh process, boxes in original-image pixels
    images = odd_sized_images(tmp_path, tmp_path / "synth" / "images")
    [out] = predict_in_fresh_process(model_dir, images)
    assert out["task"] == "detection" and out["model_name"] == "train-test" and out["ids"] == [1, 2, 3]
    for pred in out["predictions"]:
        assert (pred["width"], pred["height"]) == (96, 80)
        boxes = np.array(pred["boxes"]).reshape(-1, 4)
        assert len(boxes) == len(pred["scores"]) == len(pred["class_ids"]) > 0
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 0] + boxes[:, 2] <= 96.01).all()
        assert (boxes[:, 1] >= 0).all() and (boxes[:, 1] + boxes[:, 3] <= 80.01).all()
        assert set(pred["class_ids"]) <= {1, 2, 3}
        assert pred["scores"] == sorted(pred["scores"], reverse=True)
        assert pred["embedding_dim"] == info["embedding_dim"]

    # both signatures compute the same thing (PNG: TF and Pillow decode it identically)
    import tensorflow as tf

    from components.core.predictor import Predictor

    p = Predictor.load(model_dir)
    png = io.BytesIO()
    Image.open(images[0]).save(png, format="PNG")
    by_bytes = p._fn_bytes(image_bytes=tf.constant([png.getvalue()]))
    [pred] = p.predict([png.getvalue()])
    n = int(by_bytes["num_detections"][0])
    assert n == len(pred.scores)
    np.testing.assert_allclose(by_bytes["detection_scores"][0, :n].numpy(), pred.scores, atol=1e-4)
    np.testing.assert_array_equal(by_bytes["detection_classes"][0, :n].numpy(), pred.class_ids)


def test_segmentation_run_predicts_masks_at_original_size(tmp_path: Path) -> None:
    examples, label_map = make_examples(tmp_path, "segmentation", num_images=16, image_size=64)
    result = run_train(tmp_path, make_ctx(tmp_path, "segmentation", epochs=1), examples, label_map)
    assert result.architecture == "unet"
    [out] = predict_in_fresh_process(result.model_dir, odd_sized_images(tmp_path, tmp_path / "synth" / "images", 2))
    for pred in out["predictions"]:
        assert pred["mask_shape"] == [80, 96]
        assert set(pred["mask_values"]) <= {0, 1, 2, 3}
        assert set(pred["class_ids"]) == set(pred["mask_values"]) - {0}


def test_tuner_searches_learning_rates_and_records_the_best(tmp_path: Path) -> None:
    examples, label_map = make_examples(tmp_path, "segmentation", num_images=12, image_size=32)
    ctx = make_ctx(
        tmp_path, "segmentation", epochs=1, image_size=[32, 32], tuner={"enabled": True, "max_trials": 2, "learning_rates": [0.01, 0.001]}
    )
    result = run_train(tmp_path, ctx, examples, label_map)
    assert result.tuned
    hp = json.loads((tmp_path / "out" / "hparams" / "hyperparameters.json").read_text())
    assert len(hp["trials"]) == 2 and hp["oracle"] == "random"  # 2 x 2 grid > 2 trials
    losses = [t["val_loss"] for t in hp["trials"]]
    assert losses == sorted(losses) and hp["objective"]["best"] == losses[0]
    assert hp["values"] == hp["trials"][0]["values"] and hp["values"]["learning_rate"] in (0.01, 0.001)
    assert result.hyperparameters == hp["values"]
    art = result.artifacts["hyperparameters"]
    assert art.kind == "HyperParameters" and art.properties["learning_rate"] == hp["values"]["learning_rate"]
    report = json.loads((result.report_dir / "training_report.json").read_text())
    assert report["tuner"]["best"] == hp["values"]


def test_classification_run_with_tflite(tmp_path: Path) -> None:
    import tensorflow as tf

    examples, label_map = make_examples(tmp_path, "classification", num_images=16, image_size=64)
    ctx = make_ctx(tmp_path, "classification", epochs=1, image_size=[32, 32], export_tflite=["float16", "int8"])
    result = run_train(tmp_path, ctx, examples, label_map)
    assert result.architecture == "mobilenet_v3_small" and not result.tuned
    assert not (tmp_path / "out" / "hparams" / "hyperparameters.json").exists()

    [out] = predict_in_fresh_process(result.model_dir, sorted((tmp_path / "synth").rglob("*.jpg"))[:3])
    for pred in out["predictions"]:
        probs = np.array(pred["probabilities"])
        assert probs.shape == (3,) and probs.sum() == pytest.approx(1.0, abs=1e-4)
        assert pred["class_ids"] == [out["ids"][int(np.argmax(probs))]]

    from components.core.images import decode_rgb
    from components.core.predictor import Predictor

    pixels = tf.image.resize(decode_rgb(sorted((tmp_path / "synth").rglob("*.jpg"))[0]), (32, 32))[None]
    saved = Predictor.load(result.model_dir)._fn_images(images=pixels)["probabilities"].numpy()[0]
    for kind, tolerance in (("float16", 0.01), ("int8", 0.5)):
        interp = tf.lite.Interpreter(model_path=str(result.model_dir / "tflite" / f"model_{kind}.tflite"))
        interp.allocate_tensors()
        interp.set_tensor(interp.get_input_details()[0]["index"], pixels.numpy())
        interp.invoke()
        probs = interp.get_tensor(interp.get_output_details()[0]["index"])[0]
        assert probs.shape == (3,) and probs.sum() == pytest.approx(1.0, abs=0.02)
        np.testing.assert_allclose(probs, saved, atol=tolerance)
    assert json.loads((result.model_dir / "tflite" / "tflite_info.json").read_text())["files"] == {
        "float16": "model_float16.tflite",
        "int8": "model_int8.tflite",
    }

"""User code in the train step: a build function (``train.model``) and a training function (``train.run_fn``).

The user package is written to a temporary directory and put on ``sys.path``,
as a project's own package would be installed in the training image.
"""

from __future__ import annotations

import json
import textwrap
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from train_testdata import make_examples

from components.core.errors import SpecError, TrainingError
from components.core.spec import parse_spec
from components.core.step import StepContext

pytest.importorskip("tensorflow")

USER_CODE = '''
import json
from pathlib import Path

import keras
import tensorflow as tf

from cvpipe.data import read_dataset
from cvpipe.models import export_saved_model


def build(task, num_classes, image_size, hyperparameters):
    """A tiny classifier that follows the classification contract."""
    inp = keras.Input((*image_size, 3), name="images")
    x = keras.layers.Rescaling(1.0 / 255.0)(inp)
    x = keras.layers.Conv2D(int(hyperparameters["width"]), 3, strides=2, activation="relu", name="features")(x)
    emb = keras.layers.GlobalAveragePooling2D(name="embedding")(x)
    logits = keras.layers.Dense(num_classes, name="class_head")(emb)
    return keras.Model(inp, {"logits": logits, "embedding": emb}, name="user_classifier")


def no_embedding(task, num_classes, image_size, hyperparameters):
    inp = keras.Input((*image_size, 3))
    return keras.Model(inp, {"logits": keras.layers.Dense(num_classes)(keras.layers.Flatten()(inp))})


def run_fn(fn_args):
    """Trains the same classifier with model.fit, as a TFX Trainer module would."""
    h, w = fn_args.image_size
    def prepare(e):
        image = tf.image.resize(e["image"], (h, w))
        label = tf.searchsorted(tf.constant(fn_args.label_map.ids, tf.int64), tf.reshape(tf.cast(e["label"], tf.int64), [1]))[0]
        return image, {"logits": label}
    ds = read_dataset(fn_args.examples_dir, "train", fn_args.task).map(prepare).batch(8)
    with fn_args.strategy.scope():
        model = build(fn_args.task, fn_args.label_map.num_classes, fn_args.image_size, fn_args.hyperparameters)
        model.compile(optimizer="adam", loss={"logits": keras.losses.SparseCategoricalCrossentropy(from_logits=True)})
    fit = model.fit(ds, epochs=int(fn_args.hyperparameters["epochs"]), verbose=0, shuffle=False)
    export_saved_model(model, fn_args.task, fn_args.image_size, fn_args.label_map, fn_args.model_dir)
    Path(fn_args.model_run_dir, "seen.json").write_text(json.dumps(
        {"train_files": fn_args.train_files, "eval_files": fn_args.eval_files, "hp": fn_args.hyperparameters,
         "strategy": type(fn_args.strategy).__name__, "serving_model_dir": fn_args.serving_model_dir}))
    return {"history": [{"epoch": i + 1, "loss": v, "val_loss": v} for i, v in enumerate(fit.history["loss"])]}


class _Pixels(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def serve(self, images):
        return {"probabilities": tf.ones([tf.shape(images)[0], 3])}


def wrong_signature(fn_args):
    module = _Pixels()
    tf.saved_model.save(module, fn_args.serving_model_dir, signatures={"serving_default": module.serve})


def writes_nothing(fn_args):
    return None
'''


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    name = f"usermodels_{uuid.uuid4().hex[:8]}"  # unique: no module cached by another test
    pkg = tmp_path / "userpkg"
    pkg.mkdir()
    (pkg / f"{name}.py").write_text(textwrap.dedent(USER_CODE))
    monkeypatch.syspath_prepend(str(pkg))
    return name


def _ctx(tmp_path: Path, run_id: str = "run-1", **train: Any) -> StepContext:
    spec = parse_spec(
        {
            "name": "user-code",
            "task": "classification",
            "data": {"source": str(tmp_path / "synth")},
            "train": {"epochs": 1, "batch_size": 8, "image_size": [32, 32], **train},
            "registry": {"root": str(tmp_path / "registry")},
            "runtime": {"root": str(tmp_path / "runs"), "metadata": {"url": f"sqlite:///{tmp_path / 'mlmd.sqlite'}"}},
        }
    )
    return StepContext(spec=spec, run_id=run_id, component="train")


def _run(tmp_path: Path, ctx: StepContext, examples: Path, label_map: Path, name: str) -> Any:
    from components.train.core import run

    out = tmp_path / name
    return run(ctx, examples, label_map, out / "model", out / "report", out / "hp")


def test_a_build_function_trains_exports_serves_and_warm_starts(tmp_path: Path, user_module: str) -> None:
    from components.core.predictor import Predictor
    from components.registry import LocalRegistry, RegisterRequest

    examples, label_map = make_examples(tmp_path, "classification", num_images=12, image_size=32)
    ref = f"{user_module}:build"
    ctx = _ctx(tmp_path, model=ref, hyperparameters={"width": 6})
    parent = _run(tmp_path, ctx, examples, label_map, "parent")

    info = json.loads((parent.model_dir / "model_info.json").read_text())
    assert info["architecture"] == ref and info["embedding_dim"] == 6 and info["model_hyperparameters"] == {"width": 6}
    assert parent.artifacts["model"].properties["architecture"] == ref
    predictor = Predictor.load(parent.model_dir)
    png = (tmp_path / "synth").rglob("*.jpg").__next__().read_bytes()
    [pred] = predictor.predict([png])
    assert pred.probabilities is not None and pred.probabilities.shape == (3,) and int(pred.class_ids[0]) in {1, 2, 3}
    assert pred.embedding is not None and pred.embedding.shape == (6,)

    # warm start: the same function builds the parent, whose weights carry over
    registry = LocalRegistry(tmp_path / "registry", ctx.store)
    registry.register(RegisterRequest(model_dir=parent.model_dir, model_name="user-code", source_model_id=parent.artifacts["model"].id))
    child_ctx = _ctx(tmp_path, "run-2", model=ref, hyperparameters={"width": 6}, parent="user-code:1", learning_rate=1e-9)
    child = _run(tmp_path, child_ctx, examples, label_map, "child")
    assert child.parent_artifact_id == parent.artifacts["model"].id
    import keras

    weights = []
    for d in (parent.model_dir, child.model_dir):
        from components.train.models import build_model

        m = build_model("classification", ref, 3, (32, 32), {"width": 6})
        m.load_weights(str(d / "model.weights.h5"))
        weights.append(m.get_layer("features").get_weights()[0])
    np.testing.assert_allclose(weights[1], weights[0], atol=1e-5)
    assert isinstance(m, keras.Model)


def test_a_build_function_that_breaks_the_contract_is_named_in_the_error(tmp_path: Path, user_module: str) -> None:
    examples, label_map = make_examples(tmp_path, "classification", num_images=8, image_size=32)
    with pytest.raises(TrainingError, match=rf"train.model '{user_module}:no_embedding'.*no output 'embedding'"):
        _run(tmp_path, _ctx(tmp_path, model=f"{user_module}:no_embedding"), examples, label_map, "bad")
    with pytest.raises(TrainingError, match=rf"train.model '{user_module}:missing'.*has no attribute 'missing'"):
        _run(tmp_path, _ctx(tmp_path, model=f"{user_module}:missing"), examples, label_map, "missing")
    with pytest.raises(TrainingError, match=r"cannot import module 'no_such_pkg_x.models' \(No module named 'no_such_pkg_x'\)"):
        _run(tmp_path, _ctx(tmp_path, model="no_such_pkg_x.models:build"), examples, label_map, "noimport")


def test_run_fn_trains_with_fn_args_and_its_savedmodel_is_checked_and_served(tmp_path: Path, user_module: str) -> None:
    from components.core.predictor import Predictor

    examples, label_map = make_examples(tmp_path, "classification", num_images=12, image_size=32)
    ref = f"{user_module}:run_fn"
    ctx = _ctx(tmp_path, run_fn=ref, epochs=2, hyperparameters={"width": 5})
    result = _run(tmp_path, ctx, examples, label_map, "fn")

    seen = json.loads((result.model_dir / "run" / "seen.json").read_text())
    assert seen["train_files"] == [str(examples / "train-00000-of-00001.tfrecord")]
    assert seen["eval_files"] == [str(examples / "validation-00000-of-00001.tfrecord")]
    assert seen["hp"] == {"width": 5, "learning_rate": 0.001, "epochs": 2, "batch_size": 8, "seed": 0}
    assert seen["serving_model_dir"] == str(result.model_dir / "saved_model")
    info = json.loads((result.model_dir / "model_info.json").read_text())
    assert info["architecture"] == ref and info["trained_by"] == "run_fn" and info["embedding_dim"] == 5 and info["epochs_run"] == 2
    report = json.loads((result.report_dir / "training_report.json").read_text())
    assert [r["epoch"] for r in report["history"]] == [1, 2]
    assert result.artifacts["model"].properties["architecture"] == ref
    assert {k for k, _ in ctx.store.upstream(result.artifacts["model"].id).root.inputs} == {"examples", "label_map"}
    png = next((tmp_path / "synth").rglob("*.jpg")).read_bytes()
    [pred] = Predictor.load(result.model_dir).predict([png])
    assert int(pred.class_ids[0]) in {1, 2, 3}


def test_run_fn_whose_savedmodel_breaks_the_signature_fails_naming_the_function(tmp_path: Path, user_module: str) -> None:
    examples, label_map = make_examples(tmp_path, "classification", num_images=8, image_size=32)
    ref = f"{user_module}:wrong_signature"
    with pytest.raises(TrainingError) as e:
        _run(tmp_path, _ctx(tmp_path, run_fn=ref), examples, label_map, "wrong")
    msg = str(e.value)
    assert f"train.run_fn '{ref}'" in msg and "image_bytes: string [None]" in msg and "no output 'embedding'" in msg
    assert "no output 'probabilities'" not in msg  # it has that one
    with pytest.raises(TrainingError, match=r"returned without writing a SavedModel to fn_args.serving_model_dir"):
        _run(tmp_path, _ctx(tmp_path, run_fn=f"{user_module}:writes_nothing"), examples, label_map, "nothing")


def test_spec_checks_user_code_names_and_the_options_they_exclude() -> None:
    base = {"name": "x", "task": "detection", "data": {"source": "a.json"}}

    def problems(train: dict[str, Any], task: str = "detection") -> str:
        with pytest.raises(SpecError) as e:
            parse_spec({**base, "task": task, "train": train})
        return str(e.value)

    assert "'package.module:function'" in problems({"model": "my pkg:build"})
    assert "tune inside run_fn" in problems({"run_fn": "pkg.train:run_fn", "tuner": {"enabled": True}})
    assert "export_tflite" in problems({"run_fn": "pkg.train:run_fn", "export_tflite": ["float16"]})
    assert "applies to model: retinanet only" in problems({"backbone": "resnet18"})
    assert "resnet_tiny" in problems({"model": "retinanet", "backbone": "resnet9"})
    assert "is a detection architecture" in problems({"model": "retinanet"}, task="classification")
    assert "did not" not in problems({"model": "yolo"}) and "compact_detector, retinanet" in problems({"model": "yolo"})
    ok = parse_spec({**base, "train": {"model": "retinanet", "backbone": "resnet_tiny", "hyperparameters": {"head_convs": 1}}})
    assert ok.train.backbone == "resnet_tiny"
    assert parse_spec({**base, "train": {"model": "pkg.models:build"}}).train.model == "pkg.models:build"

"""A trainer killed with SIGKILL resumes from its last step checkpoint; warm start from a registered parent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from train_testdata import make_examples

from components.core.errors import TrainingError
from components.core.labelmap import LabelMap
from components.core.spec import parse_spec
from components.core.step import StepContext

pytest.importorskip("tensorflow")

REPO = Path(__file__).resolve().parents[2]

TRAINER = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from components.core.log import configure_logging
    from components.core.spec import parse_spec
    from components.core.step import StepContext
    from components.train.core import run

    configure_logging()  # the library only creates loggers; a program running a step turns them on, as the CLI does
    spec = parse_spec(json.loads(sys.argv[1]))
    out = Path(sys.argv[2])
    run(StepContext(spec=spec, run_id="run-1", component="train"), sys.argv[3], sys.argv[4], out / "model", out / "report", out / "hparams")
    """
)


def spec_dict(tmp_path: Path, task: str = "detection", **train: Any) -> dict[str, Any]:
    return {
        "name": "train-test",
        "task": task,
        "data": {"source": str(tmp_path / "annotations.json")},
        "train": {"epochs": 1, "batch_size": 4, "image_size": [64, 64], "learning_rate": 0.003, **train},
        "registry": {"root": str(tmp_path / "registry")},
        "runtime": {"root": str(tmp_path / "runs"), "metadata": {"url": f"sqlite:///{tmp_path / 'mlmd.sqlite'}"}},
    }


def start_trainer(spec: dict[str, Any], out: Path, examples: Path, label_map: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    with open(log, "ab") as f:
        return subprocess.Popen(
            [sys.executable, "-c", TRAINER, json.dumps(spec), str(out), str(examples), str(label_map)],
            cwd=REPO,
            stdout=f,
            stderr=subprocess.STDOUT,
            env=env,
        )


def test_killed_trainer_resumes_from_the_last_checkpoint_without_repeating_steps(tmp_path: Path) -> None:
    examples, label_map = make_examples(tmp_path, "detection", num_images=24, image_size=64)
    # 18 training images, batch 4: 5 steps per epoch, 30 steps in all; a checkpoint every 3 steps
    spec = spec_dict(tmp_path, epochs=6, checkpoint_every_steps=3, early_stopping_patience=100)
    out = tmp_path / "out"
    index = out / "model" / "checkpoints" / "train" / "checkpoint"
    log = tmp_path / "trainer.log"

    first = start_trainer(spec, out, examples, label_map, log)
    # generous: under a loaded CI machine importing TensorFlow alone can take minutes; pytest-timeout bounds the test
    deadline = time.monotonic() + 600
    while not index.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert index.exists(), log.read_text()[-3000:]
    first.send_signal(signal.SIGKILL)
    assert first.wait(timeout=30) == -signal.SIGKILL
    assert not (out / "model" / "model_info.json").exists(), "the first trainer finished before it was killed"

    second = start_trainer(spec, out, examples, label_map, log)
    assert second.wait(timeout=600) == 0, log.read_text()[-3000:]

    report = json.loads((out / "model" / "training_report.json").read_text())
    resumed = report["resumed_from_step"]
    assert resumed > 0 and (resumed % 3 == 0 or resumed % 5 == 0)  # a step checkpoint or an epoch end
    assert report["global_step"] == 30
    assert report["steps_run"] == 30 - resumed  # the second trainer ran only the steps the first had not checkpointed
    assert [int(r["epoch"]) for r in report["history"]] == list(range(1, 7))
    text = log.read_text()
    assert "resuming from checkpoint" in text and f"global step {resumed}" in text
    assert (out / "model" / "saved_model" / "saved_model.pb").is_file()
    assert not (out / "model" / "checkpoints").exists()


def test_warm_start_from_a_registered_parent_carries_weights_and_lineage(tmp_path: Path) -> None:
    from components.registry import LocalRegistry, RegisterRequest
    from components.train.core import run
    from components.train.models import build_model

    examples, label_map_path = make_examples(tmp_path, "detection", num_images=12, image_size=64)
    parent_ctx = StepContext(spec=parse_spec(spec_dict(tmp_path)), run_id="run-parent", component="train")
    parent = run(parent_ctx, examples, label_map_path, tmp_path / "p" / "model", tmp_path / "p" / "report", tmp_path / "p" / "hp")
    parent_id = parent.artifacts["model"].id
    registry = LocalRegistry(tmp_path / "registry", parent_ctx.store)
    registry.register(RegisterRequest(model_dir=parent.model_dir, model_name="train-test", source_model_id=parent_id, aliases=["champion"]))

    # the child's label map gained a class (stable ids: 1..3 unchanged, 4 new)
    grown = LabelMap.load(label_map_path).extended(["star"])
    grown_path = grown.save(tmp_path / "label_map_v2.json")
    child_ctx = StepContext(
        spec=parse_spec(spec_dict(tmp_path, parent="train-test@champion", learning_rate=1e-9)), run_id="run-child", component="train"
    )
    child = run(child_ctx, examples, grown_path, tmp_path / "c" / "model", tmp_path / "c" / "report", tmp_path / "c" / "hp")

    assert child.parent_artifact_id == parent_id
    model = child.artifacts["model"]
    assert model.properties["parent"] == parent_id
    inputs = dict(child_ctx.store.upstream(model.id).root.inputs)
    assert inputs["parent_model"].artifact.id == parent_id
    info = json.loads((child.model_dir / "model_info.json").read_text())
    assert info["parent"] == {"ref": "train-test@champion", "artifact_id": parent_id}
    assert info["label_ids"] == [1, 2, 3, 4] and info["label_map_version"] == 2

    # with a negligible learning rate the child's weights are the parent's (a fresh init would differ everywhere)
    p_model = build_model("detection", "compact_detector", 3, (64, 64))
    p_model.load_weights(str(parent.model_dir / "model.weights.h5"))
    c_model = build_model("detection", "compact_detector", 4, (64, 64))
    c_model.load_weights(str(child.model_dir / "model.weights.h5"))
    stem_p = p_model.get_layer("backbone").get_layer("stem_conv").get_weights()[0]
    stem_c = c_model.get_layer("backbone").get_layer("stem_conv").get_weights()[0]
    np.testing.assert_allclose(stem_c, stem_p, atol=1e-5)
    head_p = p_model.get_layer("class_head").get_weights()[0]
    head_c = c_model.get_layer("class_head").get_weights()[0]
    np.testing.assert_allclose(head_c[..., :3], head_p, atol=1e-5)
    assert not np.allclose(head_c[..., 3], head_p[..., 0], atol=1e-3)


def test_a_parent_of_another_task_is_refused(tmp_path: Path) -> None:
    from components.registry import LocalRegistry, RegisterRequest
    from components.train.core import run

    examples, label_map_path = make_examples(tmp_path, "segmentation", num_images=8, image_size=32)
    ctx = StepContext(spec=parse_spec(spec_dict(tmp_path, "segmentation", image_size=[32, 32])), run_id="r1", component="train")
    seg = run(ctx, examples, label_map_path, tmp_path / "s" / "model", tmp_path / "s" / "report", tmp_path / "s" / "hp")
    LocalRegistry(tmp_path / "registry", ctx.store).register(
        RegisterRequest(model_dir=seg.model_dir, model_name="seg", source_model_id=seg.artifacts["model"].id)
    )
    det_examples, det_lm = make_examples(tmp_path / "det", "detection", num_images=8, image_size=64)
    det_ctx = StepContext(spec=parse_spec(spec_dict(tmp_path, parent="seg:1")), run_id="r2", component="train")
    with pytest.raises(TrainingError, match="is a segmentation unet model; it cannot warm-start a detection compact_detector"):
        run(det_ctx, det_examples, det_lm, tmp_path / "d" / "model", tmp_path / "d" / "report", tmp_path / "d" / "hp")
    with pytest.raises(TrainingError, match=r"train\.parent 'nope@champion'"):
        bad = StepContext(spec=parse_spec(spec_dict(tmp_path, parent="nope@champion")), run_id="r3", component="train")
        run(bad, det_examples, det_lm, tmp_path / "e" / "model", tmp_path / "e" / "report", tmp_path / "e" / "hp")

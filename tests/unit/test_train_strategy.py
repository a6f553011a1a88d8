"""Strategy selection (injected devices and TF_CONFIG) and real runs under the default and a mirrored strategy."""

from __future__ import annotations

import json
import logging

import pytest

from components.core.spec import AcceleratorSpec
from components.train.strategy import mixed_precision, plan_strategy, select_strategy

GPUS = ["/physical_device:GPU:0", "/physical_device:GPU:1", "/physical_device:GPU:2", "/physical_device:GPU:3"]


def tf_config(workers: int, chief: bool = False) -> dict[str, str]:
    cluster: dict[str, list[str]] = {"worker": [f"host{i}:2222" for i in range(workers)]}
    if chief:
        cluster["chief"] = ["chief:2222"]
    return {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}})}


def test_cpu_uses_the_default_strategy_in_float32() -> None:
    plan = plan_strategy(AcceleratorSpec(), {}, [], tpu_available=False)
    assert (plan.kind, plan.precision, plan.num_workers) == ("default", "float32", 1)


def test_gpus_use_mirrored_with_float16_limited_to_the_requested_count() -> None:
    plan = plan_strategy(AcceleratorSpec(type="gpu", count=2), {}, GPUS, tpu_available=False)
    assert plan.kind == "mirrored"
    assert plan.precision == "mixed_float16"
    assert plan.devices == tuple(GPUS[:2])
    one = plan_strategy(AcceleratorSpec(type="gpu", count=1), {}, GPUS[:1], tpu_available=False)
    assert one.kind == "mirrored" and one.devices == (GPUS[0],)


def test_visible_gpus_are_used_even_when_cpu_was_requested() -> None:
    plan = plan_strategy(AcceleratorSpec(), {}, GPUS[:2], tpu_available=False)
    assert plan.kind == "mirrored" and len(plan.devices) == 2


def test_requested_gpu_that_is_missing_falls_back_to_cpu_and_says_so() -> None:
    plan = plan_strategy(AcceleratorSpec(type="gpu", kind="NVIDIA_L4", count=2), {}, [], tpu_available=False)
    assert plan.kind == "default"
    assert "NVIDIA_L4" in plan.description and "no GPU is visible" in plan.description


def test_several_workers_in_tf_config_use_multi_worker() -> None:
    plan = plan_strategy(AcceleratorSpec(type="gpu"), tf_config(2, chief=True), GPUS[:1], tpu_available=False)
    assert plan.kind == "multi_worker"
    assert plan.num_workers == 3
    assert plan.precision == "mixed_float16"
    cpu_workers = plan_strategy(AcceleratorSpec(), tf_config(2), [], tpu_available=False)
    assert cpu_workers.kind == "multi_worker" and cpu_workers.precision == "float32"


def test_one_worker_or_broken_tf_config_is_not_multi_worker() -> None:
    assert plan_strategy(AcceleratorSpec(), tf_config(1), [], tpu_available=False).kind == "default"
    assert plan_strategy(AcceleratorSpec(), {"TF_CONFIG": "{not json"}, [], tpu_available=False).kind == "default"


def test_tpu_wins_and_uses_bfloat16() -> None:
    plan = plan_strategy(AcceleratorSpec(type="tpu"), tf_config(4), GPUS, tpu_available=True)
    assert (plan.kind, plan.precision) == ("tpu", "mixed_bfloat16")
    missing = plan_strategy(AcceleratorSpec(type="tpu"), {}, [], tpu_available=False)
    assert missing.kind == "default" and "no TPU cluster answered" in missing.description


def test_select_strategy_builds_the_default_strategy_on_cpu() -> None:
    import tensorflow as tf

    asked: list[str] = []

    def resolver(acc: AcceleratorSpec, env: object) -> None:
        asked.append(acc.type)
        return None

    strategy, description = select_strategy(AcceleratorSpec(type="tpu"), {}, list_gpus=lambda: [], tpu_resolver=resolver)
    assert asked == ["tpu"]
    assert strategy is tf.distribute.get_strategy()
    assert "default strategy" in description


def test_select_strategy_without_injection_on_this_machine() -> None:
    import tensorflow as tf

    strategy, description = select_strategy(AcceleratorSpec(), {})
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    assert strategy is tf.distribute.get_strategy() and "CPU" in description


def test_mixed_precision_keeps_outputs_float32_and_restores_the_policy() -> None:
    import keras
    import numpy as np

    from components.train.models import build_model

    before = keras.config.dtype_policy().name
    with mixed_precision("mixed_float16"):
        model = build_model("detection", "compact_detector", 3, (64, 64))
    assert keras.config.dtype_policy().name == before
    assert model.get_layer("backbone").layers[1].compute_dtype == "float16"
    out = model(np.zeros((1, 64, 64, 3), np.float32), training=False)
    assert {k: v.dtype.name for k, v in out.items()} == {"heatmap": "float32", "ltrb": "float32", "embedding": "float32"}


def test_training_loop_runs_under_a_mirrored_strategy(tmp_path) -> None:
    import tensorflow as tf
    from train_testdata import make_examples

    from components.core.labelmap import LabelMap
    from components.train.data import InputPipeline
    from components.train.loop import LoopConfig, Trainer, make_optimizer
    from components.train.models import build_model

    examples, lm_path = make_examples(tmp_path, "detection", num_images=12, image_size=32)
    lm = LabelMap.load(lm_path)
    strategy = tf.distribute.MirroredStrategy(devices=["/cpu:0"])
    train = InputPipeline(str(examples), "train", "detection", lm, (32, 32), 4, training=True)
    val = InputPipeline(str(examples), "validation", "detection", lm, (32, 32), 4)
    with strategy.scope():
        model = build_model("detection", "compact_detector", lm.num_classes, (32, 32))
        opt = make_optimizer(1e-3, 0.0, train.steps_per_epoch, "float32")
    fit = Trainer(model, "detection", opt, strategy, train, val, LoopConfig(1, 1, 0), logging.getLogger("test")).fit()
    assert fit.global_step == train.steps_per_epoch == 3
    assert fit.best_epoch == 1 and fit.history[0]["val_loss"] > 0
    assert int(opt.iterations.numpy()) == 3
    assert isinstance(model.trainable_variables[0].value, tf.distribute.DistributedValues)  # really mirrored

"""The TFMA path: an existing TFX Evaluator EvalConfig, TFMA 0.47 run for real on a tiny classification set.

Slow-ish (TFMA and Beam import in ~20 s); two TFMA runs of a few seconds each.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from evaluate_testdata import save_colour_model, write_examples

from components.core.errors import EvaluationError
from components.core.spec import parse_spec
from components.core.step import StepContext
from components.evaluate.blessing import bless_with_tfma, load_eval_config, thresholds_from_eval_config
from components.evaluate.core import run

# As a TFX pipeline would have it: a serving model spec (replaced by cvpipe), value and change thresholds.
EVAL_CONFIG = """
model_specs { label_key: "label" signature_name: "serving_default" }
metrics_specs {
  metrics {
    class_name: "SparseCategoricalAccuracy"
    threshold {
      value_threshold { lower_bound { value: 0.6 } }
      change_threshold { direction: HIGHER_IS_BETTER absolute { value: -0.05 } }
    }
  }
  metrics { class_name: "ExampleCount" }
}
slicing_specs {}
slicing_specs { feature_keys: "image_size" }
"""


def test_eval_config_text_and_json_map_to_cvpipe_thresholds(tmp_path: Path) -> None:
    text = tmp_path / "eval_config.pbtxt"
    text.write_text(EVAL_CONFIG)
    as_json = tmp_path / "eval_config.json"
    as_json.write_text(
        json.dumps(
            {
                "metricsSpecs": [
                    {
                        "thresholds": {
                            "map_50": {"valueThreshold": {"lowerBound": 0.5}},
                            "mean_iou": {"changeThreshold": {"direction": "LOWER_IS_BETTER", "relative": 0.1}},
                        }
                    }
                ]
            }
        )
    )
    [acc] = thresholds_from_eval_config(text)
    assert acc.metric == "sparse_categorical_accuracy" and acc.lower == 0.6 and acc.upper is None
    assert acc.change is not None and acc.change.direction == "higher_is_better" and acc.change.absolute == pytest.approx(0.05)
    m50, miou = thresholds_from_eval_config(as_json)
    assert (m50.metric, m50.lower, m50.change) == ("map_50", 0.5, None)
    assert miou.change is not None and (miou.change.direction, miou.change.relative) == ("lower_is_better", pytest.approx(0.1))
    bad = tmp_path / "bad.pbtxt"
    bad.write_text("metrics_specs { nonsense: 1 }")
    with pytest.raises(EvaluationError, match="not a valid TFMA EvalConfig"):
        load_eval_config(bad)


def test_tfma_blessing_against_a_better_baseline(tmp_path: Path) -> None:
    import tensorflow_model_analysis as tfma

    rng = np.random.default_rng(0)
    n = 30
    labels = rng.integers(1, 4, n)
    good = np.eye(3)[labels - 1] * 0.8 + 0.1  # always right
    noisy = good.copy()
    noisy[:12] = np.roll(noisy[:12], 1, axis=1)  # 12 of 30 wrong: accuracy 0.6
    sizes = ["small" if i % 2 else "large" for i in range(n)]
    out = tmp_path / "tfma"
    b = bless_with_tfma(
        load_eval_config(_write(tmp_path, EVAL_CONFIG)),
        labels=labels,
        scores=noisy,
        class_ids=[1, 2, 3],
        output_path=out,
        baseline_scores=good,
        features={"image_size": sizes},
        baseline_id="demo:4",
    )
    assert b.source == "tfma" and b.baseline_id == "demo:4"
    assert b.metrics["sparse_categorical_accuracy"] == pytest.approx(0.6, abs=1e-6)
    assert b.baseline_metrics is not None and b.baseline_metrics["sparse_categorical_accuracy"] == pytest.approx(1.0)
    overall_change = next(r for r in b.thresholds if r.kind == "change" and r.metric == "sparse_categorical_accuracy")
    assert overall_change.passed is False and overall_change.baseline_value == pytest.approx(1.0)
    assert not b.blessed
    assert b.tfma_validation_ok is False  # TFMA's own verdict agrees
    # thresholds without a slicing spec apply to every slice, as in TFMA
    assert {r.metric for r in b.thresholds} >= {
        "sparse_categorical_accuracy@image_size=small",
        "sparse_categorical_accuracy@image_size=large",
    }
    result = tfma.load_eval_result(str(out))
    assert len(result.slicing_metrics) == 3  # overall + two image sizes


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "eval_config.pbtxt"
    p.write_text(text)
    return p


def test_run_with_a_tfma_config_first_model(tmp_path: Path) -> None:
    import tensorflow_model_analysis as tfma

    classes = [1, 2, 3, 1, 2, 3]
    examples, _ = write_examples(tmp_path / "examples", "classification", classes, [(20, 20), (400, 400)] * 3)
    model = save_colour_model(tmp_path / "model", "classification")
    spec = parse_spec(
        {
            "name": "demo",
            "task": "classification",
            "data": {"source": str(tmp_path / "x.json")},
            "evaluate": {"tfma_config": str(_write(tmp_path, EVAL_CONFIG))},
            "runtime": {"root": str(tmp_path), "metadata": {"url": f"sqlite:///{tmp_path / 'mlmd.sqlite'}"}},
        }
    )
    ctx = StepContext(spec=spec, run_id="r", component="evaluate")
    result = run(ctx, model, examples, tmp_path / "ev", tmp_path / "bl", tmp_path / "report.html")
    assert result.blessing.source == "tfma" and result.blessing.blessed  # no baseline: change thresholds skipped
    assert any(r.skipped and r.reason == "skipped: no baseline" for r in result.blessing.thresholds)
    assert result.blessing.metrics["sparse_categorical_accuracy"] == pytest.approx(result.candidate.metrics["accuracy"])
    assert result.paths["tfma"] == tmp_path / "ev" / "tfma"
    assert len(tfma.load_eval_result(str(result.paths["tfma"])).slicing_metrics) == 3

"""examples/user_model compiles to exactly golden/user_model.yaml, which loads in kfp and in Vertex AI's ``PipelineJob``.

The user's build function travels by name (``train.model``): the task image
imports it, so compiling needs neither the package nor TensorFlow.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from goldens import assert_matches_golden, load_for_kubeflow_and_vertex

from components.core.spec import parse_spec
from pipelines.compiler import compile_spec, compile_to_text

HERE = Path(__file__).parent
EXAMPLE = HERE.parents[1] / "examples" / "user_model" / "spec.yaml"


def test_user_model_example_compiles_to_golden_and_loads_for_kubeflow_and_vertex(update_golden: bool, tmp_path: Path) -> None:
    spec = parse_spec(yaml.safe_load(EXAMPLE.read_text()), str(EXAMPLE))  # unresolved: no machine paths in the golden file
    text = compile_to_text(spec)
    assert_matches_golden(text, HERE / "golden" / "user_model.yaml", update_golden, "examples/user_model")
    assert "shelf_models.models:build" in text

    path = compile_spec(spec, tmp_path / "pipeline.yaml")
    assert "exec-train" in load_for_kubeflow_and_vertex(path, "shelf-detector")["deploymentSpec"]["executors"]

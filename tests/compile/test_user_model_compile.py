"""examples/user_model compiles to exactly golden/user_model.yaml, which loads in kfp and in Vertex AI's ``PipelineJob``.

The user's build function travels by name (``train.model``): the task image
imports it, so compiling needs neither the package nor TensorFlow.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from components.core.spec import parse_spec
from pipelines.compiler import compile_spec, compile_to_text

HERE = Path(__file__).parent
EXAMPLE = HERE.parents[1] / "examples" / "user_model" / "spec.yaml"


def test_user_model_example_compiles_to_golden_and_loads_for_kubeflow_and_vertex(update_golden: bool, tmp_path: Path) -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform
    from kfp import components

    spec = parse_spec(yaml.safe_load(EXAMPLE.read_text()), str(EXAMPLE))  # unresolved: no machine paths in the golden file
    text = compile_to_text(spec)
    golden = HERE / "golden" / "user_model.yaml"
    if update_golden:
        golden.write_text(text)
    assert text == golden.read_text(), f"{golden} differs from the compiler output; review and run `make golden` if intended"
    assert "shelf_models.models:build" in text

    path = compile_spec(spec, tmp_path / "pipeline.yaml")
    assert components.load_component_from_file(str(path)).name == "shelf-detector"
    job = aiplatform.PipelineJob(
        display_name="shelf-detector",
        template_path=str(path),
        pipeline_root="gs://bucket/pipeline-root",
        credentials=AnonymousCredentials(),
        project="acme-ml",
        location="europe-west4",
        enable_caching=False,
    )
    assert "exec-train" in job.to_dict()["pipelineSpec"]["deploymentSpec"]["executors"]

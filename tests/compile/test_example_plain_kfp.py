"""examples/plain_kfp compiles to exactly tests/compile/golden/examples/plain_kfp.yaml, which Kubeflow and Vertex AI load.

Regenerate after an intended change with ``make golden`` and review the diff like code.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import yaml

HERE = Path(__file__).parent
EXAMPLE = HERE.parents[1] / "examples" / "plain_kfp" / "shelf_pipeline.py"
GOLDEN = HERE / "golden" / "examples" / "plain_kfp.yaml"


def _compile(tmp_path: Path) -> Path:
    from kfp import compiler

    spec = importlib.util.spec_from_file_location("shelf_pipeline_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    path = tmp_path / "plain_kfp.yaml"
    compiler.Compiler().compile(module.shelf_pipeline, str(path))
    return path


def test_compiles_to_golden_and_loads_in_kubeflow_and_vertex(tmp_path: Path, update_golden: bool) -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform
    from kfp import components

    path = _compile(tmp_path)
    text = path.read_text()
    if update_golden:
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(text)
    assert GOLDEN.exists(), "no golden file for examples/plain_kfp; run `make golden`"
    assert text == GOLDEN.read_text(), f"{GOLDEN} differs from the compiler output; review and run `make golden` if intended"

    doc = yaml.safe_load(text)
    tasks = doc["root"]["dag"]["tasks"]
    assert sorted(tasks) == ["evaluate", "evaluate-2", "ingest", "ingest-2", "train", "transform", "transform-2"]
    assert "validate" not in " ".join(tasks)
    # the second test set's evaluation reads the model trained on store A and the examples of store B
    store_b = tasks["evaluate-2"]["inputs"]["artifacts"]
    assert store_b["model"]["taskOutputArtifact"]["producerTask"] == "train"
    assert store_b["examples"]["taskOutputArtifact"]["producerTask"] == "transform-2"
    assert components.load_component_from_file(str(GOLDEN)).name == "shelf-plain"
    job = aiplatform.PipelineJob(
        display_name="shelf-plain",
        template_path=str(GOLDEN),
        pipeline_root="gs://bucket/pipeline-root",
        credentials=AnonymousCredentials(),
        project="acme-ml",
        location="europe-west4",
        enable_caching=False,
    )
    assert {"exec-ingest", "exec-transform", "exec-train", "exec-evaluate"} <= set(
        job.to_dict()["pipelineSpec"]["deploymentSpec"]["executors"]
    )

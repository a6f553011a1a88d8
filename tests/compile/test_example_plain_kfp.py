"""examples/plain_kfp compiles to exactly tests/compile/golden/examples/plain_kfp.yaml, which Kubeflow and Vertex AI load.

Regenerate after an intended change with ``make golden`` and review the diff like code.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import yaml
from goldens import assert_matches_golden, load_for_kubeflow_and_vertex

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
    path = _compile(tmp_path)
    text = path.read_text()
    assert_matches_golden(text, GOLDEN, update_golden, "examples/plain_kfp")

    doc = yaml.safe_load(text)
    tasks = doc["root"]["dag"]["tasks"]
    assert sorted(tasks) == ["evaluate", "evaluate-2", "ingest", "ingest-2", "train", "transform", "transform-2"]
    assert "validate" not in " ".join(tasks)
    # the second test set's evaluation reads the model trained on store A and the examples of store B
    store_b = tasks["evaluate-2"]["inputs"]["artifacts"]
    assert store_b["model"]["taskOutputArtifact"]["producerTask"] == "train"
    assert store_b["examples"]["taskOutputArtifact"]["producerTask"] == "transform-2"
    executors = load_for_kubeflow_and_vertex(GOLDEN, "shelf-plain")["deploymentSpec"]["executors"]
    assert {"exec-ingest", "exec-transform", "exec-train", "exec-evaluate"} <= set(executors)

"""User steps in the compiled pipeline: the example project's golden YAML, the wiring at every point, a user's own component.

``examples/user_step/spec.yaml`` compiles to exactly ``golden/user_step.yaml``
(``make golden`` regenerates it), which loads in kfp and in Vertex AI's
``PipelineJob``: the same YAML runs on Kubeflow and on Vertex.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from goldens import assert_matches_golden, load_for_kubeflow_and_vertex

from components.core.errors import SpecError
from components.core.spec import parse_spec
from pipelines.compiler import compile_spec, compile_to_text

HERE = Path(__file__).parent
EXAMPLE = HERE.parents[1] / "examples" / "user_step" / "spec.yaml"
BASE = {"name": "shelf", "task": "detection", "data": {"source": "data/annotations.json"}}


def _tasks(text: str) -> dict:
    return yaml.safe_load(text)["root"]["dag"]["tasks"]


def test_example_compiles_to_golden_and_loads_for_kubeflow_and_vertex(
    update_golden: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(EXAMPLE.parent)  # the spec's component file, relative to the example
    spec = parse_spec(yaml.safe_load(EXAMPLE.read_text()), str(EXAMPLE))  # unresolved: no machine paths in the golden file
    text = compile_to_text(spec)
    assert_matches_golden(text, HERE / "golden" / "user_step.yaml", update_golden, "examples/user_step")

    tasks = _tasks(text)
    gate = tasks["near-duplicates"]
    assert gate["dependentTasks"] == ["ingest"]
    assert gate["inputs"]["artifacts"]["manifest"]["taskOutputArtifact"] == {"outputArtifactKey": "manifest", "producerTask": "ingest"}
    assert (
        gate["inputs"]["parameters"]["step"]["runtimeValue"]["constant"]["name"] == "near-duplicates"
    )  # the step itself, not the whole spec
    assert tasks["class-floor"]["dependentTasks"] == ["ingest", "near-duplicates"]
    # cvpipe's task that records the user's component in lineage: what it was given and what it wrote
    recorder = tasks["class-floor-lineage"]["inputs"]["artifacts"]
    assert recorder["in_manifest"]["taskOutputArtifact"] == {"outputArtifactKey": "manifest", "producerTask": "ingest"}
    assert recorder["out_report"]["taskOutputArtifact"] == {"outputArtifactKey": "report", "producerTask": "class-floor"}
    assert "class-floor-lineage" in tasks["validate"]["dependentTasks"]  # nothing downstream starts before the gates passed
    executor = yaml.safe_load(text)["deploymentSpec"]["executors"]["exec-near-duplicates"]["container"]
    assert executor["image"] == spec.runtime.image and "pip install" not in " ".join(executor["command"])

    path = compile_spec(spec, tmp_path / "pipeline.yaml")
    assert "exec-near-duplicates" in load_for_kubeflow_and_vertex(path, "shelf-detector")["deploymentSpec"]["executors"]


def _user_component(tmp_path: Path) -> Path:
    return EXAMPLE.parent / "class_floor.yaml"


def test_the_example_component_yaml_is_its_source_compiled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kfp import compiler

    monkeypatch.syspath_prepend(str(EXAMPLE.parent))
    from shelf_gates.class_floor import class_floor

    compiler.Compiler().compile(class_floor, str(tmp_path / "class_floor.yaml"))
    assert (tmp_path / "class_floor.yaml").read_text() == (EXAMPLE.parent / "class_floor.yaml").read_text(), (
        "examples/user_step/class_floor.yaml is stale: run `python -m shelf_gates.class_floor class_floor.yaml` there"
    )


def test_steps_at_every_point_chain_in_order_and_hold_back_the_next_built_in_step(tmp_path: Path) -> None:
    component = _user_component(tmp_path)
    steps = [
        {"name": "after-ingest", "after": "ingest", "function": "pkg.gates:a"},
        {"name": "floor", "after": "ingest", "component": str(component), "params": {"min_per_class": 10}},
        {"name": "after-validate", "after": "validate", "function": "pkg.gates:b"},
        {"name": "after-transform", "after": "transform", "function": "pkg.gates:c"},
        {"name": "after-train", "after": "train", "function": "pkg.gates:d"},
        {"name": "after-evaluate", "after": "evaluate", "function": "pkg.gates:e"},
    ]
    text = compile_to_text(parse_spec({**BASE, "steps": steps}))
    tasks = _tasks(text)
    assert tasks["floor"]["dependentTasks"] == ["after-ingest", "ingest"]  # listed order at one point
    assert tasks["floor-lineage"]["dependentTasks"] == ["floor", "ingest"] and "floor-lineage" in tasks["validate"]["dependentTasks"]
    assert "after-validate" in tasks["transform"]["dependentTasks"]
    assert "after-transform" in tasks["train"]["dependentTasks"]
    assert "after-train" in tasks["evaluate"]["dependentTasks"]
    assert "after-evaluate" in tasks["push"]["dependentTasks"]
    after_eval = tasks["after-evaluate"]["inputs"]["artifacts"]
    assert after_eval["blessing"]["taskOutputArtifact"]["producerTask"] == "evaluate"
    assert after_eval["model"]["taskOutputArtifact"]["producerTask"] == "train"
    assert set(tasks["after-validate"]["inputs"]["artifacts"]) == {"manifest", "label_map", "statistics", "schema", "anomalies"}
    assert tasks["after-validate"]["inputs"]["artifacts"]["manifest"]["taskOutputArtifact"]["outputArtifactKey"] == "validated"
    # the user's component: its inputs by name, params as parameters, the run id, and its own image
    floor = tasks["floor"]["inputs"]
    assert floor["artifacts"]["manifest"]["taskOutputArtifact"] == {"outputArtifactKey": "manifest", "producerTask": "ingest"}
    assert floor["parameters"]["min_per_class"]["runtimeValue"]["constant"] == 10
    assert floor["parameters"]["run_id"]["runtimeValue"]["constant"] == "{{$.pipeline_job_name}}"
    assert yaml.safe_load(text)["deploymentSpec"]["executors"]["exec-floor"]["container"]["image"].endswith("/gates:0.1.0")
    # --until train leaves out what follows train, and the steps after it
    assert "after-evaluate" not in _tasks(compile_to_text(parse_spec({**BASE, "steps": steps}), until="train"))


def test_a_component_step_whose_inputs_cannot_be_given_is_a_spec_error(tmp_path: Path) -> None:
    component = _user_component(tmp_path)
    with pytest.raises(SpecError) as e:
        compile_to_text(parse_spec({**BASE, "steps": [{"name": "floor", "after": "transform", "component": str(component)}]}))
    problems = dict(e.value.problems)
    assert "input 'manifest' of" in problems["steps.0.component"] and "(examples, label_map)" in problems["steps.0.component"]
    with pytest.raises(SpecError, match="has no input 'min_per_clas'"):
        steps = [{"name": "floor", "after": "ingest", "component": str(component), "params": {"min_per_clas": 3}}]
        compile_to_text(parse_spec({**BASE, "steps": steps}))
    with pytest.raises(SpecError, match="cannot load KFP component"):
        compile_to_text(parse_spec({**BASE, "steps": [{"name": "floor", "after": "ingest", "component": str(tmp_path / "none.yaml")}]}))

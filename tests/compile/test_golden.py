"""Golden compile tests: each spec under specs/ compiles to exactly tests/compile/golden/<name>.yaml.

A spec with a ``monitoring`` section also compiles its continuous-evaluation
pipeline to exactly tests/compile/golden/<name>.continuous-eval.yaml.

Regenerate after an intended change with ``make golden`` (pytest --update-golden)
and review the diff like code.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from goldens import assert_matches_golden, load_for_kubeflow_and_vertex

from components.core.spec import parse_spec
from pipelines.compiler import compile_spec, compile_to_text, compiled_parameters

HERE = Path(__file__).parent
SPECS = sorted((HERE / "specs").glob("*.yaml"))
MONITORED = [p for p in SPECS if "monitoring" in (yaml.safe_load(p.read_text()) or {})]


def _spec(path: Path):
    # Parsed without resolving paths, so the golden files hold no machine-specific paths.
    return parse_spec(yaml.safe_load(path.read_text()), str(path))


@pytest.mark.parametrize("spec_path", SPECS, ids=[p.stem for p in SPECS])
def test_compiled_yaml_matches_golden(spec_path: Path, update_golden: bool) -> None:
    text = compile_to_text(_spec(spec_path))
    assert_matches_golden(text, HERE / "golden" / f"{spec_path.stem}.yaml", update_golden, spec_path.name)


@pytest.mark.parametrize("spec_path", MONITORED, ids=[p.stem for p in MONITORED])
def test_continuous_eval_yaml_matches_golden(spec_path: Path, update_golden: bool) -> None:
    text = compile_to_text(_spec(spec_path), pipeline="continuous-eval")
    golden = HERE / "golden" / f"{spec_path.stem}.continuous-eval.yaml"
    assert_matches_golden(text, golden, update_golden, f"{spec_path.name}'s continuous evaluation")


def test_continuous_eval_dag_wiring_and_settings(tmp_path: Path) -> None:
    spec = _spec(HERE / "specs" / "monitored.yaml")
    path = compile_spec(spec, tmp_path / "ce.yaml", pipeline="continuous-eval")
    doc = yaml.safe_load(path.read_text())
    assert doc["pipelineInfo"]["name"] == "shelf-detector-continuous-eval"
    tasks = doc["root"]["dag"]["tasks"]
    assert set(tasks) == {"read-window", "sample", "import-labels", "live-metrics", "drift", "alert", "trigger"}
    assert tasks["live-metrics"]["dependentTasks"] == ["import-labels", "read-window"]
    assert tasks["alert"]["dependentTasks"] == ["drift", "live-metrics"]
    assert tasks["trigger"]["dependentTasks"] == ["alert", "import-labels", "sample"]
    assert tasks["trigger"]["inputs"]["artifacts"]["alerts"]["taskOutputArtifact"] == {
        "outputArtifactKey": "alerts",
        "producerTask": "alert",
    }
    assert _executors(doc)["exec-drift"]["container"]["resources"]["memoryLimit"] == 4.0
    for name, ex in _executors(doc).items():
        assert "pip install" not in " ".join(ex["container"]["command"]), f"{name} installs packages at run time"
    params = doc["root"]["inputDefinitions"]["parameters"]
    assert set(params) == {"context", "monitoring", "evaluate", "spec"}
    monitoring = parse_spec(params["spec"]["defaultValue"]).monitoring
    assert monitoring is not None and monitoring.live_metrics[1].severity == "critical"
    assert params["monitoring"]["defaultValue"]["live_metrics"][1]["severity"] == "critical"
    # every step but the trigger takes the context and the monitoring section, not the whole spec
    for name, task in tasks.items():
        given = task["inputs"]["parameters"]
        assert ("spec" in given) == (name == "trigger") and ("monitoring" in given) == (name != "trigger"), name
    assert "exec-trigger" in load_for_kubeflow_and_vertex(path, "shelf-detector-continuous-eval")["deploymentSpec"]["executors"]


def test_continuous_eval_needs_a_monitoring_section() -> None:
    with pytest.raises(ValueError, match="no monitoring section"):
        compile_to_text(_spec(HERE / "specs" / "detection.yaml"), pipeline="continuous-eval")


def _executors(doc: dict) -> dict:
    return doc["deploymentSpec"]["executors"]


def test_accelerators_and_resources_land_on_tasks() -> None:
    gpu = yaml.safe_load(compile_to_text(_spec(HERE / "specs" / "gpu.yaml")))
    train = _executors(gpu)["exec-train"]["container"]
    assert train["resources"]["accelerator"] == {"count": "2", "resourceCount": "2", "type": "NVIDIA_L4", "resourceType": "NVIDIA_L4"} or (
        train["resources"]["accelerator"]["type"] == "NVIDIA_L4" and train["resources"]["accelerator"]["count"] == "2"
    )
    assert train["image"] == "europe-docker.pkg.dev/acme/cvpipe/cvpipe-gpu:0.1.0"
    assert train["resources"]["cpuLimit"] == 8.0
    ingest = _executors(gpu)["exec-ingest"]["container"]
    assert "accelerator" not in ingest.get("resources", {})
    assert ingest["resources"]["memoryLimit"] == 8.0
    tasks = gpu["root"]["dag"]["tasks"]
    assert tasks["train"]["retryPolicy"]["maxRetryCount"] == 1
    assert tasks["ingest"]["retryPolicy"]["maxRetryCount"] == 2
    tpu = yaml.safe_load(compile_to_text(_spec(HERE / "specs" / "tpu.yaml")))
    acc = _executors(tpu)["exec-train"]["container"]["resources"]["accelerator"]
    assert acc["type"] == "TPU_V5_LITEPOD" and acc["count"] == "4"
    assert tpu["root"]["dag"]["tasks"]["train"]["cachingOptions"] == {"enableCache": True}


def test_dag_wiring_and_no_pip_at_run_time() -> None:
    doc = yaml.safe_load(compile_to_text(_spec(HERE / "specs" / "detection.yaml")))
    tasks = doc["root"]["dag"]["tasks"]
    assert set(tasks) == {"ingest", "validate", "transform", "train", "evaluate", "push"}
    assert tasks["train"]["dependentTasks"] == ["ingest", "transform"]
    assert tasks["push"]["inputs"]["artifacts"]["blessing"]["taskOutputArtifact"]["producerTask"] == "evaluate"
    for name, ex in _executors(doc).items():
        command = " ".join(ex["container"]["command"])
        assert "pip install" not in command, f"{name} installs packages at run time"
    # the spec travels as pipeline parameters: the context and each section the steps take, the spec's values as defaults
    params = doc["root"]["inputDefinitions"]["parameters"]
    assert set(params) == {"context", "data", "validation", "transform", "train", "evaluate"}
    assert params["context"]["defaultValue"]["name"] == "demo-detector"
    assert {k: p["defaultValue"] for k, p in params.items()} == compiled_parameters(_spec(HERE / "specs" / "detection.yaml"))
    # each component takes only its own sections
    taken = {name: set(t["inputs"]["parameters"]) - {"context", "run_id"} for name, t in tasks.items()}
    assert taken == {
        "ingest": {"data", "validation"},
        "validate": {"validation"},
        "transform": {"data", "transform", "validation"},
        "train": {"train"},
        "evaluate": {"evaluate"},
        "push": set(),
    }


def test_loads_in_kfp_and_vertex_pipeline_job(tmp_path: Path) -> None:
    path = compile_spec(_spec(HERE / "specs" / "gpu.yaml"), tmp_path / "pipeline.yaml")
    spec = load_for_kubeflow_and_vertex(path, "gpu-detector")  # constructed offline, not created: the spec the client would send
    assert spec["pipelineInfo"]["name"] == "gpu-detector"
    assert "exec-train" in spec["deploymentSpec"]["executors"]


def test_a_train_task_that_launches_a_custom_job_requests_no_accelerator() -> None:
    data = _spec(HERE / "specs" / "gpu.yaml").model_dump(mode="json")
    data["train"].update(
        workers=2,
        vertex_job={
            "project": "acme",
            "region": "europe-west4",
            "staging_bucket": "gs://acme",
            "accelerator_type": "NVIDIA_L4",
            "accelerator_count": 1,
        },
    )
    doc = yaml.safe_load(compile_to_text(parse_spec(data)))
    train = _executors(doc)["exec-train"]["container"]
    assert "accelerator" not in train.get("resources", {})  # the replicas of the custom job get the GPUs
    assert train["resources"]["cpuLimit"] == 8.0

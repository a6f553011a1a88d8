"""Whole pipelines with every task in the component image (``runtime.local_runner: docker``), against the in-process runner.

The training pipeline (the demo's, on 48 generated images and one epoch) and the continuous-evaluation
pipeline (the world of tests/fakes/ce_world.py, darker production traffic) each run twice on identical
inputs: once with kfp.local's SubprocessRunner in this virtualenv, once with every task in the image built
from this checkout over Podman's Docker API, seeing only the storage the spec names (mounted at the same
paths, handed to the image's user as a cluster's fsGroup would). The runs must agree: the same steps, the
same lineage graph, the same registry result and the same reports (artifact properties with paths, times
and digests left out). Each pipeline's two runs are one module-scoped fixture; each test reads them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.core.lineage import LineageNode, LineageStore
from components.core.spec import PipelineSpec, load_spec, resolve_paths
from pipelines.runners.local import RunSummary, run_local
from pipelines.steps import CE_STEPS

REPO = Path(__file__).resolve().parents[2]
TRAINING_STEPS = ["ingest", "validate", "transform", "train", "evaluate", "push"]
# properties that differ between two runs whatever runs them: run ids, times, content digests of files that embed them
VOLATILE = {"run_id", "duration_s", "sha256", "digest", "seconds"}
# ... and the parts of texts that do: times, KFP job names, random or content-derived ids in names
VOLATILE_TEXT = [
    (re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?"), "<time>"),
    (re.compile(r"\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}-\d{6}"), "<job>"),
    (re.compile(r"lb-\d{8}T\d{6}-[0-9a-f]{6}"), "<batch>"),
    (re.compile(r"\b\d{14}-[0-9a-f]{8}\b"), "<trigger>"),
    (re.compile(r"\d{8}T\d{6,12}Z?"), "<time>"),
    (re.compile(r"\b[0-9a-f]{12,64}\b"), "<hex>"),
]

pytestmark = pytest.mark.image


@pytest.fixture(scope="module")
def in_image(image: dict[str, object], docker_api: str) -> Iterator[dict[str, object]]:
    """DOCKER_HOST set to Podman's Docker API for the module; the image's id."""
    import docker

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DOCKER_HOST", docker_api)
        client = docker.DockerClient(base_url=docker_api)
        yield {**image, "id": client.images.get(str(image["tag"])).id}
        client.close()


def _spec(root: Path, data: dict[str, Any], docker_image: str | None) -> PipelineSpec:
    if docker_image is not None:
        data = {**data, "runtime": {**data.get("runtime", {}), "local_runner": "docker", "image": docker_image}}
    root.mkdir(parents=True, exist_ok=True)
    (root / "spec.yaml").write_text(yaml.safe_dump(data))
    return resolve_paths(load_spec(root / "spec.yaml"), root)


def _normal(value: Any, roots: tuple[str, ...]) -> Any:
    """A property value with run roots replaced, JSON text parsed, floats rounded and volatile keys left out."""
    if isinstance(value, str):
        for root in roots:
            value = value.replace(root, "<root>")
        for pattern, token in VOLATILE_TEXT:
            value = pattern.sub(token, value)
        if value[:1] in "[{":
            try:
                return _normal(json.loads(value), roots)
            except ValueError:
                return value
        return value
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: _normal(v, roots) for k, v in sorted(value.items()) if k not in VOLATILE and not k.endswith(("_ms", "_at"))}
    if isinstance(value, list):
        return [_normal(v, roots) for v in value]
    return value


def _reports(store: LineageStore, run_id: str, roots: tuple[str, ...]) -> list[tuple[str, Any]]:
    """Every artifact the run recorded, in order: kind and normalised properties."""
    return [(a.kind, _normal(a.properties, roots)) for a in store.artifacts_of_run(run_id)]


def _shape(node: LineageNode) -> Any:
    """The lineage graph without ids, paths or times: artifact kind, producing step, inputs by event path."""
    step = node.execution[1] if node.execution is not None else None
    return (node.artifact.kind, step, tuple(sorted((path, _shape(child)) for path, child in node.inputs)))


def _run_pair(base: Path, data: dict[str, Any], image_tag: str, pipeline: str) -> dict[str, Any]:
    runs: dict[str, Any] = {}
    for how, tag in (("subprocess", None), ("docker", image_tag)):
        spec = _spec(base / how, data, tag)
        summary = run_local(spec, pipeline=pipeline)
        store = LineageStore.for_spec(spec.runtime.metadata, base_dir=spec.runtime.root)
        runs[how] = {"spec": spec, "summary": summary, "store": store, "root": str(base / how)}
    return runs


@pytest.fixture(scope="module")
def training(in_image: dict[str, object], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from pipelines.demo import DEMO_SPEC, synth

    base = tmp_path_factory.mktemp("training-in-image")
    synth(base / "data", num_images=48, seed=3)  # one dataset, read by both runs (read-only in the containers)
    data = json.loads(json.dumps(DEMO_SPEC))
    data["data"]["source"] = str(base / "data" / "annotations.json")
    data["validation"]["min_examples_per_class"] = 2
    data["train"] = {"epochs": 1, "batch_size": 8, "image_size": [64, 64], "early_stopping_patience": 1}
    data["evaluate"] = {"thresholds": [{"metric": "map_50", "lower": 0.0}]}
    return _run_pair(base, data, str(in_image["tag"]), "training")


def test_training_runs_every_step_in_the_image_with_only_the_specs_storage(training: dict[str, Any], in_image: dict[str, object]) -> None:
    summary: RunSummary = training["docker"]["summary"]
    assert summary.succeeded and [s["component"] for s in summary.steps] == TRAINING_STEPS
    assert all(s["state"] == "COMPLETE" for s in summary.steps)
    record = summary.in_image
    assert record is not None and training["subprocess"]["summary"].in_image is None
    assert record["image_id"] == in_image["id"]  # every task ran the image built from this checkout
    assert [c["exit_status"] for c in record["containers"]] == [0] * len(TRAINING_STEPS)
    root = training["docker"]["root"]
    assert {(m["path"], m["mode"]) for m in record["mounts"]} == {
        (f"{root}/runs", "rw"),  # run folders, the SQLite store, the registry (runs/registry)
        (str(Path(root).parent / "data"), "ro"),
    }
    assert json.loads((summary.run_dir / "run.json").read_text())["in_image"] == record
    # the tasks wrote as the image's user (uid 1000), into storage handed to it
    model = summary.artifact("Model")
    assert model is not None and Path(model.uri).stat().st_uid == 1000


def test_training_in_the_image_has_the_lineage_registry_and_reports_of_the_in_process_run(training: dict[str, Any]) -> None:
    from components.registry.cli_ops import open_registry

    roots = (training["subprocess"]["root"], training["docker"]["root"])
    shapes, reports, registered = [], [], []
    for how in ("subprocess", "docker"):
        run = training[how]
        summary: RunSummary = run["summary"]
        assert summary.succeeded, summary.error
        pushed = summary.artifact("PushedModel")
        assert pushed is not None and pushed.properties["pushed"] is True
        shapes.append(_shape(run["store"].upstream(pushed.id).root))
        reports.append(_reports(run["store"], summary.run_id, roots))
        spec = run["spec"]
        champion = open_registry(spec).resolve(f"{spec.model_name}@champion")
        assert (champion.model_dir / "saved_model" / "saved_model.pb").is_file()
        registered.append((champion.version, sorted(champion.aliases)))
    assert shapes[0] == shapes[1]
    kinds = {k for k, _ in reports[0]}
    assert {"Manifest", "ExampleStatistics", "Schema", "Examples", "Model", "ModelEvaluation", "ModelBlessing", "PushedModel"} <= kinds
    assert reports[0] == reports[1]  # the same statistics, splits, training, evaluation metrics and blessing
    assert registered[0] == registered[1] == (1, ["champion"])


@pytest.fixture(scope="module")
def continuous_eval(in_image: dict[str, object], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from fakes.ce_world import build_world, spec_data

    base = tmp_path_factory.mktemp("ce-in-image")
    runs: dict[str, Any] = {}
    for how, tag in (("subprocess", None), ("docker", str(in_image["tag"]))):
        root = base / how
        world = build_world(root)  # a blessed production model with its training lineage (in-process)
        world.log_traffic(world.images("prod", 40, seed=11, brightness=0.45))
        spec = _spec(root, spec_data(root), tag)
        summary = run_local(spec, pipeline="continuous-eval")
        runs[how] = {"spec": spec, "summary": summary, "store": world.store, "root": str(root)}
    return runs


def test_continuous_evaluation_in_the_image_finds_and_reports_what_the_in_process_run_does(continuous_eval: dict[str, Any]) -> None:
    roots = (continuous_eval["subprocess"]["root"], continuous_eval["docker"]["root"])
    steps, reports, shapes = [], [], []
    for how in ("subprocess", "docker"):
        run = continuous_eval[how]
        summary: RunSummary = run["summary"]
        assert summary.succeeded, summary.error
        by_step = {s["component"]: s for s in summary.steps}
        assert by_step["drift"]["properties"]["status"] == "drift"  # the darker traffic is found either way
        assert by_step["trigger"]["properties"]["triggered"] is False  # no labels yet: nothing to retrain on
        steps.append([(s["component"], s["state"], _normal(s["properties"], roots)) for s in summary.steps])
        reports.append(_reports(run["store"], summary.run_id, roots))
        alerts = [a for a in summary.artifacts if a.kind == "Alert"]
        assert alerts
        shapes.append(sorted(_shape(run["store"].upstream(a.id).root) for a in alerts))
    record = continuous_eval["docker"]["summary"].in_image
    assert record is not None and [c["exit_status"] for c in record["containers"]] == [0] * len(CE_STEPS)
    assert steps[0] == steps[1]
    assert shapes[0] == shapes[1]
    assert reports[0] == reports[1]
    # the alert log the containers appended to is this machine's, as the in-process run's is
    for how in ("subprocess", "docker"):
        spec = continuous_eval[how]["spec"]
        log = spec.monitoring.alert_config(spec.runtime.root).log_path
        assert log.is_file() and "cvpipe/shelf/input_drift" in log.read_text()

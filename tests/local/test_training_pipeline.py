"""kfp.local end-to-end runs of the training pipeline on small generated data.

One run is shared by the assertions of this module (a run costs tens of
seconds: every task is a subprocess importing the stack). Tests read the
shared run by its id; the one that runs again adds a second run to the same
store and registry, which no other test's assertion depends on, so the tests
pass in any order and alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from components.core.lineage import LineageStore
from components.core.spec import load_spec
from pipelines.demo import DEMO_SPEC, synth
from pipelines.runners.local import run_local

pytestmark = pytest.mark.local


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("demo")
    synth(root / "data", num_images=48, seed=3)
    spec_data = json.loads(json.dumps(DEMO_SPEC))
    spec_data["validation"]["min_examples_per_class"] = 2
    # tiny training budget: the test checks the plumbing, the demo checks the accuracy
    spec_data["train"] = {"epochs": 1, "batch_size": 8, "image_size": [64, 64], "early_stopping_patience": 1}
    spec_data["evaluate"] = {"thresholds": [{"metric": "map_50", "lower": 0.0}]}
    (root / "spec.yaml").write_text(yaml.safe_dump(spec_data))
    spec = load_spec(root / "spec.yaml")
    summary = run_local(spec)
    return root, spec, summary


def test_run_succeeds_and_keeps_outputs_under_run_folder(demo_run) -> None:
    _root, spec, summary = demo_run
    assert summary.succeeded
    assert summary.run_dir.parent == Path(spec.runtime.root) / spec.name
    assert [s["component"] for s in summary.steps] == ["ingest", "validate", "transform", "train", "evaluate", "push"]
    assert all(s["state"] == "COMPLETE" for s in summary.steps)
    run_json = json.loads((summary.run_dir / "run.json").read_text())
    assert run_json["succeeded"] and run_json["run_id"] == summary.run_id
    examples = summary.artifact("Examples")
    assert examples is not None
    written = json.loads((Path(examples.uri) / "examples.json").read_text())
    assert set(written["splits"]) == {"train", "validation", "test"}
    assert sum(split["records"] for split in written["splits"].values()) == 48
    for split in written["splits"].values():
        for shard in split["shards"]:
            assert (Path(examples.uri) / shard["file"]).is_file()


def test_mlmd_records_every_step_and_links_examples_to_their_inputs(demo_run) -> None:
    _, spec, summary = demo_run
    store = LineageStore(spec.runtime.metadata.url, base_dir=spec.runtime.root)
    assert summary.run_id in store.run_ids(spec.name)  # (a later test may add a run of its own)
    components = [e["component"] for e in store.executions(run_id=summary.run_id)]
    assert components == ["ingest", "validate", "transform", "train", "evaluate", "push"]
    examples = summary.artifact("Examples")
    graph = store.upstream(examples.id)
    kinds = {a.kind for a in graph.artifacts()}
    assert {"Manifest", "LabelMap", "ExampleStatistics", "Schema", "RawDataset"} <= kinds
    direct = {path for path, _ in graph.root.inputs}
    assert {"manifest", "label_map", "statistics", "schema"} <= direct
    source = graph.of_kind("RawDataset")[0]
    assert source.uri.endswith("data/annotations.json")


def test_cli_lineage_prints_the_graph(demo_run) -> None:
    from click.testing import CliRunner

    from pipelines.cli import cli

    root, _, summary = demo_run
    examples = summary.artifact("Examples")
    result = CliRunner().invoke(cli, ["lineage", str(examples.id), "--spec", str(root / "spec.yaml")])
    assert result.exit_code == 0, result.output
    assert f"Examples #{examples.id}" in result.output
    assert "<- transform" in result.output and "<- validate" in result.output and "<- ingest" in result.output
    runs = CliRunner().invoke(cli, ["runs", "list", "--json", "--spec", str(root / "spec.yaml")])
    assert runs.exit_code == 0, runs.output
    listed = {r["run_id"]: r for r in json.loads(runs.output)}
    assert listed[summary.run_id]["steps"] == "6 steps"
    assert listed[summary.run_id]["status"] == "succeeded", listed


def test_model_lineage_and_registry(demo_run) -> None:
    from components.registry.cli_ops import open_registry

    root, spec, summary = demo_run
    pushed = summary.artifact("PushedModel")
    assert pushed is not None and pushed.properties["pushed"] is True and pushed.properties["version"] == 1
    store = LineageStore(spec.runtime.metadata.url, base_dir=spec.runtime.root)
    graph = store.upstream(pushed.id)
    kinds = {a.kind for a in graph.artifacts()}
    # which dataset, which label map, which images (manifest), which evaluation, which run
    assert {"Model", "ModelBlessing", "Examples", "LabelMap", "Manifest", "RawDataset", "ExampleStatistics", "Schema"} <= kinds
    registry = open_registry(spec)
    v1 = registry.resolve(f"{spec.model_name}@champion")
    assert v1.version == 1 and (v1.model_dir / "saved_model" / "saved_model.pb").is_file()
    # `cvpipe lineage name:version` answers from the registry reference
    from click.testing import CliRunner

    from pipelines.cli import cli

    out = CliRunner().invoke(cli, ["lineage", f"{spec.model_name}:1", "--spec", str(root / "spec.yaml")])
    assert out.exit_code == 0, out.output
    assert "<- train" in out.output and "source: RawDataset" in out.output


def test_stricter_rerun_is_refused_and_registry_unchanged(demo_run) -> None:
    from components.registry.cli_ops import open_registry

    root, spec, _ = demo_run
    registry = open_registry(spec)
    before = [(v.version, v.aliases) for v in registry.versions(spec.model_name)]
    data = yaml.safe_load((root / "spec.yaml").read_text())
    # must beat the champion's mAP@0.5 by 1.0: no model can (a bound above 1.0 is now a spec error)
    data["evaluate"] = {"thresholds": [{"metric": "map_50", "change": {"direction": "higher_is_better", "absolute": -1.0}}]}
    (root / "strict.yaml").write_text(yaml.safe_dump(data))
    strict = run_local(load_spec(root / "strict.yaml"))
    assert strict.succeeded  # refusing a model is not a pipeline failure
    blessing = strict.artifact("ModelBlessing")
    assert blessing is not None and blessing.properties["blessed"] is False
    pushed = strict.artifact("PushedModel")
    assert pushed is not None and pushed.properties["pushed"] is False
    assert [(v.version, v.aliases) for v in open_registry(spec).versions(spec.model_name)] == before

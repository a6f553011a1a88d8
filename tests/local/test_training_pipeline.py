"""kfp.local end-to-end runs of the training pipeline on small generated data.

One run is shared by the assertions of this module (a run costs tens of
seconds: every task is a subprocess importing the stack).
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
    (root / "spec.yaml").write_text(yaml.safe_dump(spec_data))
    spec = load_spec(root / "spec.yaml")
    summary = run_local(spec, until="transform")
    return root, spec, summary


def test_run_succeeds_and_keeps_outputs_under_run_folder(demo_run) -> None:
    _root, spec, summary = demo_run
    assert summary.succeeded
    assert summary.run_dir.parent == Path(spec.runtime.root) / spec.name
    assert [s["component"] for s in summary.steps] == ["ingest", "validate", "transform"]
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
    assert store.run_ids(spec.name) == [summary.run_id]
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
    runs = CliRunner().invoke(cli, ["runs", "list", "--spec", str(root / "spec.yaml")])
    assert summary.run_id in runs.output and "ingest -> validate -> transform" in runs.output

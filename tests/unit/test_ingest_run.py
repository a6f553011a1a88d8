"""The ingest step: outputs on disk, lineage in ML Metadata (SQLite), the quarantine limit, the KFP wrapper."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from ingest_testdata import write_image, write_json

from components.core.errors import QuarantineLimitError
from components.core.labelmap import LabelMap
from components.core.lineage import LineageStore
from components.core.manifest import Manifest
from components.core.quarantine import QuarantineReport
from components.core.spec import PipelineSpec
from components.core.step import StepContext
from components.ingest.core import IngestResult, run


def _coco(root: Path, categories: list[str], files: list[tuple[str, str]]) -> Path:
    """``files``: (file name, class) pairs; a file name starting with "missing" is not written."""
    ids = {n: i + 1 for i, n in enumerate(categories)}
    images, anns = [], []
    for k, (fname, cls) in enumerate(files):
        if not fname.startswith("missing"):
            write_image(root / fname, 32, 32, seed=k)
        images.append({"id": k, "file_name": fname})
        anns.append({"id": k, "image_id": k, "category_id": ids[cls], "bbox": [2, 2, 10, 10]})
    cats = [{"id": i, "name": n} for n, i in ids.items()]
    return write_json(root / "annotations.json", {"images": images, "annotations": anns, "categories": cats})


def _spec(tmp_path: Path, source: Path | str, **data: Any) -> PipelineSpec:
    return PipelineSpec.model_validate(
        {
            "name": "demo",
            "task": "detection",
            "data": {"source": str(source), **data},
            "runtime": {"root": str(tmp_path / "runs"), "metadata": {"url": f"sqlite:///{tmp_path / 'mlmd.sqlite'}"}},
        }
    )


def _run(tmp_path: Path, spec: PipelineSpec, run_id: str) -> tuple[IngestResult, dict[str, Path]]:
    out = {k: tmp_path / run_id / k for k in ("manifest", "label_map", "quarantine")}
    ctx = StepContext(spec=spec, run_id=run_id, component="ingest")
    uris = {k: f"file://{p}" for k, p in out.items()}
    return run(ctx, out["manifest"], out["label_map"], out["quarantine"], uris), out


def test_run_writes_outputs_and_records_lineage(tmp_path: Path) -> None:
    data = tmp_path / "data"
    src = _coco(data, ["cat", "dog"], [("a.jpg", "cat"), ("b.jpg", "dog"), ("missing.jpg", "dog")])
    spec = _spec(tmp_path, src, max_quarantine_fraction=0.5)
    result, out = _run(tmp_path, spec, "r1")

    manifest = Manifest.load(out["manifest"] / "manifest.json")
    assert manifest == result.manifest and len(manifest) == 2
    assert LabelMap.load(out["label_map"] / "label_map.json") == result.label_map == LabelMap.from_names(["cat", "dog"])
    report = QuarantineReport.load(out["quarantine"])
    assert [i.kind for i in report.items] == ["missing_file"]
    assert (out["quarantine"] / "quarantine.csv").read_text().count("missing_file") == 1

    store = LineageStore(spec.runtime.metadata.url)
    [ex] = store.executions(run_id="r1", component="ingest")
    assert ex["state"] == "COMPLETE" and ex["properties"]["images"] == 2 and ex["properties"]["rejected"] == 1
    arts = {a.kind: a for a in store.artifacts_of_run("r1")}
    m = arts["Manifest"]
    assert m.uri == f"file://{out['manifest']}"
    assert m.properties["images"] == 2 and m.properties["format"] == "coco" and m.properties["pipeline"] == "demo"
    assert m.properties["sha256"] == hashlib.sha256((out["manifest"] / "manifest.json").read_bytes()).hexdigest()
    lm = arts["LabelMap"]
    assert (lm.properties["version"], lm.properties["num_classes"], lm.properties["pipeline"]) == (1, 2, "demo")
    assert json.loads(lm.properties["classes"]) == {"1": "cat", "2": "dog"}
    assert arts["QuarantineReport"].properties["rejected"] == 1
    graph = store.upstream(m.id)
    [source] = graph.of_kind("RawDataset")
    assert source.uri == str(src)
    assert [path for path, _ in graph.root.inputs] == ["source"]
    assert result.artifacts["manifest"].id == m.id


def test_second_run_extends_the_previous_label_map_from_lineage(tmp_path: Path) -> None:
    d1 = tmp_path / "v1"
    spec1 = _spec(tmp_path, _coco(d1, ["dog", "cat"], [("a.jpg", "dog"), ("b.jpg", "cat")]))
    first, _ = _run(tmp_path, spec1, "r1")
    assert first.label_map.classes == {1: "dog", 2: "cat"}
    # the new version lists classes in another order and adds "bird"
    d2 = tmp_path / "v2"
    spec2 = _spec(tmp_path, _coco(d2, ["bird", "cat", "dog"], [("c.jpg", "bird"), ("d.jpg", "cat"), ("e.jpg", "dog")]))
    second, _ = _run(tmp_path, spec2, "r2")
    assert second.label_map.classes == {1: "dog", 2: "cat", 3: "bird"} and second.label_map.version == 2
    assert [r.objects[0].class_id for r in second.manifest.images] == [3, 2, 1]
    store = LineageStore(spec2.runtime.metadata.url)
    graph = store.upstream(second.artifacts["label_map"].id)
    inputs = dict(graph.root.inputs)
    assert inputs["previous_label_map"].artifact.id == first.artifacts["label_map"].id
    assert store.latest("LabelMap", pipeline="demo") == second.artifacts["label_map"]
    # a third run with nothing new keeps version 2
    third, _ = _run(tmp_path, spec2, "r3")
    assert third.label_map == second.label_map


def test_previous_label_map_is_read_from_its_file_when_properties_lack_it(tmp_path: Path) -> None:
    spec = _spec(tmp_path, _coco(tmp_path / "d", ["cat"], [("a.jpg", "cat")]))
    lm_dir = tmp_path / "old_lm"
    LabelMap(classes={1: "zebra", 2: "cat"}, version=7).save(lm_dir / "label_map.json")
    LineageStore(spec.runtime.metadata.url).put_artifact("LabelMap", str(lm_dir), {"pipeline": "demo", "version": 7})
    result, _ = _run(tmp_path, spec, "r1")
    assert result.label_map == LabelMap(classes={1: "zebra", 2: "cat"}, version=7)
    assert result.manifest.images[0].objects[0].class_id == 2


def test_fixed_label_map_file_is_recorded_as_input(tmp_path: Path) -> None:
    fixed = tmp_path / "labels.json"
    LabelMap(classes={3: "cat"}, version=2).save(fixed)
    spec = _spec(tmp_path, _coco(tmp_path / "d", ["cat"], [("a.jpg", "cat")]), label_map=str(fixed))
    result, _ = _run(tmp_path, spec, "r1")
    assert result.label_map.classes == {3: "cat"}
    store = LineageStore(spec.runtime.metadata.url)
    inputs = dict(store.upstream(result.artifacts["label_map"].id).root.inputs)
    assert inputs["previous_label_map"].artifact.uri == str(fixed)


def test_quarantine_limit_fails_after_writing_the_report(tmp_path: Path) -> None:
    files = [("a.jpg", "cat"), ("missing1.jpg", "cat"), ("missing2.jpg", "cat")]
    spec = _spec(tmp_path, _coco(tmp_path / "d", ["cat"], files), max_quarantine_fraction=0.5)
    with pytest.raises(QuarantineLimitError) as err:
        _run(tmp_path, spec, "r1")
    report = tmp_path / "r1" / "quarantine" / "quarantine.json"
    assert str(report) in str(err.value) and "2 of 3" in str(err.value)
    assert [i.kind for i in QuarantineReport.load(report).items] == ["missing_file", "missing_file"]
    assert (tmp_path / "r1" / "manifest" / "manifest.json").is_file()
    # a count limit too
    spec_count = _spec(tmp_path, spec.data.source, max_quarantine_count=1)
    with pytest.raises(QuarantineLimitError, match="over the limit of 1 items"):
        _run(tmp_path, spec_count, "r2")
    # within the limits the step succeeds
    ok, _ = _run(tmp_path, _spec(tmp_path, spec.data.source, max_quarantine_fraction=0.7), "r3")
    assert len(ok.manifest) == 1


def test_component_compiles_with_its_outputs(tmp_path: Path) -> None:
    import yaml
    from kfp import compiler

    from components.ingest.component import ingest

    path = tmp_path / "ingest.yaml"
    compiler.Compiler().compile(ingest, str(path))
    doc = yaml.safe_load(path.read_text())
    comp = doc["components"]["comp-ingest"]
    assert sorted(comp["inputDefinitions"]["parameters"]) == ["context", "data", "monitoring", "run_id", "validation"]
    outputs = {k: v["artifactType"]["schemaTitle"] for k, v in comp["outputDefinitions"]["artifacts"].items()}
    assert outputs == {"manifest": "system.Dataset", "label_map": "system.Artifact", "quarantine": "system.Artifact"}
    executor = doc["deploymentSpec"]["executors"]["exec-ingest"]["container"]
    assert "from components.ingest.core import run" in executor["command"][-1]
    assert "pip install" not in " ".join(executor["command"])

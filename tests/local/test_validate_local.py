"""The validate KFP component run by kfp.local (SubprocessRunner) on a tiny generated dataset."""

# no `from __future__ import annotations`: kfp reads the pipeline function's annotations as types
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from components.core.labelmap import LabelMap
from components.core.lineage import LineageStore
from components.core.manifest import ImageRecord, Manifest, ObjectAnnotation
from components.core.params import context_parameter, section_parameter
from components.core.spec import PipelineSpec

pytestmark = pytest.mark.local


def _dataset(root: Path) -> tuple[Path, Path]:
    records = []
    for i in range(6):
        arr = np.random.default_rng(i).integers(0, 255, (24, 32, 3), dtype=np.uint8)
        (root / "images").mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr, "RGB").save(root / "images" / f"{i}.jpg")
        records.append(
            ImageRecord(
                image_id=str(i),
                path=f"images/{i}.jpg",
                sha256="",
                width=32,
                height=24,
                objects=[ObjectAnnotation(class_id=1 + i % 2, bbox=[1, 1, 10, 10])],
            )
        )
    (root / "images" / "5.jpg").write_bytes(b"")  # one unreadable image, quarantined
    lm = LabelMap.from_names(["cat", "dog"])
    Manifest(task="detection", root=str(root), label_map=lm, images=records).save(root / "manifest" / "manifest.json")
    lm.save(root / "label_map" / "label_map.json")
    return root / "manifest", root / "label_map"


def test_validate_component_runs_locally(tmp_path: Path) -> None:
    from kfp import dsl, local

    from components.validate.component import validate

    manifest_dir, label_map_dir = _dataset(tmp_path / "data")
    spec = PipelineSpec.model_validate(
        {
            "name": "local-validate",
            "task": "detection",
            "data": {"source": str(tmp_path / "data" / "annotations.json"), "format": "coco"},
            "validation": {"min_examples_per_class": 1},
            "runtime": {"root": str(tmp_path), "metadata": {"url": f"sqlite:///{tmp_path / 'mlmd.sqlite'}"}},
        }
    )

    @dsl.pipeline(name="validate-only")
    def pipeline(context: dict, validation: dict, manifest_uri: str, label_map_uri: str) -> None:
        m = dsl.importer(artifact_uri=manifest_uri, artifact_class=dsl.Dataset, reimport=False)
        lm = dsl.importer(artifact_uri=label_map_uri, artifact_class=dsl.Artifact, reimport=False)
        validate(context=context, run_id="local-run", validation=validation, manifest=m.output, label_map=lm.output)

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"), raise_on_error=True)
    pipeline(
        context=context_parameter(spec),
        validation=section_parameter(spec, "validation"),
        manifest_uri=str(manifest_dir),
        label_map_uri=str(label_map_dir),
    )

    [task_dir] = (tmp_path / "root").glob("validate-only-*/validate")
    report = task_dir / "report"
    assert report.is_file() and report.read_text().startswith("<!DOCTYPE html>")  # the HTML artifact is the file itself
    validated = Manifest.load(task_dir / "validated" / "manifest.json")
    assert [r.image_id for r in validated.images] == ["0", "1", "2", "3", "4"]
    doc = json.loads((task_dir / "anomalies" / "anomalies.json").read_text())
    assert doc["counts"] == {"unreadable": 1}
    store = LineageStore(spec.runtime.metadata.url)
    [execution] = store.executions(run_id="local-run", component="validate")
    assert execution["properties"]["failed"] is False
    assert store.latest("Schema", pipeline="local-validate") is not None

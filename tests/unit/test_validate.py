"""validate end to end on tiny generated datasets: real TFDV, real MLMD on SQLite in tmp_path."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from components.core.errors import ValidationFailed
from components.core.labelmap import LabelMap
from components.core.manifest import ImageRecord, Manifest, ObjectAnnotation
from components.core.quarantine import QuarantineReport
from components.core.spec import PipelineSpec
from components.core.step import StepContext
from components.validate import ValidateOutputs, ValidationResult, run

CLASSES = ["cat", "dog"]


def _spec(tmp_path: Path, **validation: Any) -> PipelineSpec:
    return PipelineSpec.model_validate(
        {
            "name": "unit-validate",
            "task": "detection",
            "data": {"source": str(tmp_path / "annotations.json"), "format": "coco"},
            "validation": validation,
            "runtime": {"root": str(tmp_path), "metadata": {"url": f"sqlite:///{tmp_path / 'mlmd.sqlite'}"}},
        }
    )


def _ctx(tmp_path: Path, run_id: str, **validation: Any) -> StepContext:
    return StepContext(spec=_spec(tmp_path, **validation), run_id=run_id, component="validate")


def _jpeg(path: Path, seed: int, size: tuple[int, int] = (48, 32)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(arr, "RGB").save(path, format="JPEG", quality=90)
    return path


def _png_bomb(path: Path) -> Path:
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))
    return path


def _box(i: int, class_id: int) -> ObjectAnnotation:
    # identical geometry whatever the class, so only the class mix can drift between versions
    return ObjectAnnotation(class_id=class_id, bbox=[2.0 + i % 5, 3.0, 10.0 + i % 7, 12.0], annotation_id=f"a{i}")


def _good_dataset(root: Path, classes: list[int], tag: str = "v") -> list[ImageRecord]:
    """One image per object, objects of the given class ids."""
    records = []
    for i, cid in enumerate(classes):
        _jpeg(root / tag / f"img{i:03d}.jpg", seed=i)
        records.append(
            ImageRecord(image_id=f"{tag}{i}", path=f"{tag}/img{i:03d}.jpg", sha256="", width=48, height=32, objects=[_box(i, cid)])
        )
    return records


def _write_inputs(root: Path, records: list[ImageRecord], name: str = "in", task: str = "detection") -> tuple[Path, Path]:
    lm = LabelMap.from_names(CLASSES)
    m = Manifest.model_validate({"task": task, "root": str(root), "label_map": lm, "images": records, "format": "coco"})
    m.save(root / name / "manifest" / "manifest.json")
    lm.save(root / name / "label_map" / "label_map.json")
    return root / name / "manifest", root / name / "label_map"


def _run(tmp_path: Path, records: list[ImageRecord], run_id: str, **validation: Any) -> tuple[ValidationResult, ValidateOutputs]:
    manifest_dir, label_map_dir = _write_inputs(tmp_path, records, name=f"in-{run_id}")
    outputs = ValidateOutputs.under(tmp_path / f"out-{run_id}")
    result = run(_ctx(tmp_path, run_id, **validation), manifest_dir, label_map_dir, outputs)
    return result, outputs


@pytest.fixture
def problem_dataset(tmp_path: Path) -> list[ImageRecord]:
    """Good images plus one of every item-level problem."""
    recs = _good_dataset(tmp_path, [1] * 6 + [2] * 6, tag="good")
    full = _jpeg(tmp_path / "bad" / "full.jpg", seed=99, size=(200, 150)).read_bytes()
    (tmp_path / "bad" / "truncated.jpg").write_bytes(full[: len(full) // 2])
    (tmp_path / "bad" / "empty.jpg").write_bytes(b"")
    _png_bomb(tmp_path / "bad" / "bomb.png")
    Image.new("CMYK", (48, 32), (10, 20, 30, 0)).save(tmp_path / "bad" / "cmyk.jpg")
    Image.open(tmp_path / "good" / "img000.jpg").save(tmp_path / "bad" / "png_named.jpg", format="PNG")
    exif = Image.Exif()
    exif[0x0112] = 3
    Image.open(tmp_path / "good" / "img001.jpg").save(tmp_path / "bad" / "rotated.jpg", exif=exif)
    (tmp_path / "bad" / "leak.jpg").write_bytes((tmp_path / "good" / "img002.jpg").read_bytes())
    recs[2] = recs[2].model_copy(update={"split": "train"})

    def bad(name: str, **kw: Any) -> ImageRecord:
        fields: dict[str, Any] = {"image_id": name, "path": f"bad/{name}", "sha256": "", "width": 48, "height": 32, "objects": [_box(0, 1)]}
        fields.update(kw)
        return ImageRecord.model_validate(fields)

    recs += [
        bad("truncated.jpg"),
        bad("empty.jpg"),
        bad("bomb.png"),
        bad("cmyk.jpg"),
        bad("png_named.jpg"),
        bad("rotated.jpg"),
        bad("leak.jpg", split="test"),
        bad(
            "boxes.jpg",
            path="good/img003.jpg",
            objects=[
                ObjectAnnotation(class_id=1, bbox=[40, 20, 30, 30], annotation_id="outside"),
                ObjectAnnotation(class_id=2, bbox=[5, 5, -2, 4], annotation_id="negative"),
                ObjectAnnotation(class_id=1, bbox=[float("nan"), 1, 2, 2], annotation_id="nan"),
                ObjectAnnotation(class_id=42, bbox=[1, 1, 5, 5], annotation_id="unknown"),
                ObjectAnnotation(class_id=2, bbox=[1, 1, 5, 5], annotation_id="fine"),
            ],
        ),
    ]
    return recs


def test_every_item_kind_is_detected_and_quarantine_removes_exactly_the_bad_items(
    tmp_path: Path, problem_dataset: list[ImageRecord]
) -> None:
    result, outputs = _run(tmp_path, problem_dataset, "r1", min_examples_per_class=7)

    by_kind: dict[str, set[tuple[str | None, str | None]]] = {}
    for f in result.findings:
        by_kind.setdefault(f.kind, set()).add((f.image_id, f.annotation_id))
    assert by_kind["undecodable"] == {("truncated.jpg", None)}
    assert by_kind["unreadable"] == {("empty.jpg", None)}
    assert by_kind["decompression_bomb"] == {("bomb.png", None)}
    assert by_kind["color_mode"] == {("cmyk.jpg", None)}
    assert by_kind["extension_mismatch"] == {("png_named.jpg", None)}
    assert by_kind["exif_orientation"] == {("rotated.jpg", None)}
    assert by_kind["duplicate_across_splits"] == {("leak.jpg", None)}
    assert by_kind["box_outside_image"] == {("boxes.jpg", "outside")}
    assert by_kind["degenerate_box"] == {("boxes.jpg", "negative")}
    assert by_kind["nan_coordinate"] == {("boxes.jpg", "nan")}
    assert by_kind["unknown_label"] == {("boxes.jpg", "unknown")}
    # cat: 6 good + cmyk + png_named + rotated = 9 objects; dog: 6 good + "fine" = 7
    assert "too_few_examples" not in by_kind

    validated = Manifest.load(result.validated_manifest)
    ids = [r.image_id for r in validated.images]
    assert set(ids) == {f"good{i}" for i in range(12)} | {"cmyk.jpg", "png_named.jpg", "rotated.jpg", "boxes.jpg"}
    boxes = next(r for r in validated.images if r.image_id == "boxes.jpg")
    assert [o.annotation_id for o in boxes.objects] == ["fine"]
    assert result.images_in == 20 and result.images_validated == 16

    q = QuarantineReport.load(outputs.quarantine)
    assert q.stage == "validate" and q.total == 20
    assert {(i.kind, i.image_id, i.annotation_id) for i in q.items} == {
        ("undecodable", "truncated.jpg", None),
        ("unreadable", "empty.jpg", None),
        ("decompression_bomb", "bomb.png", None),
        ("duplicate_across_splits", "leak.jpg", None),
        ("box_outside_image", "boxes.jpg", "outside"),
        ("degenerate_box", "boxes.jpg", "negative"),
        ("nan_coordinate", "boxes.jpg", "nan"),
        ("unknown_label", "boxes.jpg", "unknown"),
    }
    warned = {f.kind for f in result.findings if f.policy == "warn"}
    assert {"color_mode", "extension_mismatch", "exif_orientation"} <= warned

    doc = json.loads(Path(result.anomalies_file).read_text())
    assert doc["failed"] is False and doc["counts"]["unreadable"] == 1
    assert {"kind", "policy", "severity", "file", "image_id", "message"} <= set(doc["findings"][0])
    assert set(doc["tfdv_anomalies"]) == {"images", "objects"}


def test_too_few_examples_and_schema_anomaly_are_dataset_level_warnings(tmp_path: Path) -> None:
    result, _ = _run(
        tmp_path, _good_dataset(tmp_path, [1] * 5 + [2] * 2), "r1", min_examples_per_class=3, policy={"too_few_examples": "quarantine"}
    )
    [few] = result.of_kind("too_few_examples")
    assert few.feature == "dog" and few.policy == "warn" and few.level == "dataset"
    assert result.images_validated == 7  # a dataset-level finding removes nothing


def test_policy_fail_raises_after_writing_the_report(tmp_path: Path, problem_dataset: list[ImageRecord]) -> None:
    manifest_dir, label_map_dir = _write_inputs(tmp_path, problem_dataset)
    outputs = ValidateOutputs.under(tmp_path / "out")
    ctx = _ctx(tmp_path, "r-fail", policy={"undecodable": "fail", "degenerate_box": "fail"})
    with pytest.raises(ValidationFailed) as err:
        run(ctx, manifest_dir, label_map_dir, outputs)

    assert len(err.value.anomalies) == 2
    assert any("truncated.jpg" in a for a in err.value.anomalies) and any("negative" in a for a in err.value.anomalies)
    assert err.value.report == str(outputs.report)
    page = outputs.report.read_text()
    assert "FAILED" in page and "truncated.jpg" in page
    doc = json.loads((outputs.anomalies / "anomalies.json").read_text())
    assert doc["failed"] is True
    assert (outputs.anomalies / "summary.md").read_text().startswith("# Data validation")
    # the failure is in lineage, but its statistics and schema never become a baseline
    store = ctx.store
    [execution] = store.executions(run_id="r-fail", component="validate")
    assert execution["properties"]["failed"] is True
    assert store.latest("ExampleAnomalies", pipeline="unit-validate") is not None
    assert store.latest("ExampleStatistics", pipeline="unit-validate") is None
    assert store.latest("Schema", pipeline="unit-validate") is None


def test_empty_dataset_fails_by_default(tmp_path: Path) -> None:
    manifest_dir, label_map_dir = _write_inputs(tmp_path, [])
    outputs = ValidateOutputs.under(tmp_path / "out")
    with pytest.raises(ValidationFailed, match="empty_dataset"):
        run(_ctx(tmp_path, "r-empty"), manifest_dir, label_map_dir, outputs)
    assert outputs.report.is_file()
    assert Manifest.load(outputs.validated / "manifest.json").images == []


def test_schema_inferred_then_reused_and_class_drift_flagged(tmp_path: Path) -> None:
    balanced = [1] * 20 + [2] * 20
    r1, out1 = _run(tmp_path, _good_dataset(tmp_path, balanced, tag="v1"), "r1", min_examples_per_class=2)
    assert r1.schema_source == "inferred" and r1.schema_version == 1
    assert r1.drift_baseline is None and not r1.of_kind("drift")
    schema_text = (out1.schema / "schema.pbtxt").read_text()
    assert 'name: "class"' in schema_text and 'not_in_environment: "IMAGES"' in schema_text

    # same class mix: nothing drifts, the schema is reused unchanged
    r2, _ = _run(tmp_path, _good_dataset(tmp_path, balanced, tag="v2"), "r2", min_examples_per_class=2)
    assert r2.schema_source == "previous" and r2.schema_version == 1
    assert r2.drift_baseline == r1.artifacts["statistics"]
    assert not r2.of_kind("drift") and not r2.of_kind("schema_anomaly")

    # 36 cats and 4 dogs against 20/20: L-infinity 0.4 > 0.3
    r3, out3 = _run(tmp_path, _good_dataset(tmp_path, [1] * 36 + [2] * 4, tag="v3"), "r3", min_examples_per_class=2)
    drift = r3.of_kind("drift")
    assert [(f.table, f.feature) for f in drift] == [("objects", "class")]
    assert "Linfty" in drift[0].message and drift[0].policy == "warn"
    assert r3.drift_baseline == r2.artifacts["statistics"]
    assert "COMPARATOR_L_INFTY_HIGH" in (out3.anomalies / "Split-objects" / "anomalies.pbtxt").read_text()

    store = _ctx(tmp_path, "query").store
    schemas = store.artifacts("Schema", pipeline="unit-validate")
    assert [(s.properties["version"], s.properties["source"]) for s in schemas] == [(1, "inferred"), (1, "previous"), (1, "previous")]
    graph = store.upstream(r2.artifacts["schema"])
    assert graph.root.execution is not None
    inputs = dict(graph.root.inputs)
    assert inputs["baseline_schema"].artifact.id == r1.artifacts["schema"]
    assert inputs["previous_statistics"].artifact.id == r1.artifacts["statistics"]


def test_tighter_curated_schema_bumps_the_version_and_flags_new_values(tmp_path: Path) -> None:
    _, out1 = _run(tmp_path, _good_dataset(tmp_path, [1] * 10 + [2] * 10), "r1", min_examples_per_class=2)
    curated = (out1.schema / "schema.pbtxt").read_text().replace('  value: "dog"\n', "")
    assert curated != (out1.schema / "schema.pbtxt").read_text()
    (tmp_path / "curated.pbtxt").write_text(curated)

    r2, _ = _run(
        tmp_path,
        _good_dataset(tmp_path, [1] * 10 + [2] * 10, tag="w"),
        "r2",
        min_examples_per_class=2,
        schema_file=str(tmp_path / "curated.pbtxt"),
    )
    assert r2.schema_source == "curated" and r2.schema_version == 2
    [anomaly] = [f for f in r2.of_kind("schema_anomaly") if f.feature == "class"]
    assert "dog" in anomaly.message and anomaly.table == "objects"


def test_html_report_and_lineage(tmp_path: Path, problem_dataset: list[ImageRecord]) -> None:
    result, outputs = _run(tmp_path, problem_dataset, "r1", min_examples_per_class=7)
    page = outputs.report.read_text()
    assert str(outputs.report).endswith("report/index.html")
    assert 'id="statistics"' in page and "stat-plot" in page and "facets" not in page  # self-contained charts, no CDN viewer
    assert 'id="problems"' in page
    problems = page.split('id="problems"', 1)[1].split("</table>", 1)[0]
    for name in ("truncated.jpg", "empty.jpg", "bomb.png", "leak.jpg", "negative", "decompression_bomb"):
        assert name in problems
    assert "brightness" in page and "box_area" in page  # static statistics tables of both tables
    md = (outputs.anomalies / "summary.md").read_text()
    assert "| undecodable | quarantine |" in md

    for table in ("images", "objects"):
        assert (outputs.statistics / f"Split-{table}" / "FeatureStats.pb").stat().st_size > 0

    store = _ctx(tmp_path, "query").store
    [execution] = store.executions(run_id="r1", component="validate")
    assert execution["state"] == "COMPLETE" and execution["properties"]["failed"] is False
    assert set(result.artifacts) == {"statistics", "schema", "anomalies", "validated", "report", "quarantine"}
    anomalies = store.get(result.artifacts["anomalies"])
    assert anomalies.kind == "ExampleAnomalies" and anomalies.properties["failed"] is False
    assert json.loads(anomalies.properties["counts"])["decompression_bomb"] == 1
    validated = store.get(result.artifacts["validated"])
    assert validated.kind == "Manifest" and validated.properties["images"] == 16
    assert store.get(result.artifacts["schema"]).properties["version"] == 1
    assert store.get(result.artifacts["statistics"]).uri == str(outputs.statistics)
    upstream = store.upstream(validated.id)
    assert {a.kind for a in upstream.artifacts()} == {"Manifest", "LabelMap"}
    assert {path for path, _ in upstream.root.inputs} == {"manifest", "label_map"}


def test_classification_checks_image_classes(tmp_path: Path) -> None:
    records = []
    for i, cid in enumerate([1, 1, 1, 5]):
        _jpeg(tmp_path / f"c{i}.jpg", seed=i)
        records.append(ImageRecord(image_id=f"c{i}", path=f"c{i}.jpg", sha256="", width=48, height=32, class_id=cid))
    manifest_dir, label_map_dir = _write_inputs(tmp_path, records, task="classification")
    outputs = ValidateOutputs.under(tmp_path / "out")
    result = run(_ctx(tmp_path, "r-cls", min_examples_per_class=2), manifest_dir, label_map_dir, outputs)

    assert [(f.image_id, f.annotation_id, f.policy) for f in result.of_kind("unknown_label")] == [("c3", None, "quarantine")]
    assert [f.feature for f in result.of_kind("too_few_examples")] == ["dog"]
    assert [r.image_id for r in Manifest.load(result.validated_manifest).images] == ["c0", "c1", "c2"]
    assert 'name: "image_class"' in (outputs.schema / "schema.pbtxt").read_text()

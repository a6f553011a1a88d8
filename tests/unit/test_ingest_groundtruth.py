"""Ingest of SageMaker Ground Truth output manifests (bounding-box and image-classification jobs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ingest_testdata import data_spec, write_image

from components.core.errors import AnnotationError
from components.ingest.core import read_source


def _bbox_line(ref: str, anns: list[dict[str, Any]], cmap: dict[str, str], attr: str = "bounding-box") -> dict[str, Any]:
    return {
        "source-ref": ref,
        attr: {"image_size": [{"width": 64, "height": 48, "depth": 3}], "annotations": anns},
        f"{attr}-metadata": {
            "objects": [{"confidence": 0.9} for _ in anns],
            "class-map": cmap,
            "type": "groundtruth/object-detection",
            "human-annotated": "yes",
            "creation-date": "2024-01-01T00:00:00",
            "job-name": f"labeling-job/{attr}",
        },
    }


def _class_line(ref: str, class_id: int, name: str, attr: str = "animal") -> dict[str, Any]:
    return {
        "source-ref": ref,
        attr: class_id,
        f"{attr}-metadata": {
            "class-name": name,
            "confidence": 0.8,
            "type": "groundtruth/image-classification",
            "job-name": f"labeling-job/{attr}",
        },
    }


def _write(path: Path, lines: list[Any]) -> Path:
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return path


def test_bounding_box_job(tmp_path: Path) -> None:
    write_image(tmp_path / "images" / "imgs" / "a.jpg", 64, 48)
    write_image(tmp_path / "images" / "b.jpg", 32, 32, seed=1)
    cmap = {"0": "dog", "1": "cat"}
    src = _write(
        tmp_path / "output.manifest",
        [
            _bbox_line(
                "s3://bucket/prefix/imgs/a.jpg",
                [
                    {"class_id": 1, "left": 2, "top": 3, "width": 10, "height": 12},
                    {"class_id": 0, "left": 0, "top": 0, "width": 64, "height": 48},
                ],
                cmap,
            ),
            "{this is not json",
            _bbox_line(
                "b.jpg", [{"class_id": 7, "left": 1, "top": 1, "width": 5, "height": 5}, {"class_id": 0, "left": 1, "top": 1}], cmap
            ),
            _bbox_line("s3://bucket/prefix/imgs/zzz.jpg", [], cmap),
            {"source-ref": "s3://bucket/prefix/imgs/a.jpg", "bounding-box-metadata": {"failure-reason": "ClientError: worker timed out"}},
            {"no-source-ref": 1},
        ],
    )
    res = read_source(data_spec(src, images=tmp_path / "images"), "detection")
    assert res.label_map.classes == {1: "dog", 2: "cat"}
    by_id = {r.image_id: r for r in res.manifest.images}
    assert sorted(by_id) == ["b.jpg", "imgs/a.jpg"]
    a = by_id["imgs/a.jpg"]
    assert (a.width, a.height, a.source["source-ref"]) == (64, 48, "s3://bucket/prefix/imgs/a.jpg")
    assert [(o.class_id, o.bbox, o.attributes) for o in a.objects] == [
        (2, [2.0, 3.0, 10.0, 12.0], {"confidence": 0.9}),
        (1, [0.0, 0.0, 64.0, 48.0], {"confidence": 0.9}),
    ]
    assert by_id["b.jpg"].objects == []
    q = res.quarantine
    items = {(i.file.rsplit("/", 1)[-1], i.annotation_id): i.kind for i in q.items}
    assert items == {
        ("output.manifest:2", None): "invalid_annotation",
        ("output.manifest:3", "output.manifest:3#0"): "unknown_class",
        ("output.manifest:3", "output.manifest:3#1"): "invalid_coordinates",
        ("zzz.jpg", None): "missing_file",
        ("output.manifest:5", None): "missing_label",
        ("output.manifest:6", None): "invalid_annotation",
    }
    failed = next(i for i in q.items if i.kind == "missing_label")
    assert "worker timed out" in failed.reason
    assert q.total == 6 and q.rejected_images == 4


def test_classification_job_and_automatic_attribute(tmp_path: Path) -> None:
    write_image(tmp_path / "a.jpg", 32, 32)
    write_image(tmp_path / "b.jpg", 32, 32, seed=1)
    write_image(tmp_path / "c.jpg", 32, 32, seed=2)
    chained = _class_line("c.jpg", 0, "dog")
    chained.update(_bbox_line("c.jpg", [], {"0": "dog"}))  # a chained job also drew boxes: not a class label
    lines = [
        _class_line("a.jpg", 1, "cat"),
        _class_line("b.jpg", 0, "dog"),
        chained,
        {"source-ref": "a.jpg", "animal": [0, 1], "animal-metadata": {}},
    ]
    src = _write(tmp_path / "cls.manifest", lines)
    res = read_source(data_spec(src), "classification")
    assert res.label_map.classes == {1: "dog", 2: "cat"}
    assert {r.image_id: r.class_id for r in res.manifest.images} == {"a.jpg": 2, "b.jpg": 1, "c.jpg": 1}
    assert res.manifest.images[0].source["confidence"] == 0.8
    [bad] = res.quarantine.items
    assert bad.kind == "invalid_annotation" and "multi-label" in bad.reason
    assert res.manifest.class_counts() == {"dog": 2, "cat": 1}


def test_several_label_attributes_need_the_spec(tmp_path: Path) -> None:
    write_image(tmp_path / "a.jpg", 32, 32)
    line = _class_line("a.jpg", 0, "dog", attr="species")
    line.update({"color": 1, "color-metadata": {"class-name": "brown"}})
    src = _write(tmp_path / "x.manifest", [line])
    with pytest.raises(AnnotationError, match="label_attribute") as err:
        read_source(data_spec(src), "classification")
    assert str(src) in str(err.value)
    res = read_source(data_spec(src, label_attribute="color"), "classification")
    assert res.label_map.names == ["brown"] and res.manifest.images[0].class_id == 1


def test_no_fitting_attribute_raises(tmp_path: Path) -> None:
    write_image(tmp_path / "a.jpg", 32, 32)
    src = _write(tmp_path / "x.manifest", [_class_line("a.jpg", 0, "dog")])
    with pytest.raises(AnnotationError, match="no detection label attribute"):
        read_source(data_spec(src), "detection")


def test_escaping_source_ref_is_quarantined(tmp_path: Path) -> None:
    root = tmp_path / "root"
    write_image(root / "a.jpg", 32, 32)
    write_image(tmp_path / "outside.jpg", 32, 32)
    lines = [_class_line("a.jpg", 0, "dog"), _class_line("../outside.jpg", 0, "dog"), _class_line(str(tmp_path / "outside.jpg"), 0, "dog")]
    src = _write(root / "m.manifest", lines)
    res = read_source(data_spec(src), "classification")
    assert [r.image_id for r in res.manifest.images] == ["a.jpg"]
    assert [i.kind for i in res.quarantine.items] == ["path_escapes_root", "path_escapes_root"]

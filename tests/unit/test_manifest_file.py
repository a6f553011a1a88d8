"""The manifest file: written one record at a time, read back in one pass, equal to what was saved."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from components.core.labelmap import LabelMap
from components.core.manifest import ImageRecord, Manifest, ObjectAnnotation


def _manifest(n: int) -> Manifest:
    records = [
        ImageRecord(
            image_id=str(i),
            path=f"images/{i:06d}.jpg",
            sha256=f"{i:064x}",
            width=64,
            height=48,
            objects=[
                ObjectAnnotation(class_id=1 + i % 2, bbox=[1.0, 2.0, 10.5, 8.0], area=84.0, annotation_id=f"a{i}"),
                ObjectAnnotation(class_id=1, bbox=[0, 0, 3, 3], segmentation=[[0.0, 0.0, 3.0, 0.0, 3.0, 3.0]], is_crowd=True),
            ],
            split="train" if i % 3 else None,
            source={"declared_size": [64, 48]} if i == 0 else {},
        )
        for i in range(n)
    ]
    return Manifest(task="detection", root="/data", label_map=LabelMap.from_names(["cat", "dog"]), images=records, format="coco")


def test_a_manifest_reads_back_equal_and_is_plain_json(tmp_path: Path) -> None:
    m = _manifest(50)
    m.save(tmp_path / "manifest.json")
    doc = json.loads((tmp_path / "manifest.json").read_text())  # any JSON reader can read it
    assert len(doc["images"]) == 50 and doc["task"] == "detection" and doc["label_map"]["classes"] == {"1": "cat", "2": "dog"}
    assert Manifest.load(tmp_path / "manifest.json") == m
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]  # the temporary file was renamed into place


def test_an_empty_manifest_and_a_nan_box_survive_the_round_trip(tmp_path: Path) -> None:
    empty = Manifest(task="classification", root="/d", label_map=LabelMap.from_names(["a"]))
    empty.save(tmp_path / "empty.json")
    assert Manifest.load(tmp_path / "empty.json") == empty
    m = _manifest(1)
    m.images[0].objects[0].bbox = [math.nan, 1.0, math.inf, 2.0]  # validate must still see (and report) it
    m.save(tmp_path / "nan.json")
    box = Manifest.load(tmp_path / "nan.json").images[0].objects[0].bbox
    assert math.isnan(box[0]) and box[2] == math.inf


def test_a_file_name_that_is_not_utf8_is_written_escaped_and_read_back(tmp_path: Path) -> None:
    name = os.fsdecode(b"caf\xe9.jpg")  # a surrogate escape, as os.listdir gives it
    m = _manifest(1)
    m.images[0].source = {"original": name}
    m.save(tmp_path / "manifest.json")
    assert "\\udce9" in (tmp_path / "manifest.json").read_text()
    assert Manifest.load(tmp_path / "manifest.json").images[0].source == {"original": name}

"""Ingest of class-per-folder classification sets."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from ingest_testdata import data_spec, write_image

from components.core.errors import AnnotationError
from components.ingest.core import read_source


def test_class_folders(tmp_path: Path) -> None:
    root = tmp_path / "flowers"
    write_image(root / "tulip" / "t1.jpg", 32, 32)
    write_image(root / "tulip" / "nested" / "t2.jpg", 40, 30, seed=1)
    write_image(root / "rose" / "r1.png", 48, 32, seed=2)
    (root / "rose" / "notes.txt").write_text("not an image")
    (root / "rose" / ".DS_Store").write_bytes(b"\x00\x01")
    write_image(root / ".cache" / "x.jpg", 32, 32, seed=3)
    write_image(root / "loose.jpg", 32, 32, seed=4)
    (root / "README.md").write_text("a dataset")
    res = read_source(data_spec(root), "classification")
    assert res.manifest.format == "folders"
    assert res.label_map.classes == {1: "rose", 2: "tulip"}
    recs = {r.image_id: r for r in res.manifest.images}
    assert sorted(recs) == ["rose/r1.png", "tulip/nested/t2.jpg", "tulip/t1.jpg"]
    t2 = recs["tulip/nested/t2.jpg"]
    assert (t2.class_id, t2.width, t2.height, t2.split, t2.objects) == (2, 40, 30, None, [])
    assert t2.sha256 == hashlib.sha256((root / "tulip" / "nested" / "t2.jpg").read_bytes()).hexdigest()
    assert recs["rose/r1.png"].class_id == 1
    kinds = {Path(i.file).name: i.kind for i in res.quarantine.items}
    assert kinds == {"notes.txt": "unreadable_image", "flowers": "missing_label"}
    loose = next(i for i in res.quarantine.items if i.kind == "missing_label")
    assert "loose.jpg" in loose.reason
    assert res.manifest.class_counts() == {"rose": 1, "tulip": 2}
    assert res.manifest.images_without_annotations() == []


def test_split_folders(tmp_path: Path) -> None:
    write_image(tmp_path / "train" / "cat" / "a.jpg", 32, 32)
    write_image(tmp_path / "train" / "dog" / "b.jpg", 32, 32, seed=1)
    write_image(tmp_path / "val" / "dog" / "c.jpg", 32, 32, seed=2)
    write_image(tmp_path / "test" / "bird" / "d.jpg", 32, 32, seed=3)
    res = read_source(data_spec(tmp_path, format="folders"), "classification")
    assert res.label_map.classes == {1: "bird", 2: "cat", 3: "dog"}
    assert {r.image_id: (r.class_id, r.split) for r in res.manifest.images} == {
        "train/cat/a.jpg": (2, "train"),
        "train/dog/b.jpg": (3, "train"),
        "val/dog/c.jpg": (3, "validation"),
        "test/bird/d.jpg": (1, "test"),
    }


def test_missing_or_empty_root_raises(tmp_path: Path) -> None:
    with pytest.raises(AnnotationError, match="must be a directory"):
        read_source(data_spec(tmp_path / "nope", format="folders"), "classification")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AnnotationError, match="no class folders"):
        read_source(data_spec(tmp_path / "empty", format="folders"), "classification")

"""Ingest of YOLO datasets: data.yaml variants, normalised boxes and polygons, splits, bad lines."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ingest_testdata import data_spec, write_image

from components.core.errors import AnnotationError
from components.ingest.core import read_source
from components.ingest.yolo import label_path


def _dataset(root: Path, names: object) -> Path:
    write_image(root / "images" / "train" / "a.jpg", 64, 32)
    write_image(root / "images" / "train" / "b.jpg", 32, 32, seed=1)  # no label file: background
    write_image(root / "images" / "val" / "c.png", 32, 32, seed=2)
    (root / "labels" / "train").mkdir(parents=True)
    (root / "labels" / "val").mkdir(parents=True)
    (root / "labels" / "train" / "a.txt").write_text("0 0.5 0.5 0.25 0.5\n\n1 0.1 0.1 0.3 0.1 0.3 0.3 0.1 0.3\n")
    (root / "labels" / "val" / "c.txt").write_text(
        "0 0.5 0.5 0.5 0.5\n"  # good
        "5 0.5 0.5 0.1 0.1\n"  # class index out of range
        "0 0.5 0.5\n"  # too few numbers
        "0 nan 0.5 0.1 0.1\n"
        "0 1.5 0.5 0.2 0.2\n"  # outside
        "0 0.5 0.5 0 0.2\n"  # zero width
        "x 0.5 0.5 0.1 0.1\n"
    )
    src = root / "data.yaml"
    src.write_text(yaml.safe_dump({"path": ".", "train": "images/train", "val": "images/val", "names": names}))
    return src


@pytest.mark.parametrize("names", [["car", "bus"], {0: "car", 1: "bus"}, {"1": "bus", "0": "car"}])
def test_reads_yolo_boxes_polygons_and_splits(tmp_path: Path, names: object) -> None:
    src = _dataset(tmp_path / "ds", names)
    res = read_source(data_spec(src), "detection")
    assert res.label_map.classes == {1: "car", 2: "bus"}
    m = res.manifest
    assert m.format == "yolo" and m.root == str(tmp_path / "ds")
    by_id = {r.image_id: r for r in m.images}
    assert sorted(by_id) == ["images/train/a.jpg", "images/train/b.jpg", "images/val/c.png"]
    a = by_id["images/train/a.jpg"]
    assert (a.width, a.height, a.split, a.path) == (64, 32, "train", "images/train/a.jpg")
    box, poly = a.objects
    # cx=0.5*64, cy=0.5*32, w=0.25*64, h=0.5*32
    assert (box.class_id, box.bbox, box.area) == (1, [24.0, 8.0, 16.0, 16.0], 256.0)
    assert poly.class_id == 2
    assert poly.bbox == pytest.approx([6.4, 3.2, 12.8, 6.4])
    assert isinstance(poly.segmentation, list)
    assert poly.segmentation[0] == pytest.approx([6.4, 3.2, 19.2, 3.2, 19.2, 9.6, 6.4, 9.6])
    assert poly.area == pytest.approx(12.8 * 6.4)
    b = by_id["images/train/b.jpg"]
    assert b.objects == [] and b.split == "train" and b.source["label_file"] is None
    c = by_id["images/val/c.png"]
    assert c.split == "validation"
    assert [o.bbox for o in c.objects] == [[8.0, 8.0, 16.0, 16.0]]
    lp = str(tmp_path / "ds" / "labels" / "val" / "c.txt")
    assert {i.annotation_id: i.kind for i in res.quarantine.items} == {
        f"{lp}:2": "unknown_class",
        f"{lp}:3": "invalid_annotation",
        f"{lp}:4": "invalid_coordinates",
        f"{lp}:5": "box_outside_image",
        f"{lp}:6": "zero_size_box",
        f"{lp}:7": "invalid_annotation",
    }
    assert all(i.file == lp for i in res.quarantine.items)
    assert res.quarantine.total == 3 and res.quarantine.rejected_images == 0
    assert [r.image_id for r in m.images_without_annotations()] == ["images/train/b.jpg"]
    assert m.class_counts() == {"car": 2, "bus": 1}


def test_image_list_file_and_escaping_entries(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    src = _dataset(root, ["car", "bus"])
    write_image(tmp_path / "escape.jpg", 32, 32)
    (tmp_path / "escape.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    (root / "train.txt").write_text("./images/train/a.jpg\nimages/train/a.jpg\n../escape.jpg\nimages/train/missing.jpg\n")
    src.write_text(yaml.safe_dump({"train": "train.txt", "test": ["images/val"], "names": ["car", "bus"]}))
    res = read_source(data_spec(src), "detection")
    kept = {r.image_id: r.split for r in res.manifest.images}
    assert kept == {"images/train/a.jpg": "train", "images/val/c.png": "test"}
    rejected = {(i.image_id, i.kind) for i in res.quarantine.items if i.annotation_id is None}
    # a.jpg listed twice (./ and plain) is one image, not a duplicate
    assert rejected == {
        (str(tmp_path / "ds" / ".." / "escape.jpg"), "path_escapes_root"),
        ("images/train/missing.jpg", "missing_file"),
    }


def test_label_path_follows_ultralytics_rule() -> None:
    assert label_path("/d/images/train/x.jpg") == "/d/labels/train/x.txt"
    assert label_path("/images/d/images/x.png") == "/images/d/labels/x.txt"
    assert label_path("/d/flat/x.jpeg") == "/d/flat/x.txt"


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        ({"train": "images/train"}, "names"),
        ({"train": "images/train", "names": {0: "a", 2: "b"}}, "indices"),
        ({"names": ["a"]}, "no 'train'"),
        ({"train": "nowhere", "names": ["a"]}, "not found"),
    ],
)
def test_bad_data_yaml_raises_naming_the_file(tmp_path: Path, doc: dict, problem: str) -> None:
    src = tmp_path / "data.yaml"
    src.write_text(yaml.safe_dump(doc))
    with pytest.raises(AnnotationError) as err:
        read_source(data_spec(src), "detection")
    assert str(src) in str(err.value) and problem in str(err.value)


def test_invalid_yaml_raises(tmp_path: Path) -> None:
    src = tmp_path / "data.yaml"
    src.write_text("names: [a, b\ntrain: {")
    with pytest.raises(AnnotationError, match="not valid YAML"):
        read_source(data_spec(src), "detection")

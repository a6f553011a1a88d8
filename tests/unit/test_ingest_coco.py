"""Ingest of COCO JSON: boxes, polygons, RLE (compressed and list), crowd, bad entries."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import msgspec
import numpy as np
import pycocotools.mask as mask_util
import pytest
from ingest_testdata import data_spec, kinds_by, write_bomb_png, write_image, write_json

from components.core.errors import AnnotationError
from components.core.manifest import Manifest
from components.core.masks import rle_decode
from components.ingest.core import check_box, read_source


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _rle_of(mask: np.ndarray) -> dict:
    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


@pytest.fixture
def good_coco(tmp_path: Path) -> tuple[Path, dict]:
    img = tmp_path / "images"
    write_image(img / "a.jpg", 64, 48, seed=1)
    write_image(img / "sub" / "b.png", 32, 32, seed=2)
    write_image(img / "c.jpg", 40, 40, seed=3)
    mask = np.zeros((32, 32), dtype=bool)
    mask[2:10, 4:12] = True
    crowd = np.zeros((32, 32), dtype=bool)
    crowd[20:30, 0:5] = True
    crowd_rle = mask_util.encode(np.asfortranarray(crowd.astype(np.uint8)))
    doc = {
        "images": [
            {"id": 1, "file_name": "a.jpg", "width": 64, "height": 48},
            {"id": 2, "file_name": "sub/b.png", "width": 32, "height": 32},
            {"id": 3, "file_name": "c.jpg", "width": 40, "height": 40},
        ],
        "categories": [{"id": 3, "name": "dog"}, {"id": 1, "name": "cat"}],
        "annotations": [
            {"id": 11, "image_id": 1, "category_id": 1, "bbox": [4, 6, 20, 10], "area": 200, "iscrowd": 0},
            {
                "id": 12,
                "image_id": 1,
                "category_id": 3,
                "bbox": [10, 10, 20, 20],
                "segmentation": [[10, 10, 30, 10, 30, 30, 10, 30]],
                "iscrowd": 0,
            },
            {"id": 21, "image_id": 2, "category_id": 1, "segmentation": _rle_of(mask), "iscrowd": 0},
            {
                "id": 22,
                "image_id": 2,
                "category_id": 3,
                "segmentation": {"size": [32, 32], "counts": _uncompressed_counts(crowd)},
                "bbox": [float(v) for v in mask_util.toBbox(crowd_rle)],
                "iscrowd": 1,
            },
        ],
    }
    return write_json(tmp_path / "annotations.json", doc), {"mask": mask, "crowd": crowd}


def _uncompressed_counts(mask: np.ndarray) -> list[int]:
    flat = mask.T.reshape(-1).astype(np.int8)
    runs, val, n = [], 0, 0
    for v in flat:
        if v != val:
            runs.append(n)
            val, n = v, 0
        n += 1
    runs.append(n)
    return runs


def test_reads_boxes_polygons_rle_and_crowd_exactly(good_coco: tuple[Path, dict]) -> None:
    src, masks = good_coco
    res = read_source(data_spec(src, images=src.parent / "images"), "segmentation")
    m = res.manifest
    assert len(res.quarantine) == 0 and res.quarantine.total == 3
    # categories by name, in COCO id order: cat (coco 1) then dog (coco 3)
    assert res.label_map.classes == {1: "cat", 2: "dog"} and res.label_map.version == 1
    assert m.format == "coco" and m.root == str(src.parent / "images")
    by_id = {r.image_id: r for r in m.images}
    assert list(by_id) == ["1", "2", "3"]
    a = by_id["1"]
    assert (a.path, a.width, a.height, a.sha256) == ("a.jpg", 64, 48, _sha(src.parent / "images" / "a.jpg"))
    assert a.source == {}  # declared size agrees with the header
    box, poly = a.objects
    assert (box.class_id, box.bbox, box.area, box.annotation_id, box.segmentation) == (1, [4.0, 6.0, 20.0, 10.0], 200.0, "11", None)
    assert (poly.class_id, poly.bbox, poly.segmentation) == (
        2,
        [10.0, 10.0, 20.0, 20.0],
        [[10.0, 10.0, 30.0, 10.0, 30.0, 30.0, 10.0, 30.0]],
    )
    assert poly.area == 400.0  # no area given: polygon area
    b = by_id["2"]
    assert b.path == "sub/b.png"
    rle_obj, crowd_obj = b.objects
    assert isinstance(rle_obj.segmentation, dict) and isinstance(crowd_obj.segmentation, dict)
    # compressed RLE kept as given; box and area derived from the mask agree with pycocotools
    oracle = {"size": rle_obj.segmentation["size"], "counts": rle_obj.segmentation["counts"].encode("ascii")}
    assert rle_obj.bbox == [float(v) for v in mask_util.toBbox(oracle)] == [4.0, 2.0, 8.0, 8.0]
    assert rle_obj.area == float(mask_util.area(oracle)) == 64.0
    assert np.array_equal(rle_decode(rle_obj.segmentation), masks["mask"])
    assert crowd_obj.is_crowd and crowd_obj.class_id == 2
    assert np.array_equal(rle_decode(crowd_obj.segmentation), masks["crowd"])
    assert crowd_obj.area == 50.0
    assert by_id["3"].objects == []


def test_manifest_query_helpers_and_round_trip(good_coco: tuple[Path, dict], tmp_path: Path) -> None:
    src, _ = good_coco
    m = read_source(data_spec(src, images=src.parent / "images"), "detection").manifest
    assert [r.image_id for r in m.images_without_annotations()] == ["3"]
    # the crowd region is not an example of "dog"
    assert m.class_counts() == {"cat": 2, "dog": 1}
    assert m.count_of("cat") == 2 and m.count_of("dog") == 1 and m.count_of("zebra") == 0
    m.save(tmp_path / "out" / "manifest.json")
    again = Manifest.load(tmp_path / "out" / "manifest.json")
    assert again == m
    assert m.image_path(m.images[0]) == src.parent / "images" / "a.jpg"


def test_bad_images_and_annotations_are_quarantined_with_reasons(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    write_image(root / "g.jpg", 64, 64)
    write_image(root / "g2.jpg", 48, 32, seed=5)
    write_image(root / "d1.jpg", 32, 32, seed=6)
    write_image(root / "d2.jpg", 32, 32, seed=7)
    (root / "empty.jpg").write_bytes(b"")
    (root / "notimage.jpg").write_text("hello, I am text")
    write_bomb_png(root / "bomb.png")
    outside = write_image(tmp_path / "outside.jpg", 32, 32)
    images = [
        {"id": 10, "file_name": "missing.jpg"},
        {"id": 11, "file_name": "empty.jpg"},
        {"id": 12, "file_name": "notimage.jpg"},
        {"id": 13, "file_name": "bomb.png"},
        {"id": 14, "file_name": "../outside.jpg"},
        {"id": 15, "file_name": str(outside)},
        {"id": 16, "file_name": "d1.jpg"},
        {"id": 16, "file_name": "d2.jpg"},
        {"id": 20, "file_name": "g.jpg"},
        {"id": 21, "file_name": "g2.jpg", "width": 10, "height": 10},  # the header says 48x32
        {"id": 17, "file_name": "g.jpg"},  # the same file again
        {"file_name": "no-id.jpg"},
    ]
    anns = [
        {"id": 100, "image_id": 20, "category_id": 1, "bbox": [math.nan, 0, 5, 5]},
        {"id": 101, "image_id": 20, "category_id": 1, "bbox": [-5, 0, 10, 10]},
        {"id": 102, "image_id": 20, "category_id": 1, "bbox": [5, 5, 0, 10]},
        {"id": 103, "image_id": 20, "category_id": 1, "bbox": [50, 50, 30, 30]},
        {"id": 104, "image_id": 20, "category_id": 1, "bbox": [-0.5, 0, 64.8, 10]},
        {"id": 105, "image_id": 20, "category_id": 1, "bbox": [0, 0, math.inf, 5]},
        {"id": 104, "image_id": 21, "category_id": 1, "bbox": [1, 1, 2, 2]},
        {"id": 107, "image_id": 20, "category_id": 99, "bbox": [1, 1, 2, 2]},
        {"id": 108, "image_id": 999, "category_id": 1, "bbox": [1, 1, 2, 2]},
        {"id": 109, "image_id": 20, "category_id": 1, "bbox": [1, 2, 3, 4]},
        {"id": 110, "image_id": 21, "category_id": 1, "bbox": [1, 2, -3, 4]},
        {"id": 111, "image_id": 21, "category_id": 1, "bbox": "1 2 3 4"},
        {"id": 112, "image_id": 21, "category_id": 1, "bbox": [0, 0, 10, 10], "segmentation": {"size": [10, 10], "counts": [0, 100]}},
        {"id": 113, "image_id": 21, "category_id": 1, "bbox": [40, 0, 8, 8]},
    ]
    src = write_json(
        root / "ann.json", {"images": images, "annotations": anns, "categories": [{"id": 1, "name": "cat"}, {"name": "nameless-no-id"}]}
    )
    res = read_source(data_spec(src), "detection")
    q = res.quarantine

    # good images kept, with only their good annotations
    kept = {r.image_id: r for r in res.manifest.images}
    assert sorted(kept) == ["20", "21"]
    assert [(o.annotation_id, o.bbox) for o in kept["20"].objects] == [("104", [0.0, 0.0, 64.0, 10.0]), ("109", [1.0, 2.0, 3.0, 4.0])]
    assert [(o.annotation_id, o.bbox) for o in kept["21"].objects] == [("113", [40.0, 0.0, 8.0, 8.0])]
    assert kept["21"].source == {"declared_size": [10, 10]} and (kept["21"].width, kept["21"].height) == (48, 32)

    images_rejected = {i.image_id: i.kind for i in q.items if i.annotation_id is None}
    assert images_rejected == {
        "10": "missing_file",
        "11": "unreadable_image",
        "12": "unreadable_image",
        "13": "unreadable_image",
        "14": "path_escapes_root",
        "15": "path_escapes_root",
        "16": "duplicate_image_id",
        "17": "duplicate_image",
        None: "invalid_annotation",
    }
    assert sum(1 for i in q.items if i.image_id == "16") == 2  # both entries: their annotations are ambiguous
    reasons = {i.image_id: i.reason for i in q.items if i.annotation_id is None}
    assert "empty" in reasons["11"] and "not a recognised image" in reasons["12"] and "decompression bomb" in reasons["13"]
    missing = next(i for i in q.items if i.image_id == "10")
    assert missing.file == str(root / "missing.jpg")

    ann_kinds = {(i.image_id, i.annotation_id): i.kind for i in q.items if i.annotation_id is not None and i.image_id}
    assert ann_kinds == {
        ("20", "100"): "invalid_coordinates",
        ("20", "101"): "invalid_coordinates",
        ("20", "102"): "zero_size_box",
        ("20", "103"): "box_outside_image",
        ("20", "105"): "invalid_coordinates",
        ("21", "104"): "duplicate_annotation_id",
        ("20", "107"): "unknown_class",
        ("999", "108"): "unknown_image",
        ("21", "110"): "invalid_coordinates",
        ("21", "111"): "invalid_coordinates",
        ("21", "112"): "invalid_mask",
    }
    assert kinds_by(q)["categories[1]"] == "invalid_annotation"
    # the escaping file was never read into the manifest
    assert all("outside" not in r.path for r in res.manifest.images)
    assert q.total == 12
    assert q.rejected_images == 9
    csv_text = q.to_csv()
    assert "box_outside_image" in csv_text and "missing.jpg" in csv_text


def test_classification_from_coco_needs_one_class_per_image(tmp_path: Path) -> None:
    write_image(tmp_path / "one.jpg", 32, 32)
    write_image(tmp_path / "two.jpg", 32, 32, seed=1)
    write_image(tmp_path / "none.jpg", 32, 32, seed=2)
    cats = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]
    anns = [
        {"id": 1, "image_id": 1, "category_id": 2, "bbox": [0, 0, 32, 32]},
        {"id": 2, "image_id": 2, "category_id": 1, "bbox": [0, 0, 10, 10]},
        {"id": 3, "image_id": 2, "category_id": 2, "bbox": [10, 10, 10, 10]},
    ]
    imgs = [{"id": 1, "file_name": "one.jpg"}, {"id": 2, "file_name": "two.jpg"}, {"id": 3, "file_name": "none.jpg"}]
    src = write_json(tmp_path / "c.json", {"images": imgs, "annotations": anns, "categories": cats})
    res = read_source(data_spec(src), "classification")
    assert {r.image_id: r.class_id for r in res.manifest.images} == {"1": 2, "3": None}
    assert kinds_by(res.quarantine, "image_id") == {"2": "ambiguous_class"}
    assert res.manifest.class_counts() == {"cat": 0, "dog": 1}
    assert [r.image_id for r in res.manifest.images_without_annotations()] == ["3"]


@pytest.mark.parametrize(
    ("content", "problem"),
    [("{not json", "not valid JSON"), ("[1, 2]", "no 'images' list"), ('{"images": [], "annotations": {}}', "'annotations' is not a list")],
)
def test_unparsable_file_raises_annotation_error_naming_it(tmp_path: Path, content: str, problem: str) -> None:
    src = tmp_path / "broken.json"
    src.write_text(content)
    with pytest.raises(AnnotationError) as err:
        read_source(data_spec(src), "detection")
    assert str(src) in str(err.value) and problem in str(err.value)


def test_missing_annotation_file_raises(tmp_path: Path) -> None:
    with pytest.raises(AnnotationError, match="not found"):
        read_source(data_spec(tmp_path / "nope.json"), "detection")


@pytest.mark.parametrize(
    ("box", "expected"),
    [
        ([0, 0, 10, 10], [0.0, 0.0, 10.0, 10.0]),
        ([-1, -1, 11, 11], [0.0, 0.0, 10.0, 10.0]),
        ([25, 0, 6, 5], [25.0, 0.0, 5.0, 5.0]),
        ([25, 0, 6.5, 5], "box_outside_image"),
        ([-1.5, 0, 5, 5], "invalid_coordinates"),
        ([30, 0, 0.5, 5], "zero_size_box"),
        ([30.5, 0, 0.5, 5], "zero_size_box"),
        ([0, 0, 0, 5], "zero_size_box"),
        ([0, 0, math.nan, 5], "invalid_coordinates"),
    ],
)
def test_check_box_tolerance_is_one_pixel(box: list[float], expected: list[float] | str) -> None:
    clipped, problem = check_box([float(v) for v in box], 30, 20)
    if isinstance(expected, str):
        assert clipped is None and problem is not None and problem[0] == expected
    else:
        assert problem is None and clipped == expected


def test_fast_and_general_parse_give_the_same_entries(tmp_path: Path) -> None:
    """msgspec's typed decode (well-formed files) and json's path (anything else) read the same entries alike."""
    from components.ingest import coco

    doc = {
        "info": {"year": 2017, "contributor": "x"},
        "licenses": [{"id": 1, "name": "CC"}],
        "images": [
            {"id": 1, "file_name": "a.jpg", "width": 640, "height": 480, "license": 1, "coco_url": "http://x/a.jpg"},
            {"id": "b", "file_name": "dir/b.png", "category_id": 3},
            {"file_name": "no-id.jpg"},
            {"id": None, "file_name": 7, "width": "wide"},
        ],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 2,
                "bbox": [1, 2.5, 3, 4],
                "area": 12,
                "iscrowd": 0,
                "segmentation": [[1, 2, 3, 4, 5, 6]],
            },
            {"id": 2, "image_id": 1, "category_id": 2, "iscrowd": 1, "segmentation": {"size": [480, 640], "counts": "abc"}},
            {"image_id": "b", "category_id": "3", "bbox": "nope", "extra": {"deep": [1, [2, [3]]]}},
            {"id": 4, "category_id": 1, "bbox": None, "segmentation": []},
            {"id": "ünï", "image_id": 1, "category_id": 2, "bbox": [0, 0, 1e300, -0.0], "area": True},
        ],
        "categories": [{"id": 2, "name": "cat"}, {"id": 3, "name": "dog", "supercategory": "animal"}],
    }
    src = write_json(tmp_path / "c.json", doc)
    fast, general = coco._load(src), coco._load_general(src)
    assert fast == general
    assert fast.images[2].id is msgspec.UNSET and fast.images[3].id is None and fast.annotations[3].image_id is msgspec.UNSET
    (tmp_path / "bom.json").write_bytes(b"\xef\xbb\xbf" + src.read_bytes())
    assert coco._load(tmp_path / "bom.json") == fast


def test_entries_that_are_not_objects_are_quarantined_by_index(tmp_path: Path) -> None:
    """A file msgspec's typed decode refuses (an entry that is not an object) is read whole by the general path."""
    write_image(tmp_path / "a.jpg", 32, 32)
    imgs = [{"id": 1, "file_name": "a.jpg"}, 5, None]
    anns = [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 8, 8]}, [1, 2], "x"]
    src = write_json(tmp_path / "c.json", {"images": imgs, "annotations": anns, "categories": [{"id": 1, "name": "cat"}]})
    res = read_source(data_spec(src), "detection")
    assert [len(r.objects) for r in res.manifest.images] == [1]
    reasons = [i.reason for i in res.quarantine.items]
    assert (
        "images[1]: an image needs an 'id' and a 'file_name'" in reasons
        and "images[2]: an image needs an 'id' and a 'file_name'" in reasons
    )
    assert "annotations[1]: an annotation needs an 'image_id'" in reasons and "annotations[2]: an annotation needs an 'image_id'" in reasons
    assert res.quarantine.total == 3


@pytest.mark.parametrize(
    ("polygon", "expected"),
    [
        ([1.5, 2.0, 8.0, 2.0, 8.0, 9.5], [1.5, 2.0, 8.0, 2.0, 8.0, 9.5]),
        ([1, 2, 8, 2, 8, 9], [1.0, 2.0, 8.0, 2.0, 8.0, 9.0]),
        ([1e308, 1e308, 1e308, 1.0, 1.0, 1e308], [1e308, 1e308, 1e308, 1.0, 1.0, 1e308]),  # finite values, an overflowing sum
        ([1.0, 2.0, math.nan, 2.0, 8.0, 9.0], "invalid_mask"),
        ([1.0, 2.0, math.inf, 2.0, -math.inf, 9.0], "invalid_mask"),
        ([1.0, 2.0, True, 2.0, 8.0, 9.0], "invalid_mask"),
        ([1.0, 2.0, 3.0, 4.0], "invalid_mask"),
    ],
)
def test_polygon_values_are_finite_floats(polygon: list[object], expected: list[float] | str) -> None:
    from components.ingest.core import _check_segmentation, _Rejected

    if isinstance(expected, str):
        with pytest.raises(_Rejected) as err:
            _check_segmentation([polygon], 64, 64)
        assert err.value.kind == expected
        return
    polys, area, extent = _check_segmentation([polygon], 64, 64)
    assert polys == [expected] and all(type(v) is float for v in polys[0])
    assert area is not None and extent is not None


def test_reader_threads_give_the_same_manifest_and_quarantine_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Files slow to read go to reader threads (forced here); records and quarantine items keep entry order."""
    import components.ingest.core as core

    imgs, anns = [], []
    for i in range(23):
        name = f"im{i:02d}.jpg"
        if i % 5 == 1:
            (tmp_path / name).write_bytes(b"not an image")
        elif i % 7 != 3:  # i % 7 == 3: listed, never written (missing)
            write_image(tmp_path / name, 24 + i, 20, seed=i)
        imgs.append({"id": i, "file_name": name})
        anns.append({"id": i, "image_id": i, "category_id": 1, "bbox": [1, 1, 10, 10 + i]})  # tall boxes fall outside
    imgs.append({"id": 4, "file_name": "im04.jpg"})  # a duplicate id, refused before any file is read
    src = write_json(tmp_path / "c.json", {"images": imgs, "annotations": anns, "categories": [{"id": 1, "name": "cat"}]})

    one_by_one = read_source(data_spec(src), "detection")
    monkeypatch.setattr(core, "SLOW_READ_S", -1.0)
    monkeypatch.setattr(core, "_CHUNK", 3)
    threaded = read_source(data_spec(src), "detection")

    assert threaded.manifest.model_dump() == one_by_one.manifest.model_dump()
    assert [(i.file, i.kind, i.reason) for i in threaded.quarantine.items] == [
        (i.file, i.kind, i.reason) for i in one_by_one.quarantine.items
    ]
    kinds = {i.kind for i in threaded.quarantine.items}
    assert {"unreadable_image", "missing_file", "duplicate_image_id", "box_outside_image"} <= kinds
    assert len(threaded.manifest) > 5 and threaded.quarantine.total == 24

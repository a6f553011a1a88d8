from __future__ import annotations

import os

import numpy as np
import pytest

from components.core.errors import AnnotationError, QuarantineLimitError
from components.core.io import atomic_path, atomic_write_json, read_json
from components.core.labelmap import LabelMap
from components.core.masks import mask_to_bbox, polygons_to_mask, rle_decode, rle_encode
from components.core.quarantine import QuarantineReport


def test_label_map_ids_never_renumber(tmp_path) -> None:
    v1 = LabelMap.from_names(["cat", "dog"])
    v2 = v1.extended(["bird", "dog", "ant"])
    assert v2.version == 2
    assert v2.classes == {1: "cat", 2: "dog", 3: "bird", 4: "ant"}
    assert v2.extended(["cat"]) is v2  # nothing new: same version
    v2.save(tmp_path / "lm.json")
    assert LabelMap.load(tmp_path / "lm.json") == v2
    assert v2.dense_index() == {1: 0, 2: 1, 3: 2, 4: 3}
    with pytest.raises(AnnotationError, match="label map file not found"):
        LabelMap.load(tmp_path / "missing.json")
    with pytest.raises(ValueError):
        LabelMap(classes={1: "a", 2: "a"})


def test_atomic_write_leaves_nothing_on_failure(tmp_path) -> None:
    target = tmp_path / "out.json"
    atomic_write_json(target, {"a": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert read_json(target) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # readable like any file, not mkstemp's 0600


def test_rle_round_trip_and_compressed_form() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        mask = rng.random((17, 23)) > 0.6
        for compress in (True, False):
            assert np.array_equal(rle_decode(rle_encode(mask, compress=compress)), mask)
    full = np.ones((4, 5), bool)
    assert np.array_equal(rle_decode(rle_encode(full)), full)
    with pytest.raises(ValueError, match="add up"):
        rle_decode({"size": [2, 2], "counts": [1, 1]})


def test_rle_matches_pycocotools() -> None:
    from pycocotools import mask as cmask

    rng = np.random.default_rng(1)
    mask = rng.random((31, 19)) > 0.5
    ours = rle_encode(mask)
    theirs = cmask.encode(np.asfortranarray(mask.astype(np.uint8)))
    assert ours["counts"] == theirs["counts"].decode("ascii")
    assert np.array_equal(rle_decode({"size": theirs["size"], "counts": theirs["counts"].decode()}), mask)


def test_polygon_mask_and_bbox() -> None:
    m = polygons_to_mask([[2, 2, 9, 2, 9, 6, 2, 6]], 10, 12)
    assert mask_to_bbox(m) == [2.0, 2.0, 8.0, 5.0]


def test_quarantine_limit_after_report_written(tmp_path) -> None:
    q = QuarantineReport(stage="ingest", total=10)
    q.add("a.jpg", "missing_file", "image file not found", image_id="a")
    q.add("b.jpg", "box_outside_image", "box outside", image_id="b", annotation_id="7")
    path = q.write(tmp_path)
    assert QuarantineReport.load(tmp_path) == q
    assert "missing_file,a.jpg" in (tmp_path / "quarantine.csv").read_text()
    assert q.rejected_images == 1
    q.check_limit(0.1, None, str(path))
    q.add("c.jpg", "unreadable", "x", image_id="c")
    with pytest.raises(QuarantineLimitError, match="2 of 10 items quarantined"):
        q.check_limit(0.1, None, str(path))
    with pytest.raises(QuarantineLimitError):
        q.check_limit(None, 1, str(path))

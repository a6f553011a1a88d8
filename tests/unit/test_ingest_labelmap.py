"""Label maps across dataset versions: stable ids, appended classes, fixed label map files."""

from __future__ import annotations

from pathlib import Path

from ingest_testdata import data_spec, write_image, write_json

from components.core.labelmap import LabelMap
from components.ingest.core import read_source


def _coco(root: Path, name: str, categories: list[str], objects: list[str]) -> Path:
    """One 32x32 image per object, each with one box of the named class."""
    cats = [{"id": i + 1, "name": n} for i, n in enumerate(categories)]
    ids = {n: i + 1 for i, n in enumerate(categories)}
    images, anns = [], []
    for k, cls in enumerate(objects):
        write_image(root / f"{name}_{k}.jpg", 32, 32, seed=k)
        images.append({"id": k, "file_name": f"{name}_{k}.jpg"})
        anns.append({"id": k, "image_id": k, "category_id": ids.get(cls, 99), "bbox": [1, 1, 8, 8]})
    return write_json(root / f"{name}.json", {"images": images, "annotations": anns, "categories": cats})


def test_ids_stay_stable_when_classes_are_added(tmp_path: Path) -> None:
    v1 = read_source(data_spec(_coco(tmp_path, "v1", ["cat", "dog"], ["cat", "dog"])), "detection").label_map
    assert (v1.classes, v1.version) == ({1: "cat", 2: "dog"}, 1)
    # the next version lists categories in another order and adds one
    res = read_source(data_spec(_coco(tmp_path, "v2", ["bird", "dog", "cat"], ["dog", "bird", "cat"])), "detection", previous=v1)
    v2 = res.label_map
    assert (v2.classes, v2.version) == ({1: "cat", 2: "dog", 3: "bird"}, 2)
    assert [r.objects[0].class_id for r in res.manifest.images] == [2, 3, 1]
    assert res.manifest.label_map == v2
    # nothing new: same map, same version
    v3 = read_source(data_spec(_coco(tmp_path, "v3", ["dog"], ["dog"])), "detection", previous=v2).label_map
    assert v3 == v2


def test_without_previous_ids_follow_the_source(tmp_path: Path) -> None:
    lm = read_source(data_spec(_coco(tmp_path, "v2", ["bird", "dog", "cat"], ["dog"])), "detection").label_map
    assert (lm.classes, lm.version) == ({1: "bird", 2: "dog", 3: "cat"}, 1)


def test_fixed_label_map_file_quarantines_unknown_classes(tmp_path: Path) -> None:
    fixed = LabelMap(classes={5: "dog", 9: "cat"}, version=4)
    fixed.save(tmp_path / "labels.json")
    src = _coco(tmp_path, "d", ["cat", "dog", "horse"], ["cat", "horse", "dog"])
    res = read_source(data_spec(src, label_map=tmp_path / "labels.json"), "detection", previous=LabelMap.from_names(["cat", "dog"]))
    assert res.label_map == fixed
    assert [[o.class_id for o in r.objects] for r in res.manifest.images] == [[9], [], [5]]
    [item] = res.quarantine.items
    assert (item.kind, item.image_id, item.annotation_id) == ("unknown_class", "1", "1")
    assert "horse" in item.reason
    assert res.quarantine.rejected_images == 0


def test_fixed_label_map_from_plain_list(tmp_path: Path) -> None:
    write_json(tmp_path / "labels.json", ["dog", "cat"])
    write_image(tmp_path / "cat" / "a.jpg", 32, 32)
    write_image(tmp_path / "fox" / "b.jpg", 32, 32, seed=1)
    res = read_source(data_spec(tmp_path, format="folders", label_map=tmp_path / "labels.json"), "classification")
    assert res.label_map.classes == {1: "dog", 2: "cat"}
    assert [(r.image_id, r.class_id) for r in res.manifest.images] == [("cat/a.jpg", 2)]
    assert [(i.kind, i.image_id) for i in res.quarantine.items] == [("unknown_class", "fox/b.jpg")]
    assert res.quarantine.rejected_images == 1

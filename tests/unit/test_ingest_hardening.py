"""Ingest of outside data: non-UTF-8 names, format detection, deep JSON, YOLO split overlap, EXIF frames,
outputs inside the dataset, links and YOLO roots leaving the dataset, one class-order rule."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from ingest_testdata import data_spec, write_image, write_json
from PIL import Image

from components.core.errors import AnnotationError
from components.core.examples import iter_records, load_index
from components.core.spec import TransformSpec, load_spec
from components.core.step import StepContext
from components.ingest.core import read_source, run
from components.transform.core import write_examples

tf = pytest.importorskip("tensorflow")

BAD = os.fsdecode(b"caf\xe9")  # a Latin-1 name: not UTF-8, so Python holds it with a surrogate escape


def _voc_xml(filename: str, objects: list[tuple[str, tuple[int, int, int, int]]], size: tuple[int, int] | None = None) -> str:
    objs = "".join(
        f"<object><name>{n}</name><bndbox><xmin>{a}</xmin><ymin>{b}</ymin><xmax>{c}</xmax><ymax>{d}</ymax></bndbox></object>"
        for n, (a, b, c, d) in objects
    )
    sz = f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>" if size else ""
    return f"<annotation><filename>{filename}</filename>{sz}{objs}</annotation>"


# -- 1. non-UTF-8 file names ------------------------------------------------------------------------


def _shards(examples_dir: Path) -> list[Path]:
    index = load_index(examples_dir)
    return [examples_dir / s.file for split in index.splits.values() for s in split.shards]


def _feature(record: bytes, key: str) -> bytes:
    ex = tf.train.Example.FromString(record)
    return ex.features.feature[key].bytes_list.value[0]


@pytest.mark.parametrize("fmt", ["voc", "yolo", "folders", "coco"])
def test_non_utf8_file_names_are_read_and_shown_escaped(tmp_path: Path, fmt: str) -> None:
    root = tmp_path / "ds"
    task = "classification" if fmt == "folders" else "detection"
    if fmt == "voc":
        write_image(root / f"{BAD}.jpg", 32, 32)
        write_image(root / "ok.jpg", 32, 32, seed=1)
        (root / "ok.xml").write_text(_voc_xml("ok.jpg", [("cat", (1, 1, 10, 10))]))
        (root / f"{BAD}.xml").write_bytes(_voc_xml("", [("cat", (1, 1, 10, 10))]).encode())
        (root / f"miss-{BAD}.xml").write_bytes(_voc_xml("", [("cat", (1, 1, 10, 10))]).encode())
        src = root
    elif fmt == "yolo":
        write_image(root / "images" / f"{BAD}.jpg", 32, 32)
        (root / "labels").mkdir(parents=True)
        (root / "labels" / f"{BAD}.txt").write_text("0 0.5 0.5 0.5 0.5\n")
        src = root / "data.yaml"
        src.write_text(yaml.safe_dump({"train": "images", "names": ["cat"]}))
    elif fmt == "folders":
        write_image(root / "cat" / f"{BAD}.jpg", 32, 32)
        (root / "cat" / f"{BAD}-broken.jpg").write_bytes(b"not an image")
        write_image(root / BAD / "x.jpg", 32, 32, seed=2)
        src = root
    else:
        write_image(root / f"{BAD}.jpg", 32, 32)
        src = root / "ann.json"
        # json.dumps writes the surrogate as \udce9, as a tool that kept the raw bytes would
        src.write_text(
            json.dumps(
                {
                    "images": [{"id": 1, "file_name": f"{BAD}.jpg"}, {"id": 2, "file_name": f"{BAD}-missing.jpg"}],
                    "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 8, 8]}],
                    "categories": [{"id": 1, "name": "cat"}],
                }
            )
        )
    res = read_source(data_spec(src, format=fmt), task)
    shown = "caf\\xe9"
    assert any(shown in r.path for r in res.manifest.images), [r.path for r in res.manifest.images]
    for r in res.manifest.images:
        assert r.path.isprintable() and r.image_id.isprintable() and r.path.encode("utf-8")
        assert res.manifest.image_path(r).is_file()  # the exact bytes still open the file
    assert all(n.encode("utf-8") for n in res.label_map.names)
    # the reports and the manifest are written without a crash, as UTF-8
    qdir = res.quarantine.write(tmp_path / "q").parent
    (qdir / "quarantine.csv").read_text(encoding="utf-8")
    if fmt in ("folders", "coco", "voc"):
        assert len(res.quarantine) >= 1 and all(i.file.isprintable() and i.reason.isprintable() for i in res.quarantine.items)
    saved = res.manifest.save(tmp_path / "m" / "manifest.json")
    saved.read_text(encoding="utf-8")
    # and into TFRecords, with the escaped name as the record's filename
    out = write_examples(res.manifest, tmp_path / "ex", TransformSpec.model_validate({"num_workers": 1}))
    assert len(out.quarantine) == 0
    names = []
    for shard in _shards(tmp_path / "ex"):
        for rec in iter_records(shard):
            names.append(_feature(rec, "image/filename").decode("utf-8"))
    assert any(shown in n for n in names)


# -- 2. the format is detected after the source is resolved ---------------------------------------


def test_relative_voc_source_is_detected_from_the_spec_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    coins = tmp_path / "coins"
    write_image(coins / "voc" / "a.jpg", 32, 32)
    (coins / "voc" / "a.xml").write_text(_voc_xml("a.jpg", [("coin", (1, 1, 10, 10))]))
    (coins / "spec.yaml").write_text("name: coins\ntask: detection\ndata: {source: voc}\n")
    monkeypatch.chdir(tmp_path)  # the parent folder, where ./voc does not exist
    spec = load_spec("coins/spec.yaml")
    assert spec.data.format == "voc" and spec.data.source == str(coins / "voc")
    explicit = tmp_path / "explicit.yaml"
    explicit.write_text(f"name: coins\ntask: detection\ndata: {{source: {coins / 'voc'}, format: folders}}\n")
    assert load_spec(explicit).data.format == "folders"  # a stated format is kept


# -- 3. deeply nested JSON ------------------------------------------------------------------------


def test_deeply_nested_json_is_an_annotation_error_naming_the_file(tmp_path: Path) -> None:
    deep = "[" * 200_000 + "]" * 200_000
    coco = tmp_path / "deep.json"
    coco.write_text('{"images": [], "x": ' + deep + "}")
    with pytest.raises(AnnotationError, match=r"deep\.json.*nested too deeply"):
        read_source(data_spec(coco), "detection")
    write_image(tmp_path / "a.jpg", 16, 16)
    gt = tmp_path / "deep.manifest"
    good = {"source-ref": "a.jpg", "c": 0, "c-metadata": {"class-name": "cat"}}
    gt.write_text(json.dumps(good) + "\n" + '{"source-ref": "a.jpg", "c": ' + deep + "}\n")
    res = read_source(data_spec(gt), "classification")
    assert len(res.manifest) == 1
    assert [(i.file, i.kind) for i in res.quarantine.items] == [(f"{gt}:2", "invalid_annotation")]
    assert "nested too deeply" in res.quarantine.items[0].reason


# -- 4. YOLO: one folder listed by train and val ----------------------------------------------------


def test_yolo_image_listed_by_two_splits_is_one_image(tmp_path: Path) -> None:
    root = tmp_path / "coco128"
    for i in range(4):
        write_image(root / "images" / "train2017" / f"{i}.jpg", 32, 32, seed=i)
    (root / "labels" / "train2017").mkdir(parents=True)
    (root / "labels" / "train2017" / "0.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    src = root / "data.yaml"
    src.write_text(yaml.safe_dump({"path": ".", "train": "images/train2017", "val": "images/train2017", "names": ["person"]}))
    res = read_source(data_spec(src), "detection")
    assert len(res.quarantine) == 0
    assert len(res.manifest) == 4
    first = next(r for r in res.manifest.images if r.path.endswith("0.jpg"))
    assert len(first.objects) == 1
    # listed by both: the split is left to transform's content-hash split, and the listing is kept
    assert {r.split for r in res.manifest.images} == {None}
    assert first.source["listed_in"] == ["train", "validation"]


# -- 5. EXIF rotation: the declared size says which pixels were annotated ---------------------------


def _rotated_jpeg(path: Path, width: int, height: int, orientation: int) -> Path:
    exif = Image.Exif()
    exif[0x0112] = orientation
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), (200, 30, 30)).save(path, exif=exif.tobytes(), quality=95)
    return path


def test_exif_frame_follows_the_declared_size_and_ambiguity_is_quarantined(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    _rotated_jpeg(root / "stored.jpg", 40, 20, 6)  # stored 40x20, displayed 20x40
    _rotated_jpeg(root / "upright.jpg", 40, 20, 6)
    _rotated_jpeg(root / "square.jpg", 30, 30, 6)
    _rotated_jpeg(root / "flipped.jpg", 30, 20, 3)
    box = [2.0, 4.0, 6.0, 8.0]
    doc = {
        "images": [
            {"id": 1, "file_name": "stored.jpg", "width": 40, "height": 20},
            {"id": 2, "file_name": "upright.jpg", "width": 20, "height": 40},  # drawn on the displayed pixels
            {"id": 3, "file_name": "square.jpg", "width": 30, "height": 30},
            {"id": 4, "file_name": "flipped.jpg", "width": 30, "height": 20},
        ],
        "annotations": [{"id": i, "image_id": i, "category_id": 1, "bbox": box} for i in (1, 2, 3, 4)],
        "categories": [{"id": 1, "name": "logo"}],
    }
    res = read_source(data_spec(write_json(root / "ann.json", doc)), "detection")
    by_id = {r.image_id: r for r in res.manifest.images}
    assert sorted(by_id) == ["1", "2"]
    assert (by_id["1"].width, by_id["1"].height, by_id["1"].source["annotation_frame"]) == (40, 20, "stored")
    assert (by_id["2"].width, by_id["2"].height, by_id["2"].source["annotation_frame"]) == (20, 40, "displayed")
    rejected = {i.image_id: (i.kind, i.reason) for i in res.quarantine.items}
    assert set(rejected) == {"3", "4"} and {k for k, _ in rejected.values()} == {"ambiguous_orientation"}
    assert "EXIF orientation 6" in rejected["3"][1] and "declared size" in rejected["3"][1]

    write_examples(res.manifest, tmp_path / "ex", TransformSpec.model_validate({"num_workers": 1}))
    boxes = {}
    for shard in _shards(tmp_path / "ex"):
        for rec in iter_records(shard):
            ex = tf.train.Example.FromString(rec)
            f = ex.features.feature
            boxes[f["image/source_id"].bytes_list.value[0].decode()] = [
                f[k].float_list.value[0]
                for k in ("image/object/bbox/xmin", "image/object/bbox/ymin", "image/object/bbox/xmax", "image/object/bbox/ymax")
            ]
    # the upright annotation stays where it was drawn: [2, 4, 8, 12] on the 20x40 displayed image
    assert boxes["2"] == pytest.approx([2 / 20, 4 / 40, 8 / 20, 12 / 40], abs=1e-6)
    # the stored-pixel annotation is rotated with the pixels (orientation 6: x' = 1 - y, y' = x)
    assert boxes["1"] == pytest.approx([1 - 12 / 20, 2 / 40, 1 - 4 / 20, 8 / 40], abs=1e-6)


def test_yolo_labels_are_on_the_displayed_pixels(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    _rotated_jpeg(root / "images" / "r.jpg", 40, 20, 6)
    (root / "labels").mkdir(parents=True)
    (root / "labels" / "r.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    src = root / "data.yaml"
    src.write_text(yaml.safe_dump({"train": "images", "names": ["logo"]}))
    res = read_source(data_spec(src), "detection")
    (r,) = res.manifest.images
    assert (r.width, r.height, r.source["annotation_frame"]) == (20, 40, "displayed")
    assert r.objects[0].bbox == [5.0, 10.0, 10.0, 20.0]


# -- 6. outputs inside a class-folder dataset ------------------------------------------------------


def test_outputs_under_the_dataset_root_are_never_inputs(tmp_path: Path) -> None:
    root = tmp_path / "pets"
    write_image(root / "cat" / "a.jpg", 32, 32)
    write_image(root / "dog" / "b.jpg", 32, 32, seed=1)
    (root / "spec.yaml").write_text("name: pets\ntask: classification\ndata: {source: .}\n")
    spec = load_spec(root / "spec.yaml")
    assert Path(spec.runtime.root) == root / "runs"
    for run_id in ("r1", "r2"):
        out = {k: root / "runs" / run_id / k for k in ("manifest", "label_map", "quarantine")}
        ctx = StepContext(spec=spec, run_id=run_id, component="ingest")
        result = run(ctx, out["manifest"], out["label_map"], out["quarantine"], {})
        write_image(root / "runs" / run_id / "report" / "thumb.png", 8, 8)  # a run's image outputs
        write_image(root / "registry" / "pets" / "1" / "x.jpg", 8, 8)
        assert result.label_map.names == ["cat", "dog"], run_id
        assert len(result.quarantine) == 0 and len(result.manifest) == 2
    assert (root / "runs" / "mlmd.sqlite").is_file()


# -- 7 and issue 20.4: links and YOLO roots that leave the dataset --------------------------------


def test_symlinks_leaving_the_root_are_quarantined_unless_allowed(tmp_path: Path) -> None:
    secret = write_image(tmp_path / "elsewhere" / "secret.jpg", 32, 32)
    root = tmp_path / "ds"
    write_image(root / "cat" / "a.jpg", 32, 32, seed=1)
    (root / "cat" / "link.jpg").symlink_to(secret)
    (root / "dog").symlink_to(secret.parent, target_is_directory=True)
    write_image(root / "inside" / "c.jpg", 32, 32, seed=2)
    (root / "cat" / "inner.jpg").symlink_to(root / "inside" / "c.jpg")  # a link inside the root is fine
    res = read_source(data_spec(root, format="folders"), "classification")
    assert sorted(r.path for r in res.manifest.images) == ["cat/a.jpg", "cat/inner.jpg", "inside/c.jpg"]
    escaped = sorted(i.file for i in res.quarantine.items if i.kind == "path_escapes_root")
    assert escaped == sorted([str(root / "cat" / "link.jpg"), str(root / "dog" / "secret.jpg")])
    assert all("allow_outside_root" in i.reason for i in res.quarantine.items if i.kind == "path_escapes_root")

    shared = read_source(data_spec(root, format="folders", allow_outside_root=True), "classification")
    assert len(shared.manifest) == 5 and len(shared.quarantine) == 0


def test_coco_symlink_leaving_the_root_is_quarantined(tmp_path: Path) -> None:
    secret = write_image(tmp_path / "home" / "id.png", 16, 16)
    root = tmp_path / "ds"
    write_image(root / "a.png", 16, 16, seed=1)
    (root / "b.png").symlink_to(secret)
    doc = {"images": [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "b.png"}], "annotations": [], "categories": []}
    res = read_source(data_spec(write_json(root / "ann.json", doc)), "detection")
    assert [r.image_id for r in res.manifest.images] == ["1"]
    assert [(i.image_id, i.kind) for i in res.quarantine.items] == [("2", "path_escapes_root")]


def test_yolo_path_and_absolute_entries_obey_the_root_rule(tmp_path: Path) -> None:
    outside = tmp_path / "shared"
    write_image(outside / "images" / "x.jpg", 32, 32)
    write_image(outside / "images" / "y.jpg", 32, 32, seed=1)
    ds = tmp_path / "ds"
    write_image(ds / "images" / "a.jpg", 32, 32, seed=2)
    src = ds / "data.yaml"
    # path: points outside the data.yaml's folder
    src.write_text(yaml.safe_dump({"path": str(outside), "train": "images", "names": ["car"]}))
    res = read_source(data_spec(src), "detection")
    assert len(res.manifest) == 0
    assert {i.kind for i in res.quarantine.items} == {"path_escapes_root"} and len(res.quarantine) == 2
    assert "allow_outside_root" in res.quarantine.items[0].reason
    allowed = read_source(data_spec(src, allow_outside_root=True), "detection")
    assert len(allowed.manifest) == 2 and len(allowed.quarantine) == 0
    # absolute list entries elsewhere on the machine
    src.write_text(yaml.safe_dump({"train": ["images", str(outside / "images" / "x.jpg")], "names": ["car"]}))
    lst = ds / "list.txt"
    lst.write_text(f"{outside / 'images' / 'y.jpg'}\n")
    src.write_text(yaml.safe_dump({"train": "images", "val": "list.txt", "names": ["car"]}))
    res = read_source(data_spec(src), "detection")
    assert [r.path for r in res.manifest.images] == ["images/a.jpg"]
    assert [i.kind for i in res.quarantine.items] == ["path_escapes_root"]


# -- 8. one class-order rule for every format -------------------------------------------------------


def _objects_in(fmt: str, root: Path, order: list[str]) -> Any:
    write_image(root / "a.jpg", 32, 32)
    write_image(root / "b.jpg", 32, 32, seed=1)
    if fmt == "voc":
        (root / "a.xml").write_text(_voc_xml("a.jpg", [(order[0], (1, 1, 5, 5))]))
        (root / "b.xml").write_text(_voc_xml("b.jpg", [(order[1], (1, 1, 5, 5)), (order[2], (2, 2, 6, 6))]))
        return data_spec(root)
    cats = [{"id": i + 1, "name": n} for i, n in enumerate(order)]
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5]},
        {"id": 2, "image_id": 2, "category_id": 2, "bbox": [0, 0, 5, 5]},
        {"id": 3, "image_id": 2, "category_id": 3, "bbox": [1, 1, 5, 5]},
    ]
    imgs = [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "b.jpg"}]
    return data_spec(write_json(root / "ann.json", {"images": imgs, "annotations": anns, "categories": cats}))


def test_label_ids_follow_first_mention_in_every_format(tmp_path: Path) -> None:
    order = ["zebra", "apple", "mango"]
    voc = read_source(_objects_in("voc", tmp_path / "voc", order), "detection").label_map
    coco = read_source(_objects_in("coco", tmp_path / "coco", order), "detection").label_map
    assert voc.classes == coco.classes == {1: "zebra", 2: "apple", 3: "mango"}

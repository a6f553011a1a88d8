"""Tests of the synthetic data generator (components/synth) on tiny generated datasets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from pycocotools.coco import COCO
from pydantic import ValidationError
from scipy.ndimage import binary_dilation

from components.core.errors import DataError
from components.core.labelmap import LabelMap
from components.core.masks import mask_to_bbox, rle_decode
from components.synth import SynthConfig, available_backgrounds, available_classes, export_voc, export_yolo, generate

SMALL = {"num_images": 8, "image_size": (96, 96)}


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _coco(root: Path) -> dict:
    return json.loads((root / "annotations.json").read_text())


@pytest.fixture(scope="module")
def detection(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "det"
    cfg = SynthConfig(num_images=10, seed=3, crowd_fraction=0.3, empty_fraction=0.2, classes="circle,square,triangle,star,ring,letter_A")
    generate(cfg, out)
    return out


def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path: Path) -> None:
    a = generate(SynthConfig(seed=7, crowd_fraction=0.25, **SMALL), tmp_path / "a")
    generate(SynthConfig(seed=7, crowd_fraction=0.25, **SMALL), tmp_path / "b")
    generate(SynthConfig(seed=8, crowd_fraction=0.25, **SMALL), tmp_path / "c")
    fa, fb, fc = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert a.num_images == 8 and len([k for k in fa if k.startswith("images/")]) == 8
    assert fa == fb
    assert fa["annotations.json"] != fc["annotations.json"]
    assert all(fa[k] != fc[k] for k in fa if k.startswith("images/"))


def test_boxes_are_tight_around_masks_and_inside_the_image(detection: Path) -> None:
    doc = _coco(detection)
    sizes = {img["id"]: (img["width"], img["height"]) for img in doc["images"]}
    assert doc["annotations"], "the fixture must have objects"
    for ann in doc["annotations"]:
        w, h = sizes[ann["image_id"]]
        mask = rle_decode(ann["segmentation"])
        assert mask.shape == (h, w)
        assert np.allclose(mask_to_bbox(mask), ann["bbox"], atol=1.0)
        assert ann["area"] == float(mask.sum()) > 0
        x, y, bw, bh = ann["bbox"]
        assert x >= 0 and y >= 0 and bw > 0 and bh > 0 and x + bw <= w and y + bh <= h


def test_ids_start_at_one_and_fractions_are_exact(detection: Path) -> None:
    doc = _coco(detection)
    assert [i["id"] for i in doc["images"]] == list(range(1, 11))
    assert [a["id"] for a in doc["annotations"]] == list(range(1, len(doc["annotations"]) + 1))
    assert [c["id"] for c in doc["categories"]] == list(range(1, 7))
    with_anns = {a["image_id"] for a in doc["annotations"]}
    assert len(doc["images"]) - len(with_anns) == 2  # empty_fraction 0.2 of 10
    crowd_images = {a["image_id"] for a in doc["annotations"] if a["iscrowd"]}
    assert len(crowd_images) == 3  # crowd_fraction 0.3 of 10
    assert LabelMap.load(detection / "label_map.json").names == ["circle", "square", "triangle", "star", "ring", "letter_A"]


def test_pycocotools_reads_the_file_and_agrees_with_our_masks(detection: Path) -> None:
    coco = COCO(str(detection / "annotations.json"))
    assert sorted(coco.getImgIds()) == list(range(1, 11))
    anns = coco.loadAnns(coco.getAnnIds())
    assert any(a["iscrowd"] for a in anns) and any(not a["iscrowd"] for a in anns)
    for ann in anns:
        theirs = coco.annToMask(ann).astype(bool)
        ours = rle_decode(ann["segmentation"])
        assert np.array_equal(theirs, ours)
    img = coco.loadImgs([1])[0]
    assert Image.open(detection / img["file_name"]).size == (img["width"], img["height"])


def test_objects_change_the_pixels_inside_their_masks(tmp_path: Path) -> None:
    # The same seed with and without objects shares the background crop, so the mask marks what was drawn.
    with_objects = generate(SynthConfig(seed=5, **SMALL), tmp_path / "with")
    without = generate(SynthConfig(seed=5, empty_fraction=1.0, **SMALL), tmp_path / "without")
    assert with_objects.num_objects > 0 and without.num_empty == 8
    doc = _coco(tmp_path / "with")
    for img in doc["images"]:
        union = np.zeros((img["height"], img["width"]), dtype=bool)
        for ann in (a for a in doc["annotations"] if a["image_id"] == img["id"]):
            union |= rle_decode(ann["segmentation"])
        a = np.asarray(Image.open(tmp_path / "with" / img["file_name"]), dtype=np.float32)
        b = np.asarray(Image.open(tmp_path / "without" / img["file_name"]), dtype=np.float32)
        diff = np.abs(a - b).sum(axis=2)
        # Away from the anti-aliased edges only JPEG noise differs.
        far = ~binary_dilation(union, iterations=2)
        assert diff[union].mean() > 60
        assert diff[far].mean() < 8


def test_segmentation_masks_match_the_instance_masks(tmp_path: Path) -> None:
    res = generate(SynthConfig(task="segmentation", seed=2, crowd_fraction=0.25, **SMALL), tmp_path / "seg")
    assert res.masks_dir == tmp_path / "seg" / "masks"
    doc = _coco(tmp_path / "seg")
    pngs = sorted(p.name for p in (tmp_path / "seg" / "masks").iterdir())
    assert pngs == [Path(i["file_name"]).with_suffix(".png").name for i in doc["images"]]
    for img in doc["images"]:
        sem = np.asarray(Image.open(tmp_path / "seg" / "masks" / f"{img['id']:06d}.png"))
        assert sem.shape == (img["height"], img["width"]) and sem.dtype == np.uint8
        expected = np.zeros_like(sem)
        for ann in (a for a in doc["annotations"] if a["image_id"] == img["id"]):
            m = rle_decode(ann["segmentation"])
            assert not (expected[m] > 0).any(), "visible instance masks must not overlap"
            expected[m] = ann["category_id"]
        assert np.array_equal(sem, expected)
    ids = np.unique(np.concatenate([np.asarray(Image.open(p)).ravel() for p in (tmp_path / "seg" / "masks").iterdir()]))
    assert set(ids.tolist()) <= set(range(5)) and ids.max() > 0


def test_classification_writes_one_folder_per_class(tmp_path: Path) -> None:
    cfg = SynthConfig(task="classification", num_images=12, image_size=96, seed=1, class_weights="star=0")
    res = generate(cfg, tmp_path / "cls")
    root = tmp_path / "cls"
    assert res.annotations is None and res.images_dir == root
    dirs = sorted(p.name for p in root.iterdir() if p.is_dir())
    assert dirs == sorted(cfg.classes)
    found = {d: len(list((root / d).glob("*.jpg"))) for d in dirs}
    assert found == res.class_counts
    assert sum(found.values()) == 12 and found["star"] == 0
    assert not list(root.glob("*.jpg"))
    for f in root.glob("*/*.jpg"):
        assert Image.open(f).size == (96, 96)


def test_brightness_darkens_the_images(tmp_path: Path) -> None:
    generate(SynthConfig(seed=4, **SMALL), tmp_path / "normal")
    generate(SynthConfig(seed=4, brightness=0.5, **SMALL), tmp_path / "dark")
    for f in sorted((tmp_path / "normal" / "images").iterdir()):
        normal = np.asarray(Image.open(f), dtype=np.float64).mean()
        dark = np.asarray(Image.open(tmp_path / "dark" / "images" / f.name), dtype=np.float64).mean()
        assert dark < 0.6 * normal
    assert _coco(tmp_path / "normal")["annotations"] == _coco(tmp_path / "dark")["annotations"]


def test_noise_changes_pixels_but_not_labels(tmp_path: Path) -> None:
    generate(SynthConfig(seed=4, **SMALL), tmp_path / "clean")
    generate(SynthConfig(seed=4, noise=0.1, **SMALL), tmp_path / "noisy")
    a = np.asarray(Image.open(tmp_path / "clean" / "images" / "000001.jpg"), dtype=np.float64)
    b = np.asarray(Image.open(tmp_path / "noisy" / "images" / "000001.jpg"), dtype=np.float64)
    assert np.abs(a - b).mean() > 5
    assert _coco(tmp_path / "clean")["annotations"] == _coco(tmp_path / "noisy")["annotations"]


def test_class_weights_change_the_class_mix(tmp_path: Path) -> None:
    base = generate(SynthConfig(seed=6, num_images=16, image_size=96), tmp_path / "base")
    shifted = generate(SynthConfig(seed=6, num_images=16, image_size=96, class_weights={"circle": 20, "star": 0}), tmp_path / "shifted")
    assert base.class_counts["star"] > 0
    assert shifted.class_counts["star"] == 0
    assert shifted.class_counts["circle"] / shifted.num_objects > 0.75 > base.class_counts["circle"] / base.num_objects
    # The label map keeps every class, so ids stay comparable across shifts.
    assert [c["name"] for c in _coco(tmp_path / "shifted")["categories"]] == ["circle", "square", "triangle", "star"]


def test_config_accepts_cli_strings() -> None:
    cfg = SynthConfig.model_validate(
        {
            "image_size": "128x96",
            "objects_per_image": "2-4",
            "classes": "ring, cross ,digit_7",
            "class_weights": "ring=2.5,cross=0",
            "backgrounds": "coffee,rocket",
        }
    )
    assert cfg.image_size == (128, 96)
    assert cfg.objects_per_image == (2, 4)
    assert cfg.classes == ("ring", "cross", "digit_7")
    assert cfg.weights() == [2.5, 0.0, 1.0]
    assert cfg.backgrounds == ("coffee", "rocket")
    assert SynthConfig(image_size=64).image_size == (64, 64)


@pytest.mark.parametrize(
    "bad",
    [
        {"classes": "circle,blob"},
        {"class_weights": {"hexagon": 1.0}},
        {"class_weights": "circle=0,square=0,triangle=0,star=0"},
        {"min_object_size": 0.7, "max_object_size": 0.5},
        {"task": "classification", "empty_fraction": 0.1},
        {"crowd_fraction": 0.6, "empty_fraction": 0.6},
        {"image_size": "8x8"},
        {"backgrounds": "text"},
        {"unknown_option": 1},
    ],
)
def test_config_rejects_bad_values(bad: dict) -> None:
    with pytest.raises(ValidationError):
        SynthConfig.model_validate(bad)


def test_backgrounds_are_bundled_photographs_and_classes_listed() -> None:
    bgs = available_backgrounds()
    assert {"astronaut", "coffee", "chelsea", "rocket", "camera", "coins"} <= set(bgs)
    assert {"circle", "square", "triangle", "star", "letter_A", "digit_7"} <= set(available_classes())


def test_glyph_classes_draw_and_single_background_is_used(tmp_path: Path) -> None:
    res = generate(SynthConfig(seed=9, classes="letter_E,digit_3", backgrounds="coffee", **SMALL), tmp_path / "g")
    assert res.backgrounds == ["coffee"] and res.num_objects > 0
    assert set(res.class_counts) == {"letter_E", "digit_3"}


def test_replaces_an_earlier_dataset_but_not_other_directories(tmp_path: Path) -> None:
    out = tmp_path / "d"
    generate(SynthConfig(num_images=6, image_size=64, seed=1), out)
    generate(SynthConfig(num_images=3, image_size=64, seed=1), out)
    assert len(list((out / "images").iterdir())) == 3
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no staging directory may be left behind"
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="refusing"):
        generate(SynthConfig(num_images=2, image_size=64), other)
    assert (other / "keep.txt").read_text() == "mine" and len(list(other.iterdir())) == 1


def test_export_voc_keeps_boxes_one_based_and_marks_crowd_difficult(detection: Path, tmp_path: Path) -> None:
    import xml.etree.ElementTree as ET

    doc = _coco(detection)
    root = export_voc(detection / "annotations.json", tmp_path / "voc")
    stems = (root / "ImageSets" / "Main" / "trainval.txt").read_text().split()
    assert stems == [f"{i:06d}" for i in range(1, 11)]
    names = {c["id"]: c["name"] for c in doc["categories"]}
    for img in doc["images"]:
        stem = Path(img["file_name"]).stem
        assert (root / "JPEGImages" / f"{stem}.jpg").read_bytes() == (detection / img["file_name"]).read_bytes()
        objs = ET.parse(root / "Annotations" / f"{stem}.xml").getroot().findall("object")
        anns = [a for a in doc["annotations"] if a["image_id"] == img["id"]]
        assert len(objs) == len(anns)
        for obj, ann in zip(objs, anns, strict=True):
            x, y, w, h = ann["bbox"]
            box = obj.find("bndbox")
            assert box is not None
            got = [int(box.findtext(t) or -1) for t in ("xmin", "ymin", "xmax", "ymax")]
            assert got == [x + 1, y + 1, x + w, y + h]
            assert obj.findtext("name") == names[ann["category_id"]]
            assert obj.findtext("difficult") == str(ann["iscrowd"])


def test_export_yolo_normalises_boxes_and_skips_crowd(detection: Path, tmp_path: Path) -> None:
    doc = _coco(detection)
    data_yaml = export_yolo(detection / "annotations.json", tmp_path / "yolo")
    data = yaml.safe_load(data_yaml.read_text())
    assert data["names"] == [c["name"] for c in doc["categories"]] and data["train"] == "images"
    for img in doc["images"]:
        stem = Path(img["file_name"]).stem
        assert (tmp_path / "yolo" / "images" / f"{stem}.jpg").is_file()
        rows = [line.split() for line in (tmp_path / "yolo" / "labels" / f"{stem}.txt").read_text().splitlines()]
        anns = [a for a in doc["annotations"] if a["image_id"] == img["id"] and not a["iscrowd"]]
        assert len(rows) == len(anns)
        for row, ann in zip(rows, anns, strict=True):
            cls, cx, cy, w, h = int(row[0]), *(float(v) for v in row[1:])
            assert cls == ann["category_id"] - 1
            x0 = (cx - w / 2) * img["width"]
            y0 = (cy - h / 2) * img["height"]
            assert np.allclose([x0, y0, w * img["width"], h * img["height"]], ann["bbox"], atol=1e-3)

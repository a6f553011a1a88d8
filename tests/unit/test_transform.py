"""Transform: manifests built with the core models become TFRecords that read back field by field."""

from __future__ import annotations

import json
import os
import re
import signal
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from components.core.errors import DataError, QuarantineLimitError
from components.core.examples import iter_records, load_index, read_dataset
from components.core.images import decode_rgb
from components.core.io import sha256_bytes, sha256_file
from components.core.labelmap import LabelMap
from components.core.manifest import ImageRecord, Manifest, ObjectAnnotation
from components.core.masks import polygons_to_mask, rle_encode
from components.core.spec import PipelineSpec, TransformSpec
from components.core.step import StepContext
from components.transform import core, shards
from components.transform.core import TransformUris, jpeg_copy_size, split_for, write_examples

tf = pytest.importorskip("tensorflow")

LM = LabelMap.from_names(["cat", "dog", "cow"])
SHARD = re.compile(r"^(train|validation|test)-\d{5}-of-\d{5}\.tfrecord(\.gz)?$")


def _pixels(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (1, 1, 3))
    yy, xx = np.mgrid[0:h, 0:w]
    return ((base + np.stack([yy * 3, xx * 5, yy + xx], -1)) % 256).astype(np.uint8)


def _save(root: Path, name: str, pixels: np.ndarray | Image.Image, fmt: str, **kw) -> Path:
    im = pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels)
    path = root / name
    im.save(path, format=fmt, **kw)
    return path


def _record(root: Path, path: Path, **kw) -> ImageRecord:
    data = path.read_bytes() if path.exists() else b""
    w = h = 1
    if data:
        with Image.open(path) as im:
            w, h = im.size
    kw.setdefault("width", w)
    kw.setdefault("height", h)
    return ImageRecord(image_id=path.stem, path=str(path.relative_to(root)), sha256=sha256_bytes(data), **kw)


def _manifest(root: Path, task: str, records: list[ImageRecord]) -> Manifest:
    return Manifest(task=task, root=str(root), label_map=LM, images=records)  # type: ignore[arg-type]


def _raw_features(examples_dir: Path) -> dict[str, dict[str, Any]]:
    """source_id -> parsed tf.train.Example features, from every shard listed in the index."""
    index = load_index(examples_dir)
    out: dict[str, dict[str, Any]] = {}
    for name, split in index.splits.items():
        for shard in split.shards:
            for raw in iter_records(examples_dir / shard.file):
                f = tf.train.Example.FromString(raw).features.feature
                out[f["image/source_id"].bytes_list.value[0].decode()] = {"split": name, "f": f}
    return out


def _opts(**kw) -> TransformSpec:
    kw.setdefault("num_workers", 1)
    return TransformSpec(**kw)


def _all(examples_dir: Path, task: str, **kw) -> dict[str, dict]:
    out = {}
    for split in ("train", "validation", "test"):
        for el in read_dataset(examples_dir, split, task, **kw):  # type: ignore[arg-type]
            out[el["source_id"].numpy().decode()] = {k: v.numpy() for k, v in el.items()}
    return out


# --------------------------------------------------------------------------- round trips


def test_detection_round_trip_with_masks(tmp_path) -> None:
    root = tmp_path / "img"
    root.mkdir()
    px = _pixels(40, 60, 0)
    path = _save(root, "a.png", px, "PNG")
    rle_mask = np.zeros((40, 60), bool)
    rle_mask[5:15, 30:50] = True
    poly = [[2.0, 2.0, 20.0, 2.0, 20.0, 30.0, 2.0, 30.0]]
    objs = [
        ObjectAnnotation(class_id=1, bbox=[2, 2, 18, 28], area=500.0, segmentation=poly, annotation_id="p"),
        ObjectAnnotation(class_id=3, bbox=[30, 5, 20, 10], is_crowd=True, segmentation=rle_encode(rle_mask), annotation_id="r"),
        ObjectAnnotation(class_id=2, bbox=[50, 30, 10, 10], annotation_id="box-only"),
    ]
    m = _manifest(root, "detection", [_record(root, path, objects=objs)])
    res = write_examples(m, tmp_path / "ex", _opts())
    assert res.quarantine.items == []
    (el,) = _all(tmp_path / "ex", "detection").values()
    np.testing.assert_array_equal(el["image"], px)
    assert (el["height"], el["width"]) == (40, 60)
    assert el["filename"].decode() == "a.png" and el["sha256"].decode() == sha256_file(path)
    np.testing.assert_allclose(
        el["boxes"], [[2 / 40, 2 / 60, 30 / 40, 20 / 60], [5 / 40, 30 / 60, 15 / 40, 50 / 60], [30 / 40, 50 / 60, 1.0, 1.0]], rtol=1e-6
    )
    assert el["labels"].tolist() == [1, 3, 2]
    assert el["is_crowd"].tolist() == [False, True, False]
    np.testing.assert_allclose(el["area"], [500.0, 200.0, 100.0])
    assert el["masks"].shape == (3, 40, 60) and el["masks"].dtype == np.uint8
    np.testing.assert_array_equal(el["masks"][0], polygons_to_mask(poly, 40, 60))
    np.testing.assert_array_equal(el["masks"][1], rle_mask)
    assert el["masks"][2].sum() == 100 and el["masks"][2][30:40, 50:60].all()  # box-only object: its box
    (raw,) = _raw_features(tmp_path / "ex").values()
    f = raw["f"]
    assert f["image/object/class/text"].bytes_list.value == [b"cat", b"cow", b"dog"]
    assert f["image/format"].bytes_list.value == [b"png"]
    idx = load_index(tmp_path / "ex")
    assert sum(s.class_counts["cat"] for s in idx.splits.values()) == 1
    assert sum(s.class_counts["cow"] for s in idx.splits.values()) == 0  # crowd regions are not examples


def test_classification_round_trip(tmp_path) -> None:
    recs = []
    for i in range(6):
        path = _save(tmp_path, f"c{i}.png", _pixels(8 + i, 10, i), "PNG")
        recs.append(_record(tmp_path, path, class_id=1 + i % 3))
    res = write_examples(_manifest(tmp_path, "classification", recs), tmp_path / "ex", _opts())
    got = _all(tmp_path / "ex", "classification")
    assert sum(res.counts.values()) == 6 and len(got) == 6
    for i, r in enumerate(recs):
        el = got[r.image_id]
        assert set(el) == {"image", "height", "width", "source_id", "filename", "sha256", "label"}
        assert el["label"] == 1 + i % 3
        np.testing.assert_array_equal(el["image"], _pixels(8 + i, 10, i))
    raw = _raw_features(tmp_path / "ex")
    assert raw["c4"]["f"]["image/class/text"].bytes_list.value == [b"dog"]


def test_segmentation_round_trip_and_resize(tmp_path) -> None:
    path = _save(tmp_path, "s.png", _pixels(20, 40, 3), "PNG")
    big = [[0.0, 0.0, 30.0, 0.0, 30.0, 20.0, 0.0, 20.0]]
    small = [[10.0, 5.0, 20.0, 5.0, 20.0, 15.0, 10.0, 15.0]]
    objs = [
        ObjectAnnotation(class_id=2, bbox=[10, 5, 10, 10], segmentation=small),
        ObjectAnnotation(class_id=3, bbox=[0, 0, 30, 20], segmentation=big),
    ]
    m = _manifest(tmp_path, "segmentation", [_record(tmp_path, path, objects=objs)])
    write_examples(m, tmp_path / "ex", _opts())
    (el,) = _all(tmp_path / "ex", "segmentation").values()
    expected = np.zeros((20, 40), np.uint8)
    expected[polygons_to_mask(big, 20, 40)] = 3
    expected[polygons_to_mask(small, 20, 40)] = 2  # the small object stays on top
    np.testing.assert_array_equal(el["segmentation"], expected)
    assert el["masks"].shape == (2, 20, 40)

    write_examples(m, tmp_path / "ex2", _opts(image_size=(10, 80)))
    (el2,) = _all(tmp_path / "ex2", "segmentation").values()
    assert el2["image"].shape == (10, 80, 3) and el2["segmentation"].shape == (10, 80) and el2["masks"].shape == (2, 10, 80)
    np.testing.assert_allclose(el2["boxes"], el["boxes"])  # normalised boxes do not change with a resize
    np.testing.assert_allclose(el2["area"], [100.0, 600.0])  # 10x80 has as many pixels as 20x40
    assert set(np.unique(el2["segmentation"])) == {0, 2, 3}


def test_record_without_size_uses_the_decoded_image_as_frame(tmp_path) -> None:
    path = _save(tmp_path, "n.png", _pixels(20, 40, 4), "PNG")
    rec = _record(tmp_path, path, width=0, height=0, objects=[ObjectAnnotation(class_id=1, bbox=[10, 5, 20, 10])])
    write_examples(_manifest(tmp_path, "detection", [rec]), tmp_path / "ex", _opts(image_size=(8, 8)))
    (el,) = _all(tmp_path / "ex", "detection").values()
    assert el["image"].shape == (8, 8, 3)
    np.testing.assert_allclose(el["boxes"], [[0.25, 0.25, 0.75, 0.75]])


def test_exif_rotated_image_is_made_upright_with_its_boxes(tmp_path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored pixels must be rotated 90 degrees clockwise to display
    px = np.zeros((20, 40, 3), np.uint8)
    px[0:5, 0:10] = 255  # a white block top-left of the stored pixels
    path = _save(tmp_path, "r.jpg", px, "JPEG", exif=exif.tobytes(), quality=100)
    rec = _record(tmp_path, path, objects=[ObjectAnnotation(class_id=1, bbox=[0, 0, 10, 5])])  # stored frame 40x20
    assert (rec.width, rec.height) == (40, 20)
    write_examples(_manifest(tmp_path, "detection", [rec]), tmp_path / "ex", _opts())
    (el,) = _all(tmp_path / "ex", "detection").values()
    assert el["image"].shape == (40, 20, 3)
    ymin, xmin, ymax, xmax = el["boxes"][0]
    np.testing.assert_allclose([ymin, xmin, ymax, xmax], [0.0, 0.75, 0.25, 1.0], atol=1e-6)
    assert el["image"][0:10, 15:20].mean() > 200 and el["image"][20:, :10].mean() < 50  # the block moved top-right


# --------------------------------------------------------------------------- splits


def _many(root: Path, n: int, start: int = 0) -> list[ImageRecord]:
    return [_record(root, _save(root, f"m{i}.png", _pixels(4, 4, i), "PNG"), class_id=1 + i % 3) for i in range(start, start + n)]


def _split_of(examples_dir: Path) -> dict[str, str]:
    return {sid: v["split"] for sid, v in _raw_features(examples_dir).items()}  # type: ignore[misc]


def test_split_is_deterministic_by_content_and_stable_when_images_are_added(tmp_path) -> None:
    recs = _many(tmp_path, 40)
    opts = _opts(split={"train": 0.5, "validation": 0.25, "test": 0.25})
    write_examples(_manifest(tmp_path, "classification", recs), tmp_path / "a", opts)
    write_examples(_manifest(tmp_path, "classification", list(reversed(recs))), tmp_path / "b", opts)
    first = _split_of(tmp_path / "a")
    assert first == _split_of(tmp_path / "b")
    assert set(first.values()) == {"train", "validation", "test"}
    for r in recs:
        assert first[r.image_id] == split_for(r.sha256, opts.split)

    more = _many(tmp_path, 20, start=40)
    dup = recs[0].model_copy(update={"image_id": "copy-of-m0"})  # same bytes under another id
    preset = more[0].model_copy(update={"split": "val"})
    write_examples(_manifest(tmp_path, "classification", [*more[1:], preset, *recs, dup]), tmp_path / "c", opts)
    grown = _split_of(tmp_path / "c")
    assert {k: grown[k] for k in first} == first
    assert grown["copy-of-m0"] == first["m0"]
    assert grown[preset.image_id] == "validation"


def test_split_fractions_are_respected_on_many_hashes() -> None:
    from hashlib import sha256

    spec = TransformSpec.model_validate({}).split
    splits = [split_for(sha256(str(i).encode()).hexdigest(), spec) for i in range(5000)]
    assert 0.77 < splits.count("train") / 5000 < 0.83
    assert 0.08 < splits.count("test") / 5000 < 0.12


def test_class_balancing_oversamples_rare_classes_in_train_only(tmp_path) -> None:
    recs = [
        _record(tmp_path, _save(tmp_path, f"b{i}.png", _pixels(3, 3, i), "PNG"), class_id=1 if i % 6 else 2, split="train")
        for i in range(24)
    ]
    recs += [
        _record(tmp_path, _save(tmp_path, f"v{i}.png", _pixels(3, 3, 100 + i), "PNG"), class_id=2, split="validation") for i in range(3)
    ]
    m = _manifest(tmp_path, "classification", recs)
    plain = write_examples(m, tmp_path / "plain", _opts()).index
    res = write_examples(m, tmp_path / "bal", _opts(balance_classes=True))
    bal = res.index
    assert plain.splits["train"].class_counts == {"cat": 20, "dog": 4, "cow": 0}
    assert bal.splits["train"].class_counts == {"cat": 20, "dog": 20, "cow": 0}
    assert bal.splits["train"].images == 24 and bal.splits["train"].records == 40
    assert bal.splits["validation"].records == 3
    labels = [el["label"] for el in read_dataset(tmp_path / "bal", "train", "classification").as_numpy_iterator()]
    assert labels.count(2) == 20


# --------------------------------------------------------------------------- bytes, shards, gzip


def test_upright_rgb_jpeg_is_copied_byte_for_byte(tmp_path) -> None:
    path = _save(tmp_path, "j.jpg", _pixels(30, 50, 9), "JPEG", quality=80)
    prog = _save(tmp_path, "p.jpg", _pixels(30, 50, 8), "JPEG", progressive=True)
    recs = [_record(tmp_path, p, objects=[ObjectAnnotation(class_id=1, bbox=[1, 1, 5, 5])]) for p in (path, prog)]
    res = write_examples(_manifest(tmp_path, "detection", recs), tmp_path / "ex", _opts())
    assert (res.copied, res.reencoded) == (2, 0)
    raw = _raw_features(tmp_path / "ex")
    for p in (path, prog):
        f = raw[p.stem]["f"]
        assert f["image/encoded"].bytes_list.value[0] == p.read_bytes()
        assert f["image/format"].bytes_list.value == [b"jpeg"]
        assert (f["image/height"].int64_list.value[0], f["image/width"].int64_list.value[0]) == (30, 50)
    assert jpeg_copy_size(path.read_bytes()) == (30, 50)
    assert jpeg_copy_size(path.read_bytes()[:-10]) is None  # truncated: decoded (and rejected) instead


def test_shards_index_and_gzip(tmp_path) -> None:
    recs = _many(tmp_path, 30)
    res = write_examples(
        _manifest(tmp_path, "classification", recs), tmp_path / "ex", _opts(gzip=True, shard_size_mb=0.0005, num_workers=2)
    )
    files = sorted(p.name for p in (tmp_path / "ex").iterdir())
    assert "examples.json" in files
    shards = [f for f in files if f != "examples.json"]
    assert shards and all(SHARD.match(f) and f.endswith(".tfrecord.gz") for f in shards)
    index = json.loads((tmp_path / "ex" / "examples.json").read_text())
    assert index["gzip"] is True and index["task"] == "classification" and index["label_map"]["version"] == 1
    listed = []
    for split in index["splits"].values():
        n = len(split["shards"])
        for k, s in enumerate(split["shards"]):
            assert s["file"].endswith(f"-{k:05d}-of-{n:05d}.tfrecord.gz")
            assert s["sha256"] == sha256_file(tmp_path / "ex" / s["file"])
            assert s["records"] == len(list(iter_records(tmp_path / "ex" / s["file"])))
            listed.append(s["file"])
        assert sum(s["records"] for s in split["shards"]) == split["records"]
    assert sorted(listed) == shards
    assert len(shards) > 3  # the small shard size forced several shards per split
    assert sum(res.counts.values()) == 30 and len(_all(tmp_path / "ex", "classification")) == 30


# --------------------------------------------------------------------------- bad input


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _bomb_png(path: Path) -> Path:
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _png_chunk(b"IEND", b"")
    )
    return path


def test_bad_input_corpus_is_converted_or_quarantined(tmp_path) -> None:
    root = tmp_path
    px = _pixels(16, 24, 5)
    files: dict[str, Path] = {}
    files["good"] = _save(root, "good.jpg", px, "JPEG")
    truncated = root / "truncated.jpg"
    full = _save(root, "full.jpg", _pixels(64, 64, 1), "JPEG").read_bytes()
    truncated.write_bytes(full[: len(full) // 2])
    files["truncated"] = truncated
    files["png_as_jpg"] = _save(root, "png_as.jpg", px, "PNG")
    files["cmyk"] = _save(root, "cmyk.jpg", Image.fromarray(px).convert("CMYK"), "JPEG")
    files["png16"] = _save(root, "deep.png", Image.fromarray(np.arange(16 * 24, dtype=np.uint16).reshape(16, 24) * 170), "PNG")
    files["gray"] = _save(root, "gray.jpg", Image.fromarray(px).convert("L"), "JPEG")
    rgba = np.dstack([px, np.full((16, 24), 255, np.uint8)])
    rgba[:, :12, 3] = 0
    files["rgba"] = _save(root, "rgba.png", Image.fromarray(rgba, "RGBA"), "PNG")
    files["palette"] = _save(root, "pal.png", Image.fromarray(px).convert("P"), "PNG")
    files["empty"] = root / "empty.jpg"
    files["empty"].write_bytes(b"")
    files["tiny"] = _save(root, "tiny.png", np.array([[[10, 20, 30]]], np.uint8), "PNG")
    files["bomb"] = _bomb_png(root / "bomb.png")
    missing = root / "missing.jpg"

    recs = [_record(root, p, class_id=1) for p in files.values()]
    recs[list(files).index("bomb")] = ImageRecord(
        image_id="bomb", path="bomb.png", sha256=sha256_file(files["bomb"]), width=100_000, height=100_000, class_id=1
    )
    recs.append(ImageRecord(image_id="missing", path=str(missing), sha256="0" * 64, width=10, height=10, class_id=1))
    res = write_examples(_manifest(root, "classification", recs), tmp_path / "ex", _opts())

    rejected = {Path(i.file).stem: (i.kind, i.reason) for i in res.quarantine.items}
    assert set(rejected) == {"truncated", "empty", "bomb", "missing"}
    assert rejected["truncated"][0] == "decode_error" and "truncated" in rejected["truncated"][1]
    assert rejected["empty"] == ("empty_file", "file is empty (0 bytes)")
    assert rejected["bomb"][0] == "decompression_bomb" and "100000x100000" in rejected["bomb"][1]
    assert rejected["missing"] == ("missing_file", "file not found")
    assert all(i.stage == "transform" for i in res.quarantine.items)
    assert res.quarantine.total == len(recs)

    got = _all(tmp_path / "ex", "classification")
    assert set(got) == {"good", "png_as", "cmyk", "deep", "gray", "rgba", "pal", "tiny"}
    for sid, el in got.items():
        assert el["image"].dtype == np.uint8 and el["image"].ndim == 3 and el["image"].shape[2] == 3, sid
    np.testing.assert_array_equal(got["png_as"]["image"], px)  # PNG content kept lossless
    np.testing.assert_array_equal(got["pal"]["image"], decode_rgb(files["palette"]))
    rgba_img = got["rgba"]["image"]
    assert (rgba_img[:, :12] == 255).all()  # transparent half composited on white
    np.testing.assert_array_equal(rgba_img[:, 12:], px[:, 12:])
    deep = got["deep"]["image"]
    assert deep[..., 0].max() > 200 and (deep[..., 0] == deep[..., 1]).all()  # 16-bit scaled to 8-bit gray
    assert got["tiny"]["image"].tolist() == [[[10, 20, 30]]]
    for sid in ("cmyk", "gray"):
        # re-encoded once more and decoded by TensorFlow: close to Pillow's conversion, far from an inverted CMYK
        assert np.abs(got[sid]["image"].astype(int) - decode_rgb(root / f"{sid}.jpg").astype(int)).mean() < 10
    assert (res.copied, res.reencoded) == (1, 7)
    raw = _raw_features(tmp_path / "ex")
    assert raw["png_as"]["f"]["image/format"].bytes_list.value == [b"png"]
    assert raw["cmyk"]["f"]["image/format"].bytes_list.value == [b"jpeg"]


def test_bad_objects_are_dropped_and_reported_not_the_image(tmp_path) -> None:
    path = _save(tmp_path, "o.png", _pixels(10, 10, 2), "PNG")
    objs = [
        ObjectAnnotation(class_id=1, bbox=[1, 1, 4, 4], annotation_id="ok"),
        ObjectAnnotation(class_id=9, bbox=[1, 1, 4, 4], annotation_id="unknown"),
        ObjectAnnotation(class_id=2, bbox=[20, 20, 4, 4], annotation_id="outside"),
        ObjectAnnotation(class_id=2, bbox=[1, 1, 4, 4], segmentation={"size": [10, 10], "counts": [3, 4]}, annotation_id="badrle"),
    ]
    res = write_examples(_manifest(tmp_path, "detection", [_record(tmp_path, path, objects=objs)]), tmp_path / "ex", _opts())
    assert {i.annotation_id: i.kind for i in res.quarantine.items} == {
        "unknown": "unknown_class",
        "outside": "degenerate_box",
        "badrle": "bad_mask",
    }
    assert res.quarantine.rejected_images == 0
    (el,) = _all(tmp_path / "ex", "detection").values()
    assert el["labels"].tolist() == [1] and el["masks"].shape == (1, 10, 10)


# --------------------------------------------------------------------------- kills


def test_worker_failing_mid_shard_leaves_no_finished_looking_shard(tmp_path, monkeypatch) -> None:
    recs = _many(tmp_path, 12)
    out = tmp_path / "ex"
    write_examples(_manifest(tmp_path, "classification", recs), out, _opts())  # a previous complete run
    calls = {"n": 0}
    real = shards.write_record

    def failing(writer, record):  # type: ignore[no-untyped-def]
        if writer.path.name.startswith(".train-00000-"):
            calls["n"] += 1
            if calls["n"] == 2:
                raise OSError(28, "No space left on device")
        real(writer, record)

    monkeypatch.setattr(shards, "write_record", failing)
    with pytest.raises(OSError, match="No space left"):
        write_examples(_manifest(tmp_path, "classification", recs), out, _opts())
    assert calls["n"] == 2
    names = sorted(p.name for p in out.iterdir())
    assert "examples.json" not in names  # no index: the directory is not a finished dataset
    assert not any(n.startswith(("train-", ".")) for n in names)  # partial shard and its temporary are gone
    for n in names:  # what is left are shards this run completed, each intact
        assert SHARD.match(n) and len(list(iter_records(out / n))) >= 1


_KILL = """
import os, signal, sys
from components.core.manifest import Manifest
from components.core.spec import TransformSpec
from components.transform import core, shards
real = shards.write_record
def dying(writer, record):
    if "train-00001" in writer.path.name:
        os.kill(os.getpid(), signal.SIGKILL)
    real(writer, record)
shards.write_record = dying
core.write_examples(Manifest.load(sys.argv[1]), sys.argv[2], TransformSpec(num_workers=int(sys.argv[3]), shard_size_mb=0.0002))
"""


@pytest.mark.parametrize("workers", [1, 2])
def test_killed_run_leaves_no_shard_that_looks_finished(tmp_path, workers: int) -> None:
    recs = _many(tmp_path, 40)
    _manifest(tmp_path, "classification", recs).save(tmp_path / "manifest.json")
    out = tmp_path / "ex"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run(
        [sys.executable, "-c", _KILL, str(tmp_path / "manifest.json"), str(out), str(workers)], env=env, capture_output=True, timeout=60
    )
    assert proc.returncode != 0
    if workers == 1:
        assert proc.returncode == -signal.SIGKILL
    names = [p.name for p in out.iterdir()]
    assert "examples.json" not in names
    assert not any(n.startswith("train-00001-") for n in names)  # the killed shard never got its final name
    for n in names:
        if SHARD.match(n):
            list(iter_records(out / n))  # any finished-looking shard is complete and intact
        else:
            assert n.startswith(".") and n.endswith(".tmp"), n
    write_examples(Manifest.load(tmp_path / "manifest.json"), out, _opts())  # a rerun cleans up
    assert not any(n.startswith(".") for n in os.listdir(out))
    assert sum(load_index(out).counts.values()) == 40


# --------------------------------------------------------------------------- the step


def _ctx(tmp_path, **data) -> StepContext:
    spec = PipelineSpec.model_validate(
        {
            "name": "t",
            "task": "detection",
            "data": {"source": "x.json", **data},
            "transform": {"num_workers": 1},
            "runtime": {"root": str(tmp_path / "runs"), "metadata": {"url": f"sqlite:///{tmp_path / 'mlmd.sqlite'}"}},
        }
    )
    return StepContext(spec=spec, run_id="run-1", component="transform")


def test_run_records_lineage_and_writes_quarantine(tmp_path) -> None:
    recs = [
        _record(tmp_path, _save(tmp_path, f"d{i}.jpg", _pixels(8, 8, i), "JPEG"), objects=[ObjectAnnotation(class_id=2, bbox=[0, 0, 4, 4])])
        for i in range(5)
    ]
    recs.append(ImageRecord(image_id="gone", path="gone.jpg", sha256="1" * 64, width=8, height=8))
    (tmp_path / "m").mkdir()
    _manifest(tmp_path, "detection", recs).save(tmp_path / "m" / "manifest.json")
    LM.save(tmp_path / "label_map.json")
    ctx = _ctx(tmp_path, max_quarantine_fraction=0.5)
    uris = TransformUris(manifest="mem://m", label_map="mem://lm", examples="mem://ex", quarantine="mem://q", statistics="mem://stats")
    res = core.run(ctx, tmp_path / "m", tmp_path / "label_map.json", tmp_path / "ex", tmp_path / "q", uris)
    assert sum(res.counts.values()) == 5
    assert json.loads((tmp_path / "q" / "quarantine.json").read_text())["items"][0]["kind"] == "missing_file"
    ex = ctx.store.find_by_uri("mem://ex", "Examples")
    assert ex is not None
    props = {k: json.loads(v) if isinstance(v, str) and v.startswith("{") else v for k, v in ex.properties.items()}
    assert props["pipeline"] == "t" and props["counts"] == res.counts and props["shards"] == res.shards and props["images"] == 5
    graph = ctx.store.upstream(ex.id)
    assert {a.kind for a in graph.artifacts()} == {"Examples", "Manifest", "LabelMap", "ExampleStatistics"}
    assert ctx.store.find_by_uri("mem://q", "QuarantineReport") is not None

    strict = _ctx(tmp_path, max_quarantine_fraction=0.1)
    with pytest.raises(QuarantineLimitError, match="1 of 6"):
        core.run(strict, tmp_path / "m", tmp_path / "label_map.json", tmp_path / "ex2", tmp_path / "q2")
    assert (tmp_path / "q2" / "quarantine.csv").exists()


def test_lineage_links_the_statistics_and_schema_the_manifest_was_validated_with(tmp_path) -> None:
    from components.core.lineage import NewArtifact

    recs = [_record(tmp_path, _save(tmp_path, f"v{i}.jpg", _pixels(8, 8, i), "JPEG"), objects=[]) for i in range(3)]
    (tmp_path / "m").mkdir()
    _manifest(tmp_path, "detection", recs).save(tmp_path / "m" / "manifest.json")
    LM.save(tmp_path / "label_map.json")
    ctx = _ctx(tmp_path)
    validate = StepContext(spec=ctx.spec, run_id="run-1", component="validate", _store=ctx.store)
    validate.record(
        {},
        {
            "validated": NewArtifact("Manifest", "mem://validated", {}),
            "statistics": NewArtifact("ExampleStatistics", "mem://stats", {}),
            "schema": NewArtifact("Schema", "mem://schema", {}),
        },
    )
    uris = TransformUris(manifest="mem://validated", examples="mem://ex")  # no statistics or schema given (no validate upstream in KFP)
    core.run(ctx, tmp_path / "m", tmp_path / "label_map.json", tmp_path / "ex", tmp_path / "q", uris)
    ex = ctx.store.find_by_uri("mem://ex", "Examples")
    assert ex is not None
    direct = {path: node.artifact.uri for path, node in ctx.store.upstream(ex.id).root.inputs}
    assert direct["statistics"] == "mem://stats" and direct["schema"] == "mem://schema"
    # a manifest nobody validated: nothing to link, and no error
    core.run(ctx, tmp_path / "m", tmp_path / "label_map.json", tmp_path / "ex2", tmp_path / "q2", TransformUris(examples="mem://ex2"))
    ex2 = ctx.store.find_by_uri("mem://ex2", "Examples")
    assert ex2 is not None and {path for path, _ in ctx.store.upstream(ex2.id).root.inputs} == {"manifest", "label_map"}


def test_label_map_disagreeing_with_manifest_is_refused(tmp_path) -> None:
    m = _manifest(tmp_path, "classification", _many(tmp_path, 1))
    with pytest.raises(DataError, match="gives id 1 to 'dog'"):
        write_examples(m, tmp_path / "ex", _opts(), label_map=LabelMap.from_names(["dog", "cat", "cow"]))


def test_component_signature() -> None:
    from components.transform.component import transform

    spec = transform.component_spec
    assert set(spec.inputs) == {"context", "run_id", "data", "transform", "validation", "manifest", "label_map"}
    assert set(spec.outputs) == {"examples", "quarantine"}
    assert spec.outputs["examples"].type == "system.Dataset@0.0.1"
